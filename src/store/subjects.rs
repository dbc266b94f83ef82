//! Subjects: per study, who has sent what, kept by the writer; and one subject's events.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rusqlite::{params, Connection};
use serde::Serialize;
use serde_json::json;

use super::compliance::DayActivity;
use super::deliveries::{delivery_row_from, DeliveryRow, DELIVERY_COLUMNS};
use super::listing::Page;
use super::uploads::StatusCounts;
use super::{from_ms, to_ms};
use crate::event;

/// One subject of a study, with its uploads counted.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectRow {
    pub study_id: String,
    pub subject_id: String,
    pub subject_identifier: Option<String>,
    pub last_delivery_at: DateTime<Utc>,
    pub last_upload_at: Option<DateTime<Utc>>,
    pub uploads: StatusCounts,
    pub other_events: i64,
}

/// The subjects of a study, the most recently active first, a page at a time (the
/// cursor is where the previous page ended).
pub fn page(
    conn: &Connection,
    study: &str,
    cursor: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Page<SubjectRow>> {
    let limit = limit.clamp(1, 1000);
    let (at, after): (i64, String) =
        cursor.and_then(|c| serde_json::from_str(c).ok()).unwrap_or((i64::MAX, String::new()));
    let mut stmt = conn.prepare(
        "SELECT subject_id, subject_identifier, last_delivery_at, last_upload_at, uploads_started,
                uploads_completed, uploads_error, other_events
         FROM subjects
         WHERE study_id = ?1 AND (last_delivery_at, subject_id) < (?2, ?3)
         ORDER BY last_delivery_at DESC, subject_id DESC LIMIT ?4",
    )?;
    let rows = stmt.query_map(params![study, at, after, i64::from(limit) + 1], |row| {
        Ok(SubjectRow {
            study_id: study.to_string(),
            subject_id: row.get(0)?,
            subject_identifier: row.get(1)?,
            last_delivery_at: from_ms(row.get(2)?),
            last_upload_at: row.get::<_, Option<i64>>(3)?.map(from_ms),
            uploads: StatusCounts { started: row.get(4)?, completed: row.get(5)?, error: row.get(6)? },
            other_events: row.get(7)?,
        })
    })?;
    let items = rows.collect::<rusqlite::Result<_>>()?;
    Ok(Page::from_rows(items, limit, |s: &SubjectRow| {
        json!([to_ms(s.last_delivery_at), s.subject_id]).to_string()
    }))
}

/// One subject's days from `from` to `to` that have statistics or uploads, for its
/// day-by-day wear table: the same reading as [`super::compliance::days`] for one subject.
pub fn days(
    conn: &Connection,
    study: &str,
    subject: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> rusqlite::Result<BTreeMap<NaiveDate, DayActivity>> {
    let fmt = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let parse = |text: String| NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok();
    let mut out: BTreeMap<NaiveDate, DayActivity> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT day, wear_minutes FROM subject_days
         WHERE study_id = ?1 AND subject_id = ?2 AND day >= ?3 AND day <= ?4",
    )?;
    let rows = stmt.query_map(params![study, subject, fmt(from), fmt(to)], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, Option<f64>>(1)?))
    })?;
    for row in rows {
        let (day, wear) = row?;
        if let Some(day) = parse(day) {
            out.entry(day).or_default().wear_minutes = wear;
        }
    }
    // As for the study: an upload first seen from `from` on was updated since then.
    let updated_since = (from - Duration::days(1)).and_hms_opt(0, 0, 0).map_or(0, |t| to_ms(t.and_utc()));
    let mut stmt = conn.prepare_cached(
        "SELECT first_seen_day, count(*) FROM uploads
         WHERE study_id = ?1 AND subject_id = ?2 AND updated_at >= ?3
           AND first_seen_day >= ?4 AND first_seen_day <= ?5
         GROUP BY first_seen_day",
    )?;
    let rows = stmt.query_map(params![study, subject, updated_since, fmt(from), fmt(to)], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, u32>(1)?))
    })?;
    for row in rows {
        let (day, count) = row?;
        if let Some(day) = parse(day) {
            out.entry(day).or_default().uploads = count;
        }
    }
    Ok(out)
}

/// A delivery of another event type, with its typed content for display.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectEvent {
    #[serde(flatten)]
    pub row: DeliveryRow,
    /// The typed event (wear minutes, steps, files, ...), when the body could be read.
    pub detail: Option<event::Event>,
}

/// The non-upload events of one subject, newest first.
pub fn events(
    conn: &Connection,
    study: &str,
    subject: &str,
    limit: u32,
) -> rusqlite::Result<Vec<SubjectEvent>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {DELIVERY_COLUMNS}, body FROM deliveries
         WHERE study_id = ?1 AND subject_id = ?2 AND event <> 'upload'
         ORDER BY received_at DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![study, subject, limit], |row| {
        let body: Vec<u8> = row.get(17)?;
        let delivery = delivery_row_from(row)?;
        let detail = event::parse(&delivery.event, &body).ok().map(|p| p.event);
        Ok(SubjectEvent { row: delivery, detail })
    })?;
    rows.collect()
}

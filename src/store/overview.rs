//! The dashboard's reads: study cards, pages of uploads and deliveries (keyset
//! pagination, so page 1000 costs what page 1 costs), subjects and their events.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection};
use serde::Serialize;
use serde_json::json;

use super::query::{
    delivery_row_from, upload_row_from, where_clause, DeliveryRow, Filter, UploadRow, DELIVERY_COLUMNS,
    UPLOAD_COLUMNS,
};
use super::{from_ms, to_ms};
use crate::event;

/// Uploads counted by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    pub started: i64,
    pub completed: i64,
    pub error: i64,
}

impl StatusCounts {
    fn add(&mut self, status: &str, n: i64) {
        match status {
            "started" => self.started += n,
            "completed" => self.completed += n,
            "error" => self.error += n,
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DayCounts {
    pub day: NaiveDate,
    #[serde(flatten)]
    pub counts: StatusCounts,
}

/// One study's card on the overview.
#[derive(Debug, Clone, Serialize)]
pub struct StudyCard {
    pub study_id: String,
    pub label: Option<String>,
    pub last_delivery_at: Option<DateTime<Utc>>,
    pub today: StatusCounts,
    pub last_7_days: StatusCounts,
    /// Per local day first seen, oldest first, for the last 30 days.
    pub days: Vec<DayCounts>,
    pub latest_failures: Vec<UploadRow>,
    pub stalled: Vec<UploadRow>,
    pub stalled_count: i64,
}

/// How many failures and stalled uploads a card lists.
const CARD_ROWS: usize = 3;

/// Every study's card, the most recently active first. `today` is the local date.
pub fn study_cards(
    conn: &Connection,
    today: NaiveDate,
    now: DateTime<Utc>,
    stalled_after: Duration,
) -> rusqlite::Result<Vec<StudyCard>> {
    let first_day = today - Duration::days(29);
    let week_start = today - Duration::days(6);
    let mut days: BTreeMap<String, BTreeMap<NaiveDate, StatusCounts>> = BTreeMap::new();
    {
        let mut stmt =
            conn.prepare("SELECT study_id, day, status, uploads FROM upload_days WHERE day >= ?1")?;
        let rows = stmt.query_map([first_day.format("%Y-%m-%d").to_string()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (study, day, status, n) = row?;
            if let Ok(day) = NaiveDate::parse_from_str(&day, "%Y-%m-%d") {
                days.entry(study).or_default().entry(day).or_default().add(&status, n);
            }
        }
    }
    let stalled_before = to_ms(now - stalled_after);
    let mut stmt =
        conn.prepare("SELECT study_id, label, last_delivery_at FROM studies ORDER BY last_delivery_at DESC")?;
    let studies = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?, row.get::<_, i64>(2)?))
    })?;
    let mut failures = conn.prepare(&format!(
        "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE study_id = ?1 AND status = 'error' ORDER BY updated_at DESC LIMIT ?2"
    ))?;
    let mut stalled = conn.prepare(&format!(
        "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE study_id = ?1 AND status = 'started' AND started_at < ?2
         ORDER BY started_at LIMIT ?3"
    ))?;
    let mut stalled_count = conn.prepare(
        "SELECT count(*) FROM uploads WHERE study_id = ?1 AND status = 'started' AND started_at < ?2",
    )?;
    let mut cards = Vec::new();
    for study in studies {
        let (study_id, label, last) = study?;
        let per_day = days.remove(&study_id).unwrap_or_default();
        let mut today_counts = StatusCounts::default();
        let mut week = StatusCounts::default();
        let series = (0..30)
            .map(|i| {
                let day = first_day + Duration::days(i);
                let counts = per_day.get(&day).copied().unwrap_or_default();
                if day >= week_start {
                    week.started += counts.started;
                    week.completed += counts.completed;
                    week.error += counts.error;
                }
                if day == today {
                    today_counts = counts;
                }
                DayCounts { day, counts }
            })
            .collect();
        cards.push(StudyCard {
            latest_failures: failures
                .query_map(params![study_id, CARD_ROWS as i64], upload_row_from)?
                .collect::<rusqlite::Result<_>>()?,
            stalled: stalled
                .query_map(params![study_id, stalled_before, CARD_ROWS as i64], upload_row_from)?
                .collect::<rusqlite::Result<_>>()?,
            stalled_count: stalled_count.query_row(params![study_id, stalled_before], |row| row.get(0))?,
            study_id,
            label,
            last_delivery_at: (last > 0).then(|| from_ms(last)),
            today: today_counts,
            last_7_days: week,
            days: series,
        });
    }
    Ok(cards)
}

/// A page of a listing, with the cursor of the next page if there is one.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` rows: the extra row, if fetched, only says there is
    /// a next page, which starts after the page's last row.
    fn from_rows(mut items: Vec<T>, limit: u32, cursor: impl Fn(&T) -> String) -> Self {
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_cursor = if more { items.last().map(cursor) } else { None };
        Page { items, next_cursor }
    }
}

/// Where the previous page of uploads ended.
fn upload_cursor(row: &UploadRow) -> String {
    json!([to_ms(row.updated_at), row.study_id, row.upload_id]).to_string()
}

fn parse_upload_cursor(cursor: &str) -> Option<(i64, String, String)> {
    serde_json::from_str(cursor).ok()
}

/// Filters for the uploads page: the shared filter, free-text search and the cursor.
#[derive(Debug, Clone, Default)]
pub struct UploadQuery {
    pub filter: Filter,
    /// Matches an upload id or subject id exactly, or part of a failed upload's error message.
    pub search: Option<String>,
    /// Only uploads still `started` that started before this time (stalled).
    pub stalled_before: Option<DateTime<Utc>>,
    pub cursor: Option<String>,
    pub limit: u32,
}

/// Uploads, most recently changed first, one page at a time.
pub fn uploads_page(conn: &Connection, q: &UploadQuery) -> rusqlite::Result<Page<UploadRow>> {
    let (mut terms, mut values) = q.filter.terms("updated_at", false);
    if let Some(search) = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        // Three indexed lookups rather than one condition tested on every row.
        terms.push(
            "rowid IN (SELECT rowid FROM uploads WHERE upload_id = ?
                       UNION SELECT rowid FROM uploads WHERE subject_id = ?
                       UNION SELECT rowid FROM uploads WHERE status = 'error' AND error_message LIKE ? ESCAPE '\\')"
                .into(),
        );
        values.push(SqlValue::Text(search.to_string()));
        values.push(SqlValue::Text(search.to_string()));
        values.push(SqlValue::Text(format!("%{}%", like_escape(search))));
    }
    if let Some(before) = q.stalled_before {
        terms.push("status = 'started' AND started_at < ?".into());
        values.push(SqlValue::Integer(to_ms(before)));
    }
    if let Some((at, study, upload)) = q.cursor.as_deref().and_then(parse_upload_cursor) {
        // A row value, so that SQLite walks the (updated_at, study_id, upload_id) index.
        terms.push("(updated_at, study_id, upload_id) < (?, ?, ?)".into());
        values.extend([SqlValue::Integer(at), SqlValue::Text(study), SqlValue::Text(upload)]);
    }
    let limit = q.limit.clamp(1, 500);
    values.push(SqlValue::Integer(i64::from(limit) + 1));
    let sql = format!(
        "SELECT {UPLOAD_COLUMNS} FROM uploads {} ORDER BY updated_at DESC, study_id DESC, upload_id DESC LIMIT ?",
        where_clause(&terms)
    );
    let mut stmt = conn.prepare(&sql)?;
    let items = stmt.query_map(params_from_iter(values), upload_row_from)?.collect::<Result<_, _>>()?;
    Ok(Page::from_rows(items, limit, upload_cursor))
}

fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Filters for the deliveries page.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub filter: Filter,
    /// Only deliveries flagged for the user (unreadable body, unknown event type, ...).
    pub flagged: bool,
    pub cursor: Option<i64>,
    pub limit: u32,
}

/// Deliveries, newest first, one page at a time (the cursor is the last `seq` seen).
pub fn deliveries_page(conn: &Connection, q: &DeliveryQuery) -> rusqlite::Result<Page<DeliveryRow>> {
    let (mut terms, mut values) = q.filter.terms("received_at", true);
    if q.flagged {
        terms.push("flag IS NOT NULL".into());
    }
    if let Some(seq) = q.cursor {
        terms.push("seq < ?".into());
        values.push(SqlValue::Integer(seq));
    }
    let limit = q.limit.clamp(1, 500);
    values.push(SqlValue::Integer(i64::from(limit) + 1));
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries {} ORDER BY seq DESC LIMIT ?",
        where_clause(&terms)
    );
    let mut stmt = conn.prepare(&sql)?;
    let items = stmt.query_map(params_from_iter(values), delivery_row_from)?.collect::<Result<_, _>>()?;
    Ok(Page::from_rows(items, limit, |d: &DeliveryRow| d.seq.to_string()))
}

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
pub fn subjects(
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

/// A delivery of another event type, with its typed content for display.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectEvent {
    #[serde(flatten)]
    pub row: DeliveryRow,
    /// The typed event (wear minutes, steps, files, ...), when the body could be read.
    pub detail: Option<event::Event>,
}

/// The non-upload events of one subject, newest first.
pub fn subject_events(
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

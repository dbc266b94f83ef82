//! What the compliance rules read: a study's subjects (its roster and those seen in
//! deliveries), each one's last upload, and the subject-days' wear time of the last
//! weeks.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use rusqlite::Connection;

use super::from_ms;
use crate::compliance::{StudyNews, SubjectInput};

/// Complete days the rules look back over (28), and the current week.
const DAYS_READ: i64 = 28 + 7;

fn date(text: Option<String>) -> Option<NaiveDate> {
    text.and_then(|t| NaiveDate::parse_from_str(&t, "%Y-%m-%d").ok())
}

/// Every subject of `study_id` with what the rules need, as of `today`.
pub fn inputs(conn: &Connection, study_id: &str, today: NaiveDate) -> rusqlite::Result<Vec<SubjectInput>> {
    let mut subjects: BTreeMap<String, SubjectInput> = BTreeMap::new();
    let blank = |id: &str| SubjectInput {
        subject_id: id.to_string(),
        label: None,
        on_roster: false,
        enrolled_on: None,
        expected_until: None,
        last_upload_at: None,
        wear: BTreeMap::new(),
    };
    let mut seen = conn.prepare_cached(
        "SELECT subject_id, subject_identifier, last_upload_at FROM subjects WHERE study_id = ?1",
    )?;
    let rows = seen.query_map([study_id], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?, row.get::<_, Option<i64>>(2)?))
    })?;
    for row in rows {
        let (id, identifier, last) = row?;
        let s = subjects.entry(id.clone()).or_insert_with(|| blank(&id));
        s.label = identifier;
        s.last_upload_at = last.filter(|ms| *ms > 0).map(from_ms);
    }
    let mut roster = conn.prepare_cached(
        "SELECT subject_id, label, enrolled_on, expected_until FROM roster WHERE study_id = ?1",
    )?;
    let rows = roster.query_map([study_id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, Option<String>>(1)?,
            row.get::<_, Option<String>>(2)?,
            row.get::<_, Option<String>>(3)?,
        ))
    })?;
    for row in rows {
        let (id, label, enrolled, until) = row?;
        let s = subjects.entry(id.clone()).or_insert_with(|| blank(&id));
        s.on_roster = true;
        s.label = label.or(s.label.take());
        s.enrolled_on = date(enrolled);
        s.expected_until = date(until);
    }
    let first = (today - Duration::days(DAYS_READ)).format("%Y-%m-%d").to_string();
    let mut days = conn.prepare_cached(
        "SELECT subject_id, day, wear_minutes FROM subject_days
         WHERE study_id = ?1 AND day >= ?2 AND wear_minutes IS NOT NULL",
    )?;
    let rows = days.query_map(rusqlite::params![study_id, first], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, f64>(2)?))
    })?;
    for row in rows {
        let (id, day, wear) = row?;
        if let (Some(s), Some(day)) = (subjects.get_mut(&id), date(Some(day))) {
            s.wear.insert(day, wear);
        }
    }
    Ok(subjects.into_values().collect())
}

/// Each study's news as of `today` and `now` (or only `only`'s): its compliance and
/// yesterday's uploads, for the digest and the notifications.
pub fn news(
    conn: &Connection,
    only: Option<&str>,
    today: NaiveDate,
    now: chrono::DateTime<chrono::Utc>,
) -> rusqlite::Result<Vec<StudyNews>> {
    let yesterday = today - Duration::days(1);
    let mut out = Vec::new();
    for study in super::studies::list(conn)? {
        if only.is_some_and(|id| id != study.study_id) {
            continue;
        }
        let subjects = inputs(conn, &study.study_id, today)?;
        let compliance = crate::compliance::study(&study.study_id, &study.protocol, &subjects, today, now);
        let (uploads_yesterday, failed_yesterday) = uploads_on(conn, &study.study_id, yesterday)?;
        let name = study.label.clone().unwrap_or_else(|| format!("Study {}", study.study_id));
        out.push(StudyNews { name, compliance, uploads_yesterday, failed_yesterday });
    }
    Ok(out)
}

/// Uploads first seen on `day` (a local day), and how many of them failed.
pub fn uploads_on(conn: &Connection, study_id: &str, day: NaiveDate) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT coalesce(sum(uploads), 0), coalesce(sum(CASE WHEN status = 'error' THEN uploads END), 0)
         FROM upload_days WHERE study_id = ?1 AND day = ?2",
        rusqlite::params![study_id, day.format("%Y-%m-%d").to_string()],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
}

/// One subject-day of the day-by-day columns: its wear minutes (`None` without
/// statistics, or when they gave none) and the uploads of that subject received that
/// day (the researcher's local day).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DayActivity {
    pub wear_minutes: Option<f64>,
    pub uploads: u32,
}

/// Each subject's days from `from` to `to` that have statistics (subject-local days) or
/// uploads (local days), for the day-by-day columns.
pub fn days(
    conn: &Connection,
    study_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> rusqlite::Result<BTreeMap<String, BTreeMap<NaiveDate, DayActivity>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT subject_id, day, wear_minutes FROM subject_days WHERE study_id = ?1 AND day >= ?2 AND day <= ?3",
    )?;
    let fmt = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let rows = stmt.query_map(rusqlite::params![study_id, fmt(from), fmt(to)], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, Option<f64>>(2)?))
    })?;
    let mut out: BTreeMap<String, BTreeMap<NaiveDate, DayActivity>> = BTreeMap::new();
    for row in rows {
        let (subject, day, wear) = row?;
        if let Some(day) = date(Some(day)) {
            out.entry(subject).or_default().entry(day).or_default().wear_minutes = wear;
        }
    }
    // An upload is first seen no later than it was last updated, so uploads not updated
    // since the day before `from` (in UTC, earlier than any local midnight of `from`)
    // cannot count, and the study's index on `updated_at` skips them.
    let updated_since =
        (from - Duration::days(1)).and_hms_opt(0, 0, 0).map_or(0, |t| super::to_ms(t.and_utc()));
    let mut uploads = conn.prepare_cached(
        "SELECT subject_id, first_seen_day, count(*) FROM uploads
         WHERE study_id = ?1 AND updated_at >= ?2 AND first_seen_day >= ?3 AND first_seen_day <= ?4
           AND subject_id IS NOT NULL
         GROUP BY subject_id, first_seen_day",
    )?;
    let rows = uploads.query_map(rusqlite::params![study_id, updated_since, fmt(from), fmt(to)], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, u32>(2)?))
    })?;
    for row in rows {
        let (subject, day, count) = row?;
        if let Some(day) = date(Some(day)) {
            out.entry(subject).or_default().entry(day).or_default().uploads = count;
        }
    }
    Ok(out)
}

//! Studies: their names, and each one's card on the dashboard's overview.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension as _};
use serde::Serialize;

use super::uploads::{upload_row_from, StatusCounts, UploadRow, UPLOAD_COLUMNS};
use super::{from_ms, to_ms};

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
pub fn cards(
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

/// Names a study (or clears its name with `None`). The study need not have sent anything yet.
pub fn set_label(conn: &Connection, study_id: &str, label: Option<&str>) -> rusqlite::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    conn.execute(
        "INSERT INTO studies (study_id, label, first_seen_at, last_delivery_at) VALUES (?1, ?2, ?3, 0)
         ON CONFLICT (study_id) DO UPDATE SET label = excluded.label",
        params![study_id, label, now],
    )?;
    Ok(())
}

/// A study's name, if it has one.
pub fn label(conn: &Connection, study: &str) -> rusqlite::Result<Option<String>> {
    Ok(conn
        .query_row("SELECT label FROM studies WHERE study_id = ?1", [study], |row| {
            row.get::<_, Option<String>>(0)
        })
        .optional()?
        .flatten())
}

/// Every named study's name, by study id.
pub fn labels(conn: &Connection) -> rusqlite::Result<HashMap<String, String>> {
    let mut stmt = conn.prepare("SELECT study_id, label FROM studies WHERE label IS NOT NULL")?;
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

/// One study as the study list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StudySummary {
    pub study_id: String,
    pub label: Option<String>,
    pub last_delivery_at: Option<DateTime<Utc>>,
    pub subjects: i64,
    /// Its compliance protocol (the defaults unless set).
    pub protocol: super::protocols::Protocol,
}

/// Every study, by name (or id, for those without one).
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<StudySummary>> {
    let mut stmt = conn.prepare(
        "SELECT study_id, label, last_delivery_at, (SELECT count(*) FROM subjects s WHERE s.study_id = t.study_id)
         FROM studies t ORDER BY coalesce(label, study_id)",
    )?;
    let rows = stmt.query_map([], |row| {
        let last: i64 = row.get(2)?;
        Ok(StudySummary {
            study_id: row.get(0)?,
            label: row.get(1)?,
            last_delivery_at: (last > 0).then(|| from_ms(last)),
            subjects: row.get(3)?,
            protocol: Default::default(),
        })
    })?;
    let mut list = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    for study in &mut list {
        study.protocol = super::protocols::protocol(conn, &study.study_id)?;
    }
    Ok(list)
}

//! Reads: uploads, deliveries, refused requests and the receiver's status, with the
//! filters the command line (and the dashboard) offer.

use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension as _, Row};
use serde::Serialize;

use super::{from_ms, to_ms};
use crate::event::UploadStatus;
use crate::upload::UploadState;

/// Filters shared by the upload and delivery listings. Empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub study: Option<String>,
    pub subject: Option<String>,
    pub status: Option<String>,
    pub event: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
}

impl Filter {
    /// The filter's SQL conditions (to be joined with AND) and their parameters.
    pub(super) fn terms(&self, time_column: &str, with_event: bool) -> (Vec<String>, Vec<SqlValue>) {
        let mut terms = Vec::new();
        let mut values = Vec::new();
        let mut add = |term: String, value: SqlValue| {
            terms.push(term);
            values.push(value);
        };
        if let Some(study) = &self.study {
            add("study_id = ?".into(), SqlValue::Text(study.clone()));
        }
        if let Some(subject) = &self.subject {
            add("subject_id = ?".into(), SqlValue::Text(subject.clone()));
        }
        if let Some(status) = &self.status {
            add("status = ?".into(), SqlValue::Text(status.to_ascii_lowercase()));
        }
        if let (true, Some(event)) = (with_event, &self.event) {
            add("event = ?".into(), SqlValue::Text(event.clone()));
        }
        if let Some(since) = self.since {
            add(format!("{time_column} >= ?"), SqlValue::Integer(to_ms(since)));
        }
        if let Some(until) = self.until {
            add(format!("{time_column} < ?"), SqlValue::Integer(to_ms(until)));
        }
        (terms, values)
    }

    fn limit(&self) -> i64 {
        self.limit.map_or(-1, i64::from)
    }
}

/// `WHERE a AND b ...`, or nothing for no conditions.
pub(super) fn where_clause(terms: &[String]) -> String {
    if terms.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", terms.join(" AND "))
    }
}

/// One upload as listed and exported.
#[derive(Debug, Clone, Serialize)]
pub struct UploadRow {
    pub study_id: String,
    pub upload_id: String,
    #[serde(flatten)]
    pub state: UploadState,
    pub duration_seconds: Option<i64>,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deliveries: i64,
}

pub(super) const UPLOAD_COLUMNS: &str =
    "subject_id, status, started_at, completed_at, failed_at, error_message,
    first_epoch_utc, last_epoch_utc, first_epoch_subject_tz, last_epoch_subject_tz,
    study_id, upload_id, first_seen_at, updated_at, deliveries";

fn upload_state_from(row: &Row<'_>) -> rusqlite::Result<UploadState> {
    let ms = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        Ok(row.get::<_, Option<i64>>(i)?.map(from_ms))
    };
    let local = |i: usize| -> rusqlite::Result<Option<NaiveDateTime>> {
        Ok(row
            .get::<_, Option<String>>(i)?
            .and_then(|s| NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S").ok()))
    };
    let status: String = row.get(1)?;
    Ok(UploadState {
        subject_id: row.get(0)?,
        status: UploadStatus::parse(&status).unwrap_or(UploadStatus::Started),
        started_at: ms(2)?,
        completed_at: ms(3)?,
        failed_at: ms(4)?,
        error_message: row.get(5)?,
        first_epoch_utc: ms(6)?,
        last_epoch_utc: ms(7)?,
        first_epoch_subject_tz: local(8)?,
        last_epoch_subject_tz: local(9)?,
    })
}

pub(super) fn upload_row_from(row: &Row<'_>) -> rusqlite::Result<UploadRow> {
    let state = upload_state_from(row)?;
    Ok(UploadRow {
        study_id: row.get(10)?,
        upload_id: row.get(11)?,
        duration_seconds: state.duration().map(|d| d.num_seconds()),
        state,
        first_seen_at: from_ms(row.get(12)?),
        updated_at: from_ms(row.get(13)?),
        deliveries: row.get(14)?,
    })
}

/// The stored state of one upload, if known.
pub fn upload_state(conn: &Connection, study: &str, upload: &str) -> rusqlite::Result<Option<UploadState>> {
    // Cached: the writer asks this for every upload delivery.
    conn.prepare_cached(&format!(
        "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE study_id = ?1 AND upload_id = ?2"
    ))?
    .query_row(params![study, upload], upload_state_from)
    .optional()
}

pub fn upload(conn: &Connection, study: &str, upload: &str) -> rusqlite::Result<Option<UploadRow>> {
    conn.query_row(
        &format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE study_id = ?1 AND upload_id = ?2"),
        params![study, upload],
        upload_row_from,
    )
    .optional()
}

/// Uploads, most recently changed first.
pub fn uploads(conn: &Connection, filter: &Filter) -> rusqlite::Result<Vec<UploadRow>> {
    let (terms, mut values) = filter.terms("updated_at", false);
    let clause = where_clause(&terms);
    values.push(SqlValue::Integer(filter.limit()));
    let sql = format!(
        "SELECT {UPLOAD_COLUMNS} FROM uploads {clause} ORDER BY updated_at DESC, upload_id DESC LIMIT ?"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), upload_row_from)?;
    rows.collect()
}

/// One delivery as listed (without its headers and body).
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRow {
    pub seq: i64,
    pub delivery_id: String,
    pub event: String,
    pub webhook_id: Option<String>,
    pub received_at: DateTime<Utc>,
    pub peer: Option<String>,
    pub forwarded_for: Option<String>,
    pub auth: String,
    pub flag: Option<String>,
    pub problem: Option<String>,
    pub study_id: Option<String>,
    pub subject_id: Option<String>,
    pub upload_id: Option<String>,
    pub status: Option<String>,
    pub summary: String,
    pub duplicates: i64,
    pub last_duplicate_at: Option<DateTime<Utc>>,
}

/// One delivery whole: what was listed plus its headers and raw body.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub row: DeliveryRow,
    pub headers: Vec<(String, String)>,
    /// The body as text when it is UTF-8 (it usually is); see `body_base64` otherwise.
    pub body: Option<String>,
    pub body_base64: Option<String>,
}

pub(super) const DELIVERY_COLUMNS: &str =
    "seq, delivery_id, event, webhook_id, received_at, peer, forwarded_for,
    auth, flag, problem, study_id, subject_id, upload_id, status, summary, duplicates,
    last_duplicate_at";

pub(super) fn delivery_row_from(row: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        seq: row.get(0)?,
        delivery_id: row.get(1)?,
        event: row.get(2)?,
        webhook_id: row.get(3)?,
        received_at: from_ms(row.get(4)?),
        peer: row.get(5)?,
        forwarded_for: row.get(6)?,
        auth: row.get(7)?,
        flag: row.get(8)?,
        problem: row.get(9)?,
        study_id: row.get(10)?,
        subject_id: row.get(11)?,
        upload_id: row.get(12)?,
        status: row.get(13)?,
        summary: row.get(14)?,
        duplicates: row.get(15)?,
        last_duplicate_at: row.get::<_, Option<i64>>(16)?.map(from_ms),
    })
}

/// Deliveries, newest first.
pub fn deliveries(conn: &Connection, filter: &Filter) -> rusqlite::Result<Vec<DeliveryRow>> {
    let (terms, mut values) = filter.terms("received_at", true);
    let clause = where_clause(&terms);
    values.push(SqlValue::Integer(filter.limit()));
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries {clause} ORDER BY seq DESC LIMIT ?");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), delivery_row_from)?;
    rows.collect()
}

/// The deliveries of one upload, in the order received.
pub fn upload_timeline(conn: &Connection, study: &str, upload: &str) -> rusqlite::Result<Vec<DeliveryRow>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE study_id = ?1 AND upload_id = ?2 AND event = 'upload' ORDER BY seq"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params![study, upload], delivery_row_from)?;
    rows.collect()
}

/// One delivery by its sequence number (as listed), or by its delivery id (newest first).
pub fn delivery(conn: &Connection, key: &str) -> rusqlite::Result<Option<DeliveryDetail>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS}, headers, body FROM deliveries
         WHERE seq = ?1 OR delivery_id = ?2 ORDER BY seq = ?1 DESC, seq DESC LIMIT 1"
    );
    let seq = key.parse::<i64>().unwrap_or(-1);
    conn.query_row(&sql, params![seq, key], |row| {
        let headers: String = row.get(17)?;
        let body: Vec<u8> = row.get(18)?;
        let (body, body_base64) = match String::from_utf8(body) {
            Ok(text) => (Some(text), None),
            Err(e) => {
                use base64::Engine as _;
                (None, Some(base64::engine::general_purpose::STANDARD.encode(e.as_bytes())))
            }
        };
        Ok(DeliveryDetail {
            row: delivery_row_from(row)?,
            headers: serde_json::from_str(&headers).unwrap_or_default(),
            body,
            body_base64,
        })
    })
    .optional()
}

/// One refused request from the bounded log.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedRow {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub peer: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub reason: String,
    pub webhook_id: Option<String>,
    pub event: Option<String>,
    pub delivery_id: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body_prefix: String,
    pub body_len: Option<i64>,
}

/// Refused requests, newest first; `before` is the id where the previous page ended.
pub fn refused(conn: &Connection, limit: u32, before: Option<i64>) -> rusqlite::Result<Vec<RefusedRow>> {
    let mut stmt = conn.prepare(
        "SELECT id, received_at, peer, method, path, status, reason, webhook_id, event, delivery_id,
                headers, body_prefix, body_len
         FROM refused WHERE id < ?2 ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![limit, before.unwrap_or(i64::MAX)], |row| {
        let headers: String = row.get(10)?;
        let body: Vec<u8> = row.get(11)?;
        Ok(RefusedRow {
            id: row.get(0)?,
            received_at: from_ms(row.get(1)?),
            peer: row.get(2)?,
            method: row.get(3)?,
            path: row.get(4)?,
            status: row.get(5)?,
            reason: row.get(6)?,
            webhook_id: row.get(7)?,
            event: row.get(8)?,
            delivery_id: row.get(9)?,
            headers: serde_json::from_str(&headers).unwrap_or_default(),
            body_prefix: String::from_utf8_lossy(&body).into_owned(),
            body_len: row.get(12)?,
        })
    })?;
    rows.collect()
}

/// Counts for `cpwatch status` (and the dashboard's health panel).
#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    pub deliveries: i64,
    pub duplicates: i64,
    pub flagged: i64,
    pub last_delivery_at: Option<DateTime<Utc>>,
    pub uploads_started: i64,
    pub uploads_completed: i64,
    pub uploads_error: i64,
    pub refused_last_day: i64,
    pub studies: i64,
    pub subjects: i64,
    pub last_validation: Option<ValidationRecord>,
}

/// The latest validation handshake: stored when its credentials checked out, in the
/// refused log (answered anyway) when they did not.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationRecord {
    pub received_at: DateTime<Utc>,
    pub webhook_id: Option<String>,
    pub auth_ok: bool,
    /// The authentication outcome, or why the credentials did not match.
    pub auth: String,
}

pub fn counts(conn: &Connection, now: DateTime<Utc>) -> rusqlite::Result<Counts> {
    let (deliveries, duplicates): (i64, i64) =
        conn.query_row("SELECT deliveries, duplicates FROM delivery_totals", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    let flagged: i64 =
        conn.query_row("SELECT count(*) FROM deliveries WHERE flag IS NOT NULL", [], |row| row.get(0))?;
    let last: Option<i64> =
        conn.query_row("SELECT max(received_at) FROM deliveries", [], |row| row.get(0))?;
    // The per-day table holds every upload once, under its current status.
    let by_status = |status: &str| -> rusqlite::Result<i64> {
        conn.query_row(
            "SELECT coalesce(sum(uploads), 0) FROM upload_days WHERE status = ?1",
            [status],
            |row| row.get(0),
        )
    };
    let day_ago = to_ms(now - chrono::Duration::days(1));
    let record = |ok: bool| {
        move |row: &Row<'_>| -> rusqlite::Result<ValidationRecord> {
            Ok(ValidationRecord {
                received_at: from_ms(row.get(0)?),
                webhook_id: row.get(1)?,
                auth_ok: ok,
                auth: row.get(2)?,
            })
        }
    };
    let answered = conn
        .query_row(
            "SELECT received_at, webhook_id, auth FROM deliveries WHERE event = 'validation' ORDER BY seq DESC LIMIT 1",
            [],
            record(true),
        )
        .optional()?;
    let mismatched = conn
        .query_row(
            "SELECT received_at, webhook_id, reason FROM refused
             WHERE status = 200 AND lower(event) = 'validation' ORDER BY id DESC LIMIT 1",
            [],
            record(false),
        )
        .optional()?;
    let last_validation = match (answered, mismatched) {
        (Some(a), Some(m)) => Some(if m.received_at > a.received_at { m } else { a }),
        (a, m) => a.or(m),
    };
    Ok(Counts {
        deliveries,
        duplicates,
        flagged,
        last_delivery_at: last.map(from_ms),
        uploads_started: by_status("started")?,
        uploads_completed: by_status("completed")?,
        uploads_error: by_status("error")?,
        refused_last_day: conn.query_row(
            "SELECT count(*) FROM refused WHERE received_at >= ?1",
            [day_ago],
            |row| row.get(0),
        )?,
        studies: conn.query_row("SELECT count(*) FROM studies", [], |row| row.get(0))?,
        subjects: conn.query_row("SELECT count(*) FROM subjects", [], |row| row.get(0))?,
        last_validation,
    })
}

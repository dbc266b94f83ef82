//! Deliveries: every request CentrePoint sent that was accepted, raw (headers and body)
//! with what was read from it; listed, paged, and one whole.

use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension as _, Row};
use serde::Serialize;

use super::from_ms;
use super::listing::{where_clause, Filter, Page};

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
pub fn list(conn: &Connection, filter: &Filter) -> rusqlite::Result<Vec<DeliveryRow>> {
    let (terms, mut values) = filter.terms("received_at", true);
    let clause = where_clause(&terms);
    values.push(SqlValue::Integer(filter.limit()));
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries {clause} ORDER BY seq DESC LIMIT ?");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), delivery_row_from)?;
    rows.collect()
}

/// The deliveries of one upload, in the order received.
pub fn timeline(conn: &Connection, study: &str, upload: &str) -> rusqlite::Result<Vec<DeliveryRow>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE study_id = ?1 AND upload_id = ?2 AND event = 'upload' ORDER BY seq"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params![study, upload], delivery_row_from)?;
    rows.collect()
}

/// One delivery by its sequence number (as listed), or by its delivery id (newest first).
pub fn get(conn: &Connection, key: &str) -> rusqlite::Result<Option<DeliveryDetail>> {
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
pub fn page(conn: &Connection, q: &DeliveryQuery) -> rusqlite::Result<Page<DeliveryRow>> {
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

//! The refused-request log: bounded, newest first, for finding out why CentrePoint's
//! requests are turned away.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};
use serde::Serialize;

use super::from_ms;

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
pub fn list(conn: &Connection, limit: u32, before: Option<i64>) -> rusqlite::Result<Vec<RefusedRow>> {
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

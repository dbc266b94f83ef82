//! The receiver's status: totals kept by triggers, the latest validation handshake.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension as _, Row};
use serde::Serialize;

use super::{from_ms, to_ms};

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

/// The host the latest stored validation handshake was sent to: its forwarded host when
/// the receiver trusts a proxy's headers and one is set, else its `Host`.
pub fn last_validation_host(
    conn: &Connection,
    trust_forwarded_headers: bool,
) -> rusqlite::Result<Option<(String, DateTime<Utc>)>> {
    let row: Option<(String, i64)> = conn
        .query_row(
            "SELECT headers, received_at FROM deliveries WHERE lower(event) = 'validation' ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(row.and_then(|(headers, at)| {
        let headers: Vec<(String, String)> = serde_json::from_str(&headers).ok()?;
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.split(',').next().unwrap_or_default().trim().to_ascii_lowercase())
                .filter(|v| !v.is_empty())
        };
        let forwarded = if trust_forwarded_headers { find("x-forwarded-host") } else { None };
        Some((forwarded.or_else(|| find("host"))?, from_ms(at)))
    }))
}

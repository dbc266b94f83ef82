//! Webhook configuration: per webhook id, a label and how its deliveries authenticate.
//! Secrets are written here and read back only to verify deliveries, never to show.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension as _};
use serde::Serialize;

use super::{from_ms, to_ms};
use crate::receive::auth::{AuthMethod, AuthMode, AuthTable, Secret};

/// A webhook as shown to a person: everything except the secret.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookInfo {
    pub webhook_id: String,
    pub label: Option<String>,
    pub auth_mode: AuthMode,
    pub basic_user: Option<String>,
    pub secret_set: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Adds a webhook or replaces its authentication. A `None` label keeps the current one.
pub fn put(
    conn: &Connection,
    webhook_id: &str,
    label: Option<&str>,
    method: &AuthMethod,
) -> rusqlite::Result<()> {
    let (user, secret) = match method {
        AuthMethod::None => (None, None),
        AuthMethod::Passcode(s) | AuthMethod::Bearer(s) => (None, Some(s.expose())),
        AuthMethod::Basic { user, password } => (Some(user.as_str()), Some(password.expose())),
    };
    let now = to_ms(Utc::now());
    conn.execute(
        "INSERT INTO webhooks (webhook_id, label, auth_mode, basic_user, secret, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
         ON CONFLICT (webhook_id) DO UPDATE SET
             label = coalesce(excluded.label, label), auth_mode = excluded.auth_mode,
             basic_user = excluded.basic_user, secret = excluded.secret, updated_at = excluded.updated_at",
        params![webhook_id, label, method.mode().as_str(), user, secret, now],
    )?;
    Ok(())
}

/// Names a webhook, or clears its name with `None`.
pub fn set_label(conn: &Connection, webhook_id: &str, label: Option<&str>) -> rusqlite::Result<()> {
    conn.execute("UPDATE webhooks SET label = ?2 WHERE webhook_id = ?1", params![webhook_id, label])?;
    Ok(())
}

/// Removes a webhook; false when it was not configured.
pub fn remove(conn: &Connection, webhook_id: &str) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM webhooks WHERE webhook_id = ?1", [webhook_id])? > 0)
}

const COLUMNS: &str = "webhook_id, label, auth_mode, basic_user, secret IS NOT NULL, created_at, updated_at";

fn info_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<WebhookInfo> {
    let mode: String = row.get(2)?;
    Ok(WebhookInfo {
        webhook_id: row.get(0)?,
        label: row.get(1)?,
        auth_mode: AuthMode::parse(&mode).unwrap_or(AuthMode::None),
        basic_user: row.get(3)?,
        secret_set: row.get(4)?,
        created_at: from_ms(row.get(5)?),
        updated_at: from_ms(row.get(6)?),
    })
}

pub fn list(conn: &Connection) -> rusqlite::Result<Vec<WebhookInfo>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM webhooks ORDER BY webhook_id"))?;
    let rows = stmt.query_map([], info_from)?;
    rows.collect()
}

pub fn get(conn: &Connection, webhook_id: &str) -> rusqlite::Result<Option<WebhookInfo>> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM webhooks WHERE webhook_id = ?1"), [webhook_id], info_from)
        .optional()
}

/// A number that changes whenever any webhook is added, changed or removed.
pub fn generation(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'auth_generation'", [], |row| {
        row.get(0)
    })
}

/// Every webhook's authentication, for the receiver.
pub fn auth_table(conn: &Connection) -> rusqlite::Result<AuthTable> {
    let mut stmt = conn.prepare("SELECT webhook_id, auth_mode, basic_user, secret FROM webhooks")?;
    let rows = stmt.query_map([], |row| {
        let id: String = row.get(0)?;
        let mode: String = row.get(1)?;
        let user: Option<String> = row.get(2)?;
        let secret = row.get::<_, Option<String>>(3)?.map(Secret::new);
        let method = match (AuthMode::parse(&mode), secret) {
            (Some(AuthMode::Passcode), Some(s)) => AuthMethod::Passcode(s),
            (Some(AuthMode::Bearer), Some(s)) => AuthMethod::Bearer(s),
            (Some(AuthMode::Basic), Some(password)) => {
                AuthMethod::Basic { user: user.unwrap_or_default(), password }
            }
            (Some(AuthMode::None), _) => AuthMethod::None,
            // The schema allows no other combination. Failing here fails closed: the
            // receiver answers 503 rather than accepting deliveries it cannot check.
            _ => {
                return Err(rusqlite::Error::FromSqlConversionFailure(
                    3,
                    rusqlite::types::Type::Null,
                    format!("webhook {id} has no usable secret").into(),
                ));
            }
        };
        Ok((id, method))
    })?;
    let webhooks = rows.collect::<rusqlite::Result<_>>()?;
    Ok(AuthTable { webhooks })
}

//! Preferences a person sets from the dashboard (public URL, retention, notification
//! rules) and the names they give studies. Stored as JSON in the `settings` table.

use chrono::{DateTime, NaiveTime, Utc};
use rusqlite::{params, Connection, OptionalExtension as _};
use serde::{Deserialize, Serialize};

/// Everything the Settings page edits, apart from webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Preferences {
    /// The public URL a tunnel gives the receiver (shown; overrides the configuration file's).
    pub public_url: Option<String>,
    /// Deliveries and uploads older than this are deleted; `None` keeps everything.
    pub retention_days: Option<u32>,
    /// An upload still `started` after this long is shown (and notified) as stalled.
    pub stalled_after_minutes: u32,
    pub notifications: NotificationPrefs,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences {
            public_url: None,
            retention_days: None,
            stalled_after_minutes: 120,
            notifications: NotificationPrefs::default(),
        }
    }
}

/// Which events notify a person, and when. Used by the desktop app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationPrefs {
    pub upload_completed: bool,
    pub upload_failed: bool,
    pub upload_started: bool,
    /// Failures of the other event types (raw processing, data retrieval).
    pub other_failures: bool,
    /// A burst of deliveries is told as one notification once [`crate::notify::SETTLE_SECONDS`]
    /// pass with nothing new, or this many seconds after it began at the latest.
    pub group_window_seconds: u32,
    /// During these hours only failures (and stalled uploads) notify.
    pub quiet_hours: Option<QuietHours>,
    /// Studies that never notify.
    pub muted_studies: Vec<String>,
    /// "Subject 1042 has not synced for 3 days": once per silence episode.
    pub silent_subjects: bool,
    /// "Subject 1042: 2 valid days this week of the 4 required": once per subject-week,
    /// when the week can no longer reach the target.
    pub below_target: bool,
    /// The morning digest per study at this local time; `None` sends none.
    #[serde(with = "hh_mm_opt")]
    pub digest_at: Option<NaiveTime>,
}

impl Default for NotificationPrefs {
    fn default() -> Self {
        NotificationPrefs {
            upload_completed: true,
            upload_failed: true,
            upload_started: false,
            other_failures: true,
            group_window_seconds: 30,
            quiet_hours: None,
            muted_studies: Vec::new(),
            silent_subjects: true,
            below_target: true,
            digest_at: NaiveTime::from_hms_opt(8, 0, 0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    #[serde(with = "hh_mm")]
    pub start: NaiveTime,
    #[serde(with = "hh_mm")]
    pub end: NaiveTime,
}

mod hh_mm {
    use chrono::NaiveTime;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format("%H:%M").to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
        let text = String::deserialize(d)?;
        NaiveTime::parse_from_str(&text, "%H:%M")
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not HH:MM")))
    }
}

mod hh_mm_opt {
    use chrono::NaiveTime;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<NaiveTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::hh_mm::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => NaiveTime::parse_from_str(&text, "%H:%M")
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("{text:?} is not HH:MM"))),
        }
    }
}

/// A preference outside what cpwatch accepts; the message is for the person who typed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPreference {
    #[error("the public URL must start with https://")]
    PublicUrl,
    #[error("retention must be at least one day (or empty to keep everything)")]
    Retention,
    #[error("the stalled threshold must be between 1 minute and 7 days")]
    StalledAfter,
    #[error("the grouping window must be at most an hour")]
    GroupWindow,
}

impl Preferences {
    /// Checks values a person typed; the error says which one is wrong.
    pub fn validate(&self) -> Result<(), InvalidPreference> {
        if let Some(url) = &self.public_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2000 {
                return Err(InvalidPreference::PublicUrl);
            }
        }
        if self.retention_days == Some(0) {
            return Err(InvalidPreference::Retention);
        }
        if !(1..=10_080).contains(&self.stalled_after_minutes) {
            return Err(InvalidPreference::StalledAfter);
        }
        if self.notifications.group_window_seconds > 3600 {
            return Err(InvalidPreference::GroupWindow);
        }
        Ok(())
    }

    /// The public URL to give CentrePoint: the one set in Settings, else the configured one.
    pub fn public_url_or(&self, configured: Option<&str>) -> Option<String> {
        self.public_url.clone().or_else(|| configured.map(str::to_string))
    }
}

const PREFERENCES: &str = "preferences";
const DESKTOP_STATE: &str = "desktop_state";

/// A JSON value kept under `key`; `None` when absent or written in a shape this version
/// does not read (then defaults are the safe reading).
pub(crate) fn get_json<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    key: &str,
) -> rusqlite::Result<Option<T>> {
    let text: Option<String> =
        conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| row.get(0)).optional()?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

pub(crate) fn put_json(conn: &Connection, key: &str, value: &impl Serialize) -> rusqlite::Result<()> {
    let text =
        serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, text],
    )?;
    Ok(())
}

pub fn preferences(conn: &Connection) -> rusqlite::Result<Preferences> {
    Ok(get_json(conn, PREFERENCES)?.unwrap_or_default())
}

pub fn set_preferences(conn: &Connection, prefs: &Preferences) -> rusqlite::Result<()> {
    put_json(conn, PREFERENCES, prefs)
}

/// What the desktop app keeps across restarts: a pause of its notifications, and when
/// the person last looked at the dashboard (failures after it are "new" in the tray).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DesktopState {
    pub paused_until: Option<DateTime<Utc>>,
    pub looked_at: Option<DateTime<Utc>>,
}

pub fn desktop_state(conn: &Connection) -> rusqlite::Result<DesktopState> {
    Ok(get_json(conn, DESKTOP_STATE)?.unwrap_or_default())
}

pub fn set_desktop_state(conn: &Connection, state: &DesktopState) -> rusqlite::Result<()> {
    put_json(conn, DESKTOP_STATE, state)
}

const REACH: &str = "reach";

/// What the running receiver last knew of its reachability (public URL, probes,
/// validation), for `cpwatch status` in another process and for the next start.
pub fn reach_status(conn: &Connection) -> rusqlite::Result<Option<serde_json::Value>> {
    get_json(conn, REACH)
}

pub fn set_reach_status(conn: &Connection, status: &serde_json::Value) -> rusqlite::Result<()> {
    put_json(conn, REACH, status)
}

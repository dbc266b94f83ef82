//! What the desktop tray shows: its look, its tooltip and the recent uploads in its
//! menu. The shell only draws this model.

use chrono::{DateTime, Local, Utc};
use rusqlite::Connection;

use crate::event::UploadStatus;
use crate::notify::Target;
use crate::store::status::{self, Counts};
use crate::store::uploads::{self, UploadRow};
use crate::store::Filter;

/// The tray icon's state, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// The receiver is not listening: nothing can arrive.
    NotListening,
    /// Uploads failed since the window was last opened.
    NewFailures,
    /// Notifications are paused.
    Paused,
    AllGood,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentUpload {
    /// The menu item's text.
    pub label: String,
    pub target: Target,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayModel {
    pub look: Look,
    pub tooltip: String,
    pub recent: Vec<RecentUpload>,
}

/// What the model is made from, read from the store by [`TrayInputs::read`].
#[derive(Debug, Clone)]
pub struct TrayInputs {
    pub counts: Counts,
    pub new_failures: i64,
    pub recent: Vec<UploadRow>,
    pub labels: std::collections::HashMap<String, String>,
}

impl TrayInputs {
    /// Reads counts, failures since `seen` (when the window was last opened) and the
    /// five most recent uploads.
    pub fn read(conn: &Connection, seen: DateTime<Utc>, now: DateTime<Utc>) -> rusqlite::Result<Self> {
        let new_failures = conn.query_row(
            "SELECT count(*) FROM uploads WHERE status = 'error' AND failed_at > ?1",
            [crate::store::to_ms(seen)],
            |row| row.get(0),
        )?;
        let mut stmt = conn.prepare("SELECT study_id, label FROM studies WHERE label IS NOT NULL")?;
        let labels =
            stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        Ok(TrayInputs {
            counts: status::counts(conn, now)?,
            new_failures,
            recent: uploads::list(conn, &Filter { limit: Some(5), ..Default::default() })?,
            labels,
        })
    }
}

pub fn model(
    inputs: &TrayInputs,
    listening: bool,
    paused_until: Option<DateTime<Utc>>,
    notifications_available: bool,
) -> TrayModel {
    let look = if !listening {
        Look::NotListening
    } else if inputs.new_failures > 0 {
        Look::NewFailures
    } else if paused_until.is_some() {
        Look::Paused
    } else {
        Look::AllGood
    };
    let c = &inputs.counts;
    let mut lines = vec![match look {
        Look::NotListening => "cpwatch: the receiver is not listening".to_string(),
        Look::NewFailures => format!(
            "cpwatch: {} new failed upload{}",
            inputs.new_failures,
            if inputs.new_failures == 1 { "" } else { "s" }
        ),
        Look::Paused | Look::AllGood => "cpwatch: all good".to_string(),
    }];
    lines.push(format!(
        "Uploads: {} completed, {} failed, {} in progress",
        c.uploads_completed, c.uploads_error, c.uploads_started
    ));
    if let Some(until) = paused_until {
        lines.push(format!("Notifications paused until {}", until.with_timezone(&Local).format("%a %H:%M")));
    }
    if !notifications_available {
        lines.push("Notifications unavailable (no notification service)".to_string());
    }
    let recent = inputs
        .recent
        .iter()
        .map(|u| {
            let study =
                inputs.labels.get(&u.study_id).cloned().unwrap_or_else(|| format!("Study {}", u.study_id));
            let status = match u.state.status {
                UploadStatus::Started => "In progress",
                UploadStatus::Completed => "Completed",
                UploadStatus::Error => "Failed",
            };
            let subject =
                u.state.subject_id.as_deref().map_or_else(String::new, |s| format!(", subject {s}"));
            RecentUpload {
                label: format!("{status}: {study}{subject}, upload {}", u.upload_id),
                target: Target::Upload { study_id: u.study_id.clone(), upload_id: u.upload_id.clone() },
            }
        })
        .collect();
    TrayModel { look, tooltip: lines.join("\n"), recent }
}

/// Everything the tray shows: the model, and the states of the menu's Resume and Start
/// at login items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub model: TrayModel,
    pub paused: bool,
    pub start_at_login: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(new_failures: i64) -> TrayInputs {
        TrayInputs {
            counts: Counts {
                deliveries: 10,
                duplicates: 0,
                flagged: 0,
                last_delivery_at: None,
                uploads_started: 1,
                uploads_completed: 7,
                uploads_error: 2,
                refused_last_day: 0,
                studies: 1,
                subjects: 3,
                last_validation: None,
            },
            new_failures,
            recent: Vec::new(),
            labels: Default::default(),
        }
    }

    #[test]
    fn the_look_shows_the_most_urgent_state() {
        let paused = Some(Utc::now());
        assert_eq!(model(&inputs(2), false, paused, true).look, Look::NotListening);
        assert_eq!(model(&inputs(2), true, paused, true).look, Look::NewFailures);
        assert_eq!(model(&inputs(0), true, paused, true).look, Look::Paused);
        assert_eq!(model(&inputs(0), true, None, true).look, Look::AllGood);
    }

    #[test]
    fn the_tooltip_gives_the_counts() {
        let tip = model(&inputs(2), true, None, false).tooltip;
        assert!(tip.contains("2 new failed uploads"), "{tip}");
        assert!(tip.contains("7 completed, 2 failed, 1 in progress"), "{tip}");
        assert!(tip.contains("Notifications unavailable"), "{tip}");
    }
}

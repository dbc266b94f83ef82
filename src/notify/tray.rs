//! What the desktop tray shows: its look, its tooltip, and its menu (every action, the
//! recent uploads), and what a person is told after its test delivery. The shell only
//! draws this model and runs the actions.

use chrono::{DateTime, Local, NaiveTime, TimeZone, Utc};
use rusqlite::Connection;

use crate::emulator::send;
use crate::event::UploadStatus;
use crate::notify::{Notice, Target, Urgency};
use crate::reach::{ReachStatus, State};
use crate::store::status::{self, Counts};
use crate::store::studies;
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
        Ok(TrayInputs {
            counts: status::counts(conn, now)?,
            new_failures: uploads::failed_since(conn, seen)?,
            recent: uploads::list(conn, &Filter { limit: Some(5), ..Default::default() })?,
            labels: studies::labels(conn)?,
        })
    }
}

pub fn model(
    inputs: &TrayInputs,
    listening: bool,
    reach: Option<&ReachStatus>,
    paused_until: Option<DateTime<Utc>>,
    notifications_available: bool,
) -> TrayModel {
    let unreachable = reach.filter(|r| r.reachability.state == State::Unreachable);
    let look = if !listening || unreachable.is_some() {
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
        Look::NotListening if !listening => "cpwatch: the receiver is not listening".to_string(),
        Look::NotListening => format!(
            "cpwatch: CentrePoint cannot reach cpwatch: {}",
            unreachable
                .and_then(|r| r.reachability.reason.as_deref())
                .unwrap_or("the public URL does not answer")
        ),
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
    if let Some(change) = reach.and_then(|r| r.url_change.as_ref()) {
        lines.push(format!(
            "New webhook URL {}: set it in the CentrePoint portal and press Validate",
            change.url
        ));
    }
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

/// Menu item ids (the tray's D-Bus menu shows the labels; these are what a click sends).
pub mod ids {
    pub const OPEN: &str = "open-dashboard";
    /// Followed by the dashboard route of the upload.
    pub const UPLOAD_PREFIX: &str = "upload:";
    pub const PAUSE_HOUR: &str = "pause-hour";
    pub const PAUSE_TOMORROW: &str = "pause-until-tomorrow";
    pub const RESUME: &str = "resume";
    pub const COPY_URL: &str = "copy-webhook-url";
    pub const TEST_DELIVERY: &str = "send-test-delivery";
    pub const START_AT_LOGIN: &str = "start-at-login";
    pub const QUIT: &str = "quit";
}

/// One item of the tray's menu; labels are plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuItem {
    /// Text that is not an action: the tooltip's lines, a heading.
    Label(String),
    Action {
        id: String,
        label: String,
        enabled: bool,
    },
    Check {
        id: String,
        label: String,
        checked: bool,
    },
    Separator,
}

/// The hour "until tomorrow" pauses to, local time.
const MORNING: u32 = 8;

impl View {
    /// The tray's menu. It carries every action, since on Linux clicks on the icon itself
    /// do not reach the app; its first lines repeat the tooltip, for panels that show no
    /// tooltips.
    pub fn menu(&self) -> Vec<MenuItem> {
        let action =
            |id: &str, label: &str, enabled| MenuItem::Action { id: id.into(), label: label.into(), enabled };
        let mut items: Vec<MenuItem> =
            self.model.tooltip.lines().map(|line| MenuItem::Label(line.into())).collect();
        items.extend([MenuItem::Separator, action(ids::OPEN, "Open dashboard", true), MenuItem::Separator]);
        items.push(MenuItem::Label("Recent uploads".into()));
        if self.model.recent.is_empty() {
            items.push(MenuItem::Label("No uploads yet".into()));
        }
        for upload in &self.model.recent {
            items.push(action(
                &format!("{}{}", ids::UPLOAD_PREFIX, upload.target.route()),
                &upload.label,
                true,
            ));
        }
        items.extend([
            MenuItem::Separator,
            action(ids::PAUSE_HOUR, "Pause notifications for 1 hour", true),
            action(ids::PAUSE_TOMORROW, &format!("Pause notifications until tomorrow {MORNING:02}:00"), true),
            action(ids::RESUME, "Resume notifications", self.paused),
            MenuItem::Separator,
            action(ids::COPY_URL, "Copy webhook URL", true),
            action(ids::TEST_DELIVERY, "Send a test delivery", true),
            MenuItem::Check {
                id: ids::START_AT_LOGIN.into(),
                label: "Start at login".into(),
                checked: self.start_at_login,
            },
            MenuItem::Separator,
            action(ids::QUIT, "Quit cpwatch", true),
        ]);
        items
    }
}

/// The next `MORNING` o'clock in `now`'s time zone, strictly after `now`: "until
/// tomorrow" from the evening, and until this morning after midnight.
pub fn next_morning<Tz: TimeZone>(now: &DateTime<Tz>) -> DateTime<Utc> {
    let morning = NaiveTime::from_hms_opt(MORNING, 0, 0).unwrap_or_default();
    let mut day = now.date_naive();
    if now.time() >= morning {
        day = day.succ_opt().unwrap_or(day);
    }
    now.timezone()
        .from_local_datetime(&day.and_time(morning))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        // 08:00 skipped by a clock change: half a day is as good a reading of "tomorrow".
        .unwrap_or_else(|| now.with_timezone(&Utc) + chrono::Duration::hours(12))
}

/// What a person is told after "Send a test delivery"; a click opens the upload it made.
pub fn test_feedback(result: Result<send::TestSent, send::TestDeliveryError>) -> Notice {
    let (title, body, urgency, target) = match result {
        Ok(sent) if sent.outcome.ok() => (
            "Test delivery received",
            format!(
                "The receiver stored upload {} in study {} (webhook {}, answered in {} ms). Its notification follows, as for any completed upload.",
                sent.upload_id,
                sent.study_id,
                sent.webhook_id,
                sent.outcome.latency.as_millis()
            ),
            Urgency::Normal,
            Target::Upload { study_id: sent.study_id, upload_id: sent.upload_id },
        ),
        Ok(sent) => (
            "Test delivery refused",
            format!(
                "The receiver answered {} for webhook {}: {}. Check the webhook's authentication in Settings.",
                sent.outcome.status.map_or_else(|| "nothing".to_string(), |s| s.to_string()),
                sent.webhook_id,
                sent.outcome.answer
            ),
            Urgency::Critical,
            Target::Refused,
        ),
        Err(e) => ("Test delivery not sent", e.to_string(), Urgency::Critical, Target::Overview),
    };
    Notice { title: title.into(), body, urgency, target, count: 1 }
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
        assert_eq!(model(&inputs(2), false, None, paused, true).look, Look::NotListening);
        assert_eq!(model(&inputs(2), true, None, paused, true).look, Look::NewFailures);
        assert_eq!(model(&inputs(0), true, None, paused, true).look, Look::Paused);
        assert_eq!(model(&inputs(0), true, None, None, true).look, Look::AllGood);
    }

    #[test]
    fn the_tooltip_gives_the_counts() {
        let tip = model(&inputs(2), true, None, None, false).tooltip;
        assert!(tip.contains("2 new failed uploads"), "{tip}");
        assert!(tip.contains("7 completed, 2 failed, 1 in progress"), "{tip}");
        assert!(tip.contains("Notifications unavailable"), "{tip}");
    }

    /// The label and enabled state of the menu's action `id`.
    fn action(menu: &[MenuItem], id: &str) -> Option<(String, bool)> {
        menu.iter().find_map(|item| match item {
            MenuItem::Action { id: this, label, enabled } if this == id => Some((label.clone(), *enabled)),
            _ => None,
        })
    }

    #[test]
    fn the_menu_repeats_the_tooltip_then_carries_every_action() {
        let view =
            View { model: model(&inputs(0), true, None, None, true), paused: false, start_at_login: false };
        let menu = view.menu();
        let tooltip: Vec<MenuItem> = view.model.tooltip.lines().map(|l| MenuItem::Label(l.into())).collect();
        assert_eq!(
            menu[..tooltip.len()],
            tooltip[..],
            "the tooltip's lines first, for panels without tooltips"
        );
        assert!(menu.contains(&MenuItem::Label("No uploads yet".into())), "{menu:?}");
        for (id, label) in [
            (ids::OPEN, "Open dashboard"),
            (ids::PAUSE_HOUR, "Pause notifications for 1 hour"),
            (ids::PAUSE_TOMORROW, "Pause notifications until tomorrow 08:00"),
            (ids::COPY_URL, "Copy webhook URL"),
            (ids::TEST_DELIVERY, "Send a test delivery"),
            (ids::QUIT, "Quit cpwatch"),
        ] {
            assert_eq!(action(&menu, id), Some((label.to_string(), true)), "{id}");
        }
        assert_eq!(
            action(&menu, ids::RESUME),
            Some(("Resume notifications".into(), false)),
            "off unless paused"
        );
        let unchecked = MenuItem::Check {
            id: ids::START_AT_LOGIN.into(),
            label: "Start at login".into(),
            checked: false,
        };
        assert!(menu.contains(&unchecked), "{menu:?}");
        assert_eq!(
            menu.last(),
            Some(&MenuItem::Action { id: ids::QUIT.into(), label: "Quit cpwatch".into(), enabled: true })
        );
    }

    #[test]
    fn the_menu_follows_the_pause_start_at_login_and_recent_uploads() {
        let mut model = model(&inputs(0), true, None, Some(Utc::now()), true);
        model.recent = vec![RecentUpload {
            label: "Failed: Sleep & Rest, upload 85045".into(),
            target: Target::Upload { study_id: "189".into(), upload_id: "85045".into() },
        }];
        let menu = View { model, paused: true, start_at_login: true }.menu();
        assert_eq!(
            action(&menu, ids::RESUME),
            Some(("Resume notifications".into(), true)),
            "on while paused"
        );
        assert!(menu.iter().any(|item| matches!(item, MenuItem::Check { checked: true, .. })), "{menu:?}");
        assert_eq!(
            action(&menu, "upload:#/uploads/189/85045"),
            Some(("Failed: Sleep & Rest, upload 85045".into(), true)),
            "an upload opens its detail"
        );
        assert!(!menu.contains(&MenuItem::Label("No uploads yet".into())));
    }

    fn at(text: &str) -> DateTime<chrono::FixedOffset> {
        DateTime::parse_from_rfc3339(text).expect("time")
    }

    #[test]
    fn until_tomorrow_means_the_next_eight_oclock_local_time() {
        let evening = at("2026-11-26T21:30:00+01:00");
        assert_eq!(next_morning(&evening), at("2026-11-27T08:00:00+01:00"));
        let after_midnight = at("2026-11-27T01:10:00+01:00");
        assert_eq!(next_morning(&after_midnight), at("2026-11-27T08:00:00+01:00"));
        let at_eight = at("2026-11-27T08:00:00+01:00");
        assert_eq!(next_morning(&at_eight), at("2026-11-28T08:00:00+01:00"));
    }

    #[test]
    fn a_refused_test_delivery_is_told_as_a_failure() {
        let outcome = send::Outcome {
            delivery_id: "d1".into(),
            status: Some(401),
            answer: "signature does not match".into(),
            attempts: 1,
            latency: std::time::Duration::from_millis(3),
            echo_ok: None,
        };
        let sent = |outcome: send::Outcome| send::TestSent {
            webhook_id: "15".into(),
            study_id: "test".into(),
            upload_id: "test-1".into(),
            outcome,
        };
        let told = test_feedback(Ok(sent(outcome.clone())));
        assert_eq!(told.urgency, Urgency::Critical);
        assert_eq!(told.target.route(), "#/deliveries?tab=refused");
        assert!(told.body.contains("401") && told.body.contains("signature does not match"), "{}", told.body);
        let fine = send::Outcome { status: Some(200), ..outcome };
        let told = test_feedback(Ok(sent(fine)));
        assert_eq!(told.urgency, Urgency::Normal);
        assert_eq!(told.title, "Test delivery received");
        assert_eq!(told.target.route(), "#/uploads/test/test-1", "a click opens the upload it made");
        let unsent = test_feedback(Err(send::SendError::Invalid("connection refused".into()).into()));
        assert_eq!((unsent.urgency, unsent.target.route().as_str()), (Urgency::Critical, "#/overview"));
    }
}

//! The desktop app's one loop: it wakes on a committed delivery, on a [`Control`]
//! command, or at the next deadline the notification policy gives (a group to release, an
//! upload about to stall, a pause ending), never on a timer of its own, so an idle app
//! uses no CPU. Each wake feeds the [`Notifier`], has the [`Desktop`] show its notices
//! and draw the tray from the tray model, and tells the dashboard's [`DesktopLink`] the
//! app's state. What a wake does is plain code with the time passed in ([`State`]);
//! [`Watcher::run`] only waits for the next one.

use std::sync::Arc;

use chrono::{DateTime, Duration, FixedOffset, Local, Offset as _, Utc};
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::dashboard::{DesktopLink, DesktopSettings};
use crate::notify::tray::{self, TrayInputs, View};
use crate::notify::{Notice, Notifier};
use crate::store::settings::{self, DesktopState, Preferences};
use crate::store::uploads::{self, UploadRow};
use crate::store::{Filter, LiveEvent, ReadPool, StoreError};

/// What the loop shows its wakes on; the desktop shell implements it. Both are called on
/// the loop's task and must not wait on the desktop.
pub trait Desktop: Send + Sync + 'static {
    /// Shows a notice as a desktop notification.
    fn notify(&self, notice: &Notice);
    /// Draws the tray.
    fn draw(&self, view: View);
}

/// What the rest of the app tells the loop.
#[derive(Debug)]
pub enum Control {
    /// Pause notifications until then (from the tray).
    Pause(DateTime<Utc>),
    Resume,
    /// The person looked at the dashboard: failures before now are no longer new.
    Looked,
    /// Whether a notification server answers.
    Notifications(bool),
    /// The receiver stopped listening.
    NotListening,
    /// Something the tray shows changed outside the loop (start at login).
    Redraw,
    /// Show this notice (the app's own, e.g. after a test delivery).
    Tell(Notice),
}

impl Control {
    /// Whether it changes what is kept across restarts.
    fn changes_kept(&self) -> bool {
        matches!(self, Control::Pause(_) | Control::Resume | Control::Looked)
    }
}

/// What one wake reads from the store.
#[derive(Debug, Clone)]
struct Snapshot {
    prefs: Preferences,
    inputs: TrayInputs,
    /// Uploads still `started`, for stall detection.
    started: Vec<UploadRow>,
}

impl Snapshot {
    fn read(
        conn: &rusqlite::Connection,
        seen: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let started = Filter { status: Some("started".into()), ..Default::default() };
        Ok(Snapshot {
            prefs: settings::preferences(conn)?,
            inputs: TrayInputs::read(conn, seen, now)?,
            started: uploads::list(conn, &started)?,
        })
    }
}

/// What one wake gives: notices to show, the tray to draw, what the dashboard shows of
/// the app.
#[derive(Debug)]
struct Woken {
    notices: Vec<Notice>,
    view: View,
    status: serde_json::Value,
}

/// What the loop knows between wakes, and the rules of a wake.
#[derive(Debug)]
struct State {
    notifier: Notifier,
    /// When the person last looked at the dashboard.
    seen: DateTime<Utc>,
    listening: bool,
    /// `None` until the notification thread has probed the server.
    notifications: Option<bool>,
    started: Vec<UploadRow>,
    stall_after: Duration,
    /// The time the last wake handled everything due by.
    woke_at: DateTime<Utc>,
}

impl State {
    /// Failures from `since` on are new, until the person looks.
    fn new(since: DateTime<Utc>) -> Self {
        let prefs = Preferences::default();
        State {
            notifier: Notifier::new(prefs.notifications.clone(), local_offset()),
            seen: since,
            listening: true,
            notifications: None,
            started: Vec::new(),
            stall_after: Duration::minutes(prefs.stalled_after_minutes.into()),
            woke_at: since,
        }
    }

    /// Picks up a pause and the last look from before a restart; true when there was no
    /// look yet, so this first start is to be kept as the last look: failures from now on
    /// are new until looked at, also across restarts before the first look.
    fn restore(&mut self, kept: &DesktopState, now: DateTime<Utc>) -> bool {
        if let Some(until) = kept.paused_until.filter(|until| *until > now) {
            tracing::info!(
                "notifications stay paused until {}",
                until.with_timezone(&Local).format("%a %H:%M")
            );
            self.notifier.pause_until(until);
        }
        match kept.looked_at {
            Some(looked) => {
                self.seen = looked;
                false
            }
            None => true,
        }
    }

    /// What is kept for the next start: the pause and the last look.
    fn kept(&self, now: DateTime<Utc>) -> DesktopState {
        DesktopState { paused_until: self.notifier.paused_until(now), looked_at: Some(self.seen) }
    }

    /// Takes a command; returns what it asks to be told.
    fn apply(&mut self, command: Control, now: DateTime<Utc>) -> Option<Notice> {
        match command {
            Control::Pause(until) => {
                tracing::info!(
                    "notifications paused until {}",
                    until.with_timezone(&Local).format("%a %H:%M")
                );
                self.notifier.pause_until(until);
            }
            Control::Resume => {
                tracing::info!("notifications resumed");
                self.notifier.resume();
            }
            Control::Looked => self.seen = now,
            Control::Notifications(available) => self.notifications = Some(available),
            Control::NotListening => self.listening = false,
            Control::Redraw => {}
            Control::Tell(notice) => return Some(notice),
        }
        None
    }

    /// One wake at `now`: feeds the policy `events`, releases what is due and says what to
    /// show. A wake whose store read failed shows nothing (the next wake retries), but
    /// still counts as handling what was due by `now`, so a store that stays unreadable
    /// does not spin the loop.
    fn wake(
        &mut self,
        events: &[LiveEvent],
        read: Result<Snapshot, StoreError>,
        start_at_login: bool,
        now: DateTime<Utc>,
        offset: FixedOffset,
    ) -> Result<Woken, StoreError> {
        self.woke_at = now;
        let snapshot = read?;
        self.notifier.set_prefs(snapshot.prefs.notifications.clone(), offset);
        self.notifier.set_labels(snapshot.inputs.labels.clone());
        self.stall_after = Duration::minutes(snapshot.prefs.stalled_after_minutes.into());
        self.started = snapshot.started;
        let mut notices: Vec<Notice> = Vec::new();
        for event in events {
            notices.extend(self.notifier.observe(event, now));
        }
        notices.extend(self.notifier.flush_due(now));
        notices.extend(self.notifier.stalled(&self.started, self.stall_after, now));
        let paused_until = self.notifier.paused_until(now);
        let available = self.notifications.unwrap_or(true);
        let model = tray::model(&snapshot.inputs, self.listening, paused_until, available);
        let status = json!({
            "notifications": match self.notifications {
                Some(true) => "available",
                Some(false) => "unavailable",
                None => "checking",
            },
            "paused_until": paused_until.map(|t| t.with_timezone(&Local).to_rfc3339()),
            "start_at_login": if start_at_login { "on" } else { "off" },
            "tray": model.tooltip.lines().next().unwrap_or_default(),
        });
        let view = View { model, paused: paused_until.is_some(), start_at_login };
        Ok(Woken { notices, view, status })
    }

    /// The next time something is due: a group to release, an upload to call stalled, a
    /// pause to end. Against the time the last wake handled, not the time it is now: a
    /// deadline that fell while that wake ran is still ahead of it, and is handled at once.
    fn next_deadline(&self) -> Option<DateTime<Utc>> {
        let after = self.woke_at;
        let stall = self.notifier.next_stall(&self.started, self.stall_after, after);
        [self.notifier.next_deadline(), stall, self.notifier.paused_until(after)]
            .into_iter()
            .flatten()
            .filter(|at| *at > after)
            .min()
    }
}

/// The loop, with what it reads from and shows on.
pub struct Watcher<D: Desktop> {
    desktop: D,
    pool: ReadPool,
    link: DesktopLink,
    /// Start at login, for the tray's check mark and the dashboard.
    settings: Arc<dyn DesktopSettings>,
    state: State,
}

impl<D: Desktop> Watcher<D> {
    /// Failures from `since` on are new to the person, until they look at the dashboard.
    pub fn new(
        desktop: D,
        pool: ReadPool,
        link: DesktopLink,
        settings: Arc<dyn DesktopSettings>,
        since: DateTime<Utc>,
    ) -> Self {
        Watcher { desktop, pool, link, settings, state: State::new(since) }
    }

    /// Runs until the control channel closes (the app ends).
    pub async fn run(
        mut self,
        live: broadcast::Receiver<LiveEvent>,
        mut control: UnboundedReceiver<Control>,
    ) {
        let mut live = Some(live);
        self.restore().await;
        self.wake(&[]).await;
        loop {
            let deadline = self.state.next_deadline();
            let sleep = async {
                match deadline {
                    Some(at) => {
                        let wait = (at - Utc::now()).to_std().unwrap_or_default();
                        tokio::time::sleep(wait).await;
                    }
                    None => std::future::pending().await,
                }
            };
            let receiving = async {
                match live.as_mut() {
                    Some(live) => live.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = receiving => match received {
                    Ok(event) => {
                        let mut batch = vec![event];
                        // A burst is handled in one wake: one read, one redraw.
                        while let Some(Ok(more)) = live.as_mut().map(|l| l.try_recv()) {
                            batch.push(more);
                        }
                        self.wake(&batch).await;
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!("missed {missed} deliveries under load: no notification for them");
                        self.wake(&[]).await;
                    }
                    Err(RecvError::Closed) => {
                        live = None;
                        self.state.apply(Control::NotListening, Utc::now());
                        self.wake(&[]).await;
                    }
                },
                command = control.recv() => match command {
                    Some(command) => {
                        let kept = command.changes_kept();
                        if let Some(notice) = self.state.apply(command, Utc::now()) {
                            self.desktop.notify(&notice);
                        }
                        if kept {
                            self.save().await;
                        }
                        self.wake(&[]).await;
                    }
                    None => return,
                },
                () = sleep => self.wake(&[]).await,
            }
        }
    }

    async fn restore(&mut self) {
        match self.pool.run(|conn| Ok(settings::desktop_state(conn)?)).await {
            Ok(kept) => {
                if self.state.restore(&kept, Utc::now()) {
                    self.save().await;
                }
            }
            Err(e) => tracing::warn!("cannot read the pause and the last look from before: {e}"),
        }
    }

    /// Keeps the pause and the last look for the next start.
    async fn save(&self) {
        let kept = self.state.kept(Utc::now());
        if let Err(e) = self.pool.run(move |conn| Ok(settings::set_desktop_state(conn, &kept)?)).await {
            tracing::warn!("cannot keep the pause and the last look for the next start: {e}");
        }
    }

    /// One wake: read the store, feed the policy, notify, redraw.
    async fn wake(&mut self, events: &[LiveEvent]) {
        let now = Utc::now();
        let seen = self.state.seen;
        let read = self.pool.run(move |conn| Snapshot::read(conn, seen, now)).await;
        let start_at_login = self.settings.start_at_login().unwrap_or(false);
        match self.state.wake(events, read, start_at_login, now, local_offset()) {
            Ok(woken) => {
                for notice in &woken.notices {
                    self.desktop.notify(notice);
                }
                self.link.set_status(woken.status);
                self.desktop.draw(woken.view);
            }
            // The store being unreadable must not stop the loop; the next wake retries.
            Err(e) => tracing::error!("cannot read the store for notifications and the tray: {e}"),
        }
    }
}

/// The local time's offset now, for the policy's quiet hours.
fn local_offset() -> FixedOffset {
    Local::now().offset().fix()
}

//! The app's one loop: it wakes on a committed delivery, on a tray action, or at the
//! next deadline the notification policy gives (a group to release, an upload about to
//! stall, a pause ending), never on a timer of its own, so an idle app uses no CPU.
//! Each wake feeds the core's [`Notifier`], sends its notices to the notification
//! thread, and redraws the tray from the core's tray model.

use std::sync::{mpsc, Arc};

use chrono::{DateTime, Duration, Local, Offset as _, Utc};
use cpwatch::dashboard::{DesktopLink, DesktopSettings as _};
use cpwatch::notify::tray::{self as core_tray, TrayInputs};
use cpwatch::notify::{Notice, Notifier};
use cpwatch::store::settings::{self, DesktopState, Preferences};
use cpwatch::store::uploads::{self, UploadRow};
use cpwatch::store::Filter;
use cpwatch::store::{LiveEvent, ReadPool, StoreError};
use serde_json::json;
use tauri::{AppHandle, Runtime};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::autostart::AtLogin;
use crate::notifications::Message;
use crate::tray::{self, View};

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
    /// Show this message (the app's own, e.g. after a test delivery).
    Tell(Message),
}

/// What one wake reads from the store.
struct Snapshot {
    prefs: Preferences,
    inputs: TrayInputs,
    /// Uploads still `started`, for stall detection.
    started: Vec<UploadRow>,
}

fn read(
    conn: &rusqlite::Connection,
    seen: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Snapshot, StoreError> {
    let started = Filter { status: Some("started".into()), ..Default::default() };
    Ok(Snapshot {
        prefs: settings::preferences(conn)?,
        inputs: TrayInputs::read(conn, seen, now)?,
        started: uploads::list(conn, &started)?,
    })
}

pub struct Watcher<R: Runtime> {
    app: AppHandle<R>,
    pool: ReadPool,
    link: DesktopLink,
    at_login: Arc<AtLogin>,
    notices: mpsc::Sender<Message>,
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

impl<R: Runtime> Watcher<R> {
    pub fn new(
        app: AppHandle<R>,
        pool: ReadPool,
        link: DesktopLink,
        at_login: Arc<AtLogin>,
        notices: mpsc::Sender<Message>,
        since: DateTime<Utc>,
    ) -> Self {
        let prefs = Preferences::default();
        Watcher {
            app,
            pool,
            link,
            at_login,
            notices,
            notifier: Notifier::new(prefs.notifications.clone(), local_offset()),
            seen: since,
            listening: true,
            notifications: None,
            started: Vec::new(),
            stall_after: Duration::minutes(prefs.stalled_after_minutes.into()),
            woke_at: since,
        }
    }

    /// Runs until the app ends.
    pub async fn run(
        mut self,
        live: broadcast::Receiver<LiveEvent>,
        mut control: UnboundedReceiver<Control>,
    ) {
        let mut live = Some(live);
        self.restore().await;
        self.wake(&[]).await;
        loop {
            // Against the time the last wake handled, not now: a deadline that fell during
            // that wake is still ahead of it, and is handled at once.
            let deadline = self.next_deadline(self.woke_at);
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
                        self.listening = false;
                        self.wake(&[]).await;
                    }
                },
                command = control.recv() => match command {
                    Some(command) => {
                        if self.apply(command) {
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

    /// Takes a command; true when it changed what is kept across restarts.
    fn apply(&mut self, command: Control) -> bool {
        let now = Utc::now();
        let kept = matches!(command, Control::Pause(_) | Control::Resume | Control::Looked);
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
            Control::Tell(message) => self.send(message),
        }
        kept
    }

    /// Picks up a pause and the last look from before a restart.
    async fn restore(&mut self) {
        match self.pool.run(|conn| Ok(settings::desktop_state(conn)?)).await {
            Ok(kept) => {
                let now = Utc::now();
                if let Some(until) = kept.paused_until.filter(|until| *until > now) {
                    tracing::info!(
                        "notifications stay paused until {}",
                        until.with_timezone(&Local).format("%a %H:%M")
                    );
                    self.notifier.pause_until(until);
                }
                match kept.looked_at {
                    Some(looked) => self.seen = looked,
                    // The first start: from now on, failures are new until looked at,
                    // also across restarts before the first look.
                    None => self.save().await,
                }
            }
            Err(e) => tracing::warn!("cannot read the pause and the last look from before: {e}"),
        }
    }

    /// Keeps the pause and the last look for the next start.
    async fn save(&self) {
        let kept =
            DesktopState { paused_until: self.notifier.paused_until(Utc::now()), looked_at: Some(self.seen) };
        if let Err(e) = self.pool.run(move |conn| Ok(settings::set_desktop_state(conn, &kept)?)).await {
            tracing::warn!("cannot keep the pause and the last look for the next start: {e}");
        }
    }

    /// The next time something is due: a group to release, an upload to call stalled, a
    /// pause to end. Only future times: what is due now was handled by this wake.
    fn next_deadline(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let stall = self.notifier.next_stall(&self.started, self.stall_after, now);
        [self.notifier.next_deadline(), stall, self.notifier.paused_until(now)]
            .into_iter()
            .flatten()
            .filter(|at| *at > now)
            .min()
    }

    /// One wake: read the store, feed the policy, notify, redraw.
    async fn wake(&mut self, events: &[LiveEvent]) {
        let now = Utc::now();
        self.woke_at = now;
        let seen = self.seen;
        match self.pool.run(move |conn| read(conn, seen, now)).await {
            Ok(snapshot) => {
                self.notifier.set_prefs(snapshot.prefs.notifications.clone(), local_offset());
                self.notifier.set_labels(snapshot.inputs.labels.clone());
                self.stall_after = Duration::minutes(snapshot.prefs.stalled_after_minutes.into());
                self.started = snapshot.started;
                let mut notices: Vec<Notice> = Vec::new();
                for event in events {
                    notices.extend(self.notifier.observe(event, now));
                }
                notices.extend(self.notifier.flush_due(now));
                notices.extend(self.notifier.stalled(&self.started, self.stall_after, now));
                for notice in &notices {
                    self.send(Message::from(notice));
                }
                self.draw(&snapshot.inputs, now);
            }
            Err(e) => {
                // The store being unreadable must not stop the loop; the next wake retries.
                tracing::error!("cannot read the store for notifications and the tray: {e}");
            }
        }
    }

    fn send(&self, message: Message) {
        if self.notices.send(message).is_err() {
            tracing::warn!("the notification thread has stopped");
        }
    }

    fn draw(&self, inputs: &TrayInputs, now: DateTime<Utc>) {
        let paused_until = self.notifier.paused_until(now);
        let available = self.notifications.unwrap_or(true);
        let model = core_tray::model(inputs, self.listening, paused_until, available);
        let start_at_login = self.at_login.start_at_login().unwrap_or(false);
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
        self.link.set_status(status);
        let view = View { model, paused: paused_until.is_some(), start_at_login };
        let app = self.app.clone();
        if let Err(e) = self.app.run_on_main_thread(move || tray::draw(&app, view)) {
            tracing::warn!("cannot redraw the tray: {e}");
        }
    }
}

/// The local time's offset now, for the policy's quiet hours.
fn local_offset() -> chrono::FixedOffset {
    Local::now().offset().fix()
}

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

use crate::compliance::StudyNews;
use crate::dashboard::{DesktopLink, DesktopSettings};
use crate::notify::compliance::{ComplianceNotices, Held, Told};
use crate::notify::reachability::ReachNotices;
use crate::notify::tray::{self, TrayInputs, View};
use crate::notify::{Notice, Notifier};
use crate::reach::{ReachHandle, ReachStatus};
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
    /// The studies' compliance, when it is due to be checked.
    news: Option<Vec<StudyNews>>,
}

impl Snapshot {
    /// With `news`, also each study's compliance as of `now` (local day by `offset`).
    fn read(
        conn: &rusqlite::Connection,
        seen: DateTime<Utc>,
        now: DateTime<Utc>,
        news: Option<FixedOffset>,
    ) -> Result<Self, StoreError> {
        let started = Filter { status: Some("started".into()), ..Default::default() };
        let news = match news {
            Some(offset) => Some(crate::store::compliance::news(
                conn,
                None,
                now.with_timezone(&offset).date_naive(),
                now,
            )?),
            None => None,
        };
        Ok(Snapshot {
            prefs: settings::preferences(conn)?,
            inputs: TrayInputs::read(conn, seen, now)?,
            started: uploads::list(conn, &started)?,
            news,
        })
    }
}

/// Where what the compliance notices told is kept across restarts.
const COMPLIANCE_TOLD: &str = "compliance_told";

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
    /// What the reachability monitor last said, and what of it has been told.
    reach: Option<ReachStatus>,
    reach_told: ReachNotices,
    compliance: ComplianceNotices,
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
            reach: None,
            reach_told: ReachNotices::since(since),
            compliance: ComplianceNotices::default(),
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
        if let Some(news) = &snapshot.news {
            let quiet = crate::notify::quiet_until(snapshot.prefs.notifications.quiet_hours, now, offset);
            let held = match (paused_until, quiet) {
                (Some(until), _) => Held::Paused(until),
                (None, Some(end)) => Held::Quiet(end),
                (None, None) => Held::No,
            };
            notices.extend(self.compliance.check(news, &snapshot.prefs.notifications, held, now, offset));
        }
        if events.iter().any(|e| matches!(e, LiveEvent::Delivery { .. })) {
            self.compliance.delivered(now);
        }
        // Past quiet hours, not past a pause: told as things stand when it ends.
        if let (Some(reach), None) = (&self.reach, paused_until) {
            notices.extend(self.reach_told.observe(reach));
        }
        let available = self.notifications.unwrap_or(true);
        let model =
            tray::model(&snapshot.inputs, self.listening, self.reach.as_ref(), paused_until, available);
        let status = json!({
            "notifications": match self.notifications {
                Some(true) => "available",
                Some(false) => "unavailable",
                None => "checking",
            },
            "paused_until": paused_until.map(|t| t.with_timezone(&Local).to_rfc3339()),
            "start_at_login": if start_at_login { "on" } else { "off" },
            "tray": model.tooltip.lines().next().unwrap_or_default(),
            "reachability": self.reach.as_ref().map(|r| r.reachability.state),
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
        let compliance = self.compliance.next_deadline();
        [self.notifier.next_deadline(), stall, self.notifier.paused_until(after), compliance]
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
    reach: Option<ReachHandle>,
    /// How far the loop's clock is ahead of the system's (zero but in tests).
    clock: Duration,
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
        Watcher {
            desktop,
            pool,
            link,
            settings,
            state: State::new(since),
            reach: None,
            clock: Duration::zero(),
        }
    }

    /// Runs the loop's clock from `now` on instead of the system's (for tests of what
    /// days and mornings bring).
    pub fn with_clock(mut self, now: DateTime<Utc>) -> Self {
        self.clock = now - Utc::now();
        self
    }

    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.clock
    }

    /// Also tells and shows what the reachability monitor finds.
    pub fn with_reach(mut self, reach: ReachHandle) -> Self {
        self.reach = Some(reach);
        self
    }

    /// Runs until the control channel closes (the app ends).
    pub async fn run(
        mut self,
        live: broadcast::Receiver<LiveEvent>,
        mut control: UnboundedReceiver<Control>,
    ) {
        let mut live = Some(live);
        let mut reach = self.reach.as_ref().map(ReachHandle::subscribe);
        if let Some(reach) = reach.as_mut() {
            self.state.reach = Some(reach.borrow_and_update().clone());
        }
        self.restore().await;
        self.wake(&[]).await;
        loop {
            let deadline = self.state.next_deadline();
            let sleep = async {
                match deadline {
                    Some(at) => {
                        let wait = (at - self.now()).to_std().unwrap_or_default();
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
            let reach_changed = async {
                match reach.as_mut() {
                    Some(r) => match r.changed().await {
                        Ok(()) => r.borrow_and_update().clone(),
                        Err(_) => std::future::pending().await,
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                status = reach_changed => {
                    self.state.reach = Some(status);
                    self.wake(&[]).await;
                }
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
                        self.state.apply(Control::NotListening, self.now());
                        self.wake(&[]).await;
                    }
                },
                command = control.recv() => match command {
                    Some(command) => {
                        let kept = command.changes_kept();
                        if let Some(notice) = self.state.apply(command, self.now()) {
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
                if self.state.restore(&kept, self.now()) {
                    self.save().await;
                }
            }
            Err(e) => tracing::warn!("cannot read the pause and the last look from before: {e}"),
        }
        let told = self.pool.run(|conn| Ok(settings::get_json::<Told>(conn, COMPLIANCE_TOLD)?)).await;
        match told {
            Ok(told) => self.state.compliance = ComplianceNotices::new(told.unwrap_or_default()),
            Err(e) => tracing::warn!("cannot read which silent subjects were told before: {e}"),
        }
    }

    /// Keeps what the compliance notices told for the next start.
    async fn save_told(&self) {
        let told = self.state.compliance.told().clone();
        if let Err(e) = self.pool.run(move |conn| Ok(settings::put_json(conn, COMPLIANCE_TOLD, &told)?)).await
        {
            tracing::warn!("cannot keep which silent subjects were told for the next start: {e}");
        }
    }

    /// Keeps the pause and the last look for the next start.
    async fn save(&self) {
        let kept = self.state.kept(self.now());
        if let Err(e) = self.pool.run(move |conn| Ok(settings::set_desktop_state(conn, &kept)?)).await {
            tracing::warn!("cannot keep the pause and the last look for the next start: {e}");
        }
    }

    /// One wake: read the store, feed the policy, notify, redraw.
    async fn wake(&mut self, events: &[LiveEvent]) {
        let now = self.now();
        let seen = self.state.seen;
        let offset = local_offset();
        let news = self.state.compliance.due(now).then_some(offset);
        let read = self.pool.run(move |conn| Snapshot::read(conn, seen, now, news)).await;
        let start_at_login = self.settings.start_at_login().unwrap_or(false);
        let told = self.state.compliance.told().clone();
        match self.state.wake(events, read, start_at_login, now, offset) {
            Ok(woken) => {
                if *self.state.compliance.told() != told {
                    self.save_told().await;
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::DesktopSettingError;
    use crate::event::upload::UploadState;
    use crate::event::{UploadEvent, UploadStatus};
    use crate::notify::tray::Look;
    use crate::store;
    use chrono::TimeZone as _;
    use tokio::sync::mpsc::{self, UnboundedSender};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 14, 0, 0).single().expect("a time")
    }

    fn secs(n: i64) -> Duration {
        Duration::seconds(n)
    }

    /// How long a group waits for more before it is told.
    fn settle() -> Duration {
        Duration::seconds(crate::notify::SETTLE_SECONDS.into())
    }

    /// A committed `upload` delivery, as the writer publishes it.
    fn delivery(upload: &str, status: &str) -> LiveEvent {
        LiveEvent::Delivery {
            seq: 1,
            delivery_id: format!("{upload}-{status}"),
            event: "upload".into(),
            webhook_id: None,
            received_at: t0(),
            study_id: Some("189".into()),
            subject_id: None,
            upload_id: Some(upload.into()),
            status: Some(status.into()),
            summary: format!("upload {upload} {status}"),
            error_message: None,
            flag: None,
            upload: None,
        }
    }

    /// An upload still `started`, as the store lists it.
    fn started(upload: &str, at: DateTime<Utc>) -> UploadRow {
        let event = UploadEvent {
            status: UploadStatus::Started,
            upload_id: upload.into(),
            study_id: "189".into(),
            subject_id: None,
            message: None,
            first_epoch_utc: None,
            last_epoch_utc: None,
            first_epoch_subject_tz: None,
            last_epoch_subject_tz: None,
        };
        let state = UploadState::new(&event, at);
        UploadRow {
            study_id: event.study_id,
            upload_id: event.upload_id,
            state,
            duration_seconds: None,
            first_seen_at: at,
            updated_at: at,
            deliveries: 1,
        }
    }

    /// What a wake reads from a new store, with groups told after `window` seconds at most.
    fn fresh(window: u32) -> Snapshot {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = store::open_in(dir.path()).expect("store");
        let mut snapshot = Snapshot::read(&conn, t0(), t0(), None).expect("a snapshot");
        snapshot.prefs.notifications.group_window_seconds = window;
        snapshot
    }

    fn wake(state: &mut State, snapshot: &Snapshot, events: &[LiveEvent], now: DateTime<Utc>) -> Woken {
        state.wake(events, Ok(snapshot.clone()), false, now, Utc.fix()).expect("a wake")
    }

    fn titles(woken: &Woken) -> Vec<&str> {
        woken.notices.iter().map(|n| n.title.as_str()).collect()
    }

    #[test]
    fn a_deadline_that_falls_during_a_wake_is_still_ahead_of_it_and_handled() {
        let snapshot = fresh(30);
        let mut state = State::new(t0());
        wake(&mut state, &snapshot, &[delivery("1", "completed")], t0());
        let settled = t0() + settle();
        assert_eq!(state.next_deadline(), Some(settled), "the lone completion is told once it settles");
        // A wake just before the deadline; the loop looks again only after it has passed.
        let woken = wake(&mut state, &snapshot, &[], settled - Duration::milliseconds(1));
        assert!(woken.notices.is_empty());
        assert_eq!(state.next_deadline(), Some(settled), "reckoned from the wake's time, not dropped");
        let late = wake(&mut state, &snapshot, &[], settled + Duration::milliseconds(300));
        assert_eq!(titles(&late), ["Upload completed: Study 189"], "handled when the loop gets to it");
        assert_eq!(state.next_deadline(), None);
    }

    #[test]
    fn a_pause_ends_with_a_wake_at_its_end() {
        let snapshot = fresh(30);
        let mut state = State::new(t0());
        let until = t0() + Duration::hours(1);
        assert!(state.apply(Control::Pause(until), t0()).is_none());
        let paused = wake(&mut state, &snapshot, &[], t0());
        assert!(paused.view.paused);
        assert_eq!(paused.view.model.look, Look::Paused);
        assert!(paused.status["paused_until"].is_string(), "{}", paused.status);
        assert_eq!(state.next_deadline(), Some(until), "the loop wakes when the pause ends");
        let over = wake(&mut state, &snapshot, &[], until);
        assert!(!over.view.paused, "the tray shows the pause is over");
        assert_eq!(over.view.model.look, Look::AllGood);
        assert!(over.status["paused_until"].is_null(), "{}", over.status);
        assert_eq!(state.next_deadline(), None);
    }

    #[test]
    fn stalls_and_group_settle_times_produce_wakes() {
        let mut snapshot = fresh(30);
        // The store's threshold is two hours: this upload stalls a minute from now.
        snapshot.started = vec![started("7", t0() - Duration::minutes(119))];
        let mut state = State::new(t0());
        wake(&mut state, &snapshot, &[delivery("1", "completed")], t0());
        assert_eq!(state.next_deadline(), Some(t0() + settle()), "the group settles first");
        wake(&mut state, &snapshot, &[delivery("2", "completed")], t0() + secs(3));
        assert_eq!(
            state.next_deadline(),
            Some(t0() + secs(3) + settle()),
            "a new member moves the settle time"
        );
        let settled = wake(&mut state, &snapshot, &[], t0() + secs(3) + settle());
        assert_eq!(titles(&settled), ["2 uploads completed in Study 189"]);
        let stall = t0() + Duration::minutes(1);
        assert_eq!(state.next_deadline(), Some(stall), "then the upload about to stall");
        let stalled = wake(&mut state, &snapshot, &[], stall);
        assert_eq!(titles(&stalled), ["Upload stalled: Study 189"]);
        assert_eq!(state.next_deadline(), None, "a stall is told once: nothing more is due");
    }

    #[test]
    fn pause_resume_and_looked_are_kept_and_restored() {
        let mut state = State::new(t0());
        let until = t0() + Duration::hours(1);
        for (command, kept) in [
            (Control::Pause(until), true),
            (Control::Resume, true),
            (Control::Looked, true),
            (Control::Notifications(false), false),
            (Control::NotListening, false),
            (Control::Redraw, false),
        ] {
            assert_eq!(command.changes_kept(), kept, "{command:?}");
        }
        state.apply(Control::Pause(until), t0());
        let looked = t0() + Duration::minutes(10);
        state.apply(Control::Looked, looked);
        let kept = state.kept(looked);
        assert_eq!(kept, DesktopState { paused_until: Some(until), looked_at: Some(looked) });

        let mut restarted = State::new(t0() + Duration::minutes(20));
        assert!(!restarted.restore(&kept, t0() + Duration::minutes(20)), "a look from before is not new");
        assert_eq!(restarted.seen, looked, "failures since that look are still new");
        assert_eq!(restarted.kept(t0() + Duration::minutes(20)), kept, "the pause goes on");
        restarted.apply(Control::Resume, t0() + Duration::minutes(21));
        assert_eq!(restarted.kept(t0() + Duration::minutes(21)).paused_until, None);

        let mut after_the_pause = State::new(until);
        after_the_pause.restore(&kept, until + secs(1));
        assert_eq!(after_the_pause.kept(until + secs(1)).paused_until, None, "a pause that ended stays over");
    }

    #[test]
    fn the_first_start_is_kept_as_the_last_look() {
        let mut state = State::new(t0());
        assert!(state.restore(&DesktopState::default(), t0() + secs(1)), "nothing kept yet: keep this start");
        assert_eq!(state.kept(t0() + secs(1)).looked_at, Some(t0()));
    }

    #[test]
    fn a_wake_that_cannot_read_the_store_shows_nothing_and_does_not_spin() {
        let snapshot = fresh(30);
        let mut state = State::new(t0());
        wake(&mut state, &snapshot, &[delivery("1", "completed")], t0());
        let failed = state.wake(&[], Err(StoreError::Closed), false, t0() + settle(), Utc.fix());
        assert!(failed.is_err());
        assert_eq!(state.next_deadline(), None, "no deadline behind the failed wake to wake for at once");
        let retried = wake(&mut state, &snapshot, &[], t0() + settle() + secs(1));
        assert_eq!(titles(&retried), ["Upload completed: Study 189"], "the next wake tells it");
    }

    #[test]
    fn the_dashboard_hears_whether_notifications_work_and_what_the_tray_says() {
        let snapshot = fresh(30);
        let mut state = State::new(t0());
        let status = |state: &mut State, on| {
            state.wake(&[], Ok(snapshot.clone()), on, t0(), Utc.fix()).expect("a wake").status
        };
        let checking = status(&mut state, false);
        assert_eq!(checking["notifications"], "checking", "before the notification thread has probed");
        assert_eq!(checking["start_at_login"], "off");
        assert_eq!(checking["tray"], "cpwatch: all good", "the tooltip's first line");
        state.apply(Control::Notifications(false), t0());
        let unavailable = status(&mut state, true);
        assert_eq!(unavailable["notifications"], "unavailable");
        assert_eq!(unavailable["start_at_login"], "on");
        state.apply(Control::Notifications(true), t0());
        assert_eq!(status(&mut state, true)["notifications"], "available");
    }

    /// What the loop showed, in order.
    #[derive(Debug)]
    enum Shown {
        Notice(String),
        Drawn(View),
    }

    struct Recorder(UnboundedSender<Shown>);

    impl Desktop for Recorder {
        fn notify(&self, notice: &Notice) {
            let _ = self.0.send(Shown::Notice(notice.body.clone()));
        }

        fn draw(&self, view: View) {
            let _ = self.0.send(Shown::Drawn(view));
        }
    }

    /// A system without an autostart directory.
    struct NoAutostart;

    impl DesktopSettings for NoAutostart {
        fn start_at_login(&self) -> Option<bool> {
            None
        }

        fn set_start_at_login(&self, _on: bool) -> Result<(), DesktopSettingError> {
            Err(DesktopSettingError::NoAutostartDirectory)
        }
    }

    /// The loop running on a store of its own.
    struct Running {
        shown: mpsc::UnboundedReceiver<Shown>,
        control: UnboundedSender<Control>,
        task: tokio::task::JoinHandle<()>,
        pool: ReadPool,
        _dir: tempfile::TempDir,
    }

    fn run(live: broadcast::Receiver<LiveEvent>, kept: &DesktopState) -> Running {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = store::open_in(dir.path()).expect("store");
        settings::set_desktop_state(&conn, kept).expect("desktop state");
        let pool = ReadPool::new(store::prepare_data_dir(dir.path()).expect("database path"));
        let (shown_tx, shown) = mpsc::unbounded_channel();
        let (control, commands) = mpsc::unbounded_channel();
        let watcher = Watcher::new(
            Recorder(shown_tx),
            pool.clone(),
            DesktopLink::default(),
            Arc::new(NoAutostart),
            t0(),
        );
        let task = tokio::spawn(watcher.run(live, commands));
        Running { shown, control, task, pool, _dir: dir }
    }

    impl Running {
        async fn next(&mut self) -> Shown {
            let next = tokio::time::timeout(std::time::Duration::from_secs(30), self.shown.recv());
            next.await.expect("the loop shows something within 30 s").expect("the loop runs")
        }

        async fn next_view(&mut self) -> View {
            match self.next().await {
                Shown::Drawn(view) => view,
                other => panic!("a drawing was due, not {other:?}"),
            }
        }

        async fn kept(&self) -> DesktopState {
            self.pool.run(|conn| Ok(settings::desktop_state(conn)?)).await.expect("desktop state")
        }

        /// Ends the loop; what it showed that was not read yet.
        async fn stop(mut self) -> Vec<Shown> {
            drop(self.control);
            self.task.await.expect("the loop ends cleanly");
            let mut rest = Vec::new();
            while let Some(shown) = self.shown.recv().await {
                rest.push(shown);
            }
            rest
        }
    }

    /// A live stream of `capacity` events, three failures already sent: the sender stays
    /// open with the caller.
    fn three_failures(capacity: usize) -> (broadcast::Sender<LiveEvent>, broadcast::Receiver<LiveEvent>) {
        let (deliveries, live) = broadcast::channel(capacity);
        for upload in ["1", "2", "3"] {
            deliveries.send(delivery(upload, "error")).expect("a subscriber");
        }
        (deliveries, live)
    }

    #[tokio::test]
    async fn a_burst_of_live_events_is_one_wake() {
        let (_deliveries, live) = three_failures(16);
        let mut running = run(live, &DesktopState::default());
        running.next_view().await;
        let mut told = Vec::new();
        for _ in 0..3 {
            match running.next().await {
                Shown::Notice(body) => told.push(body),
                other => panic!("three failures to tell, then one drawing: {other:?}"),
            }
        }
        assert_eq!(told.len(), 3, "{told:?}");
        running.next_view().await;
        let rest = running.stop().await;
        assert!(rest.is_empty(), "one wake, one drawing for the three: {rest:?}");
    }

    #[tokio::test]
    async fn a_lagged_receiver_still_wakes() {
        // Room for one: the first two are missed.
        let (_deliveries, live) = three_failures(1);
        let mut running = run(live, &DesktopState::default());
        running.next_view().await;
        running.next_view().await;
        assert!(
            matches!(running.next().await, Shown::Notice(body) if body.starts_with("Upload 3:")),
            "after the missed ones, the one it kept is told"
        );
        running.next_view().await;
        assert!(running.stop().await.is_empty());
    }

    #[tokio::test]
    async fn a_closed_live_stream_marks_the_receiver_not_listening() {
        let (deliveries, live) = broadcast::channel::<LiveEvent>(1);
        drop(deliveries);
        let mut running = run(live, &DesktopState::default());
        running.next_view().await;
        assert_eq!(running.next_view().await.model.look, Look::NotListening);
        running.control.send(Control::Redraw).expect("the loop runs");
        assert_eq!(running.next_view().await.model.look, Look::NotListening, "and stays so");
        assert!(running.stop().await.is_empty());
    }

    #[tokio::test]
    async fn a_pause_and_the_last_look_are_saved_and_restored() {
        let (_deliveries, live) = broadcast::channel(1);
        let mut running = run(live, &DesktopState::default());
        assert!(!running.next_view().await.paused);
        let first = running.kept().await;
        assert_eq!(first, DesktopState { paused_until: None, looked_at: Some(t0()) }, "the first start");
        let until = Utc::now() + Duration::hours(1);
        running.control.send(Control::Pause(until)).expect("the loop runs");
        assert!(running.next_view().await.paused);
        assert_eq!(running.kept().await.paused_until, Some(until));
        running.control.send(Control::Looked).expect("the loop runs");
        running.next_view().await;
        let kept = running.kept().await;
        assert!(kept.looked_at > Some(t0()), "{kept:?}");
        assert!(running.stop().await.is_empty());

        let (_deliveries, live) = broadcast::channel(1);
        let mut restarted = run(live, &kept);
        assert!(restarted.next_view().await.paused, "the pause goes on after a restart");
        assert_eq!(restarted.kept().await, kept);
        restarted.control.send(Control::Resume).expect("the loop runs");
        assert!(!restarted.next_view().await.paused);
        assert_eq!(restarted.kept().await.paused_until, None);
        assert!(restarted.stop().await.is_empty());
    }

    #[tokio::test]
    async fn a_notice_the_app_tells_is_shown_and_the_tray_redrawn() {
        let (_deliveries, live) = broadcast::channel(1);
        let mut running = run(live, &DesktopState::default());
        running.next_view().await;
        let notice = Notice {
            title: "Test delivery not sent".into(),
            body: "connection refused".into(),
            urgency: crate::notify::Urgency::Critical,
            target: crate::notify::Target::Overview,
            count: 1,
        };
        running.control.send(Control::Tell(notice)).expect("the loop runs");
        assert!(matches!(running.next().await, Shown::Notice(body) if body == "connection refused"));
        running.next_view().await;
        assert!(running.stop().await.is_empty());
    }

    /// Study 189's news with one subject silent since four days before `t0`, as of `now`.
    fn silent_news(now: DateTime<Utc>) -> Vec<StudyNews> {
        let quiet = crate::compliance::SubjectInput {
            on_roster: true,
            last_upload_at: Some(t0() - Duration::days(4)),
            ..crate::compliance::SubjectInput::new("1042")
        };
        let p = crate::store::protocols::Protocol { valid_days_per_week: 1, ..Default::default() };
        let compliance = crate::compliance::study("189", &p, &[quiet], now.date_naive(), now);
        vec![StudyNews { name: "Sleep study".into(), compliance, uploads_yesterday: 0, failed_yesterday: 0 }]
    }

    #[test]
    fn a_silent_subject_is_told_when_the_studies_are_read_and_waits_out_a_pause() {
        let mut snapshot = fresh(30);
        snapshot.prefs.notifications.digest_at = None;
        snapshot.news = Some(silent_news(t0()));
        let mut state = State::new(t0());
        assert!(state.compliance.due(t0()), "the first wake reads the studies");
        let until = t0() + Duration::minutes(10);
        state.apply(Control::Pause(until), t0());
        assert!(wake(&mut state, &snapshot, &[], t0()).notices.is_empty(), "held by the pause");
        assert_eq!(state.next_deadline(), Some(until), "read again when the pause ends");
        assert!(!state.compliance.due(t0() + secs(1)));
        snapshot.news = Some(silent_news(until));
        let told = wake(&mut state, &snapshot, &[], until);
        assert_eq!(titles(&told), ["Subject 1042 has not synced for 4 days"]);
        assert_eq!(told.notices[0].target.route(), "#/subjects/189/1042", "a click opens the subject");
        let later = until + Duration::minutes(1);
        snapshot.news = Some(silent_news(later));
        assert!(wake(&mut state, &snapshot, &[delivery("1", "started")], later).notices.is_empty(), "once");
        assert_eq!(
            state.compliance.next_deadline(),
            Some(later + Duration::minutes(1)),
            "a delivery has the studies read again a minute later"
        );
    }

    fn unreachable() -> ReachStatus {
        let mut status = ReachStatus::initial(300, t0());
        status.public_url = Some(crate::reach::PublicUrl::new(
            "https://a.trycloudflare.com",
            "/webhook",
            crate::reach::Source::Cloudflared,
        ));
        status.reachability = crate::reach::Reachability {
            state: crate::reach::State::Unreachable,
            since: Some(t0()),
            reason: Some("a.trycloudflare.com refuses connections".into()),
            cause: Some(crate::reach::Cause::ConnectionRefused),
            checked_at: Some(t0()),
        };
        status
    }

    #[test]
    fn unreachable_is_told_in_quiet_hours_held_by_a_pause_and_shown_in_the_tray() {
        let mut snapshot = fresh(30);
        // Quiet all day: only what breaks through them is told.
        snapshot.prefs.notifications.quiet_hours = Some(settings::QuietHours {
            start: chrono::NaiveTime::from_hms_opt(0, 0, 0).expect("a time"),
            end: chrono::NaiveTime::from_hms_opt(23, 59, 0).expect("a time"),
        });
        let mut state = State::new(t0());
        state.reach = Some(unreachable());
        let woken = wake(&mut state, &snapshot, &[], t0());
        assert_eq!(titles(&woken), ["CentrePoint cannot reach cpwatch"], "past quiet hours");
        assert_eq!(woken.view.model.look, Look::NotListening, "the tray looks as when not listening");
        assert!(
            woken
                .view
                .model
                .tooltip
                .starts_with("cpwatch: CentrePoint cannot reach cpwatch: a.trycloudflare.com refuses"),
            "{}",
            woken.view.model.tooltip
        );
        assert!(wake(&mut state, &snapshot, &[], t0() + secs(1)).notices.is_empty(), "told once");

        // A pause holds the recovery back; its end tells how things stand then.
        let mut state = State::new(t0());
        state.apply(Control::Pause(t0() + Duration::hours(1)), t0());
        state.reach = Some(unreachable());
        assert!(wake(&mut state, &snapshot, &[], t0()).notices.is_empty(), "held by the pause");
        let over = wake(&mut state, &snapshot, &[], t0() + Duration::hours(1));
        assert_eq!(titles(&over), ["CentrePoint cannot reach cpwatch"], "told when the pause ends");
    }
}

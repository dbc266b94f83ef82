//! The tray icon: draws the core's [`TrayModel`] (look, tooltip, recent uploads) and
//! carries every action in its menu, since on Linux clicks on the icon itself do not
//! reach the app. The menu's first lines repeat the tooltip, for panels that show no
//! tooltips.

use std::sync::Mutex;

use chrono::{DateTime, Local, NaiveTime, TimeZone, Utc};
use cpwatch::dashboard::DesktopSettings as _;
use cpwatch::emulator::send::{self, TestDelivery};
use cpwatch::notify::tray::{Look, View};
use cpwatch::notify::{Notice, Target, Urgency};
use cpwatch::store::{settings, webhooks, StoreError};
use tauri::menu::{CheckMenuItem, IsMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager as _, Runtime};
use tauri_plugin_clipboard_manager::ClipboardExt as _;

use crate::{icons, window, Control, Shell};

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

/// The tray's id; also names its D-Bus item.
const TRAY_ID: &str = "cpwatch";

/// The hour "until tomorrow" pauses to, local time.
const MORNING: u32 = 8;

/// The tray icon (absent while no tray host can be reached) and what it shows.
pub struct Tray<R: Runtime> {
    drawn: Mutex<Drawn<R>>,
}

struct Drawn<R: Runtime> {
    icon: Option<TrayIcon<R>>,
    /// The look the icon shows.
    look: Option<Look>,
    menu: Option<Menu<R>>,
    view: Option<View>,
}

impl<R: Runtime> Default for Tray<R> {
    fn default() -> Self {
        Tray { drawn: Mutex::new(Drawn { icon: None, look: None, menu: None, view: None }) }
    }
}

impl<R: Runtime> Tray<R> {
    /// The menu last drawn.
    pub fn menu(&self) -> Option<Menu<R>> {
        self.drawn.lock().ok().and_then(|d| d.menu.clone())
    }

    /// What was last drawn.
    pub fn view(&self) -> Option<View> {
        self.drawn.lock().ok().and_then(|d| d.view.clone())
    }
}

/// When to try again to put the icon in the tray after the panel did not take it: at
/// login the app may start before the panel. Bounded: after these, the app stays
/// without a tray icon (the window and notifications still work).
const RETRY_AFTER_SECONDS: [u64; 8] = [1, 2, 4, 8, 15, 30, 60, 120];

/// Puts the icon in the tray, trying again for a while if no tray host takes it yet.
pub fn place_icon<R: Runtime>(app: &AppHandle<R>) {
    if try_place_icon(app) {
        return;
    }
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        for seconds in RETRY_AFTER_SECONDS {
            tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
            let (placed_tx, placed) = tokio::sync::oneshot::channel();
            let handle = app.clone();
            let scheduled = app.run_on_main_thread(move || {
                let _ = placed_tx.send(try_place_icon(&handle));
            });
            if scheduled.is_err() || placed.await.unwrap_or(true) {
                return;
            }
        }
        tracing::warn!("no tray took the icon; cpwatch runs without one (start cpwatch-desktop again to show the window)");
    });
}

/// One attempt; on success the icon shows the last drawn view at once.
fn try_place_icon<R: Runtime>(app: &AppHandle<R>) -> bool {
    let Some(tray) = app.try_state::<Tray<R>>() else { return true };
    let built = TrayIconBuilder::with_id(TRAY_ID)
        .icon(icons::image(Look::AllGood))
        .title("cpwatch")
        .tooltip("cpwatch: starting")
        .build(app);
    let icon = match built {
        Ok(icon) => icon,
        Err(e) => {
            tracing::info!("the tray does not take the icon yet: {e}");
            return false;
        }
    };
    let view = match tray.drawn.lock() {
        Ok(mut drawn) => {
            drawn.icon = Some(icon);
            drawn.look = Some(Look::AllGood);
            drawn.view.clone()
        }
        Err(_) => None,
    };
    if let Some(view) = view {
        draw(app, view);
    }
    true
}

/// Draws `view`: menu always, tooltip always, icon when the look changed.
pub fn draw<R: Runtime>(app: &AppHandle<R>, view: View) {
    let Some(tray) = app.try_state::<Tray<R>>() else { return };
    let menu = match menu(app, &view) {
        Ok(menu) => menu,
        Err(e) => {
            tracing::error!("cannot build the tray menu: {e}");
            return;
        }
    };
    let Ok(mut drawn) = tray.drawn.lock() else { return };
    if let Some(icon) = &drawn.icon {
        let mut results =
            vec![icon.set_menu(Some(menu.clone())), icon.set_tooltip(Some(&view.model.tooltip))];
        if drawn.look != Some(view.model.look) {
            results.push(icon.set_icon(Some(icons::image(view.model.look))));
        }
        for result in results {
            if let Err(e) = result {
                tracing::warn!("cannot update the tray icon: {e}");
            }
        }
    }
    drawn.look = Some(view.model.look);
    drawn.menu = Some(menu);
    drawn.view = Some(view);
}

/// Menus read `&` as a mnemonic marker: text from outside shows it as itself.
fn literal(text: &str) -> String {
    text.replace('&', "&&")
}

/// The tray menu for `view`.
pub fn menu<R: Runtime>(app: &AppHandle<R>, view: &View) -> tauri::Result<Menu<R>> {
    let mut items: Vec<Box<dyn IsMenuItem<R>>> = Vec::new();
    let label = |text: &str| MenuItem::new(app, literal(text), false, None::<&str>);
    let action =
        |id: &str, text: &str, enabled: bool| MenuItem::with_id(app, id, text, enabled, None::<&str>);
    for line in view.model.tooltip.lines() {
        items.push(Box::new(label(line)?));
    }
    items.push(Box::new(PredefinedMenuItem::separator(app)?));
    items.push(Box::new(action(ids::OPEN, "Open dashboard", true)?));
    items.push(Box::new(PredefinedMenuItem::separator(app)?));
    items.push(Box::new(label("Recent uploads")?));
    if view.model.recent.is_empty() {
        items.push(Box::new(label("No uploads yet")?));
    }
    for upload in &view.model.recent {
        let id = format!("{}{}", ids::UPLOAD_PREFIX, upload.target.route());
        items.push(Box::new(action(&id, &literal(&upload.label), true)?));
    }
    items.push(Box::new(PredefinedMenuItem::separator(app)?));
    items.push(Box::new(action(ids::PAUSE_HOUR, "Pause notifications for 1 hour", true)?));
    items.push(Box::new(action(
        ids::PAUSE_TOMORROW,
        &format!("Pause notifications until tomorrow {MORNING:02}:00"),
        true,
    )?));
    items.push(Box::new(action(ids::RESUME, "Resume notifications", view.paused)?));
    items.push(Box::new(PredefinedMenuItem::separator(app)?));
    items.push(Box::new(action(ids::COPY_URL, "Copy webhook URL", true)?));
    items.push(Box::new(action(ids::TEST_DELIVERY, "Send a test delivery", true)?));
    items.push(Box::new(CheckMenuItem::with_id(
        app,
        ids::START_AT_LOGIN,
        "Start at login",
        true,
        view.start_at_login,
        None::<&str>,
    )?));
    items.push(Box::new(PredefinedMenuItem::separator(app)?));
    items.push(Box::new(action(ids::QUIT, "Quit cpwatch", true)?));
    let refs: Vec<&dyn IsMenuItem<R>> = items.iter().map(|item| item.as_ref()).collect();
    Menu::with_items(app, &refs)
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

/// Runs the menu item `id`. Called on the main thread.
pub fn on_menu<R: Runtime>(app: &AppHandle<R>, id: &str) {
    let shell = app.state::<Shell>();
    tracing::info!("tray menu: {id}");
    match id {
        ids::OPEN => window::open(app, None),
        ids::PAUSE_HOUR => shell.tell(Control::Pause(Utc::now() + chrono::Duration::hours(1))),
        ids::PAUSE_TOMORROW => shell.tell(Control::Pause(next_morning(&Local::now()))),
        ids::RESUME => shell.tell(Control::Resume),
        ids::COPY_URL => copy_webhook_url(app),
        ids::TEST_DELIVERY => send_test_delivery(app),
        ids::START_AT_LOGIN => toggle_start_at_login(&shell),
        ids::QUIT => shell.quit(app),
        other => match other.strip_prefix(ids::UPLOAD_PREFIX) {
            Some(route) => window::open(app, Some(route)),
            None => tracing::debug!("unknown menu item {other}"),
        },
    }
}

fn toggle_start_at_login(shell: &Shell) {
    let on = shell.at_login.start_at_login().unwrap_or(false);
    // Failures are logged and the tray redrawn by `set_start_at_login` itself.
    let _ = shell.at_login.set_start_at_login(!on);
}

/// Copies the URL to give CentrePoint: the public one when set, else the local one.
fn copy_webhook_url<R: Runtime>(app: &AppHandle<R>) {
    let shell = app.state::<Shell>();
    let (pool, configured, local) =
        (shell.pool.clone(), shell.configured_public_url.clone(), shell.webhook_url.clone());
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let set = pool.run(|conn| Ok(settings::preferences(conn)?.public_url)).await;
        let url = set.ok().flatten().or(configured).unwrap_or(local);
        match app.clipboard().write_text(url.clone()) {
            Ok(()) => tracing::info!("copied the webhook URL {url}"),
            Err(e) => tracing::error!("cannot copy the webhook URL: {e}"),
        }
    });
}

/// Sends a test delivery through the real receiver, authenticated like its webhook,
/// and says what happened. The delivery's own notification follows as for any upload.
fn send_test_delivery<R: Runtime>(app: &AppHandle<R>) {
    let shell = app.state::<Shell>();
    let (pool, url) = (shell.pool.clone(), shell.webhook_url.clone());
    let control = shell.control();
    tauri::async_runtime::spawn(async move {
        let table = pool.run(|conn| webhooks::auth_table(conn).map_err(StoreError::from)).await;
        let result = match table {
            Ok(table) => {
                let test = TestDelivery { status: "completed".into(), ..Default::default() };
                send::test_delivery(&url, &table, test, "the tray").await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        let _ = control.send(Control::Tell(test_feedback(result)));
    });
}

/// What a person is told after "Send a test delivery"; a click opens the upload it made.
pub fn test_feedback(result: Result<send::TestSent, String>) -> Notice {
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
        Err(e) => ("Test delivery not sent", e, Urgency::Critical, Target::Overview),
    };
    Notice { title: title.into(), body, urgency, target, count: 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn at(text: &str) -> DateTime<FixedOffset> {
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
    fn labels_from_outside_keep_their_ampersands() {
        assert_eq!(literal("Sleep & Rest"), "Sleep && Rest");
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
        let unsent = test_feedback(Err("connection refused".into()));
        assert_eq!((unsent.urgency, unsent.target.route().as_str()), (Urgency::Critical, "#/overview"));
    }
}

//! The shell's logic on Tauri's mock runtime: a real receiver on a temp data directory,
//! real deliveries over HTTP, the app built with `tauri::test::mock_builder()`; the
//! notifications it would show are read from a channel and the tray from its menu.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cpwatch::config::Config;
use cpwatch::store::settings::{self, DesktopState, NotificationPrefs, Preferences};
use cpwatch_desktop::{
    menu_ids, Autostart, Control, Message, Notices, Options, Shell, Started, Tray, View, WindowProgram,
    Windows,
};
use tauri::menu::MenuItemKind;
use tauri::test::{mock_builder, mock_context, noop_assets, MockRuntime};
use tauri::{App, Manager as _};

use crate::harness;

const DEADLINE: Duration = Duration::from_secs(30);

struct Running {
    app: App<MockRuntime>,
    notices: mpsc::Receiver<Message>,
    webhook_url: String,
    dashboard_url: String,
    autostart_file: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts the receiver on a temp data directory (with `group_window_seconds` for the
/// policy) and the app on the mock runtime.
fn start(group_window_seconds: u32) -> Running {
    start_after(group_window_seconds, &DesktopState::default(), &[])
}

/// As [`start`], on a data directory where an earlier run kept `kept` and received the
/// `earlier` upload deliveries (status, upload id) before the app starts.
fn start_after(group_window_seconds: u32, kept: &DesktopState, earlier: &[(&str, &str)]) -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let conn = cpwatch::store::open_in(&data).expect("store");
    let prefs = Preferences {
        notifications: NotificationPrefs { group_window_seconds, ..Default::default() },
        ..Default::default()
    };
    settings::set_preferences(&conn, &prefs).expect("preferences");
    settings::set_desktop_state(&conn, kept).expect("desktop state");
    drop(conn);
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        dashboard_listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: Some(data.clone()),
        ..Default::default()
    };
    if !earlier.is_empty() {
        tauri::async_runtime::block_on(async {
            let before = cpwatch::server::Receiver::start(config.clone()).await.expect("an earlier receiver");
            let url = before.webhook_url();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let running = tokio::spawn(before.run(async {
                let _ = stopped.await;
            }));
            for (status, upload) in earlier {
                let (url, status, upload) = (url.clone(), status.to_string(), upload.to_string());
                tokio::task::spawn_blocking(move || deliver(&url, &status, Some(&upload), 1))
                    .await
                    .expect("delivered");
            }
            let _ = stop.send(());
            running.await.expect("the earlier receiver task").expect("it stops cleanly");
        });
    }
    let autostart_file = dir.path().join("autostart").join("cpwatch.desktop");
    let autostart = Autostart {
        file: autostart_file.clone(),
        program: PathBuf::from("/usr/bin/cpwatch-desktop"),
        icon: None,
    };
    let started =
        tauri::async_runtime::block_on(Started::start(config, Some(autostart), std::future::pending()))
            .expect("the receiver starts");
    let (webhook_url, dashboard_url) =
        (started.shell().webhook_url.clone(), started.shell().dashboard_url.clone());
    let (tx, notices) = mpsc::channel();
    let options = Options {
        hidden: true,
        tray: false,
        notices: Notices::To(tx),
        instance: None,
        window: window_stand_in(dir.path()),
        clock: None,
    };
    let mut app = cpwatch_desktop::app(mock_builder(), started, options)
        .build(mock_context(noop_assets()))
        .expect("the app builds on the mock runtime");
    // The mock runtime's one iteration runs the app's setup and nothing else: the test
    // then drives the app through its handle.
    #[allow(deprecated)]
    app.run_iteration(|_, _| {});
    Running { app, notices, webhook_url, dashboard_url, autostart_file, data, _dir: dir }
}

impl Running {
    fn click(&self, id: &str) {
        cpwatch_desktop::on_menu(self.app.handle(), id);
    }

    fn view(&self) -> Option<View> {
        self.app.state::<Tray<MockRuntime>>().view()
    }

    /// Waits until the tray shows what `check` wants.
    fn tray_shows(&self, what: &str, check: impl Fn(&View) -> bool) -> View {
        eventually(what, || self.view().filter(|v| check(v)))
    }

    /// (id, text, enabled, checked) of every menu item, in order.
    fn menu(&self) -> Vec<(String, String, bool, Option<bool>)> {
        let menu = self.app.state::<Tray<MockRuntime>>().menu().expect("a menu is drawn");
        menu.items()
            .expect("menu items")
            .into_iter()
            .filter_map(|item| match item {
                MenuItemKind::MenuItem(i) => Some((
                    i.id().0.clone(),
                    i.text().unwrap_or_default(),
                    i.is_enabled().unwrap_or(false),
                    None,
                )),
                MenuItemKind::Check(i) => Some((
                    i.id().0.clone(),
                    i.text().unwrap_or_default(),
                    i.is_enabled().unwrap_or(false),
                    i.is_checked().ok(),
                )),
                _ => None,
            })
            .collect()
    }

    fn deliver(&self, status: &str, upload: Option<&str>, count: usize) {
        deliver(&self.webhook_url, status, upload, count);
    }

    fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// What the app keeps for its next start, as stored.
    fn kept(&self) -> DesktopState {
        let conn = cpwatch::store::open_in(&self.data).expect("store");
        settings::desktop_state(&conn).expect("desktop state")
    }

    fn next_notice(&self) -> Message {
        self.notices.recv_timeout(DEADLINE).expect("a notification within the deadline")
    }
}

fn deliver(url: &str, status: &str, upload: Option<&str>, count: usize) {
    tauri::async_runtime::block_on(harness::send_uploads(url, status, "189", upload, count));
}

fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < until, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn file_exists(path: &Path) -> bool {
    path.exists()
}

#[test]
fn the_tray_menu_has_every_action_and_the_last_five_uploads() {
    let app = start(30);
    app.tray_shows("the tray is drawn", |_| true);
    app.deliver("completed", None, 6);
    app.tray_shows("the uploads are in the tray", |v| v.model.recent.len() == 5);
    let menu = app.menu();
    let ids: Vec<&str> = menu.iter().map(|(id, ..)| id.as_str()).collect();
    for wanted in [
        menu_ids::OPEN,
        menu_ids::PAUSE_HOUR,
        menu_ids::PAUSE_TOMORROW,
        menu_ids::RESUME,
        menu_ids::COPY_URL,
        menu_ids::TEST_DELIVERY,
        menu_ids::START_AT_LOGIN,
        menu_ids::QUIT,
    ] {
        assert!(ids.contains(&wanted), "the menu has {wanted}: {menu:?}");
    }
    let uploads: Vec<_> = menu.iter().filter(|(id, ..)| id.starts_with(menu_ids::UPLOAD_PREFIX)).collect();
    assert_eq!(uploads.len(), 5, "the last five uploads: {menu:?}");
    for (id, text, enabled, _) in uploads {
        assert!(id.starts_with("upload:#/uploads/189/"), "each opens its detail: {id}");
        assert!(text.starts_with("Completed: Study 189, subject 44732, upload "), "{text}");
        assert!(enabled);
    }
    let label = |id: &str| menu.iter().find(|(i, ..)| i == id).cloned().expect("item");
    assert_eq!(label(menu_ids::PAUSE_HOUR).1, "Pause notifications for 1 hour");
    assert_eq!(label(menu_ids::PAUSE_TOMORROW).1, "Pause notifications until tomorrow 08:00");
    assert!(!label(menu_ids::RESUME).2, "Resume is off while not paused");
    assert_eq!(
        label(menu_ids::START_AT_LOGIN).3,
        Some(false),
        "Start at login is a check item, off at first"
    );
    let first = &menu[0].1;
    assert_eq!(first, "cpwatch: all good", "the menu opens with the tooltip's state line");
}

#[test]
fn a_burst_is_one_notification_and_a_failure_is_shown_at_once_not_hidden_in_it() {
    let app = start(2);
    app.tray_shows("the tray is drawn", |_| true);
    app.deliver("completed", None, 5);
    app.deliver("error", Some("85045"), 1);
    let failure = app.next_notice();
    assert_eq!(failure.title, "Upload failed: Study 189");
    assert_eq!(failure.body, "Subject 44732, upload 85045: Device clock invalid");
    assert!(failure.critical, "a failure is critical");
    assert_eq!(failure.route, "#/uploads/189/85045", "clicking it opens the upload");
    let group = app.next_notice();
    assert_eq!(group.title, "5 uploads completed in Study 189");
    assert!(!group.critical);
    assert!(
        app.notices.recv_timeout(Duration::from_secs(3)).is_err(),
        "nothing more: the burst is one notification"
    );
    let view = app.tray_shows("the failure shows in the tray", |v| {
        v.model.look == cpwatch::notify::tray::Look::NewFailures
    });
    assert!(view.model.tooltip.contains("1 new failed upload"), "{}", view.model.tooltip);
}

#[test]
fn pausing_from_the_menu_silences_notifications_until_resumed() {
    let app = start(1);
    app.tray_shows("the tray is drawn", |_| true);
    app.click(menu_ids::PAUSE_HOUR);
    let view = app.tray_shows("the tray shows the pause", |v| v.paused);
    assert_eq!(view.model.look, cpwatch::notify::tray::Look::Paused);
    assert!(view.model.tooltip.contains("Notifications paused until"), "{}", view.model.tooltip);
    let status = eventually("the dashboard hears of the pause", || {
        app.app.state::<Shell>().status().filter(|s| !s["paused_until"].is_null())
    });
    assert!(status["paused_until"].is_string(), "{status}");
    app.deliver("error", Some("1"), 1);
    app.deliver("completed", Some("2"), 1);
    assert!(
        app.notices.recv_timeout(Duration::from_secs(4)).is_err(),
        "no notification while paused, not even a failure"
    );
    let resume = app.menu().into_iter().find(|(id, ..)| id == menu_ids::RESUME).expect("Resume");
    assert!(resume.2, "Resume is on while paused");
    app.click(menu_ids::RESUME);
    app.tray_shows("the pause is over", |v| !v.paused);
    app.deliver("error", Some("3"), 1);
    assert_eq!(app.next_notice().title, "Upload failed: Study 189", "notifications are back");
}

#[test]
fn a_pause_and_the_last_look_are_kept_for_the_next_start() {
    let app = start(1);
    app.tray_shows("the tray is drawn", |_| true);
    let first = eventually("the first start is kept as the last look", || {
        Some(app.kept()).filter(|k| k.looked_at.is_some())
    });
    assert_eq!(first.paused_until, None);
    app.click(menu_ids::PAUSE_HOUR);
    let kept = eventually("the pause is kept", || Some(app.kept()).filter(|k| k.paused_until.is_some()));
    let until = kept.paused_until.expect("a pause");
    let hour = until - chrono::Utc::now();
    assert!(hour > chrono::Duration::minutes(50) && hour <= chrono::Duration::hours(1), "{hour}");
    app.click(menu_ids::RESUME);
    eventually("the resume is kept", || Some(app.kept()).filter(|k| k.paused_until.is_none()));
    let before = chrono::Utc::now();
    app.app.state::<Shell>().tell(Control::Looked);
    eventually("the look is kept", || Some(app.kept()).filter(|k| k.looked_at.is_some_and(|t| t >= before)));
}

#[test]
fn after_a_restart_the_pause_goes_on_and_failures_not_looked_at_are_still_new() {
    let kept = DesktopState {
        paused_until: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
        looked_at: Some(chrono::Utc::now() - chrono::Duration::days(1)),
    };
    // Upload 1 failed after the last look, before this start.
    let app = start_after(1, &kept, &[("error", "1")]);
    let view = app.tray_shows("the tray shows the pause from before", |v| v.paused);
    assert!(view.model.tooltip.contains("Notifications paused until"), "{}", view.model.tooltip);
    assert_eq!(view.model.look, cpwatch::notify::tray::Look::NewFailures, "the failure from before is new");
    assert!(view.model.tooltip.starts_with("cpwatch: 1 new failed upload"), "{}", view.model.tooltip);
    app.deliver("error", Some("2"), 1);
    assert!(app.notices.recv_timeout(Duration::from_secs(3)).is_err(), "still paused: no notification");
    app.click(menu_ids::RESUME);
    let view = app.tray_shows("the failures are new: nobody looked since", |v| {
        v.model.look == cpwatch::notify::tray::Look::NewFailures
    });
    assert!(view.model.tooltip.starts_with("cpwatch: 2 new failed uploads"), "{}", view.model.tooltip);
}

#[test]
fn pause_until_tomorrow_lasts_until_the_next_morning() {
    let app = start(30);
    app.tray_shows("the tray is drawn", |_| true);
    app.click(menu_ids::PAUSE_TOMORROW);
    app.tray_shows("the tray shows the pause", |v| v.paused);
    let status = eventually("the dashboard hears of the pause", || {
        app.app.state::<Shell>().status().filter(|s| s["paused_until"].is_string())
    });
    let until = chrono::DateTime::parse_from_rfc3339(status["paused_until"].as_str().unwrap_or_default())
        .expect("an RFC 3339 time");
    assert_eq!(until.with_timezone(&chrono::Local).format("%H:%M").to_string(), "08:00");
}

/// A stand-in for the window process that speaks its protocol (`--window-for <URL>`, then
/// one route per stdin line, each answered `shown`) and writes down what it was told and
/// its pid, so the test can end it as closing the window does. `#/unanswered` ends it
/// without an answer, as a window closed just as a route arrives. The real window
/// process is in the desktop e2e test.
fn window_stand_in(dir: &Path) -> WindowProgram {
    let script = format!(
        "printf '%s\\n' \"$2\" >> {dir}/started; echo $$ > {dir}/pid; \
         while IFS= read -r route; do \
           [ \"$route\" = '#/unanswered' ] && exit 0; \
           printf '%s\\n' \"$route\" >> {dir}/shown; echo shown; \
         done",
        dir = dir.display()
    );
    WindowProgram {
        program: "sh".into(),
        args: vec!["-c".into(), script, "window".into()],
        unset: Vec::new(),
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

#[test]
fn the_window_is_a_process_of_its_own_shown_at_what_the_menu_asks() {
    let app = start(30);
    let windows = || app.app.state::<Windows>();
    assert!(!windows().shown(), "started hidden: no window process");
    app.click(menu_ids::OPEN);
    let started = eventually("a window process starts", || {
        Some(lines(&app.dir().join("started"))).filter(|l| !l.is_empty())
    });
    assert_eq!(started, std::slice::from_ref(&app.dashboard_url), "it shows the in-process dashboard");
    assert!(windows().shown());
    app.click("upload:#/uploads/189/85045");
    app.click(menu_ids::OPEN);
    let shown = eventually("the running window is told", || {
        Some(lines(&app.dir().join("shown"))).filter(|l| l.len() == 2)
    });
    assert_eq!(shown, ["#/uploads/189/85045", ""], "a route, then only bring it forward");
    assert_eq!(lines(&app.dir().join("started")).len(), 1, "one window process, brought forward");

    // Its window closed: the process ends, and the next Open starts a new one at the route.
    let pid = std::fs::read_to_string(app.dir().join("pid")).expect("the stand-in's pid");
    let ended = std::process::Command::new("kill").arg(pid.trim()).status().expect("kill");
    assert!(ended.success());
    eventually("the window process is gone", || (!windows().shown()).then_some(()));
    app.click("upload:#/uploads/189/85046");
    let started = eventually("a new window process starts", || {
        Some(lines(&app.dir().join("started"))).filter(|l| l.len() == 2)
    });
    assert_eq!(started[1], format!("{}#/uploads/189/85046", app.dashboard_url));

    // A route the window closed before showing is shown again, in a new window.
    app.click("upload:#/unanswered");
    let started = eventually("the route is shown in a new window", || {
        Some(lines(&app.dir().join("started"))).filter(|l| l.len() == 3)
    });
    assert_eq!(started[2], format!("{}#/unanswered", app.dashboard_url));
}

#[test]
fn start_at_login_toggles_the_autostart_entry_and_its_check_mark() {
    let app = start(30);
    app.tray_shows("the tray is drawn", |v| !v.start_at_login);
    app.click(menu_ids::START_AT_LOGIN);
    app.tray_shows("the check mark is on", |v| v.start_at_login);
    assert!(file_exists(&app.autostart_file));
    let entry = std::fs::read_to_string(&app.autostart_file).expect("entry");
    assert!(entry.contains("Exec=/usr/bin/cpwatch-desktop --hidden"), "{entry}");
    let check = app.menu().into_iter().find(|(id, ..)| id == menu_ids::START_AT_LOGIN).expect("item");
    assert_eq!(check.3, Some(true));
    app.click(menu_ids::START_AT_LOGIN);
    app.tray_shows("the check mark is off", |v| !v.start_at_login);
    assert!(!file_exists(&app.autostart_file));
}

#[test]
fn a_test_delivery_from_the_menu_goes_through_the_receiver_and_is_told() {
    let app = start(1);
    app.tray_shows("the tray is drawn", |_| true);
    app.click(menu_ids::TEST_DELIVERY);
    let told = app.next_notice();
    assert_eq!(told.title, "Test delivery received", "{told:?}");
    assert!(!told.critical);
    let upload = app.next_notice();
    assert_eq!(upload.title, "Upload completed: Study test", "the delivery notifies like any other");
    app.tray_shows("the test upload is in the tray", |v| {
        v.model.recent.iter().any(|u| u.label.contains("Study test"))
    });
}

#[test]
fn without_a_notification_server_the_tray_and_the_dashboard_say_so() {
    let app = start(30);
    let status = eventually("the status is published", || app.app.state::<Shell>().status());
    assert_eq!(status["notifications"], "checking");
    app.app.state::<Shell>().tell(Control::Notifications(false));
    let view = app.tray_shows("the tray says so", |v| v.model.tooltip.contains("Notifications unavailable"));
    assert_eq!(
        view.model.look,
        cpwatch::notify::tray::Look::AllGood,
        "receiving goes on: the look is not an alarm"
    );
    let status = eventually("the dashboard says so", || {
        app.app.state::<Shell>().status().filter(|s| s["notifications"] == "unavailable")
    });
    assert_eq!(status["start_at_login"], "off");
    app.deliver("error", Some("7"), 1);
    app.tray_shows("deliveries still arrive", |v| {
        v.model.recent.iter().any(|u| u.label.contains("upload 7"))
    });
}

//! End to end on a real desktop stack: an X server (Xvfb), a private D-Bus session bus,
//! a real notification daemon (dunst, whose `dunstctl` reports what it received) and a
//! StatusNotifierWatcher with a registered host (the part of a panel that tray icons
//! register with, and the panel's announcement that it shows them). The real
//! `cpwatch-desktop` runs on a temp data directory; deliveries go through its receiver
//! over HTTP, as CentrePoint sends them; the test looks at what a person would see: the
//! notifications, the tray's icon, tooltip and menu over D-Bus, and the window on the
//! X server (with a screenshot kept under `<target>/artifacts/`).
//!
//! The stack is set up by the test itself. A missing tool fails the test, naming the
//! package group that installs it: `bash scripts/setup.sh base desktop e2e`.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use cpwatch::store::settings::{self, NotificationPrefs, Preferences};
use cpwatch::store::studies;
use serde_json::Value;
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{self, ConnectionExt as _};

use crate::harness;
use crate::tls_proxy::{self, TlsProxy};

const APP: &str = env!("CARGO_BIN_EXE_cpwatch-desktop");

/// The app under test: this build's, or another (`CPWATCH_DESKTOP_BIN`, e.g. a release
/// build to measure).
fn app_binary() -> PathBuf {
    std::env::var_os("CPWATCH_DESKTOP_BIN").map_or_else(|| PathBuf::from(APP), PathBuf::from)
}
/// Generous: the machine may be shared and slow; nothing here is a timing assertion.
const DEADLINE: Duration = Duration::from_secs(60);
/// The grouping window the test configures, so a burst is released quickly.
const GROUP_WINDOW_SECONDS: u32 = 3;
const TOOLS: [&str; 8] =
    ["Xvfb", "dbus-daemon", "dunst", "dunstctl", "status-notifier-watcher", "gdbus", "import", "identify"];

/// The two tests each start a web view; one at a time keeps a small machine responsive.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Lines for the person reading the test output, past cargo's output capture.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < until, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn require_tools() {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|tool| !std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
        .collect();
    assert!(
        missing.is_empty(),
        "the desktop end-to-end test needs {} (not found on PATH); install them with \
         `bash scripts/setup.sh base desktop e2e`",
        missing.join(", ")
    );
}

/// Which parts of a desktop session run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Session {
    /// Bus, notification daemon and tray watcher.
    Full,
    /// Bus and tray watcher, no notification daemon (and nothing the bus could start).
    NoNotificationDaemon,
    /// No session bus at all.
    NoBus,
}

/// An X server, a session bus and the desktop services, with an isolated home.
struct Desktop {
    dir: tempfile::TempDir,
    display: String,
    bus: Option<String>,
    services: Vec<Child>,
}

impl Desktop {
    fn start(session: Session) -> Desktop {
        require_tools();
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["home", "config", "data", "cache", "runtime", "state"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("session dirs");
        }
        let mut services = Vec::new();
        let display = start_x_server(&mut services);
        let mut desktop = Desktop { dir, display, bus: None, services };
        if session == Session::NoBus {
            return desktop;
        }
        desktop.bus = Some(desktop.start_bus());
        if session == Session::Full {
            let config = desktop.dir.path().join("dunstrc");
            // dunst's history leaves urgency out: these rules write it into the message.
            let rules: String = ["low", "normal", "critical"]
                .iter()
                .map(|u| {
                    format!("[mark-{u}]\n    msg_urgency = {u}\n    format = \"urgency:{u}\\n%s\\n%b\"\n")
                })
                .collect();
            std::fs::write(&config, format!("[global]\n    history_length = 200\n{rules}")).expect("dunstrc");
            let dunst = desktop.command("dunst").arg("-config").arg(&config).spawn().expect("start dunst");
            desktop.services.push(dunst);
            eventually("dunst answers", || desktop.dunstctl(&["count", "displayed"]).ok());
        }
        let watcher =
            desktop.command("status-notifier-watcher").spawn().expect("start status-notifier-watcher");
        desktop.services.push(watcher);
        eventually("the StatusNotifierWatcher is on the bus", || {
            let owned = desktop.gdbus_call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                &["org.kde.StatusNotifierWatcher"],
            );
            owned.ok().filter(|o| o.contains("true"))
        });
        // A panel registers its tray host with the watcher; tray items only show (and
        // the app's tray backend only registers) once one is there.
        desktop
            .gdbus_call(
                "org.kde.StatusNotifierWatcher",
                "/StatusNotifierWatcher",
                "org.kde.StatusNotifierWatcher.RegisterStatusNotifierHost",
                &["org.kde.StatusNotifierHost-cpwatch-e2e"],
            )
            .expect("register a tray host");
        desktop
    }

    /// A private session bus that can start nothing by itself (no service files), so
    /// only the daemons this test starts answer.
    fn start_bus(&mut self) -> String {
        let config = self.dir.path().join("session.conf");
        let socket_dir = self.dir.path().join("runtime");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                socket_dir.display()
            ),
        )
        .expect("bus config");
        let mut bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let mut address = String::new();
        let stdout = bus.stdout.take().expect("bus stdout");
        BufReader::new(stdout).read_line(&mut address).expect("bus address");
        self.services.push(bus);
        let address = address.trim().to_string();
        assert!(address.starts_with("unix:"), "dbus-daemon printed {address:?}");
        address
    }

    /// A command in this session: its display, its bus (or none), its own home.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        self.session_env(&mut command);
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        command
    }

    fn session_env(&self, command: &mut Command) {
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().to_string();
            if key.starts_with("CPWATCH_") || key.starts_with("XDG_") || key.starts_with("DBUS_") {
                command.env_remove(&key);
            }
        }
        let dir = self.dir.path();
        command
            .env("DISPLAY", &self.display)
            .env("HOME", dir.join("home"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .env("XDG_STATE_HOME", dir.join("state"))
            .env("XDG_RUNTIME_DIR", dir.join("runtime"))
            .env("GDK_BACKEND", "x11")
            .env("NO_AT_BRIDGE", "1")
            // Xvfb has no GPU: WebKit's DMA-BUF renderer and GL compositing can leave a
            // new web view blank there (seen under load); software painting is reliable.
            .env("WEBKIT_DISABLE_DMABUF_RENDERER", "1")
            .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
            .env_remove("WAYLAND_DISPLAY");
        match &self.bus {
            Some(bus) => command.env("DBUS_SESSION_BUS_ADDRESS", bus),
            // An address that leads nowhere: no session bus, and none started on demand.
            None => {
                command.env("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={}", dir.join("no-bus").display()))
            }
        };
    }

    fn output(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let mut command = self.command(program);
        command.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = command.output().map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    fn dunstctl(&self, args: &[&str]) -> Result<String, String> {
        self.output("dunstctl", args)
    }

    fn gdbus_call(&self, dest: &str, path: &str, method: &str, args: &[&str]) -> Result<String, String> {
        let mut all =
            vec!["call", "--session", "--dest", dest, "--object-path", path, "--method", method, "--"];
        all.extend_from_slice(args);
        self.output("gdbus", &all)
    }

    fn launch(&self, data: &Path, args: &[&str]) -> App {
        self.launch_with(data, args, &[])
    }

    fn launch_with(&self, data: &Path, args: &[&str], env: &[(&str, &Path)]) -> App {
        let mut command = Command::new(app_binary());
        self.session_env(&mut command);
        command
            .args(args)
            .env("CPWATCH_LISTEN", "127.0.0.1:0")
            .env("CPWATCH_DASHBOARD_LISTEN", "127.0.0.1:0")
            .env("CPWATCH_DATA_DIR", data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let launched = Instant::now();
        let mut child = command.spawn().expect("start cpwatch-desktop");
        let (lines_tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines_tx.send((Instant::now(), line));
            }
        });
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut log) = sink.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        App { child, lines, log, launched, output: Vec::new() }
    }

    /// The app's StatusNotifierItem: (bus name, object path), once registered.
    fn tray_item(&self) -> (String, String) {
        eventually("the app's tray icon is registered with the StatusNotifierWatcher", || {
            let items = self
                .gdbus_call(
                    "org.kde.StatusNotifierWatcher",
                    "/StatusNotifierWatcher",
                    "org.freedesktop.DBus.Properties.Get",
                    &["org.kde.StatusNotifierWatcher", "RegisteredStatusNotifierItems"],
                )
                .ok()?;
            let item = quoted_strings(&items).into_iter().next()?;
            Some(match item.split_once('/') {
                Some((name, path)) => (name.to_string(), format!("/{path}")),
                None => (item, "/StatusNotifierItem".to_string()),
            })
        })
    }

    fn item_property(&self, item: &(String, String), property: &str) -> String {
        self.gdbus_call(
            &item.0,
            &item.1,
            "org.freedesktop.DBus.Properties.Get",
            &["org.kde.StatusNotifierItem", property],
        )
        .unwrap_or_else(|e| panic!("read the tray's {property}: {e}"))
    }

    /// The tray icon's tooltip text (its description; the title is "cpwatch").
    fn tooltip(&self, item: &(String, String)) -> String {
        let raw = self.item_property(item, "ToolTip");
        quoted_strings(&raw).pop().unwrap_or_default()
    }

    fn menu_path(&self, item: &(String, String)) -> String {
        let raw = self.item_property(item, "Menu");
        let start = raw.find("'/").map(|i| i + 1).expect("an object path");
        raw[start..].split('\'').next().unwrap_or_default().to_string()
    }

    fn menu(&self, item: &(String, String), menu: &str) -> Vec<MenuEntry> {
        let raw = self
            .gdbus_call(&item.0, menu, "com.canonical.dbusmenu.GetLayout", &["0", "-1", "[]"])
            .unwrap_or_else(|e| panic!("read the tray menu: {e}"));
        parse_layout(&raw)
    }

    /// Clicks the menu item labelled `label`, as a panel does.
    fn click(&self, item: &(String, String), menu: &str, label: &str) {
        let entries = self.menu(item, menu);
        let entry = entries
            .iter()
            .find(|e| e.label == label)
            .unwrap_or_else(|| panic!("the tray menu has {label:?}: {entries:#?}"));
        let id = entry.id.to_string();
        self.gdbus_call(
            item.0.as_str(),
            menu,
            "com.canonical.dbusmenu.Event",
            &[&id, "clicked", "<''>", "0"],
        )
        .unwrap_or_else(|e| panic!("click {label:?}: {e}"));
    }

    /// Every notification dunst received after `after` (a dunst id), oldest first:
    /// closes what is shown (dunst lists notifications once closed), then reads the history.
    fn notifications_after(&self, after: i64) -> Vec<Notification> {
        for _ in 0..20 {
            let _ = self.dunstctl(&["close-all"]);
            let shown: u32 =
                self.dunstctl(&["count", "displayed"]).ok().and_then(|c| c.trim().parse().ok()).unwrap_or(0);
            let waiting: u32 =
                self.dunstctl(&["count", "waiting"]).ok().and_then(|c| c.trim().parse().ok()).unwrap_or(0);
            if shown + waiting == 0 {
                break;
            }
        }
        let history = self.dunstctl(&["history"]).unwrap_or_else(|e| panic!("dunst history: {e}"));
        let json: Value = serde_json::from_str(&history).expect("dunstctl history is JSON");
        let mut all: Vec<Notification> = json["data"][0]
            .as_array()
            .map(|list| list.iter().map(Notification::from_dunst).collect())
            .unwrap_or_default();
        all.retain(|n| n.id > after);
        all.sort_by_key(|n| n.id);
        all
    }

    /// Waits for `count` notifications after `after`, then a little longer to see that
    /// no more come (grouping): returns all of them.
    fn wait_for_notifications(&self, after: i64, count: usize) -> Vec<Notification> {
        let mut got = eventually(&format!("{count} notification(s) arrive"), || {
            let got = self.notifications_after(after);
            (got.len() >= count).then_some(got)
        });
        std::thread::sleep(Duration::from_secs(u64::from(GROUP_WINDOW_SECONDS) + 1));
        got.extend(self.notifications_after(got.last().map_or(after, |n| n.id)));
        got
    }

    fn last_notification_id(&self) -> i64 {
        self.notifications_after(-1).last().map_or(0, |n| n.id)
    }

    fn x(&self) -> X11 {
        X11::connect(&self.display)
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).expect("artifacts dir");
        let path = dir.join(name);
        let colours = eventually("the screenshot shows a rendered page", || {
            self.output("import", &["-window", "root", &path.display().to_string()]).ok()?;
            let colours: u32 = self
                .output("identify", &["-format", "%k", &path.display().to_string()])
                .ok()?
                .trim()
                .parse()
                .ok()?;
            // A blank or half-drawn window has a handful of colours; a rendered dashboard
            // with text and charts has hundreds.
            (colours > 200).then_some(colours)
        });
        report(&format!("desktop e2e: screenshot {} ({colours} colours)", path.display()));
        path
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        for service in self.services.iter_mut().rev() {
            let _ = service.kill();
            let _ = service.wait();
        }
    }
}

fn start_x_server(services: &mut Vec<Child>) -> String {
    for number in 90..400 {
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
        if socket.exists() || Path::new(&format!("/tmp/.X{number}-lock")).exists() {
            continue;
        }
        let display = format!(":{number}");
        let mut server = Command::new("Xvfb")
            .args([display.as_str(), "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let until = Instant::now() + DEADLINE;
        loop {
            if socket.exists() {
                services.push(server);
                return display;
            }
            if matches!(server.try_wait(), Ok(Some(_))) || Instant::now() > until {
                // Taken meanwhile, or not starting: try the next number.
                let _ = server.kill();
                let _ = server.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("no free X display number for Xvfb");
}

/// `<target dir>/artifacts`, beside the build's profile directory.
fn artifacts_dir() -> PathBuf {
    let exe = Path::new(APP);
    exe.parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("artifacts")
}

/// The running app and what it printed.
struct App {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    log: Arc<Mutex<String>>,
    launched: Instant,
    output: Vec<String>,
}

impl App {
    /// Waits for a stdout line starting with `prefix`; returns the rest and when it came.
    fn line(&mut self, prefix: &str) -> (String, Instant) {
        if let Some(line) = self.output.iter().find(|l| l.starts_with(prefix)) {
            return (line[prefix.len()..].to_string(), self.launched);
        }
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    self.output.push(line.clone());
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return (rest.to_string(), at);
                    }
                }
                Err(_) => panic!("cpwatch-desktop never printed {prefix:?}; its log:\n{}", self.log()),
            }
        }
    }

    /// The receiver's and the dashboard's URLs, from the same lines `cpwatch serve` prints.
    fn urls(&mut self) -> (String, String, Duration) {
        let (webhook, ready_at) = self.line("cpwatch is receiving CentrePoint deliveries at ");
        let (dashboard, _) = self.line("dashboard: ");
        (webhook, dashboard, ready_at - self.launched)
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn logged(&self, what: &str) {
        eventually(&format!("the app logs {what:?}"), || self.log().contains(what).then_some(()));
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        eventually("cpwatch-desktop exits", || self.child.try_wait().ok().flatten())
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if std::thread::panicking() {
            report(&format!("cpwatch-desktop's log:\n{}", self.log()));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One notification as dunst recorded it.
#[derive(Debug, Clone)]
struct Notification {
    id: i64,
    appname: String,
    summary: String,
    body: String,
    /// `low`, `normal` or `critical`, as the test's dunst rules wrote it.
    urgency: String,
    /// Microseconds before dunst closes it by itself; 0 is never.
    timeout: i64,
    icon_path: String,
}

impl Notification {
    fn from_dunst(value: &Value) -> Notification {
        let text = |key: &str| value[key]["data"].as_str().unwrap_or_default().to_string();
        let message = text("message");
        Notification {
            id: value["id"]["data"].as_i64().unwrap_or_default(),
            appname: text("appname"),
            summary: text("summary"),
            body: text("body"),
            urgency: message
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("urgency:"))
                .unwrap_or_default()
                .to_string(),
            timeout: value["timeout"]["data"].as_i64().unwrap_or(-1),
            icon_path: text("icon_path"),
        }
    }
}

#[derive(Debug, Clone)]
struct MenuEntry {
    id: i64,
    label: String,
    enabled: bool,
    toggle_state: Option<i64>,
}

/// The items of a `com.canonical.dbusmenu.GetLayout` answer as `gdbus` prints it:
/// `(uint32 3, (0, {...}, [<(1, {'label': <'Open dashboard'>, ...}, @av [])>, ...]))`.
fn parse_layout(text: &str) -> Vec<MenuEntry> {
    let mut entries = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<(") {
        rest = &rest[start + 2..];
        let Some(comma) = rest.find(',') else { break };
        let Ok(id) = rest[..comma].trim().parse::<i64>() else { continue };
        let props = &rest[comma..];
        let props = &props[..props.find("}").unwrap_or(props.len())];
        let label = property(props, "label").map(|v| unquote(&v)).unwrap_or_default();
        let enabled = property(props, "enabled").is_none_or(|v| v != "false");
        let toggle_state = property(props, "toggle-state").and_then(|v| v.parse().ok());
        if property(props, "type").as_deref() != Some("'separator'") {
            entries.push(MenuEntry { id, label, enabled, toggle_state });
        }
    }
    entries
}

/// The value of `'name': <value>` in a printed dictionary.
fn property(props: &str, name: &str) -> Option<String> {
    let key = format!("'{name}': <");
    let start = props.find(&key)? + key.len();
    let value = &props[start..];
    if let Some(quoted) = value.strip_prefix('\'') {
        let mut end = 0;
        let bytes = quoted.as_bytes();
        while end < bytes.len() && !(bytes[end] == b'\'' && (end == 0 || bytes[end - 1] != b'\\')) {
            end += 1;
        }
        return Some(format!("'{}'", &quoted[..end]));
    }
    Some(value[..value.find('>')?].trim().to_string())
}

fn unquote(value: &str) -> String {
    value.trim_matches('\'').replace("\\'", "'").replace("\\n", "\n")
}

/// Every single-quoted string in `gdbus` output, unescaped.
fn quoted_strings(text: &str) -> Vec<String> {
    let mut strings = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => s.push('\n'),
                    Some(other) => s.push(other),
                    None => {}
                },
                '\'' => break,
                other => s.push(other),
            }
        }
        strings.push(s);
    }
    strings
}

/// The X server, as a person sees it: which windows are shown.
struct X11 {
    conn: x11rb::rust_connection::RustConnection,
    root: xproto::Window,
}

impl X11 {
    fn connect(display: &str) -> X11 {
        let (conn, screen) = x11rb::connect(Some(display)).expect("connect to the X server");
        let root = conn.setup().roots[screen].root;
        X11 { conn, root }
    }

    fn atom(&self, name: &str) -> xproto::Atom {
        self.conn.intern_atom(false, name.as_bytes()).expect("intern").reply().expect("atom").atom
    }

    fn title(&self, window: xproto::Window) -> String {
        for (property, kind) in [("_NET_WM_NAME", "UTF8_STRING"), ("WM_NAME", "STRING")] {
            let (property, kind) = (self.atom(property), self.atom(kind));
            if let Ok(Ok(reply)) =
                self.conn.get_property(false, window, property, kind, 0, 1024).map(|c| c.reply())
            {
                if !reply.value.is_empty() {
                    return String::from_utf8_lossy(&reply.value).into_owned();
                }
            }
        }
        String::new()
    }

    /// The shown top-level windows titled `title`.
    fn shown(&self, title: &str) -> Vec<xproto::Window> {
        let Ok(Ok(tree)) = self.conn.query_tree(self.root).map(|c| c.reply()) else { return Vec::new() };
        tree.children
            .into_iter()
            .filter(|w| {
                let viewable = self
                    .conn
                    .get_window_attributes(*w)
                    .ok()
                    .and_then(|c| c.reply().ok())
                    .is_some_and(|a| a.map_state == xproto::MapState::VIEWABLE);
                viewable && self.title(*w) == title
            })
            .collect()
    }

    /// What a paste would insert: the CLIPBOARD selection as text, asked of its owner
    /// the way any X application asks.
    fn clipboard(&self) -> Option<String> {
        let window = self.conn.generate_id().ok()?;
        self.conn
            .create_window(
                x11rb::COPY_DEPTH_FROM_PARENT,
                window,
                self.root,
                0,
                0,
                1,
                1,
                0,
                xproto::WindowClass::INPUT_OUTPUT,
                0,
                &xproto::CreateWindowAux::new(),
            )
            .ok()?;
        let (clipboard, text, property) =
            (self.atom("CLIPBOARD"), self.atom("UTF8_STRING"), self.atom("CPWATCH_E2E_PASTE"));
        self.conn.convert_selection(window, clipboard, text, property, x11rb::CURRENT_TIME).ok()?;
        self.conn.flush().ok()?;
        let until = Instant::now() + Duration::from_secs(10);
        let pasted = loop {
            match self.conn.poll_for_event() {
                Ok(Some(x11rb::protocol::Event::SelectionNotify(event))) if event.requestor == window => {
                    if event.property == u32::from(xproto::AtomEnum::NONE) {
                        break None;
                    }
                    let reply = self
                        .conn
                        .get_property(true, window, property, xproto::AtomEnum::ANY, 0, 1 << 16)
                        .ok()?
                        .reply()
                        .ok()?;
                    break Some(String::from_utf8_lossy(&reply.value).into_owned());
                }
                Ok(_) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
                _ => break None,
            }
        };
        let _ = self.conn.destroy_window(window);
        let _ = self.conn.flush();
        pasted
    }

    /// Asks the window to close, as a window manager's close button does.
    fn close(&self, window: xproto::Window) {
        let protocols = self.atom("WM_PROTOCOLS");
        let delete = self.atom("WM_DELETE_WINDOW");
        let event =
            xproto::ClientMessageEvent::new(32, window, protocols, [delete, x11rb::CURRENT_TIME, 0, 0, 0]);
        self.conn
            .send_event(false, window, xproto::EventMask::NO_EVENT, event)
            .expect("send WM_DELETE_WINDOW");
        self.conn.flush().expect("flush");
    }
}

/// Sends `count` upload deliveries with `status` through the receiver at `url`.
fn deliver(url: &str, status: &str, study: &str, upload: Option<&str>, count: usize) {
    runtime().block_on(harness::send_uploads(url, status, study, upload, count));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// A dashboard API answer.
fn api(dashboard: &str, path: &str) -> Value {
    runtime().block_on(async {
        let response = reqwest::get(format!("{dashboard}api/{path}")).await.expect("dashboard answers");
        assert!(response.status().is_success(), "GET /api/{path}: {}", response.status());
        response.json().await.expect("JSON")
    })
}

/// A change through the dashboard's API, as its Settings page makes it (same Origin).
fn api_put(dashboard: &str, path: &str, body: Value) -> Value {
    runtime().block_on(async {
        let response = reqwest::Client::new()
            .put(format!("{dashboard}api/{path}"))
            .header("Origin", dashboard.trim_end_matches('/'))
            .json(&body)
            .send()
            .await
            .expect("dashboard answers");
        assert!(response.status().is_success(), "PUT /api/{path}: {}", response.status());
        response.json().await.expect("JSON")
    })
}

/// Prepares a data directory: a short grouping window, and a name for study 189.
fn prepare_data(dir: &Path) -> PathBuf {
    let data = dir.join("cpwatch-data");
    let conn = cpwatch::store::open_in(&data).expect("store");
    let prefs = Preferences {
        notifications: NotificationPrefs { group_window_seconds: GROUP_WINDOW_SECONDS, ..Default::default() },
        ..Default::default()
    };
    settings::set_preferences(&conn, &prefs).expect("preferences");
    studies::set_label(&conn, "189", Some("Sleep study")).expect("label");
    data
}

/// The process and its children (the web view's processes), for measurements.
fn family(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut index = 0;
    while index < all.len() {
        let parent = all[index];
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
                let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
                // Fields after the command's closing parenthesis: state, ppid, ...
                let ppid =
                    stat.rsplit_once(") ").and_then(|(_, rest)| rest.split(' ').nth(1)?.parse::<u32>().ok());
                if ppid == Some(parent) && !all.contains(&child) {
                    all.push(child);
                }
            }
        }
        index += 1;
    }
    all
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(") ").map(|(_, rest)| rest.split(' ').collect()).unwrap_or_default();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command.
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

fn memory_report(pid: u32) -> String {
    let family = family(pid);
    let own = rss_kib(pid);
    let total: u64 = family.iter().map(|p| rss_kib(*p)).sum();
    format!(
        "app {} MiB, with its {} child process(es) (window, web view) {} MiB",
        own / 1024,
        family.len() - 1,
        total / 1024
    )
}

fn kill_term(pid: u32) {
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    assert!(status.success());
}

#[test]
fn the_desktop_app_notifies_shows_the_state_in_its_tray_and_keeps_receiving_with_its_window_closed() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let desktop = Desktop::start(Session::Full);
    let data = prepare_data(desktop.dir.path());
    let mut app = desktop.launch(&data, &[]);
    let (webhook, dashboard, ready) = app.urls();
    report(&format!("desktop e2e: measure: ready to receive {} ms after launch", ready.as_millis()));
    let x = desktop.x();

    // The window shows the dashboard at start; the tray shows the state.
    eventually("the dashboard window is shown", || (!x.shown("cpwatch").is_empty()).then_some(()));
    let item = desktop.tray_item();
    let menu = desktop.menu_path(&item);
    let tooltip = eventually("the tooltip gives the state", || {
        Some(desktop.tooltip(&item)).filter(|t| t.starts_with("cpwatch: all good"))
    });
    assert!(tooltip.contains("Uploads: 0 completed, 0 failed, 0 in progress"), "and the counts: {tooltip:?}");
    let labels: BTreeSet<String> = desktop.menu(&item, &menu).into_iter().map(|e| e.label).collect();
    for wanted in [
        "Open dashboard",
        "Pause notifications for 1 hour",
        "Pause notifications until tomorrow 08:00",
        "Resume notifications",
        "Copy webhook URL",
        "Send a test delivery",
        "Start at login",
        "Quit cpwatch",
        "No uploads yet",
    ] {
        assert!(labels.contains(wanted), "the tray menu has {wanted:?}: {labels:?}");
    }
    let all_good_icon = desktop.item_property(&item, "IconPixmap");
    let overview = api(&dashboard, "overview");
    assert_eq!(
        overview["desktop"]["notifications"], "available",
        "the dashboard shows the app's state: {overview}"
    );

    // A failure notifies at once, critical, naming the study by its label.
    let mut seen = desktop.last_notification_id();
    deliver(&webhook, "error", "189", Some("85045"), 1);
    eventually("the failure is on screen", || {
        desktop.dunstctl(&["count", "displayed"]).ok().filter(|c| c.trim() != "0")
    });
    let tooltip = eventually("the tray shows the new failure", || {
        Some(desktop.tooltip(&item)).filter(|t| t.starts_with("cpwatch: 1 new failed upload"))
    });
    assert!(tooltip.contains("0 completed, 1 failed"), "{tooltip:?}");
    assert_ne!(
        desktop.item_property(&item, "IconPixmap"),
        all_good_icon,
        "the icon's look changes with a failure"
    );
    let entries = desktop.menu(&item, &menu);
    assert!(
        entries.iter().any(|e| e.label == "Failed: Sleep study, subject 44732, upload 85045" && e.enabled),
        "the tray lists the recent uploads with their status: {entries:#?}"
    );

    // Clicking it opens the window at that upload.
    desktop.dunstctl(&["action", "0"]).expect("click the notification");
    app.logged("showing the dashboard at #/uploads/189/85045");
    eventually("the tray no longer calls the failure new once looked at", || {
        Some(desktop.tooltip(&item)).filter(|t| t.starts_with("cpwatch: all good"))
    });

    // A burst of completed uploads is one notification.
    deliver(&webhook, "completed", "189", None, 5);
    let got = desktop.wait_for_notifications(seen, 2);
    let summaries: Vec<&str> = got.iter().map(|n| n.summary.as_str()).collect();
    assert_eq!(summaries, ["Upload failed: Sleep study", "5 uploads completed in Sleep study"], "{got:#?}");
    let (failure, group) = (&got[0], &got[1]);
    assert_eq!(failure.body, "Subject 44732, upload 85045: Device clock invalid");
    assert_eq!(failure.urgency, "critical", "a failure is critical");
    assert_eq!(failure.timeout, 0, "a failure stays until dismissed");
    assert_eq!(failure.appname, "cpwatch");
    assert!(failure.icon_path.ends_with("cpwatch.png"), "with the app's icon: {failure:?}");
    assert_eq!(group.body, "Subject 44732");
    assert_eq!(group.urgency, "normal");
    assert!(group.timeout > 0, "other news goes away by itself");
    seen = got.last().map_or(seen, |n| n.id);

    // The window shows the upload the notification named.
    let shot = desktop.screenshot("desktop-dashboard.png");
    assert!(shot.exists());
    let entries = desktop.menu(&item, &menu);
    let completed =
        entries.iter().filter(|e| e.label.starts_with("Completed: Sleep study, subject 44732")).count();
    assert_eq!(completed, 5, "the tray lists the last five uploads: {entries:#?}");

    // Pause from the tray's D-Bus menu: the next deliveries do not notify.
    desktop.click(&item, &menu, "Pause notifications for 1 hour");
    eventually("the tray shows the pause", || {
        Some(desktop.tooltip(&item)).filter(|t| t.contains("Notifications paused until"))
    });
    let overview = api(&dashboard, "overview");
    assert!(overview["desktop"]["paused_until"].is_string(), "the dashboard shows the pause: {overview}");
    deliver(&webhook, "error", "189", Some("90001"), 1);
    deliver(&webhook, "completed", "189", Some("90002"), 1);
    let during_pause = desktop.wait_for_notifications(seen, 0);
    assert!(during_pause.is_empty(), "no notification while paused: {during_pause:#?}");
    let upload = api(&dashboard, "uploads/189/90001");
    assert_eq!(upload["upload"]["status"], "error", "the paused app still received it: {upload}");
    desktop.click(&item, &menu, "Resume notifications");
    eventually("the pause is over", || {
        Some(desktop.tooltip(&item))
            .filter(|t| !t.contains("paused") && t.starts_with("cpwatch: 1 new failed"))
    });

    // Send a test delivery from the tray: it goes through the receiver and is told; a
    // click on what it says opens the window at the upload it made.
    desktop.dunstctl(&["close-all"]).expect("nothing else on screen");
    desktop.click(&item, &menu, "Send a test delivery");
    eventually("the test delivery's notification is on screen", || {
        desktop.dunstctl(&["count", "displayed"]).ok().filter(|c| c.trim() != "0")
    });
    // The oldest shown is first: the test's own message, told before the upload's group.
    desktop.dunstctl(&["action", "0"]).expect("click the notification");
    app.logged("showing the dashboard at #/uploads/test/test-");
    let got = desktop.wait_for_notifications(seen, 2);
    let summaries: Vec<&str> = got.iter().map(|n| n.summary.as_str()).collect();
    assert_eq!(summaries, ["Test delivery received", "Upload completed: Study test"], "{got:#?}");
    seen = got.last().map_or(seen, |n| n.id);
    let tests = api(&dashboard, "uploads?study=test");
    let stored = tests["items"].as_array().map_or(0, Vec::len);
    assert_eq!(stored, 1, "the test delivery is stored: {tests}");

    // Start at login, from the tray: an XDG autostart entry that starts hidden.
    let entry = desktop.dir.path().join("config/autostart/cpwatch.desktop");
    desktop.click(&item, &menu, "Start at login");
    eventually("the autostart entry is written", || entry.exists().then_some(()));
    let text = std::fs::read_to_string(&entry).expect("autostart entry");
    assert!(text.contains(&format!("Exec={} --hidden", app_binary().display())), "{text}");
    eventually("the check mark is on", || {
        let entries = desktop.menu(&item, &menu);
        entries.iter().find(|e| e.label == "Start at login").filter(|e| e.toggle_state == Some(1)).map(|_| ())
    });
    desktop.click(&item, &menu, "Start at login");
    eventually("the autostart entry is removed", || (!entry.exists()).then_some(()));
    // The same option in the dashboard's Settings: the same entry, and the tray follows.
    let settings = api(&dashboard, "settings");
    assert_eq!(settings["desktop"]["start_at_login"], false, "Settings shows it off: {settings}");
    let answer = api_put(&dashboard, "desktop", serde_json::json!({ "start_at_login": true }));
    assert_eq!(answer["start_at_login"], true, "{answer}");
    assert!(entry.exists(), "turned on from Settings, the autostart entry is written");
    eventually("the tray's check mark follows Settings", || {
        let entries = desktop.menu(&item, &menu);
        entries.iter().find(|e| e.label == "Start at login").filter(|e| e.toggle_state == Some(1)).map(|_| ())
    });
    eventually("the overview shows it", || {
        Some(api(&dashboard, "overview")).filter(|o| o["desktop"]["start_at_login"] == "on")
    });
    api_put(&dashboard, "desktop", serde_json::json!({ "start_at_login": false }));
    assert!(!entry.exists(), "turned off from Settings, the entry is removed");

    desktop.click(&item, &menu, "Copy webhook URL");
    app.logged(&format!("copied the webhook URL {webhook}"));
    let pasted = eventually("the webhook URL can be pasted", || x.clipboard().filter(|p| *p == webhook));
    assert_eq!(pasted, webhook, "with no public URL set, the local one is copied");

    // Closing the window frees the web view; the app stays in the tray and receives.
    let open_memory = memory_report(app.pid());
    for window in x.shown("cpwatch") {
        x.close(window);
    }
    eventually("the window is closed", || x.shown("cpwatch").is_empty().then_some(()));
    // The window is a process of its own: closing it ends it and every web view process.
    eventually("nothing of the web view is left running", || (family(app.pid()).len() == 1).then_some(()));
    std::thread::sleep(Duration::from_secs(3));
    let closed_memory = memory_report(app.pid());
    let ticks_before: u64 = family(app.pid()).iter().map(|p| cpu_ticks(*p)).sum();
    // Measured, never asserted; `CPWATCH_DESKTOP_IDLE_SECS` measures longer.
    let idle_secs =
        std::env::var("CPWATCH_DESKTOP_IDLE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let idle = Duration::from_secs(idle_secs);
    std::thread::sleep(idle);
    let ticks: u64 = family(app.pid()).iter().map(|p| cpu_ticks(*p)).sum::<u64>() - ticks_before;
    report(&format!("desktop e2e: measure: memory with the window open: {open_memory}"));
    report(&format!("desktop e2e: measure: memory with the window closed: {closed_memory}"));
    report(&format!(
        "desktop e2e: measure: CPU while idle with the window closed: {ticks} ticks of 1/100 s in {} s",
        idle.as_secs()
    ));
    assert!(app.running(), "closing the window does not end the app");
    deliver(&webhook, "error", "189", Some("85046"), 1);
    let got = desktop.wait_for_notifications(seen, 1);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].body, "Subject 44732, upload 85046: Device clock invalid");

    // Starting it again brings the window forward instead of a second app.
    let mut again = desktop.launch(&data, &[]);
    let status = again.wait_exit();
    assert!(status.success(), "a second start exits cleanly: {}", again.log());
    let (said, _) = again.line("cpwatch-desktop is already running");
    assert!(said.contains("brought forward"), "{said:?}");
    eventually("the window is back", || (!x.shown("cpwatch").is_empty()).then_some(()));

    // Another app with its own runtime directory but the same data refuses to start.
    let elsewhere = desktop.dir.path().join("runtime-2");
    std::fs::create_dir_all(&elsewhere).expect("runtime dir");
    let mut second = desktop.launch_with(&data, &["--hidden"], &[("XDG_RUNTIME_DIR", &elsewhere)]);
    let status = second.wait_exit();
    assert!(!status.success(), "two receivers never share a data directory");
    assert!(second.log().contains("is already running on the data directory"), "{}", second.log());

    // Quit from the tray ends the app cleanly.
    desktop.click(&item, &menu, "Quit cpwatch");
    let status = app.wait_exit();
    assert!(status.success(), "Quit exits with 0: {status}");
}

#[test]
fn without_a_notification_server_or_a_session_bus_the_app_still_receives_and_says_so() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for session in [Session::NoNotificationDaemon, Session::NoBus] {
        let desktop = Desktop::start(session);
        let data = prepare_data(desktop.dir.path());
        let mut app = desktop.launch(&data, &["--hidden"]);
        let (webhook, dashboard, _) = app.urls();
        if session == Session::NoNotificationDaemon {
            // Measured, never asserted: the app as it waits in the tray after login.
            std::thread::sleep(Duration::from_secs(3));
            let memory = memory_report(app.pid());
            report(&format!("desktop e2e: measure: memory started hidden, window never opened: {memory}"));
        }
        deliver(&webhook, "error", "189", Some("85045"), 1);
        let overview = eventually("the dashboard says notifications are unavailable", || {
            Some(api(&dashboard, "overview")).filter(|o| o["desktop"]["notifications"] == "unavailable")
        });
        assert_eq!(
            overview["totals"]["uploads_error"], 1,
            "{session:?}: the delivery was received: {overview}"
        );
        if session == Session::NoNotificationDaemon {
            let item = desktop.tray_item();
            let tooltip = eventually("the tray says so", || {
                Some(desktop.tooltip(&item)).filter(|t| t.contains("Notifications unavailable"))
            });
            assert!(tooltip.starts_with("cpwatch: 1 new failed upload"), "{tooltip:?}");
        }
        deliver(&webhook, "completed", "189", Some("85047"), 1);
        let upload = api(&dashboard, "uploads/189/85047");
        assert_eq!(upload["upload"]["status"], "completed", "{session:?}: still receiving");
        assert!(app.running(), "{session:?}: the app keeps running");
        kill_term(app.pid());
        let status = app.wait_exit();
        assert!(status.success(), "{session:?}: SIGTERM stops it cleanly: {status}");
    }
}

/// The app started hidden behind a real TLS reverse proxy (nginx, with a CA the test
/// makes) as its public URL, probed every `probe_interval_secs`.
fn launch_behind_proxy(desktop: &Desktop, data: &Path, probe_interval_secs: u64) -> (TlsProxy, App) {
    let mut proxy = TlsProxy::new();
    let listen = tls_proxy::free_port();
    proxy.set_upstream(listen);
    let listen = PathBuf::from(format!("127.0.0.1:{listen}"));
    let origin = PathBuf::from(proxy.origin());
    let interval = PathBuf::from(probe_interval_secs.to_string());
    let app = desktop.launch_with(
        data,
        &["--hidden"],
        &[
            ("CPWATCH_LISTEN", &listen),
            ("CPWATCH_PUBLIC_URL", &origin),
            ("CPWATCH_EXTRA_CA_FILE", &proxy.ca_pem_path),
            ("CPWATCH_PROBE_INTERVAL_SECS", &interval),
        ],
    );
    (proxy, app)
}

/// The tunnel fails and comes back: a real TLS reverse proxy (nginx, with a CA the test
/// makes) stands in for it in front of the app's receiver, which probes it every second.
/// A person is told at once, critically, that CentrePoint cannot reach cpwatch, sees it
/// in the tray, and is told when it can again; the new URL comes with the portal steps.
#[test]
fn the_desktop_app_tells_when_centrepoint_cannot_reach_it_and_when_it_can_again() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let desktop = Desktop::start(Session::Full);
    let data = prepare_data(desktop.dir.path());
    let seen = desktop.last_notification_id();
    let (mut proxy, mut app) = launch_behind_proxy(&desktop, &data, 1);
    let public = format!("{}/webhook", proxy.origin());
    let (_, dashboard, _) = app.urls();
    let item = desktop.tray_item();

    // Reachable through the proxy; the URL was never validated at, so the portal steps.
    eventually("the dashboard shows the receiver reachable", || {
        Some(api(&dashboard, "overview")).filter(|o| o["receiver"]["reachability"]["state"] == "reachable")
    });
    let got = desktop.wait_for_notifications(seen, 1);
    let steps = got.iter().find(|n| n.summary == "New webhook URL: tell the CentrePoint portal");
    let steps = steps.unwrap_or_else(|| panic!("the new URL is told: {got:#?}"));
    assert!(steps.body.contains(&format!("set the target URL to {public} and press Validate")), "{steps:?}");
    assert!(got.iter().all(|n| n.urgency != "critical"), "nothing is wrong yet, nothing critical: {got:#?}");
    let seen = got.last().map_or(seen, |n| n.id);
    let reachable_icon = desktop.item_property(&item, "IconPixmap");
    let tooltip = desktop.tooltip(&item);
    assert!(tooltip.contains(&format!("New webhook URL {public}")), "the tray says it too: {tooltip:?}");

    // The tunnel dies: told at once, critically, with the reason; the tray shows it.
    proxy.stop();
    let got = desktop.wait_for_notifications(seen, 1);
    let down = &got[0];
    assert_eq!(down.summary, "CentrePoint cannot reach cpwatch", "{got:#?}");
    assert_eq!(down.urgency, "critical", "{down:?}");
    assert!(down.body.starts_with("CentrePoint cannot reach cpwatch since "), "{down:?}");
    assert!(down.body.contains("refuses connections"), "with the reason: {down:?}");
    assert!(down.body.ends_with("Deliveries will be retried for 48 h."), "{down:?}");
    let seen = got.last().map_or(seen, |n| n.id);
    let tooltip = eventually("the tray shows it cannot be reached", || {
        Some(desktop.tooltip(&item)).filter(|t| t.starts_with("cpwatch: CentrePoint cannot reach cpwatch: "))
    });
    assert!(tooltip.contains("refuses connections"), "the reason is in the tooltip: {tooltip:?}");
    assert_ne!(desktop.item_property(&item, "IconPixmap"), reachable_icon, "the icon's look changes");

    // Back: told once, normally; the tray is all good again.
    proxy.restart();
    let got = desktop.wait_for_notifications(seen, 1);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].summary, "CentrePoint can reach cpwatch again");
    assert_eq!(got[0].urgency, "normal");
    eventually("the tray is all good again", || {
        Some(desktop.tooltip(&item)).filter(|t| t.starts_with("cpwatch: all good"))
    });
    assert_eq!(desktop.item_property(&item, "IconPixmap"), reachable_icon);

    // Copy webhook URL gives the public URL, the one to enter in the portal.
    let menu = desktop.menu_path(&item);
    let x = desktop.x();
    desktop.click(&item, &menu, "Copy webhook URL");
    app.logged(&format!("copied the webhook URL {public}"));
    eventually("the public URL can be pasted", || x.clipboard().filter(|p| *p == public));

    desktop.click(&item, &menu, "Quit cpwatch");
    assert!(app.wait_exit().success(), "Quit exits with 0");
}

/// Probing costs nothing between probes: with the interval longer than the measurement,
/// the idle app (window never opened) is measured as the main test measures it. Measured,
/// never asserted; what is asserted is that no probe ran in between.
#[test]
fn the_idle_desktop_app_does_no_work_between_probes() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let desktop = Desktop::start(Session::Full);
    let data = prepare_data(desktop.dir.path());
    let window = Duration::from_secs(30);
    let (_proxy, mut app) = launch_behind_proxy(&desktop, &data, 3600);
    let (_, dashboard, _) = app.urls();
    let probed = eventually("the first probe says reachable", || {
        Some(api(&dashboard, "overview"))
            .filter(|o| o["receiver"]["reachability"]["state"] == "reachable")
            .map(|o| o["receiver"]["reachability"]["checked_at"].clone())
    });
    // Let the start settle (the tray, the notifications of the start) before measuring.
    std::thread::sleep(Duration::from_secs(3));
    let before: u64 = family(app.pid()).iter().map(|p| cpu_ticks(*p)).sum();
    std::thread::sleep(window);
    let ticks: u64 = family(app.pid()).iter().map(|p| cpu_ticks(*p)).sum::<u64>() - before;
    report(&format!(
        "desktop e2e: measure: CPU while idle between probes (interval 3600 s), window never opened: \
         {ticks} ticks of 1/100 s in {} s",
        window.as_secs()
    ));
    let overview = api(&dashboard, "overview");
    assert_eq!(overview["receiver"]["reachability"]["checked_at"], probed, "no probe in between: {overview}");
    assert!(app.running());
    kill_term(app.pid());
    assert!(app.wait_exit().success());
}

/// The next Monday at least four days ahead, at 07:59:35 local time: the clock the app is
/// started with, so that a subject who uploaded today is silent then, a roster member who
/// never synced too, and the morning digest (08:00) is due 25 seconds later. A Monday,
/// so that no week is below target yet whatever today is.
fn a_monday_morning_ahead() -> chrono::DateTime<chrono::Local> {
    use chrono::{Datelike as _, TimeZone as _};
    let mut day = chrono::Local::now().date_naive() + chrono::Duration::days(4);
    while day.weekday() != chrono::Weekday::Mon {
        day += chrono::Duration::days(1);
    }
    let at = day.and_hms_opt(7, 59, 35).expect("a time");
    chrono::Local.from_local_datetime(&at).earliest().expect("a local time")
}

/// Silence is noticed without a delivery: a subject who uploaded and then went quiet,
/// and a roster member who never synced, are told in one notification for the study;
/// the morning digest follows at 08:00 with whom to call, and a click on it opens the
/// compliance view. The days pass on the app's clock, injected through `CPWATCH_TEST_NOW`.
/// A restart tells neither again.
#[test]
fn the_desktop_app_tells_who_went_silent_and_brings_the_morning_digest() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let desktop = Desktop::start(Session::Full);
    let data = prepare_data(desktop.dir.path());
    {
        let conn = cpwatch::store::open_in(&data).expect("store");
        let enrolled = chrono::Local::now().date_naive() - chrono::Duration::days(2);
        let roster = format!("subject_id,label,enrolled_on\nnever-1,Never synced,{enrolled}\n44732,,\n");
        let entries = cpwatch::store::roster::parse_csv(roster.as_bytes()).expect("a roster");
        cpwatch::store::roster::import(&conn, "189", &entries, chrono::Utc::now()).expect("roster import");
    }
    // Today, subject 44732 uploads: cpwatch knows it from then on.
    let mut app = desktop.launch(&data, &["--hidden"]);
    let (webhook, _, _) = app.urls();
    deliver(&webhook, "completed", "189", Some("70001"), 1);
    kill_term(app.pid());
    assert!(app.wait_exit().success(), "SIGTERM stops it cleanly");

    // Days later, early on a Monday morning.
    let monday = a_monday_morning_ahead();
    let clock = PathBuf::from(monday.to_rfc3339());
    let seen = desktop.last_notification_id();
    let mut app = desktop.launch_with(&data, &["--hidden"], &[("CPWATCH_TEST_NOW", &clock)]);
    let (_, dashboard, _) = app.urls();
    let got = desktop.wait_for_notifications(seen, 1);
    assert_eq!(got.len(), 1, "one notification for the study's silent subjects: {got:#?}");
    let silent = &got[0];
    assert_eq!(silent.summary, "Sleep study: 2 subjects have not synced for 3 days or more", "{silent:?}");
    assert!(silent.body.starts_with("never-1 ("), "the longest silence first: {silent:?}");
    assert!(silent.body.contains(", 44732 ("), "{silent:?}");
    assert_eq!(silent.urgency, "normal");
    let seen = silent.id;

    // At 08:00 on the app's clock: the digest; a click on it opens the compliance view.
    eventually("the digest is on screen", || {
        desktop.dunstctl(&["count", "displayed"]).ok().filter(|c| c.trim() != "0")
    });
    desktop.dunstctl(&["action", "0"]).expect("click the digest");
    app.logged("showing the dashboard at #/compliance/189");
    let got = desktop.wait_for_notifications(seen, 1);
    assert_eq!(got.len(), 1, "{got:#?}");
    let digest = &got[0];
    assert_eq!(digest.summary, "Morning digest: Sleep study");
    assert_eq!(
        digest.body,
        "Sleep study: 2 silent, 0 below target, 0 uploads yesterday, 0 failed\nNot synced: never-1, 44732",
        "with whom to call"
    );
    let seen = digest.id;
    let compliance = api(&dashboard, "studies/189/compliance");
    let ids: BTreeSet<String> = compliance["subjects"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["subject_id"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    assert_eq!(ids, BTreeSet::from(["never-1".to_string(), "44732".to_string()]), "{compliance}");
    kill_term(app.pid());
    assert!(app.wait_exit().success(), "SIGTERM stops it cleanly");

    // Started again the same morning: neither the silence nor the digest is told twice.
    let later = PathBuf::from((monday + chrono::Duration::minutes(5)).to_rfc3339());
    let mut app = desktop.launch_with(&data, &["--hidden"], &[("CPWATCH_TEST_NOW", &later)]);
    app.urls();
    desktop.tray_item();
    std::thread::sleep(Duration::from_secs(3));
    let again = desktop.wait_for_notifications(seen, 0);
    assert!(again.is_empty(), "nothing told twice after a restart: {again:#?}");
    kill_term(app.pid());
    assert!(app.wait_exit().success(), "SIGTERM stops it cleanly");
}

//! The dashboard window, in a process of its own. The app in the tray never creates a
//! web view: showing the dashboard starts `cpwatch-desktop --window-for <URL>`, which
//! shows the in-process dashboard's loopback URL and ends when its window is closed.
//! Everything a web view brings (WebKit's GL, its network and web content processes)
//! goes with it, so the app waiting in the tray stays small.
//!
//! The two speak over pipes: one line per request on the window process's stdin, a
//! dashboard hash route to show (an empty line only brings the window forward), answered
//! `shown` on its stdout. A request the window closed before answering is shown again in
//! a new window. Its stdin closing (the app quit or died) ends the window process.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

use tauri::{AppHandle, Manager as _, Runtime, Url, WebviewUrl, WebviewWindowBuilder};
use tokio::sync::mpsc::UnboundedSender;

use crate::{Control, Shell};

/// The window's label.
pub const LABEL: &str = "dashboard";

/// The flag that makes `cpwatch-desktop` a window process.
pub const WINDOW_FLAG: &str = "--window-for";

/// The URL that shows `route` (a dashboard hash route such as `#/uploads/189/85045`).
/// Anything but a hash route is ignored: the window only ever shows this dashboard.
pub fn url(dashboard_url: &str, route: Option<&str>) -> anyhow::Result<Url> {
    Ok(Url::parse(&format!("{dashboard_url}{}", hash_route(route)))?)
}

fn hash_route(route: Option<&str>) -> &str {
    route.filter(|r| r.starts_with('#') && !r.contains(['\n', '\r'])).unwrap_or("")
}

/// How the window process is started: a program and the arguments before
/// `--window-for <URL>` (none for this executable).
#[derive(Debug, Clone)]
pub struct WindowProgram {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Environment variables the app set for itself only, left out of the window's.
    pub unset: Vec<String>,
}

impl WindowProgram {
    /// This executable.
    pub fn this_exe() -> std::io::Result<WindowProgram> {
        Ok(WindowProgram { program: std::env::current_exe()?, args: Vec::new(), unset: Vec::new() })
    }
}

/// The window process, while one runs (managed Tauri state of the app in the tray).
#[derive(Clone)]
pub struct Windows {
    inner: Arc<Inner>,
}

struct Inner {
    program: WindowProgram,
    dashboard_url: String,
    control: UnboundedSender<Control>,
    running: Mutex<Option<Running>>,
}

struct Running {
    /// Which start this is, so that an old one's exit does not forget a newer one.
    generation: u64,
    stdin: ChildStdin,
    /// A route sent and not yet acknowledged. A window closed just then ends its process
    /// without showing it; the route is shown again in a new window.
    unanswered: Option<String>,
}

impl Windows {
    pub fn new(program: WindowProgram, dashboard_url: String, control: UnboundedSender<Control>) -> Windows {
        Windows { inner: Arc::new(Inner { program, dashboard_url, control, running: Mutex::new(None) }) }
    }

    /// Whether a window process runs now.
    pub fn shown(&self) -> bool {
        self.inner.running.lock().is_ok_and(|r| r.is_some())
    }

    /// Shows `route` in the running window, or starts one showing it.
    fn show(&self, route: Option<&str>) -> anyhow::Result<()> {
        let route = hash_route(route);
        let mut running =
            self.inner.running.lock().map_err(|_| anyhow::anyhow!("the window state is poisoned"))?;
        if let Some(current) = running.as_mut() {
            let line = format!("{route}\n");
            if current.stdin.write_all(line.as_bytes()).and_then(|()| current.stdin.flush()).is_ok() {
                current.unanswered = Some(route.to_string());
                return Ok(());
            }
            // Its stdin is closed: it has ended. Start another.
            *running = None;
        }
        let program = &self.inner.program;
        let url = url(&self.inner.dashboard_url, Some(route))?;
        let mut command = Command::new(&program.program);
        for name in &program.unset {
            command.env_remove(name);
        }
        let mut child = command
            .args(&program.args)
            .arg(WINDOW_FLAG)
            .arg(url.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!("cannot start the window process {}: {e}", program.program.display())
            })?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow::anyhow!("the window process has no stdin"))?;
        let generation = next_generation();
        *running = Some(Running { generation, stdin, unanswered: None });
        drop(running);
        self.watch(child, generation);
        Ok(())
    }

    /// Hears the window process's answers until it ends. Its end means its window was
    /// closed: the person has looked. A route it never answered is shown anew.
    fn watch(&self, mut child: Child, generation: u64) {
        let windows = self.clone();
        let spawned = std::thread::Builder::new().name("window-process".into()).spawn(move || {
            if let Some(answers) = child.stdout.take() {
                for line in BufReader::new(answers).lines() {
                    let Ok(line) = line else { break };
                    if line == SHOWN {
                        windows.with_current(generation, |r| r.unanswered = None);
                    }
                }
            }
            match child.wait() {
                Ok(status) if status.success() => tracing::debug!("the window closed"),
                Ok(status) => tracing::warn!("the window process ended: {status}"),
                Err(e) => tracing::warn!("cannot wait for the window process: {e}"),
            }
            let unanswered = windows.take_current(generation).and_then(|r| r.unanswered);
            let _ = windows.inner.control.send(Control::Looked);
            if let Some(route) = unanswered {
                tracing::info!("the window closed before showing {route:?}: showing it in a new one");
                if let Err(e) = windows.show(Some(&route)) {
                    tracing::error!("cannot show the dashboard window: {e:#}");
                }
            }
        });
        if let Err(e) = spawned {
            tracing::warn!("cannot watch the window process ({e}); closing it will not count as a look");
        }
    }

    fn with_current(&self, generation: u64, f: impl FnOnce(&mut Running)) {
        if let Ok(mut running) = self.inner.running.lock() {
            if let Some(current) = running.as_mut().filter(|r| r.generation == generation) {
                f(current);
            }
        }
    }

    /// Forgets the window process `generation` (if it is still the current one).
    fn take_current(&self, generation: u64) -> Option<Running> {
        let mut running = self.inner.running.lock().ok()?;
        if running.as_ref().is_some_and(|r| r.generation == generation) {
            running.take()
        } else {
            None
        }
    }
}

/// What the window process answers once it has shown a route.
const SHOWN: &str = "shown";

/// A number telling window processes apart (their order does not matter).
fn next_generation() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Shows the dashboard at `route` (the overview when `None`): brings the window forward
/// if it is open, starts it otherwise. Failures are logged (nobody to return them to).
pub fn open<R: Runtime>(app: &AppHandle<R>, route: Option<&str>) {
    let shown = hash_route(route);
    tracing::info!("showing the dashboard at {}", if shown.is_empty() { "#/overview" } else { shown });
    if let Err(e) = app.state::<Windows>().show(route) {
        tracing::error!("cannot show the dashboard window: {e:#}");
    }
    app.state::<Shell>().tell(Control::Looked);
}

/// The window process: the dashboard at `url` in a web view, until its window is closed
/// or the app in the tray goes away (its stdin closes).
pub fn run_window(url: &str) -> anyhow::Result<()> {
    let url = Url::parse(url)?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if url.scheme() != "http" || !loopback {
        anyhow::bail!("the window only shows the local dashboard, not {url}");
    }
    let app = tauri::Builder::default()
        .setup(move |app| {
            WebviewWindowBuilder::new(app, LABEL, WebviewUrl::External(url.clone()))
                .title("cpwatch")
                .inner_size(1200.0, 800.0)
                .min_inner_size(640.0, 480.0)
                .focused(true)
                .build()?;
            let handle = app.handle().clone();
            std::thread::Builder::new().name("window-requests".into()).spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let Ok(route) = line else { break };
                    let (shower, base) = (handle.clone(), url.clone());
                    let _ = handle.run_on_main_thread(move || {
                        if bring_forward(&shower, &base, &route) {
                            let mut out = std::io::stdout().lock();
                            let _ = writeln!(out, "{SHOWN}").and_then(|()| out.flush());
                        }
                    });
                }
                handle.exit(0);
            })?;
            Ok(())
        })
        .build(tauri::generate_context!())?;
    app.run(|_, _| {});
    Ok(())
}

/// Shows `route` of the dashboard at `base` (only brings the window forward when empty);
/// false when the window is gone (closed meanwhile) or cannot be shown.
fn bring_forward<R: Runtime>(app: &AppHandle<R>, base: &Url, route: &str) -> bool {
    let Some(window) = app.get_webview_window(LABEL) else { return false };
    let shown = (|| -> anyhow::Result<()> {
        if let Some(fragment) = route.strip_prefix('#') {
            let mut target = base.clone();
            target.set_fragment(Some(fragment));
            window.navigate(target)?;
        }
        window.show()?;
        window.unminimize()?;
        window.set_focus()?;
        Ok(())
    })();
    if let Err(e) = &shown {
        tracing::warn!("cannot bring the window forward: {e:#}");
    }
    shown.is_ok()
}

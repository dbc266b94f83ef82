//! The dashboard window, in a process of its own. The app in the tray never creates a
//! web view: showing the dashboard starts `cpwatch-desktop --window-for <URL>`, which
//! shows the in-process dashboard's loopback URL and ends when its window is closed.
//! Everything a web view brings (WebKit's GL, its network and web content processes)
//! goes with it, so the app waiting in the tray stays small.
//!
//! The two speak over the window process's stdin: one line per request, a dashboard hash
//! route to show (an empty line only brings the window forward). Its stdin closing (the
//! app quit or died) ends it.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

use tauri::{AppHandle, Manager as _, Runtime, Url, WebviewUrl, WebviewWindowBuilder};

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
pub struct Windows {
    program: WindowProgram,
    running: Arc<Mutex<Option<Running>>>,
}

struct Running {
    /// Which start this is, so that an old one's exit does not forget a newer one.
    generation: u64,
    stdin: ChildStdin,
}

impl Windows {
    pub fn new(program: WindowProgram) -> Windows {
        Windows { program, running: Arc::new(Mutex::new(None)) }
    }

    /// Whether a window process runs now.
    pub fn shown(&self) -> bool {
        self.running.lock().is_ok_and(|r| r.is_some())
    }

    /// Shows `route` in the running window, or starts one showing it.
    fn show(
        &self,
        dashboard_url: &str,
        route: Option<&str>,
        control: &tokio::sync::mpsc::UnboundedSender<Control>,
    ) -> anyhow::Result<()> {
        let mut running = self.running.lock().map_err(|_| anyhow::anyhow!("the window state is poisoned"))?;
        if let Some(current) = running.as_mut() {
            let line = format!("{}\n", hash_route(route));
            if current.stdin.write_all(line.as_bytes()).and_then(|()| current.stdin.flush()).is_ok() {
                return Ok(());
            }
            // It is ending (its window was just closed): start another.
            *running = None;
        }
        let url = url(dashboard_url, route)?;
        let mut command = Command::new(&self.program.program);
        for name in &self.program.unset {
            command.env_remove(name);
        }
        let mut child = command
            .args(&self.program.args)
            .arg(WINDOW_FLAG)
            .arg(url.as_str())
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!("cannot start the window process {}: {e}", self.program.program.display())
            })?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow::anyhow!("the window process has no stdin"))?;
        let generation = next_generation();
        *running = Some(Running { generation, stdin });
        drop(running);
        self.watch(child, generation, control.clone());
        Ok(())
    }

    /// When the window process ends, its window was closed: the person has looked.
    fn watch(&self, mut child: Child, generation: u64, control: tokio::sync::mpsc::UnboundedSender<Control>) {
        let running = self.running.clone();
        let spawned = std::thread::Builder::new().name("window-process".into()).spawn(move || {
            match child.wait() {
                Ok(status) if status.success() => tracing::debug!("the window closed"),
                Ok(status) => tracing::warn!("the window process ended: {status}"),
                Err(e) => tracing::warn!("cannot wait for the window process: {e}"),
            }
            if let Ok(mut running) = running.lock() {
                if running.as_ref().is_some_and(|r| r.generation == generation) {
                    *running = None;
                }
            }
            let _ = control.send(Control::Looked);
        });
        if let Err(e) = spawned {
            tracing::warn!("cannot watch the window process ({e}); closing it will not count as a look");
        }
    }
}

/// A number telling window processes apart (their order does not matter).
fn next_generation() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Shows the dashboard at `route` (the overview when `None`): brings the window forward
/// if it is open, starts it otherwise. Failures are logged (nobody to return them to).
pub fn open<R: Runtime>(app: &AppHandle<R>, route: Option<&str>) {
    let shell = app.state::<Shell>();
    tracing::info!(
        "showing the dashboard at {}",
        route.filter(|r| r.starts_with('#')).unwrap_or("#/overview")
    );
    if let Err(e) = app.state::<Windows>().show(&shell.dashboard_url, route, &shell.control()) {
        tracing::error!("cannot show the dashboard window: {e:#}");
    }
    shell.tell(Control::Looked);
}

/// The window process: the dashboard at `url` in a web view, until its window is closed
/// or the app in the tray goes away (its stdin closes).
pub fn run_window(url: &str) -> anyhow::Result<()> {
    let url = Url::parse(url)?;
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
                    let _ = handle.run_on_main_thread(move || bring_forward(&shower, &base, &route));
                }
                handle.exit(0);
            })?;
            Ok(())
        })
        .build(tauri::generate_context!())?;
    app.run(|_, _| {});
    Ok(())
}

/// Shows `route` of the dashboard at `base` (only brings the window forward when empty).
fn bring_forward<R: Runtime>(app: &AppHandle<R>, base: &Url, route: &str) {
    let Some(window) = app.get_webview_window(LABEL) else { return };
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
    if let Err(e) = shown {
        tracing::warn!("cannot bring the window forward: {e:#}");
    }
}

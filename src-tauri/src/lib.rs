//! `cpwatch-desktop`: the cpwatch receiver and dashboard in-process, the dashboard in a
//! window, the state in a tray icon, failures as desktop notifications. A thin shell:
//! what to notify, when, and what the tray says come from the core (`cpwatch::notify`,
//! its `runtime` loop and `tray` model), starting at login and running once from
//! `cpwatch::desktop`; this crate only turns them into windows, icons and D-Bus calls.

mod icons;
mod notifications;
mod tray;
mod window;

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use cpwatch::config::Config;
use cpwatch::dashboard::DesktopLink;
use cpwatch::desktop::instance;
use cpwatch::notify::runtime::{Desktop, Watcher};
use cpwatch::notify::Notice;
use cpwatch::reach::ReachHandle;
use cpwatch::server::{self, Receiver, ServerError};
use cpwatch::store::{LiveEvent, ReadPool};
use tauri::{AppHandle, Manager as _, RunEvent, Runtime};
use tokio::sync::{broadcast, mpsc as async_mpsc, oneshot};

pub use cpwatch::desktop::autostart::{AtLogin, Autostart};
pub use cpwatch::desktop::instance::{Claim, Primary, Request};
pub use cpwatch::notify::runtime::Control;
pub use cpwatch::notify::tray::{ids as menu_ids, next_morning, View};
pub use notifications::Message;
pub use tray::{on_menu, Tray};
pub use window::{WindowProgram, Windows, WINDOW_FLAG};

#[derive(Debug, Parser)]
#[command(
    name = "cpwatch-desktop",
    version = cpwatch::VERSION,
    about = "The cpwatch desktop app: receives CentrePoint webhooks like `cpwatch serve`, with a tray icon, \
             desktop notifications and the dashboard in a window",
    after_help = "Configuration: ~/.config/cpwatch/config.toml, then CPWATCH_* variables, then flags; the data in \
                  ~/.local/share/cpwatch: the same lookup as `cpwatch serve` (see `cpwatch --help`)."
)]
struct Args {
    /// Start in the tray, without opening the window (as at login).
    #[arg(long)]
    hidden: bool,
    /// Configuration file (default: the platform config directory's cpwatch/config.toml).
    #[arg(long, env = "CPWATCH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory holding the database (default: the platform data directory's cpwatch/).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// More log output (-v debug, -vv trace); CPWATCH_LOG takes a full filter.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long)]
    quiet: bool,
    /// Internal: be the dashboard window of the app in the tray, showing this URL.
    #[arg(long = "window-for", value_name = "URL", hide = true)]
    window_for: Option<String>,
}

/// What the app's parts share (managed Tauri state).
pub struct Shell {
    pub dashboard_url: String,
    /// The local webhook URL.
    pub webhook_url: String,
    /// The public URL, found or configured, and whether CentrePoint can reach it.
    pub reach: ReachHandle,
    pub pool: ReadPool,
    /// Start at login, for the tray's toggle and the tray's check mark (the dashboard
    /// has its own handle).
    pub at_login: Arc<AtLogin>,
    link: DesktopLink,
    control: async_mpsc::UnboundedSender<Control>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl Shell {
    /// Tells the app's loop something (a pause, a look at the dashboard, ...).
    pub fn tell(&self, control: Control) {
        if self.control.send(control).is_err() {
            tracing::warn!("the notification loop has stopped");
        }
    }

    pub fn control(&self) -> async_mpsc::UnboundedSender<Control> {
        self.control.clone()
    }

    /// What the dashboard shows about the desktop app.
    pub fn status(&self) -> Option<serde_json::Value> {
        self.link.status()
    }

    /// Stops the receiver (finishing in-flight deliveries), then the app.
    pub fn quit<R: Runtime>(&self, app: &AppHandle<R>) {
        tracing::info!("quitting: finishing in-flight deliveries");
        let stop = self.stop.lock().ok().and_then(|mut s| s.take());
        // Without a running receiver there is nothing to wait for.
        if stop.is_none_or(|stop| stop.send(()).is_err()) {
            app.exit(0);
        }
    }
}

/// The receiver running, before any window or tray exists.
pub struct Started {
    shell: Shell,
    live: broadcast::Receiver<LiveEvent>,
    control: async_mpsc::UnboundedReceiver<Control>,
    receiver: tauri::async_runtime::JoinHandle<Result<(), ServerError>>,
    /// What `cpwatch serve` prints once started, printed the same.
    banner: String,
    /// Failures from here on are new to the person, until they look at the dashboard.
    since: chrono::DateTime<chrono::Utc>,
}

impl Started {
    /// Starts the receiver and the dashboard exactly as `cpwatch serve` does (same
    /// configuration, same data directory lock), serving until `shutdown` resolves or
    /// the app quits. Call inside the Tauri async runtime.
    pub async fn start(
        config: Config,
        autostart: Option<Autostart>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Started, ServerError> {
        let since = chrono::Utc::now();
        let receiver = Receiver::start(config).await?;
        let (control_tx, control) = async_mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let at_login = Arc::new(AtLogin { autostart, control: control_tx.clone() });
        let link = receiver.desktop_link();
        link.attach(at_login.clone());
        let shell = Shell {
            dashboard_url: receiver.dashboard_url(),
            webhook_url: receiver.webhook_url(),
            reach: receiver.reach(),
            pool: receiver.pool(),
            at_login,
            link,
            control: control_tx,
            stop: Mutex::new(Some(stop_tx)),
        };
        let live = receiver.subscribe();
        let banner = receiver.banner();
        let until = async move {
            tokio::select! {
                () = shutdown => {}
                _ = stop_rx => {}
            }
        };
        let receiver = tauri::async_runtime::spawn(receiver.run(until));
        Ok(Started { shell, live, control, receiver, banner, since })
    }

    pub fn shell(&self) -> &Shell {
        &self.shell
    }
}

/// Where notifications go.
pub enum Notices {
    /// To the desktop's notification server, with this icon.
    Desktop { icon: Option<PathBuf> },
    /// To a channel (tests).
    To(mpsc::Sender<Message>),
}

pub struct Options {
    /// Start without the window.
    pub hidden: bool,
    /// Put an icon in the tray (tests on the mock runtime have no tray host).
    pub tray: bool,
    pub notices: Notices,
    /// The single-instance socket, to bring the window forward when started again.
    pub instance: Option<Primary>,
    /// What shows the dashboard window (this executable, as a window process).
    pub window: WindowProgram,
    /// The notification loop's clock starts here instead of now (tests of what a
    /// morning brings; [`TEST_NOW`]).
    pub clock: Option<chrono::DateTime<chrono::Utc>>,
}

/// A test-only setting: an RFC 3339 time the notification loop's clock starts from (the
/// silent subjects and the morning digest as of then), running on from there.
pub const TEST_NOW: &str = "CPWATCH_TEST_NOW";

/// The test clock's start, from [`TEST_NOW`]; a value that is not a time is refused.
fn test_clock() -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
    match std::env::var(TEST_NOW) {
        Ok(text) => chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| Some(t.with_timezone(&chrono::Utc)))
            .with_context(|| format!("{TEST_NOW}={text:?} is not an RFC 3339 time")),
        Err(_) => Ok(None),
    }
}

/// The app on any Tauri runtime: the real one, or `tauri::test::mock_builder()`.
pub fn app<R: Runtime>(builder: tauri::Builder<R>, started: Started, options: Options) -> tauri::Builder<R> {
    let Started { shell, live, control, receiver, since, .. } = started;
    builder
        .plugin(tauri_plugin_clipboard_manager::init())
        .setup(move |app| {
            let handle = app.handle().clone();
            let (pool, link, at_login) = (shell.pool.clone(), shell.link.clone(), shell.at_login.clone());
            let reach = shell.reach.clone();
            let control_tx = shell.control();
            let shell_url = shell.dashboard_url.clone();
            app.manage(shell);
            app.manage(tray::Tray::<R>::default());
            app.manage(window::Windows::new(options.window, shell_url, control_tx.clone()));
            if options.tray {
                tray::place_icon(&handle);
            }
            let notices = match options.notices {
                Notices::To(tx) => tx,
                Notices::Desktop { icon } => {
                    let opener = handle.clone();
                    let on_open: notifications::OnOpen =
                        Arc::new(move |route| window::open(&opener, Some(&route)));
                    let told = control_tx.clone();
                    notifications::spawn(icon, on_open, move |available| {
                        let _ = told.send(Control::Notifications(available));
                    })?
                }
            };
            let screen = Screen { app: handle.clone(), notices };
            let mut watcher = Watcher::new(screen, pool, link, at_login, since).with_reach(reach);
            if let Some(now) = options.clock {
                tracing::warn!("the notification loop's clock starts at {now} ({TEST_NOW})");
                watcher = watcher.with_clock(now);
            }
            tauri::async_runtime::spawn(watcher.run(live, control));
            tauri::async_runtime::spawn(after_receiver(handle.clone(), receiver));
            if let Some(primary) = options.instance {
                let shower = handle.clone();
                instance::serve(primary, move |request| {
                    if request == Request::Show {
                        window::open(&shower, None);
                    }
                });
            }
            if !options.hidden {
                window::open(&handle, None);
            }
            Ok(())
        })
        .on_menu_event(|app, event| tray::on_menu(app, event.id().as_ref()))
}

/// What the app's loop shows on: notices go to the notification thread, the tray is
/// drawn on the main thread.
struct Screen<R: Runtime> {
    app: AppHandle<R>,
    notices: mpsc::Sender<Message>,
}

impl<R: Runtime> Desktop for Screen<R> {
    fn notify(&self, notice: &Notice) {
        if self.notices.send(Message::from(notice)).is_err() {
            tracing::warn!("the notification thread has stopped");
        }
    }

    fn draw(&self, view: View) {
        let app = self.app.clone();
        if let Err(e) = self.app.run_on_main_thread(move || tray::draw(&app, view)) {
            tracing::warn!("cannot redraw the tray: {e}");
        }
    }
}

/// The app keeps running in the tray when its window closes; only Quit (or a signal)
/// ends it, and those exit with a code.
pub fn on_run_event<R: Runtime>(_app: &AppHandle<R>, event: RunEvent) {
    if let RunEvent::ExitRequested { code: None, api, .. } = event {
        api.prevent_exit();
    }
}

/// When the receiver stops: after Quit or a signal the app ends; otherwise it failed,
/// and the tray says it is not listening.
async fn after_receiver<R: Runtime>(
    app: AppHandle<R>,
    receiver: tauri::async_runtime::JoinHandle<Result<(), ServerError>>,
) {
    match receiver.await {
        Ok(Ok(())) => {
            tracing::info!("stopped");
            app.exit(0);
        }
        Ok(Err(e)) => {
            tracing::error!("{e}");
            app.state::<Shell>().tell(Control::NotListening);
        }
        Err(e) => {
            tracing::error!("the receiver task ended: {e}");
            app.state::<Shell>().tell(Control::NotListening);
        }
    }
}

/// Runs `cpwatch-desktop`.
pub fn main() -> ExitCode {
    let args = Args::parse();
    cpwatch::logging::init_logging(args.verbose, args.quiet, &["cpwatch", "cpwatch_desktop"]);
    if let Some(url) = &args.window_for {
        return match window::run_window(url) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cpwatch-desktop: cannot show the dashboard window: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // GTK loads the GL stack (Mesa and its LLVM, ~50 MiB) when it opens the display, for
    // GL the tray app never draws with: off unless the person set it. Set before any
    // thread starts; the window process, which draws, gets the person's setting back.
    let gl_off_here = std::env::var_os(GDK_GL).is_none();
    if gl_off_here {
        std::env::set_var(GDK_GL, "disable");
    }
    match run(args, gl_off_here) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = format!("{e:#}");
            eprintln!("cpwatch-desktop: {message}");
            tell_failure(&message);
            ExitCode::FAILURE
        }
    }
}

/// GTK's switch for its GL support.
const GDK_GL: &str = "GDK_GL";

fn run(args: Args, gl_off_here: bool) -> anyhow::Result<()> {
    let request = if args.hidden { Request::Ping } else { Request::Show };
    let dir =
        instance::default_dir().context("no runtime or cache directory is known (set XDG_RUNTIME_DIR)")?;
    let primary =
        match instance::claim(&dir, request).context("cannot check for a running cpwatch-desktop")? {
            Claim::First(primary) => primary,
            Claim::Told => {
                let shown = if args.hidden { "" } else { "; its window is brought forward" };
                println!("cpwatch-desktop is already running{shown}");
                return Ok(());
            }
        };
    let mut config = Config::load(args.config.as_deref(), |name| std::env::var(name).ok())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = Some(dir);
    }
    config.validate()?;
    let icon = install_icon();
    let autostart = Autostart::for_user(icon.clone());
    let started =
        tauri::async_runtime::block_on(Started::start(config, autostart, server::shutdown_signal()))?;
    // The same lines as `cpwatch serve`: scripts and tests find the ports here.
    print!("{}", started.banner);
    let _ = std::io::stdout().flush();
    let options = Options {
        hidden: args.hidden,
        tray: true,
        notices: Notices::Desktop { icon },
        instance: Some(primary),
        window: WindowProgram {
            unset: if gl_off_here { vec![GDK_GL.into()] } else { Vec::new() },
            ..WindowProgram::this_exe().context("cannot find this program to show its window")?
        },
        clock: test_clock()?,
    };
    let app = app(tauri::Builder::default(), started, options)
        .build(tauri::generate_context!())
        .context("cannot start the desktop app")?;
    app.run(on_run_event);
    Ok(())
}

/// The app icon, where notification servers and the autostart entry can read it: the
/// user's icon directory (`$XDG_DATA_HOME/icons/hicolor/128x128/apps/cpwatch.png`).
fn install_icon() -> Option<PathBuf> {
    const ICON: &[u8] = include_bytes!("../icons/icon.png");
    let path = dirs::data_dir()?.join("icons/hicolor/128x128/apps/cpwatch.png");
    if std::fs::read(&path).ok().as_deref() == Some(ICON) {
        return Some(path);
    }
    let written =
        path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&path, ICON));
    match written {
        Ok(()) => Some(path),
        Err(e) => {
            tracing::warn!("cannot install the icon at {}: {e}", path.display());
            None
        }
    }
}

/// A start that fails (e.g. at login, with no terminal to read) says why in a
/// notification too, if a server answers within a few seconds.
fn tell_failure(message: &str) {
    let message = Message {
        title: "cpwatch could not start".into(),
        body: message.to_string(),
        critical: true,
        route: String::new(),
    };
    let (done_tx, done) = mpsc::channel();
    let spawned = std::thread::Builder::new().name("failure-notice".into()).spawn(move || {
        let _ = notifications::notification(&message, None, false).show();
        let _ = done_tx.send(());
    });
    if spawned.is_ok() {
        let _ = done.recv_timeout(Duration::from_secs(3));
    }
}

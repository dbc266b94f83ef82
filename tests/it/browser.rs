//! The browser-test harness: the real `cpwatch serve` on a temporary data directory,
//! the `cpwatch send` command line beside it, and Debian's Chromium driven headless
//! through its own `chromedriver` over WebDriver (fantoccini), with waits, screenshots
//! and the test artifacts directory.
//!
//! Nothing here asserts on time: every wait is a loop with a generous deadline that only
//! exists so that a broken dashboard fails the test instead of hanging it.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_cpwatch");
/// Deadlines that turn a hang into a failure. Generous: the machine is shared and slow.
pub const START_DEADLINE: Duration = Duration::from_secs(90);
pub const WAIT_DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);
/// What `cpwatch serve` prints once it listens.
const READY: &str = "cpwatch is receiving CentrePoint deliveries at ";
const DASHBOARD: &str = "dashboard: ";
/// The one command that installs the browser and its driver (Debian's `chromium` and
/// `chromium-driver`); `scripts/test.sh` runs the same set-up before the tests.
const SETUP: &str = "bash scripts/setup.sh base e2e";
/// The desktop window's default size, which the dashboard is designed for.
pub const WINDOW: (u32, u32) = (1000, 700);

/// Where a required program is: on PATH, or at Debian's path. A missing one fails the
/// test with the command that installs it; a browser test never passes by skipping.
pub fn require_program(name: &str, debian_path: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path.into_iter().chain([PathBuf::from(debian_path)]).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "the browser tests need `{name}` (Debian's chromium and chromium-driver packages), \
             and it is not installed: run `{SETUP}` (scripts/test.sh does it before the tests)"
        )
    })
}

/// `target/artifacts/dashboard/`, created: where the screenshots go. The target
/// directory is `CARGO_TARGET_DIR` when it is set to an absolute path (as CI does), else
/// the one this test binary was built in.
pub fn artifacts_dir() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        // Cargo's scratch directory for integration tests is `<target dir>/tmp`.
        _ => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("CARGO_TARGET_TMPDIR is inside the target directory")
            .to_path_buf(),
    };
    let dir = target.join("artifacts").join("dashboard");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Waits for a child with a deadline; kills it when the deadline passes.
fn wait_or_kill(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT_DEADLINE;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not finish within {WAIT_DEADLINE:?}");
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// `cpwatch serve` on a temporary data directory with an empty configuration file,
/// receiver and dashboard each on a free loopback port. Killed on drop.
pub struct Cpwatch {
    child: Child,
    tmp: TempDir,
    config: PathBuf,
    data: PathBuf,
    /// `http://127.0.0.1:PORT/webhook`, as printed.
    pub webhook_url: String,
    /// `http://127.0.0.1:PORT/`, as printed.
    pub dashboard_url: String,
    pub log: PathBuf,
}

impl Cpwatch {
    pub fn start() -> Cpwatch {
        let tmp = tempfile::Builder::new().prefix("cpwatch-browser-").tempdir().expect("create a temp dir");
        let config = tmp.path().join("config.toml");
        std::fs::write(&config, "").expect("write the empty configuration file");
        let data = tmp.path().join("data");
        let log = tmp.path().join("serve.log");
        let stderr = std::fs::File::create(&log).expect("create the server log");
        let mut cmd = scrubbed(&config, &data);
        // Probes every second, so that the receiver card shows what a probe found without a wait.
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dashboard-listen",
            "127.0.0.1:0",
            "--probe-interval",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(stderr);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let lines = read_lines(child.stdout.take().expect("piped stdout"));
        let mut server = Cpwatch {
            child,
            tmp,
            config,
            data,
            webhook_url: String::new(),
            dashboard_url: String::new(),
            log,
        };
        let deadline = Instant::now() + START_DEADLINE;
        let mut seen = Vec::new();
        while server.webhook_url.is_empty() || server.dashboard_url.is_empty() {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix(READY) {
                        server.webhook_url = url.trim().to_string();
                    } else if let Some(url) = line.strip_prefix(DASHBOARD) {
                        server.dashboard_url = url.trim().to_string();
                    }
                    seen.push(line);
                }
                Err(_) => panic!(
                    "cpwatch serve did not print its receiver and dashboard URLs within {START_DEADLINE:?} \
                     (stdout so far: {seen:?}); log:\n{}",
                    server.log_text()
                ),
            }
        }
        for url in [&server.webhook_url, &server.dashboard_url] {
            assert!(
                url.starts_with("http://127.0.0.1:") && !url.starts_with("http://127.0.0.1:0/"),
                "cpwatch serve listens on a loopback port of its own: {url}"
            );
        }
        server
    }

    /// The receiver's port, as a person reads it in the webhook URL.
    pub fn receiver_port(&self) -> u16 {
        self.webhook_url
            .strip_prefix("http://127.0.0.1:")
            .and_then(|rest| rest.split('/').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("a port in the webhook URL {}", self.webhook_url))
    }

    /// Runs `cpwatch send <webhook url> ARGS...` as a researcher would, to its end; it
    /// must succeed. Blocks: call it through `block_in_place` from async code.
    pub fn send(&self, args: &[&str]) -> String {
        let out = self.tmp.path().join("send.out");
        let err = self.tmp.path().join("send.err");
        let mut cmd = scrubbed(&self.config, &self.data);
        cmd.arg("send").arg(&self.webhook_url).args(args);
        cmd.stdout(std::fs::File::create(&out).expect("create send.out"));
        cmd.stderr(std::fs::File::create(&err).expect("create send.err"));
        let what = format!("cpwatch send {}", args.join(" "));
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let status = wait_or_kill(&mut child, &what);
        let stdout = std::fs::read_to_string(&out).unwrap_or_default();
        let stderr = std::fs::read_to_string(&err).unwrap_or_default();
        assert!(status.success(), "{what} failed ({status}):\n{stdout}\n{stderr}");
        stdout
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Cpwatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary with `--config` and `--data-dir`, no `CPWATCH_*` variable from the
/// environment and no stdin.
fn scrubbed(config: &Path, data: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CPWATCH_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("CPWATCH_CONFIG", config)
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::null());
    cmd
}

/// Reads a pipe line by line for the whole life of the process (so it never blocks on
/// a full pipe), handing the lines over a channel.
fn read_lines(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    rx
}

/// Headless Chromium under a `chromedriver` of its own, and the WebDriver session.
/// The driver runs in its own process group, so dropping this ends the driver and every
/// browser process it started, even when the session was not closed.
pub struct Browser {
    pub client: Client,
    driver: Child,
    pub driver_log: PathBuf,
    _profile: TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let chromium = require_program("chromium", "/usr/bin/chromium");
        let chromedriver = require_program("chromedriver", "/usr/bin/chromedriver");
        let profile =
            tempfile::Builder::new().prefix("cpwatch-chromium-").tempdir().expect("create a profile dir");
        let driver_log = profile.path().join("chromedriver.log");
        let mut driver = Command::new(&chromedriver)
            // Port 0: the driver picks a free port and says which.
            .arg("--port=0")
            .arg(format!("--log-path={}", driver_log.display()))
            // Chromium keeps crash reports and caches under these: in the temp dir, not $HOME.
            .env("XDG_CONFIG_HOME", profile.path().join("config"))
            .env("XDG_CACHE_HOME", profile.path().join("cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let lines = read_lines(driver.stdout.take().expect("piped stdout"));
        let deadline = Instant::now() + START_DEADLINE;
        let port = loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(rest) = line.split("started successfully on port ").nth(1) {
                        break rest.trim_end_matches('.').trim().parse::<u16>().unwrap_or_else(|e| {
                            panic!("chromedriver's ready line {line:?} names no port: {e}")
                        });
                    }
                }
                Err(_) => {
                    kill_group(&mut driver);
                    panic!("chromedriver did not say it was ready within {START_DEADLINE:?}")
                }
            }
        };
        let user_data = profile.path().join("profile");
        let args = [
            "--headless".to_string(),
            // Root in a container: no sandbox, no GPU, no /dev/shm of any size.
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            // No internet here: without these it keeps trying to reach it.
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--disable-quic".into(),
            "--lang=en-US".into(),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            format!("--user-data-dir={}", user_data.display()),
        ];
        let mut caps = Capabilities::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), json!({ "binary": chromium, "args": args }));
        let client = match ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => client,
            Err(e) => {
                kill_group(&mut driver);
                panic!(
                    "chromedriver could not start {} headless: {e}; driver log:\n{}",
                    chromium.display(),
                    std::fs::read_to_string(&driver_log).unwrap_or_default()
                )
            }
        };
        let browser = Browser { client, driver, driver_log, _profile: profile };
        browser.fit_viewport().await;
        browser
    }

    /// Makes the page area (not the window around it) the desktop window's size: the
    /// window size WebDriver sets includes the browser's own frame.
    async fn fit_viewport(&self) {
        let mut size = WINDOW;
        for _ in 0..3 {
            if let Err(e) = self.client.set_window_size(size.0, size.1).await {
                panic!("set the window to {}x{}: {e}", size.0, size.1);
            }
            let inner = self
                .client
                .execute("return [window.innerWidth, window.innerHeight]", vec![])
                .await
                .unwrap_or_else(|e| panic!("read the viewport size: {e}"));
            let (width, height) = (inner[0].as_i64().unwrap_or(0), inner[1].as_i64().unwrap_or(0));
            if (width, height) == (WINDOW.0.into(), WINDOW.1.into()) {
                return;
            }
            let grow = |now: u32, want: u32, got: i64| (i64::from(now) + i64::from(want) - got).max(1) as u32;
            size = (grow(size.0, WINDOW.0, width), grow(size.1, WINDOW.1, height));
        }
    }

    /// Ends the session (the browser quits), then the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// Kills the driver's whole process group (the driver and the browser processes it
/// started), by its id.
fn kill_group(driver: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", driver.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = driver.kill();
    let _ = driver.wait();
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// The page as a person uses it: find, click, type, wait for what should appear.
#[derive(Clone)]
pub struct Page {
    pub client: Client,
}

impl Page {
    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Runs an asynchronous script: its last argument is the callback to call with the result.
    pub async fn js_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute_async(script, args)
            .await
            .unwrap_or_else(|e| panic!("async script failed: {e}\n{script}"))
    }

    /// Polls `script` until it returns a truthy value, which is returned. Fails with
    /// `what`, the last value and what the page shows if the deadline passes.
    pub async fn wait(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + WAIT_DEADLINE;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            match self.client.execute(script, args.clone()).await {
                Ok(value) if truthy(&value) => return value,
                Ok(value) => last = value,
                // A navigation in progress can fail a script: try again.
                Err(e) => last = Value::String(format!("script error: {e}")),
            }
            tokio::time::sleep(POLL).await;
        }
        let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        let shown = self
            .client
            .execute("return document.getElementById('view')?.innerText ?? document.body.innerText", vec![])
            .await
            .unwrap_or(Value::Null);
        panic!(
            "{what}: not seen within {WAIT_DEADLINE:?} (last value: {last}); at {url} the page shows:\n{}",
            shown.as_str().unwrap_or_default()
        );
    }

    /// Waits for an element to exist, for `why`.
    pub async fn wait_for(&self, css: &str, why: &str) {
        self.wait(why, "return document.querySelector(arguments[0]) !== null", vec![json!(css)]).await;
    }

    /// The element's text content (`None` when there is no such element).
    pub async fn text(&self, css: &str) -> Option<String> {
        self.js("return document.querySelector(arguments[0])?.textContent ?? null", vec![json!(css)])
            .await
            .as_str()
            .map(str::to_string)
    }

    /// Clicks an element as a person would (WebDriver scrolls it into view first),
    /// after waiting for it to exist.
    pub async fn click(&self, css: &str) {
        self.wait_for(css, &format!("{css} is there to click")).await;
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("find {css}: {e}"));
        element.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types into a field.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.wait_for(css, &format!("{css} is there to type into")).await;
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("find {css}: {e}"));
        element.click().await.unwrap_or_else(|e| panic!("focus {css}: {e}"));
        element.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Chooses an option of a `<select>` by its value, as a person picks from the list.
    pub async fn choose(&self, css: &str, value: &str) {
        self.wait(
            &format!("{css} offers the option {value:?}"),
            "const s = document.querySelector(arguments[0]); \
             return !!s && [...s.options].some((o) => o.value === arguments[1])",
            vec![json!(css), json!(value)],
        )
        .await;
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("find {css}: {e}"));
        element.select_by_value(value).await.unwrap_or_else(|e| panic!("choose {value:?} in {css}: {e}"));
    }

    /// The part of the address after `#`.
    pub async fn hash(&self) -> String {
        self.js("return location.hash", vec![]).await.as_str().unwrap_or_default().to_string()
    }

    /// Saves a screenshot of the window as `<artifacts>/<name>.png` and prints its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        // Nothing focused, so no focus ring or caret depends on what was clicked last.
        self.js("document.activeElement?.blur?.()", vec![]).await;
        let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        let path = artifacts_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        println!("screenshot: {}", path.display());
        path
    }
}

/// Runs `scenario` against a cpwatch and a real browser of its own. The scenario runs as
/// a task of its own so that a failed step still leaves what the page showed,
/// `<failure>.png` and `<failure>.html`, with the driver's log `<failure>-chromedriver.log`
/// in [`artifacts_dir`] and cpwatch serve's log on stderr; the browser is closed either way.
pub async fn run_in_browser<F, Fut>(failure: &str, scenario: F)
where
    F: FnOnce(std::sync::Arc<Cpwatch>, Page) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let dir = artifacts_dir();
    let (png, html, driver) = (
        dir.join(format!("{failure}.png")),
        dir.join(format!("{failure}.html")),
        dir.join(format!("{failure}-chromedriver.log")),
    );
    for stale in [&png, &html, &driver] {
        let _ = std::fs::remove_file(stale);
    }
    let cpwatch = std::sync::Arc::new(tokio::task::block_in_place(Cpwatch::start));
    let browser = Browser::start().await;
    let page = Page { client: browser.client.clone() };
    let outcome = tokio::spawn(scenario(cpwatch.clone(), page.clone())).await;
    if let Err(failed) = outcome {
        if let Ok(shot) = page.client.screenshot().await {
            let _ = std::fs::write(&png, shot);
        }
        if let Ok(source) = page.client.source().await {
            let _ = std::fs::write(&html, source);
        }
        let _ = std::fs::copy(&browser.driver_log, &driver);
        eprintln!(
            "the failed step's page and driver log: {}, {}, {}\ncpwatch serve's log:\n{}",
            png.display(),
            html.display(),
            driver.display(),
            cpwatch.log_text(),
        );
        browser.close().await;
        std::panic::resume_unwind(failed.into_panic());
    }
    browser.close().await;
}

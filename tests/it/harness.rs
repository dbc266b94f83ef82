//! The integration-test harness: the real `cpwatch serve` on a temporary data
//! directory, the command line beside it, a read-only view of its database, the
//! fixtures, and two senders: reqwest for well-formed HTTP and a raw socket for what
//! no client library would send.
//!
//! Nothing here asserts on time: every wait is a loop with a generous deadline that
//! only exists so that a broken receiver fails the test instead of hanging it.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Timelike as _, Utc};
use cpwatch::emulator::fixture::HttpFixture;
use cpwatch::event::upload::UploadState;
use cpwatch::event::{self, Event, Parsed, UploadEvent};
use cpwatch::receive::signature::{self, Scheme};
use cpwatch::store::{self, uploads};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _};
use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_cpwatch");
/// The line `cpwatch serve` prints once it listens, followed by the webhook URL.
const READY: &str = "cpwatch is receiving CentrePoint deliveries at ";
/// The banner's line after it, followed by the dashboard's URL.
const DASHBOARD: &str = "dashboard: ";
/// Deadlines that turn a hang into a failure. Generous: the machine is shared.
pub const START_DEADLINE: Duration = Duration::from_secs(60);
pub const EXIT_DEADLINE: Duration = Duration::from_secs(60);
pub const WAIT_DEADLINE: Duration = Duration::from_secs(30);
/// The environment variable the CLI reads webhook secrets from in these tests.
const SECRET_VAR: &str = "CPWATCH_TEST_WEBHOOK_SECRET";

/// A temporary data directory with its own (empty, unless given) configuration file,
/// so that no user configuration or `CPWATCH_*` variable reaches the binary.
pub struct DataDir {
    tmp: TempDir,
    pub dir: PathBuf,
    pub config: PathBuf,
    runs: AtomicUsize,
}

impl DataDir {
    pub fn new() -> Self {
        Self::with_config("")
    }

    /// A data directory whose configuration file holds `toml`.
    pub fn with_config(toml: &str) -> Self {
        let tmp = tempfile::Builder::new().prefix("cpwatch-test-").tempdir().expect("create a temp dir");
        let dir = tmp.path().join("data");
        let config = tmp.path().join("config.toml");
        std::fs::write(&config, toml).expect("write the test configuration file");
        DataDir { tmp, dir, config, runs: AtomicUsize::new(0) }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("cpwatch.sqlite3")
    }

    /// The binary with this directory's `--config` and `--data-dir`, a scrubbed
    /// environment and no stdin.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CPWATCH_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("CPWATCH_CONFIG", &self.config)
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.dir)
            .stdin(Stdio::null());
        cmd
    }

    fn next_file(&self, what: &str) -> PathBuf {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        self.tmp.path().join(format!("{what}-{n}.log"))
    }

    /// Starts `cpwatch serve --listen 127.0.0.1:0` and waits for its ready line. Call it
    /// again after [`Server::stop`] or [`Server::kill`] to restart on the same data.
    pub fn serve(&self) -> Server {
        self.start(&["serve", "--listen", "127.0.0.1:0"], &[])
    }

    /// [`DataDir::serve`] with more environment variables.
    pub fn serve_with_env(&self, env: &[(&str, &str)]) -> Server {
        self.start(&["serve", "--listen", "127.0.0.1:0"], env)
    }

    /// Starts `cpwatch serve` on the `listen` address of the configuration, which must
    /// name a loopback port: for tests whose fakes must know the receiver's port first.
    pub fn serve_as_configured(&self) -> Server {
        self.start(&["serve"], &[])
    }

    fn start(&self, args: &[&str], env: &[(&str, &str)]) -> Server {
        let log = self.next_file("serve");
        let stderr = std::fs::File::create(&log).expect("create the server log");
        let mut child = self
            .command()
            .args(args)
            .envs(env.iter().copied())
            // The dashboard has a listener of its own: any free port, so that tests
            // running in parallel never collide on its default one.
            .env("CPWATCH_DASHBOARD_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut server = Server {
            child: Some(child),
            url: String::new(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dashboard: String::new(),
            stdout: Arc::default(),
            log,
        };
        let (lines_tx, lines) = mpsc::channel();
        let kept = server.stdout.clone();
        // Reads stdout for the whole life of the process so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                kept.lock().unwrap_or_else(PoisonError::into_inner).push(line.clone());
                let _ = lines_tx.send(line);
            }
        });
        let deadline = Instant::now() + START_DEADLINE;
        let mut seen = Vec::new();
        let mut url = None;
        // The banner names the receiver first, then the dashboard.
        let dashboard = loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(ready) = line.strip_prefix(READY) {
                        url = Some(ready.trim().to_string());
                    } else if let (Some(_), Some(dashboard)) = (&url, line.strip_prefix(DASHBOARD)) {
                        break dashboard.trim().trim_end_matches('/').to_string();
                    }
                    seen.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "cpwatch serve printed no ready line in {START_DEADLINE:?}; stdout: {seen:?}; log:\n{}",
                    server.log()
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = server.child.as_mut().and_then(|c| wait_for_exit(c, EXIT_DEADLINE));
                    server.child = None;
                    panic!(
                        "cpwatch serve exited ({status:?}) before it was ready; stdout: {seen:?}; log:\n{}",
                        server.log()
                    );
                }
            }
        };
        let url = url.expect("the ready line came before the dashboard's");
        let addr = url
            .strip_prefix("http://")
            .and_then(|rest| rest.strip_suffix("/webhook"))
            .and_then(|host| host.parse::<SocketAddr>().ok())
            .unwrap_or_else(|| panic!("the ready line's URL {url:?} is not http://127.0.0.1:PORT/webhook"));
        assert!(addr.ip().is_loopback() && addr.port() != 0, "the receiver listens where asked: {url}");
        assert!(
            dashboard.starts_with("http://127.0.0.1:") && !dashboard.ends_with(":0"),
            "the dashboard listens on a loopback port of its own: {dashboard}"
        );
        server.url = url;
        server.addr = addr;
        server.dashboard = dashboard;
        server
    }

    /// Runs a command to its end (with a deadline), e.g. `["webhooks", "list"]`.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command();
        cmd.args(args);
        for (key, value) in env {
            cmd.env(key, value);
        }
        run_to_exit(cmd, &format!("cpwatch {}", args.join(" ")))
    }

    /// Runs a command that must succeed and returns its stdout.
    pub fn run_ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(args, env);
        assert!(
            out.status.success(),
            "cpwatch {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Configures how deliveries for `webhook_id` (or `default`) authenticate, through
    /// the CLI as a user would. [`Auth::Open`] configures nothing.
    pub fn configure(&self, webhook_id: &str, auth: &Auth) {
        match auth {
            Auth::Open => {}
            Auth::NotRequired => {
                self.run_ok(&["webhooks", "add", webhook_id, "--auth", "none"], &[]);
            }
            Auth::Passcode { passcode, .. } => {
                self.run_ok(
                    &["webhooks", "add", webhook_id, "--auth", "passcode", "--secret-env", SECRET_VAR],
                    &[(SECRET_VAR, passcode)],
                );
            }
            Auth::Basic { user, password } => {
                self.run_ok(
                    &[
                        "webhooks",
                        "add",
                        webhook_id,
                        "--auth",
                        "basic",
                        "--user",
                        user,
                        "--secret-env",
                        SECRET_VAR,
                    ],
                    &[(SECRET_VAR, password)],
                );
            }
            Auth::Bearer(token) => {
                self.run_ok(
                    &["webhooks", "add", webhook_id, "--auth", "bearer", "--secret-env", SECRET_VAR],
                    &[(SECRET_VAR, token)],
                );
            }
        }
    }

    /// A read-only connection to the receiver's database, for assertions.
    pub fn db(&self) -> Connection {
        let path = self.db_path();
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .unwrap_or_else(|e| panic!("cannot open {} read-only: {e}", path.display()));
        conn.busy_timeout(WAIT_DEADLINE).expect("set busy_timeout");
        conn
    }

    /// The single number a query returns.
    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |row| row.get(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Every row a query returns, as plain values: for comparing whole tables.
    pub fn table(&self, sql: &str) -> Vec<Vec<Value>> {
        let conn = self.db();
        let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let columns = stmt.column_count();
        let rows = stmt
            .query_map([], |row| (0..columns).map(|i| row.get::<_, Value>(i)).collect())
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.collect::<rusqlite::Result<_>>().unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The stored rows of one delivery id (one per distinct body), oldest first.
    pub fn deliveries(&self, delivery_id: &str) -> Vec<StoredDelivery> {
        let conn = self.db();
        let mut stmt = conn
            .prepare(
                "SELECT seq, delivery_id, event, webhook_id, auth, flag, duplicates, body,
                        study_id, upload_id, status
                 FROM deliveries WHERE delivery_id = ?1 ORDER BY seq",
            )
            .expect("prepare the deliveries query");
        let rows = stmt
            .query_map([delivery_id], |row| {
                Ok(StoredDelivery {
                    seq: row.get(0)?,
                    delivery_id: row.get(1)?,
                    event: row.get(2)?,
                    webhook_id: row.get(3)?,
                    auth: row.get(4)?,
                    flag: row.get(5)?,
                    duplicates: row.get(6)?,
                    body: row.get(7)?,
                    study_id: row.get(8)?,
                    upload_id: row.get(9)?,
                    status: row.get(10)?,
                })
            })
            .expect("query deliveries");
        rows.collect::<rusqlite::Result<_>>().expect("read deliveries")
    }

    /// The refused-request log, oldest first.
    pub fn refused(&self) -> Vec<RefusedRow> {
        let conn = self.db();
        let mut stmt = conn
            .prepare("SELECT id, method, path, status, reason, delivery_id FROM refused ORDER BY id")
            .expect("prepare the refused query");
        let rows = stmt
            .query_map([], |row| {
                Ok(RefusedRow {
                    id: row.get(0)?,
                    method: row.get(1)?,
                    path: row.get(2)?,
                    status: row.get(3)?,
                    reason: row.get(4)?,
                    delivery_id: row.get(5)?,
                })
            })
            .expect("query refused");
        rows.collect::<rusqlite::Result<_>>().expect("read refused")
    }

    /// Waits until the refused log holds `n` rows in all. Refusals are logged without
    /// holding up the answer, so the row can land just after the sender has its 4xx.
    pub fn wait_for_refused(&self, n: usize) -> Vec<RefusedRow> {
        let mut rows = Vec::new();
        wait_until(&format!("{n} row(s) in the refused log"), || {
            rows = self.refused();
            rows.len() >= n
        });
        rows
    }

    /// One upload's stored state.
    pub fn upload(&self, study: &str, upload: &str) -> Option<UploadRow> {
        self.db()
            .query_row(
                "SELECT status, deliveries, started_at, completed_at, failed_at
                 FROM uploads WHERE study_id = ?1 AND upload_id = ?2",
                [study, upload],
                |row| {
                    Ok(UploadRow {
                        status: row.get(0)?,
                        deliveries: row.get(1)?,
                        started_at: row.get(2)?,
                        completed_at: row.get(3)?,
                        failed_at: row.get(4)?,
                    })
                },
            )
            .optional()
            .expect("query uploads")
    }

    /// Checks that the uploads table is exactly what the stored deliveries say: every
    /// upload's state equals [`UploadState::replay`] of its stored `upload` deliveries
    /// in the order they were stored, its delivery count is theirs, no upload exists
    /// without deliveries, and the per-day counts add up to the uploads' statuses.
    /// Returns the number of uploads checked.
    pub fn assert_uploads_match_replay(&self) -> usize {
        let conn = self.db();
        let mut timelines: BTreeMap<(String, String), Timeline> = BTreeMap::new();
        let mut stmt = conn
            .prepare(
                "SELECT event, body, received_at FROM deliveries WHERE upload_id IS NOT NULL ORDER BY seq",
            )
            .expect("prepare the timeline query");
        let rows = stmt
            .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?, row.get(2)?)))
            .expect("query upload deliveries");
        for row in rows {
            let (name, body, at) = row.expect("read an upload delivery");
            // The writer applied exactly what this parse gives, so the replay reads the same.
            if let Ok(Parsed { event: Event::Upload(upload), .. }) = event::parse(&name, &body) {
                let key = (upload.study_id.clone(), upload.upload_id.clone());
                timelines.entry(key).or_default().push((upload, store::from_ms(at)));
            }
        }
        for ((study, upload), timeline) in &timelines {
            let replayed = UploadState::replay(timeline.iter().map(|(e, at)| (e, *at)))
                .map(as_stored)
                .expect("a non-empty timeline");
            let stored = uploads::state(&conn, study, upload)
                .expect("query an upload's state")
                .unwrap_or_else(|| panic!("upload {study}/{upload} has deliveries but no upload row"));
            assert_eq!(
                stored,
                replayed,
                "upload {study}/{upload}: the stored state is the replay of its {} stored deliveries",
                timeline.len()
            );
            let counted: i64 = conn
                .query_row(
                    "SELECT deliveries FROM uploads WHERE study_id = ?1 AND upload_id = ?2",
                    [study, upload],
                    |row| row.get(0),
                )
                .expect("query an upload's delivery count");
            assert_eq!(
                counted,
                timeline.len() as i64,
                "upload {study}/{upload} counts exactly its stored deliveries (retries excluded)"
            );
        }
        let uploads: i64 =
            conn.query_row("SELECT count(*) FROM uploads", [], |row| row.get(0)).expect("count uploads");
        assert_eq!(uploads, timelines.len() as i64, "every upload row has stored deliveries");
        let by_status = "SELECT study_id, status, count(*) FROM uploads GROUP BY 1, 2 ORDER BY 1, 2";
        let by_day = "SELECT study_id, status, sum(uploads) FROM upload_days GROUP BY 1, 2
                      HAVING sum(uploads) != 0 ORDER BY 1, 2";
        assert_eq!(
            self.table(by_day),
            self.table(by_status),
            "the per-day upload counts add up to the uploads' current statuses"
        );
        timelines.len()
    }
}

/// One upload's deliveries in the order stored, with their receipt times.
type Timeline = Vec<(UploadEvent, DateTime<Utc>)>;

/// `state` at the precision the uploads table keeps: UTC times in milliseconds,
/// subject-local times in whole seconds.
fn as_stored(mut state: UploadState) -> UploadState {
    let ms = |t: Option<DateTime<Utc>>| t.map(|t| store::from_ms(store::to_ms(t)));
    let secs = |t: Option<NaiveDateTime>| t.and_then(|t| t.with_nanosecond(0));
    state.first_epoch_utc = ms(state.first_epoch_utc);
    state.last_epoch_utc = ms(state.last_epoch_utc);
    state.first_epoch_subject_tz = secs(state.first_epoch_subject_tz);
    state.last_epoch_subject_tz = secs(state.last_epoch_subject_tz);
    state
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredDelivery {
    pub seq: i64,
    pub delivery_id: String,
    pub event: String,
    pub webhook_id: Option<String>,
    pub auth: String,
    pub flag: Option<String>,
    pub duplicates: i64,
    pub body: Vec<u8>,
    pub study_id: Option<String>,
    pub upload_id: Option<String>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RefusedRow {
    pub id: i64,
    pub method: String,
    pub path: String,
    pub status: i64,
    pub reason: String,
    pub delivery_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UploadRow {
    pub status: String,
    pub deliveries: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub failed_at: Option<i64>,
}

/// A running `cpwatch serve`. Dropping it kills the process, so a failing test leaves
/// nothing running; a failing test also gets the server's log printed.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT/webhook`, as the ready line gave it.
    pub url: String,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT` (no trailing slash), as the banner gave it.
    pub dashboard: String,
    /// Every line printed on stdout so far: the banner, then anything after it.
    stdout: Arc<Mutex<Vec<String>>>,
    log: PathBuf,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn at(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What the server has printed on stdout so far (the banner first).
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap_or_else(PoisonError::into_inner).join("\n")
    }

    /// What the server has logged so far (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM, waits, and asserts the clean exit (code 0) a stop must give.
    pub fn stop(mut self) {
        let mut child = self.child.take().expect("the server is running");
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let status = wait_for_exit(&mut child, EXIT_DEADLINE);
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert_eq!(
            status.map(|s| s.code()),
            Some(Some(0)),
            "cpwatch serve exits with code 0 on SIGTERM (got {status:?}); log:\n{}",
            self.log()
        );
    }

    /// SIGKILL: the process gets no chance to flush or tidy up.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("send SIGKILL");
            child.wait().expect("reap the killed server");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- cpwatch serve log ({}) ---\n{}", self.log.display(), self.log());
        }
    }
}

fn wait_for_exit(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + deadline;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => return None,
        }
    }
}

/// Runs a command to its end; a command still running after the deadline is killed
/// and fails the test.
pub fn run_to_exit(mut cmd: Command, what: &str) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let Some(status) = wait_for_exit(&mut child, EXIT_DEADLINE) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} was still running after {EXIT_DEADLINE:?}");
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Polls `done` until it holds; fails the test after [`WAIT_DEADLINE`].
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up after {WAIT_DEADLINE:?} waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How a webhook is configured, and how a sender authenticates to it.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Nothing configured at all: the receiver accepts anything.
    Open,
    /// Configured with mode `none`.
    NotRequired,
    Passcode {
        passcode: String,
        scheme: Scheme,
    },
    Basic {
        user: String,
        password: String,
    },
    Bearer(String),
}

impl Auth {
    /// The same mode with a wrong secret; `None` for modes without one.
    pub fn wrong(&self) -> Option<Auth> {
        match self {
            Auth::Open | Auth::NotRequired => None,
            Auth::Passcode { passcode, scheme } => {
                Some(Auth::Passcode { passcode: format!("not-{passcode}"), scheme: *scheme })
            }
            Auth::Basic { user, password } => {
                Some(Auth::Basic { user: user.clone(), password: format!("not-{password}") })
            }
            Auth::Bearer(token) => Some(Auth::Bearer(format!("not-{token}"))),
        }
    }

    /// The credential header a sender adds for `body`, if any.
    pub fn credential(&self, body: &[u8]) -> Option<(&'static str, String)> {
        match self {
            Auth::Open | Auth::NotRequired => None,
            Auth::Passcode { passcode, scheme } => {
                let value = signature::sign(*scheme, passcode.as_bytes(), body)
                    .expect("the test passcodes and fixture bodies are text, which every scheme signs");
                Some(("X-ActiGraph-Signature", value))
            }
            Auth::Basic { user, password } => {
                Some(("Authorization", cpwatch::receive::auth::basic_header(user, password)))
            }
            Auth::Bearer(token) => Some(("Authorization", format!("Bearer {token}"))),
        }
    }

    /// What the receiver stores in `deliveries.auth` for a delivery it accepted.
    pub fn accepted_as(&self) -> String {
        match self {
            Auth::Open => "open (no authentication configured)".into(),
            Auth::NotRequired => "none required".into(),
            Auth::Passcode { scheme, .. } => format!("verified ({})", scheme.name()),
            Auth::Basic { .. } => "verified (basic)".into(),
            Auth::Bearer(_) => "verified (bearer)".into(),
        }
    }
}

/// The fixtures directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

/// Every `*.http` fixture, by file name, sorted.
pub fn fixtures() -> Vec<(String, HttpFixture)> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("read tests/fixtures")
        .filter_map(|entry| entry.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.ends_with(".http"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "tests/fixtures holds *.http deliveries");
    names.into_iter().map(|name| (name.clone(), fixture(&name))).collect()
}

/// One fixture: its headers and its body bytes exactly.
pub fn fixture(name: &str) -> HttpFixture {
    let path = fixtures_dir().join(name);
    HttpFixture::read(&path).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// A delivery as a sender puts it on the wire: headers and body bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Headers the transport sets itself.
const TRANSPORT_HEADERS: [&str; 4] = ["host", "content-length", "connection", "transfer-encoding"];

impl Delivery {
    /// A fixture's headers (without the transport's own) and body.
    pub fn from_fixture(fixture: &HttpFixture) -> Delivery {
        Delivery {
            headers: fixture
                .headers
                .iter()
                .filter(|(name, _)| !TRANSPORT_HEADERS.iter().any(|t| name.eq_ignore_ascii_case(t)))
                .cloned()
                .collect(),
            body: fixture.body.clone(),
        }
    }

    /// A CentrePoint-looking delivery of any event with any body.
    pub fn new(event: &str, delivery_id: &str, body: impl Into<Vec<u8>>) -> Delivery {
        Delivery {
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("User-Agent".into(), "ActiGraph-Hookshot/1.0".into()),
                ("X-ActiGraph-Event".into(), event.into()),
                ("X-ActiGraph-Delivery".into(), delivery_id.into()),
                ("X-ActiGraph-Webhook-Id".into(), "15".into()),
            ],
            body: body.into(),
        }
    }

    /// An `upload` delivery.
    pub fn upload(delivery_id: &str, study: &str, upload: &str, status: &str) -> Delivery {
        let body = format!(
            r#"{{"status":"{status}","uploadId":"{upload}","subjectId":"44732","studyId":"{study}"}}"#
        );
        Delivery::new("upload", delivery_id, body)
    }

    /// A `validation` delivery carrying `code` in both the header and the body.
    pub fn validation(delivery_id: &str, code: &str) -> Delivery {
        let body = format!(r#"{{"WebhookId": "74", "ValidationCode": "{code}"}}"#);
        Delivery::new("validation", delivery_id, body).with_header("X-ActiGraph-Hook-Secret", code)
    }

    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn id(&self) -> String {
        self.header("X-ActiGraph-Delivery").expect("the delivery has an X-ActiGraph-Delivery header").into()
    }

    /// Sets a header, replacing any of the same name.
    pub fn with_header(mut self, name: &str, value: &str) -> Delivery {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn without_header(mut self, name: &str) -> Delivery {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Delivery {
        self.body = body.into();
        self
    }

    /// Adds `auth`'s credential for the current body (signature or Authorization).
    pub fn signed(self, auth: &Auth) -> Delivery {
        match auth.credential(&self.body) {
            Some((name, value)) => self.with_header(name, &value),
            None => self,
        }
    }

    /// The request as bytes, with Host, Content-Length and `Connection: close`.
    pub fn to_http(&self, method: &str, path: &str) -> Vec<u8> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: receiver.example\r\n");
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", self.body.len()));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// POSTs the delivery; a transport error is the error.
    pub async fn try_post(&self, client: &reqwest::Client, url: &str) -> Result<Reply, reqwest::Error> {
        let mut request = client.post(url).body(self.body.clone());
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await?;
        Ok(Reply { status, headers, body })
    }

    /// POSTs the delivery; a transport error fails the test.
    pub async fn post(&self, client: &reqwest::Client, url: &str) -> Reply {
        self.try_post(client, url).await.unwrap_or_else(|e| panic!("POST {url} failed: {e}"))
    }
}

/// An answer to a reqwest request.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP client that never goes through a proxy from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build the HTTP client")
}

/// What came back on a raw connection: the status (when a response arrived) and text.
#[derive(Debug)]
pub struct RawReply {
    pub status: Option<u16>,
    pub text: String,
}

/// Writes `request` (which should say `Connection: close`) on a new connection and
/// reads until the server closes. Write errors are ignored: a server may answer (413)
/// and stop reading before everything is sent; what matters is what it answered.
pub fn raw_exchange(addr: SocketAddr, request: &[u8]) -> RawReply {
    let mut stream = raw_connect(addr);
    let _ = stream.write_all(request);
    read_reply(&mut stream)
}

/// Like [`raw_exchange`], but closes the sending side after `request`, as a client
/// that gives up mid-request does.
pub fn raw_send_and_close(addr: SocketAddr, request: &[u8]) -> RawReply {
    let mut stream = raw_connect(addr);
    let _ = stream.write_all(request);
    let _ = stream.shutdown(Shutdown::Write);
    read_reply(&mut stream)
}

/// A connection with generous deadlines, so a silent server fails a test instead of hanging it.
pub fn raw_connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(EXIT_DEADLINE)).expect("set a read timeout");
    stream.set_write_timeout(Some(EXIT_DEADLINE)).expect("set a write timeout");
    stream
}

/// Reads a response until the server closes (or the deadline passes).
pub fn read_reply(stream: &mut TcpStream) -> RawReply {
    let mut bytes = Vec::new();
    // An error after a partial read keeps what was read, which is all that is looked at.
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status =
        text.strip_prefix("HTTP/1.1 ").and_then(|rest| rest.get(..3)).and_then(|code| code.parse().ok());
    RawReply { status, text }
}

/// A small xorshift generator: kill moments, cuts and tears vary from run to run without
/// a dependency (the seed is printed by the tests that use it).
pub struct Jitter(pub u64);

impl Jitter {
    pub fn seeded() -> Jitter {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Jitter((nanos ^ u64::from(std::process::id())) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn millis(&mut self, below: u64) -> Duration {
        Duration::from_millis(self.next_u64() % below)
    }
}

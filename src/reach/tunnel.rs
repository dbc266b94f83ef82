//! A tunnel cpwatch runs for the user (`tunnel = "cloudflared"` or `"ngrok"`): one child
//! process, supervised (restarted with backoff when it exits), its output kept for the
//! dashboard, and stopped when cpwatch stops.
//!
//! cloudflared runs as `cloudflared tunnel --url http://<listen> --metrics 127.0.0.1:<port>
//! <tunnel_args...>`, with a metrics port cpwatch picks, so that its URL is read from
//! that one address; ngrok runs as `ngrok http <port> --log stdout <tunnel_args...>` with
//! the user's own configuration and authtoken, its URL read from the agent API. ngrok is
//! given only the port, so it forwards to `localhost:<port>`: the receiver must listen on
//! a loopback or unspecified address for it.
//!
//! The child is not put in a process group of its own: a Ctrl-C or a closed terminal
//! reaches it together with cpwatch, which is one way less for it to outlive cpwatch.
//! A clean stop ([`Tunnel::stop`], or dropping the [`Tunnel`]) ends it; so does the Tokio
//! runtime shutting down (`kill_on_drop`). What cannot be caught is `kill -9` of cpwatch
//! (or a crash that skips destructors): the child is then orphaned and keeps its public
//! URL until someone stops it, and the next start of cpwatch runs a new one beside it
//! (a new quick-tunnel hostname; ngrok may refuse a second agent session on a free
//! account). Linux's parent-death signal would cover this, but it has to be set in the
//! child between fork and exec, which needs `unsafe` (`pre_exec`), forbidden here.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The log target of the tunnel's own output and of the supervisor's messages.
const LOG_TARGET: &str = "cpwatch::tunnel";
/// Where ngrok's agent API listens unless its configuration moves it (`web_addr`).
pub const NGROK_WEB_ADDR: &str = "127.0.0.1:4040";
/// Lines of output kept for the dashboard.
const KEPT_LINES: usize = 40;
/// Characters kept of one line; the rest is cut.
const LINE_CHARS: usize = 500;
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A child that ran this long was working: its next failure starts the backoff afresh.
const STEADY_RUN: Duration = Duration::from_secs(60);
/// Time the child has after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// Time the output readers have to read what the child wrote before it exited.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// The tunnel programs cpwatch can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelKind {
    Cloudflared,
    Ngrok,
}

impl TunnelKind {
    /// The program's name, as looked up on PATH.
    pub fn program(self) -> &'static str {
        match self {
            TunnelKind::Cloudflared => "cloudflared",
            TunnelKind::Ngrok => "ngrok",
        }
    }

    /// Where a person gets the program.
    pub fn download_hint(self) -> &'static str {
        match self {
            TunnelKind::Cloudflared => {
                "https://developers.cloudflare.com/cloudflare-one/connections/connect-networks/downloads/"
            }
            TunnelKind::Ngrok => "https://ngrok.com/download",
        }
    }
}

impl std::fmt::Display for TunnelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.program())
    }
}

/// A `--tunnel` value that names no tunnel program cpwatch knows.
#[derive(Debug, thiserror::Error)]
#[error("unknown tunnel {0:?}: choose \"cloudflared\" or \"ngrok\"")]
pub struct UnknownTunnel(String);

impl std::str::FromStr for TunnelKind {
    type Err = UnknownTunnel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cloudflared" => Ok(TunnelKind::Cloudflared),
            "ngrok" => Ok(TunnelKind::Ngrok),
            _ => Err(UnknownTunnel(s.to_string())),
        }
    }
}

/// What to run, and for which receiver.
#[derive(Debug, Clone)]
pub struct TunnelSpec {
    pub kind: TunnelKind,
    /// The program to run: `kind.program()` looked up on PATH unless set (tests point it at a stand-in).
    pub program: Option<PathBuf>,
    /// `tunnel_args`, appended to the command line.
    pub args: Vec<String>,
    /// The receiver's bound address (127.0.0.1 is used when it is 0.0.0.0 or `::`).
    pub listen: SocketAddr,
    /// Where ngrok's agent API is, [`NGROK_WEB_ADDR`] unless the user's ngrok configuration moves it.
    pub ngrok_web_addr: String,
}

impl TunnelSpec {
    /// The program on PATH with no extra arguments, for the receiver at `listen`.
    pub fn new(kind: TunnelKind, listen: SocketAddr) -> TunnelSpec {
        TunnelSpec { kind, program: None, args: Vec::new(), listen, ngrok_web_addr: NGROK_WEB_ADDR.into() }
    }
}

/// Where the managed tunnel's URL can be read: the address for
/// [`discover::cloudflared`](super::discover::cloudflared) (the metrics address cpwatch
/// chose) or [`discover::ngrok`](super::discover::ngrok) (the agent's web address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    Cloudflared { metrics: String },
    Ngrok { web_addr: String, port: u16 },
}

/// What the dashboard shows about the managed tunnel.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TunnelStatus {
    pub kind: TunnelKind,
    /// The command line as run (program and arguments, secrets redacted).
    pub command: String,
    pub running: bool,
    pub pid: Option<u32>,
    pub started_at: Option<DateTime<Utc>>,
    /// Times the child was started again after it exited.
    pub restarts: u32,
    /// How the last child ended: "exited with status 1 at 14:02:03", local time.
    pub last_exit: Option<String>,
    /// Why it is not running, for a person.
    pub problem: Option<String>,
    pub next_restart_at: Option<DateTime<Utc>>,
    /// The last 40 lines of its stdout and stderr, oldest first, secrets redacted.
    pub lines: Vec<String>,
}

/// A running supervisor of one tunnel child process.
pub struct Tunnel {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    supervisor: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

/// What the supervisor and the output readers share with [`Tunnel`].
struct Shared {
    state: Mutex<State>,
    changes: watch::Sender<u64>,
}

struct State {
    /// Everything but `lines`, which live in `lines` below.
    status: TunnelStatus,
    lines: VecDeque<String>,
    source: UrlSource,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data behind, still worth showing.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the status and tells [`Tunnel::changes`] listeners.
    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state());
        self.changes.send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    fn push_line(&self, line: String) {
        let mut state = self.state();
        if state.lines.len() == KEPT_LINES {
            state.lines.pop_front();
        }
        state.lines.push_back(line);
    }
}

impl Tunnel {
    /// Starts the supervisor task (`tokio::spawn`: call it within a Tokio runtime). Never
    /// fails: a missing program is a `problem` in the status and a warning in the log that
    /// says where to get it, and it is looked for again on the backoff, so installing it
    /// later works without a restart of cpwatch.
    pub fn start(spec: TunnelSpec) -> Tunnel {
        let launch = Launch::new(spec);
        let argv = launch.argv();
        let status = TunnelStatus {
            kind: launch.kind,
            command: command_line(&launch.program, &argv),
            running: false,
            pid: None,
            started_at: None,
            restarts: 0,
            last_exit: None,
            problem: None,
            next_restart_at: None,
            lines: Vec::new(),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State { status, lines: VecDeque::new(), source: launch.url_source() }),
            changes: watch::Sender::new(0),
        });
        let (stop, stopping) = watch::channel(false);
        let supervisor = tokio::spawn(supervise(launch, shared.clone(), stopping));
        Tunnel { shared, stop, supervisor: tokio::sync::Mutex::new(Some(supervisor)) }
    }

    pub fn status(&self) -> TunnelStatus {
        let state = self.shared.state();
        TunnelStatus { lines: state.lines.iter().cloned().collect(), ..state.status.clone() }
    }

    /// Where the tunnel's public URL can be read now (cloudflared's metrics address can
    /// move when a restart finds its port taken).
    pub fn url_source(&self) -> UrlSource {
        self.shared.state().source.clone()
    }

    /// A generation counter that changes whenever the child starts or exits (and when a
    /// start fails), so that the caller re-reads the URL at once.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Stops the child (SIGTERM, up to 5 s, then SIGKILL) and waits for the supervisor to
    /// end. Idempotent; a second caller waits for the same end.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let mut supervisor = self.supervisor.lock().await;
        if let Some(handle) = supervisor.as_mut() {
            if let Err(e) = handle.await {
                tracing::error!(target: LOG_TARGET, "the tunnel supervisor failed: {e}");
            }
        }
        *supervisor = None;
    }
}

impl Drop for Tunnel {
    /// A tunnel dropped without [`Tunnel::stop`] still stops its child, in the background.
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// The command line of one tunnel, and what changes between its runs.
struct Launch {
    kind: TunnelKind,
    program: PathBuf,
    /// Whether the user (or a test) named the program, rather than PATH finding it.
    named: bool,
    args: Vec<String>,
    /// The receiver's address as the tunnel reaches it.
    target: SocketAddr,
    ngrok_web_addr: String,
    /// cloudflared's metrics port, picked at start and kept while it is free.
    metrics_port: u16,
}

impl Launch {
    fn new(spec: TunnelSpec) -> Launch {
        let mut target = spec.listen;
        if target.ip().is_unspecified() {
            target.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        Launch {
            kind: spec.kind,
            named: spec.program.is_some(),
            program: spec.program.unwrap_or_else(|| PathBuf::from(spec.kind.program())),
            args: spec.args,
            target,
            ngrok_web_addr: spec.ngrok_web_addr,
            metrics_port: match spec.kind {
                TunnelKind::Cloudflared => free_loopback_port(),
                TunnelKind::Ngrok => 0,
            },
        }
    }

    fn argv(&self) -> Vec<String> {
        let own = match self.kind {
            TunnelKind::Cloudflared => vec![
                "tunnel".to_string(),
                "--url".into(),
                format!("http://{}", self.target),
                "--metrics".into(),
                self.metrics_addr(),
            ],
            // `--log stdout` (ngrok's CLI: "path to log file, 'stdout', 'stderr' or
            // 'false'") keeps its log lines, which otherwise go nowhere when its
            // terminal UI is off, as it is without a terminal.
            TunnelKind::Ngrok => {
                vec!["http".to_string(), self.target.port().to_string(), "--log".into(), "stdout".into()]
            }
        };
        own.into_iter().chain(self.args.iter().cloned()).collect()
    }

    fn metrics_addr(&self) -> String {
        format!("127.0.0.1:{}", self.metrics_port)
    }

    fn url_source(&self) -> UrlSource {
        match self.kind {
            TunnelKind::Cloudflared => UrlSource::Cloudflared { metrics: self.metrics_addr() },
            TunnelKind::Ngrok => {
                UrlSource::Ngrok { web_addr: self.ngrok_web_addr.clone(), port: self.target.port() }
            }
        }
    }

    /// Before each start: a new metrics port when another program took the old one.
    fn keep_metrics_port_usable(&mut self) {
        if self.kind == TunnelKind::Cloudflared && !port_is_free(self.metrics_port) {
            self.metrics_port = free_loopback_port();
        }
    }

    /// Why the program could not be started, for a person.
    fn spawn_problem(&self, e: &std::io::Error) -> String {
        let name = self.kind.program();
        if e.kind() == std::io::ErrorKind::NotFound {
            let where_ = if self.named {
                format!("no program at {}", self.program.display())
            } else {
                "not found on PATH".to_string()
            };
            format!(
                "{name} is not installed ({where_}). Get it from {}; cpwatch keeps receiving locally.",
                self.kind.download_hint()
            )
        } else {
            format!(
                "{name} could not be started ({}: {e}); cpwatch keeps receiving locally.",
                self.program.display()
            )
        }
    }
}

/// A port on 127.0.0.1 that nothing listens on now. Binding port 0 fails only when
/// loopback itself is broken; cloudflared's own first default port is then as good a
/// guess as any.
fn free_loopback_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).map_or(20241, |a| a.port())
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Restart delays: 1 s, 2 s, 4 s, ... up to 60 s, from 1 s again after a steady run.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { next: FIRST_DELAY }
    }

    /// The delay before the next attempt, after a child that ran for `ran` (`None`: it
    /// could not be started).
    fn delay(&mut self, ran: Option<Duration>) -> Duration {
        if ran.is_some_and(|ran| ran >= STEADY_RUN) {
            self.next = FIRST_DELAY;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_DELAY);
        delay
    }
}

/// The supervisor: starts the child, waits for it to exit or for the stop signal,
/// and starts it again after the backoff.
async fn supervise(mut launch: Launch, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let name = launch.kind.program();
    let mut backoff = Backoff::new();
    // The last spawn problem logged: a streak of the same one is logged once.
    let mut warned: Option<String> = None;
    let mut started_before = false;
    loop {
        if *stop.borrow() {
            break;
        }
        launch.keep_metrics_port_usable();
        let argv = launch.argv();
        let command = command_line(&launch.program, &argv);
        let spawned = Command::new(&launch.program)
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let ran = match spawned {
            Err(e) => {
                let problem = launch.spawn_problem(&e);
                if warned.as_deref() != Some(problem.as_str()) {
                    tracing::warn!(target: LOG_TARGET, "{problem}");
                    warned = Some(problem.clone());
                }
                shared.update(|state| {
                    state.status.command = command;
                    state.status.running = false;
                    state.status.pid = None;
                    state.status.problem = Some(problem);
                    state.source = launch.url_source();
                });
                None
            }
            Ok(mut child) => {
                warned = None;
                let pid = child.id();
                let started = Instant::now();
                tracing::info!(target: LOG_TARGET, "started {name} (pid {}): {command}", pid.unwrap_or(0));
                shared.update(|state| {
                    let status = &mut state.status;
                    if started_before {
                        status.restarts += 1;
                    }
                    status.command = command;
                    status.running = true;
                    status.pid = pid;
                    status.started_at = Some(Utc::now());
                    status.problem = None;
                    status.next_restart_at = None;
                    state.source = launch.url_source();
                });
                started_before = true;
                let readers: Vec<JoinHandle<()>> = [
                    child.stdout.take().map(|pipe| read_lines(pipe, shared.clone(), name)),
                    child.stderr.take().map(|pipe| read_lines(pipe, shared.clone(), name)),
                ]
                .into_iter()
                .flatten()
                .collect();
                tokio::select! {
                    exit = child.wait() => {
                        drain(readers).await;
                        let exit = format!("{} at {}", describe_exit(&exit), local_time());
                        let last_line = shared.state().lines.back().cloned();
                        tracing::warn!(target: LOG_TARGET, "{name} {exit}");
                        shared.update(|state| {
                            state.status.running = false;
                            state.status.pid = None;
                            state.status.problem = Some(match last_line {
                                Some(line) => format!("{name} {exit}; its last line: {line}"),
                                None => format!("{name} {exit} without a word"),
                            });
                            state.status.last_exit = Some(exit);
                        });
                        Some(started.elapsed())
                    }
                    () = stopped(&mut stop) => {
                        let exit = terminate(&mut child, name).await;
                        drain(readers).await;
                        let exit = format!("stopped by cpwatch at {} ({})", local_time(), describe_exit(&exit));
                        tracing::info!(target: LOG_TARGET, "{name} {exit}");
                        shared.update(|state| {
                            state.status.running = false;
                            state.status.pid = None;
                            state.status.last_exit = Some(exit);
                        });
                        return;
                    }
                }
            }
        };
        let delay = backoff.delay(ran);
        shared.update(|state| {
            state.status.next_restart_at = chrono::Duration::from_std(delay).ok().map(|d| Utc::now() + d);
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stopped(&mut stop) => break,
        }
    }
    shared.update(|state| state.status.next_restart_at = None);
}

/// Resolves once a stop is asked for (or the [`Tunnel`] is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// SIGTERM, then SIGKILL when the child is still running after [`TERM_GRACE`].
async fn terminate(child: &mut Child, name: &str) -> std::io::Result<ExitStatus> {
    // rustix, already in the tree through clap, gives a safe `kill(2)` (unsafe code is
    // forbidden here): lighter than nix, and no `kill` program to depend on. The pid
    // cannot have been reused: the child is not reaped until `wait` below returns.
    let pid = child.id().and_then(|id| i32::try_from(id).ok()).and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        if rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok() {
            if let Ok(exit) = tokio::time::timeout(TERM_GRACE, child.wait()).await {
                return exit;
            }
            tracing::warn!(target: LOG_TARGET, "{name} did not stop within {TERM_GRACE:?} of SIGTERM; killing it");
        }
    }
    // Fails only for a child already reaped, whose status `wait` still returns.
    let _ = child.start_kill();
    child.wait().await
}

/// Waits a moment for the readers to reach the end of the pipes: a grandchild that
/// kept them open must not hold up the supervisor.
async fn drain(readers: Vec<JoinHandle<()>>) {
    let deadline = tokio::time::Instant::now() + DRAIN_GRACE;
    for mut reader in readers {
        if tokio::time::timeout_at(deadline, &mut reader).await.is_err() {
            reader.abort();
        }
    }
}

/// Reads one output pipe line by line into the kept lines and the debug log.
fn read_lines(
    pipe: impl AsyncRead + Unpin + Send + 'static,
    shared: Arc<Shared>,
    name: &'static str,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut pipe = BufReader::new(pipe);
        // Bytes kept of one line: enough for LINE_CHARS characters of any UTF-8.
        while let Ok(Some(bytes)) = read_line_capped(&mut pipe, LINE_CHARS * 4).await {
            let line = clean_line(&bytes);
            tracing::debug!(target: LOG_TARGET, "{name}: {line}");
            shared.push_line(line);
        }
    })
}

/// The next line without its newline, at most `keep` bytes of it (the rest is read and
/// dropped, so one endless line cannot fill the memory); `None` at the end.
async fn read_line_capped(
    reader: &mut (impl AsyncBufRead + Unpin),
    keep: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let mut read_any = false;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(read_any.then_some(line));
        }
        read_any = true;
        let (part, used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        let room = keep.saturating_sub(line.len());
        line.extend_from_slice(&part[..part.len().min(room)]);
        reader.consume(used);
        if done {
            return Ok(Some(line));
        }
    }
}

/// A line fit to show and log: lossy UTF-8, no terminal escapes or other control
/// characters, secrets redacted, at most [`LINE_CHARS`] characters.
fn clean_line(bytes: &[u8]) -> String {
    let text = redact(&printable(&String::from_utf8_lossy(bytes)));
    match text.char_indices().nth(LINE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            // A terminal escape (colour, cursor): ESC [, parameters, then a final byte.
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out
}

/// Replaces the value after every `token` key in a line that mentions an authtoken, a
/// `token=` or a `--token` (ngrok can print its configuration; cloudflared takes `--token`). It errs
/// on the side of hiding: in such a line, whatever follows "token" and a separator goes.
fn redact(line: &str) -> String {
    // ASCII lowercasing keeps every byte where it was, so indices carry over to `line`.
    let lower = line.to_ascii_lowercase();
    if !["authtoken", "token=", "--token"].iter().any(|key| lower.contains(key)) {
        return line.to_string();
    }
    let is_separator = |b: &u8| matches!(b, b'"' | b'\'' | b'=' | b':' | b' ' | b'\t');
    let ends_value = |b: &u8| matches!(b, b' ' | b'\t' | b'"' | b'\'' | b',' | b'&' | b';' | b'}');
    let mut out = String::with_capacity(line.len());
    let mut at = 0;
    while let Some(found) = lower[at..].find("token") {
        let key_end = at + found + "token".len();
        let separator = line[key_end..].bytes().take_while(is_separator).count();
        let value_start = key_end + separator;
        let value = line[value_start..].bytes().take_while(|b| !ends_value(b)).count();
        out.push_str(&line[at..value_start]);
        if separator > 0 && value > 0 {
            out.push_str("[redacted]");
            at = value_start + value;
        } else {
            at = value_start;
        }
    }
    out.push_str(&line[at..]);
    out
}

/// Whether an argument names a secret whose value follows it (`--basic-auth user:pass`,
/// `--oauth-client-secret S`, `--credentials-contents JSON`, ...).
fn names_secret(arg: &str) -> bool {
    let arg = arg.to_ascii_lowercase();
    arg.starts_with('-')
        && ["auth", "secret", "password", "credential", "token"].iter().any(|k| arg.contains(k))
}

/// The command line as a person would type it, secrets redacted.
fn command_line(program: &Path, argv: &[String]) -> String {
    let mut hide_next = false;
    let argv: Vec<String> = argv
        .iter()
        .map(|arg| {
            let hidden = std::mem::replace(&mut hide_next, false);
            match arg.split_once('=') {
                Some((flag, _)) if names_secret(flag) => format!("{flag}=[redacted]"),
                _ if hidden => "[redacted]".to_string(),
                _ => {
                    hide_next = names_secret(arg);
                    arg.clone()
                }
            }
        })
        .collect();
    let argv = &argv;
    let quote = |arg: &str| {
        if !arg.is_empty() && !arg.contains(|c: char| c.is_whitespace() || "'\"\\$`;&|<>()*?#~".contains(c)) {
            arg.to_string()
        } else {
            format!("'{}'", arg.replace('\'', r"'\''"))
        }
    };
    let words: Vec<String> =
        std::iter::once(quote(&program.display().to_string())).chain(argv.iter().map(|a| quote(a))).collect();
    redact(&words.join(" "))
}

/// "exited with status 1", "was killed by signal 9 (SIGKILL)".
fn describe_exit(exit: &std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match exit {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => {
                let name = match signal {
                    1 => " (SIGHUP)",
                    2 => " (SIGINT)",
                    6 => " (SIGABRT)",
                    9 => " (SIGKILL)",
                    11 => " (SIGSEGV)",
                    15 => " (SIGTERM)",
                    _ => "",
                };
                format!("was killed by signal {signal}{name}")
            }
            (None, None) => format!("ended ({status})"),
        },
        Err(e) => format!("could not be waited for ({e})"),
    }
}

fn local_time() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;

    use super::*;

    fn spec(kind: TunnelKind, listen: &str) -> TunnelSpec {
        TunnelSpec::new(kind, listen.parse().expect("a socket address"))
    }

    #[test]
    fn tunnel_kinds_parse_from_their_names_only() {
        assert_eq!("cloudflared".parse::<TunnelKind>().ok(), Some(TunnelKind::Cloudflared));
        assert_eq!(" NGROK ".parse::<TunnelKind>().ok(), Some(TunnelKind::Ngrok));
        let err = "localtunnel".parse::<TunnelKind>().expect_err("not a known tunnel");
        assert!(err.to_string().contains("\"localtunnel\"") && err.to_string().contains("ngrok"), "{err}");
        let toml: std::collections::BTreeMap<String, TunnelKind> =
            toml::from_str("tunnel = \"ngrok\"").expect("the configuration's spelling");
        assert_eq!(toml.get("tunnel"), Some(&TunnelKind::Ngrok));
    }

    #[test]
    fn each_kind_says_where_to_get_it() {
        assert!(TunnelKind::Cloudflared.download_hint().starts_with("https://developers.cloudflare.com/"));
        assert_eq!(TunnelKind::Ngrok.download_hint(), "https://ngrok.com/download");
    }

    #[test]
    fn cloudflared_runs_a_quick_tunnel_to_the_receiver_with_a_metrics_port_of_its_own() {
        let mut spec = spec(TunnelKind::Cloudflared, "0.0.0.0:8787");
        spec.args = vec!["--protocol".into(), "http2".into()];
        let launch = Launch::new(spec);
        let metrics = format!("127.0.0.1:{}", launch.metrics_port);
        assert_ne!(launch.metrics_port, 0);
        assert_eq!(
            launch.argv(),
            ["tunnel", "--url", "http://127.0.0.1:8787", "--metrics", &metrics, "--protocol", "http2"],
            "an unspecified listen address is reached on 127.0.0.1; tunnel_args come last"
        );
        assert_eq!(launch.url_source(), UrlSource::Cloudflared { metrics });
    }

    #[test]
    fn ngrok_runs_an_http_tunnel_to_the_port_and_logs_to_stdout() {
        let mut spec = spec(TunnelKind::Ngrok, "127.0.0.1:9000");
        spec.args = vec!["--url".into(), "my-domain.ngrok-free.app".into()];
        let launch = Launch::new(spec);
        assert_eq!(launch.argv(), ["http", "9000", "--log", "stdout", "--url", "my-domain.ngrok-free.app"]);
        assert_eq!(launch.url_source(), UrlSource::Ngrok { web_addr: NGROK_WEB_ADDR.into(), port: 9000 });
    }

    #[test]
    fn a_missing_program_is_a_problem_that_says_where_to_get_it() {
        let launch = Launch::new(spec(TunnelKind::Cloudflared, "127.0.0.1:8787"));
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let problem = launch.spawn_problem(&missing);
        assert!(problem.starts_with("cloudflared is not installed (not found on PATH)"), "{problem}");
        assert!(problem.contains(TunnelKind::Cloudflared.download_hint()), "{problem}");
        assert!(problem.contains("cpwatch keeps receiving locally"), "{problem}");
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(launch.spawn_problem(&denied).contains("could not be started"));
    }

    #[test]
    fn restarts_back_off_to_a_minute_and_start_afresh_after_a_steady_run() {
        let mut backoff = Backoff::new();
        let quick = Some(Duration::from_secs(2));
        let delays: Vec<u64> = (0..9).map(|_| backoff.delay(quick).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff.delay(None).as_secs(), 60, "a program that cannot start waits as long");
        assert_eq!(backoff.delay(Some(STEADY_RUN)).as_secs(), 1, "a minute of work resets the backoff");
        assert_eq!(backoff.delay(quick).as_secs(), 2);
    }

    #[test]
    fn tokens_in_output_lines_are_redacted() {
        for (line, secret) in [
            ("t=2024 lvl=info msg=config authtoken=2abcSECRETxyz path=/x", "2abcSECRETxyz"),
            ("authtoken: 2abcSECRETxyz", "2abcSECRETxyz"),
            (r#"{"authtoken":"2abcSECRETxyz","region":"eu"}"#, "2abcSECRETxyz"),
            ("GET /x?token=SECRET&y=1", "SECRET"),
            ("AuthToken = SECRET", "SECRET"),
            ("cloudflared tunnel run --token eyJSECRET", "eyJSECRET"),
        ] {
            let redacted = redact(line);
            assert!(!redacted.contains(secret), "{line} -> {redacted}");
            assert!(redacted.contains("[redacted]"), "{line} -> {redacted}");
        }
        let json = redact(r#"{"authtoken":"2abcSECRETxyz","region":"eu"}"#);
        assert_eq!(json, r#"{"authtoken":"[redacted]","region":"eu"}"#, "the rest of the line stays");
        let plain = "INF Registered tunnel connection connIndex=0 location=ams01";
        assert_eq!(redact(plain), plain, "lines without a token are kept as they are");
    }

    #[test]
    fn the_command_line_quotes_and_redacts() {
        let argv = ["http".to_string(), "8787".into(), "--authtoken".into(), "SECRET".into(), "a b".into()];
        let line = command_line(Path::new("/opt/my tools/ngrok"), &argv);
        assert_eq!(line, "'/opt/my tools/ngrok' http 8787 --authtoken [redacted] 'a b'");
    }

    #[test]
    fn output_lines_are_cleaned_and_cut() {
        assert_eq!(clean_line(b"\x1b[32mINF\x1b[0m ok\x07\r"), "INF ok");
        assert_eq!(clean_line(b"caf\xc3\xa9 \xff"), "café \u{fffd}");
        let long = clean_line("é".repeat(2 * LINE_CHARS).as_bytes());
        assert_eq!(long.chars().count(), LINE_CHARS + 1, "cut, with an ellipsis");
        assert!(long.ends_with('…'));
    }

    #[tokio::test]
    async fn lines_are_read_capped_with_or_without_a_final_newline() {
        let input: &[u8] = b"one\r\ntwo-two-two\n\nlast";
        let mut reader = BufReader::with_capacity(4, input);
        let mut lines = Vec::new();
        while let Some(line) = read_line_capped(&mut reader, 5).await.expect("reads from memory") {
            lines.push(String::from_utf8_lossy(&line).into_owned());
        }
        assert_eq!(lines, ["one\r", "two-t", "", "last"]);
    }

    #[test]
    fn exits_are_described_for_a_person() {
        assert_eq!(describe_exit(&Ok(ExitStatus::from_raw(1 << 8))), "exited with status 1");
        assert_eq!(describe_exit(&Ok(ExitStatus::from_raw(9))), "was killed by signal 9 (SIGKILL)");
    }

    #[test]
    fn secrets_in_tunnel_args_never_reach_the_command_shown() {
        let argv: Vec<String> = [
            "http",
            "8787",
            "--basic-auth",
            "user:hunter2",
            "--oauth-client-secret=s3cr3t",
            "--url",
            "x.ngrok-free.app",
        ]
        .map(String::from)
        .to_vec();
        let line = command_line(Path::new("ngrok"), &argv);
        assert!(!line.contains("hunter2") && !line.contains("s3cr3t"), "{line}");
        assert!(
            line.contains("--basic-auth [redacted]") && line.contains("--oauth-client-secret=[redacted]"),
            "{line}"
        );
        assert!(line.contains("--url x.ngrok-free.app"), "what is no secret is shown: {line}");
    }
}

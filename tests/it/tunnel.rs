//! The tunnel cpwatch runs for the user, and reading a tunnel's URL from its local API.
//!
//! Neither cloudflared nor ngrok can be installed on the machines these tests run on (no
//! internet, and a real tunnel would need one), so each test writes a stand-in into a
//! temp dir under the real program's name: a Python script that takes the same command
//! line, serves the same local API on the same address (cloudflared's `/quicktunnel` and
//! `/ready` on `--metrics ADDR`; ngrok's `/api/tunnels` on the `web_addr` of its
//! configuration file), prints lines like the real program's, exits 0 on SIGTERM, and
//! "crashes" (exits 1) when told to. The supervisor runs it as a real child process.
//!
//! Nothing here asserts on time: every wait polls with a deadline that only turns a hang
//! into a failure.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cpwatch::reach::discover::{self, DiscoverError};
use cpwatch::reach::tunnel::{Tunnel, TunnelKind, TunnelSpec, UrlSource};
use tempfile::TempDir;

/// Generous: the machine is shared, and Python takes its time to start.
const DEADLINE: Duration = Duration::from_secs(20);

/// A stand-in for `cloudflared tunnel --url URL --metrics ADDR`: a quick tunnel with a
/// new random hostname each run. `--standin-ignore-term` makes it ignore SIGTERM;
/// `--standin-exit-after SECS` makes it exit with status 1 by itself; a file named `die`
/// beside it makes it remove the file and exit with status 1.
pub(crate) const CLOUDFLARED: &str = r#"#!/usr/bin/env python3
import http.server, json, os, random, signal, sys, threading, time

args = sys.argv[1:]
def value(flag):
    return args[args.index(flag) + 1] if flag in args else None

if args[:1] != ["tunnel"] or value("--url") is None or value("--metrics") is None:
    print("stand-in cloudflared: unexpected command line %r" % args, file=sys.stderr, flush=True)
    sys.exit(2)
url, metrics, exit_after = value("--url"), value("--metrics"), value("--standin-exit-after")
words = ["amber", "basin", "cedar", "delta", "ember", "fjord", "grove", "harbor", "inlet", "juniper"]
hostname = "-".join(random.sample(words, 3)) + "-%06d.trycloudflare.com" % random.randrange(10**6)

class Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/quicktunnel":
            answer = {"hostname": hostname}
        elif self.path == "/ready":
            answer = {"status": 200, "readyConnections": 1, "connectorId": "00000000-0000-0000-0000-000000000000"}
        else:
            self.send_error(404)
            return
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

def log(line):
    print(time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime()) + line, file=sys.stderr, flush=True)

def on_term(signum, frame):
    log("INF Initiating graceful shutdown due to signal terminated ...")
    os._exit(0)

signal.signal(signal.SIGTERM, signal.SIG_IGN if "--standin-ignore-term" in args else on_term)
host, port = metrics.rsplit(":", 1)
server = http.server.ThreadingHTTPServer((host, int(port)), Metrics)
threading.Thread(target=server.serve_forever, daemon=True).start()
log("INF Thank you for trying Cloudflare Tunnel.")
log("INF Requesting new quick Tunnel on trycloudflare.com...")
log("INF +--------------------------------------------------------------------------------------------+")
log("INF |  Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):  |")
log("INF |  https://%s  |" % hostname)
log("INF +--------------------------------------------------------------------------------------------+")
log("INF Starting metrics server on %s/metrics" % metrics)
print("stand-in stdout: forwarding to %s" % url, flush=True)

die = os.path.join(os.path.dirname(os.path.abspath(__file__)), "die")
started = time.monotonic()
while True:
    if os.path.exists(die):
        os.remove(die)
        log("ERR stand-in told to die")
        os._exit(1)
    if exit_after is not None and time.monotonic() - started > float(exit_after):
        log("ERR stand-in exiting as told")
        os._exit(1)
    time.sleep(0.05)
"#;

/// A stand-in for `ngrok http PORT --log stdout`: reads `web_addr` from the `ngrok.yml`
/// beside it (the real agent's configuration holds it too) and serves `/api/tunnels`
/// there: an https tunnel for PORT, its http twin (as older agents list), and an https
/// tunnel for another port. Its log lines go to stdout in logfmt; one carries an authtoken.
const NGROK: &str = r#"#!/usr/bin/env python3
import http.server, json, os, signal, sys, threading, time

args = sys.argv[1:]
if args[:1] != ["http"] or "--log" not in args or args[args.index("--log") + 1] != "stdout":
    print("stand-in ngrok: unexpected command line %r" % args, file=sys.stderr, flush=True)
    sys.exit(2)
port = int(args[1])
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "ngrok.yml")) as config:
    web_addr = [line.split(":", 1)[1].strip() for line in config if line.startswith("web_addr:")][0]

def tunnel(name, public_url, proto, addr):
    return {"name": name, "ID": name + "-id", "uri": "/api/tunnels/" + name, "public_url": public_url,
            "proto": proto, "config": {"addr": addr, "inspect": True},
            "metrics": {"conns": {"count": 0, "gauge": 0}, "http": {"count": 0}}}

answer = {"tunnels": [
    tunnel("other", "https://other-port.ngrok-free.app", "https", "http://localhost:%d" % (port + 1)),
    tunnel("command_line (http)", "http://right-one.ngrok-free.app", "http", "http://localhost:%d" % port),
    tunnel("command_line", "https://right-one.ngrok-free.app", "https", "http://localhost:%d" % port),
], "uri": "/api/tunnels"}

class Api(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/api/tunnels":
            self.send_error(404)
            return
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

def log(line):
    print('t=%s lvl=info %s' % (time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime()), line), flush=True)

signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
host, api_port = web_addr.rsplit(":", 1)
server = http.server.ThreadingHTTPServer((host, int(api_port)), Api)
threading.Thread(target=server.serve_forever, daemon=True).start()
log('msg="open config file" path=%s err=nil' % os.path.join(here, "ngrok.yml"))
log('msg="config" authtoken=2abcSECRETtokenVALUE region=eu')
log('msg="starting web service" obj=web addr=%s' % web_addr)
log('msg="started tunnel" obj=tunnels name=command_line addr=http://localhost:%d url=https://right-one.ngrok-free.app' % port)
while True:
    time.sleep(1)
"#;

/// A temp dir holding a stand-in under the real program's name.
pub(crate) struct StandIn {
    dir: TempDir,
    pub(crate) program: PathBuf,
}

impl StandIn {
    pub(crate) fn new(name: &str, script: &str) -> StandIn {
        let dir = tempfile::Builder::new().prefix("cpwatch-tunnel-").tempdir().expect("create a temp dir");
        let program = dir.path().join(name);
        std::fs::write(&program, script).expect("write the stand-in");
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755))
            .expect("make it executable");
        StandIn { dir, program }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spec(&self, kind: TunnelKind, args: &[&str]) -> TunnelSpec {
        let mut spec = TunnelSpec::new(kind, "127.0.0.1:8787".parse().expect("an address"));
        spec.program = Some(self.program.clone());
        spec.args = args.iter().map(|a| a.to_string()).collect();
        spec
    }
}

/// Polls `probe` until it gives a value; fails with `context()` after [`DEADLINE`].
async fn eventually<T, Fut>(what: &str, mut probe: impl FnMut() -> Fut, context: impl Fn() -> String) -> T
where
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up after {DEADLINE:?} waiting for: {what}; {}", context());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn metrics_of(tunnel: &Tunnel) -> String {
    match tunnel.url_source() {
        UrlSource::Cloudflared { metrics } => metrics,
        other => panic!("a cloudflared tunnel's URL is read from its metrics server, not {other:?}"),
    }
}

/// The quick tunnel's URL once its metrics server answers with one.
async fn quick_tunnel_url(tunnel: &Tunnel, what: &str) -> String {
    let client = discover::local_client().expect("a plain HTTP client");
    eventually(
        what,
        || {
            let metrics = metrics_of(tunnel);
            let client = client.clone();
            async move { discover::cloudflared(&client, &[metrics]).await.ok().flatten() }
        },
        || format!("status: {:?}", tunnel.status()),
    )
    .await
}

/// Stops the tunnel, failing the test rather than hanging when it does not stop.
async fn stop(tunnel: &Tunnel) {
    tokio::time::timeout(DEADLINE, tunnel.stop()).await.expect("the tunnel stops within the deadline");
}

pub(crate) fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

#[tokio::test]
async fn a_managed_cloudflared_publishes_its_quick_tunnel_url_and_its_output() {
    let stand_in = StandIn::new("cloudflared", CLOUDFLARED);
    let tunnel = Tunnel::start(stand_in.spec(TunnelKind::Cloudflared, &["--no-autoupdate"]));
    let url = quick_tunnel_url(&tunnel, "the stand-in's quick tunnel URL").await;
    assert!(url.starts_with("https://") && url.ends_with(".trycloudflare.com"), "{url}");
    let status = tunnel.status();
    assert!(status.running, "the child runs: {status:?}");
    let pid = status.pid.expect("a running tunnel has a pid");
    assert!(process_exists(pid), "the pid is the child's");
    assert!(status.started_at.is_some() && status.problem.is_none(), "{status:?}");
    assert_eq!(status.restarts, 0);
    assert!(
        status.command.contains("tunnel --url http://127.0.0.1:8787 --metrics 127.0.0.1:")
            && status.command.ends_with(" --no-autoupdate"),
        "the command line as run, tunnel_args last: {}",
        status.command
    );
    let hostname = url.trim_start_matches("https://").to_string();
    let lines = eventually(
        "the child's stderr and stdout in the status",
        || {
            let lines = tunnel.status().lines;
            let both = lines.iter().any(|l| l.contains(&hostname))
                && lines.iter().any(|l| l.starts_with("stand-in stdout"));
            async move { both.then_some(lines) }
        },
        || format!("status: {:?}", tunnel.status()),
    )
    .await;
    assert!(lines.len() <= 40, "at most 40 lines are kept");
    stop(&tunnel).await;
}

#[tokio::test]
async fn a_crashed_tunnel_is_restarted_with_a_new_url() {
    let stand_in = StandIn::new("cloudflared", CLOUDFLARED);
    let tunnel = Tunnel::start(stand_in.spec(TunnelKind::Cloudflared, &[]));
    let first = quick_tunnel_url(&tunnel, "the first quick tunnel URL").await;
    let first_pid = tunnel.status().pid.expect("running");
    let mut changes = tunnel.changes();
    std::fs::write(stand_in.path("die"), b"").expect("tell the stand-in to crash");
    tokio::time::timeout(DEADLINE, changes.changed())
        .await
        .expect("the exit is announced within the deadline")
        .expect("the tunnel is still there");
    let status = eventually(
        "the tunnel to be running again",
        || {
            let status = tunnel.status();
            async move { (status.running && status.restarts == 1).then_some(status) }
        },
        || format!("status: {:?}", tunnel.status()),
    )
    .await;
    let last_exit = status.last_exit.as_deref().unwrap_or_default();
    assert!(last_exit.starts_with("exited with status 1 at "), "{status:?}");
    assert_ne!(status.pid, Some(first_pid), "a new child");
    assert!(status.problem.is_none(), "a running tunnel has no problem: {status:?}");
    assert!(
        status.lines.iter().any(|l| l.contains("stand-in told to die")),
        "the old child's last words are kept"
    );
    let second = eventually(
        "the restarted tunnel's own URL",
        || {
            let metrics = metrics_of(&tunnel);
            let first = first.clone();
            async move {
                let url = discover::cloudflared(
                    &discover::local_client().expect("a plain HTTP client"),
                    &[metrics],
                )
                .await
                .ok()
                .flatten();
                url.filter(|url| *url != first)
            }
        },
        || format!("status: {:?}", tunnel.status()),
    )
    .await;
    assert!(second.ends_with(".trycloudflare.com"), "a restart gets a new quick tunnel: {second}");
    stop(&tunnel).await;
}

#[tokio::test]
async fn a_tunnel_that_exits_by_itself_says_why_until_it_runs_again() {
    let stand_in = StandIn::new("cloudflared", CLOUDFLARED);
    let tunnel = Tunnel::start(stand_in.spec(TunnelKind::Cloudflared, &["--standin-exit-after", "0"]));
    let status = eventually(
        "an exit after a restart, with the next restart planned",
        || {
            let status = tunnel.status();
            let waiting = status.restarts >= 1 && !status.running && status.next_restart_at.is_some();
            async move { waiting.then_some(status) }
        },
        || format!("status: {:?}", tunnel.status()),
    )
    .await;
    let problem = status.problem.as_deref().unwrap_or_default();
    assert!(problem.starts_with("cloudflared exited with status 1 at "), "{status:?}");
    // Which of its two pipes was read last is a race: only its own words are certain.
    assert!(problem.contains("; its last line: "), "the problem quotes its last line: {problem}");
    assert!(status.lines.iter().any(|l| l.contains("stand-in exiting as told")), "{status:?}");
    stop(&tunnel).await;
    assert!(!tunnel.status().running);
}

#[tokio::test]
async fn stop_ends_the_child_and_is_idempotent() {
    let stand_in = StandIn::new("cloudflared", CLOUDFLARED);
    let tunnel = Tunnel::start(stand_in.spec(TunnelKind::Cloudflared, &[]));
    quick_tunnel_url(&tunnel, "the quick tunnel URL").await;
    let pid = tunnel.status().pid.expect("running");
    let metrics = metrics_of(&tunnel);
    stop(&tunnel).await;
    assert!(!process_exists(pid), "the child process {pid} is gone after stop()");
    let status = tunnel.status();
    assert!(!status.running && status.pid.is_none(), "{status:?}");
    let last_exit = status.last_exit.as_deref().unwrap_or_default();
    assert!(last_exit.starts_with("stopped by cpwatch at ") && last_exit.contains("status 0"), "{status:?}");
    let gone =
        discover::cloudflared(&discover::local_client().expect("a plain HTTP client"), &[metrics]).await;
    assert!(matches!(gone, Ok(None)), "nothing answers on the metrics address: {gone:?}");
    stop(&tunnel).await;
    assert_eq!(tunnel.status().restarts, 0, "a stopped tunnel is not restarted");
}

#[tokio::test]
async fn a_tunnel_dropped_without_stop_still_ends_its_child() {
    let stand_in = StandIn::new("cloudflared", CLOUDFLARED);
    let tunnel = Tunnel::start(stand_in.spec(TunnelKind::Cloudflared, &[]));
    quick_tunnel_url(&tunnel, "the quick tunnel URL").await;
    let pid = tunnel.status().pid.expect("running");
    drop(tunnel);
    eventually(
        "the child to end once its Tunnel is dropped",
        || async move { (!process_exists(pid)).then_some(()) },
        || format!("pid {pid} still exists"),
    )
    .await;
}

#[tokio::test]
async fn a_child_that_ignores_sigterm_is_killed() {
    let stand_in = StandIn::new("cloudflared", CLOUDFLARED);
    let tunnel = Tunnel::start(stand_in.spec(TunnelKind::Cloudflared, &["--standin-ignore-term"]));
    quick_tunnel_url(&tunnel, "the quick tunnel URL").await;
    let pid = tunnel.status().pid.expect("running");
    stop(&tunnel).await;
    assert!(!process_exists(pid), "the child process {pid} is gone after stop()");
    let last_exit = tunnel.status().last_exit.unwrap_or_default();
    assert!(last_exit.contains("signal 9 (SIGKILL)"), "{last_exit}");
}

#[tokio::test]
async fn a_missing_program_is_a_problem_that_says_where_to_get_it() {
    let dir = tempfile::tempdir().expect("create a temp dir");
    let mut spec = TunnelSpec::new(TunnelKind::Cloudflared, "0.0.0.0:8787".parse().expect("an address"));
    spec.program = Some(dir.path().join("cloudflared"));
    let tunnel = Tunnel::start(spec);
    let problem = eventually(
        "a problem in the status",
        || {
            let problem = tunnel.status().problem;
            async move { problem }
        },
        || format!("status: {:?}", tunnel.status()),
    )
    .await;
    assert!(problem.contains("cloudflared is not installed"), "{problem}");
    assert!(problem.contains(&dir.path().join("cloudflared").display().to_string()), "{problem}");
    assert!(problem.contains(TunnelKind::Cloudflared.download_hint()), "{problem}");
    let status = tunnel.status();
    assert!(!status.running && status.pid.is_none() && status.next_restart_at.is_some(), "{status:?}");
    stop(&tunnel).await;
    assert!(tunnel.status().next_restart_at.is_none(), "no restart is planned after stop()");
}

#[tokio::test]
async fn a_managed_ngrok_is_found_through_its_agent_api_and_its_authtoken_is_not_shown() {
    let stand_in = StandIn::new("ngrok", NGROK);
    let web_addr = format!("127.0.0.1:{}", free_port());
    std::fs::write(stand_in.path("ngrok.yml"), format!("version: 3\nweb_addr: {web_addr}\n"))
        .expect("write the stand-in's configuration");
    let mut spec = stand_in.spec(TunnelKind::Ngrok, &["--url", "right-one.ngrok-free.app"]);
    spec.ngrok_web_addr = web_addr.clone();
    let tunnel = Tunnel::start(spec);
    let UrlSource::Ngrok { web_addr: source_addr, port } = tunnel.url_source() else {
        panic!("an ngrok tunnel's URL is read from its agent API");
    };
    assert_eq!((source_addr.as_str(), port), (web_addr.as_str(), 8787));
    let client = discover::local_client().expect("a plain HTTP client");
    let url = eventually(
        "the agent API's https tunnel for port 8787",
        || {
            let (client, web_addr) = (client.clone(), web_addr.clone());
            async move { discover::ngrok(&client, &web_addr, 8787).await.ok().flatten() }
        },
        || format!("status: {:?}", tunnel.status()),
    )
    .await;
    assert_eq!(url, "https://right-one.ngrok-free.app", "not the http twin, not the other port's");
    let other = discover::ngrok(&client, &web_addr, 8788).await.expect("the same answer");
    assert_eq!(other.as_deref(), Some("https://other-port.ngrok-free.app"));
    assert_eq!(discover::ngrok(&client, &web_addr, 9999).await.expect("the same answer"), None);
    let lines = eventually(
        "ngrok's log lines in the status",
        || {
            let lines = tunnel.status().lines;
            async move { (lines.len() >= 4).then_some(lines) }
        },
        || format!("status: {:?}", tunnel.status()),
    )
    .await;
    assert!(lines.iter().any(|l| l.contains("started tunnel")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("authtoken=[redacted]")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("SECRET")), "no authtoken in the kept lines: {lines:?}");
    assert!(tunnel.status().command.ends_with("http 8787 --log stdout --url right-one.ngrok-free.app"));
    stop(&tunnel).await;
}

/// Serves `body` as JSON at every path, as a broken or impostor local API would.
async fn serve_json(body: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("its address");
    let app = axum::Router::new()
        .fallback(move || async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body) });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn a_malformed_answer_is_an_error_that_names_the_url_asked() {
    let client = discover::local_client().expect("a plain HTTP client");
    let addr = serve_json(r#"{"tunnels": [{"public_url": "#).await.to_string();
    match discover::ngrok(&client, &addr, 8787).await {
        Err(e @ DiscoverError::Malformed { .. }) => {
            let asked = format!("http://{addr}/api/tunnels");
            assert!(e.to_string().contains(&asked), "the message names {asked}: {e}");
        }
        other => panic!("malformed JSON is DiscoverError::Malformed, not {other:?}"),
    }
    match discover::cloudflared(&client, std::slice::from_ref(&addr)).await {
        Err(e @ DiscoverError::Malformed { .. }) => {
            assert!(e.to_string().contains(&format!("http://{addr}/quicktunnel")), "{e}");
        }
        other => panic!("malformed JSON is DiscoverError::Malformed, not {other:?}"),
    }
}

#[tokio::test]
async fn no_agent_listening_is_no_url_and_the_first_answer_decides() {
    let client = discover::local_client().expect("a plain HTTP client");
    let nobody = format!("127.0.0.1:{}", free_port());
    assert!(matches!(discover::ngrok(&client, &nobody, 8787).await, Ok(None)), "no agent, no URL");
    let named = serve_json(r#"{"hostname":""}"#).await.to_string();
    let quick = serve_json(r#"{"hostname":"later-words.trycloudflare.com"}"#).await.to_string();
    let found = discover::cloudflared(&client, &[nobody.clone(), quick.clone()]).await;
    assert_eq!(
        found.ok().flatten().as_deref(),
        Some("https://later-words.trycloudflare.com"),
        "silence is passed over"
    );
    let found = discover::cloudflared(&client, &[named, quick]).await;
    assert!(matches!(found, Ok(None)), "a named tunnel answered first: {found:?}");
}

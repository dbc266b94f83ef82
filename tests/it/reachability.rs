//! Reachability end to end, with real components only: the real `cpwatch serve` behind
//! Debian's nginx as a TLS reverse proxy standing in for the tunnel (a certificate made
//! by openssl for the test), probed over real HTTPS; `cpwatch status --json` and the
//! dashboard's `GET /api/overview` read as a person's tools read them. Stopping nginx is
//! "the tunnel died"; pointing it elsewhere is a stale tunnel. Then the outages a kill
//! and a clean stop leave behind.
//!
//! Nothing here asserts on time: the probe interval is one second so that the states
//! come quickly, and every wait is a polling loop whose deadline only turns a hang into
//! a failure.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound as _, Utc};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::harness::{run_to_exit, DataDir, Delivery, Server, EXIT_DEADLINE, START_DEADLINE};

/// How long a reachability state may take to show. Generous: two failed probes a second
/// apart are enough, but the machine is shared and nginx restarts in between.
pub(crate) const REACH_DEADLINE: Duration = Duration::from_secs(90);
/// Between two looks at `cpwatch status` or the API: each look starts a process or a
/// request, so not in a tight loop.
const POLL: Duration = Duration::from_millis(250);

/// A program the suite needs, found on PATH or in the sbin directories (nginx lives in
/// /usr/sbin, which a plain user's PATH often lacks). Missing is a failure, never a skip.
fn require(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{program} is not installed, and the reachability tests need it: \
                 `bash scripts/setup.sh e2e` installs it (these tests fail rather than skip)"
            )
        })
}

/// A loopback port nothing listens on at the moment.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("the bound address").port()
}

/// Runs an async block (a reqwest call) to its end on a runtime of its own, so that the
/// tests stay plain blocking code like the harness they use.
pub(crate) fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime")
        .block_on(future)
}

/// An HTTP client that never goes through a proxy from the environment and, given a
/// CA, trusts it besides the system's store.
pub(crate) fn client(ca: Option<&Path>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30));
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).unwrap_or_else(|e| panic!("read the test CA {}: {e}", ca.display()));
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("the test CA is PEM"));
    }
    builder.build().expect("build the HTTP client")
}

/// Polls `look` until it returns something; fails the test after `deadline`, showing
/// the last thing seen.
pub(crate) fn eventually<T>(
    what: &str,
    deadline: Duration,
    mut look: impl FnMut() -> Result<T, String>,
) -> T {
    let until = Instant::now() + deadline;
    loop {
        match look() {
            Ok(found) => return found,
            Err(last) => {
                assert!(
                    Instant::now() < until,
                    "gave up after {deadline:?} waiting for: {what}; last seen: {last}"
                );
                std::thread::sleep(POLL);
            }
        }
    }
}

/// nginx as a TLS-terminating reverse proxy on a loopback port of its own, in front of
/// a receiver's port: the stand-in for ngrok or cloudflared, with a certificate that
/// only clients given [`TlsProxy::ca_pem_path`] trust.
struct TlsProxy {
    dir: TempDir,
    /// Where it listens (`https://localhost:PORT`), the same across restarts.
    port: u16,
    upstream: u16,
    /// The CA that signed the proxy's certificate, which no system store trusts.
    ca_pem_path: PathBuf,
    child: Option<Child>,
}

impl TlsProxy {
    /// Makes the certificate and picks the port, without starting: a receiver's
    /// configuration names the proxy's URL before the receiver's port is known.
    fn new() -> TlsProxy {
        require("nginx");
        let dir = tempfile::Builder::new().prefix("cpwatch-proxy-").tempdir().expect("create a temp dir");
        let file = |name: &str| dir.path().join(name);
        // A CA and a server certificate it signs, as a lab's proxy has: rustls refuses a
        // self-signed CA certificate presented as the server's own (CaUsedAsEndEntity).
        let ca = file("ca.pem");
        openssl(
            dir.path(),
            "make the test CA",
            &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=cpwatch test CA"],
            &[("-keyout", "ca-key.pem"), ("-out", "ca.pem")],
        );
        openssl(
            dir.path(),
            "make the proxy's key and request",
            &["req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"],
            &[("-keyout", "key.pem"), ("-out", "cert.csr")],
        );
        std::fs::write(
            file("cert.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write the certificate's extensions");
        openssl(
            dir.path(),
            "sign the proxy's certificate with the test CA",
            &["x509", "-req", "-days", "2", "-CAcreateserial"],
            &[
                ("-in", "cert.csr"),
                ("-CA", "ca.pem"),
                ("-CAkey", "ca-key.pem"),
                ("-extfile", "cert.ext"),
                ("-out", "cert.pem"),
            ],
        );
        TlsProxy { port: free_port(), upstream: 0, ca_pem_path: ca, child: None, dir }
    }

    /// `https://localhost:PORT`: what a researcher would configure as `public_url`.
    fn origin(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// Points the proxy at another port, (re)starting it on its own port.
    fn set_upstream(&mut self, upstream: u16) {
        self.stop();
        self.upstream = upstream;
        self.write_config();
        self.run();
    }

    /// Stops and starts again with the same port and upstream: the tunnel is back.
    fn restart(&mut self) {
        self.stop();
        self.run();
    }

    fn write_config(&self) {
        let tmp = self.dir.path().display().to_string();
        // As root, nginx's workers switch to `nobody`, who cannot enter this 0700 temp
        // dir to buffer a body; they may as well stay root (the user directive only
        // applies when the master runs as root, and is ignored with a warning otherwise).
        let user = if is_root() { "user root;\n" } else { "" };
        let conf = format!(
            "{user}daemon off;\nmaster_process on;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n\
             events {{}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {tmp}/client_body;\n  proxy_temp_path {tmp}/proxy;\n  \
             fastcgi_temp_path {tmp}/fastcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n  \
             server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {tmp}/cert.pem;\n    ssl_certificate_key {tmp}/key.pem;\n    \
             location / {{\n      proxy_pass http://127.0.0.1:{upstream};\n      proxy_set_header Host $http_host;\n      \
             proxy_set_header X-Forwarded-Host $http_host;\n    }}\n  }}\n}}\n",
            port = self.port,
            upstream = self.upstream,
        );
        std::fs::write(self.dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
    }

    /// Starts nginx and waits until it answers HTTPS with the test's certificate.
    fn run(&mut self) {
        let tmp = self.dir.path();
        let stderr = std::fs::File::create(tmp.join("nginx.stderr")).expect("create nginx's stderr file");
        let child = Command::new(require("nginx"))
            .arg("-p")
            .arg(tmp)
            .arg("-c")
            .arg(tmp.join("nginx.conf"))
            .arg("-e")
            .arg(tmp.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nginx: {e}"));
        self.child = Some(child);
        let url = format!("{}/", self.origin());
        let ca = self.ca_pem_path.clone();
        eventually(&format!("nginx answering {url}"), START_DEADLINE, || {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("nginx exited ({status}) instead of serving; {}", self.logs());
            }
            // Any HTTP answer will do (502 while the upstream is down): the proxy is up.
            // Until it listens the port refuses; any other error will not go away.
            match block_on(async { client(Some(&ca)).get(&url).send().await }) {
                Ok(response) => Ok(response.status()),
                Err(e) if format!("{e:?}").contains("ConnectionRefused") => Err(format!("{e:?}")),
                Err(e) => panic!("nginx answers {url} with an error: {e:?}; {}", self.logs()),
            }
        });
    }

    /// SIGTERM to the master, which takes its workers with it (SIGKILL would leave the
    /// workers serving on the port). Stopped means the port refuses connections.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let until = Instant::now() + EXIT_DEADLINE;
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > until {
                let _ = child.kill();
                panic!("nginx did not stop on SIGTERM; {}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("nginx stderr:\n{}\nnginx error.log:\n{}", read("nginx.stderr"), read("error.log"))
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let until = Instant::now() + EXIT_DEADLINE;
            while child.try_wait().ok().flatten().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!("--- {}", self.logs());
            }
        }
    }
}

/// Runs openssl in `dir` with `args`, then each `(flag, file in dir)`; it must succeed.
fn openssl(dir: &Path, what: &str, args: &[&str], files: &[(&str, &str)]) {
    let mut cmd = Command::new(require("openssl"));
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    for (flag, name) in files {
        cmd.arg(flag).arg(dir.join(name));
    }
    let out = run_to_exit(cmd, &format!("openssl {}", args.join(" ")));
    assert!(out.status.success(), "openssl could not {what}: {}", String::from_utf8_lossy(&out.stderr));
}

fn is_root() -> bool {
    let mut cmd = Command::new("id");
    cmd.arg("-u");
    let out = run_to_exit(cmd, "id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A data directory whose receiver's public URL is the proxy's, probed every second.
fn behind(proxy: &TlsProxy, trust_test_ca: bool) -> DataDir {
    let mut toml = format!("public_url = \"{}\"\nprobe_interval_secs = 1\n", proxy.origin());
    if trust_test_ca {
        toml.push_str(&format!("extra_ca_file = '{}'\n", proxy.ca_pem_path.display()));
    }
    DataDir::with_config(&toml)
}

/// `cpwatch status --json`, run beside the server on its data directory.
pub(crate) fn status(dir: &DataDir) -> Value {
    let out = dir.run_ok(&["status", "--json"], &[]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json is JSON ({e}): {out}"))
}

/// The dashboard's overview's `receiver` object.
pub(crate) fn overview(server: &Server) -> Value {
    let url = format!("{}/api/overview", server.dashboard);
    let (code, body) = block_on(async {
        let response = client(None).get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let code = response.status().as_u16();
        (code, response.text().await.unwrap_or_else(|e| panic!("GET {url}: {e}")))
    });
    assert_eq!(code, 200, "GET {url} answers 200: {body}");
    let value: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url} is JSON ({e}): {body}"));
    value["receiver"].clone()
}

/// Waits until `reachability` (of status or the overview's receiver) is in `state`
/// with `cause` (`None` for reachable); returns the whole object it was seen in.
fn wait_for_state(what: &str, state: &str, cause: Option<&str>, mut look: impl FnMut() -> Value) -> Value {
    let want = cause.map_or(Value::Null, |c| json!(c));
    eventually(&format!("{what}: reachability {state} (cause {want})"), REACH_DEADLINE, || {
        let seen = look();
        let r = &seen["reachability"];
        if r["state"] == state && r["cause"] == want {
            Ok(seen)
        } else {
            Err(r.to_string())
        }
    })
}

/// The one unreachable outage that is still going on, if any.
fn open_unreachable(downtime: &Value) -> Option<Value> {
    let open: Vec<&Value> =
        entries(downtime).filter(|d| d["kind"] == "unreachable" && d["to"].is_null()).collect();
    assert!(open.len() <= 1, "at most one unreachable period is open at a time: {downtime}");
    open.first().map(|d| (*d).clone())
}

fn entries(downtime: &Value) -> impl Iterator<Item = &Value> {
    downtime.as_array().unwrap_or_else(|| panic!("downtime is a list: {downtime}")).iter()
}

fn time(value: &Value) -> DateTime<Utc> {
    let text = value.as_str().unwrap_or_else(|| panic!("a time, not {value}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is an RFC 3339 time: {e}"))
        .to_utc()
}

fn reason(seen: &Value) -> String {
    seen["reachability"]["reason"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_receiver_behind_a_tls_proxy_is_reachable_and_a_stopped_proxy_is_an_unreachable_outage_until_it_returns()
{
    let mut proxy = TlsProxy::new();
    let dir = behind(&proxy, true);
    let server = dir.serve();
    proxy.set_upstream(server.addr.port());
    let public = json!({"url": format!("{}/webhook", proxy.origin()), "source": "config"});

    let seen = wait_for_state("status --json", "reachable", None, || status(&dir));
    assert_eq!(seen["public_url"], public, "status names the configured public URL with the webhook path");
    assert!(seen["reachability"]["checked_at"].is_string(), "a reachable URL was probed: {seen}");
    assert!(seen["reachability"]["since"].is_string(), "{seen}");
    let api = wait_for_state("the overview API", "reachable", None, || overview(&server));
    assert_eq!(api["public_url"], public, "the dashboard agrees with status on the public URL");
    assert!(api["reachability"]["checked_at"].is_string(), "{api}");
    assert_eq!(api["probe_interval_secs"], 1, "{api}");

    proxy.stop();
    let seen = wait_for_state("status --json", "unreachable", Some("connection_refused"), || status(&dir));
    assert!(reason(&seen).contains("refuses connections"), "the reason says the URL refuses: {seen}");
    let outage = open_unreachable(&seen["downtime"]).unwrap_or_else(|| {
        panic!("an unreachable period is open while the proxy is down: {}", seen["downtime"])
    });
    assert!(outage["reason"].as_str().is_some_and(|r| r.contains("refuses connections")), "{outage}");
    let api =
        wait_for_state("the overview API", "unreachable", Some("connection_refused"), || overview(&server));
    assert!(reason(&api).contains("refuses connections"), "{api}");
    let api_outage = open_unreachable(&api["downtime"])
        .unwrap_or_else(|| panic!("the dashboard lists the open outage too: {}", api["downtime"]));
    assert_eq!(api_outage["from"], outage["from"], "the same outage: {api_outage} / {outage}");
    assert!(
        api_outage["advice"].as_str().is_some_and(|a| !a.is_empty()),
        "each outage has advice: {api_outage}"
    );

    proxy.restart();
    let seen = wait_for_state("status --json", "reachable", None, || status(&dir));
    let ended = entries(&seen["downtime"])
        .find(|d| d["kind"] == "unreachable" && d["from"] == outage["from"])
        .unwrap_or_else(|| panic!("the outage is still listed once it ended: {}", seen["downtime"]));
    assert!(ended["to"].is_string(), "the outage ends when the URL reaches the receiver again: {ended}");
    assert!(time(&ended["to"]) >= time(&ended["from"]), "{ended}");
    assert_eq!(open_unreachable(&seen["downtime"]), None, "nothing is left open: {}", seen["downtime"]);
    let api = wait_for_state("the overview API", "reachable", None, || overview(&server));
    assert_eq!(open_unreachable(&api["downtime"]), None, "{}", api["downtime"]);
}

#[test]
fn a_proxy_certificate_the_probe_does_not_trust_is_a_tls_failure() {
    let mut proxy = TlsProxy::new();
    // No extra_ca_file: the system's store does not know the test's self-signed CA.
    let dir = behind(&proxy, false);
    let server = dir.serve();
    proxy.set_upstream(server.addr.port());
    let seen = wait_for_state("status --json", "unreachable", Some("tls"), || status(&dir));
    assert!(reason(&seen).contains("TLS handshake"), "the reason names TLS: {seen}");
    let api = wait_for_state("the overview API", "unreachable", Some("tls"), || overview(&server));
    assert!(reason(&api).contains("TLS handshake"), "{api}");
}

#[test]
fn a_public_url_that_reaches_another_receiver_is_not_reachable() {
    let mut proxy = TlsProxy::new();
    let dir = behind(&proxy, true);
    let server = dir.serve();
    proxy.set_upstream(server.addr.port());
    wait_for_state("status --json", "reachable", None, || status(&dir));

    // A second cpwatch, with its own data and ports: what a stale tunnel would reach.
    let other_dir = DataDir::new();
    let other = other_dir.serve();
    proxy.set_upstream(other.addr.port());
    let seen = wait_for_state("status --json", "unreachable", Some("another_receiver"), || status(&dir));
    assert!(reason(&seen).contains("another receiver answered"), "{seen}");
    let api =
        wait_for_state("the overview API", "unreachable", Some("another_receiver"), || overview(&server));
    assert!(reason(&api).contains("another receiver answered"), "{api}");
}

#[test]
fn a_proxy_that_cannot_reach_the_receiver_is_an_http_status_failure() {
    let mut proxy = TlsProxy::new();
    let dir = behind(&proxy, true);
    let server = dir.serve();
    proxy.set_upstream(server.addr.port());
    wait_for_state("status --json", "reachable", None, || status(&dir));

    // Nothing listens upstream: nginx is up and answers 502 Bad Gateway.
    proxy.set_upstream(free_port());
    let seen = wait_for_state("status --json", "unreachable", Some("http_status"), || status(&dir));
    assert!(reason(&seen).contains("502"), "the reason names the status: {seen}");
    let api = wait_for_state("the overview API", "unreachable", Some("http_status"), || overview(&server));
    assert!(reason(&api).contains("502"), "{api}");
}

#[test]
fn a_validation_through_the_public_url_marks_it_validated_and_clears_the_change_banner() {
    let mut proxy = TlsProxy::new();
    let dir = behind(&proxy, true);
    let server = dir.serve();
    proxy.set_upstream(server.addr.port());
    let url = format!("{}/webhook", proxy.origin());
    let authority = format!("localhost:{}", proxy.port);

    let seen = eventually("status --json to know the public URL", REACH_DEADLINE, || {
        let seen = status(&dir);
        if seen["validation"].is_object() {
            Ok(seen)
        } else {
            Err(seen["validation"].to_string())
        }
    });
    assert_eq!(seen["validation"]["at_this_url"], false, "nothing was validated yet: {seen}");
    let message = seen["url_change"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("press Validate") && message.contains(&url),
        "the banner says what to do: {seen}"
    );

    // A validation that did not come through the public URL does not count.
    let direct = Delivery::validation("reach-validation-direct", "code-direct");
    let reply = block_on(direct.post(&client(None), &server.url));
    assert_eq!(reply.status, 200, "{reply:?}");
    let local = server.addr.to_string();
    let seen = eventually("the direct validation to be seen", REACH_DEADLINE, || {
        let seen = status(&dir);
        if seen["validation"]["host"] == local {
            Ok(seen)
        } else {
            Err(seen["validation"].to_string())
        }
    });
    assert_eq!(
        seen["validation"]["at_this_url"], false,
        "a validation at another host is not this URL's: {seen}"
    );
    assert!(seen["url_change"].is_object(), "the banner stays until the URL is validated at: {seen}");

    let through = Delivery::validation("reach-validation-proxied", "code-proxied");
    let reply = block_on(through.post(&client(Some(&proxy.ca_pem_path)), &url));
    assert_eq!(reply.status, 200, "the receiver accepts a validation through the proxy: {reply:?}");
    assert_eq!(reply.header("X-ActiGraph-Hook-Secret"), Some("code-proxied"), "{reply:?}");
    let seen = eventually("the validation at the public URL to count", REACH_DEADLINE, || {
        let seen = status(&dir);
        if seen["validation"]["at_this_url"] == true {
            Ok(seen)
        } else {
            Err(seen["validation"].to_string())
        }
    });
    assert_eq!(seen["validation"]["host"], authority, "{seen}");
    assert!(seen["validation"]["received_at"].is_string(), "{seen}");
    assert_eq!(seen["url_change"], Value::Null, "the banner goes once the URL is validated at: {seen}");
    let api = overview(&server);
    assert_eq!(api["validation"]["at_this_url"], true, "the dashboard agrees: {api}");
    assert_eq!(api["url_change"], Value::Null, "{api}");
}

/// `GET /healthz` directly on a receiver: its status, its probe answer and its body.
fn healthz(server: &Server, query: &str) -> (u16, Option<String>, String) {
    let url = server.at(&format!("/healthz{query}"));
    block_on(async {
        let response = client(None).get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status().as_u16();
        let answer =
            response.headers().get("x-cpwatch-probe").and_then(|v| v.to_str().ok()).map(str::to_string);
        (status, answer, response.text().await.unwrap_or_else(|e| panic!("GET {url}: {e}")))
    })
}

#[test]
fn a_probe_nonce_is_answered_only_by_the_receiver_that_holds_its_key() {
    let (dir_a, dir_b) = (DataDir::new(), DataDir::new());
    let (a, b) = (dir_a.serve(), dir_b.serve());
    let (status, answer_a, body) = healthz(&a, "?probe=abc");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let answer_a = answer_a.expect("a receiver answers a probe nonce in x-cpwatch-probe");
    let answer_b = healthz(&b, "?probe=abc").1.expect("so does the other receiver");
    assert_ne!(answer_a, answer_b, "two receivers answer the same nonce differently");
    assert_eq!(
        healthz(&a, "?probe=abc").1.as_deref(),
        Some(answer_a.as_str()),
        "and each the same way each time"
    );
    assert_ne!(
        healthz(&a, "?probe=abd").1.as_deref(),
        Some(answer_a.as_str()),
        "another nonce, another answer"
    );
    assert!(healthz(&a, &format!("?probe={}", "x".repeat(64))).1.is_some(), "64 characters are answered");
    for query in ["?probe=a/b", "?probe=a%2Fb", &format!("?probe={}", "x".repeat(65))] {
        let (status, answer, body) = healthz(&a, query);
        assert_eq!((status, answer, body.as_str()), (200, None, "ok\n"), "{query} is no probe's nonce");
    }
    let (status, answer, body) = healthz(&a, "");
    assert_eq!((status, answer, body.as_str()), (200, None, "ok\n"), "plain /healthz still answers ok");
}

/// Now, to the millisecond the store keeps, for comparing with stored times.
fn now_ms() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

#[test]
fn a_kill_is_a_crashed_gap_and_a_clean_stop_a_stopped_one_and_the_banner_says_to_resend() {
    let dir = DataDir::new();
    let first_start = now_ms();
    let server = dir.serve();
    let delivery = Delivery::upload("reach-outage-1", "189", "outage-upload", "started");
    let reply = block_on(delivery.post(&client(None), &server.url));
    assert_eq!(reply.status, 200, "{reply:?}");
    server.kill();
    let killed = Utc::now();
    // Long enough for the gap to be more than the clock's resolution; nothing is timed.
    std::thread::sleep(Duration::from_secs(2));

    let server = dir.serve();
    let second_start = Utc::now();
    let seen = status(&dir);
    let gap = &seen["downtime"][0];
    assert_eq!(gap["kind"], "crashed", "a SIGKILL leaves a crashed gap: {}", seen["downtime"]);
    let (from, to) = (time(&gap["from"]), time(&gap["to"]));
    assert!(
        first_start <= from && from <= killed,
        "the gap starts at the last sign of life (the delivery, or the start), between the first start \
         {first_start} and the kill {killed}: {gap}"
    );
    assert!(killed <= to && to <= second_start, "it ends with the restart, after the kill {killed}: {gap}");
    let banner = server.stdout();
    assert!(
        banner.contains("was not receiving") && banner.contains("Resend"),
        "the banner tells of the gap and how to recover deliveries:\n{banner}"
    );

    let stopping = Utc::now();
    server.stop();
    let server = dir.serve();
    let seen = status(&dir);
    let gap = &seen["downtime"][0];
    assert_eq!(gap["kind"], "stopped", "a SIGTERM stop leaves a stopped gap: {}", seen["downtime"]);
    assert!(time(&gap["from"]) >= stopping.trunc_subsecs(3), "it starts at the stop: {gap}");
    assert_eq!(
        seen["downtime"][1]["kind"], "crashed",
        "the crash is still listed after it: {}",
        seen["downtime"]
    );
    let banner = server.stdout();
    assert!(banner.contains("was not receiving") && banner.contains("Resend"), "{banner}");
}

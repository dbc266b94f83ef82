//! Where the public URL comes from, end to end through the real `cpwatch serve`: an
//! ngrok agent's `/api/tunnels`, a cloudflared quick tunnel's `/quicktunnel`, the
//! configuration before both, and the tunnel cpwatch runs itself; read back as a person
//! reads it, with `cpwatch status --json`, the dashboard's `GET /api/overview` and its
//! live stream.
//!
//! Neither cloudflared nor ngrok can be installed on the machines these tests run on (no
//! internet, and a real tunnel would need one). The tunnels' local APIs are small HTTP
//! servers in the test that answer with the documented JSON, changed while the receiver
//! runs; the tunnel cpwatch runs is a real child process that behaves like cloudflared
//! (the Python stand-in of the `tunnel` suite). Every tunnel API cpwatch would ask by
//! default is pointed at a port where nothing listens, so a real agent on the machine
//! cannot interfere.
//!
//! Nothing here asserts on time: discovery runs every second, and every wait is a
//! polling loop whose deadline only turns a hang into a failure.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{json, Value};
use tokio::runtime::Runtime;

use crate::harness::{DataDir, Delivery, Server};
use crate::reachability::{block_on, client, eventually, free_port, overview, status, REACH_DEADLINE};
use crate::tunnel::{process_exists, StandIn, CLOUDFLARED};

/// A tunnel's local API: one path answered with JSON that the test can change.
struct FakeApi {
    addr: SocketAddr,
    answer: Arc<Mutex<String>>,
}

impl FakeApi {
    /// Serves `answer` at `path` on a loopback port of its own, on `runtime`.
    fn start(runtime: &Runtime, path: &str, answer: String) -> FakeApi {
        let answer = Arc::new(Mutex::new(answer));
        let served = answer.clone();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind a loopback port for the fake API");
        let addr = listener.local_addr().expect("the fake API's address");
        let app = axum::Router::new().route(
            path,
            axum::routing::get(move || {
                let body = served.lock().unwrap_or_else(PoisonError::into_inner).clone();
                async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body) }
            }),
        );
        runtime.spawn(async move { axum::serve(listener, app).await });
        FakeApi { addr, answer }
    }

    /// From the next request on, the API answers `answer`.
    fn answer_with(&self, answer: String) {
        *self.answer.lock().unwrap_or_else(PoisonError::into_inner) = answer;
    }
}

fn runtime() -> Runtime {
    Runtime::new().expect("build a tokio runtime for the fake APIs")
}

/// `127.0.0.1:PORT` where nothing listens: a tunnel API that is not running.
fn nobody() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// The ngrok agent's answer, as documented, for an agent running `ngrok http PORT` with
/// the public host name `host`: its https tunnel, the http twin older agents list, and a
/// tunnel of another service. The other two come first, so that picking the right one
/// is not the luck of the order.
fn ngrok_tunnels(host: &str, port: u16) -> String {
    json!({
        "tunnels": [
            {"name": "other", "public_url": "https://other.ngrok-free.app", "proto": "https",
             "config": {"addr": format!("http://localhost:{}", port + 1)}},
            {"name": "command_line (http)", "public_url": format!("http://{host}"),
             "proto": "http", "config": {"addr": format!("http://localhost:{port}")}},
            {"name": "command_line", "public_url": format!("https://{host}"),
             "proto": "https", "config": {"addr": format!("http://localhost:{port}"), "inspect": true}},
        ],
        "uri": "/api/tunnels",
    })
    .to_string()
}

/// Looks with `look` until `done` holds for what it sees; returns that.
fn wait_for(what: &str, mut look: impl FnMut() -> Value, done: impl Fn(&Value) -> bool) -> Value {
    eventually(what, REACH_DEADLINE, || {
        let seen = look();
        if done(&seen) {
            Ok(seen)
        } else {
            Err(format!(
                "public_url {}, url_change {}, reachability {}, tunnel {}",
                seen["public_url"], seen["url_change"], seen["reachability"], seen["tunnel"]
            ))
        }
    })
}

/// Asserts that `seen` (status or the overview's receiver) asks for `url` to be entered
/// in the portal, in the words a person reads, after `previous`.
fn assert_announced(seen: &Value, url: &str, previous: Option<&str>) {
    let change = &seen["url_change"];
    assert_eq!(change["url"], url, "the change banner names the new URL: {change}");
    assert_eq!(change["previous"], previous.map_or(Value::Null, |p| json!(p)), "{change}");
    let message = change["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("set the target URL to {url}"))
            && message.contains("press Validate")
            && message.matches(url).count() == 2,
        "the message says what to do in the portal with the new URL: {message}"
    );
    if let Some(previous) = previous {
        assert!(!message.contains(previous), "the message names only the new URL: {message}");
    }
    assert_eq!(seen["validation"]["at_this_url"], false, "nothing was validated at {url}: {seen}");
}

/// Opens the dashboard's live stream, then makes `change`, then reads the stream as the
/// dashboard page does: at each `reach` event (which carries only the reachability
/// state) it loads the overview again, until the overview's public URL is `url`.
/// Returns how many `reach` events that took.
async fn reach_events_until(server: &Server, change: impl FnOnce(), url: &str) -> usize {
    // No overall timeout: the stream stays open; each read has the deadline instead.
    let http = reqwest::Client::builder().no_proxy().build().expect("build the HTTP client");
    let events = format!("{}/api/events", server.dashboard);
    let mut stream = http.get(&events).send().await.unwrap_or_else(|e| panic!("GET {events}: {e}"));
    assert_eq!(stream.status(), 200, "GET {events}");
    change();
    let deadline = tokio::time::Instant::now() + REACH_DEADLINE;
    let (mut pending, mut seen, mut reach_events) = (String::new(), Vec::new(), 0);
    loop {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .unwrap_or_else(|_| {
                panic!("gave up after {REACH_DEADLINE:?} waiting for a `reach` event after which the overview names {url}; \
                        {reach_events} reach event(s), overviews seen: {seen:?}; stream: {pending}")
            })
            .unwrap_or_else(|e| panic!("reading {events}: {e}"))
            .unwrap_or_else(|| panic!("{events} ended while the receiver runs"));
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            if line.trim_end() != "event: reach" {
                continue;
            }
            reach_events += 1;
            let overview = format!("{}/api/overview", server.dashboard);
            let body: Value = http
                .get(&overview)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .unwrap_or_else(|e| panic!("GET {overview}: {e}"))
                .json()
                .await
                .unwrap_or_else(|e| panic!("{overview} is JSON: {e}"));
            let public_url = body["receiver"]["public_url"].clone();
            if public_url["url"] == url {
                return reach_events;
            }
            seen.push(public_url);
        }
    }
}

fn healthz(server: &Server) -> (u16, String) {
    let url = server.at("/healthz");
    block_on(async {
        let response = client(None).get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let code = response.status().as_u16();
        (code, response.text().await.unwrap_or_else(|e| panic!("GET {url}: {e}")))
    })
}

#[test]
fn the_ngrok_agents_https_tunnel_for_this_port_is_the_public_url_and_a_new_one_is_announced() {
    let rt = runtime();
    // The agent's answer names the receiver's port, so the port is chosen first.
    let port = free_port();
    let agent = FakeApi::start(&rt, "/api/tunnels", ngrok_tunnels("first-words.ngrok-free.app", port));
    let dir = DataDir::with_config(&format!(
        "listen = \"127.0.0.1:{port}\"\nngrok_web_addr = \"{}\"\ncloudflared_metrics = \"{}\"\n\
         discovery_interval_secs = 1\nprobe_interval_secs = 1\n",
        agent.addr,
        nobody()
    ));
    let server = dir.serve_as_configured();
    assert_eq!(server.addr.port(), port, "the receiver listens on the configured port");

    let first = "https://first-words.ngrok-free.app/webhook";
    let found = json!({"url": first, "source": "ngrok"});
    let seen =
        wait_for("status --json to name the ngrok tunnel", || status(&dir), |s| s["public_url"] == found);
    assert_announced(&seen, first, None);
    let api =
        wait_for("the overview to name the ngrok tunnel", || overview(&server), |s| s["public_url"] == found);
    assert_announced(&api, first, None);

    // The agent restarted with another name: the dashboard's live stream, opened before,
    // leads the page to the new URL.
    let second = "https://second-words.ngrok-free.app/webhook";
    let events = rt.block_on(reach_events_until(
        &server,
        || agent.answer_with(ngrok_tunnels("second-words.ngrok-free.app", port)),
        second,
    ));
    assert!(events >= 1, "the new URL came with a `reach` event");
    let moved = json!({"url": second, "source": "ngrok"});
    let seen =
        wait_for("status --json to name the new tunnel", || status(&dir), |s| s["public_url"] == moved);
    assert_announced(&seen, second, Some(first));
    let api = overview(&server);
    assert_eq!(api["public_url"], moved, "the dashboard agrees with status: {api}");
    assert_announced(&api, second, Some(first));

    // An agent that answers with what is no tunnel list: no new URL, and the one known
    // is kept (CentrePoint still posts there), not announced again when it comes back.
    agent.answer_with(r#"{"tunnels": ["#.into());
    let asked = format!("http://{}/api/tunnels gave an answer cpwatch cannot use", agent.addr);
    wait_for(
        "the log to name the URL asked",
        || Value::String(server.log()),
        |log| log.as_str().is_some_and(|l| l.contains(&asked)),
    );
    let seen = status(&dir);
    assert_eq!(seen["public_url"], moved, "the known URL is kept: {seen}");
    assert_eq!(healthz(&server), (200, "ok\n".to_string()), "the receiver keeps running");

    agent.answer_with(ngrok_tunnels("second-words.ngrok-free.app", port));
    let seen = wait_for("the agent to answer again", || status(&dir), |s| s["public_url"] == moved);
    assert_announced(&seen, second, Some(first));
}

#[test]
fn a_cloudflared_quick_tunnel_hostname_is_the_public_url_and_an_empty_one_is_none() {
    let rt = runtime();
    let metrics = FakeApi::start(
        &rt,
        "/quicktunnel",
        json!({"hostname": "amber-basin-cedar.trycloudflare.com"}).to_string(),
    );
    let dir = DataDir::with_config(&format!(
        "ngrok_web_addr = \"{}\"\ncloudflared_metrics = \"{}\"\ndiscovery_interval_secs = 1\nprobe_interval_secs = 1\n",
        nobody(),
        metrics.addr
    ));
    let server = dir.serve();
    let found =
        json!({"url": "https://amber-basin-cedar.trycloudflare.com/webhook", "source": "cloudflared"});
    let seen =
        wait_for("status --json to name the quick tunnel", || status(&dir), |s| s["public_url"] == found);
    assert_announced(&seen, "https://amber-basin-cedar.trycloudflare.com/webhook", None);
    wait_for("the overview to name the quick tunnel", || overview(&server), |s| s["public_url"] == found);

    // A quick tunnel's hostname is fixed for the life of its process; one that goes away
    // is a tunnel that ended, and CentrePoint still posts to it: the URL is kept, and the
    // receiver is not reachable.
    metrics.answer_with(json!({"hostname": ""}).to_string());
    let seen = wait_for(
        "status --json: the tunnel has ended",
        || status(&dir),
        |s| s["reachability"]["state"] == "unreachable",
    );
    assert_eq!(seen["public_url"], found, "the URL CentrePoint has is kept: {seen}");
    drop(server);

    // What cloudflared answers when it runs a named tunnel, whose hostname it does not know.
    let named = FakeApi::start(&rt, "/quicktunnel", json!({"hostname": ""}).to_string());
    let dir = DataDir::with_config(&format!(
        "ngrok_web_addr = \"{}\"\ncloudflared_metrics = \"{}\"\ndiscovery_interval_secs = 1\nprobe_interval_secs = 1\n",
        nobody(),
        named.addr
    ));
    let server = dir.serve();
    let seen = wait_for(
        "status --json to be written by this receiver",
        || status(&dir),
        |s| s["reachability"]["reason"].as_str().is_some_and(|r| r.contains("no public URL")),
    );
    assert!(seen["public_url"].is_null(), "no URL from an empty hostname: {seen}");
    assert!(overview(&server)["public_url"].is_null(), "the dashboard agrees");
}

#[test]
fn a_configured_public_url_comes_before_a_running_ngrok_agent() {
    let rt = runtime();
    let port = free_port();
    let agent = FakeApi::start(&rt, "/api/tunnels", ngrok_tunnels("agent-words.ngrok-free.app", port));
    let configured = "https://cpwatch.lab.invalid/centrepoint";
    let dir = DataDir::with_config(&format!(
        "listen = \"127.0.0.1:{port}\"\npublic_url = \"{configured}\"\nngrok_web_addr = \"{}\"\n\
         cloudflared_metrics = \"{}\"\ndiscovery_interval_secs = 1\nprobe_interval_secs = 1\n",
        agent.addr,
        nobody()
    ));
    let server = dir.serve_as_configured();
    // The agent does have a tunnel for this receiver: it is passed over, not missed.
    let agent_has = rt.block_on(cpwatch::reach::discover::ngrok(
        &cpwatch::reach::discover::local_client().expect("a plain HTTP client"),
        &agent.addr.to_string(),
        port,
    ));
    assert_eq!(agent_has.ok().flatten().as_deref(), Some("https://agent-words.ngrok-free.app"));

    let want = json!({"url": configured, "source": "config"});
    // Each failed probe (no such host) is followed by a discovery: after two probes the
    // sources have been looked at again, and the configuration still wins.
    let first = wait_for(
        "a probe of the configured URL",
        || status(&dir),
        |s| s["reachability"]["checked_at"].is_string(),
    );
    assert_eq!(first["public_url"], want, "{first}");
    let checked = first["reachability"]["checked_at"].clone();
    let again = wait_for(
        "another probe",
        || status(&dir),
        |s| s["reachability"]["checked_at"].is_string() && s["reachability"]["checked_at"] != checked,
    );
    assert_eq!(again["public_url"], want, "the configured URL stays the public URL: {again}");
    assert_eq!(overview(&server)["public_url"], want, "the dashboard agrees");
}

/// The metrics address in a managed cloudflared's command line (`--metrics ADDR`).
fn metrics_addr(command: &str) -> String {
    let mut words = command.split_whitespace();
    words
        .find(|w| *w == "--metrics")
        .and_then(|_| words.next())
        .unwrap_or_else(|| panic!("a managed cloudflared runs with --metrics ADDR: {command}"))
        .to_string()
}

#[test]
fn the_cloudflared_cpwatch_runs_gives_the_public_url_and_ends_with_cpwatch() {
    let stand_in = StandIn::new("cloudflared", CLOUDFLARED);
    let dir = DataDir::with_config(&format!(
        // A discovery interval far longer than the test: the tunnel cpwatch runs is asked
        // for its URL every 2 s until it has one, whatever the interval.
        "tunnel = \"cloudflared\"\ntunnel_program = '{}'\nngrok_web_addr = \"{}\"\ncloudflared_metrics = \"{}\"\n\
         discovery_interval_secs = 3600\nprobe_interval_secs = 1\n",
        stand_in.program.display(),
        nobody(),
        nobody()
    ));
    let server = dir.serve();
    let seen = wait_for(
        "status --json: a managed public URL and the tunnel's output",
        || status(&dir),
        |s| {
            s["public_url"]["source"] == "managed"
                && s["tunnel"]["lines"].as_array().is_some_and(|l| !l.is_empty())
        },
    );
    let tunnel = &seen["tunnel"];
    assert_eq!(tunnel["kind"], "cloudflared", "{tunnel}");
    assert_eq!(tunnel["running"], true, "{tunnel}");
    let pid = tunnel["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or_else(|| panic!("a pid: {tunnel}"));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains(&stand_in.program.display().to_string()),
        "pid {pid} is the stand-in's process"
    );

    let metrics = metrics_addr(tunnel["command"].as_str().unwrap_or_default());
    let quicktunnel = format!("http://{metrics}/quicktunnel");
    let served: Value = block_on(async {
        let response =
            client(None).get(&quicktunnel).send().await.unwrap_or_else(|e| panic!("GET {quicktunnel}: {e}"));
        response.json().await.unwrap_or_else(|e| panic!("{quicktunnel} is JSON: {e}"))
    });
    let hostname = served["hostname"].as_str().unwrap_or_else(|| panic!("a hostname: {served}"));
    let url = format!("https://{hostname}/webhook");
    assert_eq!(
        seen["public_url"],
        json!({"url": url, "source": "managed"}),
        "the hostname the tunnel serves"
    );
    assert_announced(&seen, &url, None);
    let api = overview(&server);
    assert_eq!(api["public_url"], seen["public_url"], "the dashboard agrees: {api}");
    assert_eq!(
        (api["tunnel"]["running"].clone(), api["tunnel"]["pid"].clone()),
        (json!(true), json!(pid)),
        "{api}"
    );
    assert!(api["tunnel"]["lines"].as_array().is_some_and(|l| !l.is_empty()), "{api}");

    server.stop();
    assert!(!process_exists(pid), "the tunnel's process {pid} ends when cpwatch stops cleanly");
}

#[test]
fn a_missing_ngrok_is_a_problem_that_says_where_to_get_it_while_deliveries_are_received() {
    let missing = tempfile::tempdir().expect("create a temp dir");
    let program = missing.path().join("ngrok");
    let dir = DataDir::with_config(&format!(
        "tunnel = \"ngrok\"\ntunnel_program = '{}'\nngrok_web_addr = \"{}\"\ncloudflared_metrics = \"{}\"\n\
         discovery_interval_secs = 1\nprobe_interval_secs = 1\n",
        program.display(),
        nobody(),
        nobody()
    ));
    let server = dir.serve();
    let seen = wait_for(
        "status --json: the tunnel's problem",
        || status(&dir),
        |s| s["tunnel"]["problem"].is_string(),
    );
    let problem = seen["tunnel"]["problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains("ngrok is not installed")
            && problem.contains(&program.display().to_string())
            && problem.contains("https://ngrok.com/download"),
        "the problem names the program, where it was looked for, and where to get it: {problem}"
    );
    assert_eq!(seen["tunnel"]["running"], false, "{seen}");
    assert_eq!(seen["public_url"], Value::Null, "no tunnel, no URL: {seen}");
    let api = overview(&server);
    assert_eq!(api["tunnel"]["problem"], problem, "the dashboard shows the same problem: {api}");

    let delivery = Delivery::upload("discovery-missing-ngrok", "189", "upload-1", "started");
    let reply = block_on(delivery.post(&client(None), &server.url));
    assert_eq!(reply.status, 200, "deliveries are received without the tunnel: {reply:?}");
    assert_eq!(healthz(&server), (200, "ok\n".to_string()));
}

/// A tunnel that moves while CentrePoint cannot reach cpwatch does not end the outage:
/// CentrePoint still sends to the old URL until the portal is told.
#[test]
fn an_unreachable_period_that_goes_on_across_a_new_url_is_one_outage() {
    let rt = runtime();
    let port = free_port();
    let agent = FakeApi::start(&rt, "/api/tunnels", ngrok_tunnels("first-gone.invalid", port));
    let dir = DataDir::with_config(&format!(
        "listen = \"127.0.0.1:{port}\"\nngrok_web_addr = \"{}\"\ncloudflared_metrics = \"{}\"\n\
         discovery_interval_secs = 1\nprobe_interval_secs = 1\n",
        agent.addr,
        nobody()
    ));
    let _server = dir.serve_as_configured();
    // `.invalid` never resolves (RFC 6761): each URL in turn is unreachable, anywhere.
    let unreachable_at = |name: &'static str| {
        move |s: &Value| {
            s["reachability"]["state"] == "unreachable"
                && s["reachability"]["reason"].as_str().is_some_and(|r| r.contains(name))
        }
    };
    wait_for("the first URL to be unreachable", || status(&dir), unreachable_at("first-gone.invalid"));
    agent.answer_with(ngrok_tunnels("second-gone.invalid", port));
    let seen =
        wait_for("the new URL to be unreachable", || status(&dir), unreachable_at("second-gone.invalid"));
    let open: Vec<&Value> = seen["downtime"]
        .as_array()
        .unwrap_or_else(|| panic!("downtime is a list: {seen}"))
        .iter()
        .filter(|d| d["kind"] == "unreachable" && d["to"].is_null())
        .collect();
    assert_eq!(open.len(), 1, "one unreachable period is open, not one per URL: {}", seen["downtime"]);
}

/// An agent that answers with what is no tunnel list from the start: a clear log line
/// naming what was asked, no crash, and no URL.
#[test]
fn a_malformed_agent_answer_gives_no_url_and_a_clear_log_line() {
    let rt = runtime();
    let agent = FakeApi::start(&rt, "/api/tunnels", r#"{"tunnels": [{"public_url": 7"#.into());
    let dir = DataDir::with_config(&format!(
        "ngrok_web_addr = \"{}\"\ncloudflared_metrics = \"{}\"\ndiscovery_interval_secs = 1\nprobe_interval_secs = 1\n",
        agent.addr,
        nobody()
    ));
    let server = dir.serve();
    let asked = format!("http://{}/api/tunnels gave an answer cpwatch cannot use", agent.addr);
    wait_for(
        "the log to name the URL asked",
        || Value::String(server.log()),
        |log| log.as_str().is_some_and(|l| l.contains(&asked)),
    );
    let seen = wait_for(
        "status --json from this receiver",
        || status(&dir),
        |s| s["reachability"]["reason"].as_str().is_some_and(|r| r.contains("no public URL")),
    );
    assert!(seen["public_url"].is_null(), "no URL from a malformed answer: {seen}");
    assert_eq!(healthz(&server), (200, "ok\n".to_string()), "the receiver keeps running");
    let log = server.log();
    assert_eq!(log.matches(&asked).count(), 1, "logged once, not at each discovery:\n{log}");
}

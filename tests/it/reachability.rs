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

use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound as _, Utc};
use serde_json::{json, Value};

use crate::harness::{DataDir, Delivery, Server};
use crate::tls_proxy::TlsProxy;

/// How long a reachability state may take to show. Generous: two failed probes a second
/// apart are enough, but the machine is shared and nginx restarts in between.
pub(crate) const REACH_DEADLINE: Duration = Duration::from_secs(90);
/// Between two looks at `cpwatch status` or the API: each look starts a process or a
/// request, so not in a tight loop.
const POLL: Duration = Duration::from_millis(250);

pub(crate) use crate::tls_proxy::{block_on, client, free_port};

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

/// Changes the public URL in the dashboard's Settings, as a person would.
fn set_public_url(server: &Server, url: &str) {
    let settings = format!("{}/api/settings", server.dashboard);
    let mut prefs: Value = block_on(async {
        let got = client(None).get(&settings).send().await.unwrap_or_else(|e| panic!("GET {settings}: {e}"));
        got.json::<Value>().await.unwrap_or_else(|e| panic!("GET {settings} is JSON: {e}"))
    })["preferences"]
        .clone();
    prefs["public_url"] = json!(url);
    let code = block_on(async {
        let put = client(None).put(&settings).header("Origin", &server.dashboard).json(&prefs).send().await;
        put.unwrap_or_else(|e| panic!("PUT {settings}: {e}")).status().as_u16()
    });
    assert_eq!(code, 200, "the new public URL is saved");
}

/// A study validated at one URL whose URL then changes: the new URL answers probes, but
/// CentrePoint still posts to the old one until the portal is told, so cpwatch says it
/// cannot be reached (with the portal steps) and counts the time as downtime, until a
/// validation arrives at the new URL.
#[test]
fn a_new_url_the_portal_does_not_have_yet_is_an_outage_until_it_is_validated_there() {
    let mut proxy = TlsProxy::new();
    let dir = behind(&proxy, true);
    let server = dir.serve();
    proxy.set_upstream(server.addr.port());
    let old = format!("{}/webhook", proxy.origin());
    let validate = |url: &str, code: &str| {
        let reply = block_on(
            Delivery::validation(&format!("reach-{code}"), code).post(&client(Some(&proxy.ca_pem_path)), url),
        );
        assert_eq!(reply.status, 200, "{reply:?}");
    };
    validate(&old, "at-the-old-url");
    wait_for_state("validated and reachable at the first URL", "reachable", None, || {
        let seen = status(&dir);
        if seen["validation"]["at_this_url"] == true {
            seen
        } else {
            json!({ "reachability": { "state": "waiting for the validation" } })
        }
    });

    // The same proxy under another name: a new URL, which the portal does not have.
    let new = format!("https://127.0.0.1:{}/webhook", proxy.port);
    set_public_url(&server, &format!("https://127.0.0.1:{}", proxy.port));
    let seen =
        wait_for_state("the portal to need the new URL", "unreachable", Some("url_changed"), || status(&dir));
    let why = reason(&seen);
    assert!(why.contains(&old) && why.contains(&new) && why.contains("press Validate"), "{why}");
    assert_eq!(seen["url_change"]["previous"], old.as_str(), "{seen}");
    assert!(open_unreachable(&seen["downtime"]).is_some(), "the time counts as downtime: {seen}");
    let api = overview(&server);
    assert_eq!(api["reachability"]["cause"], "url_changed", "the dashboard agrees: {api}");

    validate(&new, "at-the-new-url");
    let seen = wait_for_state("the new URL validated", "reachable", None, || status(&dir));
    assert_eq!(seen["url_change"], Value::Null, "{seen}");
    assert!(open_unreachable(&seen["downtime"]).is_none(), "the outage ended: {seen}");
}

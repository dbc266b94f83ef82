//! The dashboard's JSON API over real HTTP on loopback, against an in-process receiver
//! on a temporary data directory: every endpoint, its filters and exports, and the
//! safety rules (separate listener, Host and Origin checks, CSP, no secrets returned).

use std::time::Duration;

use cpwatch::config::Config;
use cpwatch::receive::signature::{self, Scheme};
use cpwatch::server::Receiver;
use serde_json::{json, Value};
use tokio::sync::oneshot;

const PASSCODE: &str = "dash-passcode-0451";

struct Harness {
    webhook: String,
    dashboard: String,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Harness {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("an address"),
            dashboard_listen: "127.0.0.1:0".parse().expect("an address"),
            data_dir: Some(dir.path().join("data")),
            ..Config::default()
        };
        let receiver = Receiver::start(config).await.expect("the receiver starts");
        let webhook = receiver.webhook_url();
        let dashboard = receiver.dashboard_url().trim_end_matches('/').to_string();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            receiver
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("the receiver runs and stops cleanly");
        });
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client");
        Harness { webhook, dashboard, client, stop: Some(stop), task: Some(task), _dir: dir }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("the receiver stops within a minute")
                .expect("the receiver task does not panic");
        }
    }

    /// Posts an `upload` delivery (unsigned unless `passcode`), returning the HTTP status.
    async fn upload(&self, body: Value, passcode: Option<&str>) -> u16 {
        self.deliver("upload", &body.to_string(), passcode).await
    }

    async fn deliver(&self, event: &str, body: &str, passcode: Option<&str>) -> u16 {
        let mut request = self
            .client
            .post(&self.webhook)
            .header("Content-Type", "application/json")
            .header("X-ActiGraph-Event", event)
            .header("X-ActiGraph-Delivery", uuid::Uuid::new_v4().to_string())
            .header("X-ActiGraph-Webhook-Id", "15");
        if let Some(p) = passcode {
            request = request.header(
                "X-ActiGraph-Signature",
                signature::sign(Scheme::Base64Sha256, p.as_bytes(), body.as_bytes())
                    .expect("base64 signs any body"),
            );
        }
        request.body(body.to_string()).send().await.expect("the receiver answers").status().as_u16()
    }

    /// A raw body (a roster file) posted as the dashboard page posts it, with its Origin.
    async fn post_bytes(&self, path: &str, body: Vec<u8>, origin: bool) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.dashboard))
            .header("Content-Type", "text/csv")
            .body(body);
        if origin {
            request = request.header("Origin", &self.dashboard);
        }
        let response = request.send().await.expect("an answer");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(format!("{}{path}", self.dashboard)).send().await.expect("an answer");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A state-changing request as the dashboard page makes it (with its own Origin).
    async fn send_json(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .request(method, format!("{}{path}", self.dashboard))
            .header("Origin", &self.dashboard)
            .json(&body)
            .send()
            .await
            .expect("an answer");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn upload(id: &str, status: &str, study: &str, subject: &str) -> Value {
    json!({ "status": status, "uploadId": id, "studyId": study, "subjectId": subject })
}

#[tokio::test]
async fn the_dashboard_is_not_reachable_through_the_receiver_port() {
    let h = Harness::start().await;
    let base = h.webhook.trim_end_matches("/webhook");
    for path in ["/api/overview", "/api/settings", "/api/events", "/", "/index.html", "/api/export"] {
        let status = h.client.get(format!("{base}{path}")).send().await.expect("an answer").status();
        assert_eq!(status, 404, "{path} must not be served on the receiver's (tunnelled) port");
    }
    let status = h.client.post(format!("{}/webhook", h.dashboard)).send().await.expect("an answer").status();
    assert!(status.is_client_error(), "the dashboard does not take deliveries: {status}");
    h.stop().await;
}

#[tokio::test]
async fn the_version_names_the_commit_it_was_built_from() {
    let h = Harness::start().await;
    let (status, body) = h.get("/api/version").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"), "{body}");
    assert_eq!(body["commit"], cpwatch::COMMIT, "{body}");
    assert!(cpwatch::VERSION.contains(cpwatch::COMMIT), "--version names the commit: {}", cpwatch::VERSION);
    let commit = cpwatch::COMMIT;
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "a short hash: {commit}"
    );
    h.stop().await;
}

#[tokio::test]
async fn requests_for_another_host_are_refused_against_dns_rebinding() {
    let h = Harness::start().await;
    let port = h.dashboard.rsplit(':').next().expect("a port").to_string();
    for host in ["evil.example", "evil.example:80", &format!("attacker.test:{port}"), "127.0.0.1:1"] {
        let response = h
            .client
            .get(format!("{}/api/overview", h.dashboard))
            .header("Host", host)
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), 421, "Host {host} is refused");
    }
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let response = h
            .client
            .get(format!("{}/api/overview", h.dashboard))
            .header("Host", &host)
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), 200, "Host {host} is the dashboard's own");
    }
    h.stop().await;
}

#[tokio::test]
async fn cross_origin_state_changes_are_refused() {
    let h = Harness::start().await;
    let url = format!("{}/api/studies/189", h.dashboard);
    let body = json!({ "label": "Sleep study" });
    let no_origin = h.client.put(&url).json(&body).send().await.expect("an answer").status();
    assert_eq!(no_origin, 403, "no Origin and no script header: refused");
    let evil = h
        .client
        .put(&url)
        .header("Origin", "http://evil.example")
        .json(&body)
        .send()
        .await
        .expect("an answer");
    assert_eq!(evil.status(), 403, "a foreign Origin is refused");
    let null = h.client.put(&url).header("Origin", "null").json(&body).send().await.expect("an answer");
    assert_eq!(null.status(), 403, "an opaque Origin is refused");
    let script =
        h.client.put(&url).header("X-CPWatch-Request", "1").json(&body).send().await.expect("an answer");
    assert_eq!(script.status(), 200, "a script that says so is allowed");
    let (status, named) = h.send_json(reqwest::Method::PUT, "/api/studies/189", body).await;
    assert_eq!(status, 200, "the dashboard's own Origin is allowed");
    assert_eq!(named["label"], "Sleep study");
    h.stop().await;
}

#[tokio::test]
async fn every_response_carries_a_strict_content_security_policy() {
    let h = Harness::start().await;
    for path in ["/", "/api/overview", "/api/nothing-here", "/nothing-here"] {
        let response = h.client.get(format!("{}{path}", h.dashboard)).send().await.expect("an answer");
        let csp = response
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{path}: {csp}");
        assert_eq!(
            response.headers().get("x-content-type-options").and_then(|v| v.to_str().ok()),
            Some("nosniff")
        );
    }
    let page = h.client.get(format!("{}/", h.dashboard)).send().await.expect("an answer");
    assert!(page
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html")));
    h.stop().await;
}

#[tokio::test]
async fn secrets_can_be_set_but_are_never_returned() {
    let h = Harness::start().await;
    let (status, webhook) = h
        .send_json(
            reqwest::Method::PUT,
            "/api/webhooks/15",
            json!({ "label": "Study 189", "auth_mode": "passcode", "secret": PASSCODE }),
        )
        .await;
    assert_eq!(status, 200, "{webhook}");
    assert_eq!(webhook["secret_set"], true);
    let (status, webhook) = h
        .send_json(
            reqwest::Method::PUT,
            "/api/webhooks/15",
            json!({ "label": "Renamed", "auth_mode": "passcode" }),
        )
        .await;
    assert_eq!(status, 200, "leaving the secret out keeps it: {webhook}");
    let (status, error) =
        h.send_json(reqwest::Method::PUT, "/api/webhooks/16", json!({ "auth_mode": "bearer" })).await;
    assert_eq!(status, 400, "a new bearer webhook needs its token");
    assert!(error["error"].as_str().is_some_and(|e| e.contains("secret")), "{error}");

    for path in ["/api/settings", "/api/overview"] {
        let text =
            h.client.get(format!("{}{path}", h.dashboard)).send().await.expect("an answer").text().await;
        let text = text.expect("a body");
        assert!(!text.contains(PASSCODE), "{path} must never contain the passcode");
    }
    assert_eq!(
        h.upload(upload("1", "completed", "189", "7"), Some(PASSCODE)).await,
        200,
        "the kept passcode verifies"
    );
    assert_eq!(h.upload(upload("2", "completed", "189", "7"), Some("wrong")).await, 401);
    let (_, delivery) = h.get("/api/deliveries?limit=1").await;
    let seq = delivery["items"][0]["seq"].as_i64().expect("a delivery");
    let text = h.client.get(format!("{}/api/deliveries/{seq}", h.dashboard)).send().await.expect("an answer");
    assert!(!text.text().await.expect("a body").contains(PASSCODE));
    let (_, refused) = h.get("/api/refused").await;
    assert!(!refused.to_string().contains(PASSCODE), "the refused log holds no secret");

    let (status, _) = h.send_json(reqwest::Method::DELETE, "/api/webhooks/15", Value::Null).await;
    assert_eq!(status, 200);
    let (_, settings) = h.get("/api/settings").await;
    assert_eq!(settings["webhooks"], json!([]));
    h.stop().await;
}

#[tokio::test]
async fn uploads_filter_search_and_page_through_every_row_once() {
    let h = Harness::start().await;
    for i in 0..23 {
        let status = if i % 5 == 0 { "error" } else { "completed" };
        let mut body = upload(
            &format!("9{i:03}"),
            status,
            if i % 2 == 0 { "189" } else { "200" },
            &format!("{}", i % 3),
        );
        if status == "error" {
            body["message"] = json!(format!("Device clock invalid #{i}"));
        }
        assert_eq!(h.upload(body, None).await, 200);
    }
    let (status, page) = h.get("/api/uploads?limit=100").await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(23));
    assert_eq!(page["next_cursor"], Value::Null);

    let (_, failed) = h.get("/api/uploads?status=error").await;
    let failed = failed["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(failed.len(), 5, "i = 0, 5, 10, 15, 20 failed");
    assert!(failed.iter().all(|u| u["status"] == "error" && u["error_message"].is_string()));

    let (_, study) = h.get("/api/uploads?study=189&subject=0").await;
    let study = study["items"].as_array().cloned().unwrap_or_default();
    assert!(!study.is_empty() && study.iter().all(|u| u["study_id"] == "189" && u["subject_id"] == "0"));

    let (_, found) = h.get("/api/uploads?q=clock%20invalid%20%2310").await;
    assert_eq!(found["items"][0]["upload_id"], "9010", "search finds an error message");
    let (_, found) = h.get("/api/uploads?q=9007").await;
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1), "search finds an upload id exactly");
    let (_, none) = h.get("/api/uploads?q=%25").await;
    assert_eq!(
        none["items"].as_array().map(Vec::len),
        Some(0),
        "a % in the search is a character, not a wildcard"
    );

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/uploads?limit=4&cursor={}", urlencode(c)),
            None => "/api/uploads?limit=4".to_string(),
        };
        let (status, page) = h.get(&path).await;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().cloned().unwrap_or_default() {
            seen.push(format!("{}/{}", item["study_id"], item["upload_id"]));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (23, 23), "pages cover every upload exactly once");

    let (_, future) = h.get("/api/uploads?since=2999-01-01").await;
    assert_eq!(future["items"], json!([]), "since filters by time");
    let today = chrono::Local::now().date_naive().to_string();
    let (_, until_today) = h.get(&format!("/api/uploads?until={today}&limit=100")).await;
    assert_eq!(
        until_today["items"].as_array().map(Vec::len),
        Some(23),
        "until a date includes that whole day"
    );
    let (status, error) = h.get("/api/uploads?since=yesterday").await;
    assert_eq!(status, 400, "a bad date is a clear error: {error}");
    let (status, _) = h.get("/api/uploads?status=finished").await;
    assert_eq!(status, 400, "an unknown status is a clear error");
    h.stop().await;
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn an_upload_detail_has_its_timeline_with_raw_deliveries() {
    let h = Harness::start().await;
    assert_eq!(h.upload(upload("85045", "started", "189", "44732"), None).await, 200);
    let mut done = upload("85045", "error", "189", "44732");
    done["message"] = json!("<script>alert(1)</script> decoding failed");
    assert_eq!(h.upload(done, None).await, 200);
    let (status, detail) = h.get("/api/uploads/189/85045").await;
    assert_eq!(status, 200);
    assert_eq!(detail["upload"]["status"], "error");
    assert_eq!(
        detail["upload"]["error_message"], "<script>alert(1)</script> decoding failed",
        "stored as sent"
    );
    let timeline = detail["timeline"].as_array().cloned().unwrap_or_default();
    assert_eq!(timeline.len(), 2);
    assert_eq!(timeline[0]["status"], "started", "the timeline is in the order received");
    assert!(timeline[1]["body"].as_str().is_some_and(|b| b.contains("decoding failed")));
    assert!(timeline[1]["headers"].as_array().is_some_and(|h| !h.is_empty()));
    assert!(timeline[1]["auth"].is_string());
    let (status, missing) = h.get("/api/uploads/189/nope").await;
    assert_eq!(status, 404, "{missing}");
    h.stop().await;
}

#[tokio::test]
async fn subjects_list_their_uploads_and_other_events() {
    let h = Harness::start().await;
    assert_eq!(h.upload(upload("1", "completed", "189", "44732"), None).await, 200);
    assert_eq!(h.upload(upload("2", "error", "189", "44732"), None).await, 200);
    let daily = std::fs::read("tests/fixtures/daily-statistics-complete.http").expect("fixture");
    let fixture = cpwatch::emulator::fixture::HttpFixture::parse(&daily, "daily").expect("fixture parses");
    let body = String::from_utf8(fixture.body).expect("utf-8");
    assert_eq!(h.deliver("daily_statistics_complete", &body, None).await, 200);

    let (_, subjects) = h.get("/api/studies/189/subjects").await;
    let subject = &subjects["subjects"][0];
    assert_eq!(subject["subject_id"], "44732");
    assert_eq!(subject["uploads"], json!({ "started": 0, "completed": 1, "error": 1 }));
    assert_eq!(subject["other_events"], 1);

    let (_, detail) = h.get("/api/studies/189/subjects/44732").await;
    assert_eq!(detail["uploads"]["items"].as_array().map(Vec::len), Some(2));
    let event = &detail["events"][0];
    assert_eq!(event["event"], "daily_statistics_complete");
    assert_eq!(event["detail"]["wear_minutes"], 812.0);
    assert_eq!(event["detail"]["steps"], 9002.0);
    let (_, studies) = h.get("/api/studies").await;
    assert_eq!(studies[0]["study_id"], "189");
    h.stop().await;
}

#[tokio::test]
async fn deliveries_list_every_kind_with_filters_and_raw_content() {
    let h = Harness::start().await;
    assert_eq!(h.upload(upload("1", "completed", "189", "1"), None).await, 200);
    assert_eq!(h.deliver("upload", "this is not json", None).await, 200);
    assert_eq!(h.deliver("sleep_analysis_complete", r#"{"studyId":189}"#, None).await, 200);
    let (_, all) = h.get("/api/deliveries").await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(3));
    let (_, flagged) = h.get("/api/deliveries?flagged=true").await;
    let flags: Vec<String> = flagged["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|d| d["flag"].as_str().map(str::to_string))
        .collect();
    assert_eq!(flags, vec!["unknown_event".to_string(), "invalid_json".to_string()]);
    let (_, unknown) = h.get("/api/deliveries?event=sleep_analysis_complete").await;
    assert_eq!(unknown["items"].as_array().map(Vec::len), Some(1));
    let seq = unknown["items"][0]["seq"].as_i64().expect("a number");
    let (status, raw) = h.get(&format!("/api/deliveries/{seq}")).await;
    assert_eq!(status, 200);
    assert_eq!(raw["body"], r#"{"studyId":189}"#);
    let (status, _) = h.get("/api/deliveries/999999").await;
    assert_eq!(status, 404);

    let response = h.client.post(&h.webhook).body("{}").send().await.expect("an answer");
    assert_eq!(response.status(), 400);
    // The refused log is written without holding up the answer: wait for it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, refused) = h.get("/api/refused").await;
        if refused[0]["status"] == 400 {
            assert_eq!(refused[0]["reason"], "missing X-ActiGraph-Event header");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "refused requests are listed: {refused}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.stop().await;
}

#[tokio::test]
async fn exports_follow_the_filters_and_are_named_after_the_study_and_date() {
    let h = Harness::start().await;
    let mut hostile = upload("1", "error", "189", "1");
    hostile["message"] = json!("=HYPERLINK(\"http://evil\")");
    assert_eq!(h.upload(hostile, None).await, 200);
    assert_eq!(h.upload(upload("2", "completed", "189", "1"), None).await, 200);
    assert_eq!(h.upload(upload("3", "completed", "200", "1"), None).await, 200);
    let today = chrono::Local::now().date_naive();

    let response =
        h.client.get(format!("{}/api/export?format=csv&study=189", h.dashboard)).send().await.expect("csv");
    assert_eq!(response.status(), 200);
    let disposition =
        response.headers().get("content-disposition").and_then(|v| v.to_str().ok()).map(str::to_string);
    assert_eq!(disposition, Some(format!("attachment; filename=\"cpwatch-study-189-{today}.csv\"")));
    let csv = response.text().await.expect("a body");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "a header and study 189's two uploads: {csv}");
    assert!(lines[0].starts_with("study_id,subject_id,upload_id,status"));
    assert!(csv.contains("\"'=HYPERLINK(\"\"http://evil\"\")\""), "a formula is neutralised: {csv}");

    let response = h
        .client
        .get(format!("{}/api/export?format=json&status=completed", h.dashboard))
        .send()
        .await
        .expect("json");
    let rows: Value = response.json().await.expect("JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "the status filter applies to the export");
    let (status, _) = h.get("/api/export?format=xml").await;
    assert_eq!(status, 400);
    h.stop().await;
}

#[tokio::test]
async fn a_test_delivery_goes_through_the_real_receiver_path() {
    let h = Harness::start().await;
    let (status, _) = h
        .send_json(
            reqwest::Method::PUT,
            "/api/webhooks/15",
            json!({ "auth_mode": "passcode", "secret": PASSCODE }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, sent) =
        h.send_json(reqwest::Method::POST, "/api/test-delivery", json!({ "status": "error" })).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["accepted"], true, "signed with the configured passcode: {sent}");
    let (_, uploads) = h.get("/api/uploads?status=error").await;
    assert_eq!(uploads["items"][0]["study_id"], "test");
    let (_, deliveries) = h.get("/api/deliveries?limit=1").await;
    assert!(deliveries["items"][0]["auth"].as_str().is_some_and(|a| a.starts_with("verified")));
    h.stop().await;
}

#[tokio::test]
async fn settings_are_validated_and_kept() {
    let h = Harness::start().await;
    let (_, settings) = h.get("/api/settings").await;
    let mut prefs = settings["preferences"].clone();
    assert_eq!(prefs["retention_days"], Value::Null, "everything is kept by default");
    prefs["public_url"] = json!("https://abc.ngrok.app/webhook");
    prefs["stalled_after_minutes"] = json!(45);
    prefs["notifications"]["quiet_hours"] = json!({ "start": "22:00", "end": "07:00" });
    let (status, saved) = h.send_json(reqwest::Method::PUT, "/api/settings", prefs.clone()).await;
    assert_eq!(status, 200, "{saved}");
    let (_, settings) = h.get("/api/settings").await;
    assert_eq!(settings["preferences"], prefs);
    // The reachability monitor picks the new URL up at once, on its own task.
    let deadline = std::time::Instant::now() + crate::harness::WAIT_DEADLINE;
    let overview = loop {
        let (_, overview) = h.get("/api/overview").await;
        if overview["receiver"]["public_url"] != Value::Null || std::time::Instant::now() > deadline {
            break overview;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        overview["receiver"]["public_url"],
        json!({ "url": "https://abc.ngrok.app/webhook", "source": "config" }),
        "{overview}"
    );
    assert_eq!(overview["stalled_after_minutes"], 45);

    prefs["retention_days"] = json!(0);
    let (status, error) = h.send_json(reqwest::Method::PUT, "/api/settings", prefs.clone()).await;
    assert_eq!(status, 400, "{error}");
    prefs["retention_days"] = Value::Null;
    prefs["public_url"] = json!("javascript:alert(1)");
    let (status, _) = h.send_json(reqwest::Method::PUT, "/api/settings", prefs.clone()).await;
    assert_eq!(status, 400, "only http(s) public URLs");
    prefs["public_url"] = Value::Null;
    prefs["notifications"]["quiet_hours"] = json!({ "start": "25:00", "end": "07:00" });
    let (status, _) = h.send_json(reqwest::Method::PUT, "/api/settings", prefs).await;
    assert!(status == 400 || status == 422, "a bad time is refused: {status}");

    // Start at login belongs to the desktop app: `cpwatch serve` has none to change.
    assert_eq!(settings["desktop"], Value::Null, "no desktop app around this receiver");
    let (status, error) =
        h.send_json(reqwest::Method::PUT, "/api/desktop", json!({ "start_at_login": true })).await;
    assert_eq!(status, 409, "{error}");
    assert!(error["error"].as_str().is_some_and(|e| e.contains("desktop app")), "{error}");
    h.stop().await;
}

#[tokio::test]
async fn the_overview_counts_uploads_per_study_and_shows_health() {
    let h = Harness::start().await;
    let (_, empty) = h.get("/api/overview").await;
    assert_eq!(empty["totals"]["deliveries"], 0, "a first run shows no deliveries");
    assert_eq!(empty["receiver"]["authentication_off"], true);
    assert_eq!(h.upload(upload("1", "started", "189", "1"), None).await, 200);
    assert_eq!(h.upload(upload("1", "completed", "189", "1"), None).await, 200);
    assert_eq!(h.upload(upload("2", "error", "189", "2"), None).await, 200);
    assert_eq!(h.upload(upload("3", "started", "200", "1"), None).await, 200);
    let (_, overview) = h.get("/api/overview").await;
    let cards = overview["studies"].as_array().cloned().unwrap_or_default();
    let card = cards.iter().find(|c| c["study_id"] == "189").expect("a card for study 189");
    assert_eq!(
        card["today"],
        json!({ "started": 0, "completed": 1, "error": 1 }),
        "an upload counts once, by its status"
    );
    assert_eq!(card["last_7_days"], card["today"]);
    assert_eq!(card["days"].as_array().map(Vec::len), Some(30));
    assert_eq!(card["latest_failures"][0]["upload_id"], "2");
    assert_eq!(card["stalled_count"], 0, "nothing has been started for two hours");
    assert_eq!(overview["receiver"]["webhook_url"], h.webhook);
    assert!(overview["receiver"]["last_delivery_at"].is_string());
    h.stop().await;
}

#[tokio::test]
async fn the_live_stream_pushes_new_deliveries() {
    let h = Harness::start().await;
    let mut stream =
        h.client.get(format!("{}/api/events", h.dashboard)).send().await.expect("the stream opens");
    assert_eq!(stream.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("text/event-stream"));
    assert_eq!(h.upload(upload("77", "error", "189", "1"), None).await, 200);
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(seen.contains("event: delivery") && seen.contains("\"upload_id\":\"77\"")) {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("the delivery arrives on the live stream")
            .expect("the stream stays open")
            .expect("a chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("\"transition\":\"created\""), "the upload change is included: {seen}");
    drop(stream);
    h.stop().await;
}

#[tokio::test]
async fn an_open_live_stream_does_not_hold_up_shutdown() {
    let h = Harness::start().await;
    let stream = h.client.get(format!("{}/api/events", h.dashboard)).send().await.expect("the stream opens");
    // Stopping with a dashboard still open must finish well before the connection grace period.
    h.stop().await;
    drop(stream);
}

#[tokio::test]
async fn a_webhook_label_can_be_cleared_and_refused_requests_paged() {
    let h = Harness::start().await;
    let (_, named) = h
        .send_json(
            reqwest::Method::PUT,
            "/api/webhooks/15",
            json!({ "label": "Study 189", "auth_mode": "none" }),
        )
        .await;
    assert_eq!(named["label"], "Study 189");
    let (_, cleared) = h
        .send_json(reqwest::Method::PUT, "/api/webhooks/15", json!({ "label": "", "auth_mode": "none" }))
        .await;
    assert_eq!(cleared["label"], Value::Null, "an empty label clears the name");

    for _ in 0..5 {
        let status = h.client.post(&h.webhook).body("{}").send().await.expect("an answer").status();
        assert_eq!(status, 400);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // The log is written without holding up the answers: wait for all five first.
    loop {
        let (_, all) = h.get("/api/refused?limit=10").await;
        if all.as_array().is_some_and(|a| a.len() == 5) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "five refused requests are logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, first) = h.get("/api/refused?limit=3").await;
    assert_eq!(first.as_array().map(Vec::len), Some(3));
    let last_id = first[2]["id"].as_i64().expect("an id");
    let (_, rest) = h.get(&format!("/api/refused?limit=3&cursor={last_id}")).await;
    assert_eq!(rest.as_array().map(Vec::len), Some(2), "the next page holds the two older ones");
    assert!(rest[0]["id"].as_i64() < Some(last_id));
    h.stop().await;
}

/// A study's compliance protocol through `PUT /api/studies/{study}`: the defaults until
/// set, each field changed alone, invalid values a clear 400 that changes nothing, and
/// the name kept when only the protocol changes.
#[tokio::test]
async fn a_studys_protocol_is_set_field_by_field_and_invalid_values_are_refused() {
    let h = Harness::start().await;
    let protocol_of = |studies: &Value, id: &str| {
        studies.as_array().and_then(|l| l.iter().find(|s| s["study_id"] == id)).map(|s| s["protocol"].clone())
    };
    let (status, named) =
        h.send_json(reqwest::Method::PUT, "/api/studies/204", json!({ "label": "Wrist study" })).await;
    assert_eq!(status, 200, "{named}");
    let defaults = json!({ "valid_day_minutes": 600, "valid_days_per_week": 4, "weekend_day_required": false,
                           "silent_after_days": 3, "monitoring_from": null, "monitoring_until": null });
    assert_eq!(named["protocol"], defaults, "the defaults until set: {named}");

    let change =
        json!({ "valid_day_minutes": 960, "weekend_day_required": true, "monitoring_from": "2026-11-02" });
    let (status, updated) = h.send_json(reqwest::Method::PUT, "/api/studies/204", change).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["label"], "Wrist study", "the name is kept: {updated}");
    let (_, studies) = h.get("/api/studies").await;
    let kept = protocol_of(&studies, "204").unwrap_or_else(|| panic!("study 204 is listed: {studies}"));
    assert_eq!(kept["valid_day_minutes"], 960);
    assert_eq!(kept["weekend_day_required"], true);
    assert_eq!(kept["valid_days_per_week"], 4, "a field left out keeps its value");
    assert_eq!(kept["monitoring_from"], "2026-11-02");

    for (bad, says) in [
        (json!({ "valid_day_minutes": 0 }), "valid_day_minutes"),
        (json!({ "valid_day_minutes": 1441 }), "1440"),
        (json!({ "valid_days_per_week": 8 }), "valid_days_per_week"),
        (json!({ "silent_after_days": 0 }), "silent_after_days"),
        (json!({ "monitoring_until": "2026-11-01" }), "before monitoring_from"),
    ] {
        let (status, error) = h.send_json(reqwest::Method::PUT, "/api/studies/204", bad.clone()).await;
        assert_eq!(status, 400, "{bad} is refused: {error}");
        assert!(error.to_string().contains(says), "{bad}: the reason says {says:?}: {error}");
    }
    for (bad, why) in [
        (json!({ "valid_day_minutes": -5 }), "a negative number"),
        (json!({ "monitoring_from": "02/11/2026" }), "a date that is not YYYY-MM-DD"),
        (json!({ "valid_days": 3 }), "an unknown field"),
    ] {
        let (status, _) = h.send_json(reqwest::Method::PUT, "/api/studies/204", bad).await;
        assert!(status == 400 || status == 422, "{why} is refused: {status}");
    }
    let (_, studies) = h.get("/api/studies").await;
    assert_eq!(protocol_of(&studies, "204"), Some(kept), "nothing changed by the refused requests");
    let (status, cleared) =
        h.send_json(reqwest::Method::PUT, "/api/studies/204", json!({ "monitoring_from": null })).await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["protocol"]["monitoring_from"], Value::Null, "a date is cleared with null");
    h.stop().await;
}

/// `GET /api/studies/{study}/compliance`: the subjects' standing, and with `from` and
/// `to` each one's days in that range, valid against the study's threshold.
#[tokio::test]
async fn compliance_gives_each_subjects_days_in_a_range_and_refuses_bad_ranges() {
    let h = Harness::start().await;
    let (status, _) =
        h.send_json(reqwest::Method::PUT, "/api/studies/189", json!({ "valid_day_minutes": 700 })).await;
    assert_eq!(status, 200);
    for (date, wear) in [("2026-11-02", 700), ("2026-11-03", 699), ("2026-12-01", 900)] {
        let body = json!({ "studyId": 189, "subjectId": 44732, "date": format!("{date}T00:00:00"),
                           "epochAggregation": { "wearMinutes": wear, "nonWearMinutes": 1440 - wear } });
        assert_eq!(h.deliver("daily_statistics_complete", &body.to_string(), None).await, 200);
    }
    let (status, plain) = h.get("/api/studies/189/compliance").await;
    assert_eq!(status, 200, "{plain}");
    assert_eq!(plain["protocol"]["valid_day_minutes"], 700, "{plain}");
    assert_eq!(plain["subjects"][0]["subject_id"], "44732", "{plain}");
    assert!(plain["subjects"][0].get("days").is_none(), "no days without a range: {plain}");

    let (status, ranged) = h.get("/api/studies/189/compliance?from=2026-11-01&to=2026-11-30").await;
    assert_eq!(status, 200, "{ranged}");
    assert_eq!(
        ranged["subjects"][0]["days"],
        json!([
            { "day": "2026-11-02", "wear_minutes": 700.0, "valid": true, "uploads": 0 },
            { "day": "2026-11-03", "wear_minutes": 699.0, "valid": false, "uploads": 0 },
        ]),
        "700 is valid at this study's 700, 699 is not; 1 December is outside: {ranged}"
    );
    assert_eq!((ranged["from"].clone(), ranged["to"].clone()), (json!("2026-11-01"), json!("2026-11-30")));
    for bad in [
        "from=2026-11-30&to=2026-11-01",
        "from=2025-01-01&to=2026-12-01",
        "from=2026-11-01",
        "from=yesterday&to=2026-11-01",
    ] {
        let (status, error) = h.get(&format!("/api/studies/189/compliance?{bad}")).await;
        assert_eq!(status, 400, "{bad} is refused: {error}");
    }
    h.stop().await;
}

/// `POST /api/studies/{study}/roster`: a CSV file imported whole, or refused with every
/// bad row by line and the roster left as it was; `GET` lists it with who was seen.
#[tokio::test]
async fn a_roster_file_is_imported_whole_or_refused_by_line_with_nothing_stored() {
    let h = Harness::start().await;
    assert_eq!(h.upload(upload("7001", "completed", "189", "1042"), None).await, 200);
    assert_eq!(h.upload(upload("7002", "completed", "189", "2001"), None).await, 200);
    let good = "subject_id;label;enrolled_on\r\n1042;Anna;2026-11-01\r\n1044;\"Ben; the second\";\r\n";
    let (status, imported) = h.post_bytes("/api/studies/189/roster", good.as_bytes().to_vec(), true).await;
    assert_eq!(status, 200, "a good file is imported: {imported}");
    assert_eq!(
        imported,
        json!({ "study_id": "189", "added": 2, "updated": 0, "removed": 0, "total": 2 }),
        "the answer counts what was imported"
    );
    let (status, listed) = h.get("/api/studies/189/roster").await;
    assert_eq!(status, 200, "{listed}");
    let rows: Vec<(Value, Value, Value)> = listed["roster"]
        .as_array()
        .expect("a roster list")
        .iter()
        .map(|r| (r["subject_id"].clone(), r["label"].clone(), r["seen"].clone()))
        .collect();
    assert_eq!(
        rows,
        vec![
            (json!("1042"), json!("Anna"), json!(true)),
            (json!("1044"), json!("Ben; the second"), json!(false))
        ],
        "the roster as imported, each member marked seen or not: {listed}"
    );
    assert_eq!(listed["unlisted"], json!(["2001"]), "a subject seen but not on the roster: {listed}");

    // Three bad rows (a day/month date, a duplicate id, a row without an id): all are
    // named by their line, and nothing of the file is stored.
    let bad = "subject_id,label,enrolled_on\n1042,Anna,01/11/2026\n\n1042,Again,\n,No id,\n1050,Fine,\n";
    let (status, refused) = h.post_bytes("/api/studies/189/roster", bad.as_bytes().to_vec(), true).await;
    assert_eq!(status, 400, "a file with bad rows is refused: {refused}");
    let lines: Vec<i64> = refused["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("the problems are listed: {refused}"))
        .iter()
        .map(|p| p["line"].as_i64().unwrap_or_default())
        .collect();
    assert_eq!(lines, vec![2, 4, 5], "each bad row is named by its line: {refused}");
    assert!(
        refused["problems"]
            .as_array()
            .is_some_and(|p| p.iter().all(|p| p["message"].as_str().is_some_and(|m| !m.is_empty()))),
        "each problem says what is wrong: {refused}"
    );
    assert!(
        refused["error"].as_str().is_some_and(|e| e.contains("nothing changed")),
        "the error says nothing was imported: {refused}"
    );
    let (_, after) = h.get("/api/studies/189/roster").await;
    assert_eq!(after["roster"], listed["roster"], "a refused file changes nothing: {after}");

    for (what, body) in [
        ("an empty file", Vec::new()),
        ("a file without a subject_id column", b"id,label\n1042,Anna\n".to_vec()),
        ("a file that is not UTF-8", b"subject_id,label\n1042,Ren\xe9e\n".to_vec()),
    ] {
        let (status, error) = h.post_bytes("/api/studies/189/roster", body, true).await;
        assert_eq!(status, 400, "{what} is refused: {error}");
        assert!(error["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: a clear message: {error}");
    }
    let (status, error) =
        h.post_bytes(&format!("/api/studies/{}/roster", "9".repeat(65)), good.into(), true).await;
    assert_eq!(status, 400, "a study id no study has is refused: {error}");
    let mut huge = b"subject_id\n".to_vec();
    huge.resize(5 * 1024 * 1024 + 1, b'1');
    let (status, error) = h.post_bytes("/api/studies/189/roster", huge, true).await;
    assert_eq!(status, 413, "a file over 5 MiB is refused: {error}");
    assert!(error["error"].as_str().is_some_and(|e| e.contains("5 MiB")), "and says the limit: {error}");
    let (status, _) = h.post_bytes("/api/studies/189/roster", good.into(), false).await;
    assert_eq!(status, 403, "a roster upload from another origin is refused");
    let (_, last) = h.get("/api/studies/189/roster").await;
    assert_eq!(last["roster"], listed["roster"], "none of the refused requests changed the roster: {last}");
    h.stop().await;
}

/// Each subject-day of the compliance API counts that subject's uploads received that
/// (local) day, and a day with uploads but no statistics is there with no wear; roster
/// members who never synced are marked, with their enrolment.
#[tokio::test]
async fn compliance_days_count_each_days_uploads_even_without_statistics() {
    let h = Harness::start().await;
    let today = chrono::Local::now().date_naive();
    let yesterday = today - chrono::Duration::days(1);
    let body = json!({ "studyId": 189, "subjectId": 44732, "date": format!("{yesterday}T00:00:00"),
                       "epochAggregation": { "wearMinutes": 700, "nonWearMinutes": 740 } });
    assert_eq!(h.deliver("daily_statistics_complete", &body.to_string(), None).await, 200);
    // 44732: one upload that started then completed, and another; 5: one, no statistics.
    for (id, status, subject) in [
        ("8001", "started", "44732"),
        ("8001", "completed", "44732"),
        ("8002", "completed", "44732"),
        ("8003", "error", "5"),
    ] {
        assert_eq!(h.upload(upload(id, status, "189", subject), None).await, 200);
    }
    let roster = format!("subject_id,enrolled_on\n44732,\n9999,{yesterday}\n");
    let (status, _) = h.post_bytes("/api/studies/189/roster", roster.into_bytes(), true).await;
    assert_eq!(status, 200);

    let (status, c) = h.get(&format!("/api/studies/189/compliance?from={yesterday}&to={today}")).await;
    assert_eq!(status, 200, "{c}");
    let subject = |id: &str| {
        c["subjects"]
            .as_array()
            .and_then(|l| l.iter().find(|s| s["subject_id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("subject {id} is listed: {c}"))
    };
    assert_eq!(
        subject("44732")["days"],
        json!([
            { "day": yesterday.to_string(), "wear_minutes": 700.0, "valid": true, "uploads": 0 },
            { "day": today.to_string(), "wear_minutes": null, "valid": false, "uploads": 2 },
        ]),
        "an upload seen twice counts once; today has uploads and no statistics: {c}"
    );
    assert_eq!(
        subject("5")["days"],
        json!([{ "day": today.to_string(), "wear_minutes": null, "valid": false, "uploads": 1 }]),
        "a failed upload is an upload of that day: {c}"
    );
    let never = subject("9999");
    assert_eq!(
        (&never["seen"], &never["on_roster"], &never["enrolled_on"], &never["days"]),
        (&json!(false), &json!(true), &json!(yesterday.to_string()), &json!([])),
        "a roster member who never synced is marked unseen, with the enrolment: {never}"
    );
    assert_eq!(subject("5")["seen"], json!(true), "a subject not on the roster was seen: {c}");

    // The subject's page has its last 28 complete days, yesterday first.
    let (status, page) = h.get("/api/studies/189/subjects/44732").await;
    assert_eq!(status, 200, "{page}");
    let days = page["wear"]["days"].as_array().unwrap_or_else(|| panic!("the wear days: {page}"));
    assert_eq!(days.len(), 28, "28 complete days: {page}");
    assert_eq!(
        days[0],
        json!({ "day": yesterday.to_string(), "wear_minutes": 700.0, "valid": true, "uploads": 0 }),
        "yesterday first, valid at the default 600 minutes: {page}"
    );
    assert_eq!(
        days[27]["day"],
        json!((yesterday - chrono::Duration::days(27)).to_string()),
        "back to 28 days before today: {page}"
    );
    assert_eq!(page["wear"]["valid_day_minutes"], 600, "{page}");
    h.stop().await;
}

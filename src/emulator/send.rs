//! `cpwatch send`: a CentrePoint emulator. It builds or replays a delivery, signs it
//! as CentrePoint would (or adds Basic/bearer credentials), posts it, optionally many
//! times concurrently, retries like CentrePoint, and reports status and timing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::emulator::fixture::HttpFixture;
use crate::event::{self, UploadStatus};
use crate::receive::auth::{basic_header, AuthMethod, AuthTable, Secret, DEFAULT_WEBHOOK};
use crate::receive::signature::{self, Scheme};
use crate::receive::{DELIVERY_HEADER, EVENT_HEADER, HOOK_SECRET_HEADER, SIGNATURE_HEADER, WEBHOOK_HEADER};
use crate::store::{webhooks, ReadPool, StoreError};

/// How a sent delivery authenticates.
#[derive(Debug, Clone)]
pub enum SendAuth {
    None,
    Passcode { scheme: Scheme, passcode: Secret },
    Basic { user: String, password: Secret },
    Bearer(Secret),
}

/// Fields for a generated payload; unset ones get plausible values.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    pub status: Option<String>,
    pub study: Option<String>,
    pub subject: Option<String>,
    pub upload: Option<String>,
    pub message: Option<String>,
}

/// What is sent, before the per-delivery id is chosen.
#[derive(Debug, Clone)]
pub struct Template {
    pub event: String,
    pub webhook_id: Option<String>,
    /// Headers to send as they are (from a fixture), besides the CentrePoint ones.
    pub extra_headers: Vec<(String, String)>,
    pub body: Body,
    /// A fixed delivery id; by default every delivery gets a new one.
    pub delivery_id: Option<String>,
    /// A fixed validation code (a fixture's); by default each validation gets a new one.
    pub validation_code: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Body {
    /// Sent exactly as given.
    Raw(Vec<u8>),
    /// Generated from fields; with several deliveries, each upload gets its own id.
    Generated(Fields),
}

#[derive(Debug, Clone)]
pub struct SendOptions {
    pub url: String,
    pub auth: SendAuth,
    pub count: usize,
    pub concurrency: usize,
    /// Immediate retries after a failure, as CentrePoint makes.
    pub retries: u32,
    pub timeout: Duration,
}

/// One delivery's fate.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub delivery_id: String,
    /// The final HTTP status, or `None` when no answer came.
    pub status: Option<u16>,
    pub answer: String,
    pub attempts: u32,
    pub latency: Duration,
    /// For validation: whether the code came back in `X-ActiGraph-Hook-Secret`.
    pub echo_ok: Option<bool>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s)) && self.echo_ok != Some(false)
    }
}

impl Template {
    /// A template from a `*.http` fixture file: its event, webhook id, headers and body.
    pub fn from_fixture(fixture: &HttpFixture) -> Template {
        let own = [
            EVENT_HEADER,
            DELIVERY_HEADER,
            WEBHOOK_HEADER,
            SIGNATURE_HEADER,
            HOOK_SECRET_HEADER,
            "host",
            "content-length",
        ];
        Template {
            event: fixture.header(EVENT_HEADER).unwrap_or(event::UPLOAD).to_string(),
            webhook_id: fixture.header(WEBHOOK_HEADER).map(str::to_string),
            extra_headers: fixture
                .headers
                .iter()
                .filter(|(k, _)| !own.iter().any(|o| k.eq_ignore_ascii_case(o)))
                .cloned()
                .collect(),
            body: Body::Raw(fixture.body.clone()),
            delivery_id: fixture.header(DELIVERY_HEADER).map(str::to_string),
            validation_code: fixture.header(HOOK_SECRET_HEADER).map(str::to_string),
        }
    }

    /// The body and the validation code (for `validation`) of the `index`-th delivery.
    fn render(&self, index: usize, count: usize, run: u32) -> (Vec<u8>, Option<String>) {
        let code = (self.event == event::VALIDATION)
            .then(|| self.validation_code.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string()));
        let body = match &self.body {
            Body::Raw(bytes) => bytes.clone(),
            Body::Generated(fields) => {
                let value = generate(
                    &self.event,
                    fields,
                    self.webhook_id.as_deref(),
                    code.as_deref(),
                    index,
                    count,
                    run,
                );
                value.to_string().into_bytes()
            }
        };
        (body, code)
    }
}

/// A plausible payload for `event`, shaped like CentrePoint's.
fn generate(
    event_name: &str,
    f: &Fields,
    webhook_id: Option<&str>,
    code: Option<&str>,
    index: usize,
    count: usize,
    run: u32,
) -> Value {
    let study = f.study.clone().unwrap_or_else(|| "189".into());
    let subject = f.subject.clone().unwrap_or_else(|| "44732".into());
    let now = chrono::Utc::now();
    let stamp = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    match event_name {
        event::VALIDATION => json!({ "WebhookId": webhook_id.unwrap_or("15"), "ValidationCode": code }),
        event::UPLOAD => {
            let status = f.status.clone().unwrap_or_else(|| "completed".into());
            // Several generated deliveries are several uploads, unless one was named.
            let upload = f.upload.clone().unwrap_or_else(|| {
                if count > 1 {
                    format!("{}{index:06}", run)
                } else {
                    format!("{run}")
                }
            });
            let mut body =
                json!({ "status": status, "uploadId": upload, "subjectId": subject, "studyId": study });
            match UploadStatus::parse(&status) {
                Some(UploadStatus::Error) => {
                    body["message"] = json!(f
                        .message
                        .clone()
                        .unwrap_or_else(|| "A problem occured during upload processing".into()));
                }
                Some(UploadStatus::Completed) => {
                    let first = now - chrono::Duration::days(7);
                    body["firstEpochUTC"] = json!(first.format("%Y-%m-%dT%H:%M:00.0000000").to_string());
                    body["lastEpochUTC"] = json!(now.format("%Y-%m-%dT%H:%M:00.0000000").to_string());
                    body["firstEpochSubjectTZ"] =
                        json!(first.format("%Y-%m-%dT%H:%M:00.0000000").to_string());
                    body["lastEpochSubjectTZ"] = json!(now.format("%Y-%m-%dT%H:%M:00.0000000").to_string());
                }
                _ => {}
            }
            body
        }
        event::RAW_PROCESSING_COMPLETE => {
            let status = f.status.clone().unwrap_or_else(|| "Completed".into());
            let error = status
                .eq_ignore_ascii_case("error")
                .then(|| f.message.clone().unwrap_or_else(|| "File could not be decoded".into()));
            json!({
                "study_id": study, "subject_id": subject, "subject_identifier": format!("S{subject}"),
                "monitor_serial": "TAS1F39160337", "created_at_utc": stamp,
                "min_event_timestamp": stamp, "max_event_timestamp": stamp,
                "status": status, "error_message": error,
            })
        }
        event::DATA_RETRIEVAL_COMPLETE => json!({
            "client_id": "cpwatch-send", "tracking_id": uuid::Uuid::new_v4().to_string(),
            "study_id": study, "subject_id": subject, "subject_identifier": format!("S{subject}"),
            "created_at_utc": stamp, "started_at_utc": stamp, "completed_at_utc": stamp,
            "request_status": f.status.clone().unwrap_or_else(|| "Completed".into()),
            "files": [{ "monitor_serial": "TAS1Z12345678", "file_type": "avro", "min_event_timestamp": stamp,
                        "max_event_timestamp": stamp, "file_size": 4570, "file_index": 1,
                        "file_name": format!("{subject}_TAS1Z12345678.avro") }],
            "error_message": f.message,
        }),
        event::DAILY_STATISTICS_COMPLETE => json!({
            "id": 5_512_000 + index, "studyId": study, "siteId": 402, "subjectId": subject,
            "date": now.format("%Y-%m-%dT00:00:00").to_string(), "activityMonitorSerials": ["MOS2D12345678"],
            "epochAggregation": { "wearMinutes": 812, "nonWearMinutes": 628 },
            "mavmAggregation": { "wearFilteredSteps": 9002 },
        }),
        event::CP2_DAILY_STATISTICS_COMPLETE => json!({
            "studyId": study, "subjectId": subject, "siteId": 2937, "dayStatId": 1_869_000 + index,
            "subjectIdentifier": format!("S{subject}"), "date": now.format("%Y-%m-%dT00:00:00").to_string(),
            "steps": 1296.0, "wearMinutes": 540, "mvpa": 2, "calories": 75.98,
        }),
        _ => {
            json!({ "studyId": study, "subjectId": subject, "status": f.status.clone().unwrap_or_else(|| "Completed".into()) })
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Sends `options.count` deliveries built from `template`, `options.concurrency` at a time.
pub async fn send(template: Template, options: SendOptions) -> Result<Vec<Outcome>, SendError> {
    if options.count == 0 || options.concurrency == 0 {
        return Err(SendError::Invalid("--count and --concurrency must be at least 1".into()));
    }
    // A raw body goes out as it is, and the 2015 form can only sign text: say so once,
    // before anything is sent, rather than once per delivery. Generated bodies are JSON,
    // always text.
    if let (SendAuth::Passcode { scheme, passcode }, Body::Raw(body)) = (&options.auth, &template.body) {
        signature::sign(*scheme, passcode.expose().as_bytes(), body).map_err(|e| {
            SendError::Invalid(format!("cannot sign this body with --scheme {}: {e}", scheme.id()))
        })?;
    }
    let client = reqwest::Client::builder()
        .timeout(options.timeout)
        .pool_max_idle_per_host(options.concurrency)
        .user_agent("ActiGraph-Hookshot/1.0 (cpwatch send)")
        .build()?;
    let template = Arc::new(template);
    let options = Arc::new(options);
    let slots = Arc::new(Semaphore::new(options.concurrency));
    let run = (chrono::Utc::now().timestamp() % 100_000) as u32 + 100_000;
    let mut tasks = JoinSet::new();
    for index in 0..options.count {
        let permit = slots.clone().acquire_owned().await.map_err(|_| SendError::Invalid("closed".into()))?;
        let (client, template, options) = (client.clone(), template.clone(), options.clone());
        tasks.spawn(async move {
            let outcome = send_one(&client, &template, &options, index, run).await;
            drop(permit);
            (index, outcome)
        });
    }
    let mut outcomes = Vec::with_capacity(options.count);
    while let Some(joined) = tasks.join_next().await {
        if let Ok(pair) = joined {
            outcomes.push(pair);
        }
    }
    outcomes.sort_by_key(|(i, _)| *i);
    Ok(outcomes.into_iter().map(|(_, o)| o).collect())
}

async fn send_one(
    client: &reqwest::Client,
    t: &Template,
    o: &SendOptions,
    index: usize,
    run: u32,
) -> Outcome {
    let delivery_id = match (&t.delivery_id, o.count) {
        (Some(id), 1) => id.clone(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let (body, code) = t.render(index, o.count, run);
    // Signed once: every retry sends the same body.
    let signature = match &o.auth {
        SendAuth::Passcode { scheme, passcode } => {
            match signature::sign(*scheme, passcode.expose().as_bytes(), &body) {
                Ok(value) => Some(value),
                Err(e) => {
                    return Outcome {
                        delivery_id,
                        status: None,
                        answer: format!("not sent: cannot sign the body with --scheme {}: {e}", scheme.id()),
                        attempts: 0,
                        latency: Duration::ZERO,
                        echo_ok: None,
                    }
                }
            }
        }
        SendAuth::None | SendAuth::Basic { .. } | SendAuth::Bearer(_) => None,
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut request = client
            .post(&o.url)
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-ActiGraph-Event", &t.event)
            .header("X-ActiGraph-Delivery", &delivery_id);
        for (name, value) in &t.extra_headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(webhook) = &t.webhook_id {
            request = request.header("X-ActiGraph-Webhook-Id", webhook);
        }
        if let Some(code) = &code {
            request = request.header("X-ActiGraph-Hook-Secret", code);
        }
        if let Some(value) = &signature {
            request = request.header("X-ActiGraph-Signature", value);
        }
        request = match &o.auth {
            SendAuth::None | SendAuth::Passcode { .. } => request,
            SendAuth::Basic { user, password } => {
                request.header("Authorization", basic_header(user, password.expose()))
            }
            SendAuth::Bearer(token) => request.header("Authorization", format!("Bearer {}", token.expose())),
        };
        let started = Instant::now();
        let result = request.body(body.clone()).send().await;
        let latency = started.elapsed();
        let (status, answer, echo_ok) = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let echo = response
                    .headers()
                    .get(HOOK_SECRET_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let echo_ok = code.as_ref().map(|c| echo.as_deref() == Some(c.as_str()));
                let text = response.text().await.unwrap_or_default();
                (Some(status), text.trim().chars().take(300).collect(), echo_ok)
            }
            Err(e) => (None, describe(&e), None),
        };
        let outcome =
            Outcome { delivery_id: delivery_id.clone(), status, answer, attempts, latency, echo_ok };
        if outcome.status.is_some_and(|s| (200..300).contains(&s)) || attempts > o.retries {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What a "send a test delivery" button sends: an `upload` for study `test` (unless
/// named), with the given status.
#[derive(Debug, Clone, Default)]
pub struct TestDelivery {
    pub status: String,
    pub webhook_id: Option<String>,
    pub study: Option<String>,
}

/// What a test delivery was and how the receiver answered it.
#[derive(Debug, Clone)]
pub struct TestSent {
    pub webhook_id: String,
    pub study_id: String,
    pub upload_id: String,
    pub outcome: Outcome,
}

/// Sends one test delivery through the real receiver at `url`, authenticated the way its
/// webhook is configured in `table` (the first configured webhook unless one is named),
/// so that the whole path is exercised.
pub async fn test_delivery(
    url: &str,
    table: &AuthTable,
    test: TestDelivery,
    from: &str,
) -> Result<TestSent, SendError> {
    if UploadStatus::parse(&test.status).is_none() {
        return Err(SendError::Invalid("status must be started, completed or error".into()));
    }
    let webhook_id = test
        .webhook_id
        .or_else(|| {
            let mut ids: Vec<&String> =
                table.webhooks.keys().filter(|k| k.as_str() != DEFAULT_WEBHOOK).collect();
            ids.sort();
            ids.first().map(|s| s.to_string())
        })
        .unwrap_or_else(|| "15".into());
    let auth = match table.method_for(Some(&webhook_id)) {
        None | Some(AuthMethod::None) => SendAuth::None,
        Some(AuthMethod::Passcode(p)) => {
            SendAuth::Passcode { scheme: Scheme::Base64Sha256, passcode: p.clone() }
        }
        Some(AuthMethod::Basic { user, password }) => {
            SendAuth::Basic { user: user.clone(), password: password.clone() }
        }
        Some(AuthMethod::Bearer(t)) => SendAuth::Bearer(t.clone()),
    };
    let failed = UploadStatus::parse(&test.status) == Some(UploadStatus::Error);
    let study_id = test.study.unwrap_or_else(|| "test".into());
    let upload_id = format!("test-{}", chrono::Utc::now().format("%Y%m%d%H%M%S%3f"));
    let template = Template {
        event: event::UPLOAD.into(),
        webhook_id: Some(webhook_id.clone()),
        extra_headers: vec![("User-Agent".into(), "cpwatch-test-delivery".into())],
        body: Body::Generated(Fields {
            status: Some(test.status),
            study: Some(study_id.clone()),
            subject: Some("test-subject".into()),
            upload: Some(upload_id.clone()),
            message: failed.then(|| format!("Test failure sent from {from}")),
        }),
        delivery_id: None,
        validation_code: None,
    };
    let options = SendOptions {
        url: url.to_string(),
        auth,
        count: 1,
        concurrency: 1,
        retries: 0,
        timeout: Duration::from_secs(10),
    };
    let outcome = send(template, options)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| SendError::Invalid("nothing was sent".into()))?;
    Ok(TestSent { webhook_id, study_id, upload_id, outcome })
}

/// Why the app's own test delivery (from the tray or the dashboard) was not sent.
#[derive(Debug, thiserror::Error)]
pub enum TestDeliveryError {
    #[error("cannot read the webhooks' authentication: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Send(#[from] SendError),
}

/// [`test_delivery`], authenticated as the webhook is configured in the store now.
pub async fn test_delivery_from_store(
    pool: &ReadPool,
    url: &str,
    test: TestDelivery,
    from: &str,
) -> Result<TestSent, TestDeliveryError> {
    let table = pool.run(|conn| Ok(webhooks::auth_table(conn)?)).await?;
    Ok(test_delivery(url, &table, test, from).await?)
}

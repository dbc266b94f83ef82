//! Fuzzing, the part that runs in CI: the properties of fuzz/properties.rs (the same
//! file the cargo-fuzz targets run, coverage-guided, for as long as one likes) over
//! the seed corpus made from the fixtures, over arbitrary bytes, and over structured
//! inputs that reach deep: near-valid signatures, CentrePoint-shaped JSON, requests
//! built from CentrePoint's headers. Plus the whole intake, in process, answering
//! arbitrary header sets: never a panic, never a 2xx for what it does not store.
//!
//! `PROPTEST_CASES=100000 cargo test --release --test it fuzz_props` runs longer.
//! `CPWATCH_FUZZ_CORPUS=fuzz/corpus cargo test --test it fuzz_props::every_seed` also
//! writes the seed corpus for cargo-fuzz (scripts/fuzz.sh does).

#[path = "../../fuzz/properties.rs"]
mod properties;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Request};
use cpwatch::emulator::fixture::HttpFixture;
use cpwatch::event::{self, Event, UploadStatus};
use cpwatch::receive::auth::{AuthOutcome, Credentials};
use cpwatch::receive::signature::{self, Scheme, SignatureError};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestRunner};
use serde_json::{json, Map, Value};
use tower::ServiceExt as _;

use crate::harness::{self, fixtures_dir, Auth, DataDir};

/// Every fixture file, by name, as raw bytes.
fn fixture_files() -> Vec<(String, Vec<u8>)> {
    harness::fixtures()
        .into_iter()
        .map(|(name, _)| {
            let bytes = std::fs::read(fixtures_dir().join(&name)).expect("read a fixture");
            (name, bytes)
        })
        .collect()
}

fn fixture_bodies() -> Vec<Vec<u8>> {
    harness::fixtures().into_iter().map(|(_, f)| f.body).collect()
}

#[test]
fn every_seed_from_the_fixtures_holds_every_property() {
    let seeds = properties::seeds(&fixture_files());
    assert!(seeds.len() >= 3 * fixture_files().len(), "every fixture gives seeds to every target");
    let write_to = std::env::var_os("CPWATCH_FUZZ_CORPUS").map(std::path::PathBuf::from);
    for (target, name, input) in &seeds {
        match *target {
            "signature" => {
                let [passcode, header, body] = properties::fields::<3>(input);
                let header = String::from_utf8_lossy(header);
                properties::signature(passcode, &header, body);
                assert!(
                    signature::verify(passcode, body, &header).is_ok(),
                    "seed {name} carries a valid signature"
                );
            }
            "headers" => {
                properties::headers(input, false);
                properties::headers(input, true);
            }
            "payload" => {
                let [event_name, body] = properties::fields::<2>(input);
                properties::payload(&String::from_utf8_lossy(event_name), body);
            }
            other => panic!("seed for an unknown target {other}"),
        }
        if let Some(dir) = &write_to {
            let dir = dir.join(target);
            std::fs::create_dir_all(&dir).expect("create the corpus directory");
            std::fs::write(dir.join(format!("seed-{name}")), input).expect("write a seed");
        }
    }
}

fn scheme() -> impl Strategy<Value = Scheme> {
    prop::sample::select(properties::SCHEMES.to_vec())
}

/// Arbitrary bytes half the time, UTF-8 text (of any script) the other half: random
/// bytes are seldom UTF-8, and the 2015 signature form signs only text.
fn bytes_or_text(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..max),
        vec(any::<char>(), 0..max / 4).prop_map(|c| String::from_iter(c).into_bytes())
    ]
}

/// A passcode, a fixture body and a header near the body's valid signature.
fn near_valid_signature() -> impl Strategy<Value = (String, Vec<u8>, String)> {
    ("[ -~]{0,40}", prop::sample::select(fixture_bodies()), scheme()).prop_flat_map(
        |(passcode, body, scheme)| {
            let valid = signature::sign(scheme, passcode.as_bytes(), &body)
                .expect("printable passcodes and fixture bodies are text, which every scheme signs");
            near_signature(valid).prop_map(move |header| (passcode.clone(), body.clone(), header))
        },
    )
}

/// Header text near a valid signature: the right one, mangled in the ways a proxy, a
/// copy-paste or an attacker would.
fn near_signature(valid: String) -> impl Strategy<Value = String> {
    let len = valid.len();
    prop_oneof![
        Just(valid.clone()),
        (0..=len).prop_map({
            let v = valid.clone();
            move |n| v[..n].to_string()
        }),
        (0..len.max(1), any::<char>()).prop_map({
            let v = valid.clone();
            move |(at, c)| {
                let mut chars: Vec<char> = v.chars().collect();
                let len = chars.len();
                if len > 0 {
                    chars[at % len] = c;
                }
                chars.into_iter().collect()
            }
        }),
        "[ \t]{0,3}".prop_map({
            let v = valid.clone();
            move |pad| format!("{pad}{}{pad}", v.to_ascii_uppercase())
        }),
        prop::sample::select(vec!["sha1=", "sha256=", "SHA256=", "sha512=", "", "sha1=sha256="]).prop_map({
            let v = valid.clone();
            move |prefix| {
                let digest =
                    v.split_once('=').filter(|(p, _)| p.starts_with("sha")).map_or(v.as_str(), |(_, d)| d);
                format!("{prefix}{digest}")
            }
        }),
        Just(format!("{valid}{valid}")),
        Just(format!("{valid},{valid}")),
    ]
}

proptest! {
    // Failures are saved beside this file (fuzz_props.proptest-regressions) and replayed first.
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn signature_rules_hold_for_any_bytes(
        passcode in vec(any::<u8>(), 0..64),
        header in any::<String>(),
        body in vec(any::<u8>(), 0..256),
    ) {
        properties::signature(&passcode, &header, &body);
    }

    #[test]
    fn signature_rules_hold_for_any_text(passcode in any::<String>(), header in any::<String>(), body in any::<String>()) {
        properties::signature(passcode.as_bytes(), &header, body.as_bytes());
    }

    #[test]
    fn signature_rules_hold_for_headers_near_a_valid_one(input in near_valid_signature()) {
        let (passcode, body, header) = input;
        properties::signature(passcode.as_bytes(), &header, &body);
    }

    #[test]
    fn a_signature_of_another_body_or_passcode_never_verifies(
        passcode in bytes_or_text(64),
        other_passcode in bytes_or_text(64),
        body in bytes_or_text(256),
        other_body in bytes_or_text(256),
        scheme in scheme(),
    ) {
        // What the 2015 form cannot sign (not text) is properties::signature's business.
        if other_body != body {
            if let Ok(header) = signature::sign(scheme, &passcode, &other_body) {
                let expected = if scheme == Scheme::Sha512Utf16Hex && std::str::from_utf8(&body).is_err() {
                    SignatureError::BodyNotText
                } else {
                    SignatureError::Mismatch(scheme.name())
                };
                prop_assert_eq!(
                    signature::verify(&passcode, &body, &header),
                    Err(expected),
                    "a signature of another body is refused"
                );
            }
        }
        // HMAC pads keys with zeros to the block size, so such keys are the same key. In
        // the 2015 form a trailing NUL character only adds zero bytes too.
        let trimmed = |k: &[u8]| k.iter().rposition(|b| *b != 0).map_or(&k[..0], |end| &k[..=end]).to_vec();
        if trimmed(&other_passcode) != trimmed(&passcode) {
            if let Ok(header) = signature::sign(scheme, &other_passcode, &body) {
                prop_assert!(signature::verify(&passcode, &body, &header).is_err(), "another passcode's signature is refused");
            }
        }
    }

    #[test]
    fn header_rules_hold_for_any_bytes(data in vec(any::<u8>(), 0..1024), default in any::<bool>()) {
        properties::headers(&data, default);
    }

    #[test]
    fn header_rules_hold_for_requests_built_from_centrepoint_headers(
        request in centrepoint_request(),
        default in any::<bool>(),
    ) {
        properties::headers(&request, default);
    }

    #[test]
    fn a_fixture_survives_being_written_and_read_back(
        method in "[A-Z]{1,7}",
        path in "/[!-~]{0,40}",
        headers in vec(("[!-9;-~]([ !-9;-~]{0,20}[!-9;-~])?", "([!-~]([ -~]{0,30}[!-~])?)?"), 0..8),
        body in vec(any::<u8>(), 0..256),
    ) {
        let fixture = HttpFixture { method, path, headers, body };
        let parsed = HttpFixture::parse(&properties::to_fixture_bytes(&fixture), "generated");
        prop_assert_eq!(parsed.expect("a written fixture parses"), fixture);
    }

    #[test]
    fn valid_credentials_are_accepted_and_altered_ones_refused(
        body in bytes_or_text(256),
        scheme in scheme(),
        flip in any::<prop::sample::Index>(),
    ) {
        let table = properties::auth_table(false);
        let Ok(signed) = signature::sign(scheme, properties::PASSCODE.as_bytes(), &body) else {
            // Only the 2015 form fails, and only for a body that is not text: nothing to alter.
            prop_assert!(scheme == Scheme::Sha512Utf16Hex && std::str::from_utf8(&body).is_err());
            return Ok(());
        };
        let basic = cpwatch::receive::auth::basic_header(properties::BASIC_USER, properties::BASIC_PASSWORD);
        let bearer = format!("Bearer {}", properties::BEARER);
        for (webhook, signature, authorization) in [
            ("15", Some(signed.as_str()), None),
            ("20", None, Some(basic.as_str())),
            ("21", None, Some(bearer.as_str())),
        ] {
            let creds = Credentials { signature, authorization, body: &body };
            let outcome = table.authenticate(Some(webhook), &creds);
            prop_assert!(matches!(outcome, AuthOutcome::Verified(_)), "webhook {}: valid credentials: {:?}", webhook, outcome);
            properties::authentication(&table, Some(webhook), &creds, &outcome);
            // The same credentials with one character changed.
            let original = signature.or(authorization).expect("a credential");
            let mut chars: Vec<char> = original.chars().collect();
            let at = flip.index(chars.len());
            chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
            let altered: String = chars.into_iter().collect();
            let creds = Credentials {
                signature: signature.map(|_| altered.as_str()),
                authorization: authorization.map(|_| altered.as_str()),
                body: &body,
            };
            let outcome = table.authenticate(Some(webhook), &creds);
            properties::authentication(&table, Some(webhook), &creds, &outcome);
            // Only a change of case where case does not matter still passes: hex digests
            // and their prefix, and the name of the Authorization scheme.
            let case_only = altered.eq_ignore_ascii_case(original);
            let insensitive = match webhook {
                "15" => scheme != Scheme::Base64Sha256,
                _ => original.find(' ').is_some_and(|space| at < space),
            };
            let verified = matches!(outcome, AuthOutcome::Verified(_));
            prop_assert_eq!(verified, case_only && insensitive, "webhook {}: {:?} altered to {:?}", webhook, original, altered);
        }
    }

    #[test]
    fn payload_rules_hold_for_any_bytes(name in any::<String>(), body in vec(any::<u8>(), 0..512)) {
        properties::payload(&name, &body);
    }

    #[test]
    fn payload_rules_hold_for_any_centrepoint_shaped_json(
        name in prop::sample::select(event_names()),
        value in centrepoint_json(),
    ) {
        let body = serde_json::to_vec(&value).expect("serialise generated JSON");
        properties::payload(name, &body);
    }

    #[test]
    fn an_upload_payload_is_read_back_exactly_however_it_is_spelled(upload in upload_payload()) {
        let (body, expected) = upload;
        let parsed = event::parse("upload", &body).expect("a well-formed upload parses");
        let Event::Upload(got) = parsed.event else { panic!("an upload is an upload") };
        prop_assert_eq!(got.status, expected.status);
        prop_assert_eq!(&got.upload_id, &expected.upload_id);
        prop_assert_eq!(&got.study_id, &expected.study_id);
        prop_assert_eq!(&got.subject_id, &expected.subject_id);
        prop_assert_eq!(&got.message, &expected.message);
        properties::payload("upload", &body);
    }
}

fn event_names() -> Vec<&'static str> {
    let mut names = event::KNOWN_EVENTS.to_vec();
    names.push("sleep_analysis_complete");
    names
}

/// What a generated upload payload must read back as.
#[derive(Debug, Clone)]
struct ExpectedUpload {
    status: UploadStatus,
    upload_id: String,
    study_id: String,
    subject_id: Option<String>,
    message: Option<String>,
}

/// A field name as CentrePoint might spell it: camelCase, PascalCase, snake_case, upper case.
fn spelled(camel: &'static str) -> impl Strategy<Value = String> {
    let snake: String = camel
        .chars()
        .flat_map(|c| if c.is_ascii_uppercase() { vec!['_', c.to_ascii_lowercase()] } else { vec![c] })
        .collect();
    let pascal = format!("{}{}", camel[..1].to_ascii_uppercase(), &camel[1..]);
    prop::sample::select(vec![
        camel.to_string(),
        pascal,
        snake.clone(),
        snake.to_ascii_uppercase(),
        camel.to_ascii_lowercase(),
    ])
}

/// An id as CentrePoint sends one (a number, or a string with stray whitespace) and the text it must read as.
fn id() -> impl Strategy<Value = (Value, String)> {
    prop_oneof![
        any::<i64>().prop_map(|n| (json!(n), n.to_string())),
        any::<u64>().prop_map(|n| (json!(n), n.to_string())),
        // Integral floats, up to 2^53 (beyond it a float names no single integer). Read
        // exactly thanks to serde_json's float_roundtrip feature: without it,
        // 1946100188605637.0 came back as ...636.8 and was refused.
        (-(1i64 << 53)..=(1i64 << 53)).prop_map(|n| (json!(n as f64), n.to_string())),
        ("[ \t]{0,2}", "[!-~]([ -~]{0,30}[!-~])?", "[ \t]{0,2}")
            .prop_map(|(a, text, b)| (json!(format!("{a}{text}{b}")), text)),
    ]
}

fn upload_payload() -> impl Strategy<Value = (Vec<u8>, ExpectedUpload)> {
    let status =
        prop::sample::select(vec![UploadStatus::Started, UploadStatus::Completed, UploadStatus::Error]);
    (
        status,
        any::<bool>(),
        (spelled("uploadId"), id()),
        (spelled("studyId"), id()),
        prop::option::of((spelled("subjectId"), id())),
        prop::option::of("[ -~]{0,40}"),
        vec(("[a-z]{1,12}", centrepoint_json()), 0..3),
    )
        .prop_map(
            |(status, shout, (upload_key, upload), (study_key, study), subject, message, extra)| {
                let mut map = Map::new();
                // Unrelated fields first: the known ones must be found among them.
                for (key, value) in extra {
                    map.insert(format!("x{key}"), value);
                }
                let text =
                    if shout { status.as_str().to_ascii_uppercase() } else { status.as_str().to_string() };
                map.insert("status".into(), json!(format!(" {text} ")));
                map.insert(upload_key, upload.0);
                map.insert(study_key, study.0);
                let subject_id = subject.map(|(key, (value, text))| {
                    map.insert(key, value);
                    text
                });
                if let Some(message) = &message {
                    map.insert("message".into(), json!(message));
                }
                let expected =
                    ExpectedUpload { status, upload_id: upload.1, study_id: study.1, subject_id, message };
                (serde_json::to_vec(&Value::Object(map)).expect("serialise"), expected)
            },
        )
}

/// JSON shaped like CentrePoint's payloads: their field names and value forms, nested
/// and mixed with anything else.
fn centrepoint_json() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "status",
        "uploadId",
        "studyId",
        "subjectId",
        "message",
        "firstEpochUTC",
        "lastEpochUTC",
        "firstEpochSubjectTZ",
        "lastEpochSubjectTZ",
        "study_id",
        "subject_id",
        "subject_identifier",
        "monitor_serial",
        "created_at_utc",
        "min_event_timestamp",
        "max_event_timestamp",
        "error_message",
        "request_status",
        "tracking_id",
        "files",
        "file_size",
        "id",
        "siteId",
        "date",
        "activityMonitorSerials",
        "epochAggregation",
        "wearMinutes",
        "mavmAggregation",
        "wearFilteredSteps",
        "dayStatId",
        "steps",
        "calories",
        "mvpa",
        "WebhookId",
        "ValidationCode",
        "other",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec!["started", "Completed", "ERROR", "error ", "Started\u{0}", ""])
            .prop_map(Value::from),
        prop::sample::select(vec![
            "2016-06-14T20:46:00.0000000",
            "2016-06-14T20:46:00Z",
            "2016-06-14T20:46:00+00:00",
            "2016-06-14",
            "2016-13-45T99:99:99",
            "9999-12-31T23:59:59.9999999",
            "-0001-01-01T00:00:00",
        ])
        .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((keys.clone(), inner), 0..8).prop_map(|fields| Value::Object(
                fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

/// A request in the fixture format made of CentrePoint's headers, each present zero to
/// two times, with values valid, near-valid or arbitrary.
fn centrepoint_request() -> impl Strategy<Value = Vec<u8>> {
    let bodies = fixture_bodies();
    let body = prop_oneof![prop::sample::select(bodies), vec(any::<u8>(), 0..128)];
    (body, vec((0usize..7, any::<prop::sample::Index>(), "[ -~]{0,24}"), 0..10)).prop_map(|(body, picks)| {
        let signed = signature::sign(Scheme::Base64Sha256, properties::PASSCODE.as_bytes(), &body)
            .expect("base64 signs any body");
        let basic = cpwatch::receive::auth::basic_header(properties::BASIC_USER, properties::BASIC_PASSWORD);
        let vocabulary: [(&str, Vec<String>); 7] = [
            ("X-ActiGraph-Event", vec!["upload".into(), "validation".into(), "UPLOAD".into()]),
            ("x-actigraph-delivery", vec!["d-1".into(), " d-2 ".into()]),
            (
                "X-ACTIGRAPH-WEBHOOK-ID",
                vec!["15".into(), "16".into(), "20".into(), "21".into(), " 15 ".into(), "99".into()],
            ),
            (
                "X-ActiGraph-Signature",
                vec![signed.clone(), signed.to_ascii_lowercase(), format!("sha256={signed}")],
            ),
            (
                "Authorization",
                vec![
                    basic.clone(),
                    basic.to_ascii_lowercase(),
                    format!("Bearer {}", properties::BEARER),
                    "Bearer".into(),
                    format!("bearer   {}  ", properties::BEARER),
                ],
            ),
            ("Proxy-Authorization", vec![basic.clone()]),
            ("Cookie", vec!["session=1".into()]),
        ];
        let mut text = String::from("POST /webhook HTTP/1.1\r\n");
        for (which, choice, arbitrary) in picks {
            let (name, values) = &vocabulary[which];
            let value = if choice.index(4) == 0 { arbitrary } else { choice.get(values).clone() };
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(&body);
        bytes
    })
}

#[test]
fn deeply_nested_and_huge_payloads_are_typed_errors_not_crashes() {
    for body in [
        "[".repeat(200_000).into_bytes(),
        r#"{"a":"#.repeat(100_000).into_bytes(),
        format!(r#"{{"status":"started","uploadId":{},"studyId":"1"}}"#, "9".repeat(100_000)).into_bytes(),
        br#"{"status":"started","uploadId":1e400,"studyId":"1"}"#.to_vec(),
    ] {
        properties::payload("upload", &body);
    }
}

/// The whole intake in process, with the authentication of [`properties::auth_table`].
struct Intake {
    data: DataDir,
    router: axum::Router,
    runtime: tokio::runtime::Runtime,
}

impl Intake {
    fn start() -> Intake {
        let data = DataDir::new();
        data.configure(
            "15",
            &Auth::Passcode { passcode: properties::PASSCODE.into(), scheme: Scheme::Base64Sha256 },
        );
        data.configure("16", &Auth::NotRequired);
        data.configure(
            "20",
            &Auth::Basic { user: properties::BASIC_USER.into(), password: properties::BASIC_PASSWORD.into() },
        );
        data.configure("21", &Auth::Bearer(properties::BEARER.into()));
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let config = cpwatch::config::Config { max_body_bytes: 4096, ..Default::default() };
        let db = data.db_path();
        let router = runtime.block_on(async {
            let (writer, _thread) =
                cpwatch::store::writer::spawn(db.clone(), 1000).expect("start the writer");
            let state =
                cpwatch::receive::ReceiverState::new(&config, &db, writer).expect("the receiver state");
            cpwatch::receive::router(state, "/webhook")
        });
        Intake { data, router, runtime }
    }

    fn post(
        &self,
        headers: &[(HeaderName, HeaderValue)],
        body: &[u8],
    ) -> (u16, axum::http::HeaderMap, String) {
        let mut request = Request::builder().method("POST").uri("/webhook");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut request = request.body(Body::from(body.to_vec())).expect("a request");
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([203, 0, 113, 7], 40000))));
        self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.expect("the router is infallible");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("the response body");
            (status, headers, String::from_utf8_lossy(&bytes).into_owned())
        })
    }
}

#[test]
fn the_intake_answers_any_centrepoint_header_set_and_acknowledges_only_what_it_stores() {
    let intake = Intake::start();
    let table = properties::auth_table(false);
    // PROPTEST_CASES (default 256) sets the number of requests, as for the other properties.
    let mut runner = TestRunner::default();
    let n = std::sync::atomic::AtomicU64::new(0);
    let result = runner.run(&(centrepoint_request(), "[a-z0-9-]{1,12}"), |(request, id)| {
        let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fixture = HttpFixture::parse(&request, "generated").expect("generated requests parse");
        let mut headers: Vec<(HeaderName, HeaderValue)> = fixture
            .headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from_bytes(k.as_bytes()).ok()?,
                    HeaderValue::from_bytes(v.as_bytes()).ok()?,
                ))
            })
            .collect();
        // A fresh delivery id per case, unless the case already carries its own.
        if !headers.iter().any(|(k, _)| k.as_str() == "x-actigraph-delivery") {
            headers.push((
                HeaderName::from_static("x-actigraph-delivery"),
                HeaderValue::from_str(&format!("{id}-{n}")).expect("an id"),
            ));
        }
        let before = intake.data.count("SELECT count(*) FROM deliveries");
        let (status, response_headers, text) = intake.post(&headers, &fixture.body);
        prop_assert!([200, 400, 401, 413].contains(&status), "an expected status, got {} {}", status, text);
        let first = |name: &str| headers.iter().find(|(k, _)| k.as_str() == name).map(|(_, v)| v);
        let as_text =
            |name: &str| first(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
        let event_name = as_text("x-actigraph-event");
        let is_validation = event_name.is_some_and(|e| e.eq_ignore_ascii_case("validation"));
        let creds = Credentials {
            signature: first("x-actigraph-signature").and_then(|v| v.to_str().ok()),
            authorization: first("authorization").and_then(|v| v.to_str().ok()),
            body: &fixture.body,
        };
        let outcome = table.authenticate(as_text("x-actigraph-webhook-id"), &creds);
        let after = intake.data.count("SELECT count(*) FROM deliveries");
        match status {
            200 if is_validation => {
                prop_assert!(
                    response_headers.contains_key("x-actigraph-hook-secret"),
                    "a validation gets its code echoed"
                );
                let stored = after - before;
                prop_assert_eq!(
                    stored > 0,
                    outcome.is_accepted() && text.trim() == "stored",
                    "a validation is stored only when authenticated"
                );
            }
            200 => {
                prop_assert!(outcome.is_accepted(), "200 only for accepted credentials: {:?}", outcome);
                let id = as_text("x-actigraph-delivery").expect("an acknowledged delivery has an id");
                let rows = intake.data.deliveries(id);
                prop_assert!(
                    rows.iter().any(|row| row.body == fixture.body),
                    "an acknowledged delivery is stored, body and all"
                );
                prop_assert_eq!(
                    after - before,
                    i64::from(text.trim() == "stored"),
                    "stored once, or counted as a retry"
                );
            }
            401 => {
                prop_assert!(!outcome.is_accepted(), "401 only for refused credentials");
                prop_assert_eq!(after, before, "nothing is stored for a 401");
            }
            _ => prop_assert_eq!(after, before, "nothing is stored for a {}", status),
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(
        intake.data.count("SELECT count(*) FROM deliveries") > 0,
        "some generated deliveries were accepted"
    );
}

//! End to end over a real socket: the real `cpwatch serve` on a temporary data
//! directory receives deliveries as CentrePoint sends them, and the assertions look
//! at what ends up in its SQLite file.

use cpwatch::receive::signature::Scheme;
use std::io::Write as _;
use std::net::TcpStream;

use crate::harness::{
    self, client, fixture, fixtures, raw_exchange, raw_send_and_close, read_reply, Auth, DataDir, Delivery,
    WAIT_DEADLINE,
};

const PASSCODE: &str = "correct horse battery staple";

fn passcode(scheme: Scheme) -> Auth {
    Auth::Passcode { passcode: PASSCODE.into(), scheme }
}

/// The flag a fixture's delivery is stored with.
fn expected_flag(name: &str) -> Option<&'static str> {
    (name == "unknown-event.http").then_some("unknown_event")
}

/// Rule: under every authentication mode, each CentrePoint fixture with the right
/// credential is answered 200 and stored once, byte for byte; with a wrong credential
/// it is answered 401, not stored, and logged once in `refused`.
async fn every_fixture_is_stored_once_and_refused_with_a_wrong_credential(auth: Auth) {
    let data = DataDir::new();
    data.configure("default", &auth);
    let server = data.serve();
    let client = client();
    let mut refused = 0;
    for (name, fixture) in fixtures() {
        let delivery = Delivery::from_fixture(&fixture);
        let id = delivery.id();
        let is_validation = delivery.header("X-ActiGraph-Event") == Some("validation");
        // A validation with a wrong credential is answered on purpose: see
        // the_validation_handshake_echoes_the_code_even_when_the_credentials_are_wrong.
        if let (Some(wrong), false) = (auth.wrong(), is_validation) {
            let reply = delivery.clone().signed(&wrong).post(&client, &server.url).await;
            assert_eq!(
                reply.status, 401,
                "{auth:?} {name}: a wrong credential is refused with 401: {reply:?}"
            );
            assert!(data.deliveries(&id).is_empty(), "{auth:?} {name}: a refused delivery is not stored");
            refused += 1;
            let rows = data.wait_for_refused(refused);
            assert_eq!(rows.len(), refused, "{auth:?} {name}: one refused row per refused request");
            let last = rows.last().expect("a refused row");
            assert_eq!(
                (last.status, last.delivery_id.as_deref()),
                (401, Some(id.as_str())),
                "{auth:?} {name}: the refused row names the delivery and its 401"
            );
        }

        let reply = delivery.clone().signed(&auth).post(&client, &server.url).await;
        assert_eq!(reply.status, 200, "{auth:?} {name}: the right credential is accepted: {reply:?}");
        if is_validation {
            assert_eq!(
                reply.header("x-actigraph-hook-secret"),
                fixture.header("X-ActiGraph-Hook-Secret"),
                "{auth:?} {name}: the validation code is echoed"
            );
        }
        let rows = data.deliveries(&id);
        assert_eq!(rows.len(), 1, "{auth:?} {name}: an accepted delivery is stored exactly once");
        let row = &rows[0];
        assert_eq!(row.duplicates, 0, "{auth:?} {name}: a first delivery is no duplicate");
        assert_eq!(row.body, fixture.body, "{auth:?} {name}: the body is stored byte for byte");
        assert_eq!(row.auth, auth.accepted_as(), "{auth:?} {name}: the stored auth outcome");
        assert_eq!(
            Some(row.event.as_str()),
            delivery.header("X-ActiGraph-Event"),
            "{auth:?} {name}: the event name is stored"
        );
        assert_eq!(row.flag.as_deref(), expected_flag(&name), "{auth:?} {name}: the stored flag");
    }

    if let Some(wrong) = auth.wrong() {
        let delivery = Delivery::upload("no-credentials-1", "189", "90001", "started");
        let reply = delivery.post(&client, &server.url).await;
        assert_eq!(
            reply.status, 401,
            "{auth:?}: a delivery without credentials is refused when auth is configured"
        );
        assert!(
            data.deliveries("no-credentials-1").is_empty(),
            "{auth:?}: a delivery without credentials is not stored"
        );
        refused += 1;
        data.wait_for_refused(refused);
        let signed_wrong = delivery.signed(&wrong).with_header("X-ActiGraph-Delivery", "wrong-credentials-2");
        assert_eq!(signed_wrong.post(&client, &server.url).await.status, 401);
        refused += 1;
        data.wait_for_refused(refused);
    }
    let total = data.count("SELECT count(*) FROM deliveries");
    assert_eq!(total, fixtures().len() as i64, "{auth:?}: only the accepted deliveries are stored");
    assert_eq!(data.refused().len(), refused, "{auth:?}: every refused request is logged once");
    server.stop();
}

#[tokio::test]
async fn every_fixture_is_stored_once_when_no_authentication_is_configured() {
    every_fixture_is_stored_once_and_refused_with_a_wrong_credential(Auth::Open).await;
}

#[tokio::test]
async fn every_fixture_is_stored_once_for_a_webhook_configured_without_authentication() {
    every_fixture_is_stored_once_and_refused_with_a_wrong_credential(Auth::NotRequired).await;
}

#[tokio::test]
async fn a_base64_hmac_sha256_signature_is_accepted_and_a_wrong_passcode_refused() {
    every_fixture_is_stored_once_and_refused_with_a_wrong_credential(passcode(Scheme::Base64Sha256)).await;
}

#[tokio::test]
async fn a_sha1_hex_signature_is_accepted_and_a_wrong_passcode_refused() {
    every_fixture_is_stored_once_and_refused_with_a_wrong_credential(passcode(Scheme::Sha1Hex)).await;
}

#[tokio::test]
async fn a_sha256_hex_signature_is_accepted_and_a_wrong_passcode_refused() {
    every_fixture_is_stored_once_and_refused_with_a_wrong_credential(passcode(Scheme::Sha256Hex)).await;
}

#[tokio::test]
async fn a_2015_sha512_utf16_signature_is_accepted_and_a_wrong_passcode_refused() {
    every_fixture_is_stored_once_and_refused_with_a_wrong_credential(passcode(Scheme::Sha512Utf16Hex)).await;
}

#[tokio::test]
async fn basic_credentials_are_accepted_and_a_wrong_password_refused() {
    let auth = Auth::Basic { user: "centrepoint".into(), password: "s3cret: with a colon".into() };
    every_fixture_is_stored_once_and_refused_with_a_wrong_credential(auth).await;
}

#[tokio::test]
async fn a_bearer_token_is_accepted_and_a_wrong_token_refused() {
    every_fixture_is_stored_once_and_refused_with_a_wrong_credential(Auth::Bearer("tok-4f9a1c".into())).await;
}

#[tokio::test]
async fn a_webhook_id_is_checked_with_its_own_configuration_and_an_unknown_id_is_refused() {
    let data = DataDir::new();
    data.configure("15", &passcode(Scheme::Base64Sha256));
    let server = data.serve();
    let client = client();

    let other = Auth::Passcode { passcode: "another study".into(), scheme: Scheme::Base64Sha256 };
    let for_15 = Delivery::upload("per-webhook-1", "189", "91001", "started");
    let reply = for_15.clone().signed(&other).post(&client, &server.url).await;
    assert_eq!(reply.status, 401, "webhook 15 is checked with its own passcode: {reply:?}");
    let reply = for_15.signed(&passcode(Scheme::Base64Sha256)).post(&client, &server.url).await;
    assert_eq!(reply.status, 200, "webhook 15 with its passcode is accepted: {reply:?}");

    let unknown = Delivery::upload("per-webhook-2", "189", "91002", "started")
        .with_header("X-ActiGraph-Webhook-Id", "54")
        .signed(&passcode(Scheme::Base64Sha256));
    let reply = unknown.post(&client, &server.url).await;
    assert_eq!(
        reply.status, 401,
        "an unconfigured webhook id is refused when there is no default: {reply:?}"
    );
    assert!(data.deliveries("per-webhook-2").is_empty(), "a delivery for an unknown webhook is not stored");
    let rows = data.wait_for_refused(2);
    assert!(
        rows[1].reason.contains("unknown webhook id"),
        "the refused log says the webhook id is unknown: {:?}",
        rows[1]
    );
    server.stop();
}

#[tokio::test]
async fn authentication_added_while_the_receiver_runs_applies_without_a_restart() {
    let data = DataDir::new();
    let server = data.serve();
    let client = client();
    let reply = Delivery::upload("live-config-0", "189", "92000", "started").post(&client, &server.url).await;
    assert_eq!(reply.status, 200, "open before any webhook is configured");

    data.configure("default", &Auth::Bearer("fresh-token".into()));
    let mut n = 0;
    harness::wait_until("an unauthenticated delivery is refused once a bearer token is configured", || {
        n += 1;
        let request = Delivery::upload(&format!("live-config-{n}"), "189", "92000", "started")
            .to_http("POST", "/webhook");
        raw_exchange(server.addr, &request).status == Some(401)
    });
    let reply = Delivery::upload("live-config-ok", "189", "92000", "started")
        .signed(&Auth::Bearer("fresh-token".into()))
        .post(&client, &server.url)
        .await;
    assert_eq!(reply.status, 200, "the new token is accepted without a restart: {reply:?}");
    server.stop();
}

#[tokio::test]
async fn the_validation_handshake_echoes_the_code_even_when_the_credentials_are_wrong() {
    let data = DataDir::new();
    let right = passcode(Scheme::Base64Sha256);
    let wrong = right.wrong().expect("a passcode has a wrong one");
    data.configure("default", &right);
    let server = data.serve();
    let client = client();

    let validation = Delivery::from_fixture(&fixture("validation.http"));
    let code = validation.header("X-ActiGraph-Hook-Secret").expect("the fixture has a code").to_string();
    let reply = validation.clone().signed(&right).post(&client, &server.url).await;
    assert_eq!(reply.status, 200, "the validation handshake is answered 200: {reply:?}");
    assert_eq!(reply.header("x-actigraph-hook-secret"), Some(code.as_str()), "the code is echoed");
    let rows = data.deliveries(&validation.id());
    assert_eq!(rows.len(), 1, "the validation delivery is stored");
    assert!(
        rows[0].auth.starts_with("verified"),
        "a validation with the right passcode is verified: {}",
        rows[0].auth
    );

    let code2 = "0b7c59e2-5d47-4b0e-9f7d-2f1a3c4e5d6f";
    let wrongly_signed = Delivery::validation("validation-wrong-1", code2).signed(&wrong);
    let reply = wrongly_signed.post(&client, &server.url).await;
    assert_eq!(reply.status, 200, "a validation with a wrong passcode is still answered 200: {reply:?}");
    assert_eq!(
        reply.header("x-actigraph-hook-secret"),
        Some(code2),
        "a validation with a wrong passcode still gets its (new) code echoed"
    );
    assert!(
        data.deliveries("validation-wrong-1").is_empty(),
        "an unauthenticated request never grows the deliveries table"
    );
    let logged = data.wait_for_refused(1);
    assert_eq!(logged[0].delivery_id.as_deref(), Some("validation-wrong-1"));
    assert_eq!(logged[0].status, 200, "the refused log records that it was answered");
    assert!(
        logged[0].reason.contains("credentials do not match") && logged[0].reason.contains("signature"),
        "the mismatch is recorded with its reason: {}",
        logged[0].reason
    );

    let code3 = "7e3f1a90-aaaa-4bbb-8ccc-0123456789ab";
    let reply = Delivery::validation("validation-unsigned-1", code3).post(&client, &server.url).await;
    assert_eq!(
        (reply.status, reply.header("x-actigraph-hook-secret")),
        (200, Some(code3)),
        "an unsigned validation is answered with its code"
    );
    assert!(data.deliveries("validation-unsigned-1").is_empty(), "an unsigned validation is not stored");
    assert_eq!(data.wait_for_refused(2)[1].delivery_id.as_deref(), Some("validation-unsigned-1"));

    let code4 = "5a5a5a5a-1111-4222-8333-444455556666";
    let body_only = Delivery::validation("validation-body-only", code4)
        .without_header("X-ActiGraph-Hook-Secret")
        .signed(&right);
    let reply = body_only.post(&client, &server.url).await;
    assert_eq!(
        (reply.status, reply.header("x-actigraph-hook-secret")),
        (200, Some(code4)),
        "a code sent only in the body's ValidationCode is echoed"
    );

    let no_code = Delivery::new("validation", "validation-no-code", r#"{"WebhookId": "74"}"#).signed(&right);
    let reply = no_code.post(&client, &server.url).await;
    assert_eq!(reply.status, 400, "a validation without any code cannot be answered: {reply:?}");
    assert!(data.deliveries("validation-no-code").is_empty(), "a validation without a code is not stored");
    server.stop();
}

#[tokio::test]
async fn a_retried_delivery_is_stored_once_and_counted_as_duplicates() {
    let data = DataDir::new();
    let server = data.serve();
    let client = client();
    let started = Delivery::from_fixture(&fixture("upload-started.http"));
    let id = started.id();
    for attempt in 1..=5 {
        let reply = started.post(&client, &server.url).await;
        assert_eq!(reply.status, 200, "attempt {attempt}: every retry is acknowledged with 200");
        let expected = if attempt == 1 { "stored" } else { "duplicate" };
        assert_eq!(reply.body.trim(), expected, "attempt {attempt}: the answer says whether it was a retry");
    }
    let rows = data.deliveries(&id);
    assert_eq!(rows.len(), 1, "a delivery retried 5 times is stored once");
    assert_eq!(rows[0].duplicates, 4, "a delivery retried 5 times counts 4 duplicates");
    let upload = data.upload("189", "85045").expect("the upload is known");
    assert_eq!(upload.deliveries, 1, "retries are not applied to the upload again");

    // ActiGraph's examples reuse one delivery id across statuses: same id, other body.
    let completed = started.clone().with_body(fixture("upload-completed.http").body);
    let reply = completed.post(&client, &server.url).await;
    assert_eq!((reply.status, reply.body.trim()), (200, "stored"), "same id with another body is new");
    let rows = data.deliveries(&id);
    assert_eq!(rows.len(), 2, "the same delivery id with a different body is a second row");
    assert_eq!(rows[1].duplicates, 0);
    let upload = data.upload("189", "85045").expect("the upload is known");
    assert_eq!((upload.status.as_str(), upload.deliveries), ("completed", 2), "the second body is applied");

    let same_body_new_id = started.with_header("X-ActiGraph-Delivery", "another-id-same-body");
    assert_eq!(same_body_new_id.post(&client, &server.url).await.body.trim(), "stored");
    assert_eq!(
        data.deliveries("another-id-same-body").len(),
        1,
        "the same body under a new id is not a retry"
    );
    server.stop();
}

#[tokio::test]
async fn a_restart_after_sigterm_keeps_every_delivery_upload_and_webhook() {
    let data = DataDir::new();
    let auth = passcode(Scheme::Sha256Hex);
    data.configure("default", &auth);
    let server = data.serve();
    let client = client();
    for (name, fixture) in fixtures() {
        let reply = Delivery::from_fixture(&fixture).signed(&auth).post(&client, &server.url).await;
        assert_eq!(reply.status, 200, "{name} is accepted");
    }
    let started = Delivery::from_fixture(&fixture("upload-started.http")).signed(&auth);
    assert_eq!(started.post(&client, &server.url).await.body.trim(), "duplicate");
    assert_eq!(
        Delivery::upload("unsigned-1", "189", "1", "started").post(&client, &server.url).await.status,
        401
    );
    data.wait_for_refused(1);

    let snapshot = || {
        [
            "SELECT * FROM deliveries ORDER BY seq",
            "SELECT * FROM uploads ORDER BY study_id, upload_id",
            "SELECT * FROM studies ORDER BY study_id",
            "SELECT * FROM subjects ORDER BY study_id, subject_id",
            "SELECT * FROM webhooks ORDER BY webhook_id",
            "SELECT * FROM refused ORDER BY id",
        ]
        .map(|sql| data.table(sql))
    };
    let before = snapshot();
    assert!(!before[1].is_empty(), "the fixtures created uploads");
    let status = data.run_ok(&["status", "--json"], &[]);
    assert!(
        status.contains("\"running\": true") && status.contains(&server.url),
        "status shows the running receiver: {status}"
    );

    server.stop();
    assert_eq!(snapshot(), before, "a SIGTERM stop leaves every table as it was acknowledged");
    let status = data.run_ok(&["status", "--json"], &[]);
    assert!(status.contains("\"running\": false"), "status shows the receiver stopped: {status}");

    let server = data.serve();
    assert_eq!(snapshot(), before, "a restart changes nothing stored");
    let uploads = data.table("SELECT * FROM uploads ORDER BY study_id, upload_id");
    let reply = started.post(&client, &server.url).await;
    assert_eq!(
        (reply.status, reply.body.trim()),
        (200, "duplicate"),
        "a retry after the restart is still recognised as a retry"
    );
    assert_eq!(data.deliveries(&started.id())[0].duplicates, 2, "the retry is counted on the stored row");
    assert_eq!(
        data.table("SELECT * FROM uploads ORDER BY study_id, upload_id"),
        uploads,
        "a retry after the restart leaves the uploads table unchanged"
    );
    let reply = Delivery::upload("unsigned-2", "189", "1", "started").post(&client, &server.url).await;
    assert_eq!(reply.status, 401, "the passcode configuration survives the restart");
    server.stop();
}

/// What a bad (or odd) request must leave behind.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Refused by the receiver: this status, one row in `refused`, nothing stored.
    Refused(u16),
    /// Answered by the router (wrong method, wrong path): this status, nothing stored.
    Routed(u16),
    /// Accepted with 200 and stored once, with this flag.
    Stored(Option<&'static str>),
}

struct Case {
    rule: &'static str,
    request: Vec<u8>,
    /// The delivery id to look for in `deliveries`.
    id: &'static str,
    expect: Expect,
}

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn bad_requests_get_the_right_status_and_leave_the_right_trace() {
    let data = DataDir::new();
    let auth = passcode(Scheme::Base64Sha256);
    data.configure("default", &auth);
    let server = data.serve();

    let upload = |id: &str| Delivery::upload(id, "189", "93001", "started");
    let signed = |d: Delivery| d.signed(&auth);
    let http = |d: Delivery| d.to_http("POST", "/webhook");

    let mut truncated = http(signed(upload("truncated-body")));
    truncated.truncate(truncated.len() - 20);

    let declared_too_large = {
        let d = signed(upload("oversize-declared"));
        let mut head = String::from("POST /webhook HTTP/1.1\r\nHost: receiver.example\r\n");
        for (k, v) in &d.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        // Only the head is sent: the receiver must refuse on the declared length alone.
        head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", MIB + 1));
        head.into_bytes()
    };
    let chunked_too_large = {
        let body = vec![b' '; MIB + 1];
        let d = signed(upload("oversize-chunked").with_body(body.clone()));
        let mut head = String::from("POST /webhook HTTP/1.1\r\nHost: receiver.example\r\n");
        for (k, v) in &d.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!(
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
            body.len()
        ));
        // One byte over the limit and no end of chunk: the receiver has read everything
        // sent when it gives up, so its answer is not lost to a connection reset.
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&body);
        bytes
    };
    let exactly_the_limit = {
        let mut body =
            br#"{"status":"started","uploadId":"93002","subjectId":"44732","studyId":"189"}"#.to_vec();
        body.resize(MIB, b' ');
        http(signed(Delivery::new("upload", "body-at-the-limit", body)))
    };
    let invalid_utf8_header = {
        let mut bytes =
            b"POST /webhook HTTP/1.1\r\nHost: receiver.example\r\nX-ActiGraph-Event: upload\r\n".to_vec();
        bytes.extend_from_slice(b"X-ActiGraph-Delivery: caf\xe9-\xff\r\nX-ActiGraph-Webhook-Id: 15\r\n");
        let body = upload("x").body;
        let signature = auth.credential(&body).expect("a passcode signs").1;
        bytes.extend_from_slice(
            format!(
                "X-ActiGraph-Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        bytes.extend_from_slice(&body);
        bytes
    };

    let cases = vec![
        Case {
            rule: "a request without CentrePoint headers is refused with 400",
            request: Delivery {
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: b"{}".to_vec(),
            }
            .to_http("POST", "/webhook"),
            id: "",
            expect: Expect::Refused(400),
        },
        Case {
            rule: "a request without X-ActiGraph-Delivery is refused with 400",
            request: http(signed(upload("x").without_header("X-ActiGraph-Delivery"))),
            id: "",
            expect: Expect::Refused(400),
        },
        Case {
            rule: "a request without X-ActiGraph-Event is refused with 400",
            request: http(signed(upload("missing-event").without_header("X-ActiGraph-Event"))),
            id: "missing-event",
            expect: Expect::Refused(400),
        },
        Case {
            rule: "a delivery id that is not UTF-8 text is refused with 400",
            request: invalid_utf8_header,
            id: "",
            expect: Expect::Refused(400),
        },
        Case {
            rule: "a wrong signature is refused with 401",
            request: http(
                upload("wrong-signature")
                    .with_header("X-ActiGraph-Signature", "Ri20SCicySZmIf2D4kCY5KWEJrsqI7W8sWXMADj1RaQ="),
            ),
            id: "wrong-signature",
            expect: Expect::Refused(401),
        },
        Case {
            rule: "a signature over other bytes is refused with 401",
            request: http(
                signed(upload("tampered"))
                    .with_body(Delivery::upload("tampered", "189", "93009", "started").body),
            ),
            id: "tampered",
            expect: Expect::Refused(401),
        },
        Case {
            rule: "a missing signature is refused with 401 when a passcode is set",
            request: http(upload("unsigned")),
            id: "unsigned",
            expect: Expect::Refused(401),
        },
        Case {
            rule: "a body declared over 1 MiB is refused with 413",
            request: declared_too_large,
            id: "oversize-declared",
            expect: Expect::Refused(413),
        },
        Case {
            rule: "a chunked body over 1 MiB is refused with 413",
            request: chunked_too_large,
            id: "oversize-chunked",
            expect: Expect::Refused(413),
        },
        Case {
            rule: "a body of exactly 1 MiB is accepted",
            request: exactly_the_limit,
            id: "body-at-the-limit",
            expect: Expect::Stored(None),
        },
        Case {
            rule: "a body that is not UTF-8 is stored and flagged invalid_json",
            request: http(signed(upload("not-utf8").with_body(b"{\"status\":\"\xff\xfe\"}".to_vec()))),
            id: "not-utf8",
            expect: Expect::Stored(Some("invalid_json")),
        },
        Case {
            rule: "a body that is not JSON is stored and flagged invalid_json",
            request: http(signed(upload("not-json").with_body(b"status=started&uploadId=1".to_vec()))),
            id: "not-json",
            expect: Expect::Stored(Some("invalid_json")),
        },
        Case {
            rule: "a JSON body that is not an object is stored and flagged invalid_json",
            request: http(signed(upload("json-array").with_body(b"[1,2,3]".to_vec()))),
            id: "json-array",
            expect: Expect::Stored(Some("invalid_json")),
        },
        Case {
            rule: "an empty body is stored and flagged invalid_json",
            request: http(signed(upload("empty-body").with_body(Vec::new()))),
            id: "empty-body",
            expect: Expect::Stored(Some("invalid_json")),
        },
        Case {
            rule: "an upload without uploadId is stored and flagged invalid_payload",
            request: http(signed(
                upload("no-upload-id")
                    .with_body(br#"{"status":"completed","studyId":"189","subjectId":"1"}"#.to_vec()),
            )),
            id: "no-upload-id",
            expect: Expect::Stored(Some("invalid_payload")),
        },
        Case {
            rule: "an upload with an unknown status is stored and flagged invalid_payload",
            request: http(signed(
                upload("odd-status")
                    .with_body(br#"{"status":"paused","uploadId":"93003","studyId":"189"}"#.to_vec()),
            )),
            id: "odd-status",
            expect: Expect::Stored(Some("invalid_payload")),
        },
        Case {
            rule: "an unknown event type is stored whole and flagged unknown_event",
            request: http(signed(Delivery::new(
                "sleep_analysis_complete",
                "unknown-event-1",
                br#"{"studyId":189,"nights":3}"#.to_vec(),
            ))),
            id: "unknown-event-1",
            expect: Expect::Stored(Some("unknown_event")),
        },
        Case {
            rule: "GET on the webhook path is 405",
            request: signed(upload("get-webhook")).with_body(Vec::new()).to_http("GET", "/webhook"),
            id: "get-webhook",
            expect: Expect::Routed(405),
        },
        Case {
            rule: "PUT on the webhook path is 405",
            request: signed(upload("put-webhook")).to_http("PUT", "/webhook"),
            id: "put-webhook",
            expect: Expect::Routed(405),
        },
        Case {
            rule: "a delivery posted to another path is 404",
            request: signed(upload("other-path")).to_http("POST", "/hook"),
            id: "other-path",
            expect: Expect::Routed(404),
        },
        Case {
            rule: "a path below the webhook path is 404",
            request: signed(upload("below-path")).to_http("POST", "/webhook/extra"),
            id: "below-path",
            expect: Expect::Routed(404),
        },
        Case {
            rule: "the root is 404",
            request: Delivery { headers: Vec::new(), body: Vec::new() }.to_http("GET", "/"),
            id: "",
            expect: Expect::Routed(404),
        },
        Case {
            rule: "/healthz answers 200",
            request: Delivery { headers: Vec::new(), body: Vec::new() }.to_http("GET", "/healthz"),
            id: "",
            expect: Expect::Routed(200),
        },
    ];

    let mut stored = 0;
    let mut refused = 0;
    for case in cases {
        let uploads_before = data.count("SELECT count(*) FROM uploads");
        let reply = raw_exchange(server.addr, &case.request);
        let rows = if case.id.is_empty() { Vec::new() } else { data.deliveries(case.id) };
        match case.expect {
            Expect::Refused(status) | Expect::Routed(status) => {
                assert_eq!(reply.status, Some(status), "{}: {}", case.rule, reply.text);
                assert!(rows.is_empty(), "{}: nothing is stored", case.rule);
                assert_eq!(
                    data.count("SELECT count(*) FROM deliveries"),
                    stored,
                    "{}: nothing is stored",
                    case.rule
                );
                assert_eq!(
                    data.count("SELECT count(*) FROM uploads"),
                    uploads_before,
                    "{}: no upload changes",
                    case.rule
                );
            }
            Expect::Stored(flag) => {
                assert_eq!(reply.status, Some(200), "{}: {}", case.rule, reply.text);
                assert_eq!(rows.len(), 1, "{}: stored once", case.rule);
                assert_eq!(rows[0].flag.as_deref(), flag, "{}: flagged", case.rule);
                stored += 1;
            }
        }
        if let Expect::Refused(status) = case.expect {
            refused += 1;
            let rows = data.wait_for_refused(refused);
            let last = rows.last().expect("a refused row");
            assert_eq!(last.status, i64::from(status), "{}: the refused log has its status", case.rule);
            if !case.id.is_empty() {
                assert_eq!(
                    last.delivery_id.as_deref(),
                    Some(case.id),
                    "{}: the refused log names it",
                    case.rule
                );
            }
        }
    }
    // A client that hangs up before its body is complete: no acknowledgement can
    // reach it, and nothing may be stored. hyper drops a connection whose client
    // half-closes mid-request, so the answer may not arrive; the refused log shows it.
    let reply = raw_send_and_close(server.addr, &truncated);
    assert!(
        !reply.status.is_some_and(|s| (200..300).contains(&s)),
        "a body shorter than its Content-Length is never acknowledged: {}",
        reply.text
    );
    refused += 1;
    let last = data.wait_for_refused(refused).pop().expect("a refused row");
    assert_eq!(
        (last.status, last.delivery_id.as_deref()),
        (400, Some("truncated-body")),
        "a truncated body is logged as refused (which also shows the receiver is done with it)"
    );
    assert!(data.deliveries("truncated-body").is_empty(), "a truncated body is not stored");

    // A last refusal after every case: once it is logged, any row a routed (404/405)
    // request had logged would be too, so the exact count says none did.
    let sentinel = raw_exchange(server.addr, &http(upload("sentinel")));
    assert_eq!(sentinel.status, Some(401));
    refused += 1;
    assert_eq!(data.wait_for_refused(refused).len(), refused, "routed requests leave no refused rows");
    assert_eq!(
        data.count("SELECT count(*) FROM deliveries"),
        stored,
        "only the accepted requests are stored"
    );
    server.stop();
}

#[tokio::test]
async fn a_stalled_client_gets_408_is_not_stored_and_blocks_no_one() {
    let data = DataDir::with_config("body_timeout_secs = 1\nheader_timeout_secs = 1\n");
    let server = data.serve();

    let request = Delivery::upload("stalled-body", "189", "94001", "started").to_http("POST", "/webhook");
    let mut stalled_body = TcpStream::connect(server.addr).expect("connect");
    stalled_body.set_read_timeout(Some(WAIT_DEADLINE)).expect("read timeout");
    stalled_body.write_all(&request[..request.len() - 10]).expect("send all but the last 10 bytes");
    let mut stalled_head = TcpStream::connect(server.addr).expect("connect");
    stalled_head.set_read_timeout(Some(WAIT_DEADLINE)).expect("read timeout");
    stalled_head
        .write_all(b"POST /webhook HTTP/1.1\r\nHost: receiver.example\r\nX-ActiGraph-Ev")
        .expect("send a partial head");

    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).build().expect("client");
    let reply = Delivery::upload("meanwhile", "189", "94002", "started").post(&client, &server.url).await;
    assert_eq!(reply.status, 200, "stalled clients do not block other deliveries");

    let reply = read_reply(&mut stalled_body);
    assert_eq!(reply.status, Some(408), "a body that stops arriving is answered 408: {}", reply.text);
    assert!(data.deliveries("stalled-body").is_empty(), "a stalled body is not stored");
    let reply = read_reply(&mut stalled_head);
    assert!(
        !reply.status.is_some_and(|s| (200..300).contains(&s)),
        "a head that never completes is never acknowledged: {}",
        reply.text
    );
    let rows = data.wait_for_refused(1);
    assert_eq!(rows[0].status, 408, "the stalled body is in the refused log");
    assert_eq!(data.count("SELECT count(*) FROM deliveries"), 1, "only the complete delivery is stored");
    server.stop();
}

#[tokio::test]
async fn a_late_started_retry_does_not_reopen_a_completed_upload() {
    let data = DataDir::new();
    let server = data.serve();
    let client = client();
    let sequence = [("late-1", "started"), ("late-2", "completed"), ("late-3", "started")];
    for (id, status) in sequence {
        let reply = Delivery::upload(id, "189", "95001", status).post(&client, &server.url).await;
        assert_eq!(reply.status, 200, "{id} ({status}) is accepted");
        if id == "late-2" {
            let upload = data.upload("189", "95001").expect("the upload is known");
            assert_eq!(upload.status, "completed", "started then completed is completed");
        }
    }
    let upload = data.upload("189", "95001").expect("the upload is known");
    assert_eq!(
        upload.status, "completed",
        "a late started with a new delivery id leaves the upload completed"
    );
    assert_eq!(upload.deliveries, 3, "all three deliveries are counted on the upload");
    assert!(upload.started_at.is_some() && upload.completed_at.is_some(), "both times are kept: {upload:?}");
    for (id, status) in sequence {
        let rows = data.deliveries(id);
        assert_eq!(rows.len(), 1, "{id} is stored");
        assert_eq!(rows[0].status.as_deref(), Some(status), "{id} keeps its own status");
    }

    let reply = Delivery::upload("late-4", "189", "95001", "Error").post(&client, &server.url).await;
    assert_eq!(reply.status, 200);
    let upload = data.upload("189", "95001").expect("the upload is known");
    assert_eq!(upload.status, "error", "a later error (any case) replaces the completion");
    assert!(upload.failed_at.is_some());
    server.stop();
}

#[tokio::test]
async fn a_second_receiver_on_the_same_data_dir_exits_saying_already_running() {
    let data = DataDir::new();
    let server = data.serve();
    let second =
        data.run(&["serve", "--listen", "127.0.0.1:0"], &[("CPWATCH_DASHBOARD_LISTEN", "127.0.0.1:0")]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second receiver on the same data dir exits non-zero: {stderr}");
    assert!(stderr.contains("already running"), "the second receiver says one is already running: {stderr}");
    assert!(stderr.contains("(pid "), "and names the process that holds the data directory: {stderr}");

    let reply = client().get(server.at("/healthz")).send().await.expect("healthz");
    assert_eq!(reply.status().as_u16(), 200, "the first receiver keeps running");
    server.stop();
}

#[tokio::test]
async fn centrepoint_headers_are_matched_case_insensitively_and_trimmed() {
    let data = DataDir::new();
    let auth = passcode(Scheme::Base64Sha256);
    // Configured for "15" only: an untrimmed webhook id would find no authentication.
    data.configure("15", &auth);
    let server = data.serve();
    let body = br#"{"status":"Started","uploadId":"96001","subjectId":"44732","studyId":"189"}"#;
    let signature = auth.credential(body).expect("a passcode signs").1;
    let mut request = format!(
        "POST /webhook HTTP/1.1\r\nHOST: receiver.example\r\ncontent-TYPE: application/json\r\n\
         x-ACTIGRAPH-event:   upload  \r\n\
         X-actigraph-DELIVERY: \t case-and-space-1 \t\r\n\
         x-ActiGraph-Webhook-ID:  15 \r\n\
         X-ACTIGRAPH-SIGNATURE:   {signature}  \r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let reply = raw_exchange(server.addr, &request);
    assert_eq!(
        reply.status,
        Some(200),
        "headers in any case with stray whitespace are accepted: {}",
        reply.text
    );
    let rows = data.deliveries("case-and-space-1");
    assert_eq!(rows.len(), 1, "the trimmed delivery id is stored");
    let row = &rows[0];
    assert_eq!(row.event, "upload", "the event name is trimmed");
    assert_eq!(row.webhook_id.as_deref(), Some("15"), "the webhook id is trimmed");
    assert!(row.auth.starts_with("verified"), "the signature verified: {}", row.auth);
    let upload = data.upload("189", "96001").expect("the upload is applied");
    assert_eq!(upload.status, "started", "a status in any case is understood");

    let validation = "POST /webhook HTTP/1.1\r\nHost: r\r\n\
        x-actigraph-EVENT: Validation\r\nX-ACTIGRAPH-delivery: case-v\r\nx-actigraph-webhook-id: 15\r\n\
        x-ACTIGRAPH-hook-SECRET:  code-123  \r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    let reply = raw_exchange(server.addr, validation.as_bytes());
    assert_eq!(reply.status, Some(200), "{}", reply.text);
    assert!(
        reply.text.to_ascii_lowercase().contains("x-actigraph-hook-secret: code-123\r\n"),
        "the trimmed validation code is echoed: {}",
        reply.text
    );
    server.stop();
}

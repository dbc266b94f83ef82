// What must hold for any input at cpwatch's three parsing surfaces: the signature
// header, the request headers as the intake reads them (with the fixture format that
// carries them), and the event payloads. One file, included word for word by the
// cargo-fuzz targets (fuzz/fuzz_targets/, coverage-guided, run for as long as one
// likes) and by the proptest suite (tests/it/fuzz_props.rs, run by `cargo test` in CI),
// so both check exactly the same rules. Each function panics when a rule is broken.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use cpwatch::emulator::fixture::HttpFixture;
use cpwatch::event::{self, Event, PayloadError};
use cpwatch::receive;
use cpwatch::receive::auth::{AuthMethod, AuthOutcome, AuthTable, Credentials, Secret};
use cpwatch::receive::signature::{self, Scheme, SignatureError};

pub const SCHEMES: [Scheme; 4] =
    [Scheme::Base64Sha256, Scheme::Sha1Hex, Scheme::Sha256Hex, Scheme::Sha512Utf16Hex];

/// The secrets of [`auth_table`], so seeds and generators can carry valid credentials.
pub const PASSCODE: &str = "fuzz passcode";
pub const BASIC_USER: &str = "centrepoint";
pub const BASIC_PASSWORD: &str = "pa:ss word";
pub const BEARER: &str = "fuzz-bearer-token";

/// Splits raw fuzz input into `N` fields at the first `N - 1` bytes 0xFF (a byte that
/// never occurs in UTF-8 text); missing fields are empty, the last takes the rest.
pub fn fields<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&data[..0]; N];
    let mut rest = data;
    for slot in out.iter_mut().take(N - 1) {
        match rest.iter().position(|b| *b == 0xFF) {
            Some(at) => {
                *slot = &rest[..at];
                rest = &rest[at + 1..];
            }
            None => {
                *slot = rest;
                rest = &rest[rest.len()..];
            }
        }
    }
    out[N - 1] = rest;
    out
}

/// The digest length of a scheme.
fn digest_len(scheme: Scheme) -> usize {
    match scheme {
        Scheme::Sha1Hex => 20,
        Scheme::Base64Sha256 | Scheme::Sha256Hex => 32,
        Scheme::Sha512Utf16Hex => 64,
    }
}

/// A digest written in a scheme's header form.
fn encode(scheme: Scheme, digest: &[u8]) -> String {
    match scheme {
        Scheme::Base64Sha256 => BASE64.encode(digest),
        Scheme::Sha1Hex => format!("sha1={}", hex::encode(digest)),
        Scheme::Sha256Hex => format!("sha256={}", hex::encode(digest)),
        Scheme::Sha512Utf16Hex => format!("sha1={}", hex::encode_upper(digest)),
    }
}

/// Why the 2015 form cannot sign with this passcode and body, if it cannot: it signs
/// text, and looks at the passcode first.
fn not_text(passcode: &[u8], body: &[u8]) -> Option<SignatureError> {
    if std::str::from_utf8(passcode).is_err() {
        Some(SignatureError::PasscodeNotText)
    } else if std::str::from_utf8(body).is_err() {
        Some(SignatureError::BodyNotText)
    } else {
        None
    }
}

/// Signature rules, for any passcode, header text and body:
/// - parsing never panics, and a parsed digest has its scheme's length;
/// - `verify` accepts a header only if its digest is the HMAC of the body under the
///   passcode (it never accepts a wrong signature), and refuses a parsed one as a
///   mismatch, except that the 2015 form refuses a passcode or body that is not UTF-8;
/// - what `sign` makes, `verify` accepts, in every scheme, with the hex forms in any
///   case and with stray whitespace; the same digest with one bit flipped is refused;
/// - `sign` fails only for the 2015 form, exactly when the passcode or body is not
///   UTF-8, and then `verify` refuses any such header for the same reason.
pub fn signature(passcode: &[u8], header: &str, body: &[u8]) {
    let parsed = signature::parse(header);
    if let Ok(p) = &parsed {
        assert_eq!(p.digest.len(), digest_len(p.scheme), "a parsed digest has its scheme's length");
    }
    match (signature::verify(passcode, body, header), &parsed) {
        (Ok(scheme), Ok(p)) => {
            assert_eq!(p.scheme, scheme, "verify names the parsed scheme");
            let signed = signature::sign(scheme, passcode, body).expect("what verify accepts, sign can make");
            let truth = signature::parse(&signed).expect("sign's output parses");
            assert_eq!(p.digest, truth.digest, "verify accepted a digest that is not the body's HMAC");
        }
        (Ok(_), Err(e)) => panic!("verify accepted a header that does not parse ({e})"),
        (Err(e), Ok(p)) => {
            let no_text = if p.scheme == Scheme::Sha512Utf16Hex { not_text(passcode, body) } else { None };
            let expected = no_text.unwrap_or(SignatureError::Mismatch(p.scheme.name()));
            assert_eq!(e, expected, "a parsed header is refused as a mismatch (or, 2015 form, as no text)")
        }
        (Err(e), Err(p)) => assert_eq!(&e, p, "verify refuses an unparsable header for the parser's reason"),
    }
    for scheme in SCHEMES {
        let signed = match (signature::sign(scheme, passcode, body), scheme) {
            (Ok(signed), _) => signed,
            (Err(e), Scheme::Sha512Utf16Hex) => {
                assert_eq!(Some(e.clone()), not_text(passcode, body), "fails only over non-text");
                let any = encode(scheme, &[0x5A; 64]);
                assert_eq!(signature::verify(passcode, body, &any), Err(e), "and verify says why");
                continue;
            }
            (Err(e), _) => panic!("{scheme:?} signs any passcode and body, but failed: {e}"),
        };
        assert_eq!(signature::verify(passcode, body, &signed), Ok(scheme), "sign then verify ({scheme:?})");
        assert_eq!(
            signature::verify(passcode, body, &format!(" \t{signed} ")),
            Ok(scheme),
            "stray whitespace"
        );
        if scheme != Scheme::Base64Sha256 {
            for any_case in [signed.to_ascii_uppercase(), signed.to_ascii_lowercase()] {
                assert_eq!(signature::verify(passcode, body, &any_case), Ok(scheme), "hex forms in any case");
            }
        }
        let mut digest = signature::parse(&signed).expect("sign's output parses").digest;
        let bit = body.len() % (digest.len() * 8);
        digest[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            signature::verify(passcode, body, &encode(scheme, &digest)),
            Err(SignatureError::Mismatch(scheme.name())),
            "a digest one bit off is refused ({scheme:?})"
        );
    }
}

/// Webhook 15 signs with [`PASSCODE`], 16 needs nothing, 20 uses Basic, 21 a bearer
/// token; with `default`, other ids use the passcode too.
pub fn auth_table(default: bool) -> AuthTable {
    let mut table = AuthTable::default();
    table.webhooks.insert("15".into(), AuthMethod::Passcode(Secret::new(PASSCODE)));
    table.webhooks.insert("16".into(), AuthMethod::None);
    table.webhooks.insert(
        "20".into(),
        AuthMethod::Basic { user: BASIC_USER.into(), password: Secret::new(BASIC_PASSWORD) },
    );
    table.webhooks.insert("21".into(), AuthMethod::Bearer(Secret::new(BEARER)));
    if default {
        table.webhooks.insert("default".into(), AuthMethod::Passcode(Secret::new(PASSCODE)));
    }
    table
}

/// The fixture format written back from a parsed fixture.
pub fn to_fixture_bytes(fixture: &HttpFixture) -> Vec<u8> {
    let mut text = format!("{} {} HTTP/1.1\r\n", fixture.method, fixture.path);
    for (name, value) in &fixture.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(&fixture.body);
    bytes
}

/// Header rules, for any bytes read as a request in the fixture format:
/// - fixture parsing never panics, and what it parses survives being written back
///   and parsed again unchanged;
/// - the headers the intake would see (those HTTP allows) are redacted for storage
///   with one entry per header, credentials replaced, other values capped;
/// - authentication over those headers never panics, and accepts only credentials
///   that match the webhook's configuration exactly.
pub fn headers(data: &[u8], default_auth: bool) {
    let Ok(fixture) = HttpFixture::parse(data, "fuzz") else { return };
    let again =
        HttpFixture::parse(&to_fixture_bytes(&fixture), "fuzz").expect("a written-back fixture parses");
    assert_eq!(again, fixture, "a fixture survives being written back and parsed again");

    let mut map = HeaderMap::new();
    for (name, value) in &fixture.headers {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value.as_bytes()))
        {
            map.append(name, value);
        }
    }
    let redacted = receive::redacted_headers(&map);
    assert_eq!(redacted.len(), map.len(), "one stored header per header received");
    for ((name, shown), (original, value)) in redacted.iter().zip(map.iter()) {
        assert_eq!(name, original.as_str(), "headers are stored under their own names, in order");
        let text = String::from_utf8_lossy(value.as_bytes());
        match name.as_str() {
            "authorization" | "proxy-authorization" => {
                let scheme = text.split_whitespace().next().unwrap_or("");
                assert_eq!(
                    shown,
                    format!("{scheme} [redacted]").trim_start(),
                    "credentials are never stored"
                );
            }
            "cookie" | "set-cookie" | "x-api-key" => {
                assert_eq!(shown, "[redacted]", "secrets are never stored")
            }
            _ => assert!(
                text.starts_with(shown.as_str()) && shown.chars().count() <= 1024,
                "values are capped"
            ),
        }
    }

    // As the intake reads them: trimmed text, absent when empty or not text.
    let text = |name: &str| map.get(name).and_then(|v| v.to_str().ok());
    let webhook = text(receive::WEBHOOK_HEADER).map(str::trim).filter(|w| !w.is_empty());
    let credentials = Credentials {
        signature: text(receive::SIGNATURE_HEADER),
        authorization: text("authorization"),
        body: &fixture.body,
    };
    let table = auth_table(default_auth);
    let outcome = table.authenticate(webhook, &credentials);
    authentication(&table, webhook, &credentials, &outcome);
}

/// The rules an authentication outcome obeys.
pub fn authentication(
    table: &AuthTable,
    webhook: Option<&str>,
    creds: &Credentials<'_>,
    outcome: &AuthOutcome,
) {
    let method = table.method_for(webhook);
    let param = |scheme: &str| {
        let header =
            creds.authorization.expect("an accepted Basic or bearer request has Authorization").trim();
        let (given, param) = header.split_once(' ').expect("scheme and credentials");
        assert!(given.eq_ignore_ascii_case(scheme), "accepted under the {scheme} scheme only, not {given:?}");
        param.trim()
    };
    match outcome {
        AuthOutcome::Open => assert!(table.is_open(), "open only when nothing is configured"),
        AuthOutcome::NotRequired => {
            assert_eq!(method, Some(&AuthMethod::None), "no credentials only for mode none")
        }
        AuthOutcome::Verified(how) => match method {
            Some(AuthMethod::Passcode(passcode)) => {
                let header = creds.signature.expect("an accepted signed request has a signature");
                let scheme = signature::verify(passcode.expose().as_bytes(), creds.body, header)
                    .expect("an accepted signature verifies");
                assert_eq!(how, scheme.name());
            }
            Some(AuthMethod::Basic { user, password }) => {
                let decoded = BASE64.decode(param("Basic")).expect("accepted Basic credentials are base64");
                assert_eq!(
                    decoded,
                    format!("{user}:{}", password.expose()).into_bytes(),
                    "exactly user:password"
                );
            }
            Some(AuthMethod::Bearer(token)) => {
                assert_eq!(param("Bearer"), token.expose(), "exactly the token")
            }
            other => panic!("verified ({how}) under {other:?}"),
        },
        AuthOutcome::Refused(_) => assert!(!table.is_open(), "nothing is refused when nothing is configured"),
    }
    if method.is_none() && !table.is_open() {
        assert!(
            matches!(outcome, AuthOutcome::Refused(_)),
            "an unknown webhook id is refused without a default"
        );
    }
}

/// Payload rules, for any body under `name` and under every known event name:
/// - parsing never panics and gives a typed event or a typed error, flagged
///   `invalid_json` exactly when the body is not a JSON object;
/// - the event name is read case-insensitively and trimmed;
/// - ids are never empty, over 128 characters or holding control characters;
/// - an event's accessors and summary never panic.
pub fn payload(name: &str, body: &[u8]) {
    let json = std::str::from_utf8(body).ok().map(serde_json::from_str::<serde_json::Value>);
    for event_name in std::iter::once(name).chain(event::KNOWN_EVENTS).chain(["sleep_analysis_complete"]) {
        let parsed = event::parse(event_name, body);
        if event::KNOWN_EVENTS.contains(&event_name) {
            let shouted = format!(" {}\t", event_name.to_ascii_uppercase());
            assert_eq!(event::parse(&shouted, body), parsed, "event names are case-insensitive and trimmed");
        }
        match &parsed {
            Err(e) => {
                let expected_json_error = match &json {
                    None => Some(PayloadError::NotUtf8),
                    Some(Err(_)) => None,
                    Some(Ok(serde_json::Value::Object(_))) => Some(PayloadError::NotObject),
                    Some(Ok(_)) => Some(PayloadError::NotObject),
                };
                let is_object = matches!(&json, Some(Ok(serde_json::Value::Object(_))));
                assert_eq!(
                    e.flag() == "invalid_json",
                    !is_object,
                    "invalid_json exactly for non-objects: {e}"
                );
                match e {
                    PayloadError::NotUtf8 => {
                        assert!(json.is_none(), "NotUtf8 only for bytes that are not UTF-8")
                    }
                    PayloadError::NotJson(_) => {
                        assert!(matches!(json, Some(Err(_))), "NotJson only for text that is not JSON")
                    }
                    PayloadError::NotObject => assert_eq!(
                        Some(e.clone()),
                        expected_json_error,
                        "NotObject only for JSON non-objects"
                    ),
                    _ => assert!(is_object, "field errors only for objects: {e}"),
                }
            }
            Ok(p) => {
                assert!(matches!(json, Some(Ok(serde_json::Value::Object(_)))), "only an object parses");
                let ids = [p.event.study_id(), p.event.subject_id(), p.event.upload_id()];
                for id in ids.into_iter().flatten() {
                    assert!(
                        !id.is_empty() && id.len() <= 128 && !id.chars().any(char::is_control),
                        "ids are usable: {id:?}"
                    );
                }
                let _ = (p.event.subject_identifier(), p.event.status(), p.event.summary());
                let normalised = event_name.trim().to_ascii_lowercase();
                let kind = match &p.event {
                    Event::Validation(_) => event::VALIDATION,
                    Event::Upload(_) => event::UPLOAD,
                    Event::RawProcessingComplete(_) => event::RAW_PROCESSING_COMPLETE,
                    Event::DataRetrievalComplete(_) => event::DATA_RETRIEVAL_COMPLETE,
                    Event::DailyStatisticsComplete(_) => event::DAILY_STATISTICS_COMPLETE,
                    Event::Cp2DailyStatisticsComplete(_) => event::CP2_DAILY_STATISTICS_COMPLETE,
                    Event::Unknown(u) => {
                        assert_eq!(u.name, event_name.trim(), "an unknown event keeps its name");
                        assert!(
                            !event::KNOWN_EVENTS.contains(&normalised.as_str()),
                            "a known name is never unknown"
                        );
                        continue;
                    }
                };
                assert_eq!(kind, normalised, "the event is typed by its name");
            }
        }
    }
}

/// The seed corpus of each target, made from the fixtures (file name and raw bytes):
/// every body under its event name, every body with a valid signature of each scheme,
/// and every fixture as a request, as it is and with each kind of valid credentials.
pub fn seeds(fixtures: &[(String, Vec<u8>)]) -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (name, bytes) in fixtures {
        let Ok(fixture) = HttpFixture::parse(bytes, name) else { continue };
        let stem = name.trim_end_matches(".http");
        let event_name = fixture.header("X-ActiGraph-Event").unwrap_or("upload");
        let mut payload = event_name.as_bytes().to_vec();
        payload.push(0xFF);
        payload.extend_from_slice(&fixture.body);
        seeds.push(("payload", stem.to_string(), payload));
        for scheme in SCHEMES {
            let mut input = PASSCODE.as_bytes().to_vec();
            input.push(0xFF);
            // A fixture body that is not text has no 2015-form seed; the others still do.
            let Ok(signed) = signature::sign(scheme, PASSCODE.as_bytes(), &fixture.body) else { continue };
            input.extend_from_slice(signed.as_bytes());
            input.push(0xFF);
            input.extend_from_slice(&fixture.body);
            seeds.push(("signature", format!("{stem}-{scheme:?}"), input));
        }
        seeds.push(("headers", stem.to_string(), bytes.clone()));
        let credentials = [
            (
                "15",
                receive::SIGNATURE_HEADER,
                signature::sign(Scheme::Base64Sha256, PASSCODE.as_bytes(), &fixture.body)
                    .expect("base64 signs any body"),
            ),
            ("20", "authorization", cpwatch::receive::auth::basic_header(BASIC_USER, BASIC_PASSWORD)),
            ("21", "authorization", format!("Bearer {BEARER}")),
        ];
        for (webhook, header, value) in credentials {
            let mut signed = fixture.clone();
            signed.headers.retain(|(k, _)| {
                !k.eq_ignore_ascii_case(receive::WEBHOOK_HEADER) && !k.eq_ignore_ascii_case(header)
            });
            signed.headers.push(("X-ActiGraph-Webhook-Id".into(), webhook.into()));
            signed.headers.push((header.into(), value));
            seeds.push(("headers", format!("{stem}-webhook-{webhook}"), to_fixture_bytes(&signed)));
        }
    }
    seeds
}

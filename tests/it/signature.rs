//! Signature verification against vectors computed outside cpwatch, when this test was
//! written, with Python's `hmac` module (and the empty-body one cross-checked with
//! `openssl dgst -sha256 -hmac s3cret-passcode -binary | base64`):
//!
//! ```text
//! hmac.new(key.encode(), body, hashlib.sha256).digest()  -> base64 / hex
//! hmac.new(key.encode(), body, hashlib.sha1).hexdigest()
//! ```

use cpwatch::emulator::fixture::HttpFixture;
use cpwatch::receive::auth::{
    basic_header, AuthFailure, AuthMethod, AuthOutcome, AuthTable, Credentials, Secret,
};
use cpwatch::receive::signature::{verify, Scheme, SignatureError};

const PASSCODE: &str = "s3cret-passcode";

fn started_body() -> Vec<u8> {
    let fixture = HttpFixture::read(std::path::Path::new("tests/fixtures/upload-started.http"))
        .expect("the upload-started fixture");
    assert_eq!(fixture.body.len(), 104, "the fixture body is read byte for byte");
    fixture.body
}

struct Vector {
    passcode: &'static str,
    body: Vec<u8>,
    base64_sha256: &'static str,
    sha1_hex: &'static str,
    sha256_hex: &'static str,
}

fn vectors() -> Vec<Vector> {
    vec![
        Vector {
            passcode: PASSCODE,
            body: started_body(),
            base64_sha256: "hB8Upvn+pU3G+u6ojg5nxv7C1INqdJ1+8k0N3rDADAo=",
            sha1_hex: "a9e88cc2059ba849088ef53f2fff7aaf7c5efe6f",
            sha256_hex: "841f14a6f9fea54dc6faeea88e0e67c6fec2d4836a749d7ef24d0ddeb0c00c0a",
        },
        Vector {
            passcode: PASSCODE,
            body: Vec::new(),
            base64_sha256: "w5e1Zt+6+0tJApTsjboyYvdzWvhQUp1CuU6ylaSirRU=",
            sha1_hex: "819b8bc17a8b10832d6e7ba70485761695962231",
            sha256_hex: "c397b566dfbafb4b490294ec8dba3262f7735af850529d42b94eb295a4a2ad15",
        },
        Vector {
            passcode: "pässcode-ü-😀",
            body: br#"{"status":"Completed","uploadId":85047}"#.to_vec(),
            base64_sha256: "t9eh/Yu6ewLh7KYAZ6DJYuK1MdheYEAyBzxE2VUzJYQ=",
            sha1_hex: "c6609f7609e7abb5f98d1fd0c4c76090e2a0d45c",
            sha256_hex: "b7d7a1fd8bba7b02e1eca60067a0c962e2b531d85e604032073c44d955332584",
        },
    ]
}

#[test]
fn every_signature_form_verifies_against_independent_vectors() {
    for v in vectors() {
        let key = v.passcode.as_bytes();
        assert_eq!(
            verify(key, &v.body, v.base64_sha256),
            Ok(Scheme::Base64Sha256),
            "base64 form, {:?}",
            v.passcode
        );
        assert_eq!(
            verify(key, &v.body, &format!("sha1={}", v.sha1_hex)),
            Ok(Scheme::Sha1Hex),
            "sha1= form, {:?}",
            v.passcode
        );
        assert_eq!(
            verify(key, &v.body, &format!("sha256={}", v.sha256_hex)),
            Ok(Scheme::Sha256Hex),
            "sha256= form, {:?}",
            v.passcode
        );
    }
}

#[test]
fn signing_produces_what_centrepoint_would_send() {
    for v in vectors() {
        let key = v.passcode.as_bytes();
        assert_eq!(cpwatch::receive::signature::sign(Scheme::Base64Sha256, key, &v.body), v.base64_sha256);
        assert_eq!(
            cpwatch::receive::signature::sign(Scheme::Sha1Hex, key, &v.body),
            format!("sha1={}", v.sha1_hex)
        );
        assert_eq!(
            cpwatch::receive::signature::sign(Scheme::Sha256Hex, key, &v.body),
            format!("sha256={}", v.sha256_hex)
        );
    }
}

#[test]
fn hex_signatures_are_accepted_in_any_case_and_with_stray_whitespace() {
    let v = &vectors()[0];
    let key = v.passcode.as_bytes();
    let upper = format!("sha1={}", v.sha1_hex.to_uppercase());
    assert_eq!(verify(key, &v.body, &upper), Ok(Scheme::Sha1Hex), "upper-case hex, as in the seed's example");
    let mixed = format!("SHA256={}", v.sha256_hex.to_uppercase());
    assert_eq!(verify(key, &v.body, &mixed), Ok(Scheme::Sha256Hex), "upper-case prefix and hex");
    assert_eq!(
        verify(key, &v.body, &format!("  {}\t", v.base64_sha256)),
        Ok(Scheme::Base64Sha256),
        "whitespace around the value is trimmed"
    );
}

#[test]
fn a_wrong_passcode_is_a_mismatch_in_every_form() {
    for v in vectors() {
        for header in
            [v.base64_sha256.to_string(), format!("sha1={}", v.sha1_hex), format!("sha256={}", v.sha256_hex)]
        {
            assert!(
                matches!(verify(b"wrong passcode", &v.body, &header), Err(SignatureError::Mismatch(_))),
                "a signature made with another passcode is refused: {header}"
            );
        }
    }
}

#[test]
fn a_signature_for_another_body_is_refused() {
    let v = &vectors()[0];
    let mut other = v.body.clone();
    other.push(b' ');
    assert!(matches!(verify(PASSCODE.as_bytes(), &other, v.base64_sha256), Err(SignatureError::Mismatch(_))));
}

#[test]
fn malformed_signatures_are_refused_with_a_reason() {
    let v = &vectors()[0];
    let key = v.passcode.as_bytes();
    let cases: Vec<(String, SignatureError, &str)> = vec![
        (String::new(), SignatureError::Empty, "an empty header"),
        ("   ".into(), SignatureError::Empty, "a blank header"),
        (
            format!("sha1={}", &v.sha1_hex[..38]),
            SignatureError::WrongLength("sha1=hex HMAC-SHA1"),
            "a truncated sha1 digest",
        ),
        (
            format!("sha1={}00", v.sha1_hex),
            SignatureError::WrongLength("sha1=hex HMAC-SHA1"),
            "a sha1 digest one byte too long",
        ),
        (
            format!("sha1={}", v.sha256_hex),
            SignatureError::WrongLength("sha1=hex HMAC-SHA1"),
            "a sha256 digest under the sha1 prefix",
        ),
        (format!("sha1={}x", &v.sha1_hex[..39]), SignatureError::BadHex("sha1"), "a non-hex character"),
        (format!("sha256={}", &v.sha256_hex[..63]), SignatureError::BadHex("sha256"), "an odd number of hex digits"),
        (v.sha256_hex.to_string(), SignatureError::MissingPrefix, "sha256 hex without its prefix"),
        (v.sha1_hex.to_uppercase(), SignatureError::MissingPrefix, "sha1 hex without its prefix"),
        (
            v.base64_sha256[..43].to_string(),
            SignatureError::Unrecognised,
            "base64 with its padding cut off",
        ),
        ("md5=0123456789abcdef".into(), SignatureError::Unrecognised, "an unknown prefix"),
        (
            "E2316FEDF726CBB2FD31EA25FF55E966A4543EEC290944DA578ADB42CD0DE9D60A1435D120525074535BEABD083BFE7C0CB5451BBEFB5B55BC6C60A10449E34E".into(),
            SignatureError::MissingPrefix,
            "the seed's example value without prefix",
        ),
        (
            "sha1=E2316FEDF726CBB2FD31EA25FF55E966A4543EEC290944DA578ADB42CD0DE9D60A1435D120525074535BEABD083BFE7C0CB5451BBEFB5B55BC6C60A10449E34E".into(),
            SignatureError::WrongLength("sha1=hex HMAC-SHA1"),
            "the seed's 128-digit example is no SHA-1 length",
        ),
        ("c2hvcnQ=".into(), SignatureError::WrongLength("base64 HMAC-SHA256"), "base64 of the wrong length"),
    ];
    for (header, expected, rule) in cases {
        assert_eq!(verify(key, &v.body, &header), Err(expected), "{rule}: {header:?}");
    }
}

fn table(method: AuthMethod) -> AuthTable {
    let mut table = AuthTable::default();
    table.webhooks.insert("15".into(), method);
    table
}

#[test]
fn an_unsigned_delivery_is_refused_when_a_passcode_is_set() {
    let table = table(AuthMethod::Passcode(Secret::new(PASSCODE)));
    let body = started_body();
    let creds = Credentials { signature: None, authorization: None, body: &body };
    assert_eq!(
        table.authenticate(Some("15"), &creds),
        AuthOutcome::Refused(AuthFailure::Signature(SignatureError::Missing))
    );
    let signed =
        Credentials { signature: Some(vectors()[0].base64_sha256), authorization: None, body: &body };
    assert!(matches!(table.authenticate(Some("15"), &signed), AuthOutcome::Verified(_)));
}

#[test]
fn an_unknown_webhook_is_refused_once_any_authentication_is_configured() {
    let table = table(AuthMethod::Passcode(Secret::new(PASSCODE)));
    let body = b"{}";
    let creds = Credentials { signature: None, authorization: None, body };
    assert_eq!(table.authenticate(Some("99"), &creds), AuthOutcome::Refused(AuthFailure::UnknownWebhook));
    assert_eq!(table.authenticate(None, &creds), AuthOutcome::Refused(AuthFailure::UnknownWebhook));
    assert_eq!(
        AuthTable::default().authenticate(Some("99"), &creds),
        AuthOutcome::Open,
        "nothing configured: open"
    );
}

#[test]
fn the_default_applies_to_webhook_ids_not_configured() {
    let mut table = table(AuthMethod::None);
    table.webhooks.insert("default".into(), AuthMethod::Bearer(Secret::new("tok-123")));
    let body = b"{}";
    let bearer = Credentials { signature: None, authorization: Some("Bearer tok-123"), body };
    assert!(matches!(table.authenticate(Some("99"), &bearer), AuthOutcome::Verified(_)));
    let none = Credentials { signature: None, authorization: None, body };
    assert_eq!(
        table.authenticate(Some("15"), &none),
        AuthOutcome::NotRequired,
        "webhook 15 has its own mode"
    );
    assert!(!table.authenticate(Some("99"), &none).is_accepted());
}

#[test]
fn basic_and_bearer_credentials_are_checked_exactly() {
    let basic = table(AuthMethod::Basic { user: "centrepoint".into(), password: Secret::new("pa:ss wörd") });
    let body = b"{}";
    let check = |t: &AuthTable, header: &str| {
        t.authenticate(Some("15"), &Credentials { signature: None, authorization: Some(header), body })
    };
    assert!(
        check(&basic, &basic_header("centrepoint", "pa:ss wörd")).is_accepted(),
        "a colon in the password"
    );
    // Independent encoding: base64("centrepoint:pa:ss wörd") computed with Python.
    assert!(check(&basic, "basic Y2VudHJlcG9pbnQ6cGE6c3Mgd8O2cmQ=").is_accepted(), "scheme in any case");
    assert_eq!(
        check(&basic, &basic_header("centrepoint", "wrong")),
        AuthOutcome::Refused(AuthFailure::WrongBasic)
    );
    assert_eq!(
        check(&basic, &basic_header("other", "pa:ss wörd")),
        AuthOutcome::Refused(AuthFailure::WrongBasic)
    );
    assert_eq!(check(&basic, "Basic !!!"), AuthOutcome::Refused(AuthFailure::MalformedBasic));
    assert_eq!(check(&basic, "Bearer pa:ss"), AuthOutcome::Refused(AuthFailure::WrongScheme("Basic")));

    let bearer = table(AuthMethod::Bearer(Secret::new("tok-123")));
    assert!(check(&bearer, "Bearer tok-123").is_accepted());
    assert!(check(&bearer, "bearer   tok-123 ").is_accepted(), "whitespace is trimmed");
    assert_eq!(check(&bearer, "Bearer tok-1234"), AuthOutcome::Refused(AuthFailure::WrongBearer));
    assert_eq!(check(&bearer, "Bearer "), AuthOutcome::Refused(AuthFailure::WrongScheme("Bearer")));
    assert_eq!(check(&bearer, "tok-123"), AuthOutcome::Refused(AuthFailure::WrongScheme("Bearer")));
}

#[test]
fn secrets_never_show_in_debug_output() {
    let method = AuthMethod::Basic { user: "u".into(), password: Secret::new("hunter2") };
    assert!(!format!("{method:?}").contains("hunter2"));
    assert!(!format!("{:?}", AuthMethod::Passcode(Secret::new("hunter2"))).contains("hunter2"));
}

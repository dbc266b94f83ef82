//! Signature verification against vectors computed outside cpwatch, when this test was
//! written, with Python's `hmac` module (and the empty-body one cross-checked with
//! `openssl dgst -sha256 -hmac s3cret-passcode -binary | base64`):
//!
//! ```text
//! hmac.new(key.encode(), body, hashlib.sha256).digest()  -> base64 / hex
//! hmac.new(key.encode(), body, hashlib.sha1).hexdigest()
//! ```
//!
//! The 2015 `sha1=<128 hex>` form (ActiGraph's securing_webhooks.md of 2015-12-10:
//! HMAC-SHA512 over the UTF-16LE code units of a .NET string, upper-case hex) was
//! computed the same way, with `body` as text, and every vector cross-checked with
//! `iconv -f UTF-8 -t UTF-16LE | openssl dgst -sha512 -mac HMAC -macopt hexkey:<UTF-16LE key>`:
//!
//! ```text
//! hmac.new(key.encode("utf-16-le"), body.encode("utf-16-le"), hashlib.sha512).hexdigest().upper()
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
    /// The 2015 form's digest, upper case as ActiGraph's code wrote it.
    sha512_utf16_hex: &'static str,
}

/// A body whose text is not ASCII, so UTF-16 and UTF-8 differ in more than zero bytes:
/// two-byte `é` and `ü`, and an emoji that is a surrogate pair in UTF-16.
const CAFE_BODY: &str = r#"{"message":"Café in Zürich 😀","uploadId":85048}"#;

fn vectors() -> Vec<Vector> {
    vec![
        Vector {
            passcode: PASSCODE,
            body: started_body(),
            base64_sha256: "hB8Upvn+pU3G+u6ojg5nxv7C1INqdJ1+8k0N3rDADAo=",
            sha1_hex: "a9e88cc2059ba849088ef53f2fff7aaf7c5efe6f",
            sha256_hex: "841f14a6f9fea54dc6faeea88e0e67c6fec2d4836a749d7ef24d0ddeb0c00c0a",
            sha512_utf16_hex: "479D88960ADB8625A4C159D25ECB1338D1E811F400F1677D08288792492FCFAA\
                               0B13FAB350A21B58EF4F82E5BD6F9D66D9A5DB4550DAAB0C0A45A2CB759A264D",
        },
        Vector {
            passcode: PASSCODE,
            body: Vec::new(),
            base64_sha256: "w5e1Zt+6+0tJApTsjboyYvdzWvhQUp1CuU6ylaSirRU=",
            sha1_hex: "819b8bc17a8b10832d6e7ba70485761695962231",
            sha256_hex: "c397b566dfbafb4b490294ec8dba3262f7735af850529d42b94eb295a4a2ad15",
            sha512_utf16_hex: "7AC40C8F9C92C1164FE04B67A95B3117F007C5048EB1596D7D90924EEEB0022B\
                               4418DC25AA64596EBAFBAF91332152A164CD31F3470BCA16241BAA4A2C590D93",
        },
        Vector {
            passcode: "pässcode-ü-😀",
            body: br#"{"status":"Completed","uploadId":85047}"#.to_vec(),
            base64_sha256: "t9eh/Yu6ewLh7KYAZ6DJYuK1MdheYEAyBzxE2VUzJYQ=",
            sha1_hex: "c6609f7609e7abb5f98d1fd0c4c76090e2a0d45c",
            sha256_hex: "b7d7a1fd8bba7b02e1eca60067a0c962e2b531d85e604032073c44d955332584",
            sha512_utf16_hex: "6B7BEE3B8E20D49EBEA0F5D1E54B38C251FD18636549CA12BF9E9B40F7553C89\
                               A871A8E6E70672DB43BBD42B391B0FCA6195822EF0E905C1E64C46FB76F79CFB",
        },
        Vector {
            passcode: PASSCODE,
            body: CAFE_BODY.as_bytes().to_vec(),
            base64_sha256: "5KVwsgcj4At6cyMFI4kFM2d6wZ+rTlaG9UWy5v5CKhU=",
            sha1_hex: "64e82f653565ac524a00510527b8495315c1a17b",
            sha256_hex: "e4a570b20723e00b7a73230523890533677ac19fab4e5686f545b2e6fe422a15",
            sha512_utf16_hex: "F79206102CC3F9F502998B817BA31DCD11E644001FB7F94149B7633374BD7421\
                               8CF810B25F9E23295FE2FC79A1667E3F5FCF63E01A994658CE47455C6DDFC9F4",
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
        assert_eq!(
            verify(key, &v.body, &format!("sha1={}", v.sha512_utf16_hex)),
            Ok(Scheme::Sha512Utf16Hex),
            "2015 sha1=<128 hex> form, upper case, {:?}",
            v.passcode
        );
        assert_eq!(
            verify(key, &v.body, &format!("sha1={}", v.sha512_utf16_hex.to_lowercase())),
            Ok(Scheme::Sha512Utf16Hex),
            "2015 sha1=<128 hex> form, lower case, {:?}",
            v.passcode
        );
    }
}

#[test]
fn signing_produces_what_centrepoint_would_send() {
    for v in vectors() {
        let key = v.passcode.as_bytes();
        assert_eq!(
            cpwatch::receive::signature::sign(Scheme::Base64Sha256, key, &v.body),
            Ok(v.base64_sha256.to_string())
        );
        assert_eq!(
            cpwatch::receive::signature::sign(Scheme::Sha1Hex, key, &v.body),
            Ok(format!("sha1={}", v.sha1_hex))
        );
        assert_eq!(
            cpwatch::receive::signature::sign(Scheme::Sha256Hex, key, &v.body),
            Ok(format!("sha256={}", v.sha256_hex))
        );
        assert_eq!(
            cpwatch::receive::signature::sign(Scheme::Sha512Utf16Hex, key, &v.body),
            Ok(format!("sha1={}", v.sha512_utf16_hex)),
            "upper-case hex under sha1=, as ActiGraph's 2015 code wrote it"
        );
    }
}

#[test]
fn hex_signatures_are_accepted_in_any_case_and_with_stray_whitespace() {
    let v = &vectors()[0];
    let key = v.passcode.as_bytes();
    let upper = format!("sha1={}", v.sha1_hex.to_uppercase());
    assert_eq!(verify(key, &v.body, &upper), Ok(Scheme::Sha1Hex), "upper-case hex");
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
        for header in [
            v.base64_sha256.to_string(),
            format!("sha1={}", v.sha1_hex),
            format!("sha256={}", v.sha256_hex),
            format!("sha1={}", v.sha512_utf16_hex),
        ] {
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
            SignatureError::WrongLength(SHA1_LENGTHS),
            "a truncated sha1 digest",
        ),
        (
            format!("sha1={}00", v.sha1_hex),
            SignatureError::WrongLength(SHA1_LENGTHS),
            "a sha1 digest one byte too long",
        ),
        (
            format!("sha1={}", v.sha256_hex),
            SignatureError::WrongLength(SHA1_LENGTHS),
            "a sha256 digest under the sha1 prefix",
        ),
        (
            format!("sha1={}", &v.sha512_utf16_hex[..126]),
            SignatureError::WrongLength(SHA1_LENGTHS),
            "a 2015 digest one byte short",
        ),
        (
            format!("sha1={}", &v.sha512_utf16_hex[..127]),
            SignatureError::BadHex("sha1"),
            "a 2015 digest with an odd number of hex digits",
        ),
        (
            format!("sha256={}", v.sha512_utf16_hex),
            SignatureError::WrongLength("sha256=hex HMAC-SHA256"),
            "a 2015 digest under the sha256 prefix",
        ),
        (v.sha512_utf16_hex.to_string(), SignatureError::MissingPrefix, "a 2015 digest without its prefix"),
        (format!("sha1={}x", &v.sha1_hex[..39]), SignatureError::BadHex("sha1"), "a non-hex character"),
        (
            format!("sha256={}", &v.sha256_hex[..63]),
            SignatureError::BadHex("sha256"),
            "an odd number of hex digits",
        ),
        (v.sha256_hex.to_string(), SignatureError::MissingPrefix, "sha256 hex without its prefix"),
        (v.sha1_hex.to_uppercase(), SignatureError::MissingPrefix, "sha1 hex without its prefix"),
        (v.base64_sha256[..43].to_string(), SignatureError::Unrecognised, "base64 with its padding cut off"),
        ("md5=0123456789abcdef".into(), SignatureError::Unrecognised, "an unknown prefix"),
        (
            SEED_EXAMPLE_DIGEST.into(),
            SignatureError::MissingPrefix,
            "the seed's example value without prefix",
        ),
        ("c2hvcnQ=".into(), SignatureError::WrongLength("base64 HMAC-SHA256"), "base64 of the wrong length"),
    ];
    for (header, expected, rule) in cases {
        assert_eq!(verify(key, &v.body, &header), Err(expected), "{rule}: {header:?}");
    }
}

/// What a `sha1=` value of any other length is told.
const SHA1_LENGTHS: &str =
    "sha1=<hex>, which takes 40 hex digits (HMAC-SHA1) or 128 (the 2015 HMAC-SHA512 form)";

/// The `X-Actigraph-Signature` of the seed's example delivery (ActiGraph's README of
/// 2015-12-03), whose body is tests/fixtures/upload-seed-example.http's.
const SEED_EXAMPLE_DIGEST: &str = "E2316FEDF726CBB2FD31EA25FF55E966A4543EEC290944DA578ADB42CD0DE9D6\
                                   0A1435D120525074535BEABD083BFE7C0CB5451BBEFB5B55BC6C60A10449E34E";

#[test]
fn the_2015_form_signs_utf16_text_not_the_body_bytes() {
    let key = PASSCODE.as_bytes();
    let body = CAFE_BODY.as_bytes();
    // Python, as above but over other bytes: hmac.new(key.encode(), body.encode(),
    // hashlib.sha512) (UTF-8), and with "utf-16-be" for both key and body.
    let over_utf8 = "3DCC8B9E2706BECED3914E37AF83831836A5867791CBD5CB2E132B5AD3C8E84B\
                     26EA0691FF29E7345DA1D7C6389BBEC55CA30227A87472D422B7B5DAEB0B3EF9";
    let over_utf16_be = "8F30363ED8A04990740799A1819A71B56CABB0546DAE7489805AFCBD60AAC676\
                         F5CDB1795B07E01C2686E57BF05CC47E4B97E59BC4DF7521C6116CFF226FDE9D";
    for (wrong, digest) in [("the UTF-8 bytes", over_utf8), ("big-endian UTF-16", over_utf16_be)] {
        assert_eq!(
            verify(key, body, &format!("sha1={digest}")),
            Err(SignatureError::Mismatch(Scheme::Sha512Utf16Hex.name())),
            "an HMAC-SHA512 over {wrong} is not the 2015 form"
        );
    }
}

#[test]
fn the_2015_form_refuses_a_body_or_passcode_that_is_not_utf8() {
    let v = &vectors()[0];
    let header = format!("sha1={}", v.sha512_utf16_hex);
    let mut not_utf8 = v.body.clone();
    not_utf8[5] = 0xff;
    assert_eq!(verify(v.passcode.as_bytes(), &not_utf8, &header), Err(SignatureError::BodyNotText));
    assert_eq!(
        SignatureError::BodyNotText.to_string(),
        "the 2015 sha1=<128 hex> HMAC-SHA512 form signs UTF-16 text, but the body is not UTF-8 text",
        "the reason names the form and what is wrong with the body"
    );
    assert_eq!(verify(b"pass\xc3code", &v.body, &header), Err(SignatureError::PasscodeNotText));
    assert_eq!(
        cpwatch::receive::signature::sign(Scheme::Sha512Utf16Hex, v.passcode.as_bytes(), &not_utf8),
        Err(SignatureError::BodyNotText),
        "nor can it sign such a body"
    );
    // The other forms sign bytes, so the same body is only a mismatch there.
    assert!(matches!(
        verify(v.passcode.as_bytes(), &not_utf8, &format!("sha1={}", v.sha1_hex)),
        Err(SignatureError::Mismatch(_))
    ));
}

#[test]
fn the_seeds_128_digit_example_is_read_as_the_2015_form() {
    let header = format!("sha1={SEED_EXAMPLE_DIGEST}");
    let parsed = cpwatch::receive::signature::parse(&header).expect("a 2015-form header");
    assert_eq!(parsed.scheme, Scheme::Sha512Utf16Hex);
    assert_eq!(parsed.digest.len(), 64);
    // ActiGraph never published the passcode it was made with, so no key at hand
    // verifies it: with ours it is a mismatch of that form, not a length error.
    let fixture = HttpFixture::read(std::path::Path::new("tests/fixtures/upload-seed-example.http"))
        .expect("the seed-example fixture");
    assert_eq!(
        verify(PASSCODE.as_bytes(), &fixture.body, &header),
        Err(SignatureError::Mismatch(Scheme::Sha512Utf16Hex.name()))
    );
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

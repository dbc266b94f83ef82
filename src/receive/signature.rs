//! The `X-ActiGraph-Signature` header: parsing its three forms and checking it
//! against the raw body with the webhook's passcode.
//!
//! CentrePoint documents `base64(HMAC-SHA256)` with no prefix; the seed design used
//! GitHub's `sha1=<hex>`; `sha256=<hex>` is accepted as its natural successor.
//! Every comparison goes through `Mac::verify_slice`, which is constant time.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// The signature schemes a passcode can be checked (and, for `cpwatch send`, signed) with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `base64(HMAC-SHA256(passcode, body))`, no prefix: what CentrePoint sends today.
    Base64Sha256,
    /// `sha1=<hex HMAC-SHA1>`: the seed's GitHub-style form.
    Sha1Hex,
    /// `sha256=<hex HMAC-SHA256>`: the GitHub-style successor.
    Sha256Hex,
}

impl Scheme {
    pub const ALL: [Scheme; 3] = [Scheme::Base64Sha256, Scheme::Sha1Hex, Scheme::Sha256Hex];

    /// The scheme's short id, as `cpwatch send --scheme` takes it.
    pub fn id(self) -> &'static str {
        match self {
            Scheme::Base64Sha256 => "base64-sha256",
            Scheme::Sha1Hex => "sha1-hex",
            Scheme::Sha256Hex => "sha256-hex",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Base64Sha256 => "base64 HMAC-SHA256",
            Scheme::Sha1Hex => "sha1=hex HMAC-SHA1",
            Scheme::Sha256Hex => "sha256=hex HMAC-SHA256",
        }
    }
}

/// Why a signature header was not accepted. The messages are shown to the sender
/// and stored in the refused-request log, so they never include the expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header is missing")]
    Missing,
    #[error("signature header is empty")]
    Empty,
    #[error("signature is not valid {0} hex")]
    BadHex(&'static str),
    #[error("signature is neither sha1=<hex>, sha256=<hex> nor base64")]
    Unrecognised,
    #[error("signature is hex without its sha1= or sha256= prefix")]
    MissingPrefix,
    #[error("signature has the wrong length for {0}")]
    WrongLength(&'static str),
    #[error("signature does not match the body ({0})")]
    Mismatch(&'static str),
}

/// A signature header split into its scheme and raw digest bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSignature {
    pub scheme: Scheme,
    pub digest: Vec<u8>,
}

/// Parses a header value (already trimmed or not) into a scheme and digest.
pub fn parse(header: &str) -> Result<ParsedSignature, SignatureError> {
    let value = header.trim();
    if value.is_empty() {
        return Err(SignatureError::Empty);
    }
    let prefixed = |prefix: &str| {
        value.get(..prefix.len()).filter(|p| p.eq_ignore_ascii_case(prefix)).map(|_| &value[prefix.len()..])
    };
    let (scheme, digest) = if let Some(hex_part) = prefixed("sha1=") {
        let digest = hex::decode(hex_part.trim()).map_err(|_| SignatureError::BadHex("sha1"))?;
        (Scheme::Sha1Hex, digest)
    } else if let Some(hex_part) = prefixed("sha256=") {
        let digest = hex::decode(hex_part.trim()).map_err(|_| SignatureError::BadHex("sha256"))?;
        (Scheme::Sha256Hex, digest)
    } else if value.len() >= 40 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        // A long run of hex digits is a hex digest whose sender forgot the prefix (a
        // base64 SHA-256 always ends in `=`). Read as base64 it would only give a
        // confusing length error.
        return Err(SignatureError::MissingPrefix);
    } else {
        let digest = BASE64.decode(value).map_err(|_| SignatureError::Unrecognised)?;
        (Scheme::Base64Sha256, digest)
    };
    let expected_len = match scheme {
        Scheme::Sha1Hex => 20,
        Scheme::Sha256Hex | Scheme::Base64Sha256 => 32,
    };
    if digest.len() != expected_len {
        return Err(SignatureError::WrongLength(scheme.name()));
    }
    Ok(ParsedSignature { scheme, digest })
}

/// Checks `header` against `body` keyed by `passcode`, in constant time.
pub fn verify(passcode: &[u8], body: &[u8], header: &str) -> Result<Scheme, SignatureError> {
    let parsed = parse(header)?;
    let matches = match parsed.scheme {
        Scheme::Sha1Hex => mac::<Hmac<Sha1>>(passcode, body).verify_slice(&parsed.digest),
        Scheme::Sha256Hex | Scheme::Base64Sha256 => {
            mac::<Hmac<Sha256>>(passcode, body).verify_slice(&parsed.digest)
        }
    };
    matches.map(|()| parsed.scheme).map_err(|_| SignatureError::Mismatch(parsed.scheme.name()))
}

/// The header value CentrePoint (or the seed design) would send for `body`.
pub fn sign(scheme: Scheme, passcode: &[u8], body: &[u8]) -> String {
    match scheme {
        Scheme::Base64Sha256 => BASE64.encode(mac::<Hmac<Sha256>>(passcode, body).finalize().into_bytes()),
        Scheme::Sha256Hex => {
            format!("sha256={}", hex::encode(mac::<Hmac<Sha256>>(passcode, body).finalize().into_bytes()))
        }
        Scheme::Sha1Hex => {
            format!("sha1={}", hex::encode(mac::<Hmac<Sha1>>(passcode, body).finalize().into_bytes()))
        }
    }
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], body: &[u8]) -> M {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac
}

//! The `X-ActiGraph-Signature` header: parsing its four forms and checking it
//! against the raw body with the webhook's passcode.
//!
//! CentrePoint documents `base64(HMAC-SHA256)` with no prefix; the seed design used
//! GitHub's `sha1=<hex>`; `sha256=<hex>` is accepted as its natural successor. Before
//! settling on base64 (2015-12-14), ActiGraph documented for a few days a form that kept
//! the `sha1=` prefix but carried 128 upper-case hex digits of HMAC-SHA512, keyed and
//! computed over the UTF-16LE code units of the passcode and the body (a .NET string's
//! `ToCharArray` copied byte for byte); the seed's example header is of that length.
//! Under `sha1=`, the number of hex digits tells the two apart.
//! Every comparison goes through `Mac::verify_slice`, which is constant time.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

/// The signature schemes a passcode can be checked (and, for `cpwatch send`, signed) with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `base64(HMAC-SHA256(passcode, body))`, no prefix: what CentrePoint sends today.
    Base64Sha256,
    /// `sha1=<hex HMAC-SHA1>`: the seed's GitHub-style form.
    Sha1Hex,
    /// `sha256=<hex HMAC-SHA256>`: the GitHub-style successor.
    Sha256Hex,
    /// `sha1=<128 hex digits of HMAC-SHA512>` over UTF-16LE passcode and body: what
    /// ActiGraph documented from 2015-12-10 until 2015-12-14. Only text can be signed
    /// this way, so it refuses a passcode or body that is not UTF-8.
    Sha512Utf16Hex,
}

impl Scheme {
    pub const ALL: [Scheme; 4] =
        [Scheme::Base64Sha256, Scheme::Sha1Hex, Scheme::Sha256Hex, Scheme::Sha512Utf16Hex];

    /// The scheme's short id, as `cpwatch send --scheme` takes it.
    pub fn id(self) -> &'static str {
        match self {
            Scheme::Base64Sha256 => "base64-sha256",
            Scheme::Sha1Hex => "sha1-hex",
            Scheme::Sha256Hex => "sha256-hex",
            Scheme::Sha512Utf16Hex => "sha512-utf16-hex",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Base64Sha256 => "base64 HMAC-SHA256",
            Scheme::Sha1Hex => "sha1=hex HMAC-SHA1",
            Scheme::Sha256Hex => "sha256=hex HMAC-SHA256",
            Scheme::Sha512Utf16Hex => "sha1=hex HMAC-SHA512 over UTF-16LE (2015)",
        }
    }
}

/// What a `sha1=` value of any other length is told: both forms share the prefix.
const SHA1_PREFIX_LENGTHS: &str =
    "sha1=<hex>, which takes 40 hex digits (HMAC-SHA1) or 128 (the 2015 HMAC-SHA512 form)";

/// Why a signature header was not accepted (or, for [`sign`], could not be made). The
/// messages are shown to the sender and stored in the refused-request log, so they
/// never include the expected value.
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
    // Worded to explain a failed `sign` too, hence no "signature is" like the others.
    #[error("the 2015 sha1=<128 hex> HMAC-SHA512 form signs UTF-16 text, but the body is not UTF-8 text")]
    BodyNotText,
    #[error(
        "the 2015 sha1=<128 hex> HMAC-SHA512 form signs UTF-16 text, but the passcode is not UTF-8 text"
    )]
    PasscodeNotText,
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
        let scheme = match digest.len() {
            20 => Scheme::Sha1Hex,
            64 => Scheme::Sha512Utf16Hex,
            _ => return Err(SignatureError::WrongLength(SHA1_PREFIX_LENGTHS)),
        };
        (scheme, digest)
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
        Scheme::Sha512Utf16Hex => 64,
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
        Scheme::Sha512Utf16Hex => {
            let (key, message) = utf16_key_and_message(passcode, body)?;
            mac::<Hmac<Sha512>>(&key, &message).verify_slice(&parsed.digest)
        }
    };
    matches.map(|()| parsed.scheme).map_err(|_| SignatureError::Mismatch(parsed.scheme.name()))
}

/// The header value CentrePoint (or the seed design) would send for `body`. Only the
/// 2015 form can fail: it signs text, so it needs a passcode and a body that are UTF-8
/// ([`SignatureError::PasscodeNotText`], [`SignatureError::BodyNotText`]); the
/// other forms sign any bytes.
pub fn sign(scheme: Scheme, passcode: &[u8], body: &[u8]) -> Result<String, SignatureError> {
    Ok(match scheme {
        Scheme::Base64Sha256 => BASE64.encode(mac::<Hmac<Sha256>>(passcode, body).finalize().into_bytes()),
        Scheme::Sha256Hex => {
            format!("sha256={}", hex::encode(mac::<Hmac<Sha256>>(passcode, body).finalize().into_bytes()))
        }
        Scheme::Sha1Hex => {
            format!("sha1={}", hex::encode(mac::<Hmac<Sha1>>(passcode, body).finalize().into_bytes()))
        }
        Scheme::Sha512Utf16Hex => {
            let (key, message) = utf16_key_and_message(passcode, body)?;
            // Upper case, as .NET's BitConverter.ToString wrote it; verify takes either.
            let digest = mac::<Hmac<Sha512>>(&key, &message).finalize().into_bytes();
            format!("sha1={}", hex::encode_upper(digest))
        }
    })
}

/// The passcode and body as the 2015 form fed them to HMAC-SHA512: decoded as UTF-8
/// (what the sender held was a string) and laid out as UTF-16LE code units, the
/// in-memory layout of a .NET string that `BlockCopy` took byte for byte.
fn utf16_key_and_message(passcode: &[u8], body: &[u8]) -> Result<(Vec<u8>, Vec<u8>), SignatureError> {
    let key = utf16le(passcode).ok_or(SignatureError::PasscodeNotText)?;
    let message = utf16le(body).ok_or(SignatureError::BodyNotText)?;
    Ok((key, message))
}

/// `bytes` read as UTF-8 and written as UTF-16LE, or `None` when they are not UTF-8.
fn utf16le(bytes: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok()?;
    // Every UTF-8 byte becomes at most two UTF-16 bytes, so this never reallocates.
    let mut out = Vec::with_capacity(text.len() * 2);
    out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    Some(out)
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], body: &[u8]) -> M {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac
}

//! Authentication of a delivery, configured per webhook id: none, a signing
//! passcode, HTTP Basic or a static bearer token.

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::receive::signature::{self, SignatureError};

/// The webhook id under which the default authentication (for ids not configured) is kept.
pub const DEFAULT_WEBHOOK: &str = "default";

/// A webhook id, as CentrePoint sends it (`X-ActiGraph-Webhook-Id`) and as a person
/// configures it: printable ASCII without spaces, at most [`WebhookId::MAX_LEN`] bytes;
/// [`DEFAULT_WEBHOOK`] names the authentication for ids not configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebhookId(String);

/// Text that is not a webhook id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a webhook id is the number CentrePoint shows for the webhook, such as 15 (printable text, at most 100 characters), or `default`"
)]
pub struct InvalidWebhookId;

impl WebhookId {
    pub const MAX_LEN: usize = 100;

    /// Reads a webhook id, trimmed of surrounding white space.
    pub fn parse(text: &str) -> Result<WebhookId, InvalidWebhookId> {
        let id = text.trim();
        let usable = !id.is_empty() && id.len() <= Self::MAX_LEN && id.chars().all(|c| c.is_ascii_graphic());
        usable.then(|| WebhookId(id.to_string())).ok_or(InvalidWebhookId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_default(&self) -> bool {
        self.0 == DEFAULT_WEBHOOK
    }
}

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A secret value: shown as `***` in `Debug`, never serialised by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// A hint that lets a user tell two secrets apart without revealing either.
    pub fn hint(&self) -> String {
        let chars = self.0.chars().count();
        format!("{chars} characters")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How one webhook's deliveries are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    None,
    Passcode(Secret),
    Basic { user: String, password: Secret },
    Bearer(Secret),
}

/// The name of an authentication mode, as stored and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    None,
    Passcode,
    Basic,
    Bearer,
}

impl AuthMode {
    pub const ALL: [AuthMode; 4] = [AuthMode::None, AuthMode::Passcode, AuthMode::Basic, AuthMode::Bearer];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Passcode => "passcode",
            AuthMode::Basic => "basic",
            AuthMode::Bearer => "bearer",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(AuthMode::None),
            "passcode" => Some(AuthMode::Passcode),
            "basic" => Some(AuthMode::Basic),
            "bearer" => Some(AuthMode::Bearer),
            _ => None,
        }
    }
}

impl AuthMethod {
    pub fn mode(&self) -> AuthMode {
        match self {
            AuthMethod::None => AuthMode::None,
            AuthMethod::Passcode(_) => AuthMode::Passcode,
            AuthMethod::Basic { .. } => AuthMode::Basic,
            AuthMethod::Bearer(_) => AuthMode::Bearer,
        }
    }
}

/// The request parts authentication looks at.
pub struct Credentials<'a> {
    pub signature: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub body: &'a [u8],
}

/// What authentication concluded about a delivery. Stored with every delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// No authentication is configured at all: anyone who knows the URL can post.
    Open,
    /// The webhook is configured with mode `none`.
    NotRequired,
    Verified(String),
    Refused(AuthFailure),
}

impl AuthOutcome {
    pub fn is_accepted(&self) -> bool {
        !matches!(self, AuthOutcome::Refused(_))
    }
    /// A short label for listings and the database.
    pub fn describe(&self) -> String {
        match self {
            AuthOutcome::Open => "open (no authentication configured)".into(),
            AuthOutcome::NotRequired => "none required".into(),
            AuthOutcome::Verified(how) => format!("verified ({how})"),
            AuthOutcome::Refused(why) => format!("refused: {why}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("unknown webhook id and no default authentication is configured")]
    UnknownWebhook,
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("Authorization header is missing")]
    MissingAuthorization,
    #[error("Authorization header is not {0}")]
    WrongScheme(&'static str),
    #[error("Basic credentials are not valid base64 user:password")]
    MalformedBasic,
    #[error("wrong user name or password")]
    WrongBasic,
    #[error("wrong bearer token")]
    WrongBearer,
}

/// Every configured webhook's authentication, looked up by webhook id.
#[derive(Debug, Clone, Default)]
pub struct AuthTable {
    pub webhooks: HashMap<String, AuthMethod>,
}

impl AuthTable {
    /// True when nothing at all is configured: every delivery is accepted.
    pub fn is_open(&self) -> bool {
        self.webhooks.is_empty()
    }

    /// The method that applies to a webhook id: its own, else the default.
    pub fn method_for(&self, webhook_id: Option<&str>) -> Option<&AuthMethod> {
        webhook_id.and_then(|id| self.webhooks.get(id)).or_else(|| self.webhooks.get(DEFAULT_WEBHOOK))
    }

    pub fn authenticate(&self, webhook_id: Option<&str>, creds: &Credentials<'_>) -> AuthOutcome {
        if self.is_open() {
            return AuthOutcome::Open;
        }
        match self.method_for(webhook_id) {
            None => AuthOutcome::Refused(AuthFailure::UnknownWebhook),
            Some(method) => match check(method, creds) {
                Ok(None) => AuthOutcome::NotRequired,
                Ok(Some(how)) => AuthOutcome::Verified(how),
                Err(why) => AuthOutcome::Refused(why),
            },
        }
    }
}

/// Checks credentials against one method; `Ok(Some(how))` names what was verified.
pub fn check(method: &AuthMethod, creds: &Credentials<'_>) -> Result<Option<String>, AuthFailure> {
    match method {
        AuthMethod::None => Ok(None),
        AuthMethod::Passcode(passcode) => {
            let header = creds.signature.ok_or(SignatureError::Missing)?;
            let scheme = signature::verify(passcode.expose().as_bytes(), creds.body, header)?;
            Ok(Some(scheme.name().to_string()))
        }
        AuthMethod::Basic { user, password } => {
            let token = authorization_param(creds.authorization, "Basic")?;
            let decoded = BASE64.decode(token).map_err(|_| AuthFailure::MalformedBasic)?;
            let decoded = String::from_utf8(decoded).map_err(|_| AuthFailure::MalformedBasic)?;
            let (given_user, given_password) = decoded.split_once(':').ok_or(AuthFailure::MalformedBasic)?;
            // Both halves are compared, always, so timing does not tell which one was wrong.
            let user_ok = digest_eq(given_user, user);
            let password_ok = digest_eq(given_password, password.expose());
            if user_ok & password_ok {
                Ok(Some("basic".into()))
            } else {
                Err(AuthFailure::WrongBasic)
            }
        }
        AuthMethod::Bearer(token) => {
            let given = authorization_param(creds.authorization, "Bearer")?;
            if digest_eq(given, token.expose()) {
                Ok(Some("bearer".into()))
            } else {
                Err(AuthFailure::WrongBearer)
            }
        }
    }
}

fn authorization_param<'a>(header: Option<&'a str>, scheme: &'static str) -> Result<&'a str, AuthFailure> {
    let header = header.ok_or(AuthFailure::MissingAuthorization)?.trim();
    let (given_scheme, param) = header.split_once(' ').ok_or(AuthFailure::WrongScheme(scheme))?;
    if !given_scheme.eq_ignore_ascii_case(scheme) {
        return Err(AuthFailure::WrongScheme(scheme));
    }
    Ok(param.trim())
}

/// Constant-time equality that also hides the length of the expected value.
fn digest_eq(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

/// The `Authorization` header a sender would use for Basic credentials.
pub fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{user}:{password}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_id_is_printable_text_of_at_most_100_bytes_trimmed() {
        assert_eq!(WebhookId::parse(" 15 ").map(|id| id.to_string()), Ok("15".to_string()));
        assert!(WebhookId::parse(DEFAULT_WEBHOOK).is_ok_and(|id| id.is_default()));
        assert!(WebhookId::parse(&"9".repeat(WebhookId::MAX_LEN)).is_ok(), "100 bytes is still an id");
        for bad in ["", "   ", "1 5", "15\u{e9}", "1\t5", &"9".repeat(WebhookId::MAX_LEN + 1)] {
            assert_eq!(WebhookId::parse(bad), Err(InvalidWebhookId), "{bad:?} is not a webhook id");
        }
    }
}

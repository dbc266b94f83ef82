//! Probes of the public URL: `GET <origin>/healthz?probe=<nonce>`, which the receiver
//! answers with a keyed digest of the nonce in [`PROBE_HEADER`]. The key is made at
//! each start and never leaves the process, so a matching answer proves that the URL
//! reaches *this* receiver: not a stale tunnel to another cpwatch, not a proxy's
//! error page, not whatever else answers 200.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Cause, Reachability, State};

/// The response header carrying the receiver's answer to a probe.
pub const PROBE_HEADER: &str = "x-cpwatch-probe";
/// The longest nonce the receiver answers (a probe's is 32 hex digits).
const NONCE_MAX: usize = 64;
/// A probe that has no answer by then failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// Failed probes in a row that make the receiver unreachable.
pub const FAILURES_TO_UNREACHABLE: u32 = 2;

/// This process's probe key.
#[derive(Clone)]
pub struct ProbeKey([u8; 32]);

impl std::fmt::Debug for ProbeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProbeKey([redacted])")
    }
}

impl ProbeKey {
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        ProbeKey(key)
    }

    /// The receiver's answer to `nonce`; `None` for a nonce no probe sends.
    pub fn answer(&self, nonce: &str) -> Option<String> {
        if nonce.is_empty() || nonce.len() > NONCE_MAX || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        mac.update(nonce.as_bytes());
        Some(hex::encode(&mac.finalize().into_bytes()[..16]))
    }
}

/// Why a probe failed, for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub cause: Cause,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read extra_ca_file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("extra_ca_file {path} holds no PEM certificate: {message}")]
    Parse { path: String, message: String },
    #[error("cannot set up the HTTP client that probes the public URL and asks tunnels for it: {0}")]
    Build(String),
}

/// The probe's HTTPS client: the system's certificate store, plus the certificates in
/// `extra_ca` (a lab's internal CA); no redirects, since a redirect is not this receiver.
pub fn client(extra_ca: Option<&Path>) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cpwatch-probe/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(0);
    if let Some(path) = extra_ca {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| ClientError::Read { path: shown.clone(), source })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| ClientError::Parse { path: shown.clone(), message: e.to_string() })?;
        if certs.is_empty() {
            return Err(ClientError::Parse { path: shown, message: "no certificate found".into() });
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| ClientError::Build(e.to_string()))
}

/// Probes `origin` once.
pub async fn probe(client: &reqwest::Client, origin: &str, key: &ProbeKey) -> Result<(), Failure> {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let expected = key.answer(&nonce).expect("a uuid is a usable nonce");
    let url = format!("{}/healthz?probe={nonce}", origin.trim_end_matches('/'));
    let response = client.get(&url).send().await.map_err(|e| classify(&e, origin))?;
    let status = response.status();
    let answer = response.headers().get(PROBE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    match answer {
        Some(answer) if answer == expected => Ok(()),
        Some(_) => Err(Failure {
            cause: Cause::AnotherReceiver,
            reason: "another receiver answered: the URL reaches a different cpwatch, not this one".into(),
        }),
        None if status.is_success() => Err(Failure {
            cause: Cause::AnotherReceiver,
            reason: format!(
                "another receiver answered: something that is not this cpwatch answered HTTP {}",
                status.as_u16()
            ),
        }),
        None => Err(Failure {
            cause: Cause::HttpStatus,
            reason: format!(
                "the URL answers HTTP {}{}",
                status.as_u16(),
                match status.as_u16() {
                    502..=504 | 530 => " (the tunnel or proxy is up but cannot reach cpwatch)",
                    404 => " (the tunnel is gone, or points elsewhere)",
                    _ => "",
                }
            ),
        }),
    }
}

/// Sorts a transport error into what a person can act on.
fn classify(error: &reqwest::Error, origin: &str) -> Failure {
    let mut chain = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut refused = false;
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        chain.push(e.to_string());
        source = e.source();
    }
    let text = chain.join(": ").to_lowercase();
    let host = origin.split_once("://").map_or(origin, |(_, h)| h);
    let detail = chain.last().cloned().unwrap_or_default();
    let (cause, reason) = if error.is_timeout() {
        (
            Cause::Timeout,
            format!("the public URL does not answer (no answer within {} s)", PROBE_TIMEOUT.as_secs()),
        )
    } else if text.contains("dns error")
        || text.contains("failed to lookup address")
        || text.contains("name or service not known")
    {
        (
            Cause::Dns,
            format!("the tunnel's host name {host} does not resolve (DNS): the tunnel has probably ended"),
        )
    } else if refused {
        (Cause::ConnectionRefused, format!("{host} refuses connections: the tunnel or proxy is not running"))
    } else if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
        (Cause::Tls, format!("the TLS handshake with {host} failed: {detail}"))
    } else {
        (Cause::Other, format!("the public URL does not answer: {detail}"))
    };
    Failure { cause, reason }
}

/// Probe outcomes in, the reachability state out: two failures in a row make the
/// receiver unreachable, one success makes it reachable again.
#[derive(Debug, Clone)]
pub struct Tracker {
    pub current: Reachability,
    failures: u32,
    first_failure: Option<DateTime<Utc>>,
}

/// A change of state worth telling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    BecameUnreachable,
    Recovered,
}

impl Tracker {
    pub fn new(current: Reachability) -> Self {
        Tracker { current, failures: 0, first_failure: None }
    }

    /// Failed probes in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn observe(&mut self, outcome: Result<(), Failure>, now: DateTime<Utc>) -> Option<Change> {
        self.current.checked_at = Some(now);
        match outcome {
            Ok(()) => {
                self.failures = 0;
                self.first_failure = None;
                let was = self.current.state;
                if was != State::Reachable {
                    self.current.state = State::Reachable;
                    self.current.since = Some(now);
                }
                self.current.reason = None;
                self.current.cause = None;
                (was == State::Unreachable).then_some(Change::Recovered)
            }
            Err(failure) => {
                self.failures += 1;
                let first = *self.first_failure.get_or_insert(now);
                if self.current.state == State::Unreachable {
                    // Still down; the reason may have moved on (refused, then DNS).
                    self.current.reason = Some(failure.reason);
                    self.current.cause = Some(failure.cause);
                    return None;
                }
                if self.failures >= FAILURES_TO_UNREACHABLE {
                    self.current.state = State::Unreachable;
                    self.current.since = Some(first);
                    self.current.reason = Some(failure.reason);
                    self.current.cause = Some(failure.cause);
                    return Some(Change::BecameUnreachable);
                }
                None
            }
        }
    }

    /// The public URL went away (or changed): start from unknown.
    pub fn reset(&mut self, reason: &str) {
        self.failures = 0;
        self.first_failure = None;
        self.current = Reachability::unknown(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 14, 0, 0).single().expect("a time") + chrono::Duration::seconds(s)
    }

    fn refused() -> Result<(), Failure> {
        Err(Failure { cause: Cause::ConnectionRefused, reason: "refused".into() })
    }

    #[test]
    fn answers_are_keyed_and_only_for_usable_nonces() {
        let (a, b) = (ProbeKey::random(), ProbeKey::random());
        let nonce = "0123456789abcdef0123456789abcdef";
        assert_eq!(a.answer(nonce), a.answer(nonce), "the same key gives the same answer");
        assert_ne!(a.answer(nonce), b.answer(nonce), "another receiver's key does not");
        assert_ne!(a.answer(nonce), a.answer("fedcba9876543210fedcba9876543210"));
        for bad in ["", "with space", "a/b", &"x".repeat(65)] {
            assert_eq!(a.answer(bad), None, "{bad:?}");
        }
        assert!(!format!("{a:?}").contains(&hex::encode(a.0)), "the key is never printed");
    }

    #[test]
    fn two_failures_in_a_row_make_it_unreachable_and_one_success_recovers() {
        let mut tracker = Tracker::new(Reachability::unknown("not probed yet"));
        assert_eq!(tracker.observe(Ok(()), t(0)), None, "unknown to reachable is not news");
        assert_eq!(tracker.current.state, State::Reachable);
        assert_eq!(tracker.observe(refused(), t(300)), None, "one failure is not enough");
        assert_eq!(tracker.current.state, State::Reachable);
        assert_eq!(tracker.observe(Ok(()), t(330)), None, "a blip");
        assert_eq!(tracker.observe(refused(), t(600)), None);
        assert_eq!(tracker.observe(refused(), t(630)), Some(Change::BecameUnreachable));
        let r = &tracker.current;
        assert_eq!((r.state, r.since, r.checked_at), (State::Unreachable, Some(t(600)), Some(t(630))));
        assert_eq!(r.reason.as_deref(), Some("refused"));
        assert_eq!(tracker.observe(refused(), t(930)), None, "told once");
        assert_eq!(tracker.observe(Ok(()), t(1230)), Some(Change::Recovered));
        assert_eq!((tracker.current.state, tracker.current.since), (State::Reachable, Some(t(1230))));
        assert_eq!(tracker.current.reason, None);
    }
}

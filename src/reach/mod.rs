//! Whether CentrePoint can reach this receiver: its public URL, found from the
//! configuration, a tunnel cpwatch runs, or a tunnel's local API ([`discover`],
//! [`tunnel`]); probes through that URL that only this receiver can answer ([`probe`]);
//! the state they give, where the last validation arrived, and the outages, kept by
//! the [`monitor`] task and shown by `cpwatch status`, the dashboard and the tray.

pub mod discover;
pub mod monitor;
pub mod probe;
pub mod tunnel;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use monitor::{MonitorSetup, ReachHandle};
pub use probe::ProbeKey;

/// Where the public URL came from, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `public_url` in the configuration, or set in the dashboard's Settings.
    Config,
    /// The tunnel cpwatch runs (`tunnel = "cloudflared"` or `"ngrok"`).
    Managed,
    /// An ngrok agent's local API.
    Ngrok,
    /// A cloudflared quick tunnel's metrics server.
    Cloudflared,
}

impl Source {
    pub fn describe(self) -> &'static str {
        match self {
            Source::Config => "from the configuration",
            Source::Managed => "from the tunnel cpwatch runs",
            Source::Ngrok => "found from the ngrok agent",
            Source::Cloudflared => "found from cloudflared",
        }
    }
}

/// The URL to enter in the CentrePoint portal, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicUrl {
    /// The webhook's full target URL (the tunnel's origin and the webhook path).
    pub url: String,
    pub source: Source,
}

impl PublicUrl {
    /// A tunnel's origin (`https://name.example`) or a configured URL: a URL with no
    /// path gets the webhook path, one with a path is kept as written.
    pub fn new(url: &str, webhook_path: &str, source: Source) -> PublicUrl {
        let url = url.trim();
        let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        let url = if after_scheme.trim_end_matches('/').contains('/') {
            url.to_string()
        } else {
            format!("{}{webhook_path}", url.trim_end_matches('/'))
        };
        PublicUrl { url, source }
    }

    /// `scheme://host[:port]`, where probes go.
    pub fn origin(&self) -> &str {
        let start = self.url.find("://").map_or(0, |i| i + 3);
        match self.url[start..].find(['/', '?', '#']) {
            Some(end) => &self.url[..start + end],
            None => &self.url,
        }
    }

    /// Where probes go: the URL without the webhook path when it ends with it (a proxy
    /// that maps a path prefix to the receiver), else the origin.
    pub fn probe_base(&self, webhook_path: &str) -> String {
        match self.url.strip_suffix(webhook_path) {
            Some(base) if base.len() > self.origin().len() => base.trim_end_matches('/').to_string(),
            _ => self.origin().to_string(),
        }
    }

    /// The host (and port, when given) a delivery to this URL names in `Host`.
    pub fn authority(&self) -> &str {
        let origin = self.origin();
        origin.find("://").map_or(origin, |i| &origin[i + 3..])
    }
}

/// Whether CentrePoint can reach the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Reachable,
    Unreachable,
    /// No public URL is known, or it has not been probed yet.
    Unknown,
}

/// What kind of failure a probe met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    Dns,
    Tls,
    Timeout,
    ConnectionRefused,
    HttpStatus,
    AnotherReceiver,
    /// The tunnel that gave the URL no longer reports one: it ended.
    TunnelGone,
    /// The URL changed and the portal still has the old one.
    UrlChanged,
    Other,
}

/// The reachability `cpwatch status --json` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reachability {
    pub state: State,
    /// When the current state began.
    pub since: Option<DateTime<Utc>>,
    /// Why it is not reachable (or not known), for a person.
    pub reason: Option<String>,
    pub cause: Option<Cause>,
    /// The last probe's time.
    pub checked_at: Option<DateTime<Utc>>,
}

impl Reachability {
    pub fn unknown(reason: &str) -> Self {
        Reachability {
            state: State::Unknown,
            since: None,
            reason: Some(reason.into()),
            cause: None,
            checked_at: None,
        }
    }
}

/// Where the last successful validation handshake arrived, against the current URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    /// The last validation arrived at the current public URL's host.
    pub at_this_url: bool,
    /// The host the last validation was sent to.
    pub host: Option<String>,
    pub received_at: Option<DateTime<Utc>>,
}

/// The public URL changed: the portal has to be told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlChange {
    pub url: String,
    pub previous: Option<String>,
    pub at: DateTime<Utc>,
    /// What to do, for a person.
    pub message: String,
}

impl UrlChange {
    pub fn new(url: &str, previous: Option<String>, at: DateTime<Utc>) -> Self {
        UrlChange { url: url.to_string(), previous, at, message: portal_steps(url) }
    }
}

/// The portal steps for a new URL, as the notification, the banner and `status` say them.
pub fn portal_steps(url: &str) -> String {
    format!("Your webhook URL is now {url}. In the CentrePoint portal, set the target URL to {url} and press Validate.")
}

/// Everything the monitor knows, as the dashboard and the tray read it and as it is
/// kept in the store for `cpwatch status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReachStatus {
    pub public_url: Option<PublicUrl>,
    pub reachability: Reachability,
    /// `None` while no public URL is known.
    pub validation: Option<Validation>,
    /// Shown until a validation arrives at the new URL.
    pub url_change: Option<UrlChange>,
    /// The tunnel cpwatch runs, when configured.
    pub tunnel: Option<serde_json::Value>,
    pub probe_interval_secs: u64,
    /// When the monitor last wrote this.
    pub updated_at: DateTime<Utc>,
}

impl ReachStatus {
    pub fn initial(probe_interval_secs: u64, now: DateTime<Utc>) -> Self {
        ReachStatus {
            public_url: None,
            reachability: Reachability::unknown("no public URL is known yet"),
            validation: None,
            url_change: None,
            tunnel: None,
            probe_interval_secs,
            updated_at: now,
        }
    }

    /// Reachability in words, for `cpwatch status` and the tray's tooltip.
    pub fn in_words(&self) -> String {
        let r = &self.reachability;
        let since = r
            .since
            .map(|t| format!(" since {}", t.with_timezone(&chrono::Local).format("%a %H:%M")))
            .unwrap_or_default();
        match r.state {
            State::Reachable => format!("reachable: CentrePoint can reach cpwatch{since}"),
            State::Unreachable => format!(
                "NOT reachable{since}: {}",
                r.reason.as_deref().unwrap_or("the public URL does not answer")
            ),
            State::Unknown => format!("unknown: {}", r.reason.as_deref().unwrap_or("no public URL is known")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tunnel_origin_gets_the_webhook_path_and_a_configured_path_is_kept() {
        let tunnel = PublicUrl::new("https://abc.trycloudflare.com", "/webhook", Source::Cloudflared);
        assert_eq!(tunnel.url, "https://abc.trycloudflare.com/webhook");
        assert_eq!(tunnel.origin(), "https://abc.trycloudflare.com");
        assert_eq!(tunnel.authority(), "abc.trycloudflare.com");
        let slash = PublicUrl::new("https://abc.ngrok-free.app/", "/hook", Source::Ngrok);
        assert_eq!(slash.url, "https://abc.ngrok-free.app/hook");
        let typed = PublicUrl::new("https://lab.example.org:8443/cp/webhook", "/webhook", Source::Config);
        assert_eq!(typed.url, "https://lab.example.org:8443/cp/webhook", "kept as written");
        assert_eq!(typed.origin(), "https://lab.example.org:8443");
        assert_eq!(typed.authority(), "lab.example.org:8443");
        assert_eq!(typed.probe_base("/webhook"), "https://lab.example.org:8443/cp", "behind a path prefix");
        assert_eq!(tunnel.probe_base("/webhook"), "https://abc.trycloudflare.com");
        let elsewhere = PublicUrl::new("https://lab.example.org/hooks/cp", "/webhook", Source::Config);
        assert_eq!(elsewhere.probe_base("/webhook"), "https://lab.example.org");
    }

    #[test]
    fn the_portal_steps_name_the_url_twice() {
        let steps = portal_steps("https://x.example/webhook");
        assert_eq!(steps.matches("https://x.example/webhook").count(), 2, "{steps}");
        assert!(steps.contains("press Validate"), "{steps}");
    }
}

//! The reachability monitor: one task that finds the public URL, probes it, follows
//! validations, notices sleep, writes the heartbeat and records outages. It wakes only
//! for that work: a probe (every `probe_interval_secs`, sooner to confirm a failure),
//! a discovery (every `discovery_interval_secs`, and after each failed probe), a clock
//! check once a minute (a laptop that slept shows as wall time running ahead of the
//! monotonic clock), a validation delivery, or a nudge from the dashboard.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::discover;
use super::probe::{self, Change, ProbeKey, Tracker};
use super::tunnel::{Tunnel, UrlSource};
use super::{Cause, PublicUrl, ReachStatus, Reachability, Source, State, UrlChange, Validation};
use crate::store::uptime::{self, Downtime, OutageKind};
use crate::store::{settings, status, LiveEvent, ReadPool};

/// The heartbeat's period: after a crash, the run's end is known to within this.
pub const HEARTBEAT: Duration = Duration::from_secs(600);
/// How often the clock is compared with the monotonic one, to notice a sleep.
const CLOCK_CHECK: Duration = Duration::from_secs(60);
/// Wall time beyond the monotonic time that counts as a sleep.
const SLEEP_SLACK: chrono::Duration = chrono::Duration::seconds(90);
/// After a failed probe, the next comes this soon at the latest, to confirm it.
const CONFIRM_AFTER: Duration = Duration::from_secs(30);

/// What the monitor is given.
pub struct MonitorSetup {
    pub pool: ReadPool,
    /// This run's row in the `runs` table.
    pub run: i64,
    pub key: ProbeKey,
    pub client: reqwest::Client,
    pub configured_url: Option<String>,
    pub webhook_path: String,
    /// The receiver's port, which a tunnel's configuration must point at.
    pub port: u16,
    pub probe_interval: Duration,
    pub discovery_interval: Duration,
    pub ngrok_web_addr: String,
    pub cloudflared_metrics: Vec<String>,
    pub trust_forwarded_headers: bool,
    pub live: broadcast::Receiver<LiveEvent>,
    /// The tunnel cpwatch runs; the server keeps a handle too, to stop it first at shutdown.
    pub tunnel: Option<Arc<Tunnel>>,
    /// For the tunnels' local APIs (plain HTTP on loopback).
    pub discovery_client: reqwest::Client,
}

/// The monitor's state, for the dashboard and the desktop app; and a way to have it look again.
#[derive(Clone)]
pub struct ReachHandle {
    status: watch::Receiver<ReachStatus>,
    poke: Arc<Notify>,
}

impl ReachHandle {
    /// A handle whose state never changes, for a dashboard with no monitor (tests).
    pub fn fixed(status: ReachStatus) -> Self {
        let (tx, rx) = watch::channel(status);
        std::mem::forget(tx);
        ReachHandle { status: rx, poke: Arc::default() }
    }

    pub fn current(&self) -> ReachStatus {
        self.status.borrow().clone()
    }

    /// Changes from now on.
    pub fn subscribe(&self) -> watch::Receiver<ReachStatus> {
        self.status.clone()
    }

    /// Find the public URL and probe it again now (the Settings changed it).
    pub fn recheck(&self) {
        self.poke.notify_one();
    }

    /// The URL to give CentrePoint, else `local`.
    pub fn webhook_url_or(&self, local: &str) -> String {
        self.status.borrow().public_url.as_ref().map_or_else(|| local.to_string(), |p| p.url.clone())
    }
}

/// Starts the monitor; it ends, stopping the tunnel it runs, once `stopping` turns true.
pub fn spawn(setup: MonitorSetup, stopping: watch::Receiver<bool>) -> (ReachHandle, JoinHandle<()>) {
    let now = Utc::now();
    let (tx, rx) = watch::channel(ReachStatus::initial(setup.probe_interval.as_secs(), now));
    let poke = Arc::new(Notify::new());
    let monitor = Monitor {
        tracker: Tracker::new(Reachability::unknown("no public URL is known yet")),
        status: ReachStatus::initial(setup.probe_interval.as_secs(), now),
        setup,
        tx,
        previous_url: None,
        kept_validation: None,
        kept_change: None,
        open_outage: None,
        next_probe: None,
        logged: Default::default(),
        clock: (Instant::now(), now),
        heartbeat_at: Instant::now(),
    };
    let task = tokio::spawn(monitor.run(poke.clone(), stopping));
    (ReachHandle { status: rx, poke }, task)
}

struct Monitor {
    setup: MonitorSetup,
    tx: watch::Sender<ReachStatus>,
    status: ReachStatus,
    tracker: Tracker,
    /// The URL known before this one (kept across restarts), for "your URL is now".
    previous_url: Option<String>,
    /// The last validation seen, kept across restarts and past retention's pruning.
    kept_validation: Option<(String, DateTime<Utc>)>,
    /// The announcement of the previous run, so that an unchanged URL keeps its date.
    kept_change: Option<UrlChange>,
    /// The `outages` row of the unreachable period going on.
    open_outage: Option<i64>,
    next_probe: Option<Instant>,
    /// The last discovery problem logged per source, so that one is logged once.
    logged: std::collections::HashMap<Source, String>,
    /// The last clock check: monotonic and wall time.
    clock: (Instant, DateTime<Utc>),
    heartbeat_at: Instant,
}

impl Monitor {
    async fn run(mut self, poke: Arc<Notify>, mut stopping: watch::Receiver<bool>) {
        self.restore().await;
        self.discover().await;
        // What the previous run kept must not stand for this one, even if nothing was found.
        self.keep().await;
        let mut next_discovery = Instant::now() + self.discovery_delay();
        let mut next_clock = Instant::now() + CLOCK_CHECK;
        let mut tunnel_changes = self.setup.tunnel.as_ref().map(|t| t.changes());
        let mut live_open = true;
        loop {
            let probe_at = self.next_probe;
            let probe_due = async move {
                match probe_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let tunnel_changed = async {
                match tunnel_changes.as_mut() {
                    Some(changes) => {
                        if changes.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            let live = &mut self.setup.live;
            let delivered = async {
                if live_open {
                    live.recv().await
                } else {
                    std::future::pending().await
                }
            };
            let stop = async {
                let _ = stopping.wait_for(|stop| *stop).await;
            };
            tokio::select! {
                () = stop => break,
                () = probe_due => self.probe().await,
                () = tokio::time::sleep_until(next_discovery) => {
                    self.discover().await;
                    next_discovery = Instant::now() + self.discovery_delay();
                }
                () = tokio::time::sleep_until(next_clock) => {
                    next_clock = Instant::now() + CLOCK_CHECK;
                    self.check_clock().await;
                }
                () = poke.notified() => {
                    self.discover().await;
                    self.probe_now();
                }
                () = tunnel_changed => {
                    self.discover().await;
                    next_discovery = Instant::now() + self.discovery_delay();
                }
                received = delivered => match received {
                    Ok(LiveEvent::Delivery { event, .. }) if event.eq_ignore_ascii_case("validation") => {
                        self.refresh_validation().await;
                        self.publish().await;
                    }
                    // A validation may be among the missed: look again.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.refresh_validation().await;
                        self.publish().await;
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Closed) => live_open = false,
                },
            }
        }
        if let Some(tunnel) = &self.setup.tunnel {
            tunnel.stop().await;
        }
    }

    /// Until the tunnel cpwatch runs has given its URL (a new quick tunnel takes a few
    /// seconds), it is asked every 2 s; otherwise every `discovery_interval_secs`.
    fn discovery_delay(&self) -> Duration {
        let waiting_for_tunnel = self.setup.tunnel.as_ref().is_some_and(|t| t.status().running)
            && !matches!(
                self.status.public_url.as_ref().map(|p| p.source),
                Some(Source::Managed | Source::Config)
            );
        if waiting_for_tunnel {
            self.setup.discovery_interval.min(Duration::from_secs(2))
        } else {
            self.setup.discovery_interval
        }
    }

    /// Picks up the URL known before this start, so a new one is announced.
    async fn restore(&mut self) {
        let kept = self.setup.pool.run(|conn| Ok(settings::reach_status(conn)?)).await;
        match kept {
            Ok(Some(value)) => {
                if let Ok(kept) = serde_json::from_value::<ReachStatus>(value) {
                    self.previous_url = kept.public_url.map(|p| p.url);
                    self.kept_validation = kept.validation.and_then(|v| Some((v.host?, v.received_at?)));
                    self.kept_change = kept.url_change;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("cannot read the reachability kept from before: {e}"),
        }
    }

    /// Finds the public URL: the first source that has one wins. When the source of the
    /// URL known so far answers with something unusable, that URL is kept as it is: a
    /// busy agent is not a tunnel that ended.
    async fn find(&mut self) -> Option<PublicUrl> {
        let known = self.status.public_url.clone();
        let configured = self.setup.configured_url.clone();
        let prefs = self.setup.pool.run(|conn| Ok(settings::preferences(conn)?)).await;
        let configured = match prefs {
            Ok(prefs) => prefs.public_url_or(configured.as_deref()),
            Err(e) => {
                tracing::warn!("cannot read the public URL set in Settings: {e}");
                configured
            }
        };
        let path = self.setup.webhook_path.clone();
        if let Some(url) = configured {
            return Some(PublicUrl::new(&url, &path, Source::Config));
        }
        let client = self.setup.discovery_client.clone();
        for source in [Source::Managed, Source::Ngrok, Source::Cloudflared] {
            let found = match source {
                Source::Managed => match self.setup.tunnel.as_ref().map(|t| t.url_source()) {
                    Some(UrlSource::Cloudflared { metrics }) => {
                        discover::cloudflared(&client, &[metrics]).await
                    }
                    Some(UrlSource::Ngrok { web_addr, port }) => {
                        discover::ngrok(&client, &web_addr, port).await
                    }
                    None => continue,
                },
                Source::Ngrok => discover::ngrok(&client, &self.setup.ngrok_web_addr, self.setup.port).await,
                _ => discover::cloudflared(&client, &self.setup.cloudflared_metrics).await,
            };
            let erred = found.is_err();
            if let Some(url) = self.found(source, found) {
                return Some(PublicUrl::new(&url, &path, source));
            }
            if erred && known.as_ref().is_some_and(|k| k.source == source) {
                return known;
            }
        }
        None
    }

    /// A source's answer; a problem is logged once until it changes.
    fn found(
        &mut self,
        source: Source,
        answer: Result<Option<String>, discover::DiscoverError>,
    ) -> Option<String> {
        match answer {
            Ok(url) => {
                self.logged.remove(&source);
                url
            }
            Err(e) => {
                let message = e.to_string();
                if self.logged.get(&source) != Some(&message) {
                    tracing::warn!("no public URL {}: {message}", source.describe());
                    self.logged.insert(source, message);
                }
                None
            }
        }
    }

    async fn discover(&mut self) {
        let mut found = self.find().await;
        let now = Utc::now();
        // A tunnel's URL that disappears is a tunnel that ended, and CentrePoint still
        // posts to that URL: keep it, and count it as a failed probe (once per probe: a
        // discovery that follows a failed probe confirms it rather than doubling it).
        if let (None, Some(known)) = (&found, &self.status.public_url) {
            if known.source != Source::Config {
                let failure = probe::Failure {
                    cause: Cause::TunnelGone,
                    reason: format!(
                        "the tunnel has ended: {} no longer gives a public URL",
                        match known.source {
                            Source::Managed => "the tunnel cpwatch runs",
                            Source::Ngrok => "the ngrok agent",
                            _ => "cloudflared",
                        }
                    ),
                };
                found = Some(known.clone());
                if self.tracker.failures() == 0 {
                    self.observe(Err(failure), now).await;
                }
            }
        }
        let current = self.status.public_url.as_ref().map(|p| p.url.clone());
        let changed = found.as_ref().map(|p| &p.url) != current.as_ref();
        let source_changed =
            found.as_ref().map(|p| p.source) != self.status.public_url.as_ref().map(|p| p.source);
        if changed {
            if let Some(old) = current.clone() {
                self.previous_url = Some(old);
            }
            match &found {
                Some(url) => {
                    tracing::info!("public URL {}: {}", url.source.describe(), url.url);
                    self.tracker.reset("not probed yet");
                    // Not `probe_now`: that looks at the URL known so far, none on a first find.
                    self.next_probe = Some(Instant::now());
                }
                None => {
                    tracing::warn!("no public URL is known any more: CentrePoint cannot reach cpwatch until a tunnel is back");
                    self.tracker.reset(
                        "no public URL is known: start a tunnel (ngrok, cloudflared) or set public_url",
                    );
                    self.next_probe = None;
                }
            }
            // The old URL's state is not the new one's.
            self.status.reachability = self.tracker.current.clone();
        }
        self.status.public_url = found;
        if changed || source_changed {
            self.refresh_validation().await;
            self.announce_change(now);
        }
        self.publish().await;
    }

    /// Whether the last validation arrived at the current URL; the banner goes once it has.
    async fn refresh_validation(&mut self) {
        let trust = self.setup.trust_forwarded_headers;
        let read = self.setup.pool.run(move |conn| Ok(status::last_validation_host(conn, trust)?)).await;
        let last = match read {
            Ok(last) => last,
            Err(e) => {
                tracing::warn!("cannot read the last validation: {e}");
                return;
            }
        };
        let last = match last {
            Some(last) => {
                self.kept_validation = Some(last.clone());
                Some(last)
            }
            // Pruned by retention, or older than this store: what was kept before.
            None => self.kept_validation.clone(),
        };
        self.status.validation = self.status.public_url.as_ref().map(|url| {
            let at_this_url = last.as_ref().is_some_and(|(host, _)| same_authority(host, url.authority()));
            Validation {
                at_this_url,
                host: last.as_ref().map(|(h, _)| h.clone()),
                received_at: last.as_ref().map(|(_, t)| *t),
            }
        });
        if self.status.validation.as_ref().is_some_and(|v| v.at_this_url) {
            self.status.url_change = None;
        }
    }

    /// A URL not validated at is a new webhook target: the portal has to be told.
    fn announce_change(&mut self, now: DateTime<Utc>) {
        let validated = self.status.validation.as_ref().is_some_and(|v| v.at_this_url);
        self.status.url_change = match &self.status.public_url {
            Some(url) if !validated => {
                let previous = self.previous_url.clone().filter(|p| *p != url.url);
                if self.status.url_change.as_ref().map(|c| &c.url) == Some(&url.url) {
                    self.status.url_change.clone()
                } else if let Some(kept) = self.kept_change.take().filter(|c| c.url == url.url) {
                    // Announced by a previous run and still not validated: the same news.
                    Some(kept)
                } else {
                    let change = UrlChange::new(&url.url, previous, now);
                    tracing::warn!("{}", change.message);
                    Some(change)
                }
            }
            _ => None,
        };
    }

    fn probe_now(&mut self) {
        if self.status.public_url.is_some() {
            self.next_probe = Some(Instant::now());
        }
    }

    async fn probe(&mut self) {
        let Some(url) = self.status.public_url.clone() else {
            self.next_probe = None;
            return;
        };
        let base = url.probe_base(&self.setup.webhook_path);
        let outcome = probe::probe(&self.setup.client, &base, &self.setup.key).await;
        let now = Utc::now();
        let failed = outcome.is_err();
        if let Err(failure) = &outcome {
            tracing::debug!("probe of {base} failed: {}", failure.reason);
        }
        self.observe(outcome, now).await;
        // Sooner only to confirm a first failure; an outage is probed at the usual pace.
        let confirming = failed && self.tracker.failures() < probe::FAILURES_TO_UNREACHABLE;
        let interval = self.setup.probe_interval;
        self.next_probe =
            Some(Instant::now() + if confirming { interval.min(CONFIRM_AFTER) } else { interval });
        self.publish().await;
        if failed {
            // A failure may be a tunnel that moved: look for its new URL at once.
            self.discover().await;
        }
    }

    /// A probe's outcome (or a tunnel gone): the probes' state, and the log.
    async fn observe(&mut self, outcome: Result<(), probe::Failure>, now: DateTime<Utc>) {
        let Some(url) = self.status.public_url.clone() else { return };
        match self.tracker.observe(outcome, now) {
            Some(Change::BecameUnreachable) => tracing::error!(
                "CentrePoint cannot reach cpwatch at {}: {}",
                url.url,
                self.tracker.current.reason.as_deref().unwrap_or_default()
            ),
            Some(Change::Recovered) => tracing::info!("the public URL {} reaches cpwatch again", url.url),
            None => {}
        }
    }

    /// What CentrePoint sees: the probes' state, unless the portal still has an older URL
    /// (the study was validated before, and not at this URL): then nothing reaches this
    /// receiver until the portal is told, however well the new URL answers.
    fn effective(&self) -> Reachability {
        let probed = self.tracker.current.clone();
        let pending =
            self.status.url_change.as_ref().filter(|_| {
                self.status.validation.as_ref().is_some_and(|v| v.host.is_some() && !v.at_this_url)
            });
        match pending {
            Some(change) if probed.state != State::Unreachable => Reachability {
                state: State::Unreachable,
                since: Some(change.at),
                reason: Some(format!(
                    "the CentrePoint portal still has {}: set the target URL to {} and press Validate",
                    change
                        .previous
                        .as_deref()
                        .map_or("an older URL".to_string(), |p| format!("the old URL {p}")),
                    change.url
                )),
                cause: Some(Cause::UrlChanged),
                checked_at: probed.checked_at,
            },
            _ => probed,
        }
    }

    /// Opens an outage when CentrePoint cannot reach cpwatch, ends it when it can again.
    /// With no URL known (a tunnel being replaced) an open one goes on.
    async fn settle_outage(&mut self) {
        let r = &self.status.reachability;
        let now = Utc::now();
        match (r.state, self.open_outage) {
            (State::Unreachable, None) => {
                let outage = Downtime {
                    from: r.since.unwrap_or(now),
                    to: None,
                    kind: OutageKind::Unreachable,
                    reason: r.reason.clone().unwrap_or_default(),
                };
                match self.setup.pool.run(move |conn| Ok(uptime::record(conn, &outage)?)).await {
                    Ok(id) => self.open_outage = Some(id),
                    Err(e) => tracing::warn!("cannot record the outage: {e}"),
                }
            }
            (State::Reachable, Some(id)) => {
                self.open_outage = None;
                if let Err(e) = self.setup.pool.run(move |conn| Ok(uptime::end(conn, id, now)?)).await {
                    tracing::warn!("cannot record the end of the outage: {e}");
                }
            }
            _ => {}
        }
    }

    /// Notices a sleep and writes the heartbeat when due.
    async fn check_clock(&mut self) {
        let (mono, wall) = (Instant::now(), Utc::now());
        let (last_mono, last_wall) = self.clock;
        self.clock = (mono, wall);
        let expected = chrono::Duration::from_std(mono - last_mono).unwrap_or_default();
        if wall - last_wall > expected + SLEEP_SLACK {
            tracing::info!(
                "the computer was asleep from {} to {}: looking at the public URL again",
                last_wall.with_timezone(&chrono::Local).format("%H:%M"),
                wall.with_timezone(&chrono::Local).format("%H:%M")
            );
            let sleep = Downtime {
                from: last_wall,
                to: Some(wall),
                kind: OutageKind::Asleep,
                reason: "the computer was asleep".into(),
            };
            if let Err(e) = self.setup.pool.run(move |conn| Ok(uptime::record(conn, &sleep)?)).await {
                tracing::warn!("cannot record the sleep: {e}");
            }
            self.discover().await;
            self.probe_now();
        }
        if mono - self.heartbeat_at >= HEARTBEAT {
            self.heartbeat_at = mono;
            let run = self.setup.run;
            if let Err(e) = self.setup.pool.run(move |conn| Ok(uptime::alive(conn, run, wall)?)).await {
                tracing::warn!("cannot write the heartbeat: {e}");
            }
        }
    }

    /// Tells the dashboard and the tray, and keeps it for `cpwatch status`.
    async fn publish(&mut self) {
        self.status.reachability = self.effective();
        self.settle_outage().await;
        self.status.tunnel = self.setup.tunnel.as_ref().and_then(|t| serde_json::to_value(t.status()).ok());
        // Only a change is written and told: a discovery that finds the same URL is not.
        let mut unchanged = self.tx.borrow().clone();
        unchanged.updated_at = self.status.updated_at;
        if unchanged == self.status {
            return;
        }
        self.status.updated_at = Utc::now();
        self.keep().await;
        self.tx.send_replace(self.status.clone());
    }

    /// Keeps the state in the store, for `cpwatch status` in another process.
    async fn keep(&self) {
        let kept = serde_json::to_value(&self.status).unwrap_or_default();
        if let Err(e) = self.setup.pool.run(move |conn| Ok(settings::set_reach_status(conn, &kept)?)).await {
            tracing::warn!("cannot keep the reachability for `cpwatch status`: {e}");
        }
    }
}

/// Two `host[:port]` the same, `:443` being the default of `https`.
fn same_authority(a: &str, b: &str) -> bool {
    let plain = |s: &str| s.trim().trim_end_matches(":443").to_ascii_lowercase();
    plain(a) == plain(b)
}

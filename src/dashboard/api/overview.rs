//! `GET /api/overview`: the receiver's health, the totals and every study's card.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Duration, Local, NaiveDate, Utc};
use serde::Serialize;

use super::db;
use crate::dashboard::error::{ok, ApiResult};
use crate::dashboard::DashboardState;
use crate::reach::{PublicUrl, Reachability, UrlChange, Validation};
use crate::store::status::{self, Counts};
use crate::store::studies::{self, StudyCard};
use crate::store::uptime::{self, Downtime};
use crate::store::{settings, webhooks};

pub(super) fn routes() -> Router<DashboardState> {
    Router::new().route("/overview", get(overview))
}

#[derive(Serialize)]
struct Overview {
    now: DateTime<Utc>,
    today: NaiveDate,
    stalled_after_minutes: u32,
    receiver: ReceiverHealth,
    /// What the desktop app says about itself; `null` under `cpwatch serve`.
    desktop: Option<serde_json::Value>,
    totals: Counts,
    studies: Vec<StudyCard>,
}

#[derive(Serialize)]
struct ReceiverHealth {
    listening: String,
    webhook_url: String,
    /// `{"url", "source"}`: where CentrePoint posts, and how cpwatch knows it.
    public_url: Option<PublicUrl>,
    reachability: Reachability,
    validation: Option<Validation>,
    /// The banner: a new URL the portal has to be given.
    url_change: Option<UrlChange>,
    /// The tunnel cpwatch runs, when configured.
    tunnel: Option<serde_json::Value>,
    probe_interval_secs: u64,
    /// Outages, newest first, each with what it means for CentrePoint's retries.
    downtime: Vec<Outage>,
    authentication_off: bool,
    last_delivery_at: Option<DateTime<Utc>>,
    refused_last_day: i64,
    refused_not_logged: u64,
}

#[derive(Serialize)]
struct Outage {
    #[serde(flatten)]
    downtime: Downtime,
    advice: String,
}

async fn overview(State(state): State<DashboardState>) -> ApiResult {
    let inner = state.inner.clone();
    let reach = inner.reach.current();
    let refused_not_logged = inner.writer.dropped_refusals();
    let desktop = inner.desktop.status();
    db(&state, move |conn| {
        let prefs = settings::preferences(conn)?;
        let now = Utc::now();
        let today = Local::now().date_naive();
        let studies =
            studies::cards(conn, today, now, Duration::minutes(prefs.stalled_after_minutes.into()))?;
        let totals = status::counts(conn, now)?;
        let receiver = ReceiverHealth {
            listening: inner.receiver.listen.to_string(),
            webhook_url: inner.receiver.webhook_url.clone(),
            public_url: reach.public_url,
            reachability: reach.reachability,
            validation: reach.validation,
            url_change: reach.url_change,
            tunnel: reach.tunnel,
            probe_interval_secs: reach.probe_interval_secs,
            downtime: uptime::downtime(conn)?
                .into_iter()
                .map(|downtime| Outage { advice: uptime::advice(&downtime, now), downtime })
                .collect(),
            authentication_off: webhooks::list(conn)?.is_empty(),
            last_delivery_at: totals.last_delivery_at,
            refused_last_day: totals.refused_last_day,
            refused_not_logged,
        };
        Ok(Overview {
            now,
            today,
            stalled_after_minutes: prefs.stalled_after_minutes,
            receiver,
            desktop,
            totals,
            studies,
        })
    })
    .await
    .and_then(ok)
}

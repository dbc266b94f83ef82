//! `GET /api/overview`: the receiver's health, the totals and every study's card.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Duration, Local, NaiveDate, Utc};
use serde::Serialize;

use super::db;
use crate::dashboard::error::{ok, ApiResult};
use crate::dashboard::DashboardState;
use crate::store::status::{self, Counts};
use crate::store::studies::{self, StudyCard};
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
    public_url: Option<String>,
    authentication_off: bool,
    last_delivery_at: Option<DateTime<Utc>>,
    refused_last_day: i64,
    refused_not_logged: u64,
}

async fn overview(State(state): State<DashboardState>) -> ApiResult {
    let inner = state.inner.clone();
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
            public_url: prefs.public_url_or(inner.receiver.configured_public_url.as_deref()),
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

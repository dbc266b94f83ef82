//! The JSON API under `/api/`, one module per resource. Each handler parses its input,
//! runs one store call on the read pool, and answers a `Serialize` struct.

mod deliveries;
mod overview;
mod settings;
mod studies;
mod test_delivery;
mod uploads;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::error::ApiError;
use super::{live, DashboardState};
use crate::store::listing::{self, Bound};
use crate::store::Filter;

pub(super) fn router() -> Router<DashboardState> {
    Router::new()
        .merge(overview::routes())
        .merge(uploads::routes())
        .merge(studies::routes())
        .merge(deliveries::routes())
        .merge(settings::routes())
        .merge(test_delivery::routes())
        .route("/events", get(live::live))
        .route("/version", get(version))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such API endpoint") })
}

/// `GET /api/version`: which cpwatch this is (the footer's line).
async fn version() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "version": env!("CARGO_PKG_VERSION"), "commit": crate::COMMIT }))
}

/// Runs a read (or a settings write) on the pool.
async fn db<T, F>(state: &DashboardState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&rusqlite::Connection) -> Result<T, ApiError> + Send + 'static,
{
    let result = state.inner.pool.run(move |conn| Ok(f(conn))).await?;
    result
}

/// Filters as query parameters: `study`, `subject`, `status`, `event`, `since`, `until`.
#[derive(Debug, Default, Deserialize)]
struct FilterParams {
    study: Option<String>,
    subject: Option<String>,
    status: Option<String>,
    event: Option<String>,
    /// See [`listing::parse_bound`]: a date (`2026-11-01`, from that day's start, local
    /// time), an RFC 3339 time, or a span back from now (`24h`).
    since: Option<String>,
    /// The same forms; a date means through the end of that day.
    until: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
    flagged: Option<bool>,
    /// Only uploads still `started` for longer than the stalled threshold.
    stalled: Option<bool>,
    format: Option<String>,
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)
}

fn bound(text: &str, bound: Bound) -> Result<DateTime<Utc>, ApiError> {
    listing::parse_bound(text, bound, Utc::now()).map_err(|e| ApiError::bad_request(e.to_string()))
}

impl FilterParams {
    fn filter(&self) -> Result<Filter, ApiError> {
        let status = non_empty(&self.status);
        if let Some(s) = &status {
            if !["started", "completed", "error"].contains(&s.to_ascii_lowercase().as_str())
                && self.event.is_none()
            {
                return Err(ApiError::bad_request(format!(
                    "unknown status {s:?}: use started, completed or error"
                )));
            }
        }
        Ok(Filter {
            study: non_empty(&self.study),
            subject: non_empty(&self.subject),
            status,
            event: non_empty(&self.event),
            since: non_empty(&self.since).map(|s| bound(&s, Bound::Since)).transpose()?,
            until: non_empty(&self.until).map(|s| bound(&s, Bound::Until)).transpose()?,
            limit: None,
        })
    }

    fn limit(&self) -> u32 {
        self.limit.unwrap_or(50).clamp(1, 500)
    }
}

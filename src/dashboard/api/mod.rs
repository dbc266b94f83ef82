//! The JSON API under `/api/`, one module per resource. Each handler parses its input,
//! runs one store call on the read pool, and answers a `Serialize` struct.

mod deliveries;
mod overview;
mod settings;
mod studies;
mod test_delivery;
mod uploads;

use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::Router;
use chrono::{DateTime, Duration, Local, NaiveDate, Utc};
use serde::Deserialize;

use super::error::ApiError;
use super::{live, DashboardState};
use crate::event;
use crate::store::Filter;

pub(super) fn router() -> Router<DashboardState> {
    Router::new()
        .route("/overview", get(overview::overview))
        .route("/uploads", get(uploads::list))
        .route("/uploads/{study}/{upload}", get(uploads::detail))
        .route("/studies", get(studies::list))
        .route("/studies/{study}", put(studies::name))
        .route("/studies/{study}/subjects", get(studies::subjects))
        .route("/studies/{study}/subjects/{subject}", get(studies::subject))
        .route("/deliveries", get(deliveries::list))
        .route("/deliveries/{seq}", get(deliveries::detail))
        .route("/refused", get(deliveries::refused))
        .route("/settings", get(settings::get).put(settings::put))
        .route("/desktop", put(settings::put_desktop))
        .route("/webhooks/{id}", put(settings::put_webhook).delete(settings::delete_webhook))
        .route("/test-delivery", post(test_delivery::send))
        .route("/export", get(uploads::export))
        .route("/events", get(live::live))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such API endpoint") })
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
    /// A date (`2026-11-01`, from that day's start, local time) or an RFC 3339 time.
    since: Option<String>,
    /// A date (up to the end of that day, local time) or an RFC 3339 time.
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

fn parse_bound(text: &str, end_of_day: bool) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(date) = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        let date = if end_of_day { date + Duration::days(1) } else { date };
        let local = date.and_time(chrono::NaiveTime::MIN).and_local_timezone(Local);
        return local
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| ApiError::bad_request(format!("{text:?} is not a date here")));
    }
    event::parse_utc(text)
        .ok_or_else(|| ApiError::bad_request(format!("{text:?} is not a date (YYYY-MM-DD) or time")))
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
            since: non_empty(&self.since).map(|s| parse_bound(&s, false)).transpose()?,
            until: non_empty(&self.until).map(|s| parse_bound(&s, true)).transpose()?,
            limit: None,
        })
    }

    fn limit(&self) -> u32 {
        self.limit.unwrap_or(50).clamp(1, 500)
    }
}

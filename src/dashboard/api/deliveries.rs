//! `GET /api/deliveries` (a page), `/api/deliveries/{seq}` (one whole) and
//! `/api/refused` (the refused-request log).

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Router;

use super::{db, non_empty, FilterParams};
use crate::dashboard::error::{ok, ApiError, ApiResult};
use crate::dashboard::DashboardState;
use crate::store::deliveries::{self, DeliveryQuery};
use crate::store::refused;

pub(super) fn routes() -> Router<DashboardState> {
    Router::new()
        .route("/deliveries", get(list))
        .route("/deliveries/{seq}", get(detail))
        .route("/refused", get(refused))
}

/// The `cursor` parameter as the number where the previous page ended.
fn numeric_cursor(params: &FilterParams, what: &str) -> Result<Option<i64>, ApiError> {
    non_empty(&params.cursor)
        .map(|c| c.parse::<i64>().map_err(|_| ApiError::bad_request(format!("cursor is not a {what}"))))
        .transpose()
}

async fn list(State(state): State<DashboardState>, Query(params): Query<FilterParams>) -> ApiResult {
    let q = DeliveryQuery {
        filter: params.filter()?,
        flagged: params.flagged.unwrap_or(false),
        cursor: numeric_cursor(&params, "delivery number")?,
        limit: params.limit(),
    };
    db(&state, move |conn| Ok(deliveries::page(conn, &q)?)).await.and_then(ok)
}

async fn detail(State(state): State<DashboardState>, Path(seq): Path<i64>) -> ApiResult {
    db(&state, move |conn| {
        deliveries::get(conn, &seq.to_string())?
            .filter(|d| d.row.seq == seq)
            .ok_or_else(|| ApiError::not_found(format!("no delivery #{seq}")))
    })
    .await
    .and_then(ok)
}

async fn refused(State(state): State<DashboardState>, Query(params): Query<FilterParams>) -> ApiResult {
    let limit = params.limit();
    let before = numeric_cursor(&params, "refused-request id")?;
    db(&state, move |conn| Ok(refused::list(conn, limit, before)?)).await.and_then(ok)
}

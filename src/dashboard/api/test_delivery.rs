//! `POST /api/test-delivery`: a test `upload` delivery through the real receiver,
//! authenticated as the webhook is configured, so the whole path (authentication,
//! storage, live view) is exercised.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Json;
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::dashboard::error::{ok, ApiError, ApiResult};
use crate::dashboard::DashboardState;
use crate::emulator::send;
use crate::event::UploadStatus;

pub(super) fn routes() -> Router<DashboardState> {
    Router::new().route("/test-delivery", post(send))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TestDelivery {
    status: Option<String>,
    webhook_id: Option<String>,
    study: Option<String>,
}

#[derive(Serialize)]
struct TestSent {
    accepted: bool,
    status: Option<u16>,
    answer: String,
    delivery_id: String,
    webhook_id: String,
    study_id: String,
    upload_id: String,
    latency_ms: f64,
}

async fn send(State(state): State<DashboardState>, body: Option<Json<TestDelivery>>) -> ApiResult {
    let request = body.map(|Json(b)| b).unwrap_or_default();
    let status = request.status.unwrap_or_else(|| "completed".into());
    if UploadStatus::parse(&status).is_none() {
        return Err(ApiError::bad_request("status must be started, completed or error"));
    }
    let test = send::TestDelivery { status, webhook_id: request.webhook_id, study: request.study };
    let url = &state.inner.receiver.webhook_url;
    let sent = send::test_delivery_from_store(&state.inner.pool, url, test, "the cpwatch dashboard")
        .await
        .map_err(|e| match e {
            send::TestDeliveryError::Store(e) => ApiError::from(e),
            send::TestDeliveryError::Send(e) => ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()),
        })?;
    let outcome = sent.outcome;
    ok(TestSent {
        accepted: outcome.ok(),
        status: outcome.status,
        answer: outcome.answer,
        delivery_id: outcome.delivery_id,
        webhook_id: sent.webhook_id,
        study_id: sent.study_id,
        upload_id: sent.upload_id,
        latency_ms: outcome.latency.as_secs_f64() * 1000.0,
    })
}

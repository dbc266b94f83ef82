//! The dashboard's one error type: a clear message for bad input, a generic one for
//! internal faults (the detail goes to the log), always as `{"error": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub(super) fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub(super) fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, message)
    }
    /// An internal fault: logged whole, answered with a generic message.
    pub(super) fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("dashboard request failed: {e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error (see the cpwatch log)")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // A value the store refuses to keep is the request's fault, and says why.
            StoreError::Invalid(message) => ApiError::bad_request(message),
            e => ApiError::internal(e),
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::internal(StoreError::from(e))
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: &self.message })).into_response()
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

pub(super) fn ok(value: impl Serialize) -> ApiResult {
    Ok(Json(value).into_response())
}

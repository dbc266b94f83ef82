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
    /// A refused file's problems by line, so that a page can list them beside the form.
    problems: Vec<LineProblem>,
    /// Problems not listed.
    more: usize,
}

/// One problem of a refused file, at its 1-based line.
#[derive(Debug, Serialize)]
pub struct LineProblem {
    pub line: usize,
    pub message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), problems: Vec::new(), more: 0 }
    }
    /// A 400 for a file, with each problem by line.
    pub(super) fn bad_file(message: impl Into<String>, problems: Vec<LineProblem>, more: usize) -> Self {
        ApiError { problems, more, ..ApiError::bad_request(message) }
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
    #[serde(skip_serializing_if = "<[LineProblem]>::is_empty")]
    problems: &'a [LineProblem],
    #[serde(skip_serializing_if = "is_zero")]
    more: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: &self.message, problems: &self.problems, more: self.more };
        (self.status, Json(body)).into_response()
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

pub(super) fn ok(value: impl Serialize) -> ApiResult {
    Ok(Json(value).into_response())
}

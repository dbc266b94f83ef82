//! The static UI from `ui/`, embedded at build time (see `build.rs`).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse as _, Response};

use super::error::ApiError;

mod ui {
    include!(concat!(env!("OUT_DIR"), "/ui_files.rs"));
}

/// One of the UI's files, by its path under `ui/`.
pub(super) fn asset(path: &str) -> Response {
    let path = path.trim_start_matches('/');
    let Some((_, bytes)) = ui::UI_FILES.iter().find(|(name, _)| *name == path) else {
        return ApiError::new(StatusCode::NOT_FOUND, "not found").into_response();
    };
    let content_type = match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "webmanifest" => "application/json",
        _ => "application/octet-stream",
    };
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], *bytes).into_response()
}

//! `GET /api/uploads` (a page of the filtered view), `/api/uploads/{study}/{upload}`
//! (one upload with its timeline) and `/api/export` (the whole filtered view as a file).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::IntoResponse as _;
use axum::routing::get;
use axum::Router;
use chrono::{Duration, Local, Utc};
use serde::Serialize;

use super::{db, non_empty, FilterParams};
use crate::dashboard::error::{ok, ApiError, ApiResult};
use crate::dashboard::DashboardState;
use crate::export::{self, Format};
use crate::store::deliveries::{self, DeliveryDetail};
use crate::store::uploads::{self, UploadQuery, UploadRow};
use crate::store::{settings, studies};

pub(super) fn routes() -> Router<DashboardState> {
    Router::new()
        .route("/uploads", get(list))
        .route("/uploads/{study}/{upload}", get(detail))
        .route("/export", get(export))
}

impl FilterParams {
    /// The uploads query these parameters ask for, from the first page.
    fn upload_query(&self, limit: u32) -> Result<UploadQuery, ApiError> {
        Ok(UploadQuery {
            filter: self.filter()?,
            search: non_empty(&self.q),
            stalled_before: None,
            cursor: non_empty(&self.cursor),
            limit,
        })
    }
}

/// With `stalled`, only uploads started longer ago than the stalled threshold.
fn stalled_before(conn: &rusqlite::Connection, q: &mut UploadQuery) -> Result<(), ApiError> {
    let prefs = settings::preferences(conn)?;
    q.stalled_before = Some(Utc::now() - Duration::minutes(prefs.stalled_after_minutes.into()));
    Ok(())
}

async fn list(State(state): State<DashboardState>, Query(params): Query<FilterParams>) -> ApiResult {
    let mut q = params.upload_query(params.limit())?;
    let stalled = params.stalled.unwrap_or(false);
    db(&state, move |conn| {
        if stalled {
            stalled_before(conn, &mut q)?;
        }
        Ok(uploads::page(conn, &q)?)
    })
    .await
    .and_then(ok)
}

#[derive(Serialize)]
struct UploadDetail {
    upload: UploadRow,
    study_label: Option<String>,
    timeline: Vec<DeliveryDetail>,
}

async fn detail(
    State(state): State<DashboardState>,
    Path((study, upload)): Path<(String, String)>,
) -> ApiResult {
    db(&state, move |conn| {
        let row = uploads::get(conn, &study, &upload)?
            .ok_or_else(|| ApiError::not_found(format!("no upload {upload} in study {study}")))?;
        let timeline = deliveries::timeline(conn, &study, &upload)?
            .into_iter()
            .filter_map(|d| deliveries::get(conn, &d.seq.to_string()).transpose())
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(UploadDetail { upload: row, study_label: studies::label(conn, &study)?, timeline })
    })
    .await
    .and_then(ok)
}

async fn export(State(state): State<DashboardState>, Query(params): Query<FilterParams>) -> ApiResult {
    let format = match params.format.as_deref().unwrap_or("csv") {
        "csv" => Format::Csv,
        "json" => Format::Json,
        other => return Err(ApiError::bad_request(format!("unknown format {other:?}: use csv or json"))),
    };
    let mut q = UploadQuery { cursor: None, ..params.upload_query(500)? };
    let study = q.filter.study.clone();
    let stalled = params.stalled.unwrap_or(false);
    let bytes = db(&state, move |conn| {
        if stalled {
            stalled_before(conn, &mut q)?;
        }
        // Exactly the rows of the filtered view, every page of them.
        let mut rows = Vec::new();
        loop {
            let page = uploads::page(conn, &q)?;
            rows.extend(page.items);
            match page.next_cursor {
                Some(next) => q.cursor = Some(next),
                None => break,
            }
        }
        let mut out = Vec::new();
        export::write(&mut out, &rows, format).map_err(ApiError::internal)?;
        Ok(out)
    })
    .await?;
    let name = export::file_name(study.as_deref(), format, Local::now().date_naive());
    let disposition = format!("attachment; filename=\"{name}\"");
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok((headers, bytes).into_response())
}

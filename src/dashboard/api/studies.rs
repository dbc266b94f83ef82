//! `GET /api/studies`, `PUT /api/studies/{study}` (its name), and a study's subjects:
//! `/api/studies/{study}/subjects` and one subject's uploads and events.

use axum::extract::{Path, Query, State};
use axum::routing::{get, put};
use axum::Json;
use axum::Router;
use serde::{Deserialize, Serialize};

use super::{db, non_empty, FilterParams};
use crate::dashboard::error::{ok, ApiError, ApiResult};
use crate::dashboard::DashboardState;
use crate::store::listing::Page;
use crate::store::subjects::{self, SubjectEvent, SubjectRow};
use crate::store::uploads::{self, UploadQuery, UploadRow};
use crate::store::{studies, Filter};

pub(super) fn routes() -> Router<DashboardState> {
    Router::new()
        .route("/studies", get(list))
        .route("/studies/{study}", put(name))
        .route("/studies/{study}/subjects", get(subjects))
        .route("/studies/{study}/subjects/{subject}", get(subject))
}

async fn list(State(state): State<DashboardState>) -> ApiResult {
    db(&state, |conn| Ok(studies::list(conn)?)).await.and_then(ok)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StudyName {
    label: Option<String>,
}

#[derive(Serialize)]
struct Named {
    study_id: String,
    label: Option<String>,
}

async fn name(
    State(state): State<DashboardState>,
    Path(study): Path<String>,
    Json(body): Json<StudyName>,
) -> ApiResult {
    let label = body.label.map(|l| l.trim().to_string()).filter(|l| !l.is_empty());
    if label.as_ref().is_some_and(|l| l.chars().count() > 100) {
        return Err(ApiError::bad_request("a study name has at most 100 characters"));
    }
    if study.trim().is_empty() || study.len() > 128 {
        return Err(ApiError::bad_request("not a study id"));
    }
    db(&state, move |conn| {
        studies::set_label(conn, &study, label.as_deref())?;
        Ok(Named { study_id: study, label })
    })
    .await
    .and_then(ok)
}

#[derive(Serialize)]
struct Subjects {
    study_id: String,
    study_label: Option<String>,
    subjects: Vec<SubjectRow>,
    next_cursor: Option<String>,
}

async fn subjects(
    State(state): State<DashboardState>,
    Path(study): Path<String>,
    Query(params): Query<FilterParams>,
) -> ApiResult {
    let cursor = non_empty(&params.cursor);
    let limit = params.limit.unwrap_or(200).clamp(1, 1000);
    db(&state, move |conn| {
        let study_label = studies::label(conn, &study)?;
        let page = subjects::page(conn, &study, cursor.as_deref(), limit)?;
        Ok(Subjects { study_id: study, study_label, subjects: page.items, next_cursor: page.next_cursor })
    })
    .await
    .and_then(ok)
}

#[derive(Serialize)]
struct Subject {
    study_id: String,
    study_label: Option<String>,
    subject_id: String,
    uploads: Page<UploadRow>,
    events: Vec<SubjectEvent>,
}

async fn subject(
    State(state): State<DashboardState>,
    Path((study, subject)): Path<(String, String)>,
) -> ApiResult {
    db(&state, move |conn| {
        let filter =
            Filter { study: Some(study.clone()), subject: Some(subject.clone()), ..Default::default() };
        let uploads = uploads::page(conn, &UploadQuery { filter, limit: 100, ..Default::default() })?;
        let events = subjects::events(conn, &study, &subject, 200)?;
        let study_label = studies::label(conn, &study)?;
        Ok(Subject { study_id: study, study_label, subject_id: subject, uploads, events })
    })
    .await
    .and_then(ok)
}

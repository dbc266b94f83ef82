//! `GET /api/studies`, `PUT /api/studies/{study}` (its name and its compliance
//! protocol), `GET /api/studies/{study}/compliance`, its roster (`GET` and `POST`
//! `/api/studies/{study}/roster`), and a study's subjects:
//! `/api/studies/{study}/subjects` and one subject's uploads, events and days.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::Json;
use axum::Router;
use serde::{Deserialize, Serialize};

use super::{db, non_empty, FilterParams};
use crate::dashboard::error::{ok, ApiError, ApiResult, LineProblem};
use crate::dashboard::DashboardState;
use crate::store::compliance as store_compliance;
use crate::store::compliance::DayActivity;
use crate::store::listing::Page;
use crate::store::protocols::{self, Protocol, ProtocolChange};
use crate::store::roster::{self, RosterRow};
use crate::store::subjects::{self, SubjectEvent, SubjectRow};
use crate::store::uploads::{self, UploadQuery, UploadRow};
use crate::store::{studies, Filter};

pub(super) fn routes() -> Router<DashboardState> {
    Router::new()
        .route("/studies", get(list))
        .route("/studies/{study}", put(name))
        .route("/studies/{study}/compliance", get(compliance))
        .route(
            "/studies/{study}/roster",
            get(roster_list).post(roster_import).layer(DefaultBodyLimit::max(MAX_ROSTER_BYTES)),
        )
        .route("/studies/{study}/subjects", get(subjects))
        .route("/studies/{study}/subjects/{subject}", get(subject))
}

async fn list(State(state): State<DashboardState>) -> ApiResult {
    db(&state, |conn| Ok(studies::list(conn)?)).await.and_then(ok)
}

/// What a PUT changes: each field given; a field left out keeps its value. `label: null`
/// clears the name; the dates take `null` to clear them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StudyUpdate {
    #[serde(default, deserialize_with = "given")]
    label: Option<Option<String>>,
    valid_day_minutes: Option<u32>,
    valid_days_per_week: Option<u32>,
    weekend_day_required: Option<bool>,
    silent_after_days: Option<u32>,
    #[serde(default, deserialize_with = "given")]
    monitoring_from: Option<Option<chrono::NaiveDate>>,
    #[serde(default, deserialize_with = "given")]
    monitoring_until: Option<Option<chrono::NaiveDate>>,
}

/// A field that is there, `null` or not: `Some(None)` for `null`, `None` when left out.
fn given<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Serialize)]
struct Updated {
    study_id: String,
    label: Option<String>,
    protocol: Protocol,
}

async fn name(
    State(state): State<DashboardState>,
    Path(study): Path<String>,
    Json(body): Json<StudyUpdate>,
) -> ApiResult {
    let label = body.label.clone().map(|l| l.map(|l| l.trim().to_string()).filter(|l| !l.is_empty()));
    if label.as_ref().and_then(Option::as_ref).is_some_and(|l| l.chars().count() > 100) {
        return Err(ApiError::bad_request("a study name has at most 100 characters"));
    }
    if study.trim().is_empty() || study.len() > 128 {
        return Err(ApiError::bad_request("not a study id"));
    }
    db(&state, move |conn| {
        let tx = crate::store::immediate(conn)?;
        let change = ProtocolChange {
            valid_day_minutes: body.valid_day_minutes,
            valid_days_per_week: body.valid_days_per_week,
            weekend_day_required: body.weekend_day_required,
            silent_after_days: body.silent_after_days,
            monitoring_from: body.monitoring_from,
            monitoring_until: body.monitoring_until,
        };
        let p = protocols::change(&tx, &study, &change, chrono::Utc::now())?;
        if let Some(label) = &label {
            studies::set_label(&tx, &study, label.as_deref())?;
        }
        let label = studies::label(&tx, &study)?;
        tx.commit()?;
        Ok(Updated { study_id: study, label, protocol: p })
    })
    .await
    .and_then(ok)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComplianceParams {
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
}

/// One subject-day for the day-by-day columns.
#[derive(Serialize)]
struct Day {
    #[serde(serialize_with = "iso_day")]
    day: chrono::NaiveDate,
    wear_minutes: Option<f64>,
    valid: bool,
    /// Uploads of the subject received that day (the researcher's local day).
    uploads: u32,
}

impl Day {
    fn new(day: chrono::NaiveDate, activity: DayActivity, threshold: f64) -> Day {
        let DayActivity { wear_minutes, uploads } = activity;
        Day { day, wear_minutes, valid: wear_minutes.is_some_and(|w| w >= threshold), uploads }
    }
}

#[derive(Serialize)]
struct SubjectDays {
    #[serde(flatten)]
    compliance: crate::compliance::SubjectCompliance,
    /// Whether a delivery has named the subject (a roster member may not have synced yet).
    seen: bool,
    /// The roster's enrolment window, when it gives one.
    enrolled_on: Option<chrono::NaiveDate>,
    expected_until: Option<chrono::NaiveDate>,
    /// With `from` and `to`: the subject's days in that range that have statistics or uploads.
    #[serde(skip_serializing_if = "Option::is_none")]
    days: Option<Vec<Day>>,
}

/// The study's compliance as `crate::compliance::StudyCompliance` has it, each subject
/// with its days when a range is asked for.
#[derive(Serialize)]
struct Compliance {
    study_id: String,
    protocol: Protocol,
    today: chrono::NaiveDate,
    week_start: chrono::NaiveDate,
    silent: usize,
    below_target: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<chrono::NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<chrono::NaiveDate>,
    subjects: Vec<SubjectDays>,
}

/// A day as chrono's `Serialize` writes it (`2026-11-05`), but without a formatter per
/// date: the columns of thousands of subjects are hundreds of thousands of dates.
fn iso_day<S: serde::Serializer>(day: &chrono::NaiveDate, serializer: S) -> Result<S::Ok, S::Error> {
    use chrono::Datelike as _;
    let Ok(year) = u32::try_from(day.year()) else { return day.serialize(serializer) };
    if year > 9999 {
        return day.serialize(serializer);
    }
    let mut text = *b"0000-00-00";
    for (at, value, width) in [(0, year, 4), (5, day.month(), 2), (8, day.day(), 2)] {
        let mut value = value;
        for i in (at..at + width).rev() {
            text[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    serializer.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
}

/// Longest range of day-by-day columns one request gives.
const MAX_DAYS: i64 = 366;

/// Who is silent and whose days count, as of today (the local date); with `from` and `to`
/// (`YYYY-MM-DD`, at most a year), each subject's days in that range too.
async fn compliance(
    State(state): State<DashboardState>,
    Path(study): Path<String>,
    Query(params): Query<ComplianceParams>,
) -> ApiResult {
    let range = match (params.from, params.to) {
        (None, None) => None,
        (Some(from), Some(to)) if to < from => return Err(ApiError::bad_request("`to` is before `from`")),
        (Some(from), Some(to)) if (to - from).num_days() >= MAX_DAYS => {
            return Err(ApiError::bad_request("at most 366 days at once"))
        }
        (Some(from), Some(to)) => Some((from, to)),
        _ => return Err(ApiError::bad_request("give both `from` and `to` (YYYY-MM-DD), or neither")),
    };
    db(&state, move |conn| {
        let today = chrono::Local::now().date_naive();
        let protocol = protocols::protocol(conn, &study)?;
        let inputs = store_compliance::inputs(conn, &study, today)?;
        let result = crate::compliance::study(&study, &protocol, &inputs, today, chrono::Utc::now());
        let mut by_subject = match range {
            Some((from, to)) => store_compliance::days(conn, &study, from, to)?,
            None => Default::default(),
        };
        let mut on_roster: HashMap<String, RosterRow> =
            roster::list(conn, &study)?.into_iter().map(|r| (r.entry.subject_id.clone(), r)).collect();
        let threshold = f64::from(protocol.valid_day_minutes);
        let subjects = result
            .subjects
            .into_iter()
            .map(|compliance| {
                let days = range.map(|_| {
                    let days = by_subject.remove(&compliance.subject_id).unwrap_or_default();
                    days.into_iter().map(|(day, activity)| Day::new(day, activity, threshold)).collect()
                });
                // Every subject not on the roster comes from the subjects seen in deliveries.
                let entry = on_roster.remove(&compliance.subject_id);
                SubjectDays {
                    seen: entry.as_ref().is_none_or(|r| r.seen),
                    enrolled_on: entry.as_ref().and_then(|r| r.entry.enrolled_on),
                    expected_until: entry.as_ref().and_then(|r| r.entry.expected_until),
                    compliance,
                    days,
                }
            })
            .collect();
        Ok(Compliance {
            study_id: result.study_id,
            protocol: result.protocol,
            today: result.today,
            week_start: result.week_start,
            silent: result.silent,
            below_target: result.below_target,
            from: range.map(|r| r.0),
            to: range.map(|r| r.1),
            subjects,
        })
    })
    .await
    .and_then(ok)
}

/// The largest roster file the dashboard takes: far more than any study's subjects.
const MAX_ROSTER_BYTES: usize = 5 * 1024 * 1024;

fn roster_study(study: &str) -> Result<String, ApiError> {
    let study = study.trim();
    if !roster::is_plausible_id(study) {
        return Err(ApiError::bad_request("not a study id"));
    }
    Ok(study.to_string())
}

#[derive(Serialize)]
struct Roster {
    study_id: String,
    roster: Vec<RosterRow>,
    /// Subjects seen in deliveries that are not on the roster.
    unlisted: Vec<String>,
}

async fn roster_list(State(state): State<DashboardState>, Path(study): Path<String>) -> ApiResult {
    let study = roster_study(&study)?;
    db(&state, move |conn| {
        let roster = roster::list(conn, &study)?;
        let unlisted = roster::unlisted(conn, &study)?;
        Ok(Roster { study_id: study, roster, unlisted })
    })
    .await
    .and_then(ok)
}

#[derive(Serialize)]
struct Imported {
    study_id: String,
    #[serde(flatten)]
    summary: roster::ImportSummary,
}

/// Replaces the study's roster with the CSV file sent as the body, whole or not at all:
/// a file with any bad row is a 400 listing every problem by line.
async fn roster_import(
    State(state): State<DashboardState>,
    Path(study): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let study = roster_study(&study)?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a roster file is at most {} MiB", MAX_ROSTER_BYTES / (1024 * 1024)),
        ),
        _ => ApiError::bad_request(format!("the roster file could not be read: {e}")),
    })?;
    let entries = roster::parse_csv(&body).map_err(|e| {
        let problems = e.problems.iter().map(|p| LineProblem { line: p.line, message: p.message.clone() });
        ApiError::bad_file(
            format!("the roster was not imported, nothing changed: {e}"),
            problems.collect(),
            e.more,
        )
    })?;
    db(&state, move |conn| {
        let summary = roster::import(conn, &study, &entries, chrono::Utc::now())?;
        Ok(Imported { study_id: study, summary })
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
    wear: WearDays,
}

/// A subject's last complete days, one entry each, against the study's threshold.
#[derive(Serialize)]
struct WearDays {
    valid_day_minutes: u32,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    /// The most recent day first.
    days: Vec<Day>,
}

/// The complete days of the subject's wear table: yesterday and the 27 before it.
const WEAR_DAYS: i64 = 28;

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
        let protocol = protocols::protocol(conn, &study)?;
        let to = chrono::Local::now().date_naive() - chrono::Duration::days(1);
        let from = to - chrono::Duration::days(WEAR_DAYS - 1);
        let mut by_day = subjects::days(conn, &study, &subject, from, to)?;
        let threshold = f64::from(protocol.valid_day_minutes);
        let mut days: Vec<Day> = from
            .iter_days()
            .take_while(|d| *d <= to)
            .map(|d| Day::new(d, by_day.remove(&d).unwrap_or_default(), threshold))
            .collect();
        days.reverse();
        let wear = WearDays { valid_day_minutes: protocol.valid_day_minutes, from, to, days };
        Ok(Subject { study_id: study, study_label, subject_id: subject, uploads, events, wear })
    })
    .await
    .and_then(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_day_is_written_as_chrono_writes_it() {
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).expect("a date");
        let mut d = day(2024, 12, 25);
        let mut dates =
            vec![day(0, 1, 1), day(9, 9, 9), day(999, 12, 31), day(9999, 12, 31), day(10000, 1, 1)];
        dates.push(day(-1, 6, 15));
        for _ in 0..800 {
            dates.push(d);
            d = d.succ_opt().expect("a next day");
        }
        for d in dates {
            let ours = serde_json::to_string(&Day { day: d, wear_minutes: None, valid: false, uploads: 0 })
                .expect("json");
            let chrono = format!(
                r#"{{"day":{},"wear_minutes":null,"valid":false,"uploads":0}}"#,
                serde_json::to_string(&d).expect("json")
            );
            assert_eq!(ours, chrono, "{d:?}");
        }
    }
}

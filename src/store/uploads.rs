//! Uploads: one row per (study, upload), its state folded from its deliveries by the
//! writer; read one, list them, a page at a time.

use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension as _, Row};
use serde::Serialize;
use serde_json::json;

use super::listing::{like_escape, where_clause, Filter, Page};
use super::{from_ms, to_ms};
use crate::event::upload::UploadState;
use crate::event::UploadStatus;

/// Uploads counted by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    pub started: i64,
    pub completed: i64,
    pub error: i64,
}

impl StatusCounts {
    pub(super) fn add(&mut self, status: &str, n: i64) {
        match status {
            "started" => self.started += n,
            "completed" => self.completed += n,
            "error" => self.error += n,
            _ => {}
        }
    }
}

/// One upload as listed and exported.
#[derive(Debug, Clone, Serialize)]
pub struct UploadRow {
    pub study_id: String,
    pub upload_id: String,
    #[serde(flatten)]
    pub state: UploadState,
    pub duration_seconds: Option<i64>,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deliveries: i64,
}

pub(super) const UPLOAD_COLUMNS: &str =
    "subject_id, status, started_at, completed_at, failed_at, error_message,
    first_epoch_utc, last_epoch_utc, first_epoch_subject_tz, last_epoch_subject_tz,
    study_id, upload_id, first_seen_at, updated_at, deliveries";

fn upload_state_from(row: &Row<'_>) -> rusqlite::Result<UploadState> {
    let ms = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        Ok(row.get::<_, Option<i64>>(i)?.map(from_ms))
    };
    let local = |i: usize| -> rusqlite::Result<Option<NaiveDateTime>> {
        Ok(row
            .get::<_, Option<String>>(i)?
            .and_then(|s| NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S").ok()))
    };
    let status: String = row.get(1)?;
    Ok(UploadState {
        subject_id: row.get(0)?,
        status: UploadStatus::parse(&status).unwrap_or(UploadStatus::Started),
        started_at: ms(2)?,
        completed_at: ms(3)?,
        failed_at: ms(4)?,
        error_message: row.get(5)?,
        first_epoch_utc: ms(6)?,
        last_epoch_utc: ms(7)?,
        first_epoch_subject_tz: local(8)?,
        last_epoch_subject_tz: local(9)?,
    })
}

pub(super) fn upload_row_from(row: &Row<'_>) -> rusqlite::Result<UploadRow> {
    let state = upload_state_from(row)?;
    Ok(UploadRow {
        study_id: row.get(10)?,
        upload_id: row.get(11)?,
        duration_seconds: state.duration().map(|d| d.num_seconds()),
        state,
        first_seen_at: from_ms(row.get(12)?),
        updated_at: from_ms(row.get(13)?),
        deliveries: row.get(14)?,
    })
}

/// The stored state of one upload, if known.
pub fn state(conn: &Connection, study: &str, upload: &str) -> rusqlite::Result<Option<UploadState>> {
    conn.query_row(
        &format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE study_id = ?1 AND upload_id = ?2"),
        params![study, upload],
        upload_state_from,
    )
    .optional()
}

/// The stored state of one upload and the local day it was first seen (its per-day
/// counts' day), in one read: the writer asks this for every upload delivery.
pub(super) fn state_and_first_day(
    conn: &Connection,
    study: &str,
    upload: &str,
) -> rusqlite::Result<Option<(UploadState, String)>> {
    conn.prepare_cached(&format!(
        "SELECT {UPLOAD_COLUMNS}, first_seen_day FROM uploads WHERE study_id = ?1 AND upload_id = ?2"
    ))?
    .query_row(params![study, upload], |row| Ok((upload_state_from(row)?, row.get(15)?)))
    .optional()
}

pub fn get(conn: &Connection, study: &str, upload: &str) -> rusqlite::Result<Option<UploadRow>> {
    conn.query_row(
        &format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE study_id = ?1 AND upload_id = ?2"),
        params![study, upload],
        upload_row_from,
    )
    .optional()
}

fn select_sql(terms: &[String]) -> String {
    format!(
        "SELECT {UPLOAD_COLUMNS} FROM uploads {} ORDER BY updated_at DESC, study_id DESC, upload_id DESC LIMIT ?",
        where_clause(terms)
    )
}

/// Uploads matching `terms`, in the one order every listing of uploads uses: most
/// recently changed first, ties by study, then by upload (the order of the
/// `(updated_at, study_id, upload_id)` index, which the pages' cursor walks).
fn select(
    conn: &Connection,
    terms: &[String],
    mut values: Vec<SqlValue>,
    limit: i64,
) -> rusqlite::Result<Vec<UploadRow>> {
    values.push(SqlValue::Integer(limit));
    let mut stmt = conn.prepare(&select_sql(terms))?;
    let rows = stmt.query_map(params_from_iter(values), upload_row_from)?;
    rows.collect()
}

/// The filter's terms for uploads. A subject named without its study is looked up in
/// each study's `(study_id, subject_id, updated_at)` index: no index starts with the
/// subject alone (migration 5).
fn filter_terms(filter: &Filter) -> (Vec<String>, Vec<SqlValue>) {
    let (mut terms, values) = filter.terms("updated_at", false);
    if filter.subject.is_some() && filter.study.is_none() {
        terms.push(ANY_STUDY.into());
    }
    (terms, values)
}

/// Every study, so that a lookup by upload or subject id walks the indexes that start
/// with the study.
const ANY_STUDY: &str = "study_id IN (SELECT study_id FROM studies)";

/// Uploads, most recently changed first, up to the filter's limit (all without one).
pub fn list(conn: &Connection, filter: &Filter) -> rusqlite::Result<Vec<UploadRow>> {
    let (terms, values) = filter_terms(filter);
    select(conn, &terms, values, filter.limit())
}

/// Where the previous page of uploads ended.
fn upload_cursor(row: &UploadRow) -> String {
    json!([to_ms(row.updated_at), row.study_id, row.upload_id]).to_string()
}

fn parse_upload_cursor(cursor: &str) -> Option<(i64, String, String)> {
    serde_json::from_str(cursor).ok()
}

/// Filters for the uploads page: the shared filter, free-text search and the cursor.
#[derive(Debug, Clone, Default)]
pub struct UploadQuery {
    pub filter: Filter,
    /// Matches an upload id or subject id exactly, or part of a failed upload's error message.
    pub search: Option<String>,
    /// Only uploads still `started` that started before this time (stalled).
    pub stalled_before: Option<DateTime<Utc>>,
    pub cursor: Option<String>,
    pub limit: u32,
}

/// Uploads, most recently changed first, one page at a time.
pub fn page(conn: &Connection, q: &UploadQuery) -> rusqlite::Result<Page<UploadRow>> {
    let (terms, values) = page_terms(q);
    let limit = q.limit.clamp(1, 500);
    let items = select(conn, &terms, values, i64::from(limit) + 1)?;
    Ok(Page::from_rows(items, limit, upload_cursor))
}

fn page_terms(q: &UploadQuery) -> (Vec<String>, Vec<SqlValue>) {
    let (mut terms, mut values) = filter_terms(&q.filter);
    if let Some(search) = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        // Three indexed lookups rather than one condition tested on every row.
        terms.push(format!(
            "rowid IN (SELECT rowid FROM uploads WHERE {ANY_STUDY} AND upload_id = ?
                       UNION SELECT rowid FROM uploads WHERE {ANY_STUDY} AND subject_id = ?
                       UNION SELECT rowid FROM uploads WHERE status = 'error' AND error_message LIKE ? ESCAPE '\\')"
        ));
        values.push(SqlValue::Text(search.to_string()));
        values.push(SqlValue::Text(search.to_string()));
        values.push(SqlValue::Text(format!("%{}%", like_escape(search))));
    }
    if let Some(before) = q.stalled_before {
        terms.push("status = 'started' AND started_at < ?".into());
        values.push(SqlValue::Integer(to_ms(before)));
    }
    if let Some((at, study, upload)) = q.cursor.as_deref().and_then(parse_upload_cursor) {
        // A row value, so that SQLite walks the (updated_at, study_id, upload_id) index.
        terms.push("(updated_at, study_id, upload_id) < (?, ?, ?)".into());
        values.extend([SqlValue::Integer(at), SqlValue::Text(study), SqlValue::Text(upload)]);
    }
    (terms, values)
}

/// How many uploads failed after `t`.
pub fn failed_since(conn: &Connection, t: DateTime<Utc>) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM uploads WHERE status = 'error' AND failed_at > ?1",
        [to_ms(t)],
        |row| row.get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What SQLite's planner does for each table it reads, as `EXPLAIN QUERY PLAN` says.
    fn plan(conn: &Connection, terms: &[String], mut values: Vec<SqlValue>) -> Vec<String> {
        values.push(SqlValue::Integer(50));
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {}", select_sql(terms))).expect("explain");
        let rows = stmt.query_map(params_from_iter(values), |row| row.get::<_, String>(3)).expect("plan");
        rows.collect::<Result<_, _>>().expect("plan rows")
    }

    #[test]
    fn an_upload_or_subject_searched_across_studies_is_looked_up_not_scanned() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = super::super::prepare_data_dir(dir.path()).expect("data dir");
        let conn = super::super::open(&path).expect("open");
        let subject_only = Filter { subject: Some("44732".into()), ..Default::default() };
        let searched = UploadQuery { search: Some("44732".into()), limit: 50, ..Default::default() };
        let cases = [
            ("a subject without its study", filter_terms(&subject_only)),
            ("a search", page_terms(&searched)),
        ];
        for (what, (terms, values)) in cases {
            let plan = plan(&conn, &terms, values);
            assert!(
                plan.iter().all(|step| !step.starts_with("SCAN uploads")),
                "{what} reads every upload: {plan:#?}"
            );
            assert!(plan.iter().any(|step| step.starts_with("SEARCH uploads USING")), "{what}: {plan:#?}");
        }
    }
}

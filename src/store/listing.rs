//! What every listing shares: the filter the command line and the dashboard offer, and
//! pages of results (keyset pagination, so page 1000 costs what page 1 costs).

use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use serde::Serialize;

use super::to_ms;

/// Filters shared by the upload and delivery listings. Empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub study: Option<String>,
    pub subject: Option<String>,
    pub status: Option<String>,
    pub event: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
}

impl Filter {
    /// The filter's SQL conditions (to be joined with AND) and their parameters.
    pub(super) fn terms(&self, time_column: &str, with_event: bool) -> (Vec<String>, Vec<SqlValue>) {
        let mut terms = Vec::new();
        let mut values = Vec::new();
        let mut add = |term: String, value: SqlValue| {
            terms.push(term);
            values.push(value);
        };
        if let Some(study) = &self.study {
            add("study_id = ?".into(), SqlValue::Text(study.clone()));
        }
        if let Some(subject) = &self.subject {
            add("subject_id = ?".into(), SqlValue::Text(subject.clone()));
        }
        if let Some(status) = &self.status {
            add("status = ?".into(), SqlValue::Text(status.to_ascii_lowercase()));
        }
        if let (true, Some(event)) = (with_event, &self.event) {
            add("event = ?".into(), SqlValue::Text(event.clone()));
        }
        if let Some(since) = self.since {
            add(format!("{time_column} >= ?"), SqlValue::Integer(to_ms(since)));
        }
        if let Some(until) = self.until {
            add(format!("{time_column} < ?"), SqlValue::Integer(to_ms(until)));
        }
        (terms, values)
    }

    pub(super) fn limit(&self) -> i64 {
        self.limit.map_or(-1, i64::from)
    }
}

/// `WHERE a AND b ...`, or nothing for no conditions.
pub(super) fn where_clause(terms: &[String]) -> String {
    if terms.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", terms.join(" AND "))
    }
}

/// A page of a listing, with the cursor of the next page if there is one.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` rows: the extra row, if fetched, only says there is
    /// a next page, which starts after the page's last row.
    pub(super) fn from_rows(mut items: Vec<T>, limit: u32, cursor: impl Fn(&T) -> String) -> Self {
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_cursor = if more { items.last().map(cursor) } else { None };
        Page { items, next_cursor }
    }
}

pub(super) fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

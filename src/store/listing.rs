//! What every listing shares: the filter the command line and the dashboard offer, and
//! pages of results (keyset pagination, so page 1000 costs what page 1 costs).

use chrono::{DateTime, Duration, Local, NaiveDate, NaiveTime, TimeZone, Utc};
use rusqlite::types::Value as SqlValue;
use serde::Serialize;

use super::to_ms;
use crate::event;

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

/// Which end of a time range a bound is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// From this time on (inclusive).
    Since,
    /// Before this time.
    Until,
}

/// A time bound that is none of the forms [`parse_bound`] reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a time: use a date (2026-11-01), an RFC 3339 time, or a span back from now (30m, 24h, 7d)"
)]
pub struct BoundError(String);

/// How every listing reads a time bound a person typed (`--since`/`--until` on the
/// command line, `since`/`until` in the dashboard's API), in the local time zone:
/// - a date (`2026-11-01`) is a local day: `Since` from its start, `Until` through its end;
/// - an RFC 3339 time (or a zone-less one, read as UTC) is that instant;
/// - a span (`90s`, `30m`, `24h`, `7d`) is that long before `now`.
pub fn parse_bound(text: &str, bound: Bound, now: DateTime<Utc>) -> Result<DateTime<Utc>, BoundError> {
    parse_bound_in(text, bound, now, &Local)
}

fn parse_bound_in<Tz: TimeZone>(
    text: &str,
    bound: Bound,
    now: DateTime<Utc>,
    zone: &Tz,
) -> Result<DateTime<Utc>, BoundError> {
    let text = text.trim();
    let invalid = || BoundError(text.to_string());
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = match bound {
            Bound::Since => date,
            Bound::Until => date.succ_opt().ok_or_else(invalid)?,
        };
        // `earliest`: a day that starts in a DST gap starts at the first time that exists.
        return day
            .and_time(NaiveTime::MIN)
            .and_local_timezone(zone.clone())
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(invalid);
    }
    if let Some(t) = event::parse_utc(text) {
        return Ok(t);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().map_err(|_| invalid())?;
    let span = match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        _ => None,
    };
    span.and_then(|span| now.checked_sub_signed(span)).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).expect("a test time")
    }

    #[test]
    fn a_date_is_a_local_day_from_its_start_through_its_end() {
        let now = at("2026-11-20T12:00:00Z");
        let berlin = FixedOffset::east_opt(3600).expect("an offset");
        let since = parse_bound_in("2026-11-01", Bound::Since, now, &berlin);
        let until = parse_bound_in("2026-11-01", Bound::Until, now, &berlin);
        assert_eq!(since, Ok(at("2026-10-31T23:00:00Z")), "since a date: from local midnight");
        assert_eq!(until, Ok(at("2026-11-01T23:00:00Z")), "until a date: through that local day");
    }

    #[test]
    fn a_time_is_that_instant_and_a_span_counts_back_from_now() {
        let now = at("2026-11-20T12:00:00Z");
        let utc = Utc;
        for bound in [Bound::Since, Bound::Until] {
            let exact = parse_bound_in("2026-11-01T10:00:00+02:00", bound, now, &utc);
            assert_eq!(exact, Ok(at("2026-11-01T08:00:00Z")), "an RFC 3339 time is exact");
            assert_eq!(parse_bound_in("24h", bound, now, &utc), Ok(at("2026-11-19T12:00:00Z")), "24h");
            assert_eq!(parse_bound_in("30m", bound, now, &utc), Ok(at("2026-11-20T11:30:00Z")), "30m");
            assert_eq!(parse_bound_in("7d", bound, now, &utc), Ok(at("2026-11-13T12:00:00Z")), "7d");
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_forms_it_takes() {
        let now = at("2026-11-20T12:00:00Z");
        for text in ["soon", "3w", "", "-5d", "2026-13-01", "99999999999999999999d"] {
            let error = parse_bound_in(text, Bound::Since, now, &Utc).expect_err(text);
            assert!(
                error.to_string().contains("2026-11-01"),
                "{text:?}: the message shows the forms: {error}"
            );
        }
    }
}

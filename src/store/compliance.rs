//! What the compliance rules read: a study's subjects (its roster and those seen in
//! deliveries), each one's last upload, and the subject-days' wear time of the last
//! weeks.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use rusqlite::Connection;

use super::from_ms;
use crate::compliance::{StudyNews, SubjectInput};

/// Complete days the rules look back over (yesterday and the 27 before it); the current
/// week's days before today are among them.
const DAYS_READ: i64 = 28;

fn date(text: Option<String>) -> Option<NaiveDate> {
    text.and_then(|t| parse_day(&t))
}

/// A `YYYY-MM-DD` date. The writer stores days in exactly that form, read here by hand
/// because chrono's format parser costs more than the query for each of the many
/// thousand subject-days a study's compliance reads; any other text goes to chrono.
fn parse_day(text: &str) -> Option<NaiveDate> {
    parse_day_bytes(text.as_bytes())
}

/// [`parse_day`] of a column's bytes, unchecked as UTF-8 unless they need chrono.
fn parse_day_bytes(b: &[u8]) -> Option<NaiveDate> {
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        let number = |digits: &[u8]| {
            digits.iter().try_fold(0u32, |n, c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
        };
        let parsed = match (number(&b[0..4]), number(&b[5..7]), number(&b[8..10])) {
            (Some(y), Some(m), Some(d)) => NaiveDate::from_ymd_opt(y as i32, m, d),
            _ => None,
        };
        if parsed.is_some() {
            return parsed;
        }
    }
    std::str::from_utf8(b).ok().and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
}

/// Column `i`'s text as bytes, borrowed from the row (no `String` per row).
fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r [u8]> {
    row.get_ref(i)?
        .as_bytes()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

/// The subject-days from a day up to one before another, read from the index
/// `subject_days_by_day` alone, in its order (no sort): day by day, each day's subjects
/// in order.
const RECENT_DAYS: &str = "SELECT subject_id, day, wear_minutes FROM subject_days
     WHERE study_id = ?1 AND day >= ?2 AND day < ?3 AND wear_minutes IS NOT NULL ORDER BY day, subject_id";

/// The position of `id` in `subjects` (sorted by id), looked for first at `next` and the
/// one after it: rows that come in subject order find theirs there.
/// Ids compare as bytes, which orders them as `str` does.
fn position(subjects: &[SubjectInput], next: usize, id: &[u8]) -> Option<usize> {
    let at = |i: usize| subjects.get(i).is_some_and(|s| s.subject_id.as_bytes() == id);
    if at(next) {
        Some(next)
    } else if at(next + 1) {
        Some(next + 1)
    } else {
        subjects.binary_search_by(|s| s.subject_id.as_bytes().cmp(id)).ok()
    }
}

/// Every subject of `study_id` with what the rules need, as of `today`.
pub fn inputs(conn: &Connection, study_id: &str, today: NaiveDate) -> rusqlite::Result<Vec<SubjectInput>> {
    let mut subjects: BTreeMap<String, SubjectInput> = BTreeMap::new();
    let mut seen = conn.prepare_cached(
        "SELECT subject_id, subject_identifier, last_upload_at FROM subjects WHERE study_id = ?1",
    )?;
    let rows = seen.query_map([study_id], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?, row.get::<_, Option<i64>>(2)?))
    })?;
    for row in rows {
        let (id, identifier, last) = row?;
        let s = subjects.entry(id.clone()).or_insert_with(|| SubjectInput::new(&id));
        s.label = identifier;
        s.last_upload_at = last.filter(|ms| *ms > 0).map(from_ms);
    }
    let mut roster = conn.prepare_cached(
        "SELECT subject_id, label, enrolled_on, expected_until FROM roster WHERE study_id = ?1",
    )?;
    let rows = roster.query_map([study_id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, Option<String>>(1)?,
            row.get::<_, Option<String>>(2)?,
            row.get::<_, Option<String>>(3)?,
        ))
    })?;
    for row in rows {
        let (id, label, enrolled, until) = row?;
        let s = subjects.entry(id.clone()).or_insert_with(|| SubjectInput::new(&id));
        s.on_roster = true;
        s.label = label.or(s.label.take());
        s.enrolled_on = date(enrolled);
        s.expected_until = date(until);
    }
    // Thousands of subjects with weeks of days each: the rows are matched to the sorted
    // subjects by position rather than by a map look-up each, and each subject's days are
    // collected in a vector first, so its map is built in one go (they come in day order).
    let mut subjects: Vec<SubjectInput> = subjects.into_values().collect();
    let mut wear: Vec<Vec<(NaiveDate, f64)>> = Vec::new();
    wear.resize_with(subjects.len(), || Vec::with_capacity(DAYS_READ as usize + 1));
    let first = (today - Duration::days(DAYS_READ)).format("%Y-%m-%d").to_string();
    let today = today.format("%Y-%m-%d").to_string();
    let mut days = conn.prepare_cached(RECENT_DAYS)?;
    let mut rows = days.query(rusqlite::params![study_id, first, today])?;
    let mut next = 0;
    while let Some(row) = rows.next()? {
        let Some(i) = position(&subjects, next, text(row, 0)?) else { continue };
        next = i + 1;
        if let Some(day) = parse_day_bytes(text(row, 1)?) {
            wear[i].push((day, row.get::<_, f64>(2)?));
        }
    }
    for (s, days) in subjects.iter_mut().zip(wear) {
        s.wear = days.into_iter().collect();
    }
    Ok(subjects)
}

/// Each study's news as of `today` and `now` (or only `only`'s): its compliance and
/// yesterday's uploads, for the digest and the notifications.
pub fn news(
    conn: &Connection,
    only: Option<&str>,
    today: NaiveDate,
    now: chrono::DateTime<chrono::Utc>,
) -> rusqlite::Result<Vec<StudyNews>> {
    let yesterday = today - Duration::days(1);
    let mut out = Vec::new();
    for study in super::studies::list(conn)? {
        if only.is_some_and(|id| id != study.study_id) {
            continue;
        }
        let subjects = inputs(conn, &study.study_id, today)?;
        let compliance = crate::compliance::study(&study.study_id, &study.protocol, &subjects, today, now);
        let (uploads_yesterday, failed_yesterday) = uploads_on(conn, &study.study_id, yesterday)?;
        let name = study.label.clone().unwrap_or_else(|| format!("Study {}", study.study_id));
        out.push(StudyNews { name, compliance, uploads_yesterday, failed_yesterday });
    }
    Ok(out)
}

/// Uploads first seen on `day` (a local day), and how many of them failed.
pub fn uploads_on(conn: &Connection, study_id: &str, day: NaiveDate) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT coalesce(sum(uploads), 0), coalesce(sum(CASE WHEN status = 'error' THEN uploads END), 0)
         FROM upload_days WHERE study_id = ?1 AND day = ?2",
        rusqlite::params![study_id, day.format("%Y-%m-%d").to_string()],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
}

/// One subject-day of the day-by-day columns: its wear minutes (`None` without
/// statistics, or when they gave none) and the uploads of that subject received that
/// day (the researcher's local day).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DayActivity {
    pub wear_minutes: Option<f64>,
    pub uploads: u32,
}

/// Each subject's days from `from` to `to` that have statistics (subject-local days) or
/// uploads (local days), for the day-by-day columns.
pub fn days(
    conn: &Connection,
    study_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> rusqlite::Result<BTreeMap<String, BTreeMap<NaiveDate, DayActivity>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT subject_id, day, wear_minutes FROM subject_days WHERE study_id = ?1 AND day >= ?2 AND day <= ?3",
    )?;
    let fmt = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let mut rows = stmt.query(rusqlite::params![study_id, fmt(from), fmt(to)])?;
    let mut out: BTreeMap<String, BTreeMap<NaiveDate, DayActivity>> = BTreeMap::new();
    // Borrowed text, and a subject's id copied once: a year of columns is millions of rows.
    while let Some(row) = rows.next()? {
        let (subject, wear) = (row.get_ref(0)?.as_str()?, row.get::<_, Option<f64>>(2)?);
        if let Some(day) = parse_day_bytes(text(row, 1)?) {
            let days = match out.get_mut(subject) {
                Some(days) => days,
                None => out.entry(subject.to_string()).or_default(),
            };
            days.entry(day).or_default().wear_minutes = wear;
        }
    }
    drop(rows);
    // An upload is first seen no later than it was last updated, so uploads not updated
    // since the day before `from` (in UTC, earlier than any local midnight of `from`)
    // cannot count, and the study's index on `updated_at` skips them.
    let updated_since =
        (from - Duration::days(1)).and_hms_opt(0, 0, 0).map_or(0, |t| super::to_ms(t.and_utc()));
    let mut uploads = conn.prepare_cached(
        "SELECT subject_id, first_seen_day, count(*) FROM uploads
         WHERE study_id = ?1 AND updated_at >= ?2 AND first_seen_day >= ?3 AND first_seen_day <= ?4
           AND subject_id IS NOT NULL
         GROUP BY subject_id, first_seen_day",
    )?;
    let rows = uploads.query_map(rusqlite::params![study_id, updated_since, fmt(from), fmt(to)], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, u32>(2)?))
    })?;
    for row in rows {
        let (subject, day, count) = row?;
        if let Some(day) = date(Some(day)) {
            out.entry(subject).or_default().entry(day).or_default().uploads = count;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_read_as_chrono_reads_it() {
        let mut d = NaiveDate::from_ymd_opt(2023, 12, 25).expect("a date");
        for _ in 0..800 {
            let t = d.format("%Y-%m-%d").to_string();
            assert_eq!(parse_day(&t), Some(d), "{t}");
            d = d.succ_opt().expect("a next day");
        }
        for t in [
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-1-05",
            "2026-11-5",
            "20261105",
            "2026/11/05",
            "+2026-11-05",
            "0000-01-01",
            "2026-11-05 ",
            "",
            "abcd-ef-gh",
            "२०२६-११-०५",
        ] {
            assert_eq!(parse_day(t), NaiveDate::parse_from_str(t, "%Y-%m-%d").ok(), "{t:?}");
        }
    }

    fn store() -> Connection {
        let mut conn = Connection::open_in_memory().expect("an in-memory database");
        super::super::schema::migrate(&mut conn, std::path::Path::new(":memory:")).expect("the schema");
        conn
    }

    #[test]
    fn each_subject_gets_its_own_recent_days_whatever_subjects_have_days_on_a_day() {
        let conn = store();
        conn.execute_batch(
            "INSERT INTO subjects (study_id, subject_id, first_seen_at, last_delivery_at, last_upload_at) VALUES
                 ('189', 'a', 1, 1, 1), ('189', 'c', 1, 1, 1), ('189', 'd', 1, 1, 1), ('190', 'b', 1, 1, 1);
             INSERT INTO roster (study_id, subject_id, imported_at) VALUES ('189', 'b', 1), ('189', 'e', 1);
             INSERT INTO subject_days (study_id, subject_id, day, wear_minutes, event, delivery_seq) VALUES
                 ('189', 'a', '2026-11-30', 600, 'x', 1), ('189', 'c', '2026-11-30', 601, 'x', 1),
                 ('189', 'e', '2026-11-30', 602, 'x', 1), ('189', 'z', '2026-11-30', 1, 'x', 1),
                 ('189', 'a', '2026-12-01', 700, 'x', 1), ('189', 'b', '2026-12-01', 701, 'x', 1),
                 ('189', 'd', '2026-12-01', NULL, 'x', 1), ('189', 'e', '2026-12-01', 702, 'x', 1),
                 ('189', 'a', '2026-11-03', 800, 'x', 1), ('189', 'a', '2026-12-02', 801, 'x', 1),
                 ('189', 'a', '2026-11-04', 802, 'x', 1), ('190', 'b', '2026-11-30', 900, 'x', 1);",
        )
        .expect("subjects and days");
        let today = NaiveDate::from_ymd_opt(2026, 12, 2).expect("a date");
        let got: Vec<(String, Vec<(String, f64)>)> = inputs(&conn, "189", today)
            .expect("inputs")
            .into_iter()
            .map(|s| (s.subject_id, s.wear.into_iter().map(|(d, w)| (d.to_string(), w)).collect()))
            .collect();
        let day = |d: &str, w: f64| (format!("2026-{d}"), w);
        assert_eq!(
            got,
            [
                ("a".to_string(), vec![day("11-04", 802.0), day("11-30", 600.0), day("12-01", 700.0)]),
                ("b".to_string(), vec![day("12-01", 701.0)]),
                ("c".to_string(), vec![day("11-30", 601.0)]),
                ("d".to_string(), vec![]),
                ("e".to_string(), vec![day("11-30", 602.0), day("12-01", 702.0)]),
            ],
            "the last 28 complete days only; days without wear, of another study or of an unknown subject are left out"
        );
    }

    #[test]
    fn the_recent_days_are_read_from_the_by_day_index_alone() {
        let conn = store();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {RECENT_DAYS}"))
            .and_then(|mut stmt| {
                stmt.query_map(["189", "2026-11-01", "2026-11-29"], |row| row.get::<_, String>(3))?.collect()
            })
            .expect("a query plan");
        assert_eq!(
            plan,
            ["SEARCH subject_days USING COVERING INDEX subject_days_by_day (study_id=? AND day>? AND day<?)"],
            "neither a scan of the study's whole history nor a sort"
        );
    }
}

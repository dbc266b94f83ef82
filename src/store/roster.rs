//! The roster: per study, the subjects expected to send data, imported from a CSV file
//! so that a subject who never synced is visible too.
//!
//! An import replaces the study's whole roster, so editing the file and importing it
//! again is how a roster is changed; a file with any bad row imports nothing.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection};
use serde::Serialize;

use super::{from_ms, to_ms};

/// The longest subject (and study) id a roster accepts, in characters.
pub const MAX_ID_CHARS: usize = 64;
/// The longest label a roster accepts, in characters.
pub const MAX_LABEL_CHARS: usize = 200;
/// How many problems an error lists before it only counts the rest.
const MAX_REPORTED: usize = 20;

/// One expected subject, as the CSV file gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RosterEntry {
    pub subject_id: String,
    pub label: Option<String>,
    pub enrolled_on: Option<NaiveDate>,
    pub expected_until: Option<NaiveDate>,
}

/// One problem of a roster file, at its 1-based line (a row's first line, when a quoted
/// value spans several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Why a roster file was refused: every problem found, in line order, so that all the
/// bad rows can be fixed at once. The first [`MAX_REPORTED`] are kept; `more` counts the rest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct RosterError {
    pub problems: Vec<Problem>,
    pub more: usize,
}

impl RosterError {
    fn one(line: usize, message: impl Into<String>) -> RosterError {
        RosterError { problems: vec![Problem { line, message: message.into() }], more: 0 }
    }

    fn from_problems(mut problems: Vec<Problem>) -> RosterError {
        problems.sort_by_key(|p| p.line);
        let more = problems.len().saturating_sub(MAX_REPORTED);
        problems.truncate(MAX_REPORTED);
        RosterError { problems, more }
    }

    fn describe(&self) -> String {
        if let ([only], 0) = (self.problems.as_slice(), self.more) {
            return only.to_string();
        }
        let mut text = format!("{} problems:", self.problems.len() + self.more);
        for problem in &self.problems {
            text.push_str(&format!("\n  {problem}"));
        }
        if self.more > 0 {
            text.push_str(&format!("\n  and {} more", self.more));
        }
        text
    }
}

/// Whether `text` can be a study or subject id: non-empty, at most [`MAX_ID_CHARS`]
/// characters, none of them a control character. Callers trim it first.
pub fn is_plausible_id(text: &str) -> bool {
    !text.is_empty() && text.chars().count() <= MAX_ID_CHARS && !text.chars().any(char::is_control)
}

/// The columns a roster file may have, as their header names are normalised.
const SUBJECT_ID: &str = "subject_id";
const LABEL: &str = "label";
const ENROLLED_ON: &str = "enrolled_on";
const EXPECTED_UNTIL: &str = "expected_until";

/// Reads a roster file: CSV text in UTF-8 (a BOM is skipped), separated by `,` or `;`
/// (`;` when the header line has one outside quotes, as spreadsheets set to a decimal
/// comma write it), lines ending in `\n` or `\r\n`, values optionally quoted with `"`
/// (a quoted value may hold the separator, line breaks and doubled `""`).
///
/// The first non-blank line names the columns: `subject_id` (required), `label`,
/// `enrolled_on` and `expected_until` (optional), in any order. Header names are read
/// trimmed, case-insensitively, with a space or `-` read as `_` (so `Subject ID` is
/// `subject_id`). Other columns are ignored without comment, so that a study's own
/// spreadsheet (with a site or an arm column) can be imported as it is.
///
/// Every value is trimmed; an empty optional value is no value. Blank rows (no value in
/// any column) are skipped. Each `subject_id` is required, at most [`MAX_ID_CHARS`]
/// printable characters, and appears once; dates are `YYYY-MM-DD` only (never a
/// day/month order a reader would have to guess), and `expected_until` is not before
/// `enrolled_on`. A row with more values than the header has columns is refused,
/// since it usually is an unquoted separator inside a label.
///
/// Nothing is returned unless the whole file is good: the error lists every problem.
pub fn parse_csv(bytes: &[u8]) -> Result<Vec<RosterEntry>, RosterError> {
    let text = decode(bytes)?;
    let separator = separator(text);
    let (records, unclosed) = records(text, separator);
    let mut records = records.into_iter().filter(|r| !r.fields.iter().all(|f| f.trim().is_empty()));
    let Some(header) = records.next() else {
        if let Some(unclosed) = unclosed {
            return Err(RosterError::from_problems(vec![unclosed]));
        }
        return Err(RosterError::one(
            1,
            "the file is empty: its first line must name the columns, one of them subject_id",
        ));
    };
    let columns = Columns::read(&header)?;
    let mut problems: Vec<Problem> = unclosed.into_iter().collect();
    let mut entries = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for record in records {
        let line = record.line;
        let mut problem = |message: String| problems.push(Problem { line, message });
        if let Some(note) = &record.problem {
            problem(note.clone());
            continue;
        }
        // Checked whatever else is wrong with the row, so that fixing the other problems
        // never reveals a duplicate only at the next import.
        let id = columns.subject_id(&record);
        let first = first_line.get(id).copied();
        if let Some(first) = first {
            problem(format!("subject {id} is listed twice, on lines {first} and {line}"));
        } else if !id.is_empty() {
            first_line.insert(id.to_string(), line);
        }
        match columns.entry(&record) {
            Ok(entry) if first.is_none() => entries.push(entry),
            Ok(_) => {}
            Err(messages) => messages.into_iter().for_each(&mut problem),
        }
    }
    if !problems.is_empty() {
        return Err(RosterError::from_problems(problems));
    }
    if entries.is_empty() {
        return Err(RosterError::one(header.line, "the file names its columns but lists no subjects"));
    }
    Ok(entries)
}

fn decode(bytes: &[u8]) -> Result<&str, RosterError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
        RosterError::one(line, "the file is not UTF-8 text: save it as CSV UTF-8")
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// `;` when the header line (the first non-blank one) has a `;` outside quotes, else `,`.
fn separator(text: &str) -> char {
    let mut quoted = false;
    let mut seen_text = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return ';',
            '\n' if !quoted && seen_text => break,
            c if !c.is_whitespace() => seen_text = true,
            _ => {}
        }
    }
    ','
}

/// One row of the file: its values, the line it starts on, and what made it unreadable.
struct Record {
    line: usize,
    fields: Vec<String>,
    problem: Option<String>,
}

/// Splits the text into rows of values, up to the end or to a quote never closed, which
/// is the problem returned beside them.
fn records(text: &str, separator: char) -> (Vec<Record>, Option<Problem>) {
    let mut records = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    loop {
        let mut record = Record { line, fields: Vec::new(), problem: None };
        let mut field = String::new();
        // Inside a quoted value; and whether the current value was quoted (and is closed).
        let mut quoted = false;
        let mut was_quoted = false;
        let mut ended = false;
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    let message = "a quoted value is never closed: a \" is missing".to_string();
                    return (records, Some(Problem { line: record.line, message }));
                }
                ended = true;
                break;
            };
            if c == '\r' && chars.peek() == Some(&'\n') && !quoted {
                continue;
            }
            if c == '\n' {
                line += 1;
                if !quoted {
                    break;
                }
            }
            if quoted {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        quoted = false;
                    }
                } else {
                    field.push(c);
                }
            } else if c == separator {
                record.fields.push(std::mem::take(&mut field));
                was_quoted = false;
            } else if c == '"' && !was_quoted && field.trim().is_empty() {
                field.clear();
                quoted = true;
                was_quoted = true;
            } else if was_quoted && !c.is_whitespace() {
                record.problem.get_or_insert_with(|| {
                    format!(
                        "text after the closing quote of a value ({c:?}): \
                         quote the whole value, and double each \" inside it"
                    )
                });
            } else if !was_quoted {
                field.push(c);
            }
        }
        record.fields.push(field);
        records.push(record);
        if ended {
            return (records, None);
        }
    }
}

/// Where each known column is in a row.
struct Columns {
    count: usize,
    subject_id: usize,
    label: Option<usize>,
    enrolled_on: Option<usize>,
    expected_until: Option<usize>,
}

impl Columns {
    fn read(header: &Record) -> Result<Columns, RosterError> {
        let line = header.line;
        if let Some(note) = &header.problem {
            return Err(RosterError::one(line, note.clone()));
        }
        let names: Vec<String> =
            header.fields.iter().map(|f| f.trim().to_lowercase().replace([' ', '-'], "_")).collect();
        let mut problems = Vec::new();
        let find = |name: &str, problems: &mut Vec<Problem>| {
            let mut at = names.iter().enumerate().filter(|(_, n)| *n == name).map(|(i, _)| i);
            let first = at.next();
            if at.next().is_some() {
                problems.push(Problem { line, message: format!("the column {name} appears more than once") });
            }
            first
        };
        let subject_id = find(SUBJECT_ID, &mut problems);
        let label = find(LABEL, &mut problems);
        let enrolled_on = find(ENROLLED_ON, &mut problems);
        let expected_until = find(EXPECTED_UNTIL, &mut problems);
        let Some(subject_id) = subject_id else {
            let found: Vec<&str> = header.fields.iter().map(|f| f.trim()).filter(|f| !f.is_empty()).collect();
            problems.insert(
                0,
                Problem {
                    line,
                    message: format!(
                        "no subject_id column: the first line must name the columns (found: {})",
                        if found.is_empty() { "none".to_string() } else { found.join(", ") }
                    ),
                },
            );
            return Err(RosterError::from_problems(problems));
        };
        if !problems.is_empty() {
            return Err(RosterError::from_problems(problems));
        }
        Ok(Columns { count: header.fields.len(), subject_id, label, enrolled_on, expected_until })
    }

    /// A row's subject id, trimmed; empty when it has none.
    fn subject_id<'r>(&self, record: &'r Record) -> &'r str {
        record.fields.get(self.subject_id).map_or("", |v| v.trim())
    }

    /// A row's entry, or everything wrong with it.
    fn entry(&self, record: &Record) -> Result<RosterEntry, Vec<String>> {
        let value = |at: Option<usize>| {
            at.and_then(|i| record.fields.get(i)).map(|v| v.trim()).filter(|v| !v.is_empty())
        };
        let mut problems = Vec::new();
        let extra = record.fields.iter().skip(self.count).filter(|f| !f.trim().is_empty()).count();
        if extra > 0 {
            problems.push(format!(
                "{} values where the first line names {} columns: quote a value that holds the separator",
                record.fields.len(),
                self.count
            ));
        }
        let subject_id = self.subject_id(record);
        if subject_id.is_empty() {
            problems.push("no subject_id".to_string());
        } else if !is_plausible_id(subject_id) {
            problems.push(format!(
                "subject_id {:?} is not an id: at most {MAX_ID_CHARS} printable characters",
                shorten(subject_id)
            ));
        }
        let label = value(self.label);
        if let Some(label) = label {
            if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
                problems.push(format!(
                    "the label {:?} is not one line of at most {MAX_LABEL_CHARS} characters",
                    shorten(label)
                ));
            }
        }
        let mut date = |column: &str, at: Option<usize>| {
            let text = value(at)?;
            let parsed = parse_date(text);
            if parsed.is_none() {
                problems.push(format!(
                    "{column} {:?} is not a date written YYYY-MM-DD, such as 2026-03-05 \
                     (no other form is read, so that day and month are never confused)",
                    shorten(text)
                ));
            }
            parsed
        };
        let enrolled_on = date(ENROLLED_ON, self.enrolled_on);
        let expected_until = date(EXPECTED_UNTIL, self.expected_until);
        if let (Some(from), Some(until)) = (enrolled_on, expected_until) {
            if until < from {
                problems.push(format!("expected_until {until} is before enrolled_on {from}"));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(RosterEntry {
            subject_id: subject_id.to_string(),
            label: label.map(str::to_string),
            enrolled_on,
            expected_until,
        })
    }
}

/// `YYYY-MM-DD` exactly: chrono alone would also read `2026-3-5`.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// A value short enough to quote in a message.
fn shorten(text: &str) -> String {
    const SHOWN: usize = 40;
    if text.chars().count() <= SHOWN {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(SHOWN).collect::<String>())
    }
}

/// What an import changed, compared with the roster it replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Subjects that were not on the roster before.
    pub added: usize,
    /// Subjects that were, with another label or other dates.
    pub updated: usize,
    /// Subjects on the roster before but not in this import.
    pub removed: usize,
    /// Subjects on the roster now.
    pub total: usize,
}

/// Replaces the study's roster with exactly `entries`, in one transaction: either the
/// whole new roster is stored or the old one is left as it was. Entries are expected
/// to come from [`parse_csv`] (ids unique); an empty slice clears the roster.
pub fn import(
    conn: &Connection,
    study_id: &str,
    entries: &[RosterEntry],
    now: DateTime<Utc>,
) -> rusqlite::Result<ImportSummary> {
    let tx = super::immediate(conn)?;
    let mut before: HashMap<String, RosterEntry> = HashMap::new();
    {
        let mut stmt = tx.prepare(
            "SELECT subject_id, label, enrolled_on, expected_until FROM roster WHERE study_id = ?1",
        )?;
        let rows = stmt.query_map([study_id], entry_from)?;
        for row in rows {
            let entry = row?;
            before.insert(entry.subject_id.clone(), entry);
        }
    }
    tx.execute("DELETE FROM roster WHERE study_id = ?1", [study_id])?;
    let mut summary = ImportSummary { added: 0, updated: 0, removed: 0, total: entries.len() };
    {
        let mut insert = tx.prepare(
            "INSERT INTO roster (study_id, subject_id, label, enrolled_on, expected_until, imported_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for entry in entries {
            insert.execute(params![
                study_id,
                entry.subject_id,
                entry.label,
                entry.enrolled_on.map(|d| d.to_string()),
                entry.expected_until.map(|d| d.to_string()),
                to_ms(now),
            ])?;
            match before.remove(&entry.subject_id) {
                None => summary.added += 1,
                Some(old) if old != *entry => summary.updated += 1,
                Some(_) => {}
            }
        }
    }
    summary.removed = before.len();
    tx.commit()?;
    Ok(summary)
}

/// One subject on a study's roster, and whether any delivery has named it.
#[derive(Debug, Clone, Serialize)]
pub struct RosterRow {
    #[serde(flatten)]
    pub entry: RosterEntry,
    pub imported_at: DateTime<Utc>,
    /// Whether a delivery has named this subject (it is in the study's subjects).
    pub seen: bool,
}

fn entry_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<RosterEntry> {
    // Written only by `import`, from parsed dates; anything else reads as no date.
    let date = |text: Option<String>| text.and_then(|t| parse_date(&t));
    Ok(RosterEntry {
        subject_id: row.get(0)?,
        label: row.get(1)?,
        enrolled_on: date(row.get(2)?),
        expected_until: date(row.get(3)?),
    })
}

/// The study's roster by subject id; empty when it has none.
pub fn list(conn: &Connection, study_id: &str) -> rusqlite::Result<Vec<RosterRow>> {
    let mut stmt = conn.prepare(
        "SELECT r.subject_id, r.label, r.enrolled_on, r.expected_until, r.imported_at,
                s.subject_id IS NOT NULL
         FROM roster r LEFT JOIN subjects s ON s.study_id = r.study_id AND s.subject_id = r.subject_id
         WHERE r.study_id = ?1 ORDER BY r.subject_id",
    )?;
    let rows = stmt.query_map([study_id], |row| {
        Ok(RosterRow { entry: entry_from(row)?, imported_at: from_ms(row.get(4)?), seen: row.get(5)? })
    })?;
    rows.collect()
}

/// The subjects deliveries have named that are not on the study's roster, by id. Empty
/// when the study has no roster: "not on the roster" only means something once there is one.
pub fn unlisted(conn: &Connection, study_id: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT s.subject_id FROM subjects s
         WHERE s.study_id = ?1
           AND EXISTS (SELECT 1 FROM roster WHERE study_id = ?1)
           AND NOT EXISTS (SELECT 1 FROM roster r WHERE r.study_id = ?1 AND r.subject_id = s.subject_id)
         ORDER BY s.subject_id",
    )?;
    let rows = stmt.query_map([study_id], |row| row.get(0))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a test date")
    }

    fn ids(entries: &[RosterEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.subject_id.as_str()).collect()
    }

    fn refused(bytes: &[u8]) -> RosterError {
        match parse_csv(bytes) {
            Ok(entries) => panic!("{:?} was accepted: {entries:?}", String::from_utf8_lossy(bytes)),
            Err(e) => e,
        }
    }

    /// The lines of the problems, and whether each message has its expected part.
    fn assert_problems(bytes: &[u8], expected: &[(usize, &str)]) {
        let error = refused(bytes);
        let found: Vec<(usize, &str)> = error.problems.iter().map(|p| (p.line, p.message.as_str())).collect();
        assert_eq!(
            found.len(),
            expected.len(),
            "the problems of {:?}: {found:?}",
            String::from_utf8_lossy(bytes)
        );
        for ((line, message), (want_line, want)) in found.iter().zip(expected) {
            assert_eq!(line, want_line, "{message}");
            assert!(message.contains(want), "{message:?} should say {want:?}");
        }
    }

    #[test]
    fn a_full_file_is_read_with_its_optional_columns() {
        let entries = parse_csv(
            b"subject_id,label,enrolled_on,expected_until\n1001,Ana,2026-01-05,2026-03-01\n1002,,,\n",
        )
        .expect("a good file");
        assert_eq!(
            entries,
            vec![
                RosterEntry {
                    subject_id: "1001".into(),
                    label: Some("Ana".into()),
                    enrolled_on: Some(day("2026-01-05")),
                    expected_until: Some(day("2026-03-01")),
                },
                RosterEntry {
                    subject_id: "1002".into(),
                    label: None,
                    enrolled_on: None,
                    expected_until: None
                },
            ]
        );
    }

    #[test]
    fn a_bom_crlf_semicolons_and_header_case_are_tolerated() {
        let entries = parse_csv(
            "\u{feff}Subject_ID ; LABEL;Enrolled_On\r\n1001;Ana, Lima;2026-01-05\r\n1002;Bo;\r\n".as_bytes(),
        )
        .expect("a spreadsheet's export");
        assert_eq!(ids(&entries), ["1001", "1002"]);
        assert_eq!(entries[0].label.as_deref(), Some("Ana, Lima"), "a comma is data when `;` separates");
        assert_eq!(entries[0].enrolled_on, Some(day("2026-01-05")));
        assert_eq!(entries[1].label.as_deref(), Some("Bo"), "no \\r is left on the last value");
    }

    #[test]
    fn a_header_with_spaces_names_the_same_columns() {
        let entries = parse_csv(b"Subject ID,Expected-Until\n1001,2026-03-01\n").expect("readable");
        assert_eq!(entries[0].expected_until, Some(day("2026-03-01")));
    }

    #[test]
    fn quoted_values_hold_separators_quotes_and_line_breaks() {
        let file = b"subject_id,label,notes\n\"1001\",\"Lima, Ana \"\"Nan\"\"\"\n \"10;02\" ,x,\"two\r\nlines\"\n1003,x,\n";
        let entries = parse_csv(file).expect("quoted values");
        assert_eq!(ids(&entries), ["1001", "10;02", "1003"]);
        assert_eq!(entries[0].label.as_deref(), Some("Lima, Ana \"Nan\""));
        let mut twice = file.to_vec();
        twice.extend_from_slice(b"1001,,\n");
        assert_problems(&twice, &[(6, "lines 2 and 6")]);
        assert_problems(b"subject_id,label\n1001,\"two\nlines\"\n", &[(2, "the label")]);
    }

    #[test]
    fn the_separator_is_decided_by_the_header_outside_quotes() {
        let entries = parse_csv(b"\"subject_id\",\"label;x\"\n1001,Ana; Bo\n").expect("a comma file");
        assert_eq!(entries[0].label, None, "the `label;x` column is not `label`");
        let entries = parse_csv(b"subject_id;label,x\n1001;Ana, Bo\n").expect("a semicolon file");
        assert_eq!(entries[0].label, None, "with `;` in the header, `label,x` is one column");
        let entries = parse_csv(b"subject_id\n1001\n1002\n").expect("one column");
        assert_eq!(ids(&entries), ["1001", "1002"]);
    }

    #[test]
    fn unknown_columns_are_ignored_and_blank_rows_skipped() {
        let entries = parse_csv(b"\n\nsite,subject_id,arm\n\nA,1001,placebo\n,,\n , \nB,1002,drug\n\n")
            .expect("a study spreadsheet");
        assert_eq!(ids(&entries), ["1001", "1002"]);
    }

    #[test]
    fn values_are_trimmed_and_short_rows_have_no_optional_values() {
        let entries = parse_csv(b"subject_id,label,enrolled_on\n  1001  ,  Ana \n").expect("readable");
        assert_eq!(entries[0].subject_id, "1001");
        assert_eq!(entries[0].label.as_deref(), Some("Ana"));
        assert_eq!(entries[0].enrolled_on, None);
    }

    #[test]
    fn an_empty_file_is_refused() {
        for empty in [&b""[..], b"\xef\xbb\xbf", b"\n\r\n  \n"] {
            assert_problems(empty, &[(1, "the file is empty")]);
        }
    }

    #[test]
    fn a_header_without_rows_is_refused() {
        assert_problems(b"subject_id,label\n\n", &[(1, "lists no subjects")]);
        assert_problems(b"\nsubject_id,label", &[(2, "lists no subjects")]);
    }

    #[test]
    fn a_missing_subject_id_column_is_refused_naming_the_columns_found() {
        assert_problems(b"id,label\n1001,Ana\n", &[(1, "no subject_id column")]);
        assert!(refused(b"id,label\n1001,Ana\n").to_string().contains("(found: id, label)"));
        assert_problems(
            b"subject_id,label,Label\n1001,a,b\n",
            &[(1, "the column label appears more than once")],
        );
    }

    #[test]
    fn a_file_that_is_not_utf8_is_refused_at_the_line_of_the_first_bad_byte() {
        assert_problems(b"subject_id,label\n1001,Ana\n1002,Ren\xe9\n", &[(3, "save it as CSV UTF-8")]);
        assert_problems(b"\xff\xfes\x00u\x00", &[(1, "not UTF-8")]);
    }

    #[test]
    fn a_duplicate_subject_id_is_refused_naming_both_lines() {
        assert_problems(
            b"subject_id\n1001\n1002\n 1001 \n",
            &[(4, "subject 1001 is listed twice, on lines 2 and 4")],
        );
        assert_problems(
            b"subject_id,enrolled_on\n1001,someday\n1001,\n1001,\n",
            &[(2, "not a date"), (3, "lines 2 and 3"), (4, "lines 2 and 4")],
        );
    }

    #[test]
    fn bad_values_are_refused_at_their_lines() {
        let long = "x".repeat(MAX_ID_CHARS + 1);
        let file = format!(
            "subject_id,label,enrolled_on,expected_until\n\
             ,no id,,\n\
             {long},,,\n\
             1003,,05/03/2026,\n\
             1004,,2026-3-5,\n\
             1005,,2026-02-30,\n\
             1006,,2026-03-05,2026-03-04\n\
             1007,a,,,d\n\
             1008,\"ok\"x,,\n\
             1009,\x07,,\n\
             1010,,2026-03-05,2026-03-05\n"
        );
        assert_problems(
            file.as_bytes(),
            &[
                (2, "no subject_id"),
                (3, "is not an id"),
                (4, "\"05/03/2026\" is not a date written YYYY-MM-DD"),
                (5, "enrolled_on \"2026-3-5\" is not a date"),
                (6, "enrolled_on \"2026-02-30\" is not a date"),
                (7, "expected_until 2026-03-04 is before enrolled_on 2026-03-05"),
                (8, "5 values where the first line names 4 columns"),
                (9, "text after the closing quote"),
                (10, "the label"),
            ],
        );
    }

    #[test]
    fn every_problem_of_a_row_is_reported() {
        assert_problems(
            b"subject_id,enrolled_on,expected_until\n,2026-13-01,someday\n",
            &[(2, "no subject_id"), (2, "enrolled_on"), (2, "expected_until")],
        );
    }

    #[test]
    fn an_unclosed_quote_is_refused_at_the_line_it_opens() {
        assert_problems(b"subject_id,label\n1001,\"Ana\n1002,Bo\n", &[(2, "never closed")]);
        assert_problems(b"\"subject_id\n1001\n", &[(1, "never closed")]);
    }

    #[test]
    fn all_problems_are_reported_together_up_to_a_cap() {
        let mut file = String::from("subject_id,enrolled_on\n");
        for i in 0..25 {
            file.push_str(&format!("{i},not-a-date\n"));
        }
        let error = refused(file.as_bytes());
        assert_eq!(error.problems.len(), MAX_REPORTED);
        assert_eq!(error.more, 5);
        let text = error.to_string();
        assert!(text.starts_with("25 problems:\n  line 2: "), "{text}");
        assert!(text.ends_with("\n  and 5 more"), "{text}");
        assert_eq!(
            refused(b"subject_id\n\n").to_string(),
            "line 1: the file names its columns but lists no subjects"
        );
    }

    fn store() -> Connection {
        let mut conn = Connection::open_in_memory().expect("an in-memory database");
        super::super::schema::migrate(&mut conn, std::path::Path::new(":memory:")).expect("the schema");
        conn
    }

    fn entry(id: &str, label: Option<&str>) -> RosterEntry {
        RosterEntry {
            subject_id: id.into(),
            label: label.map(str::to_string),
            enrolled_on: None,
            expected_until: None,
        }
    }

    #[test]
    fn an_import_replaces_the_roster_and_counts_the_changes() {
        let conn = store();
        let now = Utc::now();
        let first = import(&conn, "189", &[entry("1", None), entry("2", Some("b"))], now).expect("import");
        assert_eq!(first, ImportSummary { added: 2, updated: 0, removed: 0, total: 2 });
        import(&conn, "190", &[entry("1", None)], now).expect("another study's roster");
        let second = import(&conn, "189", &[entry("2", Some("B")), entry("3", None), entry("1", None)], now)
            .expect("import");
        assert_eq!(second, ImportSummary { added: 1, updated: 1, removed: 0, total: 3 });
        let third = import(&conn, "189", &[entry("3", None)], now).expect("import");
        assert_eq!(third, ImportSummary { added: 0, updated: 0, removed: 2, total: 1 });
        let rows = list(&conn, "189").expect("list");
        assert_eq!(rows.iter().map(|r| r.entry.subject_id.as_str()).collect::<Vec<_>>(), ["3"]);
        assert_eq!(list(&conn, "190").expect("list").len(), 1, "another study's roster is untouched");
    }

    #[test]
    fn seen_and_unlisted_subjects_come_from_the_subjects_table() {
        let conn = store();
        conn.execute_batch(
            "INSERT INTO subjects (study_id, subject_id, first_seen_at, last_delivery_at)
             VALUES ('189', '1', 1, 1), ('189', '9', 1, 1), ('190', '2', 1, 1)",
        )
        .expect("seen subjects");
        assert!(unlisted(&conn, "189").expect("unlisted").is_empty(), "nobody is unlisted without a roster");
        import(&conn, "189", &[entry("1", None), entry("2", None)], Utc::now()).expect("import");
        let seen: Vec<(String, bool)> =
            list(&conn, "189").expect("list").into_iter().map(|r| (r.entry.subject_id, r.seen)).collect();
        assert_eq!(seen, [("1".to_string(), true), ("2".to_string(), false)]);
        assert_eq!(unlisted(&conn, "189").expect("unlisted"), ["9"]);
    }
}

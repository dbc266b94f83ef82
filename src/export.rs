//! Upload history as CSV or JSON, for a spreadsheet or a script. Shared by
//! `cpwatch export` and the dashboard's export buttons.

use std::io::Write;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::store::uploads::UploadRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    pub const ALL: [Format; 2] = [Format::Csv, Format::Json];

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
        }
    }
}

/// `cpwatch-study-189-2026-11-26.csv`, or `cpwatch-uploads-...` for every study.
pub fn file_name(study: Option<&str>, format: Format, today: chrono::NaiveDate) -> String {
    let what = match study {
        // Only characters that are safe in a file name and a header survive.
        Some(s) => format!(
            "study-{}",
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                .take(40)
                .collect::<String>()
        ),
        None => "uploads".to_string(),
    };
    format!("cpwatch-{what}-{}.{}", today.format("%Y-%m-%d"), format.extension())
}

const CSV_HEADER: &str = "study_id,subject_id,upload_id,status,started_at,completed_at,failed_at,\
duration_seconds,first_epoch_utc,last_epoch_utc,first_epoch_subject_tz,last_epoch_subject_tz,\
error_message,deliveries,updated_at";

pub fn write(out: &mut impl Write, rows: &[UploadRow], format: Format) -> std::io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, rows)?;
            writeln!(out)
        }
        Format::Csv => {
            writeln!(out, "{CSV_HEADER}")?;
            let utc = |t: Option<DateTime<Utc>>| {
                t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default()
            };
            let local = |t: Option<NaiveDateTime>| {
                t.map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string()).unwrap_or_default()
            };
            for r in rows {
                let s = &r.state;
                let fields = [
                    r.study_id.clone(),
                    s.subject_id.clone().unwrap_or_default(),
                    r.upload_id.clone(),
                    s.status.as_str().to_string(),
                    utc(s.started_at),
                    utc(s.completed_at),
                    utc(s.failed_at),
                    r.duration_seconds.map(|d| d.to_string()).unwrap_or_default(),
                    utc(s.first_epoch_utc),
                    utc(s.last_epoch_utc),
                    local(s.first_epoch_subject_tz),
                    local(s.last_epoch_subject_tz),
                    s.error_message.clone().unwrap_or_default(),
                    r.deliveries.to_string(),
                    utc(Some(r.updated_at)),
                ];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                writeln!(out, "{}", line.join(","))?;
            }
            Ok(())
        }
    }
}

/// A CSV field, quoted when needed; a leading formula character is neutralised so that
/// a spreadsheet opening the export never runs a payload as a formula.
pub fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
    }

    #[test]
    fn export_files_are_named_after_the_study_and_date() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 26).expect("a date");
        assert_eq!(file_name(Some("189"), Format::Csv, day), "cpwatch-study-189-2026-11-26.csv");
        assert_eq!(file_name(Some("../x\"y"), Format::Json, day), "cpwatch-study-xy-2026-11-26.json");
        assert_eq!(file_name(None, Format::Csv, day), "cpwatch-uploads-2026-11-26.csv");
    }
}

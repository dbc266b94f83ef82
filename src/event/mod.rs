//! Typed parsing of each CentrePoint event payload.
//!
//! CentrePoint is loose about types and spelling: ids arrive as strings or numbers,
//! statuses in any case, timestamps with or without a zone, field names in camelCase
//! or snake_case. Field lookup here ignores case and underscores, so `uploadId`,
//! `UploadId` and `upload_id` all match.

pub mod upload;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// The event names of the protocol, as sent in `X-ActiGraph-Event`.
pub const VALIDATION: &str = "validation";
pub const UPLOAD: &str = "upload";
pub const RAW_PROCESSING_COMPLETE: &str = "raw_processing_complete";
pub const DATA_RETRIEVAL_COMPLETE: &str = "data_retrieval_complete";
pub const DAILY_STATISTICS_COMPLETE: &str = "daily_statistics_complete";
pub const CP2_DAILY_STATISTICS_COMPLETE: &str = "cp2_daily_statistics_complete";

pub const KNOWN_EVENTS: [&str; 6] = [
    UPLOAD,
    RAW_PROCESSING_COMPLETE,
    DATA_RETRIEVAL_COMPLETE,
    DAILY_STATISTICS_COMPLETE,
    CP2_DAILY_STATISTICS_COMPLETE,
    VALIDATION,
];

/// An upload's status as CentrePoint reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadStatus {
    Started,
    Completed,
    Error,
}

impl UploadStatus {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        [UploadStatus::Started, UploadStatus::Completed, UploadStatus::Error]
            .into_iter()
            .find(|status| s.eq_ignore_ascii_case(status.as_str()))
    }
    pub fn as_str(self) -> &'static str {
        match self {
            UploadStatus::Started => "started",
            UploadStatus::Completed => "completed",
            UploadStatus::Error => "error",
        }
    }
    pub fn is_terminal(self) -> bool {
        !matches!(self, UploadStatus::Started)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Validation {
    pub webhook_id: Option<String>,
    pub code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UploadEvent {
    pub status: UploadStatus,
    pub upload_id: String,
    pub study_id: String,
    pub subject_id: Option<String>,
    pub message: Option<String>,
    pub first_epoch_utc: Option<DateTime<Utc>>,
    pub last_epoch_utc: Option<DateTime<Utc>>,
    pub first_epoch_subject_tz: Option<NaiveDateTime>,
    pub last_epoch_subject_tz: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RawProcessing {
    pub study_id: String,
    pub subject_id: Option<String>,
    pub subject_identifier: Option<String>,
    pub monitor_serial: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub min_event: Option<DateTime<Utc>>,
    pub max_event: Option<DateTime<Utc>>,
    pub status: String,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetrievalFile {
    pub monitor_serial: Option<String>,
    pub file_type: Option<String>,
    pub file_name: Option<String>,
    pub file_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataRetrieval {
    pub tracking_id: Option<String>,
    pub study_id: String,
    pub subject_id: Option<String>,
    pub subject_identifier: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub status: String,
    pub files: Vec<RetrievalFile>,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyStatistics {
    pub id: Option<String>,
    pub study_id: String,
    pub site_id: Option<String>,
    pub subject_id: Option<String>,
    pub date: Option<NaiveDate>,
    pub monitor_serials: Vec<String>,
    pub wear_minutes: Option<f64>,
    /// Minutes with data: wear plus non-wear (minutes with no data are neither).
    pub observed_minutes: Option<f64>,
    pub steps: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cp2DailyStatistics {
    pub day_stat_id: Option<String>,
    pub study_id: String,
    pub site_id: Option<String>,
    pub subject_id: Option<String>,
    pub subject_identifier: Option<String>,
    pub date: Option<NaiveDate>,
    pub wear_minutes: Option<f64>,
    /// `totalMinutes`: minutes with data, which can be below 1440.
    pub total_minutes: Option<f64>,
    pub steps: Option<f64>,
    pub mvpa: Option<f64>,
    pub calories: Option<f64>,
}

/// One subject-day's wear time, from a daily-statistics event.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectDay<'a> {
    pub study_id: &'a str,
    pub subject_id: &'a str,
    /// The subject's local date.
    pub day: NaiveDate,
    pub wear_minutes: Option<f64>,
    /// Minutes with data (wear and non-wear).
    pub total_minutes: Option<f64>,
}

/// An event type this version does not know; what could be read of it generically.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnknownEvent {
    pub name: String,
    pub study_id: Option<String>,
    pub subject_id: Option<String>,
    pub status: Option<String>,
}

/// One delivery's payload, typed by its event name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Validation(Validation),
    Upload(UploadEvent),
    RawProcessingComplete(RawProcessing),
    DataRetrievalComplete(DataRetrieval),
    DailyStatisticsComplete(DailyStatistics),
    Cp2DailyStatisticsComplete(Cp2DailyStatistics),
    Unknown(UnknownEvent),
}

/// Why a payload could not be typed. The delivery is still stored and acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not valid UTF-8")]
    NotUtf8,
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is JSON but not an object")]
    NotObject,
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    #[error("field `{0}` is not a usable id")]
    BadId(&'static str),
    #[error("field `{0}` is not a string")]
    NotString(&'static str),
    #[error("unrecognised upload status {0:?}")]
    UnknownStatus(String),
}

impl PayloadError {
    /// How the store flags a delivery whose body this error came from.
    pub fn flag(&self) -> &'static str {
        match self {
            PayloadError::NotUtf8 | PayloadError::NotJson(_) | PayloadError::NotObject => "invalid_json",
            _ => "invalid_payload",
        }
    }
}

/// The result of reading a payload: the typed event and anything odd noticed on the way
/// (for example a timestamp in no known form), which does not stop the event from applying.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub event: Event,
    pub warnings: Vec<String>,
}

/// Parses a delivery body given its event name (`X-ActiGraph-Event`).
pub fn parse(event_name: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
    let text = std::str::from_utf8(body).map_err(|_| PayloadError::NotUtf8)?;
    let value: Value = serde_json::from_str(text).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(PayloadError::NotObject);
    };
    let mut f = Fields { map: &map, warnings: Vec::new() };
    let event = match event_name.trim().to_ascii_lowercase().as_str() {
        VALIDATION => Event::Validation(Validation {
            webhook_id: f.opt_id("webhookId")?,
            code: f.opt_string("validationCode")?,
        }),
        UPLOAD => {
            let status_text = f.req_string("status")?;
            let status = UploadStatus::parse(&status_text)
                .ok_or_else(|| PayloadError::UnknownStatus(status_text.clone()))?;
            Event::Upload(UploadEvent {
                status,
                upload_id: f.req_id("uploadId")?,
                study_id: f.req_id("studyId")?,
                subject_id: f.opt_id("subjectId")?,
                message: f.opt_string("message")?,
                first_epoch_utc: f.utc("firstEpochUTC"),
                last_epoch_utc: f.utc("lastEpochUTC"),
                first_epoch_subject_tz: f.local("firstEpochSubjectTZ"),
                last_epoch_subject_tz: f.local("lastEpochSubjectTZ"),
            })
        }
        RAW_PROCESSING_COMPLETE => Event::RawProcessingComplete(RawProcessing {
            study_id: f.req_id("study_id")?,
            subject_id: f.opt_id("subject_id")?,
            subject_identifier: f.opt_string("subject_identifier")?,
            monitor_serial: f.opt_string("monitor_serial")?,
            created_at: f.utc("created_at_utc"),
            min_event: f.utc("min_event_timestamp"),
            max_event: f.utc("max_event_timestamp"),
            status: normalise_status(&f.req_string("status")?),
            error_message: f.opt_string("error_message")?,
        }),
        DATA_RETRIEVAL_COMPLETE => Event::DataRetrievalComplete(DataRetrieval {
            tracking_id: f.opt_string("tracking_id")?,
            study_id: f.req_id("study_id")?,
            subject_id: f.opt_id("subject_id")?,
            subject_identifier: f.opt_string("subject_identifier")?,
            created_at: f.utc("created_at_utc"),
            started_at: f.utc("started_at_utc"),
            completed_at: f.utc("completed_at_utc"),
            status: normalise_status(&f.req_string("request_status")?),
            files: retrieval_files(&map),
            error_message: f.opt_string("error_message")?,
        }),
        DAILY_STATISTICS_COMPLETE => {
            let epoch = f.object("epochAggregation");
            let mavm = f.object("mavmAggregation");
            Event::DailyStatisticsComplete(DailyStatistics {
                id: f.opt_id("id")?,
                study_id: f.req_id("studyId")?,
                site_id: f.opt_id("siteId")?,
                subject_id: f.opt_id("subjectId")?,
                date: f.date("date"),
                monitor_serials: f.strings("activityMonitorSerials"),
                wear_minutes: epoch.and_then(|m| number(m, "wearMinutes")),
                observed_minutes: epoch
                    .and_then(|m| Some(number(m, "wearMinutes")? + number(m, "nonWearMinutes")?)),
                steps: mavm
                    .and_then(|m| number(m, "wearFilteredSteps").or_else(|| number(m, "nonFilteredSteps"))),
            })
        }
        CP2_DAILY_STATISTICS_COMPLETE => Event::Cp2DailyStatisticsComplete(Cp2DailyStatistics {
            day_stat_id: f.opt_id("dayStatId")?,
            study_id: f.req_id("studyId")?,
            site_id: f.opt_id("siteId")?,
            subject_id: f.opt_id("subjectId")?,
            subject_identifier: f.opt_string("subjectIdentifier")?,
            date: f.date("date"),
            wear_minutes: number(&map, "wearMinutes"),
            total_minutes: number(&map, "totalMinutes"),
            steps: number(&map, "steps"),
            mvpa: number(&map, "mvpa"),
            calories: number(&map, "calories"),
        }),
        _ => Event::Unknown(UnknownEvent {
            name: event_name.trim().to_string(),
            study_id: f.opt_id("studyId").ok().flatten(),
            subject_id: f.opt_id("subjectId").ok().flatten(),
            status: f.opt_string("status").ok().flatten().map(|s| normalise_status(&s)),
        }),
    };
    Ok(Parsed { event, warnings: f.warnings })
}

impl Event {
    pub fn study_id(&self) -> Option<&str> {
        match self {
            Event::Validation(_) => None,
            Event::Upload(e) => Some(&e.study_id),
            Event::RawProcessingComplete(e) => Some(&e.study_id),
            Event::DataRetrievalComplete(e) => Some(&e.study_id),
            Event::DailyStatisticsComplete(e) => Some(&e.study_id),
            Event::Cp2DailyStatisticsComplete(e) => Some(&e.study_id),
            Event::Unknown(e) => e.study_id.as_deref(),
        }
    }

    pub fn subject_id(&self) -> Option<&str> {
        match self {
            Event::Validation(_) => None,
            Event::Upload(e) => e.subject_id.as_deref(),
            Event::RawProcessingComplete(e) => e.subject_id.as_deref(),
            Event::DataRetrievalComplete(e) => e.subject_id.as_deref(),
            Event::DailyStatisticsComplete(e) => e.subject_id.as_deref(),
            Event::Cp2DailyStatisticsComplete(e) => e.subject_id.as_deref(),
            Event::Unknown(e) => e.subject_id.as_deref(),
        }
    }

    /// The subject's label within the study, where the event carries one.
    pub fn subject_identifier(&self) -> Option<&str> {
        match self {
            Event::RawProcessingComplete(e) => e.subject_identifier.as_deref(),
            Event::DataRetrievalComplete(e) => e.subject_identifier.as_deref(),
            Event::Cp2DailyStatisticsComplete(e) => e.subject_identifier.as_deref(),
            _ => None,
        }
    }

    pub fn upload_id(&self) -> Option<&str> {
        match self {
            Event::Upload(e) => Some(&e.upload_id),
            _ => None,
        }
    }

    /// A lower-case status, where the event has one.
    pub fn status(&self) -> Option<&str> {
        match self {
            Event::Validation(_)
            | Event::DailyStatisticsComplete(_)
            | Event::Cp2DailyStatisticsComplete(_) => Some("completed"),
            Event::Upload(e) => Some(e.status.as_str()),
            Event::RawProcessingComplete(e) => Some(&e.status),
            Event::DataRetrievalComplete(e) => Some(&e.status),
            Event::Unknown(e) => e.status.as_deref(),
        }
    }

    /// The subject-day a daily-statistics event reports, when it names the subject and date.
    pub fn subject_day(&self) -> Option<SubjectDay<'_>> {
        let (study_id, subject_id, day, wear_minutes, total_minutes) = match self {
            Event::DailyStatisticsComplete(e) => {
                (&e.study_id, e.subject_id.as_deref()?, e.date?, e.wear_minutes, e.observed_minutes)
            }
            Event::Cp2DailyStatisticsComplete(e) => {
                (&e.study_id, e.subject_id.as_deref()?, e.date?, e.wear_minutes, e.total_minutes)
            }
            _ => return None,
        };
        Some(SubjectDay { study_id, subject_id, day, wear_minutes, total_minutes })
    }

    /// Why the upload or the processing failed, when the event says.
    pub fn error_message(&self) -> Option<&str> {
        match self {
            Event::Upload(e) => e.message.as_deref(),
            Event::RawProcessingComplete(e) => e.error_message.as_deref(),
            Event::DataRetrievalComplete(e) => e.error_message.as_deref(),
            _ => None,
        }
    }

    /// One line a researcher can read in a listing.
    pub fn summary(&self) -> String {
        let subject = |s: Option<&str>| s.map_or_else(String::new, |s| format!(" subject {s}"));
        match self {
            Event::Validation(v) => {
                format!("validation handshake for webhook {}", v.webhook_id.as_deref().unwrap_or("?"))
            }
            Event::Upload(e) => {
                let mut line = format!(
                    "upload {} {} (study {}{})",
                    e.upload_id,
                    e.status.as_str(),
                    e.study_id,
                    subject(e.subject_id.as_deref())
                );
                if let Some(message) = &e.message {
                    line.push_str(&format!(": {message}"));
                }
                line
            }
            Event::RawProcessingComplete(e) => {
                let mut line = format!(
                    "raw processing {} (study {}{}{})",
                    e.status,
                    e.study_id,
                    subject(e.subject_id.as_deref()),
                    e.monitor_serial.as_deref().map_or_else(String::new, |m| format!(", monitor {m}"))
                );
                if let Some(message) = &e.error_message {
                    line.push_str(&format!(": {message}"));
                }
                line
            }
            Event::DataRetrievalComplete(e) => {
                let mut line = format!(
                    "data retrieval {} with {} file(s) (study {}{})",
                    e.status,
                    e.files.len(),
                    e.study_id,
                    subject(e.subject_id.as_deref())
                );
                if let Some(message) = &e.error_message {
                    line.push_str(&format!(": {message}"));
                }
                line
            }
            Event::DailyStatisticsComplete(e) => format!(
                "daily statistics for {} (study {}{}){}",
                e.date.map_or_else(|| "?".into(), |d| d.to_string()),
                e.study_id,
                subject(e.subject_id.as_deref()),
                wear_and_steps(e.wear_minutes, e.steps)
            ),
            Event::Cp2DailyStatisticsComplete(e) => format!(
                "CP2 daily statistics for {} (study {}{}){}",
                e.date.map_or_else(|| "?".into(), |d| d.to_string()),
                e.study_id,
                subject(e.subject_id.as_deref()),
                wear_and_steps(e.wear_minutes, e.steps)
            ),
            Event::Unknown(e) => {
                let mut line = format!("unknown event type {:?}", e.name);
                if let Some(study) = &e.study_id {
                    line.push_str(&format!(" (study {study}{})", subject(e.subject_id.as_deref())));
                }
                line
            }
        }
    }
}

fn wear_and_steps(wear: Option<f64>, steps: Option<f64>) -> String {
    let mut parts = Vec::new();
    if let Some(w) = wear {
        parts.push(format!("{w:.0} wear minutes"));
    }
    if let Some(s) = steps {
        parts.push(format!("{s:.0} steps"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join(", "))
    }
}

fn normalise_status(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// Key comparison that ignores case and underscores.
fn key_matches(key: &str, wanted: &str) -> bool {
    let mut a = key.bytes().filter(|b| *b != b'_');
    let mut b = wanted.bytes().filter(|b| *b != b'_');
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(&y) => {}
            _ => return false,
        }
    }
}

fn lookup<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.get(name)
        .or_else(|| map.iter().find(|(k, _)| key_matches(k, name)).map(|(_, v)| v))
        .filter(|v| !v.is_null())
}

fn number(map: &Map<String, Value>, name: &str) -> Option<f64> {
    match lookup(map, name)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn retrieval_files(map: &Map<String, Value>) -> Vec<RetrievalFile> {
    let Some(Value::Array(files)) = lookup(map, "files") else {
        return Vec::new();
    };
    files
        .iter()
        .filter_map(Value::as_object)
        .map(|file| RetrievalFile {
            monitor_serial: lookup(file, "monitor_serial").and_then(Value::as_str).map(str::to_string),
            file_type: lookup(file, "file_type").and_then(Value::as_str).map(str::to_string),
            file_name: lookup(file, "file_name").and_then(Value::as_str).map(str::to_string),
            file_size: lookup(file, "file_size").and_then(Value::as_u64),
        })
        .collect()
}

/// Typed access to one payload object, collecting warnings for values in no known form.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    warnings: Vec<String>,
}

impl<'a> Fields<'a> {
    fn req_id(&self, name: &'static str) -> Result<String, PayloadError> {
        self.opt_id(name)?.ok_or(PayloadError::Missing(name))
    }

    fn opt_id(&self, name: &'static str) -> Result<Option<String>, PayloadError> {
        match lookup(self.map, name) {
            None => Ok(None),
            Some(value) => id_text(value).map(Some).ok_or(PayloadError::BadId(name)),
        }
    }

    fn req_string(&self, name: &'static str) -> Result<String, PayloadError> {
        self.opt_string(name)?.ok_or(PayloadError::Missing(name))
    }

    fn opt_string(&self, name: &'static str) -> Result<Option<String>, PayloadError> {
        match lookup(self.map, name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(PayloadError::NotString(name)),
        }
    }

    fn object(&self, name: &str) -> Option<&'a Map<String, Value>> {
        lookup(self.map, name).and_then(Value::as_object)
    }

    fn strings(&self, name: &str) -> Vec<String> {
        match lookup(self.map, name) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    fn text(&mut self, name: &str) -> Option<&'a str> {
        match lookup(self.map, name)? {
            Value::String(s) => Some(s.as_str()),
            other => {
                self.warnings.push(format!("field `{name}` is not a timestamp: {other}"));
                None
            }
        }
    }

    fn utc(&mut self, name: &str) -> Option<DateTime<Utc>> {
        let text = self.text(name)?;
        let parsed = parse_utc(text);
        if parsed.is_none() {
            self.warnings.push(format!("field `{name}` has an unrecognised timestamp {text:?}"));
        }
        parsed
    }

    fn local(&mut self, name: &str) -> Option<NaiveDateTime> {
        let text = self.text(name)?;
        let parsed = parse_local(text);
        if parsed.is_none() {
            self.warnings.push(format!("field `{name}` has an unrecognised timestamp {text:?}"));
        }
        parsed
    }

    fn date(&mut self, name: &str) -> Option<NaiveDate> {
        let text = self.text(name)?;
        let parsed = parse_local(text)
            .map(|dt| dt.date())
            .or_else(|| NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok());
        if parsed.is_none() {
            self.warnings.push(format!("field `{name}` has an unrecognised date {text:?}"));
        }
        parsed
    }
}

/// An id as text: strings are trimmed, integral numbers printed without a fraction.
fn id_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                let f = n.as_f64()?;
                // Beyond 2^53 a float no longer names one integer.
                if f.fract() != 0.0 || f.abs() > 9_007_199_254_740_992.0 {
                    return None;
                }
                format!("{f:.0}")
            }
        }
        _ => return None,
    };
    let usable = !text.is_empty() && text.len() <= 128 && !text.chars().any(char::is_control);
    usable.then_some(text)
}

/// Parses a timestamp in any of the documented forms, reading a zone-less value as UTC.
pub fn parse_utc(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.with_timezone(&Utc));
    }
    parse_naive(text.strip_suffix('Z').unwrap_or(text)).map(|dt| dt.and_utc())
}

/// Parses a subject-local timestamp; an offset, if any, is dropped (the time is kept as written).
pub fn parse_local(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.naive_local());
    }
    parse_naive(text.strip_suffix('Z').unwrap_or(text))
}

fn parse_naive(text: &str) -> Option<NaiveDateTime> {
    // %.f takes any number of fraction digits, including .NET's seven.
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_documented_form_parse() {
        let expected = NaiveDate::from_ymd_opt(2016, 6, 14)
            .and_then(|d| d.and_hms_opt(20, 46, 0))
            .map(|dt| dt.and_utc());
        for text in [
            "2016-06-14T20:46:00.0000000",
            "2016-06-14T20:46:00Z",
            "2016-06-14T20:46:00+00:00",
            "2016-06-14T20:46:00.0000000Z",
            " 2016-06-14T20:46:00 ",
        ] {
            assert_eq!(parse_utc(text), expected, "{text:?} parses as UTC");
        }
        assert_eq!(parse_utc("2016-06-14T22:46:00+02:00"), expected, "an offset is applied");
        assert_eq!(parse_utc("yesterday"), None);
    }

    #[test]
    fn ids_come_as_strings_or_numbers() {
        assert_eq!(id_text(&serde_json::json!("85045")), Some("85045".into()));
        assert_eq!(id_text(&serde_json::json!(" 85045 ")), Some("85045".into()));
        assert_eq!(id_text(&serde_json::json!(85045)), Some("85045".into()));
        assert_eq!(id_text(&serde_json::json!(85045.0)), Some("85045".into()));
        let read: serde_json::Value = serde_json::from_str("1946100188605637.0").expect("a number");
        assert_eq!(id_text(&read), Some("1946100188605637".into()), "a long integral float reads exactly");
        assert_eq!(id_text(&serde_json::json!(1.5)), None, "a fraction is no id");
        assert_eq!(id_text(&serde_json::json!(1e300)), None, "a huge float is no id");
        assert_eq!(id_text(&serde_json::json!("")), None);
        assert_eq!(id_text(&serde_json::json!({"a": 1})), None);
    }

    #[test]
    fn field_names_ignore_case_and_underscores() {
        assert!(key_matches("uploadId", "uploadId"));
        assert!(key_matches("UploadID", "uploadId"));
        assert!(key_matches("upload_id", "uploadId"));
        assert!(!key_matches("uploadIds", "uploadId"));
    }

    #[test]
    fn upload_status_in_any_case() {
        for (text, status) in [
            ("started", UploadStatus::Started),
            ("Started", UploadStatus::Started),
            ("COMPLETED", UploadStatus::Completed),
            (" Error ", UploadStatus::Error),
        ] {
            assert_eq!(UploadStatus::parse(text), Some(status));
        }
        assert_eq!(UploadStatus::parse("done"), None);
    }

    #[test]
    fn an_upload_without_its_id_is_an_invalid_payload() {
        let err = parse(UPLOAD, br#"{"status":"started","studyId":"1"}"#).err();
        assert_eq!(err, Some(PayloadError::Missing("uploadId")));
        assert_eq!(err.map(|e| e.flag()), Some("invalid_payload"));
    }

    #[test]
    fn non_json_bodies_are_flagged_invalid_json() {
        for body in [&b"not json"[..], b"[1,2]", b"\xff\xfe", b""] {
            let err = parse(UPLOAD, body).err();
            assert_eq!(err.map(|e| e.flag()), Some("invalid_json"), "{body:?}");
        }
    }
}

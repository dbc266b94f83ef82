//! Every CentrePoint fixture parses into the typed record it describes.

use chrono::{NaiveDate, NaiveDateTime};
use cpwatch::emulator::fixture::HttpFixture;
use cpwatch::event::{self, Event, UploadStatus};

fn parse(name: &str) -> (HttpFixture, Event) {
    let path = std::path::Path::new("tests/fixtures").join(name);
    let fixture = HttpFixture::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let event_name = fixture.header("x-actigraph-event").unwrap_or_else(|| panic!("{name} names its event"));
    let parsed = event::parse(event_name, &fixture.body).unwrap_or_else(|e| panic!("{name} parses: {e}"));
    assert!(parsed.warnings.is_empty(), "{name} parses without warnings: {:?}", parsed.warnings);
    (fixture, parsed.event)
}

fn utc(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    event::parse_utc(text)
}

fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(y, mo, d).and_then(|d| d.and_hms_opt(h, mi, 0))
}

#[test]
fn every_fixture_in_the_folder_parses_and_is_covered_here() {
    let mut names: Vec<String> = std::fs::read_dir("tests/fixtures")
        .expect("the fixtures folder")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".http"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 12, "a new fixture needs its own test below: {names:?}");
    for name in names {
        parse(&name);
    }
}

#[test]
fn upload_started_with_string_ids_and_lower_case_headers() {
    let (fixture, event) = parse("upload-started.http");
    assert_eq!(fixture.header("X-ActiGraph-Delivery"), Some("2f609110-0fea-33de-b70e-337c581e9001"));
    let Event::Upload(u) = event else { panic!("an upload event") };
    assert_eq!(u.status, UploadStatus::Started);
    assert_eq!((u.upload_id.as_str(), u.study_id.as_str()), ("85045", "189"));
    assert_eq!(u.subject_id.as_deref(), Some("44732"));
}

#[test]
fn upload_seed_example_with_capitalised_status() {
    let Event::Upload(u) = parse("upload-seed-example.http").1 else { panic!("an upload event") };
    assert_eq!(u.status, UploadStatus::Started);
    assert_eq!((u.upload_id.as_str(), u.study_id.as_str()), ("123456", "456789"));
    assert_eq!(u.subject_id.as_deref(), Some("987654"));
}

#[test]
fn upload_completed_with_dotnet_timestamps() {
    let Event::Upload(u) = parse("upload-completed.http").1 else { panic!("an upload event") };
    assert_eq!(u.status, UploadStatus::Completed);
    assert_eq!(u.first_epoch_utc, utc("2016-06-14T20:46:00Z"));
    assert_eq!(u.last_epoch_utc, utc("2016-06-14T20:47:00Z"));
    assert_eq!(u.first_epoch_subject_tz, local(2016, 6, 14, 15, 46));
    assert_eq!(u.last_epoch_subject_tz, local(2016, 6, 14, 15, 47));
    assert_eq!(u.message, None);
}

#[test]
fn upload_completed_with_numeric_ids() {
    let Event::Upload(u) = parse("upload-completed-numeric-ids.http").1 else { panic!("an upload event") };
    assert_eq!(u.status, UploadStatus::Completed);
    assert_eq!((u.upload_id.as_str(), u.study_id.as_str()), ("85047", "189"));
    assert_eq!(u.subject_id.as_deref(), Some("44734"));
    assert_eq!(u.first_epoch_utc, utc("2024-03-01T08:00:00Z"));
    assert_eq!(u.last_epoch_subject_tz, local(2024, 3, 8, 2, 59));
}

#[test]
fn upload_error_keeps_its_message() {
    let Event::Upload(u) = parse("upload-error.http").1 else { panic!("an upload event") };
    assert_eq!(u.status, UploadStatus::Error);
    assert_eq!(u.message.as_deref(), Some("A problem occured during upload processing"));
    assert_eq!(u.upload_id, "85046");
}

#[test]
fn validation_carries_its_code() {
    let (fixture, event) = parse("validation.http");
    let Event::Validation(v) = event else { panic!("a validation event") };
    assert_eq!(v.code.as_deref(), Some("1d3ad7a1-91c9-4ffc-8562-5bad545e6a40"));
    assert_eq!(v.code.as_deref(), fixture.header("X-ActiGraph-Hook-Secret"), "body and header agree");
    assert_eq!(v.webhook_id.as_deref(), Some("74"));
}

#[test]
fn raw_processing_complete_and_error() {
    let Event::RawProcessingComplete(r) = parse("raw-processing-complete.http").1 else {
        panic!("raw processing")
    };
    assert_eq!(r.status, "completed");
    assert_eq!((r.study_id.as_str(), r.subject_id.as_deref()), ("1064", Some("19525")));
    assert_eq!(r.subject_identifier.as_deref(), Some("TEST123"));
    assert_eq!(r.monitor_serial.as_deref(), Some("TAS1F39160337"));
    assert_eq!(r.min_event, utc("2019-07-19T14:08:58Z"));
    assert_eq!(r.error_message, None, "null error_message is no message");

    let Event::RawProcessingComplete(r) = parse("raw-processing-error.http").1 else {
        panic!("raw processing")
    };
    assert_eq!(r.status, "error");
    assert_eq!(r.error_message.as_deref(), Some("File could not be decoded"));
    assert_eq!(r.min_event, None);
}

#[test]
fn data_retrieval_complete_lists_its_files() {
    let Event::DataRetrievalComplete(d) = parse("data-retrieval-complete.http").1 else {
        panic!("data retrieval")
    };
    assert_eq!(d.status, "completed");
    assert_eq!(d.tracking_id.as_deref(), Some("a7da760f-7906-4cb7-964a-ab87f45ea962"));
    assert_eq!((d.study_id.as_str(), d.subject_id.as_deref()), ("1064", Some("19512")));
    assert_eq!(d.files.len(), 2);
    assert_eq!(d.files[0].file_type.as_deref(), Some("avro"));
    assert_eq!(d.files[0].file_size, Some(4570));
    assert_eq!(d.files[1].monitor_serial, None);
    assert_eq!(d.completed_at, utc("2019-07-17T18:18:23Z"));
}

#[test]
fn daily_statistics_complete_reads_wear_minutes_and_steps() {
    let Event::DailyStatisticsComplete(s) = parse("daily-statistics-complete.http").1 else {
        panic!("daily stats")
    };
    assert_eq!((s.study_id.as_str(), s.subject_id.as_deref()), ("189", Some("44732")));
    assert_eq!(s.date, NaiveDate::from_ymd_opt(2016, 6, 14));
    assert_eq!(s.wear_minutes, Some(812.0));
    assert_eq!(s.steps, Some(9002.0), "wear-filtered steps");
    assert_eq!(s.monitor_serials, vec!["MOS2D12345678".to_string()]);
}

#[test]
fn cp2_daily_statistics_complete_reads_its_totals() {
    let Event::Cp2DailyStatisticsComplete(s) = parse("cp2-daily-statistics-complete.http").1 else {
        panic!("cp2 daily stats")
    };
    assert_eq!((s.study_id.as_str(), s.subject_id.as_deref()), ("34583", Some("17920")));
    assert_eq!(s.subject_identifier.as_deref(), Some("000103"));
    assert_eq!(s.date, NaiveDate::from_ymd_opt(2013, 8, 7));
    assert_eq!(s.wear_minutes, Some(540.0));
    assert_eq!(s.steps, Some(1296.0));
    assert_eq!(s.day_stat_id.as_deref(), Some("1869240"));
}

#[test]
fn an_unknown_event_type_is_kept_with_what_can_be_read() {
    let Event::Unknown(u) = parse("unknown-event.http").1 else { panic!("an unknown event") };
    assert_eq!(u.name, "sleep_analysis_complete");
    assert_eq!(u.study_id.as_deref(), Some("189"));
    assert_eq!(u.status.as_deref(), Some("completed"));
}

#[test]
fn every_event_has_a_one_line_summary() {
    for name in [
        "upload-error.http",
        "raw-processing-error.http",
        "data-retrieval-complete.http",
        "daily-statistics-complete.http",
        "cp2-daily-statistics-complete.http",
        "unknown-event.http",
        "validation.http",
    ] {
        let summary = parse(name).1.summary();
        assert!(!summary.is_empty() && !summary.contains('\n'), "{name}: {summary:?}");
    }
    assert_eq!(
        parse("upload-error.http").1.summary(),
        "upload 85046 error (study 189 subject 44733): A problem occured during upload processing"
    );
}

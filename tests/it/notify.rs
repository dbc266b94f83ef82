//! The notification policy, rule by rule, with an injected clock and no desktop.

use chrono::{DateTime, Duration, FixedOffset, NaiveTime, TimeZone as _, Utc};
use cpwatch::event::upload::{Transition, UploadState};
use cpwatch::event::UploadStatus;
use cpwatch::notify::{Notice, Notifier, Target, Urgency, SETTLE_SECONDS};
use cpwatch::store::settings::{NotificationPrefs, QuietHours};
use cpwatch::store::uploads::UploadRow;
use cpwatch::store::{LiveEvent, UploadChange};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 14, 0, 0).single().expect("a time")
}

fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

fn state(status: UploadStatus, message: Option<&str>, subject: &str) -> UploadState {
    UploadState {
        status,
        subject_id: Some(subject.into()),
        started_at: None,
        completed_at: None,
        failed_at: None,
        error_message: message.map(str::to_string),
        first_epoch_utc: None,
        last_epoch_utc: None,
        first_epoch_subject_tz: None,
        last_epoch_subject_tz: None,
    }
}

/// An `upload` delivery as the writer publishes it; `upload_status` is the upload's
/// state after it (differs from `status` for a late `started`).
fn upload_event(
    study: &str,
    upload: &str,
    subject: &str,
    status: &str,
    upload_status: UploadStatus,
) -> LiveEvent {
    let message = (status == "error").then_some("A problem occured during upload processing");
    LiveEvent::Delivery {
        seq: 1,
        delivery_id: format!("{study}-{upload}-{status}"),
        event: "upload".into(),
        webhook_id: Some("15".into()),
        received_at: t0(),
        study_id: Some(study.into()),
        subject_id: Some(subject.into()),
        upload_id: Some(upload.into()),
        status: Some(status.into()),
        summary: format!("upload {upload} {status} (study {study} subject {subject})"),
        error_message: message.map(str::to_string),
        flag: None,
        upload: Some(UploadChange {
            study_id: study.into(),
            upload_id: upload.into(),
            state: state(upload_status, message, subject),
            transition: Transition::Created,
        }),
    }
}

fn completed(study: &str, upload: &str, subject: &str) -> LiveEvent {
    upload_event(study, upload, subject, "completed", UploadStatus::Completed)
}

fn failed(study: &str, upload: &str, subject: &str) -> LiveEvent {
    upload_event(study, upload, subject, "error", UploadStatus::Error)
}

fn started(study: &str, upload: &str, subject: &str) -> LiveEvent {
    upload_event(study, upload, subject, "started", UploadStatus::Started)
}

fn other(event: &str, status: &str, message: &str) -> LiveEvent {
    LiveEvent::Delivery {
        seq: 9,
        delivery_id: "x".into(),
        event: event.into(),
        webhook_id: None,
        received_at: t0(),
        study_id: Some("1064".into()),
        subject_id: Some("19526".into()),
        upload_id: None,
        status: Some(status.into()),
        summary: format!("raw processing {status} (study 1064 subject 19526): {message}"),
        error_message: Some(message.into()),
        flag: None,
        upload: None,
    }
}

fn notifier(prefs: NotificationPrefs) -> Notifier {
    Notifier::new(prefs, FixedOffset::east_opt(0).expect("UTC"))
}

/// Feeds events at the given offsets (seconds from t0), then flushes well after.
fn run(n: &mut Notifier, events: &[(i64, LiveEvent)]) -> Vec<Notice> {
    let mut shown = Vec::new();
    for (at, event) in events {
        let now = t0() + secs(*at);
        shown.extend(n.flush_due(now));
        shown.extend(n.observe(event, now));
    }
    shown.extend(n.flush_due(t0() + secs(3600)));
    shown
}

#[test]
fn by_default_failures_and_completions_notify_but_starts_and_other_successes_do_not() {
    let table: Vec<(&str, LiveEvent, usize)> = vec![
        ("an upload failure notifies", failed("189", "1", "7"), 1),
        ("an upload completion notifies", completed("189", "2", "7"), 1),
        ("an upload start does not", started("189", "3", "7"), 0),
        (
            "a raw-processing failure notifies",
            other("raw_processing_complete", "error", "File could not be decoded"),
            1,
        ),
        ("a raw-processing success does not", other("raw_processing_complete", "completed", ""), 0),
        ("daily statistics do not", other("daily_statistics_complete", "completed", ""), 0),
    ];
    for (rule, event, expected) in table {
        let mut n = notifier(NotificationPrefs::default());
        assert_eq!(run(&mut n, &[(0, event)]).len(), expected, "{rule}");
    }
}

#[test]
fn a_failure_is_shown_at_once_critical_and_names_study_subject_upload_and_error() {
    let mut n = notifier(NotificationPrefs::default());
    let shown = n.observe(&failed("189", "85046", "44733"), t0());
    assert_eq!(
        shown,
        vec![Notice {
            title: "Upload failed: Study 189".into(),
            body: "Subject 44733, upload 85046: A problem occured during upload processing".into(),
            urgency: Urgency::Critical,
            target: Target::Upload { study_id: "189".into(), upload_id: "85046".into() },
            count: 1,
        }]
    );
    assert_eq!(shown[0].target.route(), "#/uploads/189/85046");
}

#[test]
fn a_study_label_replaces_its_id() {
    let mut n = notifier(NotificationPrefs::default());
    n.set_labels([("189".to_string(), "Sleep study".to_string())].into_iter().collect());
    assert_eq!(n.observe(&failed("189", "1", "7"), t0())[0].title, "Upload failed: Sleep study");
}

#[test]
fn a_burst_within_the_window_becomes_one_notification() {
    let mut n = notifier(NotificationPrefs { group_window_seconds: 10, ..Default::default() });
    let burst: Vec<(i64, LiveEvent)> =
        (0..12).map(|i| (i / 2, completed("189", &format!("{i}"), &format!("{}", 100 + i % 4)))).collect();
    let shown = run(&mut n, &burst);
    assert_eq!(shown.len(), 1, "twelve completions in six seconds: one notification");
    assert_eq!(shown[0].title, "12 uploads completed in Study 189");
    assert_eq!(shown[0].body, "Subjects 100, 101 and 2 more");
    assert_eq!(shown[0].count, 12);
    assert_eq!(shown[0].target.route(), "#/uploads?study=189&status=completed");
}

#[test]
fn a_lone_completion_is_told_once_quiet_for_a_few_seconds_and_groups_close_and_reopen() {
    let mut n = notifier(NotificationPrefs { group_window_seconds: 30, ..Default::default() });
    assert_eq!(n.next_deadline(), None, "nothing pending: no timer needed");
    assert!(n.observe(&completed("189", "1", "7"), t0()).is_empty(), "a completion waits a moment");
    assert_eq!(n.next_deadline(), Some(t0() + secs(SETTLE_SECONDS.into())), "not the whole window");
    assert!(n.flush_due(t0() + secs(4)).is_empty(), "not before it has settled");
    let single = n.flush_due(t0() + secs(5));
    assert_eq!(single.len(), 1);
    assert_eq!(single[0].title, "Upload completed: Study 189", "alone: told individually");
    assert_eq!(single[0].body, "Subject 7, upload 1");
    assert_eq!(single[0].target.route(), "#/uploads/189/1");
    let later = run(&mut n, &[(20, completed("189", "2", "7")), (40, completed("189", "3", "7"))]);
    assert_eq!(later.len(), 2, "twenty seconds apart: two notifications");
}

#[test]
fn a_steady_trickle_is_told_when_its_window_ends() {
    let mut n = notifier(NotificationPrefs { group_window_seconds: 10, ..Default::default() });
    // One completion every 3 s, never quiet for 5 s: the window (10 s) bounds the wait.
    let trickle: Vec<(i64, LiveEvent)> =
        (0..6).map(|i| (i * 3, completed("189", &format!("{i}"), "7"))).collect();
    let mut shown = Vec::new();
    for (at, event) in &trickle {
        shown.extend(n.flush_due(t0() + secs(*at)));
        if *at == 9 {
            assert_eq!(n.next_deadline(), Some(t0() + secs(10)), "the window's end comes before the settle");
        }
        shown.extend(n.observe(event, t0() + secs(*at)));
    }
    shown.extend(n.flush_due(t0() + secs(60)));
    let titles: Vec<&str> = shown.iter().map(|n| n.title.as_str()).collect();
    assert_eq!(titles, ["4 uploads completed in Study 189", "2 uploads completed in Study 189"]);
}

#[test]
fn a_window_of_zero_tells_each_completion_at_once() {
    let mut n = notifier(NotificationPrefs { group_window_seconds: 0, ..Default::default() });
    assert!(n.observe(&completed("189", "1", "7"), t0()).is_empty());
    assert_eq!(n.next_deadline(), Some(t0()));
    assert_eq!(n.flush_due(t0()).len(), 1);
}

#[test]
fn a_failure_is_never_hidden_inside_a_group() {
    let mut n = notifier(NotificationPrefs { group_window_seconds: 10, ..Default::default() });
    let shown = run(
        &mut n,
        &[
            (0, completed("189", "1", "7")),
            (1, completed("189", "2", "7")),
            (2, failed("189", "3", "8")),
            (3, completed("189", "4", "7")),
        ],
    );
    let titles: Vec<&str> = shown.iter().map(|n| n.title.as_str()).collect();
    assert_eq!(titles, vec!["Upload failed: Study 189", "3 uploads completed in Study 189"]);
}

#[test]
fn groups_are_per_study() {
    let mut n = notifier(NotificationPrefs { group_window_seconds: 10, ..Default::default() });
    let shown = run(
        &mut n,
        &[(0, completed("189", "1", "7")), (1, completed("200", "2", "7")), (2, completed("189", "3", "7"))],
    );
    let mut titles: Vec<String> = shown.into_iter().map(|n| n.title).collect();
    titles.sort();
    assert_eq!(
        titles,
        vec!["2 uploads completed in Study 189".to_string(), "Upload completed: Study 200".to_string()]
    );
}

#[test]
fn during_quiet_hours_only_failures_break_through() {
    let quiet = QuietHours {
        start: NaiveTime::from_hms_opt(22, 0, 0).expect("a time"),
        end: NaiveTime::from_hms_opt(7, 0, 0).expect("a time"),
    };
    // Local time is UTC+1 here: 14:00 UTC is 15:00 local, 21:30 UTC is 22:30 local.
    let mut n = Notifier::new(
        NotificationPrefs { quiet_hours: Some(quiet), ..Default::default() },
        FixedOffset::east_opt(3600).expect("an offset"),
    );
    let night = t0() + Duration::minutes(7 * 60 + 30);
    assert!(n.observe(&completed("189", "1", "7"), night).is_empty());
    assert!(n.flush_due(night + secs(3600)).is_empty(), "a completion at 22:30 local is quiet");
    assert_eq!(
        n.observe(&failed("189", "2", "7"), night).len(),
        1,
        "a failure at 22:30 local breaks through"
    );
    let morning = t0() - Duration::hours(7); // 07:00 UTC = 08:00 local
    assert!(n.observe(&completed("189", "3", "7"), morning).is_empty());
    assert_eq!(n.flush_due(morning + secs(3600)).len(), 1, "08:00 local is after the quiet hours");
    let early = t0() - Duration::hours(8) - Duration::minutes(30); // 06:30 local
    assert!(n.observe(&completed("189", "4", "7"), early).is_empty());
    assert!(
        n.flush_due(early + secs(60)).is_empty(),
        "06:30 local is still quiet (the range wraps midnight)"
    );
}

#[test]
fn a_muted_study_never_notifies() {
    let mut n = notifier(NotificationPrefs { muted_studies: vec!["189".into()], ..Default::default() });
    let shown = run(
        &mut n,
        &[(0, failed("189", "1", "7")), (1, completed("189", "2", "7")), (2, failed("200", "3", "7"))],
    );
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].title, "Upload failed: Study 200");
}

#[test]
fn pause_silences_everything_until_it_ends_or_is_resumed() {
    let mut n = notifier(NotificationPrefs::default());
    n.pause_until(t0() + Duration::hours(1));
    assert!(n.observe(&failed("189", "1", "7"), t0()).is_empty(), "paused: even a failure is silent");
    assert!(n.observe(&completed("189", "2", "7"), t0()).is_empty());
    assert!(n.flush_due(t0() + Duration::minutes(30)).is_empty());
    assert_eq!(n.paused_until(t0()), Some(t0() + Duration::hours(1)));
    let after = t0() + Duration::hours(1) + secs(1);
    assert_eq!(n.paused_until(after), None, "the pause ends by itself");
    assert_eq!(n.observe(&failed("189", "3", "7"), after).len(), 1);
    n.pause_until(after + Duration::hours(5));
    n.resume();
    assert_eq!(n.observe(&failed("189", "4", "7"), after).len(), 1, "resume ends a pause at once");
}

#[test]
fn starts_notify_only_when_enabled_and_a_late_start_never_does() {
    let mut n =
        notifier(NotificationPrefs { upload_started: true, group_window_seconds: 5, ..Default::default() });
    let shown = run(&mut n, &[(0, started("189", "1", "7"))]);
    assert_eq!(shown[0].title, "Upload started: Study 189");
    let late = upload_event("189", "2", "7", "started", UploadStatus::Completed);
    assert!(run(&mut n, &[(100, late)]).is_empty(), "a started retry after completion is no news");
}

#[test]
fn disabled_kinds_stay_silent() {
    let prefs = NotificationPrefs {
        upload_completed: false,
        upload_failed: false,
        other_failures: false,
        ..Default::default()
    };
    let mut n = notifier(prefs);
    let events = [
        (0, completed("189", "1", "7")),
        (1, failed("189", "2", "7")),
        (2, other("raw_processing_complete", "error", "x")),
    ];
    assert!(run(&mut n, &events).is_empty());
}

fn started_row(upload: &str, started_at: DateTime<Utc>) -> UploadRow {
    let mut state = state(UploadStatus::Started, None, "44732");
    state.started_at = Some(started_at);
    UploadRow {
        study_id: "189".into(),
        upload_id: upload.into(),
        state,
        duration_seconds: None,
        first_seen_at: started_at,
        updated_at: started_at,
        deliveries: 1,
    }
}

#[test]
fn a_stalled_upload_notifies_once_after_the_threshold() {
    let mut n = notifier(NotificationPrefs::default());
    let threshold = Duration::hours(2);
    let rows = vec![started_row("1", t0()), started_row("2", t0() + Duration::hours(1))];
    assert_eq!(
        n.next_stall(&rows, threshold, t0()),
        Some(t0() + threshold),
        "the timer is set for the first stall"
    );
    assert!(n.stalled(&rows, threshold, t0() + Duration::minutes(119)).is_empty(), "not before two hours");
    let shown = n.stalled(&rows, threshold, t0() + Duration::minutes(125));
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].title, "Upload stalled: Study 189");
    assert_eq!(shown[0].body, "Subject 44732, upload 1 started 2 h 5 min ago and has not finished");
    assert!(n.stalled(&rows, threshold, t0() + Duration::minutes(130)).is_empty(), "told once");
    assert_eq!(
        n.next_stall(&rows, threshold, t0() + Duration::minutes(130)),
        Some(t0() + Duration::hours(3)),
        "next: the second upload"
    );
    assert_eq!(n.stalled(&rows, threshold, t0() + Duration::hours(4)).len(), 1);
    // Upload 1 finishes, then starts again (re-processing): it may stall again.
    let again = vec![started_row("1", t0() + Duration::hours(5))];
    assert!(n.stalled(&[], threshold, t0() + Duration::hours(5)).is_empty());
    assert_eq!(n.stalled(&again, threshold, t0() + Duration::hours(8)).len(), 1);
}

fn started_in(study: &str, upload: &str, subject: &str, started_at: DateTime<Utc>) -> UploadRow {
    let mut row = started_row(upload, started_at);
    row.study_id = study.into();
    row.state.subject_id = Some(subject.into());
    row
}

#[test]
fn uploads_found_stalled_together_are_told_as_one_per_study() {
    let mut n = notifier(NotificationPrefs::default());
    n.set_labels([("189".to_string(), "Sleep study".to_string())].into_iter().collect());
    let threshold = Duration::hours(2);
    // As at launch after a night off: three long-stalled uploads in one study, one in another.
    let rows = vec![
        started_in("189", "1", "7", t0()),
        started_in("189", "2", "8", t0() + Duration::hours(1)),
        started_in("189", "3", "7", t0() + Duration::hours(2)),
        started_in("200", "4", "9", t0()),
    ];
    let shown = n.stalled(&rows, threshold, t0() + Duration::hours(10));
    assert_eq!(shown.len(), 2, "{shown:#?}");
    assert_eq!(shown[0].title, "3 uploads stalled in Sleep study");
    assert_eq!(shown[0].body, "Started up to 10 h ago and not finished: Subjects 7, 8");
    assert_eq!(shown[0].count, 3);
    assert_eq!(shown[0].target.route(), "#/uploads?study=189&status=stalled");
    assert_eq!(shown[1].title, "Upload stalled: Study 200");
    assert!(n.stalled(&rows, threshold, t0() + Duration::hours(11)).is_empty(), "each told once");
}

#[test]
fn the_next_stall_is_always_ahead_and_never_for_a_muted_study() {
    let threshold = Duration::hours(2);
    let rows =
        vec![started_in("189", "1", "7", t0()), started_in("200", "2", "7", t0() + Duration::hours(1))];
    let mut muted =
        notifier(NotificationPrefs { muted_studies: vec!["189".into(), "200".into()], ..Default::default() });
    let late = t0() + Duration::hours(5);
    assert!(muted.stalled(&rows, threshold, late).is_empty(), "muted studies are not told");
    assert_eq!(muted.next_stall(&rows, threshold, late), None, "and set no timer that is already due");
    let mut n = notifier(NotificationPrefs::default());
    n.pause_until(late);
    let during = t0() + Duration::hours(4);
    assert!(n.stalled(&rows, threshold, during).is_empty(), "paused");
    assert_eq!(n.next_stall(&rows, threshold, during), None, "both are past due: told when the pause ends");
    assert_eq!(n.stalled(&rows, threshold, late).len(), 2, "told once the pause is over");
}

#[test]
fn a_processing_failure_is_told_with_its_own_error_message_not_a_piece_of_its_summary() {
    let mut event = other("raw_processing_complete", "error", "File could not be decoded");
    if let LiveEvent::Delivery { summary, .. } = &mut event {
        // A monitor serial with ": " in it: cutting the summary there would tell the wrong text.
        *summary =
            "raw processing error (study 1064 subject 19526, monitor MOS: 2): File could not be decoded"
                .into();
    }
    let mut n = notifier(NotificationPrefs::default());
    let shown = n.observe(&event, t0());
    assert_eq!(shown.len(), 1, "a failure is shown at once");
    assert_eq!(
        shown[0].body, "Subject 19526: File could not be decoded",
        "the notice carries the event's error message"
    );
}

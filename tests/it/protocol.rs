//! `cpwatch studies`: a study's name and compliance protocol from the command line, with
//! the defaults researchers know until set, and clear errors that change nothing.

use serde_json::Value;

use crate::harness::DataDir;

fn protocol(dir: &DataDir, study: &str) -> Value {
    let list: Value = serde_json::from_str(&dir.run_ok(&["studies", "list", "--json"], &[])).expect("JSON");
    list.as_array()
        .and_then(|l| l.iter().find(|s| s["study_id"] == study))
        .map(|s| s["protocol"].clone())
        .unwrap_or_else(|| panic!("study {study} is listed: {list}"))
}

#[test]
fn a_protocol_is_set_from_the_command_line_and_bad_values_are_refused() {
    let dir = DataDir::new();
    let said = dir.run_ok(&["studies", "set", "189", "--label", "Sleep study"], &[]);
    assert!(
        said.contains("a valid day has 600 min (10.0 h) of wear; 4 valid days a week"),
        "the defaults: {said}"
    );
    let said = dir.run_ok(
        &[
            "studies",
            "set",
            "189",
            "--valid-day-minutes",
            "960",
            "--weekend-day-required",
            "true",
            "--monitoring-from",
            "2026-11-02",
        ],
        &[],
    );
    assert!(said.contains("960 min (16.0 h)") && said.contains("one of them a weekend day"), "{said}");
    assert!(said.contains("monitoring from 2026-11-02"), "{said}");
    let kept = protocol(&dir, "189");
    assert_eq!(kept["valid_day_minutes"], 960);
    assert_eq!(kept["valid_days_per_week"], 4, "what is not given keeps its value");
    let list = dir.run_ok(&["studies", "list"], &[]);
    assert!(list.contains("study 189 (Sleep study)"), "the name is kept: {list}");

    for (args, says) in [
        (vec!["--valid-day-minutes", "0"], "valid_day_minutes must be 1 to 1440"),
        (vec!["--valid-days-per-week", "9"], "valid_days_per_week must be 1 to 7"),
        (vec!["--monitoring-until", "2026-11-01"], "before monitoring_from"),
        (vec!["--monitoring-until", "01/11/2026"], "use YYYY-MM-DD"),
        (vec!["--silent-after-days", "many"], "invalid value"),
    ] {
        let mut all = vec!["studies", "set", "189"];
        all.extend(&args);
        let out = dir.run(&all, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} is refused");
        assert!(stderr.contains(says), "{args:?}: the error says {says:?}: {stderr}");
    }
    assert_eq!(protocol(&dir, "189"), kept, "nothing changed by the refused commands");
    dir.run_ok(&["studies", "set", "189", "--monitoring-from", "none"], &[]);
    assert_eq!(protocol(&dir, "189")["monitoring_from"], Value::Null, "`none` clears a date");
}

/// `cpwatch compliance` on deliveries sent through a real receiver and a roster: the
/// numbers match a hand computation. Subject 1042 has yesterday valid (600 min) and the
/// day before not (599), and uploaded now; 1043 sent a day's statistics but no upload, so
/// with monitoring begun ten days ago it is silent since then; 1044 is on the roster from
/// five days ago and never synced.
#[test]
fn compliance_counts_valid_days_and_silence_from_deliveries() {
    use crate::harness::{client, Delivery};
    let dir = DataDir::new();
    let today = chrono::Local::now().date_naive();
    let ago = |n: i64| (today - chrono::Duration::days(n)).format("%Y-%m-%d").to_string();
    dir.run_ok(&["studies", "set", "189", "--monitoring-from", &ago(10)], &[]);
    // 1044 is expected from five days ago and never synced; 1043 is not on the roster.
    let roster = dir.dir.parent().expect("the test's temp dir").join("roster.csv");
    std::fs::write(
        &roster,
        format!("subject_id;label;enrolled_on\n1042;Anna;{}\n1044;Ben;{}\n", ago(20), ago(5)),
    )
    .expect("write the roster");
    dir.run_ok(&["roster", "import", "189", &roster.display().to_string()], &[]);
    let server = dir.serve();
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let daily = |id: &str, subject: &str, day: String, wear: u32| {
        let body = serde_json::json!({ "studyId": 189, "subjectId": subject, "date": format!("{day}T00:00:00"),
            "epochAggregation": { "wearMinutes": wear, "nonWearMinutes": 1440 - wear } });
        Delivery::new(cpwatch::event::DAILY_STATISTICS_COMPLETE, id, body.to_string())
    };
    for d in [
        daily("d-1", "1042", ago(1), 600),
        daily("d-2", "1042", ago(2), 599),
        daily("d-3", "1043", ago(1), 900),
        Delivery::upload("u-1", "189", "7001", "completed")
            .with_body(r#"{"status":"completed","uploadId":"7001","subjectId":"1042","studyId":"189"}"#),
    ] {
        let reply = rt.block_on(d.post(&client(), &server.url));
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    let c: Value =
        serde_json::from_str(&dir.run_ok(&["compliance", "189", "--json"], &[])).expect("compliance JSON");
    let subject =
        |id: &str| c["subjects"].as_array().and_then(|l| l.iter().find(|s| s["subject_id"] == id)).cloned();
    let a = subject("1042").unwrap_or_else(|| panic!("1042 is listed: {c}"));
    assert_eq!(a["valid_days_last_7"], 1, "600 counts, 599 does not: {a}");
    assert_eq!(a["days_observed_last_28"], 2, "{a}");
    assert_eq!(a["silent"], false, "it uploaded now: {a}");
    let b = subject("1043").unwrap_or_else(|| panic!("1043 is listed: {c}"));
    assert_eq!(b["silent"], true, "no upload since monitoring began: {b}");
    assert_eq!(b["valid_days_last_7"], 1, "{b}");
    assert_eq!(b["on_roster"], false, "marked as not on the roster: {b}");
    let never = subject("1044").unwrap_or_else(|| panic!("a roster member who never synced is listed: {c}"));
    assert_eq!(never["silent"], true, "expected since five days ago: {never}");
    assert_eq!(never["label"], "Ben", "{never}");
    assert_eq!(never["days_since_upload"], 5, "counted from the later of monitoring and enrolment: {never}");
    assert_eq!(a["label"], "Anna", "the roster's label: {a}");
    assert_eq!(c["silent"], 2, "{c}");
    assert_eq!(c["subjects"][0]["subject_id"], "1043", "the longest silence first: {c}");

    let csv = dir.run_ok(&["compliance", "189", "--csv"], &[]);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("subject_id,label,on_roster,valid_days_last_7"), "{csv}");
    assert_eq!(lines.len(), 4, "a header and a row per subject: {csv}");
    assert!(lines[3].contains("1042"), "the one not silent last: {csv}");
    assert!(lines[1].contains("not on the roster"), "{csv}");
    let text = dir.run_ok(&["compliance", "189"], &[]);
    assert!(text.contains("2 silent"), "{text}");

    // The digest, for scripts and mail: the upload came today, so none yesterday.
    let digest = dir.run_ok(&["digest", "--study", "189"], &[]);
    assert!(digest.starts_with("Study 189: 2 silent, "), "{digest}");
    assert!(digest.trim_end().ends_with("below target, 0 uploads yesterday, 0 failed"), "{digest}");
    let out = dir.run(&["digest", "--study", "999"], &[]);
    assert!(!out.status.success(), "an unknown study is an error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no study 999"), "{out:?}");
    server.stop();
}

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

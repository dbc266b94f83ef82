//! `cpwatch roster`, through the real binary on a real data directory: an import replaces
//! the study's roster as a whole, a bad file imports nothing and names its line, and the
//! list shows who has been seen in deliveries and who sent without being on the roster.

use std::path::PathBuf;

use serde_json::Value;

use crate::harness::{client, run_to_exit, wait_until, DataDir, Delivery};

/// Every roster row, for comparing the whole table before and after a refused import.
const ROSTER: &str =
    "SELECT study_id, subject_id, label, enrolled_on, expected_until, imported_at FROM roster ORDER BY 1, 2";

/// Writes a CSV file beside the data directory.
fn csv(data: &DataDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = data.config.with_file_name(name);
    std::fs::write(&path, bytes).expect("write the CSV file");
    path
}

fn import(data: &DataDir, study: &str, name: &str, bytes: &[u8]) -> std::process::Output {
    let path = csv(data, name, bytes);
    data.run(&["roster", "import", study, &path.to_string_lossy()], &[])
}

fn list_json(data: &DataDir, study: &str) -> Value {
    let out = data.run_ok(&["roster", "list", study, "--json"], &[]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("roster list --json is JSON ({e}): {out}"))
}

/// The subject ids of a listing's roster, with their labels and `seen`.
fn listed(list: &Value) -> Vec<(String, Value, bool)> {
    list["roster"]
        .as_array()
        .expect("a roster array")
        .iter()
        .map(|r| {
            (
                r["subject_id"].as_str().expect("a subject id").to_string(),
                r["label"].clone(),
                r["seen"].as_bool().expect("seen is a bool"),
            )
        })
        .collect()
}

#[test]
fn an_import_is_listed_and_a_second_import_replaces_it_with_the_changes_counted() {
    let data = DataDir::new();
    let first = import(
        &data,
        "189",
        "first.csv",
        b"\xef\xbb\xbfSubject_ID;Label;Enrolled_On;Expected_Until\r\n\
          1001;\"Lima; Ana\";2026-01-05;2026-03-01\r\n\
          1002;Bo;;\r\n\
          1003;;;\r\n",
    );
    assert!(first.status.success(), "a good file imports: {}", String::from_utf8_lossy(&first.stderr));
    assert!(
        String::from_utf8_lossy(&first.stdout)
            .contains("Imported 3 subjects into study 189 (3 added, 0 updated, 0 removed)"),
        "the import says what it did: {}",
        String::from_utf8_lossy(&first.stdout)
    );
    let list = list_json(&data, "189");
    assert_eq!(list["study_id"], "189");
    assert_eq!(
        listed(&list),
        [
            ("1001".to_string(), Value::from("Lima; Ana"), false),
            ("1002".to_string(), Value::from("Bo"), false),
            ("1003".to_string(), Value::Null, false),
        ],
        "every subject of the file is listed, none seen yet"
    );
    assert_eq!(list["roster"][0]["enrolled_on"], "2026-01-05");
    assert_eq!(list["roster"][0]["expected_until"], "2026-03-01");
    assert_eq!(list["unlisted"], Value::Array(Vec::new()));

    let second = data.run_ok(
        &[
            "roster",
            "import",
            "189",
            &csv(&data, "second.csv", b"subject_id,label\n1001,\"Lima; Ana\"\n1002,Bob\n1004,\n")
                .to_string_lossy(),
        ],
        &[],
    );
    assert!(
        second.contains("Imported 3 subjects into study 189 (1 added, 2 updated, 1 removed)"),
        "a changed file replaces the roster: 1004 added, 1002 renamed, 1003 gone, and 1001 updated \
         too, since a file without the date columns clears its dates: {second}"
    );
    assert_eq!(
        data.count("SELECT count(*) FROM roster WHERE enrolled_on IS NOT NULL OR expected_until IS NOT NULL"),
        0,
        "the second file has no dates, so no subject keeps the first file's"
    );
    assert_eq!(
        listed(&list_json(&data, "189")).into_iter().map(|(id, label, _)| (id, label)).collect::<Vec<_>>(),
        [
            ("1001".to_string(), Value::from("Lima; Ana")),
            ("1002".to_string(), Value::from("Bob")),
            ("1004".to_string(), Value::Null),
        ]
    );
    let text = data.run_ok(&["roster", "list", "189"], &[]);
    assert!(text.starts_with("subject"), "a table with a header: {text}");
    assert!(text.lines().any(|l| l.starts_with("1002") && l.contains("Bob")), "{text}");
    assert!(data.run_ok(&["roster", "list", "190"], &[]).contains("study 190 has no roster"));
}

#[test]
fn importing_the_same_file_again_counts_no_change() {
    let data = DataDir::new();
    let file = b"subject_id,enrolled_on\n1001,2026-01-05\n1002,\n";
    assert!(import(&data, "189", "a.csv", file).status.success());
    let again = import(&data, "189", "b.csv", file);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("(0 added, 0 updated, 0 removed)"),
        "importing the same file again counts no change: {}",
        String::from_utf8_lossy(&again.stdout)
    );
}

#[test]
fn every_bad_file_is_refused_naming_its_line_and_leaves_the_roster_as_it_was() {
    let data = DataDir::new();
    let good = import(&data, "189", "good.csv", b"subject_id,label\n1001,Ana\n1002,Bo\n");
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    assert!(import(&data, "190", "other.csv", b"subject_id\n2001\n").status.success());
    let before = data.table(ROSTER);
    assert_eq!(before.len(), 3);
    let cases: [(&str, &[u8], &[&str]); 8] = [
        ("missing subject_id column", b"id,label\n1001,Ana\n", &["line 1: no subject_id column"]),
        (
            "duplicate ids",
            b"subject_id\n1001\n1002\n1001\n",
            &["line 4: subject 1001 is listed twice, on lines 2 and 4"],
        ),
        ("empty file", b"", &["line 1: the file is empty"]),
        (
            "header only",
            b"subject_id,label\r\n",
            &["line 1: the file names its columns but lists no subjects"],
        ),
        ("not UTF-8", b"subject_id,label\n1001,Ana\n1002,Ren\xe9\n", &["line 3: the file is not UTF-8 text"]),
        (
            "bad date",
            b"subject_id,enrolled_on\n1001,2026-01-05\n1002,05/01/2026\n",
            &["line 3: enrolled_on \"05/01/2026\" is not a date written YYYY-MM-DD"],
        ),
        (
            "expected_until before enrolled_on",
            b"subject_id,enrolled_on,expected_until\n1001,2026-03-05,2026-03-04\n",
            &["line 2: expected_until 2026-03-04 is before enrolled_on 2026-03-05"],
        ),
        (
            "several bad rows",
            b"subject_id,enrolled_on\n1001,2026-01-05\n,2026-01-05\n1003,someday\n1001,\n",
            &["3 problems", "line 3: no subject_id", "line 4: enrolled_on", "line 5: subject 1001"],
        ),
    ];
    for (i, (what, bytes, messages)) in cases.iter().enumerate() {
        let out = import(&data, "189", &format!("bad-{i}.csv"), bytes);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{what}: the import fails; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(stderr.contains("was not imported, the roster is unchanged"), "{what}: {stderr}");
        for message in *messages {
            assert!(stderr.contains(message), "{what}: the error says {message:?}: {stderr}");
        }
        assert_eq!(
            data.table(ROSTER),
            before,
            "{what}: a refused file leaves every roster exactly as it was"
        );
    }
}

#[test]
fn a_roster_is_read_from_stdin_and_a_study_id_must_be_plausible() {
    let data = DataDir::new();
    let path = csv(&data, "stdin.csv", b"subject_id\n1001\n");
    let mut cmd = data.command();
    cmd.args(["roster", "import", "189", "-"]).stdin(std::fs::File::open(&path).expect("open the CSV"));
    let out = run_to_exit(cmd, "cpwatch roster import 189 -");
    assert!(out.status.success(), "`-` reads stdin: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(data.count("SELECT count(*) FROM roster WHERE study_id = '189'"), 1);

    let long = "9".repeat(65);
    for study in ["", "  ", "18\u{7}9", long.as_str()] {
        let out = import(&data, study, "id.csv", b"subject_id\n1001\n");
        assert!(!out.status.success(), "{study:?} is refused as a study id");
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not a study id"), "{study:?}");
    }
    assert_eq!(data.count("SELECT count(*) FROM roster"), 1, "a refused study id stores nothing");
}

#[tokio::test]
async fn a_subject_seen_in_a_delivery_is_marked_seen_and_one_not_on_the_roster_is_listed_as_such() {
    let data = DataDir::new();
    let server = data.serve();
    let http = client();
    for (n, subject) in ["1001", "5555"].iter().enumerate() {
        let body =
            format!(r#"{{"status":"completed","uploadId":"u-{n}","subjectId":"{subject}","studyId":"189"}}"#);
        let reply = Delivery::new("upload", &format!("roster-{n}"), body).post(&http, &server.url).await;
        assert_eq!(reply.status, 200, "the delivery is accepted: {}", reply.body);
    }
    wait_until("both subjects are stored", || {
        data.count("SELECT count(*) FROM subjects WHERE study_id = '189'") == 2
    });
    let out = import(&data, "189", "roster.csv", b"subject_id,label\n1001,Ana\n1002,Bo\n");
    assert!(
        out.status.success(),
        "an import beside a running receiver: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("has sent no deliveries"),
        "no warning about the id of a study that has sent"
    );
    let list = list_json(&data, "189");
    assert_eq!(
        listed(&list).into_iter().map(|(id, _, seen)| (id, seen)).collect::<Vec<_>>(),
        [("1001".to_string(), true), ("1002".to_string(), false)],
        "a subject a delivery named is seen; one that never synced is listed, not seen"
    );
    assert_eq!(list["unlisted"], serde_json::json!(["5555"]), "a subject who sent but is not on the roster");
    let text = data.run_ok(&["roster", "list", "189"], &[]);
    let line =
        text.lines().find(|l| l.starts_with("5555")).unwrap_or_else(|| panic!("5555 is shown: {text}"));
    assert!(line.contains("not on the roster"), "marked as such: {line}");
    server.stop();
}

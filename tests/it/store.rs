//! The store through its writer, in process, on real SQLite files: duplicates, upload
//! states, per-day counts, stalled uploads (with an injected clock) and retention.

use chrono::{DateTime, Duration, Local, Utc};
use cpwatch::event;
use cpwatch::store::uploads::{self, UploadQuery};
use cpwatch::store::{self, writer, NewDelivery, Stored};
use cpwatch::store::{retention, status, studies, subjects, Filter};
use serde_json::json;

fn delivery(id: &str, event_name: &str, body: &str, at: DateTime<Utc>) -> NewDelivery {
    NewDelivery {
        delivery_id: id.into(),
        event_name: event_name.into(),
        webhook_id: Some("15".into()),
        received_at: at,
        peer: Some("127.0.0.1:1".into()),
        forwarded_for: None,
        auth: "open".into(),
        headers: vec![("x-actigraph-event".into(), event_name.into())],
        body: body.as_bytes().to_vec(),
        parsed: event::parse(event_name, body.as_bytes()),
    }
}

fn upload_body(upload: &str, status: &str) -> String {
    json!({ "status": status, "uploadId": upload, "studyId": "189", "subjectId": "44732" }).to_string()
}

struct Store {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    writer: Option<writer::WriterHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Store {
    fn open() -> Store {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = store::prepare_data_dir(&dir.path().join("data")).expect("the data dir");
        let (handle, thread) = writer::spawn(path.clone(), 100).expect("the writer starts");
        Store { _dir: dir, path, writer: Some(handle), thread: Some(thread) }
    }

    async fn put(&self, d: NewDelivery) -> Stored {
        self.writer.as_ref().expect("open").store(d).await.expect("stored")
    }

    fn read(&self) -> rusqlite::Connection {
        store::open(&self.path).expect("a read connection")
    }

    fn close(mut self) {
        drop(self.writer.take());
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the writer thread ends cleanly");
        }
    }
}

#[tokio::test]
async fn a_retry_is_stored_once_and_a_reused_id_with_another_body_is_kept() {
    let s = Store::open();
    let now = Utc::now();
    let first = s.put(delivery("d-1", "upload", &upload_body("1", "started"), now)).await;
    let Stored::New { seq, .. } = first else { panic!("the first copy is new") };
    for _ in 0..3 {
        assert_eq!(
            s.put(delivery("d-1", "upload", &upload_body("1", "started"), now)).await,
            Stored::Duplicate { seq }
        );
    }
    assert!(matches!(
        s.put(delivery("d-1", "upload", &upload_body("1", "completed"), now)).await,
        Stored::New { .. }
    ));
    let conn = s.read();
    let dups: i64 =
        conn.query_row("SELECT duplicates FROM deliveries WHERE seq = ?1", [seq], |r| r.get(0)).expect("row");
    assert_eq!(dups, 3, "retries are counted on the first copy");
    let rows: i64 = conn.query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0)).expect("count");
    assert_eq!(rows, 2);
    let state = uploads::state(&conn, "189", "1").expect("query").expect("the upload");
    assert_eq!(state.status, event::UploadStatus::Completed);
    assert_totals_agree(&conn);
    s.close();
}

/// The trigger-kept totals agree with counting every row.
fn assert_totals_agree(conn: &rusqlite::Connection) {
    let counted: (i64, i64) = conn
        .query_row("SELECT count(*), coalesce(sum(duplicates), 0) FROM deliveries", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("count");
    let counts = status::counts(conn, Utc::now()).expect("counts");
    assert_eq!((counts.deliveries, counts.duplicates), counted, "kept totals equal a full count");
    let by_status: (i64, i64, i64) = conn
        .query_row(
            "SELECT sum(status = 'started'), sum(status = 'completed'), sum(status = 'error') FROM uploads",
            [],
            |r| {
                Ok((
                    r.get::<_, Option<i64>>(0)?.unwrap_or(0),
                    r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                    r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                ))
            },
        )
        .expect("count");
    assert_eq!((counts.uploads_started, counts.uploads_completed, counts.uploads_error), by_status);
}

#[tokio::test]
async fn concurrent_deliveries_are_all_committed() {
    let s = Store::open();
    let writer = s.writer.clone().expect("open");
    let mut tasks = Vec::new();
    for i in 0..300 {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            writer
                .store(delivery(
                    &format!("c-{i}"),
                    "upload",
                    &upload_body(&i.to_string(), "completed"),
                    Utc::now(),
                ))
                .await
        }));
    }
    for task in tasks {
        assert!(matches!(task.await.expect("joins"), Ok(Stored::New { .. })));
    }
    drop(writer);
    let conn = s.read();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM uploads WHERE status = 'completed'", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 300);
    s.close();
}

#[tokio::test]
async fn per_day_counts_follow_each_upload_to_its_current_status() {
    let s = Store::open();
    let now = Utc::now();
    for (i, (upload, status)) in [
        ("1", "started"),
        ("1", "error"),
        ("1", "completed"),
        ("2", "started"),
        ("3", "error"),
        ("1", "started"),
    ]
    .iter()
    .enumerate()
    {
        s.put(delivery(&format!("p-{i}"), "upload", &upload_body(upload, status), now)).await;
    }
    let conn = s.read();
    let today = Local::now().date_naive();
    let cards = studies::cards(&conn, today, now, Duration::hours(2)).expect("cards");
    assert_eq!(cards.len(), 1);
    let expected = uploads::StatusCounts { started: 1, completed: 1, error: 1 };
    assert_eq!(cards[0].today, expected, "each upload counted once, under its current status");
    let from_uploads: Vec<(String, i64)> = conn
        .prepare("SELECT status, count(*) FROM uploads GROUP BY status ORDER BY status")
        .and_then(|mut st| st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .expect("counts");
    let from_days: Vec<(String, i64)> = conn
        .prepare("SELECT status, sum(uploads) FROM upload_days GROUP BY status HAVING sum(uploads) > 0 ORDER BY status")
        .and_then(|mut st| st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .expect("counts");
    assert_eq!(from_days, from_uploads, "the per-day table agrees with the uploads table");
    s.close();
}

#[tokio::test]
async fn an_upload_started_longer_ago_than_the_threshold_is_stalled() {
    let s = Store::open();
    let start = Utc::now();
    s.put(delivery("s-1", "upload", &upload_body("1", "started"), start)).await;
    s.put(delivery("s-2", "upload", &upload_body("2", "started"), start)).await;
    s.put(delivery("s-3", "upload", &upload_body("2", "completed"), start)).await;
    let conn = s.read();
    let today = Local::now().date_naive();
    let threshold = Duration::hours(2);
    let soon = studies::cards(&conn, today, start + Duration::minutes(119), threshold).expect("cards");
    assert_eq!(soon[0].stalled_count, 0, "not yet stalled before the threshold");
    let later = studies::cards(&conn, today, start + Duration::minutes(121), threshold).expect("cards");
    assert_eq!(later[0].stalled_count, 1, "stalled after the threshold; a completed upload never is");
    assert_eq!(later[0].stalled[0].upload_id, "1");
    s.close();
}

#[tokio::test]
async fn retention_deletes_only_what_is_older_than_the_cutoff() {
    let s = Store::open();
    let now = Utc::now();
    let old = now - Duration::days(40);
    s.put(delivery("r-1", "upload", &upload_body("1", "completed"), old)).await;
    s.put(delivery("r-2", "upload", &upload_body("2", "completed"), now)).await;
    s.close_writer_then(|path| {
        let mut conn = store::open(path).expect("a connection");
        let deleted = retention::prune(&mut conn, now - Duration::days(30)).expect("prune");
        assert!(deleted >= 2, "the old delivery and its upload: {deleted}");
        let uploads = uploads::list(&conn, &Filter::default()).expect("uploads");
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads[0].upload_id, "2", "recent history is kept");
        let page = uploads::page(&conn, &UploadQuery { limit: 10, ..Default::default() }).expect("page");
        assert_eq!(page.items.len(), 1);
    });
}

impl Store {
    fn close_writer_then(mut self, check: impl FnOnce(&std::path::Path)) {
        drop(self.writer.take());
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the writer thread ends cleanly");
        }
        check(&self.path);
    }
}

#[tokio::test]
async fn stalled_uploads_can_be_listed_and_subjects_are_counted_and_paged() {
    let s = Store::open();
    let now = Utc::now();
    let body = |upload: &str, status: &str, subject: &str| {
        json!({ "status": status, "uploadId": upload, "studyId": "189", "subjectId": subject }).to_string()
    };
    s.put(delivery("a1", "upload", &body("1", "started", "A"), now)).await;
    s.put(delivery("a2", "upload", &body("2", "started", "A"), now)).await;
    s.put(delivery("a3", "upload", &body("2", "error", "A"), now)).await;
    s.put(delivery("a4", "upload", &body("2", "completed", "A"), now)).await;
    s.put(delivery("b1", "upload", &body("3", "error", "B"), now + Duration::seconds(1))).await;
    let raw = json!({ "study_id": 189, "subject_id": "C", "status": "Completed" }).to_string();
    s.put(delivery("c1", "raw_processing_complete", &raw, now + Duration::seconds(2))).await;
    let conn = s.read();

    let stalled = |before| {
        let q = UploadQuery { stalled_before: Some(before), limit: 50, ..Default::default() };
        uploads::page(&conn, &q).expect("page").items.into_iter().map(|u| u.upload_id).collect::<Vec<_>>()
    };
    assert!(stalled(now).is_empty(), "nothing started before now");
    assert_eq!(stalled(now + Duration::hours(3)), vec!["1".to_string()], "only the upload still started");

    let first = subjects::page(&conn, "189", None, 2).expect("subjects");
    let ids: Vec<&str> = first.items.iter().map(|s| s.subject_id.as_str()).collect();
    assert_eq!(ids, vec!["C", "B"], "most recently active first");
    let next = subjects::page(&conn, "189", first.next_cursor.as_deref(), 2).expect("subjects");
    assert_eq!(next.items.len(), 1);
    assert_eq!(next.next_cursor, None);
    let a = &next.items[0];
    assert_eq!(a.subject_id, "A");
    assert_eq!(
        a.uploads,
        uploads::StatusCounts { started: 1, completed: 1, error: 0 },
        "counted by current status"
    );
    assert_eq!(first.items[0].other_events, 1, "subject C's raw-processing event");
    s.close();
}

#[tokio::test]
async fn a_subjects_upload_counts_follow_its_uploads_even_when_a_delivery_names_no_subject() {
    let s = Store::open();
    let at = Utc::now();
    let with_subject = |upload: &str, status: &str| {
        json!({ "status": status, "uploadId": upload, "studyId": "189", "subjectId": "A" }).to_string()
    };
    s.put(delivery("1", "upload", &with_subject("1", "started"), at)).await;
    s.put(delivery("2", "upload", &with_subject("2", "started"), at)).await;
    // A delivery without a subject id: the upload keeps its subject, whose counts move.
    let later = at + Duration::seconds(5);
    let without = json!({ "status": "completed", "uploadId": "1", "studyId": "189" }).to_string();
    s.put(delivery("3", "upload", &without, later)).await;
    s.put(delivery("4", "upload", &with_subject("2", "error"), at + Duration::seconds(1))).await;
    let conn = s.read();
    let a = subjects::page(&conn, "189", None, 10).expect("subjects").items.remove(0);
    assert_eq!(
        a.uploads,
        uploads::StatusCounts { started: 0, completed: 1, error: 1 },
        "each upload counted once, under its current status"
    );
    assert_eq!(a.last_upload_at.map(|t| t.timestamp_millis()), Some(later.timestamp_millis()));
    let recount: (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*) FILTER (WHERE status = 'started'), count(*) FILTER (WHERE status = 'completed'),
                    count(*) FILTER (WHERE status = 'error') FROM uploads WHERE study_id = '189' AND subject_id = 'A'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .expect("recount");
    assert_eq!(
        recount,
        (a.uploads.started, a.uploads.completed, a.uploads.error),
        "the kept counts equal a recount"
    );
    s.close();
}

#[tokio::test]
async fn the_command_line_list_and_the_dashboard_pages_break_ties_the_same_way() {
    let s = Store::open();
    let at = Utc::now();
    // Three uploads changed at the same moment, in two studies.
    for (id, study, upload) in [("t1", "189", "9"), ("t2", "204", "7"), ("t3", "204", "8")] {
        let body = json!({ "status": "completed", "uploadId": upload, "studyId": study, "subjectId": "1" });
        s.put(delivery(id, "upload", &body.to_string(), at)).await;
    }
    let conn = s.read();
    let keys = |rows: &[cpwatch::store::uploads::UploadRow]| {
        rows.iter().map(|u| format!("{}/{}", u.study_id, u.upload_id)).collect::<Vec<_>>()
    };
    let listed = keys(&uploads::list(&conn, &Filter::default()).expect("list"));
    let mut paged = Vec::new();
    let mut q = UploadQuery { limit: 1, ..Default::default() };
    loop {
        let page = uploads::page(&conn, &q).expect("page");
        paged.extend(keys(&page.items));
        match page.next_cursor {
            Some(next) => q.cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, vec!["204/8", "204/7", "189/9"], "ties: by study, then by upload, newest first");
    assert_eq!(paged, listed, "page by page, the dashboard lists the same uploads in the same order");
}

/// The subject-day table follows the two daily-statistics events: the later delivery for
/// a subject-day replaces the earlier one, a retry of the earlier one changes nothing,
/// and a day with no subject or date is stored but makes no subject-day.
#[tokio::test]
async fn daily_statistics_keep_one_row_per_subject_day_the_latest_delivered() {
    let s = Store::open();
    let now = Utc::now();
    let daily = |wear: u32, non_wear: u32| {
        json!({ "studyId": 189, "subjectId": 44732, "date": "2016-06-14T00:00:00",
                "epochAggregation": { "wearMinutes": wear, "nonWearMinutes": non_wear } })
        .to_string()
    };
    let cp2 = |wear: u32| {
        json!({ "studyId": "189", "subjectId": "44733", "date": "2016-06-14", "wearMinutes": wear, "totalMinutes": 900 })
            .to_string()
    };
    type Row = (String, String, Option<f64>, Option<f64>, String);
    let rows = |conn: &rusqlite::Connection| -> Vec<Row> {
        let mut stmt = conn
            .prepare(
                "SELECT subject_id, day, wear_minutes, total_minutes, event FROM subject_days ORDER BY subject_id",
            )
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect()
    };
    s.put(delivery("ds-1", event::DAILY_STATISTICS_COMPLETE, &daily(599, 700), now)).await;
    s.put(delivery("cp2-1", event::CP2_DAILY_STATISTICS_COMPLETE, &cp2(540), now)).await;
    // The same subject-day again, later: it replaces the first.
    s.put(delivery("ds-2", event::DAILY_STATISTICS_COMPLETE, &daily(600, 699), now)).await;
    // A retry of the first one (same id, same body) is not applied.
    assert!(matches!(
        s.put(delivery("ds-1", event::DAILY_STATISTICS_COMPLETE, &daily(599, 700), now)).await,
        Stored::Duplicate { .. }
    ));
    // No subject: stored, no subject-day.
    let anonymous = json!({ "studyId": 189, "date": "2016-06-14" }).to_string();
    s.put(delivery("ds-3", event::DAILY_STATISTICS_COMPLETE, &anonymous, now)).await;
    let conn = s.read();
    assert_eq!(
        rows(&conn),
        vec![
            (
                "44732".into(),
                "2016-06-14".into(),
                Some(600.0),
                Some(1299.0),
                event::DAILY_STATISTICS_COMPLETE.into()
            ),
            (
                "44733".into(),
                "2016-06-14".into(),
                Some(540.0),
                Some(900.0),
                event::CP2_DAILY_STATISTICS_COMPLETE.into()
            ),
        ]
    );
    drop(conn);
    s.close();
}

//! Fills a data directory with a large, realistic history (for the dashboard benchmark):
//! uploads spread over the last 30 days across many studies and subjects, each with its
//! `started` and terminal deliveries, and every derived table the writer keeps (per-day
//! counts, studies, subjects, totals) consistent with them. Written in bulk SQL, because
//! a million deliveries through the receiver would take the benchmark longer than the
//! measurements themselves.

use std::path::Path;

use anyhow::Context as _;

/// Writes about `deliveries` deliveries (two per finished upload, one per started one).
pub fn run(data_dir: &Path, deliveries: u64, studies: u64) -> anyhow::Result<()> {
    let db = cpwatch::store::prepare_data_dir(data_dir)?;
    let conn = cpwatch::store::open(&db)?;
    let existing: i64 = conn.query_row("SELECT count(*) FROM deliveries", [], |row| row.get(0))?;
    anyhow::ensure!(
        existing == 0,
        "{} already holds deliveries: seed an empty data directory",
        data_dir.display()
    );
    let uploads = deliveries / 2;
    let now = chrono::Utc::now().timestamp_millis();
    let step = (30 * 24 * 3600 * 1000) / uploads.max(1);
    let started = std::time::Instant::now();
    // 1 % still started (one delivery), 4 % failed, the rest completed; 200 subjects per study.
    let sql = format!(
        "BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
         INSERT INTO uploads (study_id, upload_id, subject_id, status, started_at, completed_at, failed_at,
             error_message, first_epoch_utc, last_epoch_utc, first_epoch_subject_tz, last_epoch_subject_tz,
             first_seen_at, first_seen_day, updated_at, deliveries)
         SELECT s.study, s.upload, s.subject, s.status, s.at,
                CASE s.status WHEN 'completed' THEN s.at + 60000 END,
                CASE s.status WHEN 'error' THEN s.at + 60000 END,
                CASE s.status WHEN 'error' THEN 'Device clock invalid on monitor ' || s.upload END,
                CASE s.status WHEN 'completed' THEN s.at - 604800000 END,
                CASE s.status WHEN 'completed' THEN s.at END,
                NULL, NULL, s.at, date(s.at / 1000, 'unixepoch', 'localtime'),
                CASE s.status WHEN 'started' THEN s.at ELSE s.at + 60000 END,
                CASE s.status WHEN 'started' THEN 1 ELSE 2 END
         FROM (SELECT CAST(1000 + i % {studies} AS TEXT) AS study, CAST(100000 + i AS TEXT) AS upload,
                      CAST(50000 + (i / {studies}) % 200 AS TEXT) AS subject,
                      CASE WHEN i % 100 = 0 THEN 'started' WHEN i % 25 = 1 THEN 'error' ELSE 'completed' END AS status,
                      {now} - i * {step} AS at
               FROM n) AS s;
         INSERT INTO deliveries (delivery_id, body_sha256, event, webhook_id, received_at, peer, auth, headers,
             body, study_id, subject_id, upload_id, status, summary)
         SELECT 'seed-' || upload_id || '-started', randomblob(32), 'upload', '15', started_at, '127.0.0.1:1',
                'open (no authentication configured)', '[]',
                CAST(json_object('status', 'started', 'uploadId', upload_id, 'studyId', study_id,
                                 'subjectId', subject_id) AS BLOB),
                study_id, subject_id, upload_id, 'started',
                'upload ' || upload_id || ' started (study ' || study_id || ' subject ' || subject_id || ')'
         FROM uploads ORDER BY started_at;
         INSERT INTO deliveries (delivery_id, body_sha256, event, webhook_id, received_at, peer, auth, headers,
             body, study_id, subject_id, upload_id, status, summary)
         SELECT 'seed-' || upload_id || '-' || status, randomblob(32), 'upload', '15', updated_at, '127.0.0.1:1',
                'open (no authentication configured)', '[]',
                CAST(json_object('status', status, 'uploadId', upload_id, 'studyId', study_id,
                                 'subjectId', subject_id, 'message', error_message) AS BLOB),
                study_id, subject_id, upload_id, status,
                'upload ' || upload_id || ' ' || status || ' (study ' || study_id || ' subject ' || subject_id || ')'
         FROM uploads WHERE status <> 'started' ORDER BY updated_at;
         INSERT INTO upload_days (study_id, day, status, uploads)
         SELECT study_id, first_seen_day, status, count(*) FROM uploads GROUP BY study_id, first_seen_day, status;
         INSERT INTO studies (study_id, label, first_seen_at, last_delivery_at)
         SELECT study_id, NULL, min(first_seen_at), max(updated_at) FROM uploads GROUP BY study_id;
         INSERT INTO subjects (study_id, subject_id, subject_identifier, first_seen_at, last_delivery_at,
             uploads_started, uploads_completed, uploads_error, last_upload_at, other_events)
         SELECT study_id, subject_id, NULL, min(first_seen_at), max(updated_at), sum(status = 'started'),
                sum(status = 'completed'), sum(status = 'error'), max(updated_at), 0
         FROM uploads GROUP BY study_id, subject_id;
         COMMIT;",
        last = uploads.saturating_sub(1),
    );
    conn.execute_batch(&sql).context("seeding the database")?;
    let stored: i64 = conn.query_row("SELECT deliveries FROM delivery_totals", [], |row| row.get(0))?;
    eprintln!(
        "seed: {stored} deliveries, {uploads} uploads in {studies} studies written to {} in {:.1} s",
        db.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

//! Fills a data directory with a large, realistic history (for the dashboard benchmark):
//! uploads spread over the last 30 days across many studies and subjects, each with its
//! `started` and terminal deliveries, and every derived table the writer keeps (per-day
//! counts, studies, subjects, totals) consistent with them. Written in bulk SQL, because
//! a million deliveries through the receiver would take the benchmark longer than the
//! measurements themselves.
//!
//! Beside that history, one study for the compliance view at scale (issue 11): 5,000
//! subjects with a year of subject-days each, a roster and a protocol, dated back from the
//! day the seed runs so that the last 28 complete days are always filled. Only what the
//! compliance API reads is written for it (subjects, roster, protocol, subject-days), not
//! the 1.7 million daily-statistics deliveries behind the subject-days, so the other
//! queries measure the same history as before.

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
    compliance_study(&conn, chrono::Local::now().date_naive(), now)
}

/// The study the compliance benchmark reads.
const COMPLIANCE_STUDY: &str = "2000";
/// Subjects with subject-days in it (ids 20000 to 24999), and days of history each.
const COMPLIANCE_SUBJECTS: u32 = 5_000;
const COMPLIANCE_DAYS: u32 = 365;
/// Roster members who never synced (ids 25000 on), enrolled in the last 20 days.
const NEVER_SYNCED: u32 = 100;

/// Writes [`COMPLIANCE_STUDY`]: subject-days for the complete days before `today` (the
/// local date, as the API takes it), the subjects' last uploads as of `now`, a roster and
/// the default (NHANES) protocol monitored for the year.
///
/// Per subject-day a fixed hash `h` of (subject, day) in 0..1024 decides what the day is,
/// so two seeds give the same store up to the dates. Most subjects miss 6 % of their days
/// and wear the device under 10 h on another 10 %; every fifth subject is a poor wearer
/// (15 % missing, 30 % short); under 1 % of the days have statistics without a wear value.
/// Every 50th subject (100) has been silent for 4 to 43 days: no upload and no days since;
/// another 100 seen subjects are not on the roster.
fn compliance_study(conn: &rusqlite::Connection, today: chrono::NaiveDate, now: i64) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    const DAY_MS: i64 = 24 * 3600 * 1000;
    const HOUR_MS: i64 = 3600 * 1000;
    let sql = format!(
        "BEGIN;
         WITH RECURSIVE
           s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {last_subject}),
           b(back) AS (SELECT {days} UNION ALL SELECT back - 1 FROM b WHERE back > 1),
           d(back, day) AS MATERIALIZED (SELECT back, date('{today}', '-' || back || ' days') FROM b),
           cell(i, back, day, h) AS (
             SELECT s.i, d.back, d.day, (s.i * {days} + d.back) * 2654435761 % 4294967296 / 4194304
             FROM s CROSS JOIN d)
         INSERT INTO subject_days (study_id, subject_id, day, wear_minutes, total_minutes, event, delivery_seq)
         SELECT '{study}', CAST(20000 + i AS TEXT), day,
                CASE WHEN h >= 1016 THEN NULL
                     WHEN h < CASE WHEN i % 5 = 0 THEN 450 ELSE 160 END THEN 30 + h * 13 % 560
                     ELSE 600 + h * 7 % 361 END,
                CASE WHEN i % 4 = 0 THEN 1440 - h % 120 ELSE 1440 END,
                CASE WHEN i % 4 = 0 THEN 'cp2_daily_statistics_complete' ELSE 'daily_statistics_complete' END,
                0
         FROM cell
         WHERE h >= CASE WHEN i % 5 = 0 THEN 150 ELSE 60 END
           AND NOT (i % 50 = 7 AND back < 4 + i % 40);
         WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {last_subject})
         INSERT INTO subjects (study_id, subject_id, subject_identifier, first_seen_at, last_delivery_at,
             uploads_started, uploads_completed, uploads_error, last_upload_at, other_events)
         SELECT '{study}', subject_id, NULL, {first_seen}, last, 0, 0, 0, last,
                (SELECT count(*) FROM subject_days d WHERE d.study_id = '{study}' AND d.subject_id = t.subject_id)
         FROM (SELECT CAST(20000 + i AS TEXT) AS subject_id,
                      CASE WHEN i % 50 = 7 THEN {now} - (4 + i % 40) * {DAY_MS} - 3 * {HOUR_MS}
                           ELSE {now} - (i % 40) * {HOUR_MS} END AS last
               FROM s) AS t;
         WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {last_subject})
         INSERT INTO roster (study_id, subject_id, label, enrolled_on, expected_until, imported_at)
         SELECT '{study}', CAST(20000 + i AS TEXT), 'Participant ' || (20000 + i),
                date('{today}', '-{days} days'), NULL, {now}
         FROM s WHERE i % 50 <> 13;
         WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < {last_never})
         INSERT INTO roster (study_id, subject_id, label, enrolled_on, expected_until, imported_at)
         SELECT '{study}', CAST(25000 + i AS TEXT), 'Participant ' || (25000 + i),
                date('{today}', '-' || (1 + i % 20) || ' days'), NULL, {now}
         FROM k;
         INSERT INTO study_protocols (study_id, valid_day_minutes, valid_days_per_week, weekend_day_required,
             silent_after_days, monitoring_from, monitoring_until, updated_at)
         VALUES ('{study}', 600, 4, 0, 3, date('{today}', '-{days} days'), NULL, {now});
         INSERT INTO studies (study_id, label, first_seen_at, last_delivery_at)
         SELECT '{study}', 'Wear compliance at scale', {first_seen}, max(last_delivery_at)
         FROM subjects WHERE study_id = '{study}';
         COMMIT;",
        study = COMPLIANCE_STUDY,
        days = COMPLIANCE_DAYS,
        last_subject = COMPLIANCE_SUBJECTS - 1,
        last_never = NEVER_SYNCED - 1,
        first_seen = now - i64::from(COMPLIANCE_DAYS) * DAY_MS,
    );
    conn.execute_batch(&sql).context("seeding the compliance study")?;
    let (days, roster): (i64, i64) = conn.query_row(
        "SELECT (SELECT count(*) FROM subject_days WHERE study_id = ?1),
                (SELECT count(*) FROM roster WHERE study_id = ?1)",
        [COMPLIANCE_STUDY],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    eprintln!(
        "seed: compliance study {COMPLIANCE_STUDY}: {COMPLIANCE_SUBJECTS} subjects with {days} subject-days \
         up to {}, a roster of {roster}, in {:.1} s",
        today.pred_opt().unwrap_or(today),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

//! Retention: deliveries, uploads and refused requests older than the configured
//! number of days are deleted, and the per-day and per-subject counts follow.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, TransactionBehavior};

use super::{local_day, to_ms};

/// Applies the retention preference. It runs only when deliveries arrive (an idle
/// receiver does no work at all), at most once an hour, and deletes in slices so that a
/// first run over years of history never holds up deliveries for long.
#[derive(Default)]
pub(super) struct Retention {
    last_run: Option<std::time::Instant>,
}

const RETENTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);
const RETENTION_SLICE: i64 = 5000;

impl Retention {
    pub(super) fn apply_if_due(&mut self, conn: &mut Connection) {
        if self.last_run.is_some_and(|at| at.elapsed() < RETENTION_INTERVAL) {
            return;
        }
        self.last_run = Some(std::time::Instant::now());
        let days = match super::settings::preferences(conn) {
            Ok(prefs) => prefs.retention_days,
            Err(e) => {
                tracing::warn!("cannot read the retention setting: {e}");
                return;
            }
        };
        let Some(days) = days else { return };
        let cutoff = Utc::now() - chrono::Duration::days(days.into());
        match prune(conn, cutoff) {
            Ok(0) => {}
            Ok(n) => tracing::info!("retention: deleted {n} row(s) older than {days} days"),
            Err(e) => tracing::warn!("retention could not delete old rows: {e}"),
        }
    }
}

/// Deletes deliveries, uploads and refused requests from before `cutoff`, and their
/// per-day counts. Returns the number of rows deleted.
pub fn prune(conn: &mut Connection, cutoff: DateTime<Utc>) -> rusqlite::Result<usize> {
    let at = to_ms(cutoff);
    let day = local_day(cutoff);
    let mut total = 0;
    let slices = [
        "DELETE FROM deliveries WHERE seq IN (SELECT seq FROM deliveries WHERE received_at < ?1 LIMIT ?2)",
        "DELETE FROM uploads WHERE rowid IN (SELECT rowid FROM uploads WHERE updated_at < ?1 LIMIT ?2)",
        "DELETE FROM refused WHERE id IN (SELECT id FROM refused WHERE received_at < ?1 LIMIT ?2)",
    ];
    for sql in slices {
        loop {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(sql, params![at, RETENTION_SLICE])?;
            tx.commit()?;
            total += n;
            if (n as i64) < RETENTION_SLICE {
                break;
            }
        }
    }
    if total == 0 {
        return Ok(0);
    }
    // Old days lose the uploads just deleted but keep those still there (first seen
    // before the cutoff, changed after it), so the per-day totals stay exact.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute("DELETE FROM upload_days WHERE day < ?1", [&day])?;
    tx.execute(
        "INSERT INTO upload_days (study_id, day, status, uploads)
         SELECT study_id, first_seen_day, status, count(*) FROM uploads WHERE first_seen_day < ?1
         GROUP BY study_id, first_seen_day, status",
        [&day],
    )?;
    // Subjects keep their counts of what is left.
    tx.execute_batch(
        "UPDATE subjects SET
             uploads_started = (SELECT count(*) FROM uploads u WHERE u.study_id = subjects.study_id
                                AND u.subject_id = subjects.subject_id AND u.status = 'started'),
             uploads_completed = (SELECT count(*) FROM uploads u WHERE u.study_id = subjects.study_id
                                AND u.subject_id = subjects.subject_id AND u.status = 'completed'),
             uploads_error = (SELECT count(*) FROM uploads u WHERE u.study_id = subjects.study_id
                                AND u.subject_id = subjects.subject_id AND u.status = 'error'),
             other_events = (SELECT count(*) FROM deliveries d WHERE d.study_id = subjects.study_id
                                AND d.subject_id = subjects.subject_id AND d.event <> 'upload')",
    )?;
    tx.commit()?;
    Ok(total)
}

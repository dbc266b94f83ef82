//! The single writer: one thread owns the write connection and commits every
//! delivery that is waiting in one transaction (group commit), so under load one
//! fsync covers many deliveries, and at rest a delivery is committed at once.

mod checkpoint;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, TransactionBehavior};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{to_ms, uploads, StoreError};
use crate::event::upload::{Transition, UploadState};
use crate::event::{Event, Parsed, PayloadError, UploadEvent, UploadStatus};

/// How many operations one transaction takes at most.
const MAX_BATCH: usize = 512;
/// Deliveries waiting for the writer; beyond this, senders wait (back-pressure).
const QUEUE: usize = 4096;

/// An authenticated delivery, as the receiver hands it to the store.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub delivery_id: String,
    pub event_name: String,
    pub webhook_id: Option<String>,
    pub received_at: DateTime<Utc>,
    pub peer: Option<String>,
    pub forwarded_for: Option<String>,
    /// The authentication outcome, as a person reads it.
    pub auth: String,
    /// Request headers with credentials already redacted.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub parsed: Result<Parsed, PayloadError>,
}

impl NewDelivery {
    /// How the delivery is flagged for the user, if its body could not be fully used.
    pub fn flag(&self) -> Option<&'static str> {
        match &self.parsed {
            Ok(Parsed { event: Event::Unknown(_), .. }) => Some("unknown_event"),
            Ok(_) => None,
            Err(e) => Some(e.flag()),
        }
    }

    fn problem(&self) -> Option<String> {
        match &self.parsed {
            Ok(parsed) if parsed.warnings.is_empty() => None,
            Ok(parsed) => Some(parsed.warnings.join("; ")),
            Err(e) => Some(e.to_string()),
        }
    }

    fn event(&self) -> Option<&Event> {
        self.parsed.as_ref().ok().map(|p| &p.event)
    }

    /// One line a researcher can read, as stored, listed, logged and streamed.
    pub fn summary(&self) -> String {
        match &self.parsed {
            Ok(parsed) => parsed.event.summary(),
            Err(e) => format!("{} delivery that could not be read: {e}", self.event_name),
        }
    }
}

/// A request the receiver refused (400, 401, 408, 413), kept in a bounded log.
#[derive(Debug, Clone)]
pub struct RefusedRequest {
    pub received_at: DateTime<Utc>,
    pub peer: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub reason: String,
    pub webhook_id: Option<String>,
    pub event: Option<String>,
    pub delivery_id: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body_prefix: Vec<u8>,
    pub body_len: Option<u64>,
}

/// What storing a delivery did.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    New {
        seq: i64,
        upload: Option<UploadChange>,
    },
    /// Same delivery id and same body as delivery `seq`: a retry, counted, not applied.
    Duplicate {
        seq: i64,
    },
}

/// How a new `upload` delivery changed its upload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UploadChange {
    pub study_id: String,
    pub upload_id: String,
    pub state: UploadState,
    pub transition: Transition,
}

/// What the writer has just committed, for live views and notifications.
// `Refused` is rare and small; boxing `Delivery` would cost an allocation per delivery.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A new delivery (retries are not repeated here).
    Delivery {
        seq: i64,
        delivery_id: String,
        event: String,
        webhook_id: Option<String>,
        received_at: DateTime<Utc>,
        study_id: Option<String>,
        subject_id: Option<String>,
        upload_id: Option<String>,
        status: Option<String>,
        summary: String,
        /// Why the upload or processing failed, when the event says.
        error_message: Option<String>,
        flag: Option<&'static str>,
        upload: Option<UploadChange>,
    },
    Refused {
        received_at: DateTime<Utc>,
        status: u16,
        reason: String,
    },
}

impl LiveEvent {
    fn delivery(d: &NewDelivery, seq: i64, upload: Option<UploadChange>) -> Self {
        let event = d.event();
        LiveEvent::Delivery {
            seq,
            delivery_id: d.delivery_id.clone(),
            event: d.event_name.clone(),
            webhook_id: d.webhook_id.clone(),
            received_at: d.received_at,
            study_id: event.and_then(Event::study_id).map(str::to_string),
            subject_id: event.and_then(Event::subject_id).map(str::to_string),
            upload_id: event.and_then(Event::upload_id).map(str::to_string),
            status: event.and_then(Event::status).map(str::to_string),
            summary: d.summary(),
            error_message: event.and_then(Event::error_message).map(str::to_string),
            flag: d.flag(),
            upload,
        }
    }
}

/// Live events buffered per subscriber; a slower one misses events and is told so.
const LIVE_BUFFER: usize = 1024;

type Reply = oneshot::Sender<Result<Stored, StoreError>>;

enum Op {
    Delivery(Box<NewDelivery>, Reply),
    Refused(Box<RefusedRequest>),
}

/// The receiver's side of the writer: cheap to clone, usable from async code.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Op>,
    live: broadcast::Sender<LiveEvent>,
    dropped_refusals: Arc<AtomicU64>,
}

impl WriterHandle {
    /// Stores a delivery; resolves once it is committed to disk, or with the reason it is not.
    pub async fn store(&self, delivery: NewDelivery) -> Result<Stored, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Op::Delivery(Box::new(delivery), reply)).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Logs a refused request without waiting. Under a flood the log entry is dropped
    /// (and counted) rather than letting refused requests queue up memory or delay deliveries.
    pub fn log_refused(&self, refused: RefusedRequest) {
        if self.tx.try_send(Op::Refused(Box::new(refused))).is_err() {
            self.dropped_refusals.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Everything committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.live.subscribe()
    }

    /// Refused requests not logged because the writer was busy.
    pub fn dropped_refusals(&self) -> u64 {
        self.dropped_refusals.load(Ordering::Relaxed)
    }
}

/// Opens the database and starts the writer thread. The thread ends, after
/// committing everything queued, once every [`WriterHandle`] is dropped.
pub fn spawn(path: PathBuf, refused_keep: usize) -> Result<(WriterHandle, JoinHandle<()>), StoreError> {
    let conn = open_for_writing(&path)?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let (live, _) = broadcast::channel(LIVE_BUFFER);
    let publish = live.clone();
    let thread_error =
        |source| StoreError::Io { action: "cannot start a store thread for", path: path.clone(), source };
    let checkpointer = checkpoint::spawn(&path).map_err(thread_error)?;
    let thread = std::thread::Builder::new()
        .name("cpwatch-writer".into())
        .spawn({
            let path = path.clone();
            move || run(conn, path, rx, refused_keep, publish, checkpointer)
        })
        .map_err(thread_error)?;
    Ok((WriterHandle { tx, live, dropped_refusals: Arc::default() }, thread))
}

/// The writer's connection, with a larger page cache: every delivery touches many indexes.
fn open_for_writing(path: &std::path::Path) -> Result<Connection, StoreError> {
    let conn = super::open(path)?;
    // Negative: KiB, so 32 MiB.
    conn.pragma_update(None, "cache_size", -32_768)?;
    Ok(conn)
}

/// A batch at least this large means deliveries queue up: checkpoints move off the
/// commit path, to the checkpointer thread.
const BUSY_BATCH: usize = 8;
/// A batch at most this large means the queue has drained: the writer checkpoints again.
const CALM_BATCH: usize = 2;
/// SQLite's default: the writer checkpoints after a commit once the WAL has this many pages.
const AUTOCHECKPOINT_PAGES: u32 = 1000;

/// Where checkpoints run. At a steady rate, SQLite's own checkpoint inside a commit now
/// and then costs less at the tail than a concurrent one, whose database-file sync slows
/// the WAL syncs every commit waits for (measured: p99 at 500/s 7.5 ms here, 14–46 ms with
/// a concurrent checkpointer). Under saturation the checkpointer thread takes them
/// (measured: +5 to +18 % deliveries per second, within the noise; `BENCHMARKS.md`).
#[derive(Debug, Default)]
struct Checkpoints {
    offloaded: bool,
}

impl Checkpoints {
    /// Chooses for the batch just committed; tells the checkpointer when it is in charge.
    fn after_commit(&mut self, conn: &Connection, batch: usize, committed: &checkpoint::Committed) {
        let offload = if self.offloaded { batch > CALM_BATCH } else { batch >= BUSY_BATCH };
        if offload != self.offloaded {
            let pages = if offload { 0 } else { AUTOCHECKPOINT_PAGES };
            match conn.pragma_update(None, "wal_autocheckpoint", pages) {
                Ok(()) => {
                    tracing::debug!(
                        "checkpoints {}",
                        if offload { "off the commit path" } else { "in commits" }
                    );
                    self.offloaded = offload;
                }
                Err(e) => tracing::warn!("cannot move checkpoints: {e}"),
            }
        }
        if self.offloaded {
            committed.tell();
        }
    }
}

fn run(
    conn: Connection,
    path: PathBuf,
    mut rx: mpsc::Receiver<Op>,
    refused_keep: usize,
    live: broadcast::Sender<LiveEvent>,
    (committed, checkpointer): (checkpoint::Committed, JoinHandle<()>),
) {
    let mut conn = Some(conn);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut retention = Retention::default();
    let mut checkpoints = Checkpoints::default();
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let outcome = match conn.as_mut() {
            Some(c) => commit(c, &batch, refused_keep).map_err(StoreError::from),
            // A previous batch failed (disk full, file made read-only, ...): start from a
            // fresh connection so that the store recovers once the fault is gone.
            None => open_for_writing(&path)
                .inspect_err(|e| tracing::error!("cannot reopen the database: {e}"))
                .and_then(|c| {
                    checkpoints = Checkpoints::default();
                    commit(conn.insert(c), &batch, refused_keep).map_err(StoreError::from)
                }),
        };
        match outcome {
            Ok(mut results) => {
                if let Some(c) = conn.as_ref() {
                    checkpoints.after_commit(c, batch.len(), &committed);
                }
                for (op, result) in batch.drain(..).zip(results.drain(..)) {
                    match (op, result) {
                        (Op::Delivery(delivery, reply), Some(result)) => {
                            if let Ok(Stored::New { seq, upload }) = &result {
                                // No subscriber is fine: nobody is watching live.
                                let _ = live.send(LiveEvent::delivery(&delivery, *seq, upload.clone()));
                            }
                            // The receiver may have gone (client hung up): the delivery is stored anyway.
                            let _ = reply.send(result);
                        }
                        (Op::Refused(refused), _) => {
                            let _ = live.send(LiveEvent::Refused {
                                received_at: refused.received_at,
                                status: refused.status,
                                reason: refused.reason,
                            });
                        }
                        (Op::Delivery(..), None) => {}
                    }
                }
                if let Some(c) = conn.as_mut() {
                    retention.apply_if_due(c);
                }
            }
            Err(reason) => {
                tracing::error!("could not commit {} queued operation(s): {reason}", batch.len());
                conn = None;
                let reason = Arc::new(reason);
                for op in batch.drain(..) {
                    if let Op::Delivery(_, reply) = op {
                        let _ = reply.send(Err(StoreError::WriteFailed(reason.clone())));
                    }
                }
            }
        }
    }
    // The checkpointer's last checkpoint ends before the final one here.
    drop(committed);
    let _ = checkpointer.join();
    if let Some(conn) = conn {
        // Folds the WAL back into the main file so a stopped receiver leaves one tidy file.
        let _ = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
    }
}

/// Writes one batch in one transaction. Each delivery gets its own savepoint, so one
/// that cannot be written fails alone; nothing is answered until the commit succeeded.
fn commit(
    conn: &mut Connection,
    batch: &[Op],
    refused_keep: usize,
) -> rusqlite::Result<Vec<Option<Result<Stored, StoreError>>>> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(batch.len());
    let mut refused_added = false;
    for op in batch {
        match op {
            Op::Delivery(delivery, _) => {
                let sp = tx.savepoint()?;
                match insert_delivery(&sp, delivery) {
                    Ok(stored) => {
                        sp.commit()?;
                        results.push(Some(Ok(stored)));
                    }
                    Err(e) => {
                        tracing::error!("could not store delivery {}: {e}", delivery.delivery_id);
                        drop(sp);
                        results.push(Some(Err(StoreError::WriteFailed(Arc::new(e.into())))));
                    }
                }
            }
            Op::Refused(refused) => {
                insert_refused(&tx, refused)?;
                refused_added = true;
                results.push(None);
            }
        }
    }
    if refused_added {
        tx.execute(
            "DELETE FROM refused WHERE id <= (SELECT max(id) FROM refused) - ?1",
            params![refused_keep as i64],
        )?;
    }
    tx.commit()?;
    Ok(results)
}

fn insert_delivery(conn: &Connection, d: &NewDelivery) -> rusqlite::Result<Stored> {
    let event = d.event();
    let at = to_ms(d.received_at);
    let headers = serde_json::to_string(&d.headers).unwrap_or_else(|_| "[]".into());
    let body_sha256 = Sha256::digest(&d.body).to_vec();
    let (seq, duplicates): (i64, i64) = conn
        .prepare_cached(
            "INSERT INTO deliveries (delivery_id, body_sha256, event, webhook_id, received_at, peer,
             forwarded_for, auth, headers, body, flag, problem, study_id, subject_id,
             upload_id, status, summary)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT (delivery_id, body_sha256) DO UPDATE
             SET duplicates = duplicates + 1, last_duplicate_at = excluded.received_at
         RETURNING seq, duplicates",
        )?
        .query_row(
            params![
                d.delivery_id,
                body_sha256,
                d.event_name,
                d.webhook_id,
                at,
                d.peer,
                d.forwarded_for,
                d.auth,
                headers,
                d.body,
                d.flag(),
                d.problem(),
                event.and_then(Event::study_id),
                event.and_then(Event::subject_id),
                event.and_then(Event::upload_id),
                event.and_then(Event::status),
                d.summary(),
            ],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
    if duplicates > 0 {
        return Ok(Stored::Duplicate { seq });
    }
    let Some(event) = event else {
        return Ok(Stored::New { seq, upload: None });
    };
    if let Some(study) = event.study_id() {
        conn.prepare_cached("INSERT INTO studies (study_id, first_seen_at, last_delivery_at) VALUES (?1, ?2, ?2)
             ON CONFLICT (study_id) DO UPDATE SET last_delivery_at = max(last_delivery_at, excluded.last_delivery_at)")?.execute(params![study, at],
        )?;
        if let Some(subject) = event.subject_id() {
            let other = i64::from(!matches!(event, Event::Upload(_)));
            conn.prepare_cached("INSERT INTO subjects (study_id, subject_id, subject_identifier, first_seen_at, last_delivery_at,
                     other_events)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5)
                 ON CONFLICT (study_id, subject_id) DO UPDATE SET
                     subject_identifier = coalesce(excluded.subject_identifier, subject_identifier),
                     last_delivery_at = max(last_delivery_at, excluded.last_delivery_at),
                     other_events = other_events + excluded.other_events")?.execute(params![study, subject, event.subject_identifier(), at, other],
            )?;
        }
    }
    let upload = match event {
        Event::Upload(upload) => Some(apply_upload(conn, upload, d.received_at)?),
        _ => None,
    };
    Ok(Stored::New { seq, upload })
}

fn apply_upload(conn: &Connection, event: &UploadEvent, at: DateTime<Utc>) -> rusqlite::Result<UploadChange> {
    let existing = uploads::state(conn, &event.study_id, &event.upload_id)?;
    let (state, transition) = match existing {
        Some(mut state) => {
            let transition = state.apply(event, at);
            (state, transition)
        }
        None => (UploadState::new(event, at), Transition::Created),
    };
    let local = |t: Option<chrono::NaiveDateTime>| t.map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string());
    let day = local_day(at);
    conn.prepare_cached(
        "INSERT INTO uploads (study_id, upload_id, subject_id, status, started_at, completed_at,
             failed_at, error_message, first_epoch_utc, last_epoch_utc, first_epoch_subject_tz,
             last_epoch_subject_tz, first_seen_at, first_seen_day, updated_at, deliveries)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?13, 1)
         ON CONFLICT (study_id, upload_id) DO UPDATE SET
             subject_id = excluded.subject_id, status = excluded.status,
             started_at = excluded.started_at, completed_at = excluded.completed_at,
             failed_at = excluded.failed_at, error_message = excluded.error_message,
             first_epoch_utc = excluded.first_epoch_utc, last_epoch_utc = excluded.last_epoch_utc,
             first_epoch_subject_tz = excluded.first_epoch_subject_tz,
             last_epoch_subject_tz = excluded.last_epoch_subject_tz,
             updated_at = excluded.updated_at, deliveries = deliveries + 1",
    )?
    .execute(params![
        event.study_id,
        event.upload_id,
        state.subject_id,
        state.status.as_str(),
        state.started_at.map(to_ms),
        state.completed_at.map(to_ms),
        state.failed_at.map(to_ms),
        state.error_message,
        state.first_epoch_utc.map(to_ms),
        state.last_epoch_utc.map(to_ms),
        local(state.first_epoch_subject_tz),
        local(state.last_epoch_subject_tz),
        to_ms(at),
        day,
    ])?;
    // Keep the subject's counts: each upload counted once, under its current status.
    if let Some(subject) = &state.subject_id {
        let mut delta = [0i64; 3];
        let slot = |s: UploadStatus| match s {
            UploadStatus::Started => 0,
            UploadStatus::Completed => 1,
            UploadStatus::Error => 2,
        };
        match transition {
            Transition::Created => delta[slot(state.status)] += 1,
            Transition::Changed(before) => {
                delta[slot(before)] -= 1;
                delta[slot(state.status)] += 1;
            }
            Transition::Unchanged => {}
        }
        conn.prepare_cached("UPDATE subjects SET uploads_started = uploads_started + ?3, uploads_completed = uploads_completed + ?4,
                 uploads_error = uploads_error + ?5, last_upload_at = max(coalesce(last_upload_at, 0), ?6)
             WHERE study_id = ?1 AND subject_id = ?2")?.execute(params![event.study_id, subject, delta[0], delta[1], delta[2], to_ms(at)],
        )?;
    }
    // Keep the per-day counts: the upload counts on the day it was first seen, under
    // its current status.
    match transition {
        Transition::Created => count_day(conn, &event.study_id, &day, state.status.as_str(), 1)?,
        Transition::Changed(before) => {
            let first_day: String = conn
                .prepare_cached("SELECT first_seen_day FROM uploads WHERE study_id = ?1 AND upload_id = ?2")?
                .query_row(params![event.study_id, event.upload_id], |row| row.get(0))?;
            count_day(conn, &event.study_id, &first_day, before.as_str(), -1)?;
            count_day(conn, &event.study_id, &first_day, state.status.as_str(), 1)?;
        }
        Transition::Unchanged => {}
    }
    Ok(UploadChange {
        study_id: event.study_id.clone(),
        upload_id: event.upload_id.clone(),
        state,
        transition,
    })
}

/// Applies the retention preference. It runs only when deliveries arrive (an idle
/// receiver does no work at all), at most once an hour, and deletes in slices so that a
/// first run over years of history never holds up deliveries for long.
#[derive(Default)]
struct Retention {
    last_run: Option<std::time::Instant>,
}

const RETENTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);
const RETENTION_SLICE: i64 = 5000;

impl Retention {
    fn apply_if_due(&mut self, conn: &mut Connection) {
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

fn count_day(conn: &Connection, study: &str, day: &str, status: &str, delta: i64) -> rusqlite::Result<()> {
    if delta < 0 {
        // A day already removed by retention stays removed.
        conn.prepare_cached(
            "UPDATE upload_days SET uploads = uploads + ?4 WHERE study_id = ?1 AND day = ?2 AND status = ?3",
        )?
        .execute(params![study, day, status, delta])?;
    } else {
        conn.prepare_cached(
            "INSERT INTO upload_days (study_id, day, status, uploads) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (study_id, day, status) DO UPDATE SET uploads = uploads + excluded.uploads",
        )?
        .execute(params![study, day, status, delta])?;
    }
    Ok(())
}

/// The calendar day of `t` on this machine, which is where the researcher reads the dashboard.
pub fn local_day(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono::Local).format("%Y-%m-%d").to_string()
}

fn insert_refused(conn: &Connection, r: &RefusedRequest) -> rusqlite::Result<()> {
    let headers = serde_json::to_string(&r.headers).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "INSERT INTO refused (received_at, peer, method, path, status, reason, webhook_id, event,
             delivery_id, headers, body_prefix, body_len)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        to_ms(r.received_at),
        r.peer,
        r.method,
        r.path,
        r.status,
        r.reason,
        r.webhook_id,
        r.event,
        r.delivery_id,
        headers,
        r.body_prefix,
        r.body_len.map(|n| n as i64),
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn autocheckpoint(conn: &Connection) -> u32 {
        conn.query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0)).expect("pragma")
    }

    #[test]
    fn checkpoints_leave_the_commit_path_while_deliveries_queue_up_and_come_back_when_calm() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = super::super::prepare_data_dir(dir.path()).expect("data dir");
        let conn = open_for_writing(&path).expect("open");
        let (committed, thread) = checkpoint::spawn(&path).expect("checkpointer");
        let mut checkpoints = Checkpoints::default();
        let table: [(usize, bool); 6] = [
            (1, false), // one at a time: SQLite checkpoints inside commits, as by default
            (7, false),
            (BUSY_BATCH, true),  // a queue: the checkpointer takes over
            (3, true),           // still busy enough: no flapping
            (CALM_BATCH, false), // drained: back in commits
            (40, true),
        ];
        for (batch, offloaded) in table {
            checkpoints.after_commit(&conn, batch, &committed);
            assert_eq!(checkpoints.offloaded, offloaded, "after a batch of {batch}");
            let pages = if offloaded { 0 } else { AUTOCHECKPOINT_PAGES };
            assert_eq!(autocheckpoint(&conn), pages, "after a batch of {batch}");
        }
        drop(committed);
        thread.join().expect("the checkpointer ends once the writer is gone");
    }
}

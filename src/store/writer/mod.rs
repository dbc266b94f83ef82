//! The single writer: one thread owns the write connection and commits every
//! delivery that is waiting in one transaction (group commit), so under load one
//! fsync covers many deliveries, and at rest a delivery is committed at once.

mod apply;
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

use super::retention::Retention;
use super::StoreError;
use crate::event::upload::{Transition, UploadState};
use crate::event::{Event, Parsed, PayloadError};

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

    /// Computes, on the caller's thread, what the writer would otherwise compute on its own.
    pub fn prepare(self) -> PreparedDelivery {
        self.into()
    }
}

/// A delivery ready for the writer. What follows from the delivery alone (the body's hash,
/// the headers as JSON, the summary, the flag) is computed on the receiver's side before
/// the delivery is queued, so that the one writer thread, the receiver's bottleneck, only
/// writes.
#[derive(Debug)]
pub struct PreparedDelivery {
    delivery: NewDelivery,
    body_sha256: [u8; 32],
    headers_json: String,
    summary: String,
    flag: Option<&'static str>,
    problem: Option<String>,
}

impl PreparedDelivery {
    /// As [`NewDelivery::summary`].
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// As [`NewDelivery::flag`].
    pub fn flag(&self) -> Option<&'static str> {
        self.flag
    }
}

impl From<NewDelivery> for PreparedDelivery {
    fn from(delivery: NewDelivery) -> Self {
        PreparedDelivery {
            body_sha256: Sha256::digest(&delivery.body).into(),
            headers_json: serde_json::to_string(&delivery.headers).unwrap_or_else(|_| "[]".into()),
            summary: delivery.summary(),
            flag: delivery.flag(),
            problem: delivery.problem(),
            delivery,
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
    fn delivery(prepared: &PreparedDelivery, seq: i64, upload: Option<UploadChange>) -> Self {
        let d = &prepared.delivery;
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
            summary: prepared.summary.clone(),
            error_message: event.and_then(Event::error_message).map(str::to_string),
            flag: prepared.flag,
            upload,
        }
    }
}

/// Live events buffered per subscriber; a slower one misses events and is told so.
const LIVE_BUFFER: usize = 1024;

type Reply = oneshot::Sender<Result<Stored, StoreError>>;

enum Op {
    Delivery(Box<PreparedDelivery>, Reply),
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
    pub async fn store(&self, delivery: impl Into<PreparedDelivery>) -> Result<Stored, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Op::Delivery(Box::new(delivery.into()), reply)).await.map_err(|_| StoreError::Closed)?;
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
    // Statement journals (and any temporary B-tree) in memory, not in temporary files.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
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
                // Live events are built only for someone watching (the dashboard, the tray).
                let watched = live.receiver_count() > 0;
                for (op, result) in batch.drain(..).zip(results.drain(..)) {
                    match (op, result) {
                        (Op::Delivery(delivery, reply), Some(result)) => {
                            if let (true, Ok(Stored::New { seq, upload })) = (watched, &result) {
                                // A subscriber that has just gone is fine: nobody is watching.
                                let _ = live.send(LiveEvent::delivery(&delivery, *seq, upload.clone()));
                            }
                            // The receiver may have gone (client hung up): the delivery is stored anyway.
                            let _ = reply.send(result);
                        }
                        (Op::Refused(refused), _) if watched => {
                            let _ = live.send(LiveEvent::Refused {
                                received_at: refused.received_at,
                                status: refused.status,
                                reason: refused.reason,
                            });
                        }
                        (Op::Refused(_), _) | (Op::Delivery(..), None) => {}
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

/// What one operation of a batch came to: a delivery's answer, or `None` for a refusal logged.
type Outcome = Option<Result<Stored, StoreError>>;

/// Why a transaction of the writer did not commit.
enum Failed {
    /// The statements of one delivery failed; the batch's other deliveries may be fine.
    Delivery(rusqlite::Error),
    /// The transaction itself failed (begin, the refused log, commit): every delivery in it.
    Transaction(rusqlite::Error),
}

/// Writes one batch, and answers nothing until its transaction has committed. The fast
/// path is one transaction for the whole batch, with no savepoint per delivery: a
/// savepoint copies every page the delivery touches into a sub-journal, which cost a
/// quarter of the writer's time (issue 14). If one delivery's statements fail, that
/// transaction is rolled back whole and the batch is written again one operation per
/// transaction, so that the bad delivery fails alone and the others are stored.
fn commit(conn: &mut Connection, batch: &[Op], refused_keep: usize) -> rusqlite::Result<Vec<Outcome>> {
    let failed = match write(conn, batch, refused_keep) {
        Ok(outcomes) => return Ok(outcomes),
        Err(Failed::Transaction(e)) => return Err(e),
        Err(Failed::Delivery(e)) => e,
    };
    if let [Op::Delivery(delivery, _)] = batch {
        tracing::error!("could not store delivery {}: {failed}", delivery.delivery.delivery_id);
        return Ok(vec![Some(Err(StoreError::WriteFailed(Arc::new(failed.into()))))]);
    }
    tracing::warn!(
        "a delivery of a batch of {} could not be stored ({failed}); writing the batch one delivery per transaction",
        batch.len()
    );
    let mut outcomes = Vec::with_capacity(batch.len());
    for op in batch {
        match write(conn, std::slice::from_ref(op), refused_keep) {
            Ok(one) => outcomes.extend(one),
            Err(Failed::Delivery(e)) => {
                if let Op::Delivery(delivery, _) = op {
                    tracing::error!("could not store delivery {}: {e}", delivery.delivery.delivery_id);
                }
                outcomes.push(Some(Err(StoreError::WriteFailed(Arc::new(e.into())))));
            }
            // The deliveries already committed are answered 503 with the rest; their
            // senders' retries are recognised as retries.
            Err(Failed::Transaction(e)) => return Err(e),
        }
    }
    Ok(outcomes)
}

/// Writes `ops` in one transaction; any failure rolls all of it back.
fn write(conn: &mut Connection, ops: &[Op], refused_keep: usize) -> Result<Vec<Outcome>, Failed> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(Failed::Transaction)?;
    let mut outcomes = Vec::with_capacity(ops.len());
    let mut refused_added = false;
    for op in ops {
        match op {
            Op::Delivery(delivery, _) => {
                let stored = apply::insert_delivery(&tx, delivery).map_err(Failed::Delivery)?;
                outcomes.push(Some(Ok(stored)));
            }
            Op::Refused(refused) => {
                apply::insert_refused(&tx, refused).map_err(Failed::Transaction)?;
                refused_added = true;
                outcomes.push(None);
            }
        }
    }
    if refused_added {
        tx.execute(
            "DELETE FROM refused WHERE id <= (SELECT max(id) FROM refused) - ?1",
            params![refused_keep as i64],
        )
        .map_err(Failed::Transaction)?;
    }
    tx.commit().map_err(Failed::Transaction)?;
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn autocheckpoint(conn: &Connection) -> u32 {
        conn.query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0)).expect("pragma")
    }

    fn upload(delivery_id: &str, upload_id: &str) -> Op {
        let body = serde_json::json!({
            "status": "started", "uploadId": upload_id, "studyId": "189", "subjectId": "44732"
        })
        .to_string();
        let delivery = NewDelivery {
            delivery_id: delivery_id.into(),
            event_name: "upload".into(),
            webhook_id: Some("15".into()),
            received_at: Utc::now(),
            peer: None,
            forwarded_for: None,
            auth: "open".into(),
            headers: vec![("x-actigraph-event".into(), "upload".into())],
            parsed: crate::event::parse("upload", body.as_bytes()),
            body: body.into_bytes(),
        };
        Op::Delivery(Box::new(delivery.into()), oneshot::channel().0)
    }

    #[test]
    fn one_bad_delivery_in_a_batch_fails_alone_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = super::super::prepare_data_dir(dir.path()).expect("data dir");
        let mut conn = open_for_writing(&path).expect("open");
        // Stands in for whatever makes one delivery unstorable. It fails the delivery's
        // third statement, after its row and its study were written.
        conn.execute_batch(
            "CREATE TEMP TRIGGER refuse_one BEFORE INSERT ON main.uploads WHEN NEW.upload_id = 'bad'
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        )
        .expect("trigger");
        let batch = [upload("d1", "u1"), upload("d2", "bad"), upload("d3", "u3")];
        let outcomes = commit(&mut conn, &batch, 100).expect("the batch is written");
        let stored: Vec<bool> = outcomes.iter().map(|o| matches!(o, Some(Ok(Stored::New { .. })))).collect();
        assert_eq!(stored, [true, false, true], "only the bad delivery fails: {outcomes:?}");
        let count = |conn: &Connection, sql: &str| -> i64 {
            conn.query_row(sql, [], |row| row.get(0)).expect("count")
        };
        assert_eq!(
            count(&conn, "SELECT count(*) FROM deliveries WHERE delivery_id = 'd2'"),
            0,
            "the bad one leaves no row"
        );
        assert_eq!(count(&conn, "SELECT count(*) FROM deliveries"), 2);
        assert_eq!(
            count(&conn, "SELECT deliveries FROM delivery_totals"),
            2,
            "the totals count what was stored"
        );
        assert_eq!(count(&conn, "SELECT count(*) FROM uploads"), 2);
        assert_eq!(
            count(&conn, "SELECT uploads_started FROM subjects"),
            2,
            "the subject counts what was stored"
        );

        // A batch without a bad delivery is stored whole.
        let batch = [upload("d4", "u4"), upload("d5", "u5")];
        let outcomes = commit(&mut conn, &batch, 100).expect("the batch is written");
        assert!(outcomes.iter().all(|o| matches!(o, Some(Ok(Stored::New { .. })))), "{outcomes:?}");
        assert_eq!(count(&conn, "SELECT count(*) FROM deliveries"), 4);
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

//! Checkpoints off the commit path, while the writer is saturated. SQLite otherwise
//! copies the WAL back into the database file inside a committing transaction every
//! 1,000 pages, with two more fsyncs, while every delivery in that batch waits for its
//! answer. While the writer says so (see `writer::Checkpoints`), its connection does not
//! checkpoint; this thread, on its own connection, copies what has been committed
//! (`PASSIVE`: it never blocks the writer) after the writer says it committed, at most
//! every [`PAUSE`]. Durability is unchanged: every commit still syncs the WAL before its
//! deliveries are answered, and a checkpoint syncs the database file before it counts
//! frames as copied.
//!
//! A passive checkpoint copies what was committed when it began; under sustained load
//! with readers, the WAL file may never be started over. Once it passes [`WAL_LIMIT`], a
//! `RESTART` checkpoint copies everything and lets the next commit start the WAL from its
//! beginning. It holds back new commits while it waits for the writer's transaction and
//! for readers, so it waits at most [`RESTART_WAIT`]; when that is not enough it acts as a
//! passive one, and the next checkpoint tries again.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// The shortest time between two checkpoints: copying in bulk is cheaper.
const PAUSE: Duration = Duration::from_millis(250);
/// How long a checkpoint waits for the writer's transaction and for readers.
const RESTART_WAIT: Duration = Duration::from_millis(20);
/// A WAL file larger than this is checkpointed completely and started over.
const WAL_LIMIT: u64 = 64 * 1024 * 1024;

/// The writer's side: tells the checkpointer that something was committed.
#[derive(Debug, Clone)]
pub struct Committed(SyncSender<()>);

impl Committed {
    /// Never waits: one pending signal stands for any number of commits.
    pub fn tell(&self) {
        match self.0.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
}

/// Starts the checkpointer for the database at `path`. It ends once every [`Committed`]
/// is dropped (the writer has stopped), after a last checkpoint.
pub fn spawn(path: &Path) -> std::io::Result<(Committed, JoinHandle<()>)> {
    let (tx, rx) = mpsc::sync_channel(1);
    let path = path.to_path_buf();
    let thread =
        std::thread::Builder::new().name("cpwatch-checkpoint".into()).spawn(move || run(&path, rx))?;
    Ok((Committed(tx), thread))
}

fn run(path: &Path, commits: Receiver<()>) {
    let mut conn: Option<Connection> = None;
    while commits.recv().is_ok() {
        // Let more commits gather; what arrived meanwhile is covered by this checkpoint.
        std::thread::sleep(PAUSE);
        while commits.try_recv().is_ok() {}
        if conn.is_none() {
            conn = crate::store::open(path)
                .and_then(|c| {
                    c.busy_timeout(RESTART_WAIT)?;
                    Ok(c)
                })
                .inspect_err(|e| tracing::warn!("checkpointer: cannot open the database: {e}"))
                .ok();
        }
        if let Some(c) = conn.as_ref() {
            if let Err(e) = checkpoint(c, path, WAL_LIMIT) {
                // The writer carries on; the WAL only grows until the next checkpoint works.
                tracing::warn!("checkpoint failed: {e}");
                conn = None;
            }
        }
    }
}

/// One checkpoint: passive, or restarting the WAL once its file is larger than `limit`.
/// Returns the WAL's frames and how many of them are now copied.
fn checkpoint(conn: &Connection, db: &Path, limit: u64) -> rusqlite::Result<(i64, i64)> {
    let wal = wal_path(db);
    let large = std::fs::metadata(&wal).is_ok_and(|m| m.len() > limit);
    let mode = if large { "RESTART" } else { "PASSIVE" };
    let (busy, frames, copied): (i64, i64, i64) =
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    tracing::trace!("checkpoint {mode}: {copied} of {frames} WAL frames copied (busy {busy})");
    Ok((frames, copied))
}

/// The WAL file beside the database file.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer connection as the store's, and some pages written through it.
    fn write(conn: &Connection, rows: usize) {
        conn.execute_batch("BEGIN").expect("begin");
        for _ in 0..rows {
            conn.execute("INSERT INTO filler (data) VALUES (zeroblob(4000))", []).expect("insert");
        }
        conn.execute_batch("COMMIT").expect("commit");
    }

    fn wal_frames(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(1)).expect("frames")
    }

    #[test]
    fn a_passive_checkpoint_copies_what_it_may_and_a_large_wal_starts_over() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("cpwatch.db");
        let writer = Connection::open(&db).expect("open");
        writer.pragma_update(None, "journal_mode", "WAL").expect("wal");
        writer.pragma_update(None, "wal_autocheckpoint", 0).expect("no autocheckpoint");
        writer.execute_batch("CREATE TABLE filler (data BLOB)").expect("table");
        write(&writer, 200);
        let checkpointer = Connection::open(&db).expect("open");
        let (frames, copied) = checkpoint(&checkpointer, &db, u64::MAX).expect("passive");
        assert!(frames >= 200 && copied == frames, "everything committed is copied: {copied} of {frames}");

        // As under load: a reader (the dashboard) holds an older snapshot while the writer
        // goes on, so a passive checkpoint cannot copy everything and the WAL is not
        // started over; it only grows.
        let reader = Connection::open(&db).expect("open");
        reader.execute_batch("BEGIN").expect("begin");
        let _: i64 = reader.query_row("SELECT count(*) FROM filler", [], |r| r.get(0)).expect("read");
        write(&writer, 200);
        let (frames, copied) = checkpoint(&checkpointer, &db, u64::MAX).expect("passive");
        assert!(copied < frames, "the reader's snapshot holds the checkpoint back: {copied} of {frames}");
        reader.execute_batch("COMMIT").expect("end the read");
        write(&writer, 10);
        let grown = wal_frames(&writer);
        assert!(grown > frames, "the WAL grew: {grown} frames");

        // Past the limit: a restart checkpoint copies everything; the next commit starts over.
        let limit = std::fs::metadata(wal_path(&db)).expect("wal").len() - 1;
        let (frames, copied) = checkpoint(&checkpointer, &db, limit).expect("restart");
        assert_eq!(copied, frames, "everything copied");
        write(&writer, 10);
        assert!(wal_frames(&writer) < 50, "the WAL started over after a restart checkpoint");
    }
}

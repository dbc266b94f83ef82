//! Durable storage in one SQLite file: deliveries, uploads, studies, subjects, rosters,
//! webhook authentication and the refused-request log.
//!
//! Every write goes through the single [`writer`] thread, which commits many
//! deliveries per transaction; reads use their own connections and, thanks to WAL,
//! never block it. Durability: WAL with `synchronous=FULL`, so a commit has reached
//! the disk (the WAL file is fsynced) before any delivery in it is acknowledged.

pub mod retention;
mod schema;
pub mod writer;

pub use schema::VERSION as SCHEMA_VERSION;

pub mod compliance;
pub mod deliveries;
pub mod listing;
pub mod protocols;
pub mod refused;
pub mod roster;
pub mod settings;
pub mod status;
pub mod studies;
pub mod subjects;
pub mod uploads;
pub mod uptime;
pub mod webhooks;

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Local, TimeZone as _, Utc};
use rusqlite::{Connection, OpenFlags};

pub use listing::{Filter, Page};
pub use writer::{
    LiveEvent, NewDelivery, PreparedDelivery, RefusedRequest, Stored, UploadChange, WriterHandle,
};

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "cpwatch.sqlite3";
const LOCK_FILE: &str = "cpwatch.lock";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error(
        "another cpwatch{} is already running on the data directory {dir}; stop it first, or give this one its own --data-dir",
        pid.map_or_else(String::new, |p| format!(" (pid {p})"))
    )]
    AlreadyRunning { dir: PathBuf, pid: Option<u32> },
    #[error("{path} is not a usable cpwatch database ({detail}); move it aside to start afresh")]
    NotADatabase { path: PathBuf, detail: String },
    #[error("{path} was written by a newer cpwatch (schema version {found}, this one knows up to {known}); upgrade cpwatch")]
    NewerSchema { path: PathBuf, found: i64, known: i64 },
    #[error("the delivery store is shutting down")]
    Closed,
    /// The delivery's transaction failed; shared by every delivery of a failed batch.
    #[error("the delivery could not be stored: {0}")]
    WriteFailed(Arc<StoreError>),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A value that cannot be stored (checked before anything is written).
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
        move |source| StoreError::Io { action, path: path.to_path_buf(), source }
    }
}

/// Creates the data directory (owner-only) if needed and returns the database path.
pub fn prepare_data_dir(dir: &Path) -> Result<PathBuf, StoreError> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(StoreError::io("cannot create the data directory", dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(StoreError::io("cannot restrict the data directory", dir))?;
    }
    let path = dir.join(DATABASE_FILE);
    if !path.exists() {
        // Created here rather than by SQLite so that it is owner-only from its first
        // byte; SQLite gives the -wal and -shm files the same permissions.
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(StoreError::io("cannot create the database", &path))?;
        give_to_directory_owner(&file, dir)
            .map_err(StoreError::io("cannot give the database to its directory's owner", &path))?;
    }
    Ok(path)
}

/// Root creating the database in another user's directory (an admin's `sudo cpwatch
/// webhooks add` before the service's first start) gives it to that user, so that the
/// service can open it. SQLite does the same for the -wal and -shm files it creates as
/// root: they follow the database's owner.
fn give_to_directory_owner(file: &File, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let owner = fs::metadata(dir)?;
    if owner.uid() == 0 {
        return Ok(());
    }
    std::os::unix::fs::fchown(file, Some(owner.uid()), Some(owner.gid()))
}

/// Holds the data directory for one receiver; released when dropped (or the process dies).
/// The lock file also tells other commands which process holds it and where it listens.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Records the receiver's URL for `cpwatch status`.
    pub fn announce(&mut self, url: &str) -> Result<(), StoreError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.rewind())
            .and_then(|()| self.file.write_all(format!("{}\n{url}\n", std::process::id()).as_bytes()))
            .map_err(StoreError::io("cannot write the lock file", &self.path))
    }
}

/// The receiver holding a data directory, as its lock file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningReceiver {
    pub pid: Option<u32>,
    pub url: Option<String>,
}

fn describe_lock(file: &mut File) -> RunningReceiver {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let mut lines = text.lines();
    RunningReceiver {
        pid: lines.next().and_then(|l| l.trim().parse().ok()),
        url: lines.next().map(str::to_string),
    }
}

fn open_lock_file(dir: &Path) -> Result<(File, PathBuf), StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(StoreError::io("cannot open the lock file", &path))?;
    Ok((file, path))
}

/// Takes the data directory's lock, or says which process holds it.
pub fn lock_data_dir(dir: &Path) -> Result<DataDirLock, StoreError> {
    let (mut file, path) = open_lock_file(dir)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let pid = describe_lock(&mut file).pid;
            return Err(StoreError::AlreadyRunning { dir: dir.to_path_buf(), pid });
        }
        Err(fs::TryLockError::Error(source)) => {
            return Err(StoreError::Io { action: "cannot lock", path, source });
        }
    }
    let mut lock = DataDirLock { file, path };
    lock.announce("")?;
    Ok(lock)
}

/// The receiver running on `dir`, if any. Looks without taking the lock for more than
/// an instant (a shared lock, which never blocks a receiver that holds it).
pub fn running_receiver(dir: &Path) -> Result<Option<RunningReceiver>, StoreError> {
    if !dir.join(LOCK_FILE).exists() {
        return Ok(None);
    }
    let (mut file, path) = open_lock_file(dir)?;
    match file.try_lock_shared() {
        Ok(()) => Ok(None),
        Err(fs::TryLockError::WouldBlock) => Ok(Some(describe_lock(&mut file))),
        Err(fs::TryLockError::Error(source)) => Err(StoreError::Io { action: "cannot lock", path, source }),
    }
}

/// Opens a connection with cpwatch's PRAGMAs and brings the schema up to date.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let not_a_database = |e: rusqlite::Error| match e {
        rusqlite::Error::SqliteFailure(err, detail)
            if matches!(
                err.code,
                rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
            ) =>
        {
            StoreError::NotADatabase {
                path: path.to_path_buf(),
                detail: detail.unwrap_or_else(|| err.to_string()),
            }
        }
        other => StoreError::Sqlite(other),
    };
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let mut conn = Connection::open_with_flags(path, flags).map_err(not_a_database)?;
    configure(&conn).map_err(not_a_database)?;
    schema::migrate(&mut conn, path).map_err(|e| match e {
        StoreError::Sqlite(e) => not_a_database(e),
        other => other,
    })?;
    Ok(conn)
}

/// A test-only weakening, to show that the power-cut test catches a receiver whose
/// commits are not synced: `CPWATCH_UNSAFE_SYNCHRONOUS=NORMAL` (WAL synced only at
/// checkpoints). Anything else, or nothing, is `FULL`.
pub const UNSAFE_SYNCHRONOUS: &str = "CPWATCH_UNSAFE_SYNCHRONOUS";

fn synchronous() -> &'static str {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if std::env::var(UNSAFE_SYNCHRONOUS).is_ok_and(|v| v == "NORMAL") {
        WARNED.call_once(|| {
            tracing::warn!(
                "{UNSAFE_SYNCHRONOUS}=NORMAL: commits are NOT synced; an acknowledged delivery can be lost to a power cut (for tests only)"
            );
        });
        "NORMAL"
    } else {
        "FULL"
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: the WAL is fsynced at every commit, so a commit survives power loss,
    // not only a crash of this process.
    conn.pragma_update(None, "synchronous", synchronous())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The writer runs a dozen statements per delivery: keep them all prepared.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// A transaction that takes the write lock at once, for code outside the writer that
/// reads and then writes: a deferred one fails with `SQLITE_BUSY_SNAPSHOT`, which no
/// busy timeout waits out, when another connection commits between its read and its write.
pub fn immediate(conn: &Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
}

/// Opens the store for the command line: creates the directory and file on first use.
pub fn open_in(dir: &Path) -> Result<Connection, StoreError> {
    let path = prepare_data_dir(dir)?;
    open(&path)
}

pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The calendar day of `t` on this machine, which is where the researcher reads the dashboard.
pub fn local_day(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local).format("%Y-%m-%d").to_string()
}

/// Connections for reads (and the dashboard's rare settings writes), used off the async
/// executor. WAL lets them run alongside the writer without blocking it.
#[derive(Clone)]
pub struct ReadPool {
    path: Arc<PathBuf>,
    idle: Arc<Mutex<Vec<Connection>>>,
}

/// Idle connections kept for reuse; more are opened under load and closed after.
const POOL_IDLE: usize = 4;

impl ReadPool {
    pub fn new(path: PathBuf) -> Self {
        ReadPool { path: Arc::new(path), idle: Arc::default() }
    }

    /// Runs `f` with a connection on the blocking thread pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match pool.idle.lock().ok().and_then(|mut idle| idle.pop()) {
                Some(conn) => conn,
                None => open(&pool.path)?,
            };
            let result = f(&conn);
            if let Ok(mut idle) = pool.idle.lock() {
                if idle.len() < POOL_IDLE {
                    idle.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

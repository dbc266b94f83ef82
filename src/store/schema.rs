//! Versioned migrations, applied in order at open. A shipped migration is never
//! edited: a change to the schema is a new entry at the end of [`MIGRATIONS`].

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;
    INSERT INTO meta (key, value) VALUES ('auth_generation', '0');

    CREATE TABLE webhooks (
        webhook_id TEXT PRIMARY KEY,
        label      TEXT,
        auth_mode  TEXT NOT NULL CHECK (auth_mode IN ('none', 'passcode', 'basic', 'bearer')),
        basic_user TEXT,
        secret     TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        CHECK (auth_mode = 'none' OR length(secret) > 0)
    ) STRICT;
    -- The receiver reloads authentication when this number moves, whoever changed it.
    CREATE TRIGGER webhooks_insert AFTER INSERT ON webhooks BEGIN
        UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'auth_generation';
    END;
    CREATE TRIGGER webhooks_update AFTER UPDATE ON webhooks BEGIN
        UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'auth_generation';
    END;
    CREATE TRIGGER webhooks_delete AFTER DELETE ON webhooks BEGIN
        UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'auth_generation';
    END;

    CREATE TABLE deliveries (
        seq               INTEGER PRIMARY KEY,
        delivery_id       TEXT NOT NULL,
        body_sha256       BLOB NOT NULL,
        event             TEXT NOT NULL,
        webhook_id        TEXT,
        received_at       INTEGER NOT NULL,
        peer              TEXT,
        forwarded_for     TEXT,
        auth              TEXT NOT NULL,
        headers           TEXT NOT NULL,
        body              BLOB NOT NULL,
        flag              TEXT,
        problem           TEXT,
        study_id          TEXT,
        subject_id        TEXT,
        upload_id         TEXT,
        status            TEXT,
        summary           TEXT NOT NULL,
        duplicates        INTEGER NOT NULL DEFAULT 0,
        last_duplicate_at INTEGER,
        UNIQUE (delivery_id, body_sha256)
    ) STRICT;
    CREATE INDEX deliveries_received ON deliveries (received_at);
    CREATE INDEX deliveries_upload ON deliveries (study_id, upload_id, seq) WHERE upload_id IS NOT NULL;
    CREATE INDEX deliveries_subject ON deliveries (study_id, subject_id, received_at);
    CREATE INDEX deliveries_event ON deliveries (event, seq);
    CREATE INDEX deliveries_flagged ON deliveries (seq) WHERE flag IS NOT NULL;

    -- Totals kept by triggers, so status pages never count a million rows.
    CREATE TABLE delivery_totals (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        deliveries INTEGER NOT NULL,
        duplicates INTEGER NOT NULL
    ) STRICT;
    INSERT INTO delivery_totals (id, deliveries, duplicates) VALUES (1, 0, 0);
    CREATE TRIGGER deliveries_counted AFTER INSERT ON deliveries BEGIN
        UPDATE delivery_totals SET deliveries = deliveries + 1, duplicates = duplicates + NEW.duplicates;
    END;
    CREATE TRIGGER deliveries_retried AFTER UPDATE OF duplicates ON deliveries BEGIN
        UPDATE delivery_totals SET duplicates = duplicates + NEW.duplicates - OLD.duplicates;
    END;
    CREATE TRIGGER deliveries_uncounted AFTER DELETE ON deliveries BEGIN
        UPDATE delivery_totals SET deliveries = deliveries - 1, duplicates = duplicates - OLD.duplicates;
    END;

    CREATE TABLE studies (
        study_id         TEXT PRIMARY KEY,
        label            TEXT,
        first_seen_at    INTEGER NOT NULL,
        last_delivery_at INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE subjects (
        study_id           TEXT NOT NULL,
        subject_id         TEXT NOT NULL,
        subject_identifier TEXT,
        first_seen_at      INTEGER NOT NULL,
        last_delivery_at   INTEGER NOT NULL,
        -- Kept by the writer as uploads change, so a study's subject list reads no uploads.
        uploads_started    INTEGER NOT NULL DEFAULT 0,
        uploads_completed  INTEGER NOT NULL DEFAULT 0,
        uploads_error      INTEGER NOT NULL DEFAULT 0,
        last_upload_at     INTEGER,
        other_events       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (study_id, subject_id)
    ) STRICT;
    CREATE INDEX subjects_recent ON subjects (study_id, last_delivery_at, subject_id);

    CREATE TABLE uploads (
        study_id               TEXT NOT NULL,
        upload_id              TEXT NOT NULL,
        subject_id             TEXT,
        status                 TEXT NOT NULL,
        started_at             INTEGER,
        completed_at           INTEGER,
        failed_at              INTEGER,
        error_message          TEXT,
        first_epoch_utc        INTEGER,
        last_epoch_utc         INTEGER,
        first_epoch_subject_tz TEXT,
        last_epoch_subject_tz  TEXT,
        first_seen_at          INTEGER NOT NULL,
        first_seen_day         TEXT NOT NULL,
        updated_at             INTEGER NOT NULL,
        deliveries             INTEGER NOT NULL,
        PRIMARY KEY (study_id, upload_id)
    ) STRICT;
    CREATE INDEX uploads_updated ON uploads (updated_at, study_id, upload_id);
    CREATE INDEX uploads_upload_id ON uploads (upload_id);
    CREATE INDEX uploads_status ON uploads (status, updated_at);
    CREATE INDEX uploads_study ON uploads (study_id, updated_at);
    CREATE INDEX uploads_study_status ON uploads (study_id, status, updated_at);
    CREATE INDEX uploads_subject ON uploads (study_id, subject_id, updated_at);
    CREATE INDEX uploads_any_subject ON uploads (subject_id, updated_at);

    -- Uploads per study, per local day first seen, per current status: kept by the
    -- writer as uploads change, so the overview's charts never scan the uploads table.
    CREATE TABLE upload_days (
        study_id TEXT NOT NULL,
        day      TEXT NOT NULL,
        status   TEXT NOT NULL,
        uploads  INTEGER NOT NULL,
        PRIMARY KEY (study_id, day, status)
    ) STRICT, WITHOUT ROWID;

    -- Preferences set from the dashboard (JSON values).
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;

    CREATE TABLE refused (
        id          INTEGER PRIMARY KEY,
        received_at INTEGER NOT NULL,
        peer        TEXT,
        method      TEXT NOT NULL,
        path        TEXT NOT NULL,
        status      INTEGER NOT NULL,
        reason      TEXT NOT NULL,
        webhook_id  TEXT,
        event       TEXT,
        delivery_id TEXT,
        headers     TEXT NOT NULL,
        body_prefix BLOB NOT NULL,
        body_len    INTEGER
    ) STRICT;
    CREATE INDEX refused_received ON refused (received_at);
    "#,
    // 2: the receiver's running periods and the outages between and within them.
    r#"
    -- One row per start of a receiver. `alive_at` moves with each commit-free heartbeat
    -- (at most one write per 10 minutes), so after a crash the run's end is known to
    -- within that, or to its last delivery when that is later.
    CREATE TABLE runs (
        id         INTEGER PRIMARY KEY,
        started_at INTEGER NOT NULL,
        alive_at   INTEGER NOT NULL,
        stopped_at INTEGER,
        pid        INTEGER
    ) STRICT;

    -- Periods CentrePoint could not reach the receiver: it was not running, the
    -- computer slept, or its public URL did not answer probes. `ended_at` is NULL while
    -- one is going on.
    CREATE TABLE outages (
        id         INTEGER PRIMARY KEY,
        started_at INTEGER NOT NULL,
        ended_at   INTEGER,
        kind       TEXT NOT NULL CHECK (kind IN ('stopped', 'crashed', 'asleep', 'unreachable')),
        reason     TEXT NOT NULL
    ) STRICT;
    CREATE INDEX outages_started ON outages (started_at);
    "#,
    // 3: compliance: each study's protocol, who is expected (the roster), and each
    // subject-day's wear time from the daily-statistics events.
    r#"
    CREATE TABLE study_protocols (
        study_id             TEXT PRIMARY KEY,
        valid_day_minutes    INTEGER NOT NULL CHECK (valid_day_minutes BETWEEN 1 AND 1440),
        valid_days_per_week  INTEGER NOT NULL CHECK (valid_days_per_week BETWEEN 1 AND 7),
        weekend_day_required INTEGER NOT NULL CHECK (weekend_day_required IN (0, 1)),
        silent_after_days    INTEGER NOT NULL CHECK (silent_after_days BETWEEN 1 AND 365),
        monitoring_from      TEXT,
        monitoring_until     TEXT,
        updated_at           INTEGER NOT NULL,
        CHECK (monitoring_from IS NULL OR monitoring_until IS NULL OR monitoring_from <= monitoring_until)
    ) STRICT;

    CREATE TABLE roster (
        study_id       TEXT NOT NULL,
        subject_id     TEXT NOT NULL,
        label          TEXT,
        enrolled_on    TEXT,
        expected_until TEXT,
        imported_at    INTEGER NOT NULL,
        PRIMARY KEY (study_id, subject_id)
    ) STRICT, WITHOUT ROWID;

    -- One row per subject-day (`day` is the subject's local date), kept by the writer: a
    -- later delivery for the same subject-day replaces the earlier one.
    CREATE TABLE subject_days (
        study_id      TEXT NOT NULL,
        subject_id    TEXT NOT NULL,
        day           TEXT NOT NULL,
        wear_minutes  REAL,
        total_minutes REAL,
        event         TEXT NOT NULL,
        delivery_seq  INTEGER NOT NULL,
        PRIMARY KEY (study_id, subject_id, day)
    ) STRICT, WITHOUT ROWID;
    "#,
    // 4: the compliance reads ask for a study's days in a range (the last 5 weeks, the
    // view's columns). The primary key starts with the subject, so without this index
    // they scan the study's whole history. With `subject_id` and `wear_minutes` it
    // covers those reads, and a day's rows come in subject order.
    r#"
    CREATE INDEX subject_days_by_day ON subject_days (study_id, day, subject_id, wear_minutes);
    "#,
    // 5: fewer indexes for the writer to keep (issue 14). Each new upload wrote both of
    // these at a random key, so each dirtied a page of its own at every commit. An
    // upload id or a subject searched across studies is found through the indexes that
    // start with the study instead, one study at a time (`study_id IN (SELECT study_id
    // FROM studies)`), which needs every upload's study listed: the writer has always
    // listed it, and the insert below makes sure of it.
    r#"
    DROP INDEX uploads_upload_id;
    DROP INDEX uploads_any_subject;
    INSERT OR IGNORE INTO studies (study_id, first_seen_at, last_delivery_at)
        SELECT study_id, min(first_seen_at), max(updated_at) FROM uploads GROUP BY study_id;
    "#,
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if current == VERSION {
        return Ok(());
    }
    if current > VERSION {
        return Err(StoreError::NewerSchema { path: path.to_path_buf(), found: current, known: VERSION });
    }
    // IMMEDIATE: two processes opening a new file at once must not both migrate it.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(current).unwrap_or(0)) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_to_an_empty_database_and_are_idempotent() {
        let mut conn = Connection::open_in_memory().expect("an in-memory database");
        migrate(&mut conn, Path::new(":memory:")).expect("migrations apply");
        migrate(&mut conn, Path::new(":memory:")).expect("a second open changes nothing");
        let version: i64 =
            conn.pragma_query_value(None, "user_version", |row| row.get(0)).expect("user_version");
        assert_eq!(version, VERSION);
        let check: String =
            conn.query_row("PRAGMA integrity_check", [], |row| row.get(0)).expect("integrity_check");
        assert_eq!(check, "ok");
    }

    #[test]
    fn migration_5_lists_every_upload_s_study_so_searches_across_studies_find_it() {
        let mut conn = Connection::open_in_memory().expect("an in-memory database");
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).expect("migrations 1 to 4");
        }
        conn.pragma_update(None, "user_version", 4).expect("set version");
        // An upload whose study is not listed (no writer leaves one, but a file may hold one).
        conn.execute_batch(
            "INSERT INTO uploads (study_id, upload_id, subject_id, status, first_seen_at, first_seen_day,
                 updated_at, deliveries) VALUES ('204', 'u1', 's1', 'started', 1000, '2026-12-01', 2000, 1);
             INSERT INTO studies (study_id, first_seen_at, last_delivery_at) VALUES ('189', 5, 6);",
        )
        .expect("rows");
        migrate(&mut conn, Path::new(":memory:")).expect("migration 5 applies");
        let studies: Vec<(String, i64, i64)> = conn
            .prepare("SELECT study_id, first_seen_at, last_delivery_at FROM studies ORDER BY study_id")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect())
            .expect("studies");
        assert_eq!(studies, [("189".to_string(), 5, 6), ("204".to_string(), 1000, 2000)]);
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name IN ('uploads_upload_id', 'uploads_any_subject')",
                [],
                |r| r.get(0),
            )
            .expect("indexes");
        assert_eq!(indexes, 0, "both indexes are gone");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().expect("an in-memory database");
        conn.pragma_update(None, "user_version", VERSION + 1).expect("set version");
        assert!(matches!(migrate(&mut conn, Path::new(":memory:")), Err(StoreError::NewerSchema { .. })));
    }
}

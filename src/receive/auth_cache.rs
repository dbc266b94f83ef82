//! The webhook authentication table, kept current: reloaded when another process (the
//! command line) or this one (the dashboard) changes the webhooks table.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::auth::AuthTable;
use super::ReceiverState;
use crate::store::{webhooks, StoreError};

/// How often, at most, the receiver looks for changed webhook configuration.
const AUTH_RECHECK: Duration = Duration::from_secs(1);

/// See [`ReceiverState::auth_invalidator`](super::ReceiverState::auth_invalidator).
#[derive(Clone, Debug, Default)]
pub struct AuthInvalidator(Arc<AtomicBool>);

impl AuthInvalidator {
    pub fn invalidate(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The authentication table, reloaded when the webhooks table changes.
pub(super) struct AuthCache {
    conn: Mutex<Connection>,
    table: RwLock<Arc<AuthTable>>,
    generation: AtomicI64,
    checked_at: Mutex<Instant>,
    /// Set when this process changed webhooks: reload before the next check, not within a second.
    stale: Arc<AtomicBool>,
}

impl AuthCache {
    pub(super) fn new(conn: Connection, table: AuthTable) -> Result<Self, StoreError> {
        let generation = webhooks::generation(&conn)?;
        Ok(AuthCache {
            conn: Mutex::new(conn),
            table: RwLock::new(Arc::new(table)),
            generation: AtomicI64::new(generation),
            checked_at: Mutex::new(Instant::now()),
            stale: Arc::default(),
        })
    }

    pub(super) fn invalidator(&self) -> AuthInvalidator {
        AuthInvalidator(self.stale.clone())
    }

    fn snapshot(&self) -> Arc<AuthTable> {
        self.table.read().map_or_else(|poisoned| poisoned.into_inner().clone(), |t| t.clone())
    }

    /// Looks for a configuration change at most once a second, and only when a request
    /// arrives: an idle receiver does no work at all.
    pub(super) async fn current(state: &ReceiverState) -> Arc<AuthTable> {
        let cache = &state.inner.auth;
        let forced = cache.stale.swap(false, Ordering::AcqRel);
        let due = cache.checked_at.lock().is_ok_and(|mut at| {
            let due = forced || at.elapsed() >= AUTH_RECHECK;
            if due {
                *at = Instant::now();
            }
            due
        });
        if due {
            let state = state.clone();
            let reloaded = tokio::task::spawn_blocking(move || state.inner.auth.reload()).await;
            if let Ok(Err(e)) = reloaded {
                tracing::error!("cannot reload webhook authentication, keeping the previous one: {e}");
            }
        }
        cache.snapshot()
    }

    fn reload(&self) -> rusqlite::Result<()> {
        // A panic elsewhere while holding the lock leaves the connection itself usable.
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = webhooks::generation(&conn)?;
        if generation != self.generation.load(Ordering::Acquire) {
            let table = webhooks::auth_table(&conn)?;
            tracing::info!("webhook authentication changed: {} webhook(s) configured", table.webhooks.len());
            if let Ok(mut slot) = self.table.write() {
                *slot = Arc::new(table);
            }
            self.generation.store(generation, Ordering::Release);
        }
        Ok(())
    }
}

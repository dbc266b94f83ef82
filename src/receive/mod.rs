//! The receiver: the HTTP listener a tunnel exposes to the internet. It answers the
//! validation handshake, authenticates each delivery, hands it to the store and
//! acknowledges it only once it is on disk. Nothing else is served here.
//!
//! A delivery's way through: [`listener`] (connections, limits) -> [`handler`] (headers
//! and body read, or a `Refusal`) -> [`auth`] and [`signature`] (who sent it, with the
//! table [`auth_cache`] keeps current) -> the store's writer, then the answer.

pub mod auth;
mod auth_cache;
mod handler;
mod headers;
mod listener;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

use crate::config::Config;
use crate::reach::probe::PROBE_HEADER;
use crate::reach::ProbeKey;
use crate::store::{self, webhooks, StoreError, WriterHandle};

use auth_cache::AuthCache;
pub use auth_cache::AuthInvalidator;
pub use headers::redacted_headers;
pub use listener::{serve, ServeOptions};

pub const EVENT_HEADER: &str = "x-actigraph-event";
pub const DELIVERY_HEADER: &str = "x-actigraph-delivery";
pub const WEBHOOK_HEADER: &str = "x-actigraph-webhook-id";
pub const SIGNATURE_HEADER: &str = "x-actigraph-signature";
pub const HOOK_SECRET_HEADER: &str = "x-actigraph-hook-secret";

/// What the receiver's handlers share.
#[derive(Clone)]
pub struct ReceiverState {
    inner: Arc<Inner>,
}

struct Inner {
    writer: WriterHandle,
    auth: AuthCache,
    max_body_bytes: usize,
    body_timeout: Duration,
    trust_forwarded_headers: bool,
    probe_key: ProbeKey,
}

impl ReceiverState {
    /// `db` is the database file; the state keeps one read connection of its own to
    /// follow webhook configuration changes made by other processes.
    pub fn new(config: &Config, db: &std::path::Path, writer: WriterHandle) -> Result<Self, StoreError> {
        let conn = store::open(db)?;
        let table = webhooks::auth_table(&conn)?;
        if table.is_open() {
            tracing::warn!(
                "no webhook authentication is configured: anyone who knows the URL can post deliveries \
                 (configure a passcode with `cpwatch webhooks add`)"
            );
        }
        Ok(ReceiverState {
            inner: Arc::new(Inner {
                writer,
                auth: AuthCache::new(conn, table)?,
                max_body_bytes: config.max_body_bytes,
                body_timeout: config.body_timeout(),
                trust_forwarded_headers: config.trust_forwarded_headers,
                probe_key: ProbeKey::random(),
            }),
        })
    }

    pub fn writer(&self) -> &WriterHandle {
        &self.inner.writer
    }

    /// The key this receiver answers probes of its public URL with.
    pub fn probe_key(&self) -> &ProbeKey {
        &self.inner.probe_key
    }

    /// A handle that makes the receiver re-read webhook authentication before the next
    /// delivery, for changes made in this process (the dashboard's Settings).
    pub fn auth_invalidator(&self) -> AuthInvalidator {
        self.inner.auth.invalidator()
    }
}

/// The receiver's routes: the webhook path and `/healthz`, nothing else.
pub fn router(state: ReceiverState, webhook_path: &str) -> Router {
    Router::new()
        .route(webhook_path, post(handler::receive))
        .route("/healthz", get(healthz))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state)
}

/// `ok`, and to a probe of the public URL, this receiver's answer to its nonce: the
/// proof that the URL reaches this receiver (`reach::probe`).
async fn healthz(State(state): State<ReceiverState>, uri: Uri) -> impl IntoResponse {
    // Read by hand: a query string that is not a probe's is no reason to refuse `ok`.
    let nonce = uri.query().unwrap_or_default().split('&').find_map(|pair| pair.strip_prefix("probe="));
    let answer = nonce.and_then(|nonce| state.inner.probe_key.answer(nonce));
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(value) = answer.and_then(|a| HeaderValue::from_str(&a).ok()) {
        headers.insert(PROBE_HEADER, value);
    }
    (headers, "ok\n")
}

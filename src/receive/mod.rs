//! The receiver: the HTTP listener a tunnel exposes to the internet. It answers the
//! validation handshake, authenticates each delivery, hands it to the store and
//! acknowledges it only once it is on disk. Nothing else is served here.

pub mod auth;
pub mod signature;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use rusqlite::Connection;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::config::Config;
use crate::event::{self, Event};
use crate::receive::auth::{AuthOutcome, AuthTable, Credentials, WebhookId};
use crate::store::{self, webhooks, NewDelivery, RefusedRequest, StoreError, Stored, WriterHandle};

pub const EVENT_HEADER: &str = "x-actigraph-event";
pub const DELIVERY_HEADER: &str = "x-actigraph-delivery";
pub const WEBHOOK_HEADER: &str = "x-actigraph-webhook-id";
pub const SIGNATURE_HEADER: &str = "x-actigraph-signature";
pub const HOOK_SECRET_HEADER: &str = "x-actigraph-hook-secret";

/// How much of a refused request's body the log keeps.
const REFUSED_BODY_PREFIX: usize = 2048;
/// How often, at most, the receiver looks for changed webhook configuration.
const AUTH_RECHECK: Duration = Duration::from_secs(1);

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
}

impl ReceiverState {
    /// `db` is the database file; the state keeps one read connection of its own to
    /// follow webhook configuration changes made by other processes.
    pub fn new(config: &Config, db: &std::path::Path, writer: WriterHandle) -> Result<Self, StoreError> {
        let conn = store::open(db)?;
        let table = webhooks::auth_table(&conn)?;
        let generation = webhooks::generation(&conn)?;
        if table.is_open() {
            tracing::warn!(
                "no webhook authentication is configured: anyone who knows the URL can post deliveries \
                 (configure a passcode with `cpwatch webhooks add`)"
            );
        }
        Ok(ReceiverState {
            inner: Arc::new(Inner {
                writer,
                auth: AuthCache {
                    conn: Mutex::new(conn),
                    table: RwLock::new(Arc::new(table)),
                    generation: AtomicI64::new(generation),
                    checked_at: Mutex::new(Instant::now()),
                    stale: Arc::default(),
                },
                max_body_bytes: config.max_body_bytes,
                body_timeout: config.body_timeout(),
                trust_forwarded_headers: config.trust_forwarded_headers,
            }),
        })
    }

    pub fn writer(&self) -> &WriterHandle {
        &self.inner.writer
    }

    /// A handle that makes the receiver re-read webhook authentication before the next
    /// delivery, for changes made in this process (the dashboard's Settings).
    pub fn auth_invalidator(&self) -> AuthInvalidator {
        AuthInvalidator(self.inner.auth.stale.clone())
    }
}

/// See [`ReceiverState::auth_invalidator`].
#[derive(Clone, Debug, Default)]
pub struct AuthInvalidator(Arc<AtomicBool>);

impl AuthInvalidator {
    pub fn invalidate(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The authentication table, reloaded when the webhooks table changes.
struct AuthCache {
    conn: Mutex<Connection>,
    table: RwLock<Arc<AuthTable>>,
    generation: AtomicI64,
    checked_at: Mutex<Instant>,
    /// Set when this process changed webhooks: reload before the next check, not within a second.
    stale: Arc<AtomicBool>,
}

impl AuthCache {
    fn snapshot(&self) -> Arc<AuthTable> {
        self.table.read().map_or_else(|poisoned| poisoned.into_inner().clone(), |t| t.clone())
    }

    /// Looks for a configuration change at most once a second, and only when a request
    /// arrives: an idle receiver does no work at all.
    async fn current(state: &ReceiverState) -> Arc<AuthTable> {
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

/// The receiver's routes: the webhook path and `/healthz`, nothing else.
pub fn router(state: ReceiverState, webhook_path: &str) -> Router {
    Router::new()
        .route(webhook_path, post(receive))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state)
}

/// A request the receiver does not take, with the one-line reason the sender sees.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    reason: String,
}

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Refusal { status, reason: reason.into() }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, format!("{}\n", self.reason)).into_response()
    }
}

/// Header value as trimmed text; `None` when absent, empty or not text.
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// Every header, with credentials replaced, for storage and the refused log.
pub fn redacted_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let text = String::from_utf8_lossy(value.as_bytes());
            let shown = match name.as_str() {
                "authorization" | "proxy-authorization" => {
                    let scheme = text.split_whitespace().next().unwrap_or("");
                    format!("{scheme} [redacted]").trim_start().to_string()
                }
                "cookie" | "set-cookie" | "x-api-key" => "[redacted]".to_string(),
                _ => text.chars().take(1024).collect(),
            };
            (name.as_str().to_string(), shown)
        })
        .collect()
}

fn usable_token(value: &str, max: usize) -> bool {
    value.len() <= max && value.chars().all(|c| c.is_ascii_graphic())
}

async fn receive(
    State(state): State<ReceiverState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let received_at = Utc::now();
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let forwarded_for = state
        .inner
        .trust_forwarded_headers
        .then(|| {
            header_text(headers, "cf-connecting-ip").or_else(|| {
                header_text(headers, "x-forwarded-for")
                    .and_then(|v| v.split(',').next().map(|first| first.trim().to_string()))
            })
        })
        .flatten();
    let event = header_text(headers, EVENT_HEADER);
    let delivery_id = header_text(headers, DELIVERY_HEADER);
    let webhook_id = header_text(headers, WEBHOOK_HEADER);
    // Requests that are not taken (and validations answered despite wrong credentials)
    // go to the bounded refused log, never to the deliveries.
    let log_refused = |status: StatusCode, reason: &str, body: &[u8], body_len: Option<u64>| {
        state.inner.writer.log_refused(RefusedRequest {
            received_at,
            peer: Some(peer.to_string()),
            method: parts.method.to_string(),
            path: parts.uri.path().chars().take(256).collect(),
            status: status.as_u16(),
            reason: reason.to_string(),
            webhook_id: webhook_id.clone(),
            event: event.clone(),
            delivery_id: delivery_id.clone(),
            headers: redacted_headers(headers),
            body_prefix: body[..body.len().min(REFUSED_BODY_PREFIX)].to_vec(),
            body_len,
        });
    };
    let refuse = |refusal: Refusal, body: &[u8], body_len: Option<u64>| -> Response {
        tracing::warn!(peer = %peer, status = refusal.status.as_u16(), "refused a request: {}", refusal.reason);
        log_refused(refusal.status, &refusal.reason, body, body_len);
        refusal.into_response()
    };
    for (name, value, shown) in [
        (EVENT_HEADER, &event, "X-ActiGraph-Event"),
        (DELIVERY_HEADER, &delivery_id, "X-ActiGraph-Delivery"),
        (WEBHOOK_HEADER, &webhook_id, "X-ActiGraph-Webhook-Id"),
    ] {
        if value.is_none() && headers.contains_key(name) {
            let reason = format!("{shown} header is empty or not text");
            return refuse(Refusal::new(StatusCode::BAD_REQUEST, reason), &[], None);
        }
    }

    let (event, delivery_id) = match (&event, &delivery_id) {
        (None, _) => {
            return refuse(
                Refusal::new(StatusCode::BAD_REQUEST, "missing X-ActiGraph-Event header"),
                &[],
                None,
            );
        }
        (_, None) => {
            return refuse(
                Refusal::new(StatusCode::BAD_REQUEST, "missing X-ActiGraph-Delivery header"),
                &[],
                None,
            );
        }
        (Some(e), Some(d)) => (e.clone(), d.clone()),
    };
    if !usable_token(&event, 100) {
        return refuse(
            Refusal::new(StatusCode::BAD_REQUEST, "X-ActiGraph-Event is not an event name"),
            &[],
            None,
        );
    }
    if !usable_token(&delivery_id, 200) || webhook_id.as_deref().is_some_and(|w| WebhookId::parse(w).is_err())
    {
        return refuse(
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "X-ActiGraph-Delivery or X-ActiGraph-Webhook-Id is not an id",
            ),
            &[],
            None,
        );
    }

    let limit = state.inner.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        let reason = format!("body is larger than the {limit}-byte limit");
        return refuse(Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, reason), &[], declared);
    }
    let body = match tokio::time::timeout(state.inner.body_timeout, Limited::new(body, limit).collect()).await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            let reason = format!("body is larger than the {limit}-byte limit");
            return refuse(Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, reason), &[], None);
        }
        Ok(Err(_)) => {
            return refuse(Refusal::new(StatusCode::BAD_REQUEST, "the body could not be read"), &[], None);
        }
        Err(_) => {
            return refuse(
                Refusal::new(StatusCode::REQUEST_TIMEOUT, "the body took too long to arrive"),
                &[],
                None,
            );
        }
    };

    let table = AuthCache::current(&state).await;
    let outcome = table.authenticate(
        webhook_id.as_deref(),
        &Credentials {
            signature: headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()),
            authorization: headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()),
            body: &body,
        },
    );
    let is_validation = event.eq_ignore_ascii_case(event::VALIDATION);
    if let (AuthOutcome::Refused(why), false) = (&outcome, is_validation) {
        let refusal = Refusal::new(StatusCode::UNAUTHORIZED, format!("authentication failed: {why}"));
        return refuse(refusal, &body, Some(body.len() as u64));
    }

    let parsed = event::parse(&event, &body);
    let echo = if is_validation {
        let from_body = parsed.as_ref().ok().and_then(|p| match &p.event {
            Event::Validation(v) => v.code.clone(),
            _ => None,
        });
        let code = header_text(headers, HOOK_SECRET_HEADER).or(from_body);
        match code.filter(|c| usable_token(c, 200)).and_then(|c| HeaderValue::from_str(&c).ok()) {
            Some(value) => Some(value),
            None => {
                let refusal =
                    Refusal::new(StatusCode::BAD_REQUEST, "validation delivery without a usable code");
                return refuse(refusal, &body, Some(body.len() as u64));
            }
        }
    } else {
        None
    };
    if let (AuthOutcome::Refused(why), Some(code)) = (&outcome, &echo) {
        // The code is no secret, so the handshake is answered whatever the credentials,
        // and the mismatch is recorded now, so that a wrong passcode shows up at validation
        // time rather than when the first upload is refused. It goes to the bounded log:
        // unauthenticated requests must not be able to grow the deliveries table.
        let reason = format!("validation answered, but its credentials do not match: {why}");
        tracing::warn!(
            delivery = %delivery_id, webhook = webhook_id.as_deref().unwrap_or("-"),
            "{reason}: check the webhook's passcode or credentials"
        );
        log_refused(StatusCode::OK, &reason, &body, Some(body.len() as u64));
        let mut response = (StatusCode::OK, format!("{reason}\n")).into_response();
        response.headers_mut().insert(HOOK_SECRET_HEADER, code.clone());
        return response;
    }

    let delivery = NewDelivery {
        delivery_id: delivery_id.clone(),
        event_name: event.clone(),
        webhook_id: webhook_id.clone(),
        received_at,
        peer: Some(peer.to_string()),
        forwarded_for,
        auth: outcome.describe(),
        headers: redacted_headers(headers),
        body: body.to_vec(),
        parsed,
    };
    let flag = delivery.flag();
    let summary = delivery.summary();
    match state.inner.writer.store(delivery).await {
        Ok(stored) => {
            let what = match stored {
                Stored::New { .. } => "stored",
                Stored::Duplicate { .. } => "duplicate",
            };
            tracing::info!(
                delivery = %delivery_id, event = %event, webhook = webhook_id.as_deref().unwrap_or("-"),
                flag = flag.unwrap_or("-"), "{what}: {summary}"
            );
            let mut response = (StatusCode::OK, format!("{what}\n")).into_response();
            if let Some(code) = echo {
                response.headers_mut().insert(HOOK_SECRET_HEADER, code);
            }
            response
        }
        Err(e) => {
            tracing::error!(delivery = %delivery_id, "not acknowledged, the sender will retry: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "the delivery could not be stored; retry later\n")
                .into_response()
        }
    }
}

/// Connection-level limits for [`serve`].
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// How long in-flight requests get to finish after shutdown begins.
    pub grace: Duration,
}

impl ServeOptions {
    pub fn from_config(config: &Config) -> Self {
        ServeOptions {
            header_timeout: config.header_timeout(),
            max_connections: config.max_connections,
            grace: config.body_timeout() + Duration::from_secs(5),
        }
    }
}

/// Serves `router` on an already bound listener until `shutdown` resolves, then stops
/// accepting and lets in-flight requests finish (up to the grace period).
///
/// HTTP/1.1 only: CentrePoint and the tunnels in front of the receiver speak it, and
/// hyper's HTTP/1 server gives the header-read timeout that stops slow clients.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(options.header_timeout).max_buf_size(64 * 1024);
    tokio::pin!(shutdown);
    loop {
        // Waiting for a free slot before accepting leaves extra clients in the kernel's
        // backlog instead of holding their sockets (and memory) here.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move { Ok::<_, Infallible>(router.oneshot(request).await.unwrap_or_else(|e| match e {})) }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(options.grace) => {
            tracing::warn!("some connections were still open after {:?}; closing them", options.grace);
        }
    }
    Ok(())
}

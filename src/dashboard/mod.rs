//! The study dashboard: a JSON API under `/api/`, a live stream of what the writer
//! commits (Server-Sent Events), and the static UI from `ui/`, embedded at build time.
//!
//! It listens on its own loopback socket, never on the receiver's (which a tunnel
//! exposes): study data is not reachable from the internet. It also refuses requests
//! whose `Host` is not its own loopback address (DNS rebinding) and state-changing
//! requests from other origins (CSRF), and sends a strict Content-Security-Policy.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Duration, Local, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use crate::emulator::send;
use crate::event::{self, UploadStatus};
use crate::export::{self, Format};
use crate::receive::auth::{AuthMethod, AuthMode, Secret, DEFAULT_WEBHOOK};
use crate::receive::AuthInvalidator;
use crate::store::deliveries::{self, DeliveryQuery};
use crate::store::settings::{self, Preferences};
use crate::store::uploads::{self, UploadQuery};
use crate::store::{refused, status, studies, subjects, Filter};
use crate::store::{webhooks, ReadPool, StoreError, WriterHandle};

mod ui {
    include!(concat!(env!("OUT_DIR"), "/ui_files.rs"));
}

/// The header a script sends on state-changing requests instead of a browser's `Origin`.
pub const SCRIPT_HEADER: &str = "x-cpwatch-request";

/// The Content-Security-Policy of every response: only this origin's own files run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// What the dashboard may change about the desktop app it runs in.
pub trait DesktopSettings: Send + Sync {
    /// Whether the app starts at login; `None` where it cannot (no autostart directory).
    fn start_at_login(&self) -> Option<bool>;
    /// Turns starting at login on or off; the error is for a person to read.
    fn set_start_at_login(&self, on: bool) -> Result<(), String>;
}

/// The dashboard's link to the desktop app, when it runs inside one: what the app says
/// about itself (notifications available, paused, ...), shown in the overview's health
/// panel, and the app's own settings. Empty when running headless (`cpwatch serve`).
#[derive(Clone, Default)]
pub struct DesktopLink {
    inner: Arc<DesktopLinkInner>,
}

#[derive(Default)]
struct DesktopLinkInner {
    status: std::sync::RwLock<Option<serde_json::Value>>,
    settings: std::sync::OnceLock<Arc<dyn DesktopSettings>>,
}

impl DesktopLink {
    /// Replaces what the app says about itself.
    pub fn set_status(&self, status: serde_json::Value) {
        if let Ok(mut current) = self.inner.status.write() {
            *current = Some(status);
        }
    }

    pub fn status(&self) -> Option<serde_json::Value> {
        self.inner.status.read().ok().and_then(|s| s.clone())
    }

    /// Gives the dashboard the app's settings (once; later calls are ignored).
    pub fn attach(&self, settings: Arc<dyn DesktopSettings>) {
        let _ = self.inner.settings.set(settings);
    }

    fn settings(&self) -> Option<&Arc<dyn DesktopSettings>> {
        self.inner.settings.get()
    }

    /// The desktop app's settings as the Settings page shows them; `null` when headless.
    fn settings_json(&self) -> serde_json::Value {
        match self.settings() {
            Some(settings) => json!({ "start_at_login": settings.start_at_login() }),
            None => serde_json::Value::Null,
        }
    }
}

/// What the dashboard's handlers share.
#[derive(Clone)]
pub struct DashboardState {
    inner: Arc<Inner>,
}

struct Inner {
    pool: ReadPool,
    writer: WriterHandle,
    /// `host:port` forms this dashboard answers to.
    hosts: Vec<String>,
    receiver_listen: SocketAddr,
    receiver_url: String,
    configured_public_url: Option<String>,
    shutdown: watch::Receiver<bool>,
    auth_changed: AuthInvalidator,
    desktop: DesktopLink,
}

impl DashboardState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pool: ReadPool,
        writer: WriterHandle,
        auth_changed: AuthInvalidator,
        dashboard: SocketAddr,
        receiver_listen: SocketAddr,
        receiver_url: String,
        configured_public_url: Option<String>,
        shutdown: watch::Receiver<bool>,
        desktop: DesktopLink,
    ) -> Self {
        let port = dashboard.port();
        let hosts = vec![format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")];
        DashboardState {
            inner: Arc::new(Inner {
                pool,
                writer,
                hosts,
                receiver_listen,
                receiver_url,
                configured_public_url,
                shutdown,
                auth_changed,
                desktop,
            }),
        }
    }
}

pub fn router(state: DashboardState) -> Router {
    let api = Router::new()
        .route("/overview", get(overview))
        .route("/uploads", get(uploads))
        .route("/uploads/{study}/{upload}", get(upload_detail))
        .route("/studies", get(studies))
        .route("/studies/{study}", put(name_study))
        .route("/studies/{study}/subjects", get(subjects))
        .route("/studies/{study}/subjects/{subject}", get(subject_detail))
        .route("/deliveries", get(deliveries))
        .route("/deliveries/{seq}", get(delivery_detail))
        .route("/refused", get(refused))
        .route("/settings", get(get_settings).put(put_settings))
        .route("/desktop", put(put_desktop))
        .route("/webhooks/{id}", put(put_webhook).delete(delete_webhook))
        .route("/test-delivery", post(test_delivery))
        .route("/export", get(export_uploads))
        .route("/events", get(live))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such API endpoint") });
    Router::new()
        .nest("/api", api)
        .route("/", get(|| async { asset("index.html") }))
        .route("/{*path}", get(|Path(path): Path<String>| async move { asset(&path) }))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Host check, CSRF check and security headers, for every request.
async fn guard(State(state): State<DashboardState>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !state.inner.hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host)) {
        let message = format!("this dashboard only answers at http://{}/", state.inner.hosts[0]);
        return secured(ApiError::new(StatusCode::MISDIRECTED_REQUEST, message).into_response());
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let origin = request.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok());
        let allowed = match origin {
            Some(origin) => {
                state.inner.hosts.iter().any(|h| origin.eq_ignore_ascii_case(&format!("http://{h}")))
            }
            // Browsers send Origin on every state-changing request; scripts say who they are.
            None => request.headers().contains_key(SCRIPT_HEADER),
        };
        if !allowed {
            let message = "cross-origin request refused (scripts: send the X-CPWatch-Request header)";
            return secured(ApiError::new(StatusCode::FORBIDDEN, message).into_response());
        }
    }
    let is_api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    if is_api {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    secured(response)
}

fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn asset(path: &str) -> Response {
    let path = path.trim_start_matches('/');
    let Some((_, bytes)) = ui::UI_FILES.iter().find(|(name, _)| *name == path) else {
        return ApiError::new(StatusCode::NOT_FOUND, "not found").into_response();
    };
    let content_type = match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "webmanifest" => "application/json",
        _ => "application/octet-stream",
    };
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], *bytes).into_response()
}

/// An API error: a clear message for bad input, a generic one for internal faults.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!("dashboard request failed: {e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error (see the cpwatch log)")
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(value: impl serde::Serialize) -> ApiResult {
    Ok(Json(value).into_response())
}

/// Runs a read (or a settings write) on the pool.
async fn db<T, F>(state: &DashboardState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&rusqlite::Connection) -> Result<T, ApiError> + Send + 'static,
{
    let result = state.inner.pool.run(move |conn| Ok(f(conn))).await?;
    result
}

/// Filters as query parameters: `study`, `subject`, `status`, `event`, `since`, `until`.
#[derive(Debug, Default, Deserialize)]
struct FilterParams {
    study: Option<String>,
    subject: Option<String>,
    status: Option<String>,
    event: Option<String>,
    /// A date (`2026-11-01`, from that day's start, local time) or an RFC 3339 time.
    since: Option<String>,
    /// A date (up to the end of that day, local time) or an RFC 3339 time.
    until: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
    flagged: Option<bool>,
    /// Only uploads still `started` for longer than the stalled threshold.
    stalled: Option<bool>,
    format: Option<String>,
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)
}

fn parse_bound(text: &str, end_of_day: bool) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(date) = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        let date = if end_of_day { date + Duration::days(1) } else { date };
        let local = date.and_time(chrono::NaiveTime::MIN).and_local_timezone(Local);
        return local
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| ApiError::bad_request(format!("{text:?} is not a date here")));
    }
    event::parse_utc(text)
        .ok_or_else(|| ApiError::bad_request(format!("{text:?} is not a date (YYYY-MM-DD) or time")))
}

impl FilterParams {
    fn filter(&self) -> Result<Filter, ApiError> {
        let status = non_empty(&self.status);
        if let Some(s) = &status {
            if !["started", "completed", "error"].contains(&s.to_ascii_lowercase().as_str())
                && self.event.is_none()
            {
                return Err(ApiError::bad_request(format!(
                    "unknown status {s:?}: use started, completed or error"
                )));
            }
        }
        Ok(Filter {
            study: non_empty(&self.study),
            subject: non_empty(&self.subject),
            status,
            event: non_empty(&self.event),
            since: non_empty(&self.since).map(|s| parse_bound(&s, false)).transpose()?,
            until: non_empty(&self.until).map(|s| parse_bound(&s, true)).transpose()?,
            limit: None,
        })
    }

    fn limit(&self) -> u32 {
        self.limit.unwrap_or(50).clamp(1, 500)
    }
}

async fn overview(State(state): State<DashboardState>) -> ApiResult {
    let inner = state.inner.clone();
    let dropped = inner.writer.dropped_refusals();
    let desktop = inner.desktop.status();
    db(&state, move |conn| {
        let prefs = settings::preferences(conn)?;
        let now = Utc::now();
        let today = Local::now().date_naive();
        let cards = studies::cards(conn, today, now, Duration::minutes(prefs.stalled_after_minutes.into()))?;
        let counts = status::counts(conn, now)?;
        let auth_off = webhooks::list(conn)?.is_empty();
        Ok(json!({
            "now": now,
            "today": today,
            "stalled_after_minutes": prefs.stalled_after_minutes,
            "receiver": {
                "listening": inner.receiver_listen.to_string(),
                "webhook_url": inner.receiver_url,
                "public_url": prefs.public_url.or_else(|| inner.configured_public_url.clone()),
                "authentication_off": auth_off,
                "last_delivery_at": counts.last_delivery_at,
                "refused_last_day": counts.refused_last_day,
                "refused_not_logged": dropped,
            },
            "desktop": desktop,
            "totals": counts,
            "studies": cards,
        }))
    })
    .await
    .and_then(ok)
}

async fn uploads(State(state): State<DashboardState>, Query(params): Query<FilterParams>) -> ApiResult {
    let mut q = UploadQuery {
        filter: params.filter()?,
        search: non_empty(&params.q),
        stalled_before: None,
        cursor: non_empty(&params.cursor),
        limit: params.limit(),
    };
    let stalled = params.stalled.unwrap_or(false);
    db(&state, move |conn| {
        if stalled {
            let prefs = settings::preferences(conn)?;
            q.stalled_before = Some(Utc::now() - Duration::minutes(prefs.stalled_after_minutes.into()));
        }
        Ok(uploads::page(conn, &q)?)
    })
    .await
    .and_then(ok)
}

async fn upload_detail(
    State(state): State<DashboardState>,
    Path((study, upload)): Path<(String, String)>,
) -> ApiResult {
    db(&state, move |conn| {
        let row = uploads::get(conn, &study, &upload)?
            .ok_or_else(|| ApiError::not_found(format!("no upload {upload} in study {study}")))?;
        let timeline = deliveries::timeline(conn, &study, &upload)?
            .into_iter()
            .filter_map(|d| deliveries::get(conn, &d.seq.to_string()).transpose())
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let label = study_label(conn, &study)?;
        Ok(json!({ "upload": row, "study_label": label, "timeline": timeline }))
    })
    .await
    .and_then(ok)
}

fn study_label(conn: &rusqlite::Connection, study: &str) -> rusqlite::Result<Option<String>> {
    use rusqlite::OptionalExtension as _;
    Ok(conn
        .query_row("SELECT label FROM studies WHERE study_id = ?1", [study], |row| {
            row.get::<_, Option<String>>(0)
        })
        .optional()?
        .flatten())
}

async fn studies(State(state): State<DashboardState>) -> ApiResult {
    db(&state, |conn| {
        let mut stmt = conn.prepare(
            "SELECT study_id, label, last_delivery_at, (SELECT count(*) FROM subjects s WHERE s.study_id = t.study_id)
             FROM studies t ORDER BY coalesce(label, study_id)",
        )?;
        let rows = stmt
            .query_map([], |row| {
                Ok(json!({
                    "study_id": row.get::<_, String>(0)?,
                    "label": row.get::<_, Option<String>>(1)?,
                    "last_delivery_at": row.get::<_, i64>(2).map(|ms| (ms > 0).then(|| crate::store::from_ms(ms)))?,
                    "subjects": row.get::<_, i64>(3)?,
                }))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    })
    .await
    .and_then(ok)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StudyName {
    label: Option<String>,
}

async fn name_study(
    State(state): State<DashboardState>,
    Path(study): Path<String>,
    Json(body): Json<StudyName>,
) -> ApiResult {
    let label = body.label.map(|l| l.trim().to_string()).filter(|l| !l.is_empty());
    if label.as_ref().is_some_and(|l| l.chars().count() > 100) {
        return Err(ApiError::bad_request("a study name has at most 100 characters"));
    }
    if study.trim().is_empty() || study.len() > 128 {
        return Err(ApiError::bad_request("not a study id"));
    }
    db(&state, move |conn| {
        studies::set_label(conn, &study, label.as_deref())?;
        Ok(json!({ "study_id": study, "label": label }))
    })
    .await
    .and_then(ok)
}

async fn subjects(
    State(state): State<DashboardState>,
    Path(study): Path<String>,
    Query(params): Query<FilterParams>,
) -> ApiResult {
    let cursor = non_empty(&params.cursor);
    let limit = params.limit.unwrap_or(200).clamp(1, 1000);
    db(&state, move |conn| {
        let label = study_label(conn, &study)?;
        let page = subjects::page(conn, &study, cursor.as_deref(), limit)?;
        Ok(json!({ "study_id": study, "study_label": label, "subjects": page.items, "next_cursor": page.next_cursor }))
    })
    .await
    .and_then(ok)
}

async fn subject_detail(
    State(state): State<DashboardState>,
    Path((study, subject)): Path<(String, String)>,
) -> ApiResult {
    db(&state, move |conn| {
        let filter = Filter { study: Some(study.clone()), subject: Some(subject.clone()), ..Default::default() };
        let uploads = uploads::page(conn, &UploadQuery { filter, limit: 100, ..Default::default() })?;
        let events = subjects::events(conn, &study, &subject, 200)?;
        let label = study_label(conn, &study)?;
        Ok(json!({ "study_id": study, "study_label": label, "subject_id": subject, "uploads": uploads, "events": events }))
    })
    .await
    .and_then(ok)
}

async fn deliveries(State(state): State<DashboardState>, Query(params): Query<FilterParams>) -> ApiResult {
    let cursor = match non_empty(&params.cursor) {
        Some(c) => {
            Some(c.parse::<i64>().map_err(|_| ApiError::bad_request("cursor is not a delivery number"))?)
        }
        None => None,
    };
    let q = DeliveryQuery {
        filter: params.filter()?,
        flagged: params.flagged.unwrap_or(false),
        cursor,
        limit: params.limit(),
    };
    db(&state, move |conn| Ok(deliveries::page(conn, &q)?)).await.and_then(ok)
}

async fn delivery_detail(State(state): State<DashboardState>, Path(seq): Path<i64>) -> ApiResult {
    db(&state, move |conn| {
        deliveries::get(conn, &seq.to_string())?
            .filter(|d| d.row.seq == seq)
            .ok_or_else(|| ApiError::not_found(format!("no delivery #{seq}")))
    })
    .await
    .and_then(ok)
}

async fn refused(State(state): State<DashboardState>, Query(params): Query<FilterParams>) -> ApiResult {
    let limit = params.limit();
    let before = match non_empty(&params.cursor) {
        Some(c) => {
            Some(c.parse::<i64>().map_err(|_| ApiError::bad_request("cursor is not a refused-request id"))?)
        }
        None => None,
    };
    db(&state, move |conn| Ok(refused::list(conn, limit, before)?)).await.and_then(ok)
}

async fn get_settings(State(state): State<DashboardState>) -> ApiResult {
    let inner = state.inner.clone();
    db(&state, move |conn| {
        Ok(json!({
            "preferences": settings::preferences(conn)?,
            "webhooks": webhooks::list(conn)?,
            "receiver": {
                "listening": inner.receiver_listen.to_string(),
                "webhook_url": inner.receiver_url,
                "configured_public_url": inner.configured_public_url,
            },
            "desktop": inner.desktop.settings_json(),
        }))
    })
    .await
    .and_then(ok)
}

async fn put_settings(State(state): State<DashboardState>, Json(prefs): Json<Preferences>) -> ApiResult {
    prefs.validate().map_err(ApiError::bad_request)?;
    db(&state, move |conn| {
        settings::set_preferences(conn, &prefs)?;
        Ok(prefs)
    })
    .await
    .and_then(ok)
}

/// The desktop app's own settings, as the Settings page changes them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DesktopForm {
    start_at_login: bool,
}

async fn put_desktop(State(state): State<DashboardState>, Json(form): Json<DesktopForm>) -> ApiResult {
    let Some(settings) = state.inner.desktop.settings().cloned() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "these are settings of the cpwatch desktop app; this dashboard is served by `cpwatch serve`",
        ));
    };
    if settings.start_at_login().is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "starting at login is not available here: no autostart directory is known",
        ));
    }
    // A small file write, off the async threads all the same.
    let changed = tokio::task::spawn_blocking(move || settings.set_start_at_login(form.start_at_login))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    changed.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    ok(state.inner.desktop.settings_json())
}

/// A webhook as the Settings page submits it. The secret is write-only: leaving it out
/// keeps the current one (when the mode is unchanged).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookForm {
    label: Option<String>,
    auth_mode: AuthMode,
    user: Option<String>,
    secret: Option<String>,
}

async fn put_webhook(
    State(state): State<DashboardState>,
    Path(id): Path<String>,
    Json(form): Json<WebhookForm>,
) -> ApiResult {
    let id = id.trim().to_string();
    if id.is_empty() || id.len() > 100 || !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::bad_request(format!(
            "a webhook id is a number such as 15, or `{DEFAULT_WEBHOOK}`"
        )));
    }
    let label = form.label.map(|l| l.trim().to_string()).filter(|l| !l.is_empty());
    let secret = form.secret.filter(|s| !s.is_empty()).map(Secret::new);
    db(&state, move |conn| {
        let current = webhooks::auth_table(conn)?.webhooks.remove(&id);
        let kept = |mode: AuthMode| current.as_ref().filter(|m| m.mode() == mode).cloned();
        let method = match (form.auth_mode, secret) {
            (AuthMode::None, _) => AuthMethod::None,
            (AuthMode::Passcode, Some(s)) => AuthMethod::Passcode(s),
            (AuthMode::Bearer, Some(s)) => AuthMethod::Bearer(s),
            (AuthMode::Basic, Some(password)) => {
                let user = form
                    .user
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| ApiError::bad_request("Basic needs a user name"))?;
                AuthMethod::Basic { user, password }
            }
            (AuthMode::Basic, None) => match (kept(AuthMode::Basic), form.user.filter(|u| !u.is_empty())) {
                (Some(AuthMethod::Basic { password, .. }), Some(user)) => {
                    AuthMethod::Basic { user, password }
                }
                (Some(method), None) => method,
                _ => return Err(ApiError::bad_request("Basic needs a user name and a password")),
            },
            (mode, None) => kept(mode)
                .ok_or_else(|| ApiError::bad_request(format!("{} needs a secret", mode.as_str())))?,
        };
        webhooks::put(conn, &id, None, &method)?;
        // The form always sends the label: an empty one clears it.
        webhooks::set_label(conn, &id, label.as_deref())?;
        webhooks::get(conn, &id)?.ok_or_else(|| ApiError::not_found("webhook vanished"))
    })
    .await
    .inspect(|_| state.inner.auth_changed.invalidate())
    .and_then(ok)
}

async fn delete_webhook(State(state): State<DashboardState>, Path(id): Path<String>) -> ApiResult {
    db(&state, move |conn| {
        if webhooks::remove(conn, &id)? {
            Ok(json!({ "removed": id }))
        } else {
            Err(ApiError::not_found(format!("webhook {id} is not configured")))
        }
    })
    .await
    .inspect(|_| state.inner.auth_changed.invalidate())
    .and_then(ok)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TestDelivery {
    status: Option<String>,
    webhook_id: Option<String>,
    study: Option<String>,
}

/// Sends a test `upload` delivery through the real receiver, authenticated as the webhook
/// is configured, so the whole path (authentication, storage, live view) is exercised.
async fn test_delivery(State(state): State<DashboardState>, body: Option<Json<TestDelivery>>) -> ApiResult {
    let request = body.map(|Json(b)| b).unwrap_or_default();
    let status = request.status.unwrap_or_else(|| "completed".into());
    if UploadStatus::parse(&status).is_none() {
        return Err(ApiError::bad_request("status must be started, completed or error"));
    }
    let table = state.inner.pool.run(|conn| Ok(webhooks::auth_table(conn)?)).await?;
    let test = send::TestDelivery { status, webhook_id: request.webhook_id, study: request.study };
    let sent = send::test_delivery(&state.inner.receiver_url, &table, test, "the cpwatch dashboard")
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    let outcome = &sent.outcome;
    ok(json!({
        "accepted": outcome.ok(),
        "status": outcome.status,
        "answer": outcome.answer,
        "delivery_id": outcome.delivery_id,
        "webhook_id": sent.webhook_id,
        "study_id": sent.study_id,
        "upload_id": sent.upload_id,
        "latency_ms": outcome.latency.as_secs_f64() * 1000.0,
    }))
}

async fn export_uploads(
    State(state): State<DashboardState>,
    Query(params): Query<FilterParams>,
) -> ApiResult {
    let format = match params.format.as_deref().unwrap_or("csv") {
        "csv" => Format::Csv,
        "json" => Format::Json,
        other => return Err(ApiError::bad_request(format!("unknown format {other:?}: use csv or json"))),
    };
    let filter = params.filter()?;
    let study = filter.study.clone();
    let mut q =
        UploadQuery { filter, search: non_empty(&params.q), stalled_before: None, cursor: None, limit: 500 };
    let stalled = params.stalled.unwrap_or(false);
    let bytes = db(&state, move |conn| {
        if stalled {
            let prefs = settings::preferences(conn)?;
            q.stalled_before = Some(Utc::now() - Duration::minutes(prefs.stalled_after_minutes.into()));
        }
        // Exactly the rows of the filtered view, every page of them.
        let mut rows = Vec::new();
        loop {
            let page = uploads::page(conn, &q)?;
            rows.extend(page.items);
            match page.next_cursor {
                Some(next) => q.cursor = Some(next),
                None => break,
            }
        }
        let mut out = Vec::new();
        export::write(&mut out, &rows, format).map_err(|e| StoreError::WriteFailed(e.to_string()))?;
        Ok(out)
    })
    .await?;
    let name = export::file_name(study.as_deref(), format, Local::now().date_naive());
    let disposition = format!("attachment; filename=\"{name}\"");
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok((headers, bytes).into_response())
}

/// The live stream: one SSE event per committed delivery (`delivery`) or refused
/// request (`refused`); `lagged` when this client fell behind and should reload.
async fn live(State(state): State<DashboardState>) -> impl IntoResponse {
    let receiver = state.inner.writer.subscribe();
    let shutdown = state.inner.shutdown.clone();
    let stream =
        futures_util::stream::unfold((receiver, shutdown), |(mut receiver, mut shutdown)| async move {
            if *shutdown.borrow() {
                return None;
            }
            let event = tokio::select! {
                received = receiver.recv() => match received {
                    Ok(live) => {
                        let kind = match &live {
                            crate::store::LiveEvent::Delivery { .. } => "delivery",
                            crate::store::LiveEvent::Refused { .. } => "refused",
                        };
                        SseEvent::default().event(kind).json_data(&live).ok()?
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        SseEvent::default().event("lagged").data(missed.to_string())
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                // Ends the stream at shutdown so the server can stop without waiting on it.
                _ = shutdown.changed() => return None,
            };
            Some((Ok::<_, Infallible>(event), (receiver, shutdown)))
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

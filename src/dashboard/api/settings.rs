//! Settings: `GET`/`PUT /api/settings` (preferences), `PUT /api/desktop` (the desktop
//! app's own), and webhook authentication (`PUT`/`DELETE /api/webhooks/{id}`).

use axum::extract::{Path, State};
use axum::routing::{get, put};
use axum::Json;
use axum::Router;
use serde::{Deserialize, Serialize};

use super::db;
use crate::dashboard::desktop::DesktopSettingsView;
use crate::dashboard::error::{ok, ApiError, ApiResult};
use crate::dashboard::DashboardState;
use crate::receive::auth::{AuthMethod, AuthMode, Secret, WebhookId};
use crate::store::settings::{self, Preferences};
use crate::store::webhooks::{self, WebhookInfo};

pub(super) fn routes() -> Router<DashboardState> {
    Router::new()
        .route("/settings", get(get_settings).put(put_settings))
        .route("/desktop", put(put_desktop))
        .route("/webhooks/{id}", put(put_webhook).delete(delete_webhook))
}

#[derive(Serialize)]
struct Settings {
    preferences: Preferences,
    webhooks: Vec<WebhookInfo>,
    receiver: ReceiverSettings,
    /// The desktop app's own settings; `null` under `cpwatch serve`.
    desktop: Option<DesktopSettingsView>,
}

#[derive(Serialize)]
struct ReceiverSettings {
    listening: String,
    webhook_url: String,
    configured_public_url: Option<String>,
}

async fn get_settings(State(state): State<DashboardState>) -> ApiResult {
    let inner = state.inner.clone();
    db(&state, move |conn| {
        Ok(Settings {
            preferences: settings::preferences(conn)?,
            webhooks: webhooks::list(conn)?,
            receiver: ReceiverSettings {
                listening: inner.receiver.listen.to_string(),
                webhook_url: inner.receiver.webhook_url.clone(),
                configured_public_url: inner.receiver.configured_public_url.clone(),
            },
            desktop: inner.desktop.settings_view(),
        })
    })
    .await
    .and_then(ok)
}

async fn put_settings(State(state): State<DashboardState>, Json(prefs): Json<Preferences>) -> ApiResult {
    prefs.validate().map_err(|e| ApiError::bad_request(e.to_string()))?;
    let saved = db(&state, move |conn| {
        settings::set_preferences(conn, &prefs)?;
        Ok(prefs)
    })
    .await;
    // The public URL may have changed: find it and probe it again now.
    state.inner.reach.recheck();
    saved.and_then(ok)
}

/// The desktop app's own settings, as the Settings page changes them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DesktopForm {
    start_at_login: bool,
}

async fn put_desktop(State(state): State<DashboardState>, Json(form): Json<DesktopForm>) -> ApiResult {
    let Some(settings) = state.inner.desktop.settings().cloned() else {
        return Err(ApiError::conflict(
            "these are settings of the cpwatch desktop app; this dashboard is served by `cpwatch serve`",
        ));
    };
    if settings.start_at_login().is_none() {
        return Err(ApiError::conflict(
            "starting at login is not available here: no autostart directory is known",
        ));
    }
    // A small file write, off the async threads all the same.
    let changed = tokio::task::spawn_blocking(move || settings.set_start_at_login(form.start_at_login))
        .await
        .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    changed.map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    ok(state.inner.desktop.settings_view())
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
    let id = WebhookId::parse(&id).map_err(|e| ApiError::bad_request(e.to_string()))?.as_str().to_string();
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

#[derive(Serialize)]
struct Removed {
    removed: String,
}

async fn delete_webhook(State(state): State<DashboardState>, Path(id): Path<String>) -> ApiResult {
    db(&state, move |conn| {
        if webhooks::remove(conn, &id)? {
            Ok(Removed { removed: id })
        } else {
            Err(ApiError::not_found(format!("webhook {id} is not configured")))
        }
    })
    .await
    .inspect(|_| state.inner.auth_changed.invalidate())
    .and_then(ok)
}

//! The study dashboard: a JSON API under `/api/` ([`api`]), a live stream of what the
//! writer commits (Server-Sent Events), and the static UI from `ui/`, embedded at build
//! time.
//!
//! It listens on its own loopback socket, never on the receiver's (which a tunnel
//! exposes): study data is not reachable from the internet. It also refuses requests
//! whose `Host` is not its own loopback address (DNS rebinding) and state-changing
//! requests from other origins (CSRF), and sends a strict Content-Security-Policy
//! ([`guard`]). Handlers read and write through `store/` only; there is no SQL here.

mod api;
mod assets;
mod desktop;
mod error;
mod guard;
mod live;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Path;
use axum::middleware;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::reach::ReachHandle;
use crate::receive::AuthInvalidator;
use crate::store::{ReadPool, WriterHandle};

pub use desktop::{DesktopLink, DesktopSettingError, DesktopSettings};
pub use error::ApiError;
pub use guard::SCRIPT_HEADER;

/// Where the receiver listens, as the dashboard shows it.
#[derive(Debug, Clone)]
pub struct ReceiverInfo {
    pub listen: SocketAddr,
    /// The local webhook URL.
    pub webhook_url: String,
    /// The public URL from the configuration (the dashboard's Settings may override it).
    pub configured_public_url: Option<String>,
}

/// Everything a dashboard is built from.
pub struct DashboardSetup {
    pub pool: ReadPool,
    pub writer: WriterHandle,
    /// Told when the dashboard changes webhook authentication.
    pub auth_changed: AuthInvalidator,
    /// The dashboard's own address: the only `Host` it answers to.
    pub address: SocketAddr,
    pub receiver: ReceiverInfo,
    /// Turns true at shutdown: live streams end.
    pub shutdown: watch::Receiver<bool>,
    pub desktop: DesktopLink,
    /// The reachability monitor's state.
    pub reach: ReachHandle,
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
    receiver: ReceiverInfo,
    shutdown: watch::Receiver<bool>,
    auth_changed: AuthInvalidator,
    desktop: DesktopLink,
    reach: ReachHandle,
}

impl DashboardState {
    pub fn new(setup: DashboardSetup) -> Self {
        let DashboardSetup { pool, writer, auth_changed, address, receiver, shutdown, desktop, reach } =
            setup;
        let hosts = guard::loopback_hosts(address.port());
        DashboardState {
            inner: Arc::new(Inner { pool, writer, hosts, receiver, shutdown, auth_changed, desktop, reach }),
        }
    }
}

pub fn router(state: DashboardState) -> Router {
    Router::new()
        .nest("/api", api::router())
        .route("/", get(|| async { assets::asset("index.html") }))
        .route("/{*path}", get(|Path(path): Path<String>| async move { assets::asset(&path) }))
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .with_state(state)
}

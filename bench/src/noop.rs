//! The no-op baseline: the ceiling of the HTTP stack on this machine. It reads each
//! `POST /webhook` body and answers 200 without verifying or storing anything, and it
//! is served by cpwatch's own connection loop (`cpwatch::receive::serve`: hyper HTTP/1,
//! keep-alive, the same timeouts and connection limit) on the same kind of runtime as
//! `cpwatch serve`, so the only difference measured is what cpwatch does per delivery.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use cpwatch::receive::{self, ServeOptions};
use tokio::net::TcpListener;

pub fn router() -> Router {
    Router::new()
        .route("/webhook", post(|_body: Bytes| async { (StatusCode::OK, "ok\n") }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
}

/// cpwatch's defaults (`config.rs`): 10 s for headers, 256 connections, 30 s + 5 s grace.
pub fn serve_options() -> ServeOptions {
    ServeOptions {
        header_timeout: Duration::from_secs(10),
        max_connections: 256,
        grace: Duration::from_secs(35),
    }
}

/// Binds `listen`, prints the webhook URL on stdout and serves until SIGINT/SIGTERM.
pub fn run(listen: SocketAddr) -> anyhow::Result<()> {
    // The same runtime `cpwatch serve` builds: multi-threaded, one worker per core.
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener =
            TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener.local_addr().context("the listener has no address")?;
        println!("no-op baseline listening at http://{bound}/webhook");
        receive::serve(listener, router(), serve_options(), cpwatch::server::shutdown_signal())
            .await
            .context("the no-op server stopped")
    })
}

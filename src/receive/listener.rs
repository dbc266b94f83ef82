//! The connection loop both listeners run (the receiver's and the dashboard's): HTTP/1.1
//! with a header-read timeout, a cap on open connections, and a graceful stop.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::config::Config;

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

//! `cpwatch serve` as a library call: takes the data directory, starts the writer,
//! binds the receiver and runs until told to stop. The desktop shell reuses it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, ConfigError};
use crate::dashboard::{self, DashboardSetup, DashboardState, DesktopLink, ReceiverInfo};
use crate::receive::{self, ReceiverState, ServeOptions};
use crate::store::{self, writer, DataDirLock, ReadPool, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}{}", hint(source))]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the receiver stopped: {0}")]
    Serve(std::io::Error),
}

fn hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (the port is in use: is another cpwatch or program running? choose another with --listen)"
        }
        std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges: choose one above)",
        _ => "",
    }
}

/// A receiver that has its data directory, its database and its socket, ready to serve.
pub struct Receiver {
    config: Config,
    data_dir: PathBuf,
    first_start: bool,
    listener: TcpListener,
    dashboard_listener: TcpListener,
    db: PathBuf,
    state: ReceiverState,
    desktop: DesktopLink,
    writer_thread: JoinHandle<()>,
    _lock: DataDirLock,
}

impl Receiver {
    /// Locks the data directory, opens (or creates) the database and binds the listener.
    pub async fn start(config: Config) -> Result<Receiver, ServerError> {
        let data_dir = config.data_dir()?;
        let first_start = !data_dir.join(store::DATABASE_FILE).exists();
        let db = store::prepare_data_dir(&data_dir)?;
        let lock = store::lock_data_dir(&data_dir)?;
        let (writer, writer_thread) = writer::spawn(db.clone(), config.refused_log_size)?;
        let state = ReceiverState::new(&config, &db, writer)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind { addr: config.listen, source })?;
        let dashboard_listener = TcpListener::bind(config.dashboard_listen)
            .await
            .map_err(|source| ServerError::Bind { addr: config.dashboard_listen, source })?;
        let mut lock = lock;
        let bound = listener.local_addr().unwrap_or(config.listen);
        lock.announce(&config.local_webhook_url(bound))?;
        Ok(Receiver {
            config,
            data_dir,
            first_start,
            listener,
            dashboard_listener,
            db,
            state,
            desktop: DesktopLink::default(),
            writer_thread,
            _lock: lock,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    pub fn webhook_url(&self) -> String {
        self.config.local_webhook_url(self.local_addr())
    }

    pub fn dashboard_addr(&self) -> SocketAddr {
        self.dashboard_listener.local_addr().unwrap_or(self.config.dashboard_listen)
    }

    pub fn dashboard_url(&self) -> String {
        format!("http://{}/", self.dashboard_addr())
    }

    /// Everything the writer commits from now on (for notifications and the tray).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<store::LiveEvent> {
        self.state.writer().subscribe()
    }

    /// Read connections on this receiver's database.
    pub fn pool(&self) -> ReadPool {
        ReadPool::new(self.db.clone())
    }

    /// The dashboard's link to the desktop app around this receiver.
    pub fn desktop_link(&self) -> DesktopLink {
        self.desktop.clone()
    }

    /// What `cpwatch serve` and the desktop app print once started: where deliveries
    /// are received (scripts and tests read the ports here), the dashboard, the data,
    /// and the public URL, or on a first start without one, how to get one.
    pub fn banner(&self) -> String {
        let url = self.webhook_url();
        let mut text = format!(
            "cpwatch is receiving CentrePoint deliveries at {url}\ndashboard: {}\ndata: {}\n",
            self.dashboard_url(),
            self.data_dir.display()
        );
        match &self.config.public_url {
            Some(public) => {
                text.push_str(&format!("public URL (enter it in the CentrePoint portal): {public}\n"))
            }
            None if self.first_start => text.push_str(&first_start_guide(&url, self.local_addr().port())),
            None => {}
        }
        text
    }

    /// Serves the receiver and the dashboard until `shutdown` resolves, then finishes
    /// in-flight deliveries and flushes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let receiver_url = self.webhook_url();
        let dashboard_addr = self.dashboard_addr();
        let receiver_addr = self.local_addr();
        let Receiver {
            config, listener, dashboard_listener, db, state, desktop, writer_thread, _lock, ..
        } = self;
        let (stop, stopping) = watch::channel(false);
        let dashboard_state = DashboardState::new(DashboardSetup {
            pool: ReadPool::new(db),
            writer: state.writer().clone(),
            auth_changed: state.auth_invalidator(),
            address: dashboard_addr,
            receiver: ReceiverInfo {
                listen: receiver_addr,
                webhook_url: receiver_url,
                configured_public_url: config.public_url.clone(),
            },
            shutdown: stopping.clone(),
            desktop,
        });
        let options = ServeOptions::from_config(&config);
        let until_stopped = |mut stopping: watch::Receiver<bool>| async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        let receiving = receive::serve(
            listener,
            receive::router(state, &config.webhook_path),
            options.clone(),
            until_stopped(stopping.clone()),
        );
        let showing = receive::serve(
            dashboard_listener,
            dashboard::router(dashboard_state),
            options,
            until_stopped(stopping),
        );
        let signal = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        let (received, shown, ()) = tokio::join!(receiving, showing, signal);
        received.and(shown).map_err(ServerError::Serve)?;
        // Every acknowledged delivery is already committed; this only waits for the
        // writer to finish what is queued and checkpoint, for a tidy stop.
        let joined = tokio::task::spawn_blocking(move || writer_thread.join());
        if tokio::time::timeout(Duration::from_secs(10), joined).await.is_err() {
            tracing::warn!(
                "the writer did not stop within 10 s; exiting anyway (nothing acknowledged is lost)"
            );
        }
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("stopping: finishing in-flight deliveries");
}

/// How to get from a first start to CentrePoint's first delivery.
fn first_start_guide(url: &str, port: u16) -> String {
    format!(
        "\nFirst start. CentrePoint only posts to public HTTPS URLs, so expose this receiver with a tunnel:\n  \
         ngrok http {port}                                # then use https://<id>.ngrok.app/webhook\n  \
         cloudflared tunnel --url http://127.0.0.1:{port}  # then use https://<name>.trycloudflare.com/webhook\n\
         In the CentrePoint portal, set the webhook's target URL to that public URL, choose a signing passcode,\n\
         and give cpwatch the same passcode: cpwatch webhooks add <webhook id> --auth passcode\n\
         Then press Validate in the portal. Test locally now with: cpwatch send {url}\n\n"
    )
}

//! `cpwatch serve` as a library call: takes the data directory, starts the writer,
//! binds the receiver and runs until told to stop. The desktop shell reuses it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, ConfigError};
use crate::dashboard::{self, DashboardSetup, DashboardState, DesktopLink, ReceiverInfo};
use crate::reach::monitor::{self, MonitorSetup, ReachHandle};
use crate::reach::tunnel::{Tunnel, TunnelSpec};
use crate::reach::{discover, probe, PublicUrl, Source};
use crate::receive::{self, ReceiverState, ServeOptions};
use crate::store::uptime::{self, Downtime};
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
    #[error(transparent)]
    Probe(#[from] probe::ClientError),
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
    /// This run's row in the store's `runs`, and the gap before it.
    run: i64,
    gap: Option<Downtime>,
    reach: ReachHandle,
    monitor: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
    tunnel: Option<Arc<Tunnel>>,
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
        let client = probe::client(config.extra_ca_file.as_deref())?;
        let started = uptime::start(&store::open(&db)?, chrono::Utc::now(), std::process::id())
            .map_err(StoreError::from)?;
        if let Some(gap) = &started.gap {
            tracing::warn!("{}", gap_in_words(gap));
        }
        let (stop, stopping) = watch::channel(false);
        let tunnel = config.tunnel.map(|kind| {
            let listen = if bound.ip().is_unspecified() {
                SocketAddr::new([127, 0, 0, 1].into(), bound.port())
            } else {
                bound
            };
            Arc::new(Tunnel::start(TunnelSpec {
                kind,
                program: config.tunnel_program.clone(),
                args: config.tunnel_args.clone(),
                listen,
                ngrok_web_addr: config.ngrok_web_addr.clone(),
            }))
        });
        let discovery_client =
            discover::local_client().map_err(|e| probe::ClientError::Build(e.to_string()))?;
        let (reach, monitor) = monitor::spawn(
            MonitorSetup {
                pool: ReadPool::new(db.clone()),
                run: started.run,
                key: state.probe_key().clone(),
                client,
                configured_url: config.public_url.clone(),
                webhook_path: config.webhook_path.clone(),
                port: bound.port(),
                probe_interval: Duration::from_secs(config.probe_interval_secs),
                discovery_interval: Duration::from_secs(config.discovery_interval_secs),
                ngrok_web_addr: config.ngrok_web_addr.clone(),
                cloudflared_metrics: config.cloudflared_metrics_addrs(),
                trust_forwarded_headers: config.trust_forwarded_headers,
                live: state.writer().subscribe(),
                tunnel: tunnel.clone(),
                discovery_client,
            },
            stopping,
        );
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
            run: started.run,
            gap: started.gap,
            reach,
            monitor,
            stop,
            tunnel,
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

    /// The reachability monitor's state: the public URL, probes, validation, the tunnel.
    pub fn reach(&self) -> ReachHandle {
        self.reach.clone()
    }

    /// The outage that ended with this start, when the receiver ran before.
    pub fn gap(&self) -> Option<&Downtime> {
        self.gap.as_ref()
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
            Some(public) => text.push_str(&format!(
                "public URL (enter it in the CentrePoint portal): {}\n",
                PublicUrl::new(public, &self.config.webhook_path, Source::Config).url
            )),
            None if self.config.tunnel.is_some() => text.push_str(
                "public URL: from the tunnel cpwatch runs, shown on the dashboard and by `cpwatch status` once it is up\n",
            ),
            None if self.first_start => text.push_str(&first_start_guide(&url, self.local_addr().port(), &self.config.webhook_path)),
            None => {}
        }
        if let Some(gap) = &self.gap {
            text.push_str(&gap_in_words(gap));
            text.push('\n');
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
            config,
            listener,
            dashboard_listener,
            db,
            state,
            desktop,
            writer_thread,
            run,
            reach,
            monitor,
            stop,
            tunnel,
            _lock,
            ..
        } = self;
        let stopping = stop.subscribe();
        let dashboard_state = DashboardState::new(DashboardSetup {
            pool: ReadPool::new(db.clone()),
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
            reach,
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
            // First thing: a tunnel left to the monitor could be restarted by its
            // supervisor after Ctrl-C reached it too, or outlive a monitor busy probing.
            if let Some(tunnel) = &tunnel {
                tunnel.stop().await;
            }
        };
        let (received, shown, ()) = tokio::join!(receiving, showing, signal);
        // The monitor may be in a probe (15 s at most): it has nothing left to do.
        let abort = monitor.abort_handle();
        if tokio::time::timeout(Duration::from_secs(2), monitor).await.is_err() {
            abort.abort();
        }
        let ended = store::open(&db).and_then(|conn| Ok(uptime::stop(&conn, run, chrono::Utc::now())?));
        if let Err(e) = ended {
            tracing::warn!("cannot record the clean stop: {e}");
        }
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

/// A gap before this start, and what it means for CentrePoint's deliveries.
fn gap_in_words(gap: &Downtime) -> String {
    let local = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&chrono::Local).format("%a %d %b %H:%M");
    let to = gap.to.map_or_else(|| "now".to_string(), |t| local(t).to_string());
    format!(
        "cpwatch was not receiving from {} to {to} ({}). {}",
        local(gap.from),
        gap.reason,
        uptime::advice(gap, chrono::Utc::now())
    )
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
fn first_start_guide(url: &str, port: u16, path: &str) -> String {
    format!(
        "\nFirst start. CentrePoint only posts to public HTTPS URLs, so expose this receiver with a tunnel:\n  \
         cpwatch serve --tunnel cloudflared               # cpwatch runs one for you, and finds its URL\n  \
         ngrok http {port}                                # or run one yourself: cpwatch finds its URL too\n  \
         cloudflared tunnel --url http://127.0.0.1:{port}\n\
         The webhook URL (the tunnel's URL and {path}) is then shown by `cpwatch status` and on the dashboard.\n\
         In the CentrePoint portal, set the webhook's target URL to it, choose a signing passcode,\n\
         and give cpwatch the same passcode: cpwatch webhooks add <webhook id> --auth passcode\n\
         Then press Validate in the portal. Test locally now with: cpwatch send {url}\n\n"
    )
}

//! `cpwatch serve`: the receiver and the dashboard until SIGINT/SIGTERM.

use std::io::Write as _;

use anyhow::Context as _;
use clap::Args;

use cpwatch::config::Config;
use cpwatch::server::{self, Receiver};

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Address and port to listen on, e.g. 0.0.0.0:8787 behind a reverse proxy.
    #[arg(long, value_name = "ADDR:PORT")]
    pub(super) listen: Option<std::net::SocketAddr>,
    /// Path that accepts deliveries.
    #[arg(long, value_name = "PATH")]
    pub(super) path: Option<String>,
    /// Loopback address and port of the dashboard.
    #[arg(long, value_name = "ADDR:PORT")]
    pub(super) dashboard_listen: Option<std::net::SocketAddr>,
    /// The public URL your tunnel gives the receiver, to show in messages.
    #[arg(long, value_name = "URL")]
    pub(super) public_url: Option<String>,
    /// Largest body accepted, in bytes.
    #[arg(long, value_name = "BYTES")]
    pub(super) max_body: Option<usize>,
    /// Run and supervise a tunnel: cloudflared (a quick tunnel) or ngrok (your account).
    #[arg(long, value_name = "cloudflared|ngrok")]
    pub(super) tunnel: Option<cpwatch::reach::tunnel::TunnelKind>,
    /// How often to probe the public URL, in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub(super) probe_interval: Option<u64>,
}

pub(super) fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let digest_log = config.digest_log;
        let receiver = Receiver::start(config).await?;
        let _digests = digest_log.then(|| {
            tracing::info!("each study's morning digest goes to this log (digest_log)");
            AbortOnDrop(tokio::spawn(cpwatch::notify::compliance::log_each_morning(receiver.pool())))
        });
        print!("{}", receiver.banner());
        let _ = std::io::stdout().flush();
        receiver.run(server::shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Stops the digest task when `serve` returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

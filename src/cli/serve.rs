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
}

pub(super) fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let public_url = config.public_url.clone();
        let receiver = Receiver::start(config).await?;
        let url = receiver.webhook_url();
        println!("cpwatch is receiving CentrePoint deliveries at {url}");
        println!("dashboard: {}", receiver.dashboard_url());
        println!("data: {}", receiver.data_dir().display());
        match &public_url {
            Some(public) => println!("public URL (enter it in the CentrePoint portal): {public}"),
            None if receiver.first_start() => print_first_start(&url, receiver.local_addr().port()),
            None => {}
        }
        let _ = std::io::stdout().flush();
        receiver.run(server::shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

pub(super) fn print_first_start(url: &str, port: u16) {
    println!(
        "\nFirst start. CentrePoint only posts to public HTTPS URLs, so expose this receiver with a tunnel:\n  \
         ngrok http {port}                                # then use https://<id>.ngrok.app/webhook\n  \
         cloudflared tunnel --url http://127.0.0.1:{port}  # then use https://<name>.trycloudflare.com/webhook\n\
         In the CentrePoint portal, set the webhook's target URL to that public URL, choose a signing passcode,\n\
         and give cpwatch the same passcode: cpwatch webhooks add <webhook id> --auth passcode\n\
         Then press Validate in the portal. Test locally now with: cpwatch send {url}\n"
    );
}

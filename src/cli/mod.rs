//! The `cpwatch` command line: parsing (clap) and each command's output. `main.rs`
//! only calls [`main`].

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use rusqlite::Connection;

use crate::auth::{AuthMethod, AuthMode, Secret, DEFAULT_WEBHOOK};
use crate::config::Config;
use crate::event;
use crate::export::{self, Format};
use crate::fixture::HttpFixture;
use crate::send::{self, Body, Fields, SendAuth, SendOptions, Template};
use crate::server::{self, Receiver};
use crate::signature::Scheme;
use crate::store::{self, query, webhooks};

#[derive(Debug, Parser)]
#[command(
    name = "cpwatch",
    version,
    about = "Receives ActiGraph CentrePoint webhooks, verifies and stores them, and shows upload history",
    after_help = "Configuration: ~/.config/cpwatch/config.toml, then CPWATCH_* variables, then flags."
)]
pub struct Cli {
    /// Configuration file (default: the platform config directory's cpwatch/config.toml).
    #[arg(long, global = true, env = "CPWATCH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory holding the database (default: the platform data directory's cpwatch/).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// More log output (-v debug, -vv trace); CPWATCH_LOG takes a full filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the receiver: accept, verify and store deliveries until SIGINT/SIGTERM.
    Serve(ServeArgs),
    /// Send deliveries like CentrePoint does, to test a receiver (or a tunnel) end to end.
    Send(Box<SendArgs>),
    /// Configure authentication per webhook id.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// List uploads, or show one with its timeline.
    Uploads {
        #[command(subcommand)]
        command: Option<UploadsCommand>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// List deliveries, or show one whole.
    Deliveries {
        #[command(subcommand)]
        command: Option<DeliveriesCommand>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Show the log of refused requests (newest first).
    Refused {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Export upload history as CSV or JSON.
    Export(ExportArgs),
    /// Receiver address, last delivery, counts by status, refused requests, authentication.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address and port to listen on, e.g. 0.0.0.0:8787 behind a reverse proxy.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<std::net::SocketAddr>,
    /// Path that accepts deliveries.
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    /// Loopback address and port of the dashboard.
    #[arg(long, value_name = "ADDR:PORT")]
    dashboard_listen: Option<std::net::SocketAddr>,
    /// The public URL your tunnel gives the receiver, to show in messages.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Largest body accepted, in bytes.
    #[arg(long, value_name = "BYTES")]
    max_body: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SendEvent {
    Upload,
    RawProcessingComplete,
    DataRetrievalComplete,
    DailyStatisticsComplete,
    Cp2DailyStatisticsComplete,
    Validation,
}

impl SendEvent {
    fn name(self) -> &'static str {
        match self {
            SendEvent::Upload => event::UPLOAD,
            SendEvent::RawProcessingComplete => event::RAW_PROCESSING_COMPLETE,
            SendEvent::DataRetrievalComplete => event::DATA_RETRIEVAL_COMPLETE,
            SendEvent::DailyStatisticsComplete => event::DAILY_STATISTICS_COMPLETE,
            SendEvent::Cp2DailyStatisticsComplete => event::CP2_DAILY_STATISTICS_COMPLETE,
            SendEvent::Validation => event::VALIDATION,
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    cpwatch send --status error --message 'Device clock invalid'\n  \
    cpwatch send --validate --webhook-id 15\n  \
    CPWATCH_PASSCODE=... cpwatch send https://abc.ngrok.app/webhook --passcode-env CPWATCH_PASSCODE\n  \
    cpwatch send --fixture upload-completed.http --count 1000 --concurrency 32")]
struct SendArgs {
    /// Where to send (default: this machine's receiver from the configuration).
    url: Option<String>,
    /// Event type to generate.
    #[arg(long, value_enum, default_value = "upload", conflicts_with_all = ["fixture", "event_name"])]
    event: SendEvent,
    /// Any other event name (for testing unknown event types).
    #[arg(long, value_name = "NAME")]
    event_name: Option<String>,
    /// Run the validation handshake and check that the code is echoed.
    #[arg(long, conflicts_with_all = ["fixture", "event_name", "body"])]
    validate: bool,
    /// Replay a delivery written as an HTTP request (`*.http`).
    #[arg(long, value_name = "FILE", conflicts_with = "body")]
    fixture: Option<PathBuf>,
    /// Send this file's bytes as the body ('-' for stdin).
    #[arg(long, value_name = "FILE")]
    body: Option<PathBuf>,
    /// Upload status (started, completed, error) or other event's status.
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    study: Option<String>,
    #[arg(long)]
    subject: Option<String>,
    #[arg(long)]
    upload: Option<String>,
    /// Error message for a failed upload.
    #[arg(long)]
    message: Option<String>,
    /// X-ActiGraph-Webhook-Id (default 15, or the fixture's).
    #[arg(long)]
    webhook_id: Option<String>,
    /// X-ActiGraph-Delivery (default: a new id per delivery).
    #[arg(long)]
    delivery_id: Option<String>,
    /// Sign with the passcode in this environment variable.
    #[arg(long, value_name = "VAR", group = "credentials")]
    passcode_env: Option<String>,
    /// Sign with a passcode read from stdin.
    #[arg(long, group = "credentials")]
    passcode_stdin: bool,
    /// Signature scheme for the passcode.
    #[arg(long, value_enum, default_value = "base64-sha256")]
    scheme: Scheme,
    /// HTTP Basic user name; the password comes from --secret-env or stdin.
    #[arg(long, value_name = "USER", group = "credentials")]
    basic_user: Option<String>,
    /// Send a bearer token (from --secret-env or stdin).
    #[arg(long, group = "credentials")]
    bearer: bool,
    /// Environment variable holding the Basic password or bearer token.
    #[arg(long, value_name = "VAR")]
    secret_env: Option<String>,
    /// How many deliveries to send.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// How many at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Retry a failed delivery like CentrePoint (two immediate retries).
    #[arg(long)]
    retry: bool,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// Add a webhook or replace its authentication. Secrets are read from an environment
    /// variable (--secret-env), stdin (--secret-stdin) or a prompt, never from the command line.
    Add {
        /// The webhook id CentrePoint sends (X-ActiGraph-Webhook-Id), or `default` for ids not configured.
        id: String,
        #[arg(long, value_enum)]
        auth: AuthMode,
        /// A name for the study this webhook belongs to.
        #[arg(long)]
        label: Option<String>,
        /// User name, for --auth basic.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, value_name = "VAR", conflicts_with = "secret_stdin")]
        secret_env: Option<String>,
        #[arg(long)]
        secret_stdin: bool,
    },
    /// List configured webhooks (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one webhook (never its secret).
    Show { id: String },
    /// Remove a webhook's configuration.
    Remove { id: String },
}

#[derive(Debug, Subcommand)]
enum UploadsCommand {
    /// List uploads, most recently changed first.
    List,
    /// Show one upload: its state and the timeline of its deliveries.
    Show {
        study: String,
        upload: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DeliveriesCommand {
    /// List deliveries, newest first.
    List,
    /// Show one delivery whole, by its number (as listed) or its delivery id.
    Show {
        key: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct FilterArgs {
    #[arg(long, global = true)]
    study: Option<String>,
    #[arg(long, global = true)]
    subject: Option<String>,
    #[arg(long, global = true)]
    status: Option<String>,
    /// Event type (deliveries only).
    #[arg(long, global = true)]
    event: Option<String>,
    /// From this time: 2026-11-01, an RFC 3339 time, or a span back from now (30m, 24h, 7d).
    #[arg(long, global = true, value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    /// Before this time (same forms as --since).
    #[arg(long, global = true, value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    #[arg(long, global = true, default_value_t = 50)]
    limit: u32,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

impl FilterArgs {
    fn filter(&self) -> query::Filter {
        query::Filter {
            study: self.study.clone(),
            subject: self.subject.clone(),
            status: self.status.clone(),
            event: self.event.clone(),
            since: self.since,
            until: self.until,
            limit: Some(self.limit),
        }
    }
}

#[derive(Debug, Args)]
struct ExportArgs {
    #[arg(long, value_enum)]
    format: Format,
    /// Only this study.
    #[arg(long)]
    study: Option<String>,
    #[arg(long, value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    #[arg(long, value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Some(t) = event::parse_utc(text) {
        return Ok(t);
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a time: use 2026-11-01, an RFC 3339 time or 24h/7d"))?;
    let span = match unit {
        "s" => chrono::Duration::seconds(n),
        "m" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    Ok(Utc::now() - span)
}

/// Parses arguments, runs the command, and turns errors into a message and exit code 1.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet, &["cpwatch"]);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cpwatch: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stderr at the level `-v`/`-q` ask for, for cpwatch's own crates (`targets`);
/// `CPWATCH_LOG` takes a full filter instead. Shared by `cpwatch` and `cpwatch-desktop`.
pub fn init_logging(verbose: u8, quiet: bool, targets: &[&str]) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = std::env::var("CPWATCH_LOG")
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| {
            let own: Vec<String> = targets.iter().map(|t| format!("{t}={level}")).collect();
            tracing_subscriber::EnvFilter::new(format!("{},warn", own.join(",")))
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let mut config = Config::load(cli.config.as_deref(), |name| std::env::var(name).ok())?;
    if let Some(dir) = cli.data_dir {
        config.data_dir = Some(dir);
    }
    let ok = std::process::ExitCode::SUCCESS;
    match cli.command {
        Command::Serve(args) => {
            config.listen = args.listen.unwrap_or(config.listen);
            config.webhook_path = args.path.unwrap_or(config.webhook_path);
            config.dashboard_listen = args.dashboard_listen.unwrap_or(config.dashboard_listen);
            config.public_url = args.public_url.or(config.public_url);
            config.max_body_bytes = args.max_body.unwrap_or(config.max_body_bytes);
            config.validate()?;
            serve(config)?;
            Ok(ok)
        }
        Command::Send(args) => send_command(&config, *args),
        Command::Webhooks(command) => {
            webhooks_command(&open_store(&config)?, command)?;
            Ok(ok)
        }
        Command::Uploads { command, filter } => {
            let conn = open_store(&config)?;
            match command {
                None | Some(UploadsCommand::List) => list_uploads(&conn, &filter)?,
                Some(UploadsCommand::Show { study, upload, json }) => {
                    show_upload(&conn, &study, &upload, json)?
                }
            }
            Ok(ok)
        }
        Command::Deliveries { command, filter } => {
            let conn = open_store(&config)?;
            match command {
                None | Some(DeliveriesCommand::List) => list_deliveries(&conn, &filter)?,
                Some(DeliveriesCommand::Show { key, json }) => show_delivery(&conn, &key, json)?,
            }
            Ok(ok)
        }
        Command::Refused { limit, json } => {
            list_refused(&open_store(&config)?, limit, json)?;
            Ok(ok)
        }
        Command::Export(args) => {
            export(&open_store(&config)?, &args)?;
            Ok(ok)
        }
        Command::Status { json } => {
            status(&config, json)?;
            Ok(ok)
        }
    }
}

fn open_store(config: &Config) -> anyhow::Result<Connection> {
    let dir = config.data_dir()?;
    Ok(store::open_in(&dir)?)
}

fn serve(config: Config) -> anyhow::Result<()> {
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

fn print_first_start(url: &str, port: u16) {
    println!(
        "\nFirst start. CentrePoint only posts to public HTTPS URLs, so expose this receiver with a tunnel:\n  \
         ngrok http {port}                                # then use https://<id>.ngrok.app/webhook\n  \
         cloudflared tunnel --url http://127.0.0.1:{port}  # then use https://<name>.trycloudflare.com/webhook\n\
         In the CentrePoint portal, set the webhook's target URL to that public URL, choose a signing passcode,\n\
         and give cpwatch the same passcode: cpwatch webhooks add <webhook id> --auth passcode\n\
         Then press Validate in the portal. Test locally now with: cpwatch send {url}\n"
    );
}

fn read_secret(env_var: Option<&str>, from_stdin: bool, what: &str) -> anyhow::Result<Secret> {
    let value = if let Some(var) = env_var {
        std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?
    } else if from_stdin || !std::io::stdin().is_terminal() {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read the secret from stdin")?;
        text.trim_end_matches(['\r', '\n']).to_string()
    } else {
        rpassword::prompt_password(format!("{what}: ")).context("cannot read the secret from the terminal")?
    };
    if value.is_empty() {
        bail!("the {what} is empty");
    }
    Ok(Secret::new(value))
}

fn send_command(config: &Config, args: SendArgs) -> anyhow::Result<std::process::ExitCode> {
    let url = args.url.clone().unwrap_or_else(|| config.local_webhook_url(config.listen));
    let auth = if let Some(var) = &args.passcode_env {
        SendAuth::Passcode { scheme: args.scheme, passcode: read_secret(Some(var), false, "passcode")? }
    } else if args.passcode_stdin {
        SendAuth::Passcode { scheme: args.scheme, passcode: read_secret(None, true, "passcode")? }
    } else if let Some(user) = &args.basic_user {
        SendAuth::Basic {
            user: user.clone(),
            password: read_secret(args.secret_env.as_deref(), false, "password")?,
        }
    } else if args.bearer {
        SendAuth::Bearer(read_secret(args.secret_env.as_deref(), false, "bearer token")?)
    } else {
        SendAuth::None
    };
    let mut template = if let Some(path) = &args.fixture {
        Template::from_fixture(&HttpFixture::read(path)?)
    } else {
        let event = if args.validate {
            event::VALIDATION.to_string()
        } else {
            args.event_name.clone().unwrap_or_else(|| args.event.name().to_string())
        };
        let body = match &args.body {
            Some(path) if path == Path::new("-") => {
                let mut bytes = Vec::new();
                std::io::stdin().read_to_end(&mut bytes).context("cannot read the body from stdin")?;
                Body::Raw(bytes)
            }
            Some(path) => {
                Body::Raw(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)
            }
            None => Body::Generated(Fields {
                status: args.status.clone(),
                study: args.study.clone(),
                subject: args.subject.clone(),
                upload: args.upload.clone(),
                message: args.message.clone(),
            }),
        };
        Template {
            event,
            webhook_id: Some("15".into()),
            extra_headers: Vec::new(),
            body,
            delivery_id: None,
            validation_code: None,
        }
    };
    if let Some(id) = &args.webhook_id {
        template.webhook_id = Some(id.clone());
    }
    if let Some(id) = &args.delivery_id {
        template.delivery_id = Some(id.clone());
    }
    let is_validation = template.event == event::VALIDATION;
    let options = SendOptions {
        url: url.clone(),
        auth,
        count: args.count,
        concurrency: args.concurrency,
        retries: if args.retry { 2 } else { 0 },
        timeout: Duration::from_secs(args.timeout),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let started = std::time::Instant::now();
    let outcomes = runtime.block_on(send::send(template, options))?;
    let elapsed = started.elapsed();
    let failures = outcomes.iter().filter(|o| !o.ok()).count();
    if outcomes.len() == 1 {
        let o = &outcomes[0];
        let status = o.status.map_or_else(|| "no answer".to_string(), |s| s.to_string());
        let retries = if o.attempts > 1 { format!(" after {} attempts", o.attempts) } else { String::new() };
        println!("{status} in {:.1} ms{retries}: {} (delivery {})", ms(o.latency), o.answer, o.delivery_id);
        match o.echo_ok {
            Some(true) => println!("validation: the code was echoed in X-ActiGraph-Hook-Secret; CentrePoint would accept this receiver"),
            Some(false) => println!("validation FAILED: the code was not echoed in X-ActiGraph-Hook-Secret"),
            None if is_validation => {}
            None => {}
        }
    } else {
        let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
        latencies.sort();
        let pct = |p: f64| {
            latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
        };
        let mut by_status = std::collections::BTreeMap::new();
        for o in &outcomes {
            *by_status.entry(o.status.map_or_else(|| "no answer".into(), |s| s.to_string())).or_insert(0) +=
                1;
        }
        let statuses: Vec<String> = by_status.iter().map(|(s, n)| format!("{s} x{n}")).collect();
        println!(
            "sent {} deliveries to {url} in {:.2} s ({:.0}/s), concurrency {}: {}",
            outcomes.len(),
            elapsed.as_secs_f64(),
            outcomes.len() as f64 / elapsed.as_secs_f64().max(1e-9),
            args.concurrency,
            statuses.join(", ")
        );
        println!(
            "latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(pct(0.5)),
            ms(pct(0.99)),
            ms(pct(1.0))
        );
        for o in outcomes.iter().filter(|o| !o.ok()).take(5) {
            println!("  failed: delivery {}: {}", o.delivery_id, o.answer);
        }
    }
    Ok(if failures == 0 { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn webhooks_command(conn: &Connection, command: WebhooksCommand) -> anyhow::Result<()> {
    match command {
        WebhooksCommand::Add { id, auth, label, user, secret_env, secret_stdin } => {
            let id = id.trim().to_string();
            if id.is_empty() || id.len() > 100 || !id.chars().all(|c| c.is_ascii_graphic()) {
                bail!("webhook id {id:?} is not an id such as 15 (or `{DEFAULT_WEBHOOK}`)");
            }
            let method = match auth {
                AuthMode::None => AuthMethod::None,
                AuthMode::Passcode => AuthMethod::Passcode(read_secret(
                    secret_env.as_deref(),
                    secret_stdin,
                    "signing passcode",
                )?),
                AuthMode::Bearer => {
                    AuthMethod::Bearer(read_secret(secret_env.as_deref(), secret_stdin, "bearer token")?)
                }
                AuthMode::Basic => {
                    let user = user.ok_or_else(|| anyhow!("--auth basic needs --user"))?;
                    AuthMethod::Basic {
                        user,
                        password: read_secret(secret_env.as_deref(), secret_stdin, "password")?,
                    }
                }
            };
            webhooks::put(conn, &id, label.as_deref(), &method)?;
            let which = if id == DEFAULT_WEBHOOK {
                "default authentication".to_string()
            } else {
                format!("webhook {id}")
            };
            println!("{which}: {} (a running receiver picks this up within a second)", auth.as_str());
        }
        WebhooksCommand::List { json } => {
            let all = webhooks::list(conn)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!(
                    "no webhooks configured: the receiver accepts every delivery (authentication is off)"
                );
            } else {
                println!("{:<10} {:<9} {:<12} {:<24} label", "webhook", "auth", "user", "updated");
                for w in all {
                    println!(
                        "{:<10} {:<9} {:<12} {:<24} {}",
                        w.webhook_id,
                        w.auth_mode.as_str(),
                        w.basic_user.as_deref().unwrap_or("-"),
                        w.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
                        w.label.as_deref().unwrap_or("")
                    );
                }
            }
        }
        WebhooksCommand::Show { id } => {
            let w = webhooks::get(conn, &id)?.ok_or_else(|| anyhow!("webhook {id} is not configured"))?;
            println!("webhook:  {}", w.webhook_id);
            println!("label:    {}", w.label.as_deref().unwrap_or("-"));
            println!("auth:     {}", w.auth_mode.as_str());
            if let Some(user) = &w.basic_user {
                println!("user:     {user}");
            }
            println!("secret:   {}", if w.secret_set { "set (never shown)" } else { "none" });
            println!("updated:  {}", w.updated_at.format("%Y-%m-%d %H:%M:%S UTC"));
        }
        WebhooksCommand::Remove { id } => {
            if !webhooks::remove(conn, &id)? {
                bail!("webhook {id} is not configured");
            }
            println!("webhook {id} removed");
        }
    }
    Ok(())
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

fn list_uploads(conn: &Connection, args: &FilterArgs) -> anyhow::Result<()> {
    let rows = query::uploads(conn, &args.filter())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no uploads match");
        return Ok(());
    }
    println!(
        "{:<19}  {:<8} {:<10} {:<10} {:<9} {:>8}  error",
        "updated (UTC)", "study", "subject", "upload", "status", "duration"
    );
    for r in rows {
        println!(
            "{:<19}  {:<8} {:<10} {:<10} {:<9} {:>8}  {}",
            time(Some(r.updated_at)),
            r.study_id,
            r.state.subject_id.as_deref().unwrap_or("-"),
            r.upload_id,
            r.state.status.as_str(),
            r.duration_seconds.map_or_else(|| "-".into(), |s| format!("{s}s")),
            r.state
                .error_message
                .as_deref()
                .filter(|_| r.state.status == event::UploadStatus::Error)
                .unwrap_or("")
        );
    }
    Ok(())
}

fn show_upload(conn: &Connection, study: &str, upload: &str, json: bool) -> anyhow::Result<()> {
    let row =
        query::upload(conn, study, upload)?.ok_or_else(|| anyhow!("no upload {upload} in study {study}"))?;
    let timeline = query::upload_timeline(conn, study, upload)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "upload": row, "timeline": timeline }))?
        );
        return Ok(());
    }
    let s = &row.state;
    println!(
        "upload {} in study {} (subject {})",
        row.upload_id,
        row.study_id,
        s.subject_id.as_deref().unwrap_or("-")
    );
    println!("status:     {}", s.status.as_str());
    println!("started:    {}", time(s.started_at));
    println!("completed:  {}", time(s.completed_at));
    println!("failed:     {}", time(s.failed_at));
    if let Some(message) = &s.error_message {
        println!("error:      {message}");
    }
    if s.first_epoch_utc.is_some() || s.first_epoch_subject_tz.is_some() {
        println!("epochs UTC: {} .. {}", time(s.first_epoch_utc), time(s.last_epoch_utc));
        let local = |t: Option<chrono::NaiveDateTime>| {
            t.map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        };
        println!("subject TZ: {} .. {}", local(s.first_epoch_subject_tz), local(s.last_epoch_subject_tz));
    }
    println!("timeline:");
    for d in timeline {
        let dup = if d.duplicates > 0 { format!(" (+{} retries)", d.duplicates) } else { String::new() };
        println!(
            "  #{:<6} {}  {:<9} {}{dup}",
            d.seq,
            time(Some(d.received_at)),
            d.status.as_deref().unwrap_or("-"),
            d.delivery_id
        );
    }
    Ok(())
}

fn list_deliveries(conn: &Connection, args: &FilterArgs) -> anyhow::Result<()> {
    let rows = query::deliveries(conn, &args.filter())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no deliveries match");
        return Ok(());
    }
    println!("{:<7} {:<19}  {:<26} {:<15} summary", "#", "received (UTC)", "event", "flag");
    for d in rows {
        let dup = if d.duplicates > 0 { format!(" (+{} retries)", d.duplicates) } else { String::new() };
        println!(
            "{:<7} {:<19}  {:<26} {:<15} {}{dup}",
            d.seq,
            time(Some(d.received_at)),
            d.event,
            d.flag.as_deref().unwrap_or("-"),
            d.summary
        );
    }
    Ok(())
}

fn show_delivery(conn: &Connection, key: &str, json: bool) -> anyhow::Result<()> {
    let d = query::delivery(conn, key)?.ok_or_else(|| anyhow!("no delivery {key}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(());
    }
    let r = &d.row;
    println!("delivery #{} ({})", r.seq, r.delivery_id);
    println!("event:     {}", r.event);
    println!("webhook:   {}", r.webhook_id.as_deref().unwrap_or("-"));
    println!("received:  {} from {}", time(Some(r.received_at)), r.peer.as_deref().unwrap_or("-"));
    println!("auth:      {}", r.auth);
    println!("summary:   {}", r.summary);
    if let Some(flag) = &r.flag {
        println!("flag:      {flag}: {}", r.problem.as_deref().unwrap_or(""));
    }
    if r.duplicates > 0 {
        println!("retries:   {} (last {})", r.duplicates, time(r.last_duplicate_at));
    }
    println!("headers:");
    for (name, value) in &d.headers {
        println!("  {name}: {value}");
    }
    println!("body:");
    match (&d.body, &d.body_base64) {
        (Some(text), _) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) => println!("{}", serde_json::to_string_pretty(&v)?),
            Err(_) => println!("{text}"),
        },
        (None, Some(b64)) => println!("(not UTF-8; base64) {b64}"),
        (None, None) => {}
    }
    Ok(())
}

fn list_refused(conn: &Connection, limit: u32, json: bool) -> anyhow::Result<()> {
    let rows = query::refused(conn, limit, None)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no refused requests");
    }
    for r in rows {
        println!(
            "{}  {} {} {}  from {}  {}",
            time(Some(r.received_at)),
            r.status,
            r.method,
            r.path,
            r.peer.as_deref().unwrap_or("-"),
            r.reason
        );
    }
    Ok(())
}

fn export(conn: &Connection, args: &ExportArgs) -> anyhow::Result<()> {
    let filter = query::Filter {
        study: args.study.clone(),
        since: args.since,
        until: args.until,
        ..Default::default()
    };
    let rows = query::uploads(conn, &filter)?;
    match &args.output {
        Some(path) => {
            let file =
                std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            export::write(&mut out, &rows, args.format)?;
            out.flush()?;
            eprintln!("exported {} upload(s) to {}", rows.len(), path.display());
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            export::write(&mut out, &rows, args.format)?;
            out.flush()?;
        }
    }
    Ok(())
}

fn status(config: &Config, json: bool) -> anyhow::Result<()> {
    let dir = config.data_dir()?;
    let conn = store::open_in(&dir)?;
    let counts = query::counts(&conn, Utc::now())?;
    let hooks = webhooks::list(&conn)?;
    let running = store::running_receiver(&dir)?;
    let auth_off = hooks.is_empty();
    let url = running
        .as_ref()
        .and_then(|r| r.url.clone())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| config.local_webhook_url(config.listen));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "receiver": {
                    "running": running.is_some(),
                    "pid": running.as_ref().and_then(|r| r.pid),
                    "url": url,
                    "public_url": config.public_url,
                },
                "data_dir": dir,
                "authentication_off": auth_off,
                "webhooks": hooks,
                "counts": counts,
            }))?
        );
        return Ok(());
    }
    match running {
        Some(r) => println!(
            "receiver:        running{} at {url}",
            r.pid.map_or_else(String::new, |p| format!(" (pid {p})"))
        ),
        None => {
            println!("receiver:        not running (start it with `cpwatch serve`); configured for {url}")
        }
    }
    if let Some(public) = &config.public_url {
        println!("public URL:      {public}");
    }
    println!("data:            {}", dir.display());
    if auth_off {
        println!("authentication:  OFF: anyone who knows the URL can post deliveries (cpwatch webhooks add <id> --auth passcode)");
    } else {
        println!("authentication:  {} webhook(s) configured", hooks.len());
    }
    println!(
        "last delivery:   {}",
        counts
            .last_delivery_at
            .map_or_else(|| "none yet".into(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
    );
    println!(
        "deliveries:      {} stored, {} retries recognised, {} flagged",
        counts.deliveries, counts.duplicates, counts.flagged
    );
    println!(
        "uploads:         {} completed, {} failed, {} started (in {} studies, {} subjects)",
        counts.uploads_completed,
        counts.uploads_error,
        counts.uploads_started,
        counts.studies,
        counts.subjects
    );
    println!("refused (24 h):  {}", counts.refused_last_day);
    if let Some(v) = &counts.last_validation {
        println!(
            "last validation: {} webhook {}: {}",
            time(Some(v.received_at)),
            v.webhook_id.as_deref().unwrap_or("-"),
            v.auth
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn every_command_and_flag_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn times_are_read_as_dates_rfc3339_or_spans() {
        assert_eq!(parse_time("2026-11-01").map(|t| t.to_rfc3339()), Ok("2026-11-01T00:00:00+00:00".into()));
        assert!(parse_time("2026-11-01T10:00:00+02:00").is_ok());
        let day_ago = parse_time("24h").expect("a span");
        assert!((Utc::now() - day_ago - chrono::Duration::hours(24)).num_seconds().abs() < 5);
        assert!(parse_time("soon").is_err());
        assert!(parse_time("3w").is_err());
    }
}

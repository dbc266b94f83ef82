//! `cpwatch send`: deliveries sent like CentrePoint sends them, and what came back.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use super::read_secret;
use cpwatch::config::Config;
use cpwatch::emulator::fixture::HttpFixture;
use cpwatch::emulator::send::{self, Body, Fields, SendAuth, SendOptions, Template};
use cpwatch::event;
use cpwatch::receive::signature::Scheme;

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
pub(super) struct SendArgs {
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
    #[arg(long, default_value = "base64-sha256", value_parser = super::one_of(&Scheme::ALL, Scheme::id, |s| Some(s.name())))]
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

pub(super) fn run(config: &Config, args: SendArgs) -> anyhow::Result<std::process::ExitCode> {
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

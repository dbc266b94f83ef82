//! `cpwatch-bench`: the load benchmark of cpwatch's receiver (issue 5). `noop` is the
//! baseline server, `load` the generator, `fsync` a probe of the disk, `report` writes
//! BENCHMARKS.md. `scripts/bench.sh` runs them all in order; nothing here is a test.

mod deliveries;
mod fsync;
mod load;
mod noop;
mod procfs;
mod report;
mod results;
mod seed;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cpwatch-bench", about = "Load benchmark of cpwatch's receiver against a no-op baseline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The no-op baseline: answers 200 to POST /webhook after reading the body; prints its URL.
    Noop {
        #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR:PORT")]
        listen: SocketAddr,
    },
    /// Sends signed upload deliveries to a receiver; one JSON object on stdout, a summary on stderr.
    Load(Box<LoadArgs>),
    /// Measures how long a 4 KiB append plus fdatasync takes in a directory.
    Fsync {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        #[arg(long, default_value_t = 200)]
        count: usize,
    },
    /// Fills an empty data directory with a large history, for the dashboard benchmark.
    Seed {
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        deliveries: u64,
        #[arg(long, default_value_t = 20)]
        studies: u64,
    },
    /// Writes BENCHMARKS.md from a results directory written by scripts/bench.sh.
    Report {
        #[arg(long, value_name = "DIR")]
        results: PathBuf,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The command that produced the results, as a reader should type it.
        #[arg(long)]
        command: String,
        /// When the results were taken.
        #[arg(long)]
        date: String,
    },
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    CPWATCH_SECRET=s cpwatch-bench load --url http://127.0.0.1:8787/webhook --passcode-env CPWATCH_SECRET\n  \
    CPWATCH_SECRET=s cpwatch-bench load --url http://127.0.0.1:8787/webhook --passcode-env CPWATCH_SECRET \
    --rate 500 --connections 32 --pid 1234")]
struct LoadArgs {
    /// The receiver's webhook URL (http, loopback only).
    #[arg(long)]
    url: String,
    /// Environment variable holding the webhook's signing passcode.
    #[arg(long, value_name = "VAR")]
    passcode_env: String,
    /// Fixed rate in deliveries per second (open loop); without it, saturation (closed loop).
    #[arg(long, value_name = "PER_SECOND")]
    rate: Option<f64>,
    /// Measured seconds.
    #[arg(long, default_value_t = 15.0, value_parser = seconds)]
    duration: f64,
    /// Seconds of load before measuring (counted in the totals, not in the figures).
    #[arg(long, default_value_t = 2.0, value_parser = seconds)]
    warmup: f64,
    /// Keep-alive connections, one task each.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Runtime threads of the generator (1: one thread for all connections).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds to wait for one answer before counting an error.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    timeout: f64,
    /// Deliveries a saturation run builds in advance (it ends early, and says so, if they run out).
    #[arg(long, default_value_t = 400_000)]
    max_requests: usize,
    /// First upload id; each delivery is about the next one (default: a random base).
    #[arg(long)]
    first_upload_id: Option<u64>,
    /// X-ActiGraph-Webhook-Id.
    #[arg(long, default_value = "15")]
    webhook_id: String,
    /// The server's process id: its CPU use and memory (VmRSS) are reported.
    #[arg(long)]
    pid: Option<u32>,
    /// Seconds between memory samples.
    #[arg(long, default_value_t = 2.0, value_parser = seconds)]
    rss_interval: f64,
    /// Name of the run in the output.
    #[arg(long, default_value = "load")]
    label: String,
}

/// Durations are bounded so that no run can go on unattended for long.
fn seconds(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| format!("{text} is not a number of seconds"))?;
    if (0.0..=3600.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{text}: between 0 and 3600 seconds"))
    }
}

fn load(args: &LoadArgs) -> anyhow::Result<()> {
    let passcode = std::env::var(&args.passcode_env)
        .with_context(|| format!("environment variable {} is not set", args.passcode_env))?;
    let first_upload_id = args.first_upload_id.unwrap_or_else(|| {
        // Far apart per run, so two runs against one database do not share uploads.
        u64::from(uuid::Uuid::new_v4().as_fields().0 % 100_000) * 10_000_000
    });
    let options = load::LoadOptions {
        label: args.label.clone(),
        url: args.url.clone(),
        passcode: passcode.into_bytes(),
        rate: args.rate,
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
        connections: args.connections,
        threads: args.threads,
        timeout: Duration::from_secs_f64(args.timeout),
        max_requests: args.max_requests,
        first_upload_id,
        webhook_id: args.webhook_id.clone(),
        pid: args.pid,
        rss_interval: Duration::from_secs_f64(args.rss_interval.max(0.1)),
    };
    let report = load::run(&options)?;
    eprintln!("{}", load::describe(&report));
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Noop { listen } => noop::run(listen),
        Command::Load(args) => load(&args),
        Command::Seed { data_dir, deliveries, studies } => seed::run(&data_dir, deliveries, studies.max(1)),
        Command::Fsync { dir, count } => fsync::probe(&dir, count.max(1)).and_then(|probe| {
            eprintln!(
                "fsync probe in {}: p50 {:.2} ms, p99 {:.2} ms, mean {:.2} ms ({:.0} syncs/s)",
                probe.dir,
                probe.latency_ms.p50,
                probe.latency_ms.p99,
                probe.latency_ms.mean,
                probe.one_sync_per_delivery_max_per_s
            );
            println!("{}", serde_json::to_string(&probe)?);
            Ok(())
        }),
        Command::Report { results, out, command, date } => report::write(&results, &out, &command, &date)
            .and_then(|rendered| {
                println!("{}", rendered.table);
                if rendered.stored_matches {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!(
                        "the number of stored deliveries differs from the number of 2xx answers: see {}",
                        out.display()
                    ))
                }
            }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cpwatch-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! The `cpwatch` command line (binary only): parsing with clap, one module per command
//! group, each printing its command's output. `main.rs` only calls [`main`].

mod history;
mod roster;
mod send;
mod serve;
mod status;
mod studies;
mod webhooks;

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::builder::TypedValueParser as _;
use clap::{Parser, Subcommand};
use rusqlite::Connection;

use cpwatch::config::Config;
use cpwatch::receive::auth::Secret;
use cpwatch::store;

use history::{DeliveriesCommand, ExportArgs, FilterArgs, UploadsCommand};
use roster::RosterCommand;
use send::SendArgs;
use serve::ServeArgs;
use studies::StudiesCommand;
use webhooks::WebhooksCommand;

#[derive(Debug, Parser)]
#[command(
    name = "cpwatch",
    version = cpwatch::VERSION,
    about = "Receives ActiGraph CentrePoint webhooks, verifies and stores them, and shows upload history",
    after_help = "Configuration: ~/.config/cpwatch/config.toml (else /etc/cpwatch/config.toml), then CPWATCH_* variables, then flags.\nData: ~/.local/share/cpwatch (else the service's /var/lib/cpwatch, for an admin)."
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
    /// Name studies and set their compliance protocol.
    #[command(subcommand)]
    Studies(StudiesCommand),
    /// A study's compliance: who is silent, valid days, this week against the protocol.
    Compliance {
        study: String,
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// One row per subject, for a report.
        #[arg(long)]
        csv: bool,
    },
    /// The morning digest: per study, who is silent, who is below target, yesterday's uploads.
    Digest {
        #[arg(long)]
        study: Option<String>,
    },
    /// Who each study expects: import a roster from a CSV file, show it beside who has sent.
    #[command(subcommand)]
    Roster(RosterCommand),
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

/// Parses arguments, runs the command, and turns errors into a message and exit code 1.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    cpwatch::logging::init_logging(cli.verbose, cli.quiet, &["cpwatch"]);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cpwatch: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
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
            config.tunnel = args.tunnel.or(config.tunnel);
            config.probe_interval_secs = args.probe_interval.unwrap_or(config.probe_interval_secs);
            config.validate()?;
            serve::run(config)?;
            Ok(ok)
        }
        Command::Send(args) => send::run(&config, *args),
        Command::Webhooks(command) => {
            webhooks::run(&open_store(&config)?, command)?;
            Ok(ok)
        }
        Command::Studies(command) => {
            studies::run(&open_store(&config)?, command)?;
            Ok(ok)
        }
        Command::Compliance { study, json, csv } => {
            studies::compliance(&open_store(&config)?, &study, json, csv)?;
            Ok(ok)
        }
        Command::Digest { study } => {
            studies::digest(&open_store(&config)?, study.as_deref())?;
            Ok(ok)
        }
        Command::Roster(command) => {
            roster::run(&open_store(&config)?, command)?;
            Ok(ok)
        }
        Command::Uploads { command, filter } => {
            let conn = open_store(&config)?;
            match command {
                None | Some(UploadsCommand::List) => history::list_uploads(&conn, &filter)?,
                Some(UploadsCommand::Show { study, upload, json }) => {
                    history::show_upload(&conn, &study, &upload, json)?
                }
            }
            Ok(ok)
        }
        Command::Deliveries { command, filter } => {
            let conn = open_store(&config)?;
            match command {
                None | Some(DeliveriesCommand::List) => history::list_deliveries(&conn, &filter)?,
                Some(DeliveriesCommand::Show { key, json }) => history::show_delivery(&conn, &key, json)?,
            }
            Ok(ok)
        }
        Command::Refused { limit, json } => {
            history::list_refused(&open_store(&config)?, limit, json)?;
            Ok(ok)
        }
        Command::Export(args) => {
            history::export(&open_store(&config)?, &args)?;
            Ok(ok)
        }
        Command::Status { json } => {
            status::run(&config, json)?;
            Ok(ok)
        }
    }
}

/// A flag's parser for one of a core type's values: listed in `--help`, read by name.
fn one_of<T: Copy + Send + Sync + 'static>(
    all: &'static [T],
    name: fn(T) -> &'static str,
    help: fn(T) -> Option<&'static str>,
) -> impl clap::builder::TypedValueParser<Value = T> {
    let values = all.iter().map(move |v| clap::builder::PossibleValue::new(name(*v)).help(help(*v)));
    clap::builder::PossibleValuesParser::new(values)
        .try_map(move |text| all.iter().copied().find(|v| name(*v) == text).ok_or("not one of the values"))
}

fn open_store(config: &Config) -> anyhow::Result<Connection> {
    let dir = config.data_dir()?;
    Ok(store::open_in(&dir)?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn every_command_and_flag_is_well_formed() {
        Cli::command().debug_assert();
    }
}

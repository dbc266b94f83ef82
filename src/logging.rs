//! Log output for the `cpwatch` and `cpwatch-desktop` binaries: `tracing` to stderr, at a
//! level set by `-v`/`-q` or the `CPWATCH_LOG` filter.

use std::io::IsTerminal as _;

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

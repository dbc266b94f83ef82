//! cpwatch: watches ActiGraph CentrePoint webhooks for a research study.
//!
//! The modules follow a delivery's path: [`receive`] (HTTP, limits, headers, and who
//! sent it) -> [`event`] (what it says, and the upload state rules) -> [`store`] (SQLite:
//! the writer, and what is stored, by entity) -> [`compliance`] (whose days count, who
//! went quiet) -> [`notify`] (what a person should be
//! told, the tray model, and the desktop app's wake loop) -> [`dashboard`] (JSON API,
//! live stream, static UI). Beside them: [`desktop`] (start at login, one app per user),
//! [`reach`] (whether CentrePoint can reach the receiver: the public URL, found or from a
//! tunnel cpwatch runs, probes, outages), [`config`], [`server`] (both listeners and the
//! monitor, started together), [`export`], [`logging`], and [`emulator`], which sends
//! deliveries as CentrePoint does to test a setup.

// Listed in a delivery's order, one per line, so that rustfmt keeps the order.
pub mod receive;

pub mod event;

pub mod store;

pub mod compliance;

pub mod notify;

pub mod dashboard;

pub mod desktop;

pub mod reach;

pub mod config;
pub mod emulator;
pub mod export;
pub mod logging;
pub mod server;

/// The version and the commit it was built from, as `--version` prints them
/// (`0.1.0 (commit 1a2b3c4d5)`) and the dashboard's footer shows them.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("CPWATCH_COMMIT"), ")");

/// The commit alone (`unknown` when built outside git without `CPWATCH_COMMIT`).
pub const COMMIT: &str = env!("CPWATCH_COMMIT");

//! cpwatch: watches ActiGraph CentrePoint webhooks for a research study.
//!
//! A delivery walks these modules in order: [`receive`] (HTTP, limits, headers, and who
//! sent it) -> [`event`] (what it says, and the upload state rules) -> [`store`] (SQLite:
//! the writer, and what is stored, by entity) -> [`notify`] (what a person should be
//! told, and what the tray shows) -> [`dashboard`] (JSON API, live stream, static UI).
//! [`config`] and [`server`] sit beside them; [`emulator`] is the CentrePoint emulator
//! used to test a setup end to end.

pub mod config;
pub mod dashboard;
pub mod desktop;
pub mod emulator;
pub mod event;
pub mod export;
pub mod logging;
pub mod notify;
pub mod receive;
pub mod server;
pub mod store;

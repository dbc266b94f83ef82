//! cpwatch: watches ActiGraph CentrePoint webhooks for a research study.
//!
//! A delivery walks these modules in order: [`intake`] (HTTP, limits, headers) ->
//! [`auth`] and [`signature`] (who sent it) -> [`event`] (what it says) -> [`store`]
//! (SQLite, with [`upload`] folding upload states). [`config`] and [`cli`] sit beside
//! them; [`send`] is the CentrePoint emulator used to test a setup end to end.

pub mod auth;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod event;
pub mod export;
pub mod fixture;
pub mod intake;
pub mod notify;
pub mod send;
pub mod server;
pub mod signature;
pub mod store;
pub mod tray;
pub mod upload;

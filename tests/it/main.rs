//! The core package's integration tests, as one test binary: linking a binary per suite
//! was most of the test build's time. Each module below was a binary of its own and
//! keeps its tests' names (`receiver::a_retried_delivery_is_stored_once_...`);
//! `harness` and `browser` are what they share.

mod browser;
mod harness;

mod crash;
mod dashboard_api;
mod dashboard_browser;
mod fixtures;
mod fuzz_props;
mod hostile_input;
mod notify;
mod receiver;
mod retry_storm;
mod signature;
mod storage_faults;
mod store;

//! The core package's integration tests, as one test binary: linking a binary per suite
//! took about half of an incremental test build on two cores. Each module below was a
//! binary of its own and keeps its tests' names
//! (`receiver::a_retried_delivery_is_stored_once_...`); `harness` and `browser` are what
//! they share.
//!
//! The suites now share one process and run side by side on its test threads, where each
//! used to be a process of its own that ran alone. So no test changes process-wide state
//! (environment variables, the working directory, signal handlers): a setting goes to
//! the code under test through a `Command`'s environment or a `Config`; and every
//! server, port, data directory and mount is the test's own (port 0, a temp dir).

mod browser;
mod harness;
// The nginx TLS proxy that stands in for a tunnel, shared with the desktop app's tests.
#[path = "../common/tls_proxy.rs"]
mod tls_proxy;

mod compliance_browser;
mod crash;
mod dashboard_api;
mod dashboard_browser;
mod discovery;
mod fixtures;
mod fuzz_props;
mod hostile_input;
mod notify;
mod powercut;
mod protocol;
mod reachability;
mod receiver;
mod retry_storm;
mod roster;
mod signature;
mod storage_faults;
mod store;
mod tunnel;

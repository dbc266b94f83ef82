//! The desktop shell's integration tests, as one test binary: `shell` drives the app on
//! Tauri's mock runtime, `desktop` the real app on a desktop stack of its own; each was
//! a binary of its own and keeps its tests' names. `harness` is what they share.
//!
//! Sharing one process, the suites run side by side: each test's desktop session,
//! receiver and data directory are its own, and nothing changes process-wide state. The
//! two `desktop` tests still run one at a time (`ONE_AT_A_TIME`); the `shell` tests run
//! the app in this process on the mock runtime, with no window or web view, and may run
//! beside them.

mod harness;

// The nginx TLS proxy that stands in for a tunnel, shared with the core's reachability suite.
#[path = "../../../tests/common/tls_proxy.rs"]
mod tls_proxy;

mod desktop;
mod shell;

//! The desktop shell's integration tests, as one test binary: `shell` drives the app on
//! Tauri's mock runtime, `desktop` the real app on a desktop stack of its own; each was
//! a binary of its own and keeps its tests' names. `harness` is what they share.

mod harness;

mod desktop;
mod shell;

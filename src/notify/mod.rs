//! What a person should be told: the notification [`policy`] and the [`tray`] model.

pub mod policy;
pub mod tray;

pub use policy::*;

//! What a person should be told: the notification [`policy`], the [`compliance`] news
//! (silent subjects, weeks below target, the morning digest), the [`tray`] model, and
//! the [`runtime`] loop that feeds the policy and has a desktop show both.

pub mod compliance;
pub mod policy;
pub mod reachability;
pub mod runtime;
pub mod tray;

pub use policy::*;

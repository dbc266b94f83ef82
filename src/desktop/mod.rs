//! What the desktop app needs that is not a window, a tray or a D-Bus call: starting at
//! login ([`autostart`]) and running once per user ([`instance`]).

pub mod autostart;
pub mod instance;

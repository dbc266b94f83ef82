//! The dashboard's link to the desktop app, when it runs inside one: what the app says
//! about itself (notifications available, paused, ...), shown in the overview's health
//! panel, and the app's own settings. Empty when running headless (`cpwatch serve`).

use std::sync::{Arc, OnceLock, RwLock};

use serde::Serialize;

/// What the dashboard may change about the desktop app it runs in.
pub trait DesktopSettings: Send + Sync {
    /// Whether the app starts at login; `None` where it cannot (no autostart directory).
    fn start_at_login(&self) -> Option<bool>;
    /// Turns starting at login on or off.
    fn set_start_at_login(&self, on: bool) -> Result<(), DesktopSettingError>;
}

/// Why a desktop setting was not changed; the message is for a person to read.
#[derive(Debug, thiserror::Error)]
pub enum DesktopSettingError {
    #[error("no configuration directory is known, so cpwatch cannot start at login")]
    NoAutostartDirectory,
    #[error("cannot change {}: {source}", path.display())]
    Write { path: std::path::PathBuf, source: std::io::Error },
}

#[derive(Clone, Default)]
pub struct DesktopLink {
    inner: Arc<DesktopLinkInner>,
}

#[derive(Default)]
struct DesktopLinkInner {
    status: RwLock<Option<serde_json::Value>>,
    settings: OnceLock<Arc<dyn DesktopSettings>>,
}

/// The desktop app's settings as the Settings page shows them.
#[derive(Debug, Serialize)]
pub(super) struct DesktopSettingsView {
    start_at_login: Option<bool>,
}

impl DesktopLink {
    /// Replaces what the app says about itself.
    pub fn set_status(&self, status: serde_json::Value) {
        if let Ok(mut current) = self.inner.status.write() {
            *current = Some(status);
        }
    }

    pub fn status(&self) -> Option<serde_json::Value> {
        self.inner.status.read().ok().and_then(|s| s.clone())
    }

    /// Gives the dashboard the app's settings (once; later calls are ignored).
    pub fn attach(&self, settings: Arc<dyn DesktopSettings>) {
        let _ = self.inner.settings.set(settings);
    }

    pub(super) fn settings(&self) -> Option<&Arc<dyn DesktopSettings>> {
        self.inner.settings.get()
    }

    /// The desktop app's settings; `None` (`null`) when headless.
    pub(super) fn settings_view(&self) -> Option<DesktopSettingsView> {
        self.settings().map(|settings| DesktopSettingsView { start_at_login: settings.start_at_login() })
    }
}

//! The tray icon: draws the core's [`View`] (look, tooltip, menu) and runs the menu's
//! actions.

use std::sync::Mutex;

use chrono::{Local, Utc};
use cpwatch::dashboard::DesktopSettings as _;
use cpwatch::emulator::send::{self, TestDelivery};
use cpwatch::notify::tray::{self as core_tray, ids, next_morning, test_feedback, Look, View};
use tauri::menu::{CheckMenuItem, IsMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager as _, Runtime};
use tauri_plugin_clipboard_manager::ClipboardExt as _;

use crate::{icons, window, Control, Shell};

/// The tray's id; also names its D-Bus item.
const TRAY_ID: &str = "cpwatch";

/// The tray icon (absent while no tray host can be reached) and what it shows.
pub struct Tray<R: Runtime> {
    drawn: Mutex<Drawn<R>>,
}

struct Drawn<R: Runtime> {
    icon: Option<TrayIcon<R>>,
    /// The look the icon shows.
    look: Option<Look>,
    menu: Option<Menu<R>>,
    view: Option<View>,
}

impl<R: Runtime> Default for Tray<R> {
    fn default() -> Self {
        Tray { drawn: Mutex::new(Drawn { icon: None, look: None, menu: None, view: None }) }
    }
}

impl<R: Runtime> Tray<R> {
    /// The menu last drawn.
    pub fn menu(&self) -> Option<Menu<R>> {
        self.drawn.lock().ok().and_then(|d| d.menu.clone())
    }

    /// What was last drawn.
    pub fn view(&self) -> Option<View> {
        self.drawn.lock().ok().and_then(|d| d.view.clone())
    }
}

/// When to try again to put the icon in the tray after the panel did not take it: at
/// login the app may start before the panel. Bounded: after these, the app stays
/// without a tray icon (the window and notifications still work).
const RETRY_AFTER_SECONDS: [u64; 8] = [1, 2, 4, 8, 15, 30, 60, 120];

/// Puts the icon in the tray, trying again for a while if no tray host takes it yet.
pub fn place_icon<R: Runtime>(app: &AppHandle<R>) {
    if try_place_icon(app) {
        return;
    }
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        for seconds in RETRY_AFTER_SECONDS {
            tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
            let (placed_tx, placed) = tokio::sync::oneshot::channel();
            let handle = app.clone();
            let scheduled = app.run_on_main_thread(move || {
                let _ = placed_tx.send(try_place_icon(&handle));
            });
            if scheduled.is_err() || placed.await.unwrap_or(true) {
                return;
            }
        }
        tracing::warn!("no tray took the icon; cpwatch runs without one (start cpwatch-desktop again to show the window)");
    });
}

/// One attempt; on success the icon shows the last drawn view at once.
fn try_place_icon<R: Runtime>(app: &AppHandle<R>) -> bool {
    let Some(tray) = app.try_state::<Tray<R>>() else { return true };
    let built = TrayIconBuilder::with_id(TRAY_ID)
        .icon(icons::image(Look::AllGood))
        .title("cpwatch")
        .tooltip("cpwatch: starting")
        .build(app);
    let icon = match built {
        Ok(icon) => icon,
        Err(e) => {
            tracing::info!("the tray does not take the icon yet: {e}");
            return false;
        }
    };
    let view = match tray.drawn.lock() {
        Ok(mut drawn) => {
            drawn.icon = Some(icon);
            drawn.look = Some(Look::AllGood);
            drawn.view.clone()
        }
        Err(_) => None,
    };
    if let Some(view) = view {
        draw(app, view);
    }
    true
}

/// Draws `view`: menu always, tooltip always, icon when the look changed.
pub fn draw<R: Runtime>(app: &AppHandle<R>, view: View) {
    let Some(tray) = app.try_state::<Tray<R>>() else { return };
    let menu = match menu(app, &view) {
        Ok(menu) => menu,
        Err(e) => {
            tracing::error!("cannot build the tray menu: {e}");
            return;
        }
    };
    let Ok(mut drawn) = tray.drawn.lock() else { return };
    if let Some(icon) = &drawn.icon {
        let mut results =
            vec![icon.set_menu(Some(menu.clone())), icon.set_tooltip(Some(&view.model.tooltip))];
        if drawn.look != Some(view.model.look) {
            results.push(icon.set_icon(Some(icons::image(view.model.look))));
        }
        for result in results {
            if let Err(e) = result {
                tracing::warn!("cannot update the tray icon: {e}");
            }
        }
    }
    drawn.look = Some(view.model.look);
    drawn.menu = Some(menu);
    drawn.view = Some(view);
}

/// Menus read `&` as a mnemonic marker: text from outside shows it as itself.
fn literal(text: &str) -> String {
    text.replace('&', "&&")
}

/// The tray menu for `view`.
pub fn menu<R: Runtime>(app: &AppHandle<R>, view: &View) -> tauri::Result<Menu<R>> {
    let mut items: Vec<Box<dyn IsMenuItem<R>>> = Vec::new();
    for item in view.menu() {
        items.push(match item {
            core_tray::MenuItem::Label(text) => {
                Box::new(MenuItem::new(app, literal(&text), false, None::<&str>)?)
            }
            core_tray::MenuItem::Action { id, label, enabled } => {
                Box::new(MenuItem::with_id(app, id, literal(&label), enabled, None::<&str>)?)
            }
            core_tray::MenuItem::Check { id, label, checked } => {
                Box::new(CheckMenuItem::with_id(app, id, literal(&label), true, checked, None::<&str>)?)
            }
            core_tray::MenuItem::Separator => Box::new(PredefinedMenuItem::separator(app)?),
        });
    }
    let refs: Vec<&dyn IsMenuItem<R>> = items.iter().map(|item| item.as_ref()).collect();
    Menu::with_items(app, &refs)
}

/// Runs the menu item `id`. Called on the main thread.
pub fn on_menu<R: Runtime>(app: &AppHandle<R>, id: &str) {
    let shell = app.state::<Shell>();
    tracing::info!("tray menu: {id}");
    match id {
        ids::OPEN => window::open(app, None),
        ids::PAUSE_HOUR => shell.tell(Control::Pause(Utc::now() + chrono::Duration::hours(1))),
        ids::PAUSE_TOMORROW => shell.tell(Control::Pause(next_morning(&Local::now()))),
        ids::RESUME => shell.tell(Control::Resume),
        ids::COPY_URL => copy_webhook_url(app),
        ids::TEST_DELIVERY => send_test_delivery(app),
        ids::START_AT_LOGIN => toggle_start_at_login(&shell),
        ids::QUIT => shell.quit(app),
        other => match other.strip_prefix(ids::UPLOAD_PREFIX) {
            Some(route) => window::open(app, Some(route)),
            None => tracing::debug!("unknown menu item {other}"),
        },
    }
}

fn toggle_start_at_login(shell: &Shell) {
    let on = shell.at_login.start_at_login().unwrap_or(false);
    // Failures are logged and the tray redrawn by `set_start_at_login` itself.
    let _ = shell.at_login.set_start_at_login(!on);
}

/// Copies the URL to give CentrePoint: the public one (configured or found from the
/// tunnel), else the local one.
fn copy_webhook_url<R: Runtime>(app: &AppHandle<R>) {
    let shell = app.state::<Shell>();
    let url = shell.reach.webhook_url_or(&shell.webhook_url);
    match app.clipboard().write_text(url.clone()) {
        Ok(()) => tracing::info!("copied the webhook URL {url}"),
        Err(e) => tracing::error!("cannot copy the webhook URL: {e}"),
    }
}

/// Sends a test delivery through the real receiver, authenticated like its webhook,
/// and says what happened. The delivery's own notification follows as for any upload.
fn send_test_delivery<R: Runtime>(app: &AppHandle<R>) {
    let shell = app.state::<Shell>();
    let (pool, url) = (shell.pool.clone(), shell.webhook_url.clone());
    let control = shell.control();
    tauri::async_runtime::spawn(async move {
        let test = TestDelivery { status: "completed".into(), ..Default::default() };
        let result = send::test_delivery_from_store(&pool, &url, test, "the tray").await;
        let _ = control.send(Control::Tell(test_feedback(result)));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_outside_keep_their_ampersands() {
        assert_eq!(literal("Sleep & Rest"), "Sleep && Rest");
    }
}

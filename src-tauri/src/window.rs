//! The dashboard window: the in-process dashboard's loopback URL in a web view. It is
//! created when shown and destroyed when closed, so a closed window holds no web view
//! (and no web content process) while the app waits in the tray.

use tauri::{AppHandle, Manager as _, Runtime, Url, WebviewUrl, WebviewWindowBuilder};

use crate::{Control, Shell};

/// The window's label.
pub const LABEL: &str = "dashboard";

/// The URL that shows `route` (a dashboard hash route such as `#/uploads/189/85045`).
/// Anything but a hash route is ignored: the window only ever shows this dashboard.
pub fn url(dashboard_url: &str, route: Option<&str>) -> anyhow::Result<Url> {
    let route = route.filter(|r| r.starts_with('#')).unwrap_or("");
    Ok(Url::parse(&format!("{dashboard_url}{route}"))?)
}

/// Shows the dashboard at `route` (the overview when `None`): brings the window forward
/// if it exists, creates it otherwise.
pub fn open<R: Runtime>(app: &AppHandle<R>, route: Option<&str>) -> anyhow::Result<()> {
    let shell = app.state::<Shell>();
    let url = url(&shell.dashboard_url, route)?;
    tracing::info!("showing the dashboard at {}", route.unwrap_or("#/overview"));
    match app.get_webview_window(LABEL) {
        Some(window) => {
            if route.is_some() {
                window.navigate(url)?;
            }
            window.show()?;
            window.unminimize()?;
            window.set_focus()?;
        }
        None => {
            WebviewWindowBuilder::new(app, LABEL, WebviewUrl::External(url))
                .title("cpwatch")
                .inner_size(1200.0, 800.0)
                .min_inner_size(640.0, 480.0)
                .focused(true)
                .build()?;
        }
    }
    shell.tell(Control::Looked);
    Ok(())
}

/// [`open`] from any thread, logging failures (there is nobody to return them to).
pub fn open_later<R: Runtime>(app: &AppHandle<R>, route: Option<String>) {
    let handle = app.clone();
    let scheduled = app.run_on_main_thread(move || {
        if let Err(e) = open(&handle, route.as_deref()) {
            tracing::error!("cannot show the dashboard window: {e:#}");
        }
    });
    if let Err(e) = scheduled {
        tracing::error!("cannot show the dashboard window: {e}");
    }
}

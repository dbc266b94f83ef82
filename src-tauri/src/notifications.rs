//! Desktop notifications through notify-rust: the core's [`Notice`]s (and the app's own
//! few messages) as the notification server shows them, with an "Open" action that opens the window at the
//! notice's route. A notification server may be missing (no D-Bus session, no daemon)
//! or slow: all of it happens on its own thread, so receiving never waits on it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use cpwatch::notify::{Notice, Urgency};
use notify_rust::{Hint, Notification, Timeout};

/// Notifications whose clicks are still awaited. Each waits on its own D-Bus
/// connection (the server sends the click only to the connection that showed it), so
/// the count is bounded; past it, a notification still shows, only its click is not heard.
const MAX_AWAITED: usize = 64;

/// One notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub title: String,
    pub body: String,
    /// Failures: critical urgency, shown until dismissed.
    pub critical: bool,
    /// The dashboard route a click opens.
    pub route: String,
}

impl From<&Notice> for Message {
    fn from(notice: &Notice) -> Self {
        Message {
            title: notice.title.clone(),
            body: notice.body.clone(),
            critical: notice.urgency == Urgency::Critical,
            route: notice.target.route(),
        }
    }
}

/// What the app does when a notification is clicked: opens this dashboard route.
pub type OnOpen = Arc<dyn Fn(String) + Send + Sync>;

/// Starts the notification thread. `on_available` hears whether a notification server
/// answers, first after a probe and then whenever that changes.
pub fn spawn(
    icon: Option<PathBuf>,
    on_open: OnOpen,
    on_available: impl Fn(bool) + Send + 'static,
) -> std::io::Result<mpsc::Sender<Message>> {
    let (tx, rx) = mpsc::channel::<Message>();
    std::thread::Builder::new().name("notifications".into()).spawn(move || {
        let icon = icon.map(|p| p.display().to_string());
        let mut available = probe();
        on_available(available.is_some());
        let awaited = Arc::new(AtomicUsize::new(0));
        for notice in rx {
            let markup = available.as_ref().is_some_and(|caps| caps.markup);
            match show(&notice, icon.as_deref(), markup) {
                Ok(handle) => {
                    if available.is_none() {
                        available = probe().or(Some(Capabilities { markup: false }));
                        on_available(true);
                    }
                    await_click(handle, notice.route.clone(), on_open.clone(), awaited.clone());
                }
                Err(e) => {
                    tracing::warn!("cannot show the notification {:?}: {e}", notice.title);
                    if available.take().is_some() {
                        on_available(false);
                    }
                }
            }
        }
    })?;
    Ok(tx)
}

/// What the server supports, as far as it matters here.
struct Capabilities {
    /// The server reads `<b>`-style markup in bodies, so text from outside is escaped.
    markup: bool,
}

/// Asks the server who it is: `None` when no server answers.
fn probe() -> Option<Capabilities> {
    match notify_rust::get_server_information() {
        Ok(info) => {
            tracing::info!("notifications go to {} {} ({})", info.name, info.version, info.vendor);
            let caps = notify_rust::get_capabilities().unwrap_or_default();
            Some(Capabilities { markup: caps.iter().any(|c| c == "body-markup") })
        }
        Err(e) => {
            tracing::warn!("no notification server answers ({e}); notifications are unavailable");
            None
        }
    }
}

/// The notify-rust notification for a message.
pub fn notification(notice: &Message, icon: Option<&str>, markup: bool) -> Notification {
    let mut n = Notification::new();
    let body = if markup { escape_markup(&notice.body) } else { notice.body.clone() };
    n.appname("cpwatch")
        .summary(&notice.title)
        .body(&body)
        // The packaged app's entry, /usr/share/applications/cpwatch-desktop.desktop: a
        // desktop shell files the notification under the app and takes its icon there.
        .hint(Hint::DesktopEntry("cpwatch-desktop".into()))
        // "default" is what a click on the notification invokes; "open" is the button.
        .action("default", "Open")
        .action("open", "Open");
    if let Some(icon) = icon {
        n.icon(icon);
    }
    if notice.critical {
        n.urgency(notify_rust::Urgency::Critical).timeout(Timeout::Never);
    } else {
        n.urgency(notify_rust::Urgency::Normal).timeout(Timeout::Default);
    }
    n
}

fn show(
    notice: &Message,
    icon: Option<&str>,
    markup: bool,
) -> notify_rust::error::Result<notify_rust::NotificationHandle> {
    tracing::info!("notifying: {} | {}", notice.title, notice.body);
    notification(notice, icon, markup).show()
}

fn await_click(
    handle: notify_rust::NotificationHandle,
    route: String,
    on_open: OnOpen,
    awaited: Arc<AtomicUsize>,
) {
    if awaited.fetch_add(1, Ordering::SeqCst) >= MAX_AWAITED {
        awaited.fetch_sub(1, Ordering::SeqCst);
        tracing::debug!("{MAX_AWAITED} notifications are open; not waiting for this one's click");
        return;
    }
    let counter = awaited.clone();
    let spawned = std::thread::Builder::new().name("notification-click".into()).spawn(move || {
        handle.wait_for_action(|action| {
            if action == "default" || action == "open" {
                on_open(route);
            }
        });
        counter.fetch_sub(1, Ordering::SeqCst);
    });
    if spawned.is_err() {
        awaited.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Text from outside (study labels, error messages) must not be read as markup.
fn escape_markup(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpwatch::notify::Target;

    fn notice(urgency: Urgency) -> Message {
        Message::from(&Notice {
            title: "Upload failed: Sleep & Rest".into(),
            body: "Subject 44732, upload 85045: <Device> clock invalid".into(),
            urgency,
            target: Target::Upload { study_id: "189".into(), upload_id: "85045".into() },
            count: 1,
        })
    }

    #[test]
    fn a_notice_opens_its_dashboard_route() {
        assert_eq!(notice(Urgency::Critical).route, "#/uploads/189/85045");
    }

    #[test]
    fn a_failure_is_critical_and_stays_until_dismissed() {
        let n = notification(&notice(Urgency::Critical), Some("/icons/cpwatch.png"), false);
        assert_eq!(n.appname, "cpwatch");
        assert_eq!(n.summary, "Upload failed: Sleep & Rest");
        assert_eq!(n.timeout, Timeout::Never);
        assert!(n.hints.contains(&Hint::Urgency(notify_rust::Urgency::Critical)), "{:?}", n.hints);
        assert_eq!(n.icon, "/icons/cpwatch.png");
        assert_eq!(n.actions, ["default", "Open", "open", "Open"]);
    }

    #[test]
    fn other_news_uses_the_servers_timeout() {
        let n = notification(&notice(Urgency::Normal), None, false);
        assert_eq!(n.timeout, Timeout::Default);
        assert!(n.hints.contains(&Hint::Urgency(notify_rust::Urgency::Normal)), "{:?}", n.hints);
    }

    #[test]
    fn bodies_are_escaped_only_for_servers_that_read_markup() {
        let plain = notification(&notice(Urgency::Critical), None, false);
        assert_eq!(plain.body, "Subject 44732, upload 85045: <Device> clock invalid");
        let marked = notification(&notice(Urgency::Critical), None, true);
        assert_eq!(marked.body, "Subject 44732, upload 85045: &lt;Device&gt; clock invalid");
    }
}

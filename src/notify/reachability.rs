//! What a person is told about reachability: the moment CentrePoint cannot reach
//! cpwatch (critical), when it can again, and a new public URL the portal has to be
//! given. Quiet hours do not hold these back (they are why silence can be trusted); a
//! pause does, and when it ends the person is told how things stand then, not each
//! change that happened during it.

use chrono::{DateTime, Local, Utc};

use crate::notify::{Notice, Target, Urgency};
use crate::reach::{Cause, ReachStatus, State, UrlChange};

/// What has been told so far.
#[derive(Debug, Default)]
pub struct ReachNotices {
    /// A new URL announced before this start was told then.
    started: Option<DateTime<Utc>>,
    /// The last state told (or taken as known): reachable or unreachable.
    told: Option<State>,
    /// When the unreachable period told began.
    down_since: Option<DateTime<Utc>>,
    /// The last new URL told.
    told_url: Option<String>,
}

impl ReachNotices {
    /// What is told from `started` on.
    pub fn since(started: DateTime<Utc>) -> Self {
        ReachNotices { started: Some(started), ..Default::default() }
    }

    /// What to tell about `status`; call it only when notifications are not paused.
    pub fn observe(&mut self, status: &ReachStatus) -> Vec<Notice> {
        let mut notices = Vec::new();
        let r = &status.reachability;
        match r.state {
            State::Unreachable if self.told != Some(State::Unreachable) => {
                let since = r.since.unwrap_or_else(Utc::now);
                self.down_since = Some(since);
                notices.push(Notice {
                    title: "CentrePoint cannot reach cpwatch".into(),
                    body: format!(
                        "CentrePoint cannot reach cpwatch since {}: {}. Deliveries will be retried for 48 h.",
                        since.with_timezone(&Local).format("%H:%M"),
                        r.reason.as_deref().unwrap_or("the public URL does not answer")
                    ),
                    urgency: Urgency::Critical,
                    target: Target::Overview,
                    count: 1,
                });
                self.told = Some(State::Unreachable);
                if r.cause == Some(Cause::UrlChanged) {
                    // The reason already gives the portal steps: one notice, not two.
                    self.told_url = status.url_change.as_ref().map(|c| c.url.clone());
                }
            }
            State::Reachable if self.told == Some(State::Unreachable) => {
                let since = self.down_since.take();
                let url = status.public_url.as_ref().map_or("the public URL", |p| p.url.as_str());
                notices.push(Notice {
                    title: "CentrePoint can reach cpwatch again".into(),
                    body: match since {
                        Some(since) => format!(
                            "{url} answers again. Deliveries CentrePoint could not make since {} are retried after 24 h and 48 h.",
                            since.with_timezone(&Local).format("%H:%M")
                        ),
                        None => format!("{url} answers again."),
                    },
                    urgency: Urgency::Normal,
                    target: Target::Overview,
                    count: 1,
                });
                self.told = Some(State::Reachable);
            }
            State::Reachable => self.told = Some(State::Reachable),
            // No URL known, or not probed yet: nothing to tell, and an unreachable
            // period told stays told until a probe succeeds.
            State::Unreachable | State::Unknown => {}
        }
        // A change announced by an earlier run was told then.
        let new = |change: &&UrlChange| self.started.is_none_or(|started| change.at >= started);
        if let Some(change) = status.url_change.as_ref().filter(new) {
            if self.told_url.as_deref() != Some(change.url.as_str()) {
                self.told_url = Some(change.url.clone());
                notices.push(Notice {
                    title: "New webhook URL: tell the CentrePoint portal".into(),
                    body: change.message.clone(),
                    urgency: Urgency::Normal,
                    target: Target::Overview,
                    count: 1,
                });
            }
        }
        notices
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reach::{PublicUrl, Reachability, Source};
    use chrono::TimeZone as _;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 14, 2, 0).single().expect("a time")
    }

    fn status(state: State) -> ReachStatus {
        let mut s = ReachStatus::initial(300, t0());
        s.public_url = Some(PublicUrl::new("https://a.trycloudflare.com", "/webhook", Source::Cloudflared));
        s.reachability = Reachability {
            state,
            since: Some(t0()),
            reason: (state == State::Unreachable).then(|| "the tunnel's URL does not answer".into()),
            cause: None,
            checked_at: Some(t0()),
        };
        s
    }

    #[test]
    fn unreachable_is_told_once_critically_and_recovery_once() {
        let mut told = ReachNotices::default();
        assert!(told.observe(&status(State::Reachable)).is_empty(), "reachable at start is not news");
        let down = told.observe(&status(State::Unreachable));
        assert_eq!(down.len(), 1);
        assert_eq!(down[0].urgency, Urgency::Critical);
        assert!(down[0].body.starts_with("CentrePoint cannot reach cpwatch since "), "{}", down[0].body);
        assert!(down[0]
            .body
            .ends_with("the tunnel's URL does not answer. Deliveries will be retried for 48 h."));
        assert!(told.observe(&status(State::Unreachable)).is_empty(), "told once");
        assert!(told.observe(&status(State::Unknown)).is_empty(), "the URL went away: still down");
        let up = told.observe(&status(State::Reachable));
        assert_eq!(up.len(), 1);
        assert_eq!(
            (up[0].title.as_str(), up[0].urgency),
            ("CentrePoint can reach cpwatch again", Urgency::Normal)
        );
        assert!(told.observe(&status(State::Reachable)).is_empty());
    }

    #[test]
    fn a_new_url_is_told_once_with_the_portal_steps() {
        let mut told = ReachNotices::default();
        let mut s = status(State::Reachable);
        s.url_change = Some(UrlChange::new("https://b.trycloudflare.com/webhook", None, t0()));
        let news = told.observe(&s);
        assert_eq!(news.len(), 1);
        assert!(
            news[0].body.contains("set the target URL to https://b.trycloudflare.com/webhook"),
            "{}",
            news[0].body
        );
        assert!(told.observe(&s).is_empty(), "once per URL");
        s.url_change = Some(UrlChange::new("https://c.trycloudflare.com/webhook", None, t0()));
        assert_eq!(told.observe(&s).len(), 1, "another new URL is told");

        let mut restarted = ReachNotices::since(t0() + chrono::Duration::hours(1));
        assert!(restarted.observe(&s).is_empty(), "a change announced by an earlier run is not told again");
    }

    #[test]
    fn a_portal_that_still_has_the_old_url_is_one_critical_notice_with_the_steps() {
        let mut told = ReachNotices::default();
        let mut s = status(State::Unreachable);
        s.reachability.cause = Some(Cause::UrlChanged);
        s.reachability.reason = Some("the CentrePoint portal still has the old URL https://a: set the target URL to https://b and press Validate".into());
        s.url_change = Some(UrlChange::new("https://b", Some("https://a".into()), t0()));
        let news = told.observe(&s);
        assert_eq!(news.len(), 1, "{news:?}");
        assert_eq!(news[0].urgency, Urgency::Critical);
        assert!(
            news[0].body.contains("set the target URL to https://b and press Validate"),
            "{}",
            news[0].body
        );
    }
}

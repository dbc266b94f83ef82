//! What the compliance rules tell a person: subjects who stopped syncing (once per
//! silence episode, grouped per study), subjects whose week can no longer reach the
//! protocol's target (once per subject-week), and each morning a digest per study. Plain
//! code with the time passed in: the runtime reads the studies' news
//! ([`crate::compliance::StudyNews`]) when [`ComplianceNotices::due`] says so, and keeps
//! [`Told`] across restarts so nothing is told twice.
//!
//! Like other news, all of it waits out a pause and quiet hours and is told when they
//! end, and a muted study tells nothing.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike as _, Duration, FixedOffset, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Notice, Target, Urgency};
use crate::compliance::{StudyNews, SubjectCompliance, Week};
use crate::store::settings::NotificationPrefs;

/// What has been told, kept across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Told {
    /// Silence episodes told: study, subject, and since when the subject is silent (a
    /// new upload ends the episode; the next silence has a later start).
    pub silent: BTreeSet<(String, String, DateTime<Utc>)>,
    /// Weeks told below target: study, subject, the week's Monday.
    pub below_target: BTreeSet<(String, String, NaiveDate)>,
    /// The local day of the last digest.
    pub digest_on: Option<NaiveDate>,
}

/// With nothing else due, the studies are read again after this long, to pick up a
/// roster or a protocol changed by another process.
const RECHECK: i64 = 3600;
/// After a delivery, the studies are read again this much later (once per burst).
const AFTER_DELIVERY: i64 = 60;
/// A digest not sent by this many hours after its time (the computer was off) waits
/// for the next morning.
const DIGEST_LATEST_HOURS: i64 = 12;
/// Subjects named in a grouped notice before "and N more".
const NAMED: usize = 6;

/// The compliance notices' state: what was told, and when to read the studies again.
#[derive(Debug, Default)]
pub struct ComplianceNotices {
    told: Told,
    /// When the studies are to be read next; `None` until the first read, which is due
    /// at once.
    next: Option<DateTime<Utc>>,
}

/// What holds news back at a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    No,
    /// Paused until then.
    Paused(DateTime<Utc>),
    /// In quiet hours, which end then.
    Quiet(DateTime<Utc>),
}

impl ComplianceNotices {
    pub fn new(told: Told) -> Self {
        ComplianceNotices { told, next: None }
    }

    pub fn told(&self) -> &Told {
        &self.told
    }

    /// Whether the studies are to be read at `now`.
    pub fn due(&self, now: DateTime<Utc>) -> bool {
        self.next.is_none_or(|next| next <= now)
    }

    /// When the studies are to be read next.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.next
    }

    /// A delivery was committed: what it changed is read a minute later (before the
    /// first read, that read is due anyway).
    pub fn delivered(&mut self, now: DateTime<Utc>) {
        let soon = now + Duration::seconds(AFTER_DELIVERY);
        self.next = self.next.map(|next| next.min(soon));
    }

    /// Reads the studies' news at `now`; returns what to tell. `offset` is the local
    /// time's, for the digest's time and the local day.
    pub fn check(
        &mut self,
        news: &[StudyNews],
        prefs: &NotificationPrefs,
        held: Held,
        now: DateTime<Utc>,
        offset: FixedOffset,
    ) -> Vec<Notice> {
        let today = now.with_timezone(&offset).date_naive();
        let mut notices = Vec::new();
        let mut next = [Some(now + Duration::seconds(RECHECK)), Some(next_midnight(now, offset))];
        if let Held::Paused(until) | Held::Quiet(until) = held {
            next[0] = Some(until.min(now + Duration::seconds(RECHECK)));
        }
        let heard = |study: &StudyNews| !prefs.muted_studies.contains(&study.compliance.study_id);
        if held == Held::No {
            for study in news.iter().filter(|s| heard(s)) {
                if prefs.silent_subjects {
                    notices.extend(self.silent(study));
                }
                if prefs.below_target {
                    notices.extend(self.below_target(study));
                }
            }
            if let Some(at) = prefs.digest_at {
                let today_at = local(today, at, offset);
                let in_time = now >= today_at && now < today_at + Duration::hours(DIGEST_LATEST_HOURS);
                if self.told.digest_on != Some(today) && in_time {
                    self.told.digest_on = Some(today);
                    notices.extend(
                        news.iter()
                            .filter(|s| heard(s))
                            .filter(|s| !s.compliance.subjects.is_empty() || s.uploads_yesterday > 0)
                            .map(digest),
                    );
                }
            }
        }
        // Forget what is over: silences that ended, weeks gone by.
        self.told.silent.retain(|(study, subject, since)| {
            news.iter().any(|s| {
                s.compliance.study_id == *study
                    && s.compliance
                        .subjects
                        .iter()
                        .any(|c| c.subject_id == *subject && c.silent_since == Some(*since))
            })
        });
        let week_start = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
        self.told.below_target.retain(|(_, _, week)| *week >= week_start - Duration::days(7));
        let digest = prefs.digest_at.map(|at| next_digest(at, self.told.digest_on, now, offset));
        let onset = news.iter().flat_map(silence_onsets).min();
        self.next = next.into_iter().chain([digest, onset]).flatten().filter(|at| *at > now).min();
        notices
    }

    /// The subjects of `study` newly silent, in one notice per study.
    fn silent(&mut self, study: &StudyNews) -> Option<Notice> {
        let c = &study.compliance;
        let new: Vec<&SubjectCompliance> = c
            .subjects
            .iter()
            .filter(|s| s.silent)
            .filter(|s| {
                let key = (c.study_id.clone(), s.subject_id.clone(), s.silent_since.unwrap_or_default());
                self.told.silent.insert(key)
            })
            .collect();
        let days = |s: &SubjectCompliance| plural(s.days_since_upload.unwrap_or_default(), "day");
        match new.as_slice() {
            [] => None,
            [one] => Some(Notice {
                title: format!("Subject {} has not synced for {}", one.subject_id, days(one)),
                body: match one.last_upload_at {
                    Some(at) => format!("{}: last upload {}.", study.name, at.format("%a %-d %b %H:%M UTC")),
                    None => format!("{}: no upload yet since monitoring began.", study.name),
                },
                urgency: Urgency::Normal,
                target: Target::Subject { study_id: c.study_id.clone(), subject_id: one.subject_id.clone() },
                count: 1,
            }),
            many => Some(Notice {
                title: format!(
                    "{}: {} subjects have not synced for {} or more",
                    study.name,
                    many.len(),
                    plural(c.protocol.silent_after_days.into(), "day")
                ),
                body: named(many, |s| format!("{} ({})", s.subject_id, days(s))),
                urgency: Urgency::Normal,
                target: Target::Compliance { study_id: c.study_id.clone() },
                count: many.len(),
            }),
        }
    }

    /// The subjects of `study` whose week can no longer reach the target, once a week.
    fn below_target(&mut self, study: &StudyNews) -> Option<Notice> {
        let c = &study.compliance;
        let target = c.protocol.valid_days_per_week;
        let new: Vec<&SubjectCompliance> = c
            .subjects
            .iter()
            .filter(|s| s.week == Week::BelowTarget)
            .filter(|s| {
                self.told.below_target.insert((c.study_id.clone(), s.subject_id.clone(), c.week_start))
            })
            .collect();
        let standing = |s: &SubjectCompliance| {
            if s.week_valid_days >= target {
                "no valid weekend day this week, which the protocol requires".to_string()
            } else {
                format!(
                    "{} this week of the {target} required",
                    plural(s.week_valid_days.into(), "valid day")
                )
            }
        };
        match new.as_slice() {
            [] => None,
            [one] => Some(Notice {
                title: format!("Subject {}: {}", one.subject_id, standing(one)),
                body: format!("{}: the days left this week cannot make it.", study.name),
                urgency: Urgency::Normal,
                target: Target::Subject { study_id: c.study_id.clone(), subject_id: one.subject_id.clone() },
                count: 1,
            }),
            many => Some(Notice {
                title: format!("{}: {} subjects are below target this week", study.name, many.len()),
                body: named(many, |s| format!("{} ({} of {target})", s.subject_id, s.week_valid_days)),
                urgency: Urgency::Normal,
                target: Target::Compliance { study_id: c.study_id.clone() },
                count: many.len(),
            }),
        }
    }
}

/// The morning digest of a study: its line, then whom to call.
fn digest(study: &StudyNews) -> Notice {
    let c = &study.compliance;
    let mut body = study.digest_line();
    let silent: Vec<&SubjectCompliance> = c.subjects.iter().filter(|s| s.silent).collect();
    if !silent.is_empty() {
        body.push_str(&format!("\nNot synced: {}", named(&silent, |s| s.subject_id.clone())));
    }
    let below: Vec<&SubjectCompliance> = c.subjects.iter().filter(|s| s.week == Week::BelowTarget).collect();
    if !below.is_empty() {
        body.push_str(&format!("\nBelow target: {}", named(&below, |s| s.subject_id.clone())));
    }
    Notice {
        title: format!("Morning digest: {}", study.name),
        body,
        urgency: Urgency::Normal,
        target: Target::Compliance { study_id: c.study_id.clone() },
        count: 1,
    }
}

/// When each subject of `study` not yet silent becomes so, if nothing arrives.
fn silence_onsets(study: &StudyNews) -> impl Iterator<Item = DateTime<Utc>> + '_ {
    let after = Duration::days(study.compliance.protocol.silent_after_days.into());
    study.compliance.subjects.iter().filter(|s| !s.silent).filter_map(move |s| Some(s.counted_from? + after))
}

fn named(subjects: &[&SubjectCompliance], name: impl Fn(&SubjectCompliance) -> String) -> String {
    let mut text: Vec<String> = subjects.iter().take(NAMED).map(|s| name(s)).collect();
    if subjects.len() > NAMED {
        text.push(format!("and {} more", subjects.len() - NAMED));
    }
    text.join(", ")
}

fn plural(n: i64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The instant of `at` on `day` in local time.
fn local(day: NaiveDate, at: NaiveTime, offset: FixedOffset) -> DateTime<Utc> {
    (day.and_time(at) - Duration::seconds(offset.local_minus_utc().into())).and_utc()
}

fn next_midnight(now: DateTime<Utc>, offset: FixedOffset) -> DateTime<Utc> {
    let today = now.with_timezone(&offset).date_naive();
    local(today + Duration::days(1), NaiveTime::MIN, offset) + Duration::seconds(1)
}

/// When the next digest is due after `now`: at `at` today if that is still ahead and
/// none was given today, else tomorrow.
pub fn next_digest(
    at: NaiveTime,
    given_on: Option<NaiveDate>,
    now: DateTime<Utc>,
    offset: FixedOffset,
) -> DateTime<Utc> {
    let today = now.with_timezone(&offset).date_naive();
    let today_at = local(today, at, offset);
    if given_on != Some(today) && now < today_at {
        today_at
    } else {
        local(today + Duration::days(1), at, offset)
    }
}

/// `cpwatch serve` with `digest_log`: each morning at the digest's time, every study's
/// digest line goes to the log. Runs until the task is dropped.
pub async fn log_each_morning(pool: crate::store::ReadPool) {
    let mut given_on: Option<NaiveDate> = None;
    loop {
        let prefs = pool.run(|conn| Ok(crate::store::settings::preferences(conn)?)).await;
        let at = match prefs {
            Ok(prefs) => prefs.notifications.digest_at,
            Err(e) => {
                tracing::warn!("cannot read the digest's time: {e}");
                None
            }
        };
        let now = Utc::now();
        let offset = *chrono::Local::now().offset();
        // With no digest set, the Settings are read again in an hour.
        let due = at.map(|at| next_digest(at, given_on, now, offset));
        let wake = due.unwrap_or(now + Duration::hours(1)).min(now + Duration::hours(1));
        tokio::time::sleep((wake - now).to_std().unwrap_or_default()).await;
        if due.is_none_or(|due| Utc::now() < due) {
            continue;
        }
        let today = Utc::now().with_timezone(&offset).date_naive();
        given_on = Some(today);
        match pool.run(move |conn| Ok(crate::store::compliance::news(conn, None, today, Utc::now())?)).await {
            Ok(news) => {
                for study in news {
                    tracing::info!(target: "cpwatch::digest", "{}", study.digest_line());
                }
            }
            Err(e) => tracing::warn!("cannot read the studies for the morning digest: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::{self as rules, SubjectInput};
    use crate::notify::quiet_until;
    use crate::store::protocols::Protocol;
    use crate::store::settings::QuietHours;
    use chrono::TimeZone as _;
    use std::collections::BTreeMap;

    /// Paris in winter.
    fn offset() -> FixedOffset {
        FixedOffset::east_opt(3600).expect("an offset")
    }

    /// Thursday 3 December 2026, `h:m` in Paris.
    fn at(h: u32, m: u32) -> DateTime<Utc> {
        offset().with_ymd_and_hms(2026, 12, 3, h, m, 0).single().expect("a time").with_timezone(&Utc)
    }

    fn subject(id: &str, last_upload: Option<DateTime<Utc>>, wear: &[(u32, f64)]) -> SubjectInput {
        SubjectInput {
            on_roster: true,
            last_upload_at: last_upload,
            wear: wear
                .iter()
                .map(|(d, w)| (NaiveDate::from_ymd_opt(2026, 12, *d).expect("a day"), *w))
                .collect::<BTreeMap<_, _>>(),
            ..SubjectInput::new(id)
        }
    }

    fn news(study: &str, p: &Protocol, subjects: &[SubjectInput], now: DateTime<Utc>) -> StudyNews {
        let today = now.with_timezone(&offset()).date_naive();
        StudyNews {
            name: format!("Study {study}"),
            compliance: rules::study(study, p, subjects, today, now),
            uploads_yesterday: 12,
            failed_yesterday: 1,
        }
    }

    /// Notification preferences with no digest, unless a test sets one.
    fn prefs() -> NotificationPrefs {
        NotificationPrefs { digest_at: None, ..NotificationPrefs::default() }
    }

    fn titles(notices: &[Notice]) -> Vec<&str> {
        notices.iter().map(|n| n.title.as_str()).collect()
    }

    fn days(n: i64) -> Duration {
        Duration::days(n)
    }

    #[test]
    fn a_silent_subject_is_told_once_per_silence_and_again_after_it_synced() {
        let mut told = ComplianceNotices::default();
        let now = at(10, 0);
        let p = Protocol::default();
        let quiet = [subject("1042", Some(now - days(3)), &[])];
        let first = told.check(&[news("189", &p, &quiet, now)], &prefs(), Held::No, now, offset());
        assert_eq!(titles(&first), ["Subject 1042 has not synced for 3 days"]);
        assert!(first[0].body.starts_with("Study 189: last upload Mon 30 Nov"), "{}", first[0].body);
        assert_eq!(first[0].target, Target::Subject { study_id: "189".into(), subject_id: "1042".into() });
        let later = now + Duration::hours(5);
        assert!(
            told.check(&[news("189", &p, &quiet, later)], &prefs(), Held::No, later, offset()).is_empty(),
            "told once"
        );
        // It syncs, which ends the silence; three days later it is silent again.
        let synced = [subject("1042", Some(now + Duration::hours(6)), &[])];
        let after = now + Duration::hours(7);
        assert!(told
            .check(&[news("189", &p, &synced, after)], &prefs(), Held::No, after, offset())
            .is_empty());
        assert!(told.told().silent.is_empty(), "the episode that ended is forgotten");
        let again = now + Duration::hours(6) + days(3);
        let before = again - Duration::minutes(10);
        told.check(&[news("189", &p, &synced, before)], &prefs(), Held::No, before, offset());
        assert_eq!(told.next_deadline(), Some(again), "the loop wakes when it goes silent");
        let second = told.check(&[news("189", &p, &synced, again)], &prefs(), Held::No, again, offset());
        assert_eq!(titles(&second), ["Subject 1042 has not synced for 3 days"], "a new episode");
    }

    #[test]
    fn subjects_going_silent_together_are_one_notice_per_study() {
        let mut told = ComplianceNotices::default();
        let now = at(10, 0);
        let p = Protocol::default();
        let many: Vec<SubjectInput> =
            (1..=8).map(|i| subject(&format!("s{i}"), Some(now - days(3 + i)), &[])).collect();
        let other = [subject("9", Some(now - days(4)), &[])];
        let notices = told.check(
            &[news("189", &p, &many, now), news("204", &p, &other, now)],
            &prefs(),
            Held::No,
            now,
            offset(),
        );
        assert_eq!(
            titles(&notices),
            [
                "Study 189: 8 subjects have not synced for 3 days or more",
                "Subject 9 has not synced for 4 days"
            ]
        );
        assert_eq!(notices[0].count, 8);
        assert_eq!(notices[0].target, Target::Compliance { study_id: "189".into() });
        assert_eq!(
            notices[0].body,
            "s8 (11 days), s7 (10 days), s6 (9 days), s5 (8 days), s4 (7 days), s3 (6 days), and 2 more",
            "the longest silence first"
        );
    }

    #[test]
    fn a_week_that_cannot_reach_the_target_is_told_once_that_week() {
        let mut told = ComplianceNotices::default();
        let p = Protocol { valid_days_per_week: 4, ..Protocol::default() };
        let nov30 = NaiveDate::from_ymd_opt(2026, 11, 30).expect("a day");
        // Monday 30 Nov to Wednesday: 0, 599, 600 minutes: one valid day.
        let check = |told: &mut ComplianceNotices, when: DateTime<Utc>| {
            let mut s = subject("1042", Some(when), &[(1, 599.0), (2, 600.0)]);
            s.wear.insert(nov30, 0.0);
            told.check(&[news("189", &p, &[s], when)], &prefs(), Held::No, when, offset())
        };
        let thursday = at(10, 0);
        assert!(check(&mut told, thursday).is_empty(), "1 valid, Thursday to Sunday can make 4");
        assert!(check(&mut told, thursday + days(1)).is_empty(), "1 valid, Friday to Sunday still can");
        let saturday = thursday + days(2);
        assert_eq!(
            titles(&check(&mut told, saturday)),
            ["Subject 1042: 1 valid day this week of the 4 required"],
            "Saturday and Sunday cannot make the 3 more"
        );
        assert!(check(&mut told, saturday + days(1)).is_empty(), "once per subject-week");
        assert_eq!(
            titles(&check(&mut told, saturday + days(7))),
            ["Subject 1042: 0 valid days this week of the 4 required"],
            "the next week is told again"
        );
    }

    #[test]
    fn the_morning_digest_comes_once_a_day_at_its_time_with_whom_to_call() {
        let mut told = ComplianceNotices::default();
        let p = Protocol::default();
        let digest_prefs =
            NotificationPrefs { digest_at: NaiveTime::from_hms_opt(8, 0, 0), ..NotificationPrefs::default() };
        let early = at(7, 0);
        let s = [subject("1042", Some(early - days(5)), &[]), subject("7", Some(early), &[])];
        let silent = told.check(&[news("189", &p, &s, early)], &digest_prefs, Held::No, early, offset());
        assert_eq!(titles(&silent), ["Subject 1042 has not synced for 5 days"], "no digest before 08:00");
        assert_eq!(told.next_deadline(), Some(at(8, 0)), "the loop wakes for the digest");
        let eight = at(8, 0);
        let digest = told.check(&[news("189", &p, &s, eight)], &digest_prefs, Held::No, eight, offset());
        assert_eq!(titles(&digest), ["Morning digest: Study 189"]);
        assert_eq!(
            digest[0].body,
            "Study 189: 1 silent, 0 below target, 12 uploads yesterday, 1 failed\nNot synced: 1042"
        );
        assert_eq!(digest[0].target, Target::Compliance { study_id: "189".into() });
        let later = at(9, 0);
        assert!(told
            .check(&[news("189", &p, &s, later)], &digest_prefs, Held::No, later, offset())
            .is_empty());
        assert_eq!(told.next_deadline(), Some(at(10, 0)), "an hourly look for changes from elsewhere");
        // A computer off all morning does not get yesterday's digest in the evening.
        let mut late =
            ComplianceNotices::new(Told { digest_on: Some(eight.date_naive() - days(1)), ..Told::default() });
        let evening = at(20, 30);
        let none = late.check(&[news("189", &p, &s, evening)], &digest_prefs, Held::No, evening, offset());
        assert_eq!(titles(&none), ["Subject 1042 has not synced for 5 days"]);
        assert_eq!(late.told().digest_on, Some(eight.date_naive() - days(1)), "today's was not sent");
        assert_eq!(late.next_deadline(), Some(at(21, 30)));
    }

    #[test]
    fn quiet_hours_and_a_pause_hold_news_back_until_they_end_and_muted_studies_tell_nothing() {
        // One valid day a week: no week is below target here.
        let p = Protocol { valid_days_per_week: 1, ..Protocol::default() };
        let now = at(23, 0);
        let s = [subject("1042", Some(now - days(4)), &[])];
        let quiet = QuietHours {
            start: NaiveTime::from_hms_opt(22, 0, 0).expect("a time"),
            end: NaiveTime::from_hms_opt(7, 0, 0).expect("a time"),
        };
        let end = quiet_until(Some(quiet), now, offset()).expect("inside quiet hours");
        assert_eq!(end, at(7, 0) + days(1));
        assert_eq!(quiet_until(Some(quiet), at(12, 0), offset()), None);
        let mut told = ComplianceNotices::default();
        assert!(told
            .check(&[news("189", &p, &s, now)], &prefs(), Held::Quiet(end), now, offset())
            .is_empty());
        assert_eq!(told.next_deadline(), Some(now + Duration::hours(1)), "looked at again within the hour");
        let morning = end;
        let notices = told.check(&[news("189", &p, &s, morning)], &prefs(), Held::No, morning, offset());
        assert_eq!(titles(&notices), ["Subject 1042 has not synced for 4 days"], "told when they end");

        let mut paused = ComplianceNotices::default();
        let until = now + Duration::minutes(20);
        assert!(paused
            .check(&[news("189", &p, &s, now)], &prefs(), Held::Paused(until), now, offset())
            .is_empty());
        assert_eq!(paused.next_deadline(), Some(until), "looked at again when the pause ends");

        let muted = NotificationPrefs { muted_studies: vec!["189".into()], ..prefs() };
        let mut told = ComplianceNotices::default();
        assert!(told.check(&[news("189", &p, &s, now)], &muted, Held::No, now, offset()).is_empty());
        let off = NotificationPrefs { silent_subjects: false, ..prefs() };
        assert!(told.check(&[news("189", &p, &s, now)], &off, Held::No, now, offset()).is_empty());
    }

    #[test]
    fn the_server_logs_the_digest_at_its_time_once_a_day() {
        let eight = NaiveTime::from_hms_opt(8, 0, 0).expect("a time");
        assert_eq!(next_digest(eight, None, at(7, 0), offset()), at(8, 0));
        assert_eq!(
            next_digest(eight, None, at(8, 0), offset()),
            at(8, 0) + days(1),
            "at the time: given now"
        );
        let today = at(7, 0).with_timezone(&offset()).date_naive();
        assert_eq!(next_digest(eight, Some(today), at(7, 59), offset()), at(8, 0) + days(1));
        assert_eq!(next_digest(eight, None, at(23, 0), offset()), at(8, 0) + days(1));
    }

    #[test]
    fn a_delivery_has_the_studies_read_again_a_minute_later_once_per_burst() {
        let mut told = ComplianceNotices::default();
        let now = at(10, 0);
        assert!(told.due(now), "the first read is due at once");
        told.check(&[], &prefs(), Held::No, now, offset());
        assert!(!told.due(now));
        told.delivered(now + Duration::seconds(5));
        told.delivered(now + Duration::seconds(30));
        assert_eq!(
            told.next_deadline(),
            Some(now + Duration::seconds(65)),
            "the burst's first delivery sets it"
        );
    }
}

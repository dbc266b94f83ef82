//! Compliance rules: from a study's protocol, its subjects (the roster and those seen in
//! deliveries), their last uploads and their subject-days' wear time, who is silent and
//! whose days and weeks count. Plain code with the day and time passed in; the store
//! reads the inputs (`store::compliance`).
//!
//! Days are the subjects' local dates (as the daily statistics give them); "today" is
//! the researcher's local date. The complete days are yesterday and the days before it.
//! A week is a calendar week, Monday to Sunday.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike as _, Duration, NaiveDate, Utc, Weekday};
use serde::Serialize;

use crate::store::protocols::Protocol;

/// One subject as the rules need it.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectInput {
    pub subject_id: String,
    pub label: Option<String>,
    pub on_roster: bool,
    pub enrolled_on: Option<NaiveDate>,
    pub expected_until: Option<NaiveDate>,
    pub last_upload_at: Option<DateTime<Utc>>,
    /// Wear minutes per subject-local day (a day with no wear value is absent).
    pub wear: BTreeMap<NaiveDate, f64>,
}

impl SubjectInput {
    /// A subject known by its id alone: not on the roster, no upload, no days yet.
    pub fn new(subject_id: &str) -> Self {
        SubjectInput {
            subject_id: subject_id.to_string(),
            label: None,
            on_roster: false,
            enrolled_on: None,
            expected_until: None,
            last_upload_at: None,
            wear: BTreeMap::new(),
        }
    }
}

/// The current week's standing against the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Week {
    /// Enough valid days (and a weekend day when required).
    Compliant,
    /// Not yet, but the days left can still make it.
    OnTrack,
    /// The days left cannot make it any more.
    BelowTarget,
    /// Nothing is expected this week (outside monitoring or enrolment).
    NotExpected,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectCompliance {
    pub subject_id: String,
    pub label: Option<String>,
    pub on_roster: bool,
    pub last_upload_at: Option<DateTime<Utc>>,
    /// Whole days since the last upload (or since monitoring or enrolment began, for one
    /// who never uploaded).
    pub days_since_upload: Option<i64>,
    pub silent: bool,
    /// Since when: the last upload, or the start of what was expected.
    pub silent_since: Option<DateTime<Utc>>,
    /// What silence counts from, silent or not (for when a silence will begin).
    #[serde(skip)]
    pub counted_from: Option<DateTime<Utc>>,
    pub valid_days_last_7: u32,
    pub valid_days_last_28: u32,
    /// Days with a wear value among the last 28 complete days.
    pub days_observed_last_28: u32,
    /// Mean wear hours over the valid days of the last 28.
    pub mean_wear_hours_valid_days: Option<f64>,
    pub week_valid_days: u32,
    pub week: Week,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudyCompliance {
    pub study_id: String,
    pub protocol: Protocol,
    pub today: NaiveDate,
    /// Monday of the current week.
    pub week_start: NaiveDate,
    pub silent: usize,
    pub below_target: usize,
    /// Silent first (longest silence first), then below target, then by subject id.
    pub subjects: Vec<SubjectCompliance>,
}

/// Whether `day` is one the protocol and the subject's enrolment expect data for.
fn expected(p: &Protocol, s: &SubjectInput, day: NaiveDate) -> bool {
    let after = |bound: Option<NaiveDate>| bound.is_none_or(|b| day >= b);
    let before = |bound: Option<NaiveDate>| bound.is_none_or(|b| day <= b);
    after(p.monitoring_from) && before(p.monitoring_until) && after(s.enrolled_on) && before(s.expected_until)
}

fn is_weekend(day: NaiveDate) -> bool {
    matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
}

pub fn subject(p: &Protocol, s: &SubjectInput, today: NaiveDate, now: DateTime<Utc>) -> SubjectCompliance {
    let threshold = f64::from(p.valid_day_minutes);
    let valid = |day: NaiveDate| expected(p, s, day) && s.wear.get(&day).is_some_and(|w| *w >= threshold);
    // The last 28 complete days in one pass over those with a wear value (a study has
    // thousands of subjects), yesterday first.
    let (mut valid_days_last_7, mut valid_days_last_28, mut days_observed_last_28) = (0u32, 0u32, 0u32);
    let mut valid_wear = 0.0;
    let week_ago = today - Duration::days(7);
    for (day, wear) in s.wear.range(today - Duration::days(28)..today).rev() {
        if !expected(p, s, *day) {
            continue;
        }
        days_observed_last_28 += 1;
        if *wear >= threshold {
            valid_days_last_28 += 1;
            valid_wear += wear;
            valid_days_last_7 += u32::from(*day >= week_ago);
        }
    }
    let mean_wear_hours_valid_days =
        (valid_days_last_28 > 0).then(|| valid_wear / f64::from(valid_days_last_28) / 60.0);

    // The week: Monday to Sunday around today. Today still counts as a day that can come.
    let week_start = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let week: Vec<NaiveDate> = (0..7).map(|i| week_start + Duration::days(i)).collect();
    let week_valid: Vec<NaiveDate> = week.iter().copied().filter(|d| *d < today && valid(*d)).collect();
    let still_possible: Vec<NaiveDate> =
        week.iter().copied().filter(|d| *d >= today && expected(p, s, *d)).collect();
    let target = p.valid_days_per_week as usize;
    let has_weekend = week_valid.iter().any(|d| is_weekend(*d));
    let week_state = if !week.iter().any(|d| expected(p, s, *d)) {
        Week::NotExpected
    } else if week_valid.len() >= target && (!p.weekend_day_required || has_weekend) {
        Week::Compliant
    } else {
        let enough_days = week_valid.len() + still_possible.len() >= target;
        let weekend_possible =
            !p.weekend_day_required || has_weekend || still_possible.iter().any(|d| is_weekend(*d));
        if enough_days && weekend_possible {
            Week::OnTrack
        } else {
            Week::BelowTarget
        }
    };

    // Silence: no upload for `silent_after_days`, while something is expected today.
    let start_expected = [p.monitoring_from, s.enrolled_on].into_iter().flatten().max();
    let since =
        s.last_upload_at.or_else(|| start_expected.and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc()));
    let days_since_upload = since.map(|t| (now - t).num_days().max(0));
    let silent = expected(p, s, today)
        && days_since_upload.is_some_and(|d| d >= i64::from(p.silent_after_days))
        // A subject who never uploaded and has no known start is not yet expected.
        && since.is_some();
    SubjectCompliance {
        subject_id: s.subject_id.clone(),
        label: s.label.clone(),
        on_roster: s.on_roster,
        last_upload_at: s.last_upload_at,
        days_since_upload,
        silent,
        silent_since: silent.then_some(since).flatten(),
        counted_from: since,
        valid_days_last_7,
        valid_days_last_28,
        days_observed_last_28,
        mean_wear_hours_valid_days,
        week_valid_days: week_valid.len() as u32,
        week: week_state,
    }
}

pub fn study(
    study_id: &str,
    p: &Protocol,
    subjects: &[SubjectInput],
    today: NaiveDate,
    now: DateTime<Utc>,
) -> StudyCompliance {
    let mut rows: Vec<SubjectCompliance> = subjects.iter().map(|s| subject(p, s, today, now)).collect();
    rows.sort_by(|a, b| {
        (!a.silent, a.silent_since, a.week != Week::BelowTarget, &a.subject_id).cmp(&(
            !b.silent,
            b.silent_since,
            b.week != Week::BelowTarget,
            &b.subject_id,
        ))
    });
    let week_start = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    StudyCompliance {
        study_id: study_id.to_string(),
        protocol: p.clone(),
        today,
        week_start,
        silent: rows.iter().filter(|r| r.silent).count(),
        below_target: rows.iter().filter(|r| r.week == Week::BelowTarget).count(),
        subjects: rows,
    }
}

/// A study's news for the digest and the notifications: its name, its compliance, and
/// the uploads of yesterday (the researcher's local day).
#[derive(Debug, Clone, PartialEq)]
pub struct StudyNews {
    /// The study's name, or "Study 189".
    pub name: String,
    pub compliance: StudyCompliance,
    pub uploads_yesterday: i64,
    pub failed_yesterday: i64,
}

impl StudyNews {
    pub fn digest_line(&self) -> String {
        digest_line(&self.name, &self.compliance, self.uploads_yesterday, self.failed_yesterday)
    }
}

/// The morning digest's line for a study: "Sleep study: 3 silent, 5 below target, 12
/// uploads yesterday, 1 failed".
pub fn digest_line(name: &str, c: &StudyCompliance, uploads_yesterday: i64, failed_yesterday: i64) -> String {
    format!(
        "{name}: {} silent, {} below target, {} upload{} yesterday, {} failed",
        c.silent,
        c.below_target,
        uploads_yesterday,
        if uploads_yesterday == 1 { "" } else { "s" },
        failed_yesterday
    )
}

/// The coordinator's report: one CSV row per subject, in the study's order.
pub fn write_csv(out: &mut impl std::io::Write, c: &StudyCompliance) -> std::io::Result<()> {
    use crate::export::csv_field;
    writeln!(
        out,
        "subject_id,label,on_roster,valid_days_last_7,valid_days_last_28,mean_wear_hours_on_valid_days,\
         days_observed_last_28,silent_since,week_valid_days,week"
    )?;
    for s in &c.subjects {
        let week = match s.week {
            Week::Compliant => "compliant",
            Week::OnTrack => "on track",
            Week::BelowTarget => "below target",
            Week::NotExpected => "not expected",
        };
        let fields = [
            csv_field(&s.subject_id),
            csv_field(s.label.as_deref().unwrap_or_default()),
            if s.on_roster { "yes" } else { "not on the roster" }.to_string(),
            s.valid_days_last_7.to_string(),
            s.valid_days_last_28.to_string(),
            s.mean_wear_hours_valid_days.map_or_else(String::new, |h| format!("{h:.1}")),
            s.days_observed_last_28.to_string(),
            s.silent_since.map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
            s.week_valid_days.to_string(),
            week.to_string(),
        ];
        writeln!(out, "{}", fields.join(","))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    /// Thursday 2026-12-03, at noon UTC.
    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 3).expect("a date")
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).single().expect("a time")
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d)
            .or_else(|| NaiveDate::from_ymd_opt(2026, 11, d - 100))
            .expect("a day")
    }

    fn who(id: &str, wear: &[(NaiveDate, f64)], last_upload_days_ago: Option<i64>) -> SubjectInput {
        SubjectInput {
            on_roster: true,
            last_upload_at: last_upload_days_ago.map(|d| now() - Duration::days(d)),
            wear: wear.iter().copied().collect(),
            ..SubjectInput::new(id)
        }
    }

    #[test]
    fn the_digest_line_says_who_to_call_and_what_came_yesterday() {
        let c = study("189", &Protocol::default(), &[who("1", &[], Some(5))], today(), now());
        assert_eq!(
            digest_line("Sleep study", &c, 12, 1),
            "Sleep study: 1 silent, 0 below target, 12 uploads yesterday, 1 failed"
        );
        assert!(digest_line("Study 7", &c, 1, 0).contains("1 upload yesterday"));
    }

    #[test]
    fn a_valid_day_is_at_least_the_threshold() {
        let p = Protocol::default();
        // Monday 30 Nov (Nov = 100 + d), Tuesday 1 Dec, Wednesday 2 Dec.
        let s = who("1", &[(day(130), 599.0), (day(1), 600.0), (day(2), 1000.0)], Some(0));
        let c = subject(&p, &s, today(), now());
        assert_eq!(c.valid_days_last_7, 2, "599 is not valid, 600 is");
        assert_eq!(c.days_observed_last_28, 3);
        assert_eq!(c.mean_wear_hours_valid_days, Some(1600.0 / 2.0 / 60.0));
        assert_eq!(c.week_valid_days, 2);
        assert_eq!(c.week, Week::OnTrack, "2 valid, 4 days left (Thu-Sun) for the 2 more needed");
    }

    #[test]
    fn today_is_not_a_complete_day_and_a_week_that_cannot_reach_the_target_says_so() {
        let p = Protocol { valid_days_per_week: 6, ..Protocol::default() };
        let s = who("1", &[(day(3), 900.0)], Some(0));
        let c = subject(&p, &s, today(), now());
        assert_eq!(c.valid_days_last_7, 0, "today's day is not complete yet");
        assert_eq!(c.week, Week::BelowTarget, "0 valid and 4 days left cannot make 6");
    }

    #[test]
    fn the_weekend_rule_needs_a_valid_saturday_or_sunday() {
        let p = Protocol { weekend_day_required: true, valid_days_per_week: 2, ..Protocol::default() };
        let s = who("1", &[(day(130), 700.0), (day(1), 700.0)], Some(0));
        let c = subject(&p, &s, today(), now());
        assert_eq!(c.week_valid_days, 2, "two valid weekdays");
        assert_eq!(c.week, Week::OnTrack, "not compliant without a weekend day, which can still come");
        // Monitoring ends on Friday: no weekend day can come any more.
        let ends_friday = Protocol { monitoring_until: Some(day(4)), ..p.clone() };
        assert_eq!(subject(&ends_friday, &s, today(), now()).week, Week::BelowTarget);
        let with_saturday = who("2", &[(day(130), 700.0), (day(1), 700.0), (day(5), 700.0)], Some(0));
        let sunday = NaiveDate::from_ymd_opt(2026, 12, 6).expect("a date");
        let c = subject(&p, &with_saturday, sunday, now() + Duration::days(3));
        assert_eq!(c.week, Week::Compliant, "with a valid Saturday: {c:?}");
    }

    #[test]
    fn silence_counts_from_the_last_upload_or_the_start_of_monitoring() {
        let p = Protocol { monitoring_from: Some(day(120)), ..Protocol::default() };
        let quiet = who("quiet", &[], Some(3));
        let c = subject(&p, &quiet, today(), now());
        assert!(c.silent && c.days_since_upload == Some(3), "3 days is silent_after_days: {c:?}");
        assert_eq!(c.silent_since, quiet.last_upload_at);
        let recent = subject(&p, &who("recent", &[], Some(2)), today(), now());
        assert!(!recent.silent, "2 days is not yet");
        let never = subject(&p, &who("never", &[], None), today(), now());
        assert!(never.silent, "a roster member who never synced, expected since 20 Nov: {never:?}");
        let unknown_start = subject(&Protocol::default(), &who("never", &[], None), today(), now());
        assert!(!unknown_start.silent, "with no known start, nothing says when to expect data");
        let over = Protocol { monitoring_until: Some(day(130)), ..p.clone() };
        assert!(!subject(&over, &quiet, today(), now()).silent, "monitoring has ended");
    }

    #[test]
    fn days_outside_monitoring_or_enrolment_do_not_count() {
        let p = Protocol { monitoring_from: Some(day(1)), ..Protocol::default() };
        let mut s =
            who("1", &[(day(129), 800.0), (day(130), 800.0), (day(1), 800.0), (day(2), 800.0)], Some(0));
        assert_eq!(
            subject(&p, &s, today(), now()).valid_days_last_7,
            2,
            "29 and 30 Nov are before monitoring"
        );
        s.expected_until = Some(day(1));
        assert_eq!(subject(&p, &s, today(), now()).valid_days_last_7, 1, "2 Dec is after the subject's end");
        s.enrolled_on = Some(day(110));
        s.expected_until = Some(day(120));
        assert_eq!(subject(&Protocol::default(), &s, today(), now()).week, Week::NotExpected);
    }

    #[test]
    fn the_study_lists_silent_subjects_first_then_those_below_target() {
        let p = Protocol { valid_days_per_week: 6, ..Protocol::default() };
        let subjects = [
            who("a-fine", &[(day(130), 900.0), (day(1), 900.0), (day(2), 900.0)], Some(0)),
            who("b-silent-2", &[], Some(5)),
            who("c-silent-1", &[], Some(9)),
            who("d-below", &[], Some(0)),
        ];
        let c = study("189", &p, &subjects, today(), now());
        let order: Vec<&str> = c.subjects.iter().map(|s| s.subject_id.as_str()).collect();
        assert_eq!(order, ["c-silent-1", "b-silent-2", "d-below", "a-fine"], "the longest silence first");
        assert_eq!((c.silent, c.below_target), (2, 3));
        assert_eq!(c.week_start, day(130));
    }
}

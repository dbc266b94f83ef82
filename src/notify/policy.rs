//! The notification policy: which committed deliveries a person should hear about,
//! worded for a person, grouped when many arrive at once. Plain code with an injected
//! clock; the desktop shell only turns [`Notice`]s into desktop notifications and
//! calls [`Notifier::flush_due`] at [`Notifier::next_deadline`] (no polling loop).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, FixedOffset, NaiveTime, Utc};
use serde::Serialize;

use crate::store::settings::{NotificationPrefs, QuietHours};
use crate::store::uploads::UploadRow;
use crate::store::LiveEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    Normal,
    /// Failures: shown until dismissed.
    Critical,
}

/// What a notification opens when clicked: a dashboard route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    Upload {
        study_id: String,
        upload_id: String,
    },
    Uploads {
        study_id: String,
        status: String,
    },
    Subject {
        study_id: String,
        subject_id: String,
    },
    /// A study's compliance view.
    Compliance {
        study_id: String,
    },
    Delivery {
        seq: i64,
    },
    Refused,
    Overview,
}

impl Target {
    /// The dashboard's hash route for this target.
    pub fn route(&self) -> String {
        let enc = |s: &str| {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        match self {
            Target::Upload { study_id, upload_id } => {
                format!("#/uploads/{}/{}", enc(study_id), enc(upload_id))
            }
            Target::Uploads { study_id, status } => {
                format!("#/uploads?study={}&status={}", enc(study_id), enc(status))
            }
            Target::Subject { study_id, subject_id } => {
                format!("#/subjects/{}/{}", enc(study_id), enc(subject_id))
            }
            Target::Compliance { study_id } => format!("#/compliance/{}", enc(study_id)),
            Target::Delivery { seq } => format!("#/deliveries/{seq}"),
            Target::Refused => "#/deliveries?tab=refused".to_string(),
            Target::Overview => "#/overview".to_string(),
        }
    }
}

/// When the quiet hours around `now` end (local time by `offset`), if `now` is in them.
pub fn quiet_until(
    quiet: Option<QuietHours>,
    now: DateTime<Utc>,
    offset: FixedOffset,
) -> Option<DateTime<Utc>> {
    let QuietHours { start, end } = quiet?;
    let local_now = now.with_timezone(&offset);
    let time: NaiveTime = local_now.time();
    let inside = if start <= end { time >= start && time < end } else { time >= start || time < end };
    if !inside {
        return None;
    }
    let end_day =
        if time < end { local_now.date_naive() } else { local_now.date_naive() + Duration::days(1) };
    let end_local = end_day.and_time(end) - Duration::seconds(offset.local_minus_utc().into());
    Some(end_local.and_utc())
}

/// One desktop notification to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub title: String,
    pub body: String,
    pub urgency: Urgency,
    pub target: Target,
    /// How many deliveries this notice stands for (more than one for a group).
    pub count: usize,
}

/// What kind of news a delivery is, for the rules and for grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    UploadCompleted,
    UploadStarted,
    UploadFailed,
    OtherFailed,
}

/// A delivery waiting in its group's window.
#[derive(Debug, Clone)]
struct Pending {
    study_id: String,
    subject_id: Option<String>,
    upload_id: Option<String>,
}

#[derive(Debug)]
struct Group {
    opened_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
    items: Vec<Pending>,
}

/// A group is told once no more has joined it for this long (so a lone completion is
/// told within seconds), or when its window ends, whichever comes first.
pub const SETTLE_SECONDS: u32 = 5;

/// A failed delivery, as its notice names it.
struct Failure<'a> {
    kind: Kind,
    study: &'a str,
    subject: Option<&'a str>,
    upload: Option<&'a str>,
    event_name: &'a str,
    error: Option<String>,
    /// The delivery, opened when neither upload nor subject is known.
    seq: i64,
}

/// The stateful policy: preferences, pause, groups being collected, stalls already told.
#[derive(Debug)]
pub struct Notifier {
    prefs: NotificationPrefs,
    /// Local time's offset, for quiet hours.
    offset: FixedOffset,
    labels: HashMap<String, String>,
    paused_until: Option<DateTime<Utc>>,
    groups: BTreeMap<(String, Kind), Group>,
    stalled_told: HashSet<(String, String)>,
}

impl Notifier {
    pub fn new(prefs: NotificationPrefs, offset: FixedOffset) -> Self {
        Notifier {
            prefs,
            offset,
            labels: HashMap::new(),
            paused_until: None,
            groups: BTreeMap::new(),
            stalled_told: HashSet::new(),
        }
    }

    pub fn set_prefs(&mut self, prefs: NotificationPrefs, offset: FixedOffset) {
        self.prefs = prefs;
        self.offset = offset;
    }

    /// Study names to use instead of ids.
    pub fn set_labels(&mut self, labels: HashMap<String, String>) {
        self.labels = labels;
    }

    /// Silences every notification until `until` (from the tray's Pause items).
    pub fn pause_until(&mut self, until: DateTime<Utc>) {
        self.paused_until = Some(until);
        self.groups.clear();
    }

    pub fn resume(&mut self) {
        self.paused_until = None;
    }

    pub fn paused_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.paused_until.filter(|until| *until > now)
    }

    fn study_name(&self, study: &str) -> String {
        self.labels.get(study).cloned().unwrap_or_else(|| format!("Study {study}"))
    }

    fn quiet(&self, now: DateTime<Utc>) -> bool {
        quiet_until(self.prefs.quiet_hours, now, self.offset).is_some()
    }

    /// Takes one committed event; returns what must be shown now (failures). Other
    /// news waits in its group until [`Notifier::flush_due`].
    pub fn observe(&mut self, event: &LiveEvent, now: DateTime<Utc>) -> Vec<Notice> {
        let LiveEvent::Delivery {
            seq,
            event: name,
            study_id,
            subject_id,
            upload_id,
            status,
            upload,
            error_message,
            ..
        } = event
        else {
            return Vec::new();
        };
        if self.paused_until(now).is_some() {
            return Vec::new();
        }
        let Some(study) = study_id.clone() else { return Vec::new() };
        if self.prefs.muted_studies.iter().any(|m| m == &study) {
            return Vec::new();
        }
        let status = status.as_deref().unwrap_or("");
        let kind = match (name.as_str(), status) {
            ("upload", "error") => Kind::UploadFailed,
            ("upload", "completed") => Kind::UploadCompleted,
            ("upload", "started") => Kind::UploadStarted,
            (_, "error" | "failed") => Kind::OtherFailed,
            _ => return Vec::new(),
        };
        // A late `started` retry for an upload already finished is no news.
        if kind == Kind::UploadStarted && upload.as_ref().is_some_and(|u| u.state.status.is_terminal()) {
            return Vec::new();
        }
        let wanted = match kind {
            Kind::UploadFailed => self.prefs.upload_failed,
            Kind::UploadCompleted => self.prefs.upload_completed,
            Kind::UploadStarted => self.prefs.upload_started,
            Kind::OtherFailed => self.prefs.other_failures,
        };
        if !wanted {
            return Vec::new();
        }
        let failure = matches!(kind, Kind::UploadFailed | Kind::OtherFailed);
        if !failure && self.quiet(now) {
            return Vec::new();
        }
        let error =
            upload.as_ref().and_then(|u| u.state.error_message.clone()).or_else(|| error_message.clone());
        if failure {
            // A failure is never held back or folded into a group.
            return vec![self.failure_notice(Failure {
                kind,
                study: &study,
                subject: subject_id.as_deref(),
                upload: upload_id.as_deref(),
                event_name: name,
                error,
                seq: *seq,
            })];
        }
        let group = self.groups.entry((study.clone(), kind)).or_insert_with(|| Group {
            opened_at: now,
            last_at: now,
            items: Vec::new(),
        });
        group.last_at = now;
        group.items.push(Pending {
            study_id: study,
            subject_id: subject_id.clone(),
            upload_id: upload_id.clone(),
        });
        Vec::new()
    }

    fn failure_notice(&self, failure: Failure<'_>) -> Notice {
        let Failure { kind, study, subject, upload, event_name, error, seq } = failure;
        let what = match (kind, event_name) {
            (Kind::UploadFailed, _) => "Upload failed".to_string(),
            (_, "raw_processing_complete") => "Raw data processing failed".to_string(),
            (_, "data_retrieval_complete") => "Data retrieval failed".to_string(),
            (_, other) => format!("{} failed", other.replace('_', " ")),
        };
        let mut body = match (subject, upload) {
            (Some(s), Some(u)) => format!("Subject {s}, upload {u}"),
            (Some(s), None) => format!("Subject {s}"),
            (None, Some(u)) => format!("Upload {u}"),
            (None, None) => String::new(),
        };
        let error = error.unwrap_or_else(|| "no error message was given".into());
        body = if body.is_empty() { error } else { format!("{body}: {error}") };
        let target = match (upload, subject) {
            (Some(u), _) => Target::Upload { study_id: study.into(), upload_id: u.into() },
            (None, Some(s)) => Target::Subject { study_id: study.into(), subject_id: s.into() },
            (None, None) => Target::Delivery { seq },
        };
        Notice {
            title: format!("{what}: {}", self.study_name(study)),
            body,
            urgency: Urgency::Critical,
            target,
            count: 1,
        }
    }

    /// When a group is told: once it has been quiet for [`SETTLE_SECONDS`] (a lone
    /// completion waits only that long), and at the latest when its window ends.
    fn due_at(&self, group: &Group) -> DateTime<Utc> {
        let window = self.prefs.group_window_seconds;
        let settled = group.last_at + Duration::seconds(SETTLE_SECONDS.min(window).into());
        settled.min(group.opened_at + Duration::seconds(window.into()))
    }

    /// When [`Notifier::flush_due`] next has something to release.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.groups.values().map(|g| self.due_at(g)).min()
    }

    /// Releases every group that is due by `now`: one notice per group.
    pub fn flush_due(&mut self, now: DateTime<Utc>) -> Vec<Notice> {
        let due: Vec<(String, Kind)> =
            self.groups.iter().filter(|(_, g)| self.due_at(g) <= now).map(|(key, _)| key.clone()).collect();
        let mut notices = Vec::new();
        for key in due {
            if let Some(group) = self.groups.remove(&key) {
                if self.paused_until(now).is_none() {
                    notices.push(self.group_notice(&key.0, key.1, &group.items));
                }
            }
        }
        notices
    }

    fn group_notice(&self, study: &str, kind: Kind, items: &[Pending]) -> Notice {
        let verb = if kind == Kind::UploadStarted { "started" } else { "completed" };
        let name = self.study_name(study);
        if let [one] = items {
            let subject = one.subject_id.as_deref().map_or_else(String::new, |s| format!("Subject {s}, "));
            let upload = one.upload_id.as_deref().unwrap_or("?");
            return Notice {
                title: format!("Upload {verb}: {name}"),
                body: format!("{subject}upload {upload}"),
                urgency: Urgency::Normal,
                target: Target::Upload { study_id: one.study_id.clone(), upload_id: upload.to_string() },
                count: 1,
            };
        }
        let body = subjects_phrase(items.iter().filter_map(|p| p.subject_id.as_deref())).unwrap_or_default();
        Notice {
            title: format!("{} uploads {verb} in {name}", items.len()),
            body,
            urgency: Urgency::Normal,
            target: Target::Uploads { study_id: study.to_string(), status: verb.to_string() },
            count: items.len(),
        }
    }

    /// Uploads still `started` longer than `threshold`: each is told once (until it
    /// finishes and starts again). `started` holds the currently started uploads. Several
    /// found stalled at once in one study (as at launch, after a night off) are told as one.
    pub fn stalled(&mut self, started: &[UploadRow], threshold: Duration, now: DateTime<Utc>) -> Vec<Notice> {
        let still: HashSet<(String, String)> =
            started.iter().map(|u| (u.study_id.clone(), u.upload_id.clone())).collect();
        self.stalled_told.retain(|key| still.contains(key));
        if self.paused_until(now).is_some() {
            return Vec::new();
        }
        let mut found: BTreeMap<&str, Vec<&UploadRow>> = BTreeMap::new();
        for upload in started {
            let Some(started_at) = upload.state.started_at else { continue };
            let key = (upload.study_id.clone(), upload.upload_id.clone());
            if now - started_at < threshold
                || self.stalled_told.contains(&key)
                || self.prefs.muted_studies.contains(&upload.study_id)
            {
                continue;
            }
            self.stalled_told.insert(key);
            found.entry(upload.study_id.as_str()).or_default().push(upload);
        }
        found.into_iter().map(|(study, uploads)| self.stalled_notice(study, &uploads, now)).collect()
    }

    fn stalled_notice(&self, study: &str, uploads: &[&UploadRow], now: DateTime<Utc>) -> Notice {
        let name = self.study_name(study);
        let waited = |u: &UploadRow| u.state.started_at.map_or_else(Duration::zero, |t| now - t);
        if let [upload] = uploads {
            let subject =
                upload.state.subject_id.as_deref().map_or_else(String::new, |s| format!("Subject {s}, "));
            return Notice {
                title: format!("Upload stalled: {name}"),
                body: format!(
                    "{subject}upload {} started {} ago and has not finished",
                    upload.upload_id,
                    human_duration(waited(upload))
                ),
                urgency: Urgency::Normal,
                target: Target::Upload { study_id: study.to_string(), upload_id: upload.upload_id.clone() },
                count: 1,
            };
        }
        let longest = uploads.iter().map(|u| waited(u)).max().unwrap_or_else(Duration::zero);
        Notice {
            title: format!("{} uploads stalled in {name}", uploads.len()),
            body: format!(
                "Started up to {} ago and not finished{}",
                human_duration(longest),
                subjects_phrase(uploads.iter().filter_map(|u| u.state.subject_id.as_deref()))
                    .map_or_else(String::new, |s| format!(": {s}"))
            ),
            urgency: Urgency::Normal,
            target: Target::Uploads { study_id: study.to_string(), status: "stalled".into() },
            count: uploads.len(),
        }
    }

    /// When the next upload among `started` that is still to be told becomes stalled:
    /// always after `now` (what is due now is told by [`Notifier::stalled`]), never for
    /// a muted study.
    pub fn next_stall(
        &self,
        started: &[UploadRow],
        threshold: Duration,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        started
            .iter()
            .filter(|u| !self.prefs.muted_studies.contains(&u.study_id))
            .filter(|u| !self.stalled_told.contains(&(u.study_id.clone(), u.upload_id.clone())))
            .filter_map(|u| u.state.started_at.map(|t| t + threshold))
            .filter(|at| *at > now)
            .min()
    }
}

/// "Subject 7", "Subjects 7, 8, 9", "Subjects 7, 8 and 3 more"; `None` for no subjects.
fn subjects_phrase<'a>(subjects: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut subjects: Vec<&str> = subjects.collect();
    subjects.sort_unstable();
    subjects.dedup();
    match subjects.len() {
        0 => None,
        1 => Some(format!("Subject {}", subjects[0])),
        n if n <= 3 => Some(format!("Subjects {}", subjects.join(", "))),
        n => Some(format!("Subjects {} and {} more", subjects[..2].join(", "), n - 2)),
    }
}

/// "2 h 5 min", "45 min", "30 s".
pub fn human_duration(d: Duration) -> String {
    let minutes = d.num_minutes();
    match (minutes / 60, minutes % 60) {
        (0, 0) => format!("{} s", d.num_seconds().max(0)),
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

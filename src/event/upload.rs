//! The state of one upload, folded from its `upload` deliveries in the order received.
//!
//! The rules: a `started` never re-opens an upload that already reached a terminal
//! status (a late retry of `started`); a later terminal status replaces an earlier one
//! (re-processing after an error). Pure code, so the store and the tests share it.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use crate::event::{UploadEvent, UploadStatus};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UploadState {
    pub status: UploadStatus,
    pub subject_id: Option<String>,
    /// Receipt time of the first `started` delivery.
    pub started_at: Option<DateTime<Utc>>,
    /// Receipt time of the latest `completed` delivery.
    pub completed_at: Option<DateTime<Utc>>,
    /// Receipt time of the latest `error` delivery.
    pub failed_at: Option<DateTime<Utc>>,
    /// The message of the latest `error` delivery.
    pub error_message: Option<String>,
    pub first_epoch_utc: Option<DateTime<Utc>>,
    pub last_epoch_utc: Option<DateTime<Utc>>,
    pub first_epoch_subject_tz: Option<NaiveDateTime>,
    pub last_epoch_subject_tz: Option<NaiveDateTime>,
}

/// What applying one delivery did to the upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// The upload was not known before.
    Created,
    /// The status changed from the given one.
    Changed(UploadStatus),
    /// Details may have been recorded but the status stayed.
    Unchanged,
}

impl UploadState {
    /// The state of an upload first seen in `event`.
    pub fn new(event: &UploadEvent, received_at: DateTime<Utc>) -> Self {
        let mut state = UploadState {
            status: event.status,
            subject_id: None,
            started_at: None,
            completed_at: None,
            failed_at: None,
            error_message: None,
            first_epoch_utc: None,
            last_epoch_utc: None,
            first_epoch_subject_tz: None,
            last_epoch_subject_tz: None,
        };
        state.record(event, received_at);
        state
    }

    /// Applies a delivery received after every delivery already applied.
    pub fn apply(&mut self, event: &UploadEvent, received_at: DateTime<Utc>) -> Transition {
        let before = self.status;
        let late_start = event.status == UploadStatus::Started && before.is_terminal();
        if !late_start {
            self.status = event.status;
        }
        self.record(event, received_at);
        if self.status == before {
            Transition::Unchanged
        } else {
            Transition::Changed(before)
        }
    }

    fn record(&mut self, event: &UploadEvent, received_at: DateTime<Utc>) {
        if event.subject_id.is_some() {
            self.subject_id.clone_from(&event.subject_id);
        }
        match event.status {
            UploadStatus::Started => {
                self.started_at.get_or_insert(received_at);
            }
            UploadStatus::Completed => {
                self.completed_at = Some(received_at);
                self.first_epoch_utc = event.first_epoch_utc.or(self.first_epoch_utc);
                self.last_epoch_utc = event.last_epoch_utc.or(self.last_epoch_utc);
                self.first_epoch_subject_tz = event.first_epoch_subject_tz.or(self.first_epoch_subject_tz);
                self.last_epoch_subject_tz = event.last_epoch_subject_tz.or(self.last_epoch_subject_tz);
            }
            UploadStatus::Error => {
                self.failed_at = Some(received_at);
                self.error_message.clone_from(&event.message);
            }
        }
    }

    /// Folds a whole timeline, in receipt order, into the upload's state.
    pub fn replay<'a>(
        timeline: impl IntoIterator<Item = (&'a UploadEvent, DateTime<Utc>)>,
    ) -> Option<UploadState> {
        let mut state: Option<UploadState> = None;
        for (event, at) in timeline {
            match &mut state {
                None => state = Some(UploadState::new(event, at)),
                Some(s) => {
                    s.apply(event, at);
                }
            }
        }
        state
    }

    /// How long processing took, from the first `started` to the terminal status.
    pub fn duration(&self) -> Option<chrono::Duration> {
        let end = match self.status {
            UploadStatus::Started => return None,
            UploadStatus::Completed => self.completed_at?,
            UploadStatus::Error => self.failed_at?,
        };
        // A `started` that arrived after the outcome (a late retry) gives no duration.
        Some(end - self.started_at?).filter(|d| *d >= chrono::Duration::zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use UploadStatus::{Completed as C, Error as E, Started as S};

    fn event(status: UploadStatus) -> UploadEvent {
        UploadEvent {
            status,
            upload_id: "85045".into(),
            study_id: "189".into(),
            subject_id: Some("44732".into()),
            message: (status == E).then(|| "A problem occured during upload processing".into()),
            first_epoch_utc: None,
            last_epoch_utc: None,
            first_epoch_subject_tz: None,
            last_epoch_subject_tz: None,
        }
    }

    fn at(minute: u32) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 26)
            .and_then(|d| d.and_hms_opt(12, minute, 0))
            .map(|dt| dt.and_utc())
            .expect("a valid test time")
    }

    #[test]
    fn upload_state_follows_the_rules_for_every_delivery_order() {
        // (deliveries in the order received, expected final status, rule)
        let table: &[(&[UploadStatus], UploadStatus, &str)] = &[
            (&[S], S, "a started upload is started"),
            (&[S, C], C, "started then completed is completed"),
            (&[S, E], E, "started then error is error"),
            (&[C, S], C, "a late started does not re-open a completed upload"),
            (&[E, S], E, "a late started does not re-open a failed upload"),
            (&[S, C, S], C, "a retried started after completion changes nothing"),
            (&[S, E, C], C, "re-processing after an error completes the upload"),
            (&[S, C, E], E, "a later error overrides an earlier completion"),
            (&[C], C, "a completion seen without its start is completed"),
            (&[E, E], E, "a repeated error stays an error"),
            (&[S, S, S], S, "repeated starts stay started"),
            (&[E, S, C], C, "a late start between error and completion is ignored"),
        ];
        for (order, expected, rule) in table {
            let timeline: Vec<(UploadEvent, DateTime<Utc>)> =
                order.iter().enumerate().map(|(i, s)| (event(*s), at(i as u32))).collect();
            let state =
                UploadState::replay(timeline.iter().map(|(e, t)| (e, *t))).expect("a non-empty timeline");
            assert_eq!(state.status, *expected, "{rule}: {order:?}");
        }
    }

    #[test]
    fn times_and_messages_are_kept_from_the_right_deliveries() {
        let mut state = UploadState::new(&event(S), at(1));
        assert_eq!(state.apply(&event(E), at(2)), Transition::Changed(S));
        assert_eq!(state.apply(&event(S), at(3)), Transition::Unchanged, "late start");
        assert_eq!(state.started_at, Some(at(1)), "the first start is kept");
        assert_eq!(state.failed_at, Some(at(2)));
        assert_eq!(state.error_message.as_deref(), Some("A problem occured during upload processing"));
        let mut done = event(C);
        done.first_epoch_utc = Some(at(0));
        done.last_epoch_utc = Some(at(1));
        assert_eq!(state.apply(&done, at(4)), Transition::Changed(E));
        assert_eq!(state.completed_at, Some(at(4)));
        assert_eq!(state.first_epoch_utc, Some(at(0)));
        assert_eq!(state.duration(), Some(chrono::Duration::minutes(3)));
    }
}

//! Each study's compliance protocol: what makes a day valid, a week compliant, a subject
//! silent, and when monitoring runs. A study with no protocol set has the defaults
//! researchers know: 10 h of wear (600 min) makes a valid day (the NHANES convention,
//! Troiano et al. 2008), 4 valid days a week, no weekend day required, silent after 3
//! days without an upload.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension as _};
use serde::{Deserialize, Serialize};

use super::to_ms;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protocol {
    /// Wear minutes that make a day valid (1-1440).
    pub valid_day_minutes: u32,
    /// Valid days a week needs to be compliant (1-7).
    pub valid_days_per_week: u32,
    /// A compliant week also needs a valid Saturday or Sunday.
    pub weekend_day_required: bool,
    /// A subject with no upload for this many days is silent (1-365).
    pub silent_after_days: u32,
    /// Monitoring starts (subject-local dates); before it nothing is expected.
    pub monitoring_from: Option<NaiveDate>,
    /// Monitoring ends; after it nothing is expected.
    pub monitoring_until: Option<NaiveDate>,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            valid_day_minutes: 600,
            valid_days_per_week: 4,
            weekend_day_required: false,
            silent_after_days: 3,
            monitoring_from: None,
            monitoring_until: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidProtocol(pub String);

impl Protocol {
    /// Values that parse but cannot be a protocol.
    pub fn validate(&self) -> Result<(), InvalidProtocol> {
        let bad = |message: String| Err(InvalidProtocol(message));
        if !(1..=1440).contains(&self.valid_day_minutes) {
            return bad(format!(
                "valid_day_minutes must be 1 to 1440 (a day has 1440 minutes), not {}",
                self.valid_day_minutes
            ));
        }
        if !(1..=7).contains(&self.valid_days_per_week) {
            return bad(format!("valid_days_per_week must be 1 to 7, not {}", self.valid_days_per_week));
        }
        if !(1..=365).contains(&self.silent_after_days) {
            return bad(format!("silent_after_days must be 1 to 365, not {}", self.silent_after_days));
        }
        if let (Some(from), Some(until)) = (self.monitoring_from, self.monitoring_until) {
            if until < from {
                return bad(format!("monitoring_until {until} is before monitoring_from {from}"));
            }
        }
        Ok(())
    }
}

/// A change to a protocol: each field given replaces it, one left out keeps it. The
/// dates are `Some(None)` to clear them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtocolChange {
    pub valid_day_minutes: Option<u32>,
    pub valid_days_per_week: Option<u32>,
    pub weekend_day_required: Option<bool>,
    pub silent_after_days: Option<u32>,
    pub monitoring_from: Option<Option<NaiveDate>>,
    pub monitoring_until: Option<Option<NaiveDate>>,
}

impl ProtocolChange {
    pub fn applied_to(&self, p: &Protocol) -> Protocol {
        Protocol {
            valid_day_minutes: self.valid_day_minutes.unwrap_or(p.valid_day_minutes),
            valid_days_per_week: self.valid_days_per_week.unwrap_or(p.valid_days_per_week),
            weekend_day_required: self.weekend_day_required.unwrap_or(p.weekend_day_required),
            silent_after_days: self.silent_after_days.unwrap_or(p.silent_after_days),
            monitoring_from: self.monitoring_from.unwrap_or(p.monitoring_from),
            monitoring_until: self.monitoring_until.unwrap_or(p.monitoring_until),
        }
    }
}

/// Changes a study's protocol, in the caller's transaction: validated first, stored only
/// when it changes anything. Returns the protocol now in force.
pub fn change(
    conn: &Connection,
    study_id: &str,
    change: &ProtocolChange,
    now: DateTime<Utc>,
) -> Result<Protocol, super::StoreError> {
    let before = protocol(conn, study_id)?;
    let after = change.applied_to(&before);
    if after != before {
        set_protocol(conn, study_id, &after, now)?;
    }
    Ok(after)
}

/// A study's protocol: the one set, else the defaults.
pub fn protocol(conn: &Connection, study_id: &str) -> rusqlite::Result<Protocol> {
    let day = |text: Option<String>| text.and_then(|t| NaiveDate::parse_from_str(&t, "%Y-%m-%d").ok());
    Ok(conn
        .query_row(
            "SELECT valid_day_minutes, valid_days_per_week, weekend_day_required, silent_after_days,
                    monitoring_from, monitoring_until
             FROM study_protocols WHERE study_id = ?1",
            [study_id],
            |row| {
                Ok(Protocol {
                    valid_day_minutes: row.get(0)?,
                    valid_days_per_week: row.get(1)?,
                    weekend_day_required: row.get(2)?,
                    silent_after_days: row.get(3)?,
                    monitoring_from: day(row.get(4)?),
                    monitoring_until: day(row.get(5)?),
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

/// Sets a study's protocol (validated first: an invalid one is never stored). The study
/// need not have sent anything yet.
pub fn set_protocol(
    conn: &Connection,
    study_id: &str,
    p: &Protocol,
    now: DateTime<Utc>,
) -> Result<(), super::StoreError> {
    p.validate().map_err(|e| super::StoreError::Invalid(e.0))?;
    let day = |d: Option<NaiveDate>| d.map(|d| d.format("%Y-%m-%d").to_string());
    // Listed among the studies from now on, like a study that is only named.
    conn.execute(
        "INSERT INTO studies (study_id, first_seen_at, last_delivery_at) VALUES (?1, ?2, 0)
         ON CONFLICT (study_id) DO NOTHING",
        params![study_id, to_ms(now)],
    )?;
    conn.execute(
        "INSERT INTO study_protocols (study_id, valid_day_minutes, valid_days_per_week, weekend_day_required,
             silent_after_days, monitoring_from, monitoring_until, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (study_id) DO UPDATE SET
             valid_day_minutes = excluded.valid_day_minutes, valid_days_per_week = excluded.valid_days_per_week,
             weekend_day_required = excluded.weekend_day_required, silent_after_days = excluded.silent_after_days,
             monitoring_from = excluded.monitoring_from, monitoring_until = excluded.monitoring_until,
             updated_at = excluded.updated_at",
        params![
            study_id,
            p.valid_day_minutes,
            p.valid_days_per_week,
            p.weekend_day_required,
            p.silent_after_days,
            day(p.monitoring_from),
            day(p.monitoring_until),
            to_ms(now)
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = super::super::open_in(dir.path()).expect("store");
        (dir, conn)
    }

    #[test]
    fn a_study_without_a_protocol_has_the_defaults_and_a_set_one_is_kept() {
        let (_dir, conn) = store();
        assert_eq!(protocol(&conn, "189").expect("read"), Protocol::default());
        let p = Protocol {
            valid_day_minutes: 960,
            weekend_day_required: true,
            monitoring_from: NaiveDate::from_ymd_opt(2026, 11, 2),
            monitoring_until: NaiveDate::from_ymd_opt(2026, 11, 29),
            ..Protocol::default()
        };
        set_protocol(&conn, "189", &p, Utc::now()).expect("set");
        assert_eq!(protocol(&conn, "189").expect("read"), p);
        assert_eq!(protocol(&conn, "204").expect("read"), Protocol::default(), "per study");
    }

    #[test]
    fn invalid_protocols_are_refused_with_a_reason_and_never_stored() {
        let (_dir, conn) = store();
        let cases = [
            (Protocol { valid_day_minutes: 0, ..Protocol::default() }, "valid_day_minutes"),
            (Protocol { valid_day_minutes: 1441, ..Protocol::default() }, "1440"),
            (Protocol { valid_days_per_week: 8, ..Protocol::default() }, "valid_days_per_week"),
            (Protocol { silent_after_days: 0, ..Protocol::default() }, "silent_after_days"),
            (
                Protocol {
                    monitoring_from: NaiveDate::from_ymd_opt(2026, 12, 2),
                    monitoring_until: NaiveDate::from_ymd_opt(2026, 12, 1),
                    ..Protocol::default()
                },
                "before monitoring_from",
            ),
        ];
        for (p, says) in cases {
            let err = set_protocol(&conn, "189", &p, Utc::now()).expect_err("refused");
            assert!(err.to_string().contains(says), "{err}");
        }
        assert_eq!(protocol(&conn, "189").expect("read"), Protocol::default(), "nothing stored");
    }
}

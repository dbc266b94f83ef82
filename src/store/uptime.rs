//! The receiver's running periods and its outages: the times CentrePoint could not
//! have reached it. Written outside the delivery writer (a few rows an hour, from the
//! reachability monitor), read by `cpwatch status` and the dashboard.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension as _};
use serde::Serialize;

use super::{from_ms, to_ms};

/// Why the receiver could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageKind {
    /// cpwatch was stopped (and later started again).
    Stopped,
    /// cpwatch ended without stopping: a crash, `kill -9`, a power cut.
    Crashed,
    /// The computer was asleep.
    Asleep,
    /// cpwatch ran, but its public URL did not reach it.
    Unreachable,
}

impl OutageKind {
    fn id(self) -> &'static str {
        match self {
            OutageKind::Stopped => "stopped",
            OutageKind::Crashed => "crashed",
            OutageKind::Asleep => "asleep",
            OutageKind::Unreachable => "unreachable",
        }
    }

    fn parse(id: &str) -> OutageKind {
        match id {
            "stopped" => OutageKind::Stopped,
            "crashed" => OutageKind::Crashed,
            "asleep" => OutageKind::Asleep,
            _ => OutageKind::Unreachable,
        }
    }
}

/// One period of downtime, as `cpwatch status --json` and the dashboard list them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Downtime {
    pub from: DateTime<Utc>,
    /// `None` while it goes on.
    pub to: Option<DateTime<Utc>>,
    pub kind: OutageKind,
    pub reason: String,
}

/// How many outages `downtime` lists, newest first.
pub const DOWNTIME_SHOWN: usize = 20;
/// Outages older than this many are deleted as new ones are recorded.
const OUTAGES_KEPT: i64 = 500;

/// The run just started, and the gap before it, if the receiver ran before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub run: i64,
    pub gap: Option<Downtime>,
}

/// Records a start at `now`. The previous run's end is its clean stop, or after a crash
/// the later of its last heartbeat and its last delivery; the time from there to `now`
/// is an outage. An unreachable period still open when it ended is closed at that end.
pub fn start(conn: &Connection, now: DateTime<Utc>, pid: u32) -> rusqlite::Result<Started> {
    let tx = super::immediate(conn)?;
    let previous: Option<(i64, i64, Option<i64>)> = tx
        .query_row("SELECT started_at, alive_at, stopped_at FROM runs ORDER BY id DESC LIMIT 1", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    let gap = match previous {
        None => None,
        Some((started_at, alive_at, stopped_at)) => {
            let (end, kind, reason) = match stopped_at {
                Some(stopped) => (stopped, OutageKind::Stopped, "cpwatch was not running".to_string()),
                None => {
                    let last_delivery: Option<i64> = tx.query_row(
                        "SELECT max(received_at) FROM deliveries WHERE received_at >= ?1",
                        [started_at],
                        |row| row.get(0),
                    )?;
                    (
                        last_delivery.map_or(alive_at, |d| d.max(alive_at)),
                        OutageKind::Crashed,
                        "cpwatch ended without stopping (a crash, a forced quit or a power cut)".to_string(),
                    )
                }
            };
            tx.execute("UPDATE outages SET ended_at = max(started_at, ?1) WHERE ended_at IS NULL", [end])?;
            let end = end.min(to_ms(now));
            let gap = Downtime { from: from_ms(end), to: Some(now), kind, reason };
            record(&tx, &gap)?;
            Some(gap)
        }
    };
    tx.execute(
        "INSERT INTO runs (started_at, alive_at, pid) VALUES (?1, ?1, ?2)",
        params![to_ms(now), i64::from(pid)],
    )?;
    let run = tx.last_insert_rowid();
    tx.commit()?;
    Ok(Started { run, gap })
}

/// The heartbeat: the run was alive at `now`.
pub fn alive(conn: &Connection, run: i64, now: DateTime<Utc>) -> rusqlite::Result<()> {
    conn.execute("UPDATE runs SET alive_at = max(alive_at, ?2) WHERE id = ?1", params![run, to_ms(now)])?;
    Ok(())
}

/// A clean stop at `now`; an unreachable period still open ends with it.
pub fn stop(conn: &Connection, run: i64, now: DateTime<Utc>) -> rusqlite::Result<()> {
    let tx = super::immediate(conn)?;
    tx.execute(
        "UPDATE runs SET stopped_at = ?2, alive_at = max(alive_at, ?2) WHERE id = ?1",
        params![run, to_ms(now)],
    )?;
    tx.execute("UPDATE outages SET ended_at = max(started_at, ?1) WHERE ended_at IS NULL", [to_ms(now)])?;
    tx.commit()
}

/// Records a finished outage (a gap, a sleep) or opens one (`to` is `None`).
pub fn record(conn: &Connection, outage: &Downtime) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO outages (started_at, ended_at, kind, reason) VALUES (?1, ?2, ?3, ?4)",
        params![to_ms(outage.from), outage.to.map(to_ms), outage.kind.id(), outage.reason],
    )?;
    let id = conn.last_insert_rowid();
    conn.execute("DELETE FROM outages WHERE id <= ?1 - ?2", params![id, OUTAGES_KEPT])?;
    Ok(id)
}

/// Ends the open outage `id` at `at`.
pub fn end(conn: &Connection, id: i64, at: DateTime<Utc>) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE outages SET ended_at = max(started_at, ?2) WHERE id = ?1 AND ended_at IS NULL",
        params![id, to_ms(at)],
    )?;
    Ok(())
}

/// The newest outages first, at most [`DOWNTIME_SHOWN`].
pub fn downtime(conn: &Connection) -> rusqlite::Result<Vec<Downtime>> {
    let mut stmt = conn.prepare_cached(
        "SELECT started_at, ended_at, kind, reason FROM outages ORDER BY started_at DESC, id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([DOWNTIME_SHOWN as i64], |row| {
        Ok(Downtime {
            from: from_ms(row.get(0)?),
            to: row.get::<_, Option<i64>>(1)?.map(from_ms),
            kind: OutageKind::parse(&row.get::<_, String>(2)?),
            reason: row.get(3)?,
        })
    })?;
    rows.collect()
}

/// What a gap means for the deliveries CentrePoint tried during it, for a person.
/// CentrePoint retries 24 h and 48 h after a failed delivery, so what it tried in the
/// last 48 h is still coming; anything older has to be resent from the portal.
pub fn advice(gap: &Downtime, now: DateTime<Utc>) -> String {
    let local = |t: DateTime<Utc>| t.with_timezone(&chrono::Local).format("%a %d %b %H:%M").to_string();
    let given_up_before = now - chrono::Duration::hours(48);
    let end = gap.to.unwrap_or(now);
    let resend = format!(
        "use Resend on the webhook's Details page in the CentrePoint portal for deliveries from {} to {}",
        local(gap.from),
        local(end.min(given_up_before))
    );
    if gap.from >= given_up_before {
        let still = if gap.to.is_some() { "will be retried" } else { "will be retried once it is fixed" };
        format!(
            "Deliveries CentrePoint could not make then {still} (24 h and 48 h later); if they have not arrived \
             after 48 h, use Resend on the webhook's Details page in the CentrePoint portal."
        )
    } else if end > given_up_before {
        format!(
            "CentrePoint has given up on deliveries older than 48 h: {resend}; later ones will be retried."
        )
    } else {
        format!("CentrePoint has given up on these deliveries (it retries for 48 h): {resend}.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).single().expect("a time")
            + chrono::Duration::minutes(minutes)
    }

    fn store() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = super::super::open_in(dir.path()).expect("store");
        (dir, conn)
    }

    #[test]
    fn a_clean_stop_then_a_start_is_a_stopped_gap() {
        let (_dir, conn) = store();
        let first = start(&conn, t(0), 1).expect("start");
        assert_eq!(first.gap, None, "the first start has nothing before it");
        stop(&conn, first.run, t(30)).expect("stop");
        let second = start(&conn, t(90), 2).expect("start again");
        let gap = second.gap.expect("a gap");
        assert_eq!((gap.from, gap.to, gap.kind), (t(30), Some(t(90)), OutageKind::Stopped));
        assert_eq!(downtime(&conn).expect("downtime"), vec![gap]);
    }

    #[test]
    fn after_a_crash_the_gap_starts_at_the_last_heartbeat() {
        let (_dir, conn) = store();
        let run = start(&conn, t(0), 1).expect("start").run;
        alive(&conn, run, t(10)).expect("heartbeat");
        alive(&conn, run, t(20)).expect("heartbeat");
        let gap = start(&conn, t(45), 2).expect("restart").gap.expect("a gap");
        assert_eq!((gap.from, gap.to, gap.kind), (t(20), Some(t(45)), OutageKind::Crashed));
    }

    #[test]
    fn an_unreachable_period_open_at_a_crash_ends_with_the_run() {
        let (_dir, conn) = store();
        let run = start(&conn, t(0), 1).expect("start").run;
        let reason = "connection refused".to_string();
        let open = Downtime { from: t(5), to: None, kind: OutageKind::Unreachable, reason };
        record(&conn, &open).expect("open");
        alive(&conn, run, t(10)).expect("heartbeat");
        start(&conn, t(60), 2).expect("restart");
        let listed = downtime(&conn).expect("downtime");
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert_eq!((listed[0].from, listed[0].kind), (t(10), OutageKind::Crashed), "newest first");
        assert_eq!((listed[1].from, listed[1].to), (t(5), Some(t(10))), "closed at the run's end");
    }

    #[test]
    fn advice_depends_on_whether_centrepoint_still_retries() {
        let gap = Downtime { from: t(0), to: Some(t(60)), kind: OutageKind::Crashed, reason: String::new() };
        assert!(advice(&gap, t(120)).contains("will be retried"), "{}", advice(&gap, t(120)));
        let late = t(60 * 49);
        assert!(advice(&gap, late).contains("given up on these"), "{}", advice(&gap, late));
        assert!(advice(&gap, late).contains("Resend"));
        // A three-day gap: only its first day is beyond the retries.
        let long = Downtime { to: Some(t(60 * 72)), ..gap.clone() };
        let text = advice(&long, t(60 * 72));
        assert!(text.contains("older than 48 h") && text.contains("later ones will be retried"), "{text}");
    }
}

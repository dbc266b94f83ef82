//! `cpwatch studies`: each study's name and compliance protocol.

use anyhow::bail;
use chrono::{NaiveDate, Utc};
use clap::Subcommand;
use rusqlite::Connection;

use cpwatch::store::protocols::{self, Protocol, ProtocolChange};
use cpwatch::store::studies;

/// `cpwatch compliance STUDY`: who is silent and whose days count, as of today.
pub(super) fn compliance(conn: &Connection, study: &str, json: bool, csv: bool) -> anyhow::Result<()> {
    let today = chrono::Local::now().date_naive();
    let protocol = protocols::protocol(conn, study)?;
    let inputs = cpwatch::store::compliance::inputs(conn, study, today)?;
    let c = cpwatch::compliance::study(study, &protocol, &inputs, today, Utc::now());
    if json {
        println!("{}", serde_json::to_string_pretty(&c)?);
        return Ok(());
    }
    if csv {
        cpwatch::compliance::write_csv(&mut std::io::stdout().lock(), &c)?;
        return Ok(());
    }
    println!("study {study}: {}", describe(&protocol));
    println!(
        "{} subject(s): {} silent, {} below target this week (week of {})",
        c.subjects.len(),
        c.silent,
        c.below_target,
        c.week_start
    );
    for s in &c.subjects {
        let name = s.label.as_deref().map_or_else(String::new, |l| format!(" ({l})"));
        let silent = s.silent_since.map_or_else(String::new, |t| {
            format!(
                ", SILENT for {} days since {}",
                s.days_since_upload.unwrap_or_default(),
                t.format("%Y-%m-%d")
            )
        });
        let roster = if s.on_roster { "" } else { ", not on the roster" };
        println!(
            "  {}{name}: {} valid day(s) this week, {} in the last 7, {} in the last 28{silent}{roster}",
            s.subject_id, s.week_valid_days, s.valid_days_last_7, s.valid_days_last_28
        );
    }
    Ok(())
}

/// `cpwatch digest [--study S]`: the morning digest, a line per study, for scripts and mail.
pub(super) fn digest(conn: &Connection, study: Option<&str>) -> anyhow::Result<()> {
    let news = cpwatch::store::compliance::news(conn, study, chrono::Local::now().date_naive(), Utc::now())?;
    if let (Some(id), true) = (study, news.is_empty()) {
        bail!("no study {id} is known (studies are known once a delivery names them, or once named or given a protocol)");
    }
    for study in news {
        println!("{}", study.digest_line());
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub(super) enum StudiesCommand {
    /// List the studies with their names and protocols.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Name a study or change its protocol; what is not given keeps its value.
    Set {
        study: String,
        /// A name for the study (`--label ""` clears it).
        #[arg(long)]
        label: Option<String>,
        /// Wear minutes that make a day valid (600 is 10 h, the NHANES convention).
        #[arg(long, value_name = "MINUTES")]
        valid_day_minutes: Option<u32>,
        /// Valid days a week needs to be compliant.
        #[arg(long, value_name = "DAYS")]
        valid_days_per_week: Option<u32>,
        /// Whether a compliant week also needs a valid Saturday or Sunday.
        #[arg(long, value_name = "true|false")]
        weekend_day_required: Option<bool>,
        /// Days without an upload after which a subject is silent.
        #[arg(long, value_name = "DAYS")]
        silent_after_days: Option<u32>,
        /// First day of monitoring (YYYY-MM-DD, or `none`).
        #[arg(long, value_name = "DATE", value_parser = date_or_none)]
        monitoring_from: Option<DateOrNone>,
        /// Last day of monitoring (YYYY-MM-DD, or `none`).
        #[arg(long, value_name = "DATE", value_parser = date_or_none)]
        monitoring_until: Option<DateOrNone>,
    },
}

/// A date, or `none` to clear it (clap reads `Option<Option<_>>` as an optional value).
#[derive(Debug, Clone)]
pub(super) struct DateOrNone(Option<NaiveDate>);

fn date_or_none(text: &str) -> Result<DateOrNone, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(DateOrNone(None));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| DateOrNone(Some(d)))
        .map_err(|_| format!("{text:?} is not a date: use YYYY-MM-DD, or `none`"))
}

pub(super) fn run(conn: &Connection, command: StudiesCommand) -> anyhow::Result<()> {
    match command {
        StudiesCommand::List { json } => {
            let list = studies::list(conn)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if list.is_empty() {
                println!("No studies yet.");
            }
            for s in list {
                let name = s.label.as_deref().map_or_else(String::new, |l| format!(" ({l})"));
                println!("study {}{name}: {} subjects; {}", s.study_id, s.subjects, describe(&s.protocol));
            }
            Ok(())
        }
        StudiesCommand::Set {
            study,
            label,
            valid_day_minutes,
            valid_days_per_week,
            weekend_day_required,
            silent_after_days,
            monitoring_from,
            monitoring_until,
        } => {
            if study.trim().is_empty() || study.len() > 128 || !study.chars().all(|c| c.is_ascii_graphic()) {
                bail!("{study:?} is not a study id");
            }
            let change = ProtocolChange {
                valid_day_minutes,
                valid_days_per_week,
                weekend_day_required,
                silent_after_days,
                monitoring_from: monitoring_from.map(|d| d.0),
                monitoring_until: monitoring_until.map(|d| d.0),
            };
            let label = label.map(|l| l.trim().to_string());
            if label.as_ref().is_some_and(|l| l.chars().count() > 100) {
                bail!("a study name has at most 100 characters");
            }
            // One transaction: a protocol refused leaves the name as it was too.
            let tx = cpwatch::store::immediate(conn)?;
            let p = protocols::change(&tx, &study, &change, Utc::now())?;
            if let Some(label) = &label {
                studies::set_label(&tx, &study, Some(label.as_str()).filter(|l| !l.is_empty()))?;
            }
            tx.commit()?;
            println!("study {study}: {}", describe(&p));
            Ok(())
        }
    }
}

/// A protocol in words.
fn describe(p: &Protocol) -> String {
    let mut text = format!(
        "a valid day has {} min ({:.1} h) of wear; {} valid day{} a week{}; silent after {} day{}",
        p.valid_day_minutes,
        f64::from(p.valid_day_minutes) / 60.0,
        p.valid_days_per_week,
        if p.valid_days_per_week == 1 { "" } else { "s" },
        if p.weekend_day_required { ", one of them a weekend day" } else { "" },
        p.silent_after_days,
        if p.silent_after_days == 1 { "" } else { "s" },
    );
    match (p.monitoring_from, p.monitoring_until) {
        (Some(from), Some(until)) => text.push_str(&format!("; monitoring {from} to {until}")),
        (Some(from), None) => text.push_str(&format!("; monitoring from {from}")),
        (None, Some(until)) => text.push_str(&format!("; monitoring until {until}")),
        (None, None) => {}
    }
    text
}

//! `cpwatch roster`: who a study expects, imported from a CSV file, beside who has sent.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use chrono::Utc;
use clap::Subcommand;
use rusqlite::{Connection, OptionalExtension as _};
use serde_json::json;

use cpwatch::store::roster::{self, RosterRow};

#[derive(Debug, Subcommand)]
pub(super) enum RosterCommand {
    /// Replace a study's roster with a CSV file's subjects. Columns: subject_id, and
    /// optionally label, enrolled_on and expected_until (YYYY-MM-DD); separated by `,` or
    /// `;`. A file with any bad row imports nothing, and every bad row is listed.
    Import {
        /// The study id CentrePoint shows, such as 189.
        study: String,
        /// The CSV file ('-' for stdin).
        file: PathBuf,
    },
    /// Show a study's roster, whether each subject has been seen in a delivery, and the
    /// subjects seen that are not on it.
    List {
        study: String,
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(conn: &Connection, command: RosterCommand) -> anyhow::Result<()> {
    match command {
        RosterCommand::Import { study, file } => {
            let study = study_id(&study)?;
            let bytes = if file.as_os_str() == "-" {
                let mut bytes = Vec::new();
                std::io::stdin().read_to_end(&mut bytes).context("cannot read the roster from stdin")?;
                bytes
            } else {
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?
            };
            let entries = roster::parse_csv(&bytes).with_context(|| {
                let name = if file.as_os_str() == "-" { "stdin".into() } else { file.display().to_string() };
                format!("{name} was not imported, the roster is unchanged")
            })?;
            let summary = roster::import(conn, study, &entries, Utc::now())?;
            println!(
                "Imported {} subjects into study {study} ({} added, {} updated, {} removed)",
                summary.total, summary.added, summary.updated, summary.removed
            );
            if !has_sent(conn, study)? {
                println!("Note: study {study} has sent no deliveries yet; check that this is the id CentrePoint shows.");
            }
        }
        RosterCommand::List { study, json } => {
            let study = study_id(&study)?;
            let rows = roster::list(conn, study)?;
            let unlisted = roster::unlisted(conn, study)?;
            if json {
                let value = json!({ "study_id": study, "roster": rows, "unlisted": unlisted });
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else if rows.is_empty() {
                println!(
                    "study {study} has no roster: import one with `cpwatch roster import {study} FILE.csv`"
                );
            } else {
                print_table(&rows, &unlisted);
            }
        }
    }
    Ok(())
}

/// A study id as CentrePoint shows it, trimmed.
fn study_id(text: &str) -> anyhow::Result<&str> {
    let id = text.trim();
    if !roster::is_plausible_id(id) {
        bail!(
            "{text:?} is not a study id: the id CentrePoint shows for the study, such as 189 \
             (printable text, at most {} characters)",
            roster::MAX_ID_CHARS
        );
    }
    Ok(id)
}

fn has_sent(conn: &Connection, study: &str) -> rusqlite::Result<bool> {
    let last: Option<i64> = conn
        .query_row("SELECT last_delivery_at FROM studies WHERE study_id = ?1", [study], |row| row.get(0))
        .optional()?;
    Ok(last.is_some_and(|at| at > 0))
}

fn print_table(rows: &[RosterRow], unlisted: &[String]) {
    let dash = |text: Option<String>| text.unwrap_or_else(|| "-".to_string());
    let mut lines: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.entry.subject_id.clone(),
                dash(r.entry.label.clone()),
                dash(r.entry.enrolled_on.map(|d| d.to_string())),
                dash(r.entry.expected_until.map(|d| d.to_string())),
                (if r.seen { "yes" } else { "no" }).to_string(),
                String::new(),
            ]
        })
        .collect();
    lines.extend(unlisted.iter().map(|id| {
        let dash = || "-".to_string();
        [id.clone(), dash(), dash(), dash(), "yes".to_string(), "not on the roster".to_string()]
    }));
    let header = ["subject", "label", "enrolled on", "expected until", "seen in deliveries", ""];
    let mut widths = header.map(str::len);
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let print = |cells: [&str; 6]| {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            text.push_str(&format!("{cell:<width$}  "));
        }
        println!("{}", text.trim_end());
    };
    print(header);
    for line in &lines {
        print(line.each_ref().map(String::as_str));
    }
}

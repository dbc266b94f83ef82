//! `cpwatch uploads`, `deliveries`, `refused` and `export`: what has been received.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{anyhow, Context as _};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use rusqlite::Connection;

use cpwatch::event;
use cpwatch::export::{self, Format};
use cpwatch::store::listing::{self, Bound, BoundError};
use cpwatch::store::{self, deliveries, refused, uploads};

#[derive(Debug, Subcommand)]
pub(super) enum UploadsCommand {
    /// List uploads, most recently changed first.
    List,
    /// Show one upload: its state and the timeline of its deliveries.
    Show {
        study: String,
        upload: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum DeliveriesCommand {
    /// List deliveries, newest first.
    List,
    /// Show one delivery whole, by its number (as listed) or its delivery id.
    Show {
        key: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(super) struct FilterArgs {
    #[arg(long, global = true)]
    study: Option<String>,
    #[arg(long, global = true)]
    subject: Option<String>,
    #[arg(long, global = true)]
    status: Option<String>,
    /// Event type (deliveries only).
    #[arg(long, global = true)]
    event: Option<String>,
    /// From this time: a date (2026-11-01: from the start of that day, local time), an
    /// RFC 3339 time, or a span back from now (30m, 24h, 7d).
    #[arg(long, global = true, value_parser = since)]
    since: Option<DateTime<Utc>>,
    /// Before this time (the same forms; a date means through the end of that day).
    #[arg(long, global = true, value_parser = until)]
    until: Option<DateTime<Utc>>,
    #[arg(long, global = true, default_value_t = 50)]
    limit: u32,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

impl FilterArgs {
    fn filter(&self) -> store::Filter {
        store::Filter {
            study: self.study.clone(),
            subject: self.subject.clone(),
            status: self.status.clone(),
            event: self.event.clone(),
            since: self.since,
            until: self.until,
            limit: Some(self.limit),
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct ExportArgs {
    #[arg(long, value_parser = super::one_of(&Format::ALL, Format::extension, |_| None))]
    format: Format,
    /// Only this study.
    #[arg(long)]
    study: Option<String>,
    /// From this time (the same forms as for `cpwatch uploads --since`).
    #[arg(long, value_parser = since)]
    since: Option<DateTime<Utc>>,
    /// Before this time (a date means through the end of that day).
    #[arg(long, value_parser = until)]
    until: Option<DateTime<Utc>>,
    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

fn since(text: &str) -> Result<DateTime<Utc>, BoundError> {
    listing::parse_bound(text, Bound::Since, Utc::now())
}

fn until(text: &str) -> Result<DateTime<Utc>, BoundError> {
    listing::parse_bound(text, Bound::Until, Utc::now())
}

pub(super) fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// Prints `rows` as JSON with `--json`, or `none` when there are none; true when the
/// caller is left to print them as a table.
fn table_wanted<T: serde::Serialize>(rows: &[T], json: bool, none: &str) -> anyhow::Result<bool> {
    if json {
        println!("{}", serde_json::to_string_pretty(rows)?);
    } else if rows.is_empty() {
        println!("{none}");
    }
    Ok(!json && !rows.is_empty())
}

pub(super) fn list_uploads(conn: &Connection, args: &FilterArgs) -> anyhow::Result<()> {
    let rows = uploads::list(conn, &args.filter())?;
    if !table_wanted(&rows, args.json, "no uploads match")? {
        return Ok(());
    }
    println!(
        "{:<19}  {:<8} {:<10} {:<10} {:<9} {:>8}  error",
        "updated (UTC)", "study", "subject", "upload", "status", "duration"
    );
    for r in rows {
        println!(
            "{:<19}  {:<8} {:<10} {:<10} {:<9} {:>8}  {}",
            time(Some(r.updated_at)),
            r.study_id,
            r.state.subject_id.as_deref().unwrap_or("-"),
            r.upload_id,
            r.state.status.as_str(),
            r.duration_seconds.map_or_else(|| "-".into(), |s| format!("{s}s")),
            r.state
                .error_message
                .as_deref()
                .filter(|_| r.state.status == event::UploadStatus::Error)
                .unwrap_or("")
        );
    }
    Ok(())
}

pub(super) fn show_upload(conn: &Connection, study: &str, upload: &str, json: bool) -> anyhow::Result<()> {
    let row =
        uploads::get(conn, study, upload)?.ok_or_else(|| anyhow!("no upload {upload} in study {study}"))?;
    let timeline = deliveries::timeline(conn, study, upload)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "upload": row, "timeline": timeline }))?
        );
        return Ok(());
    }
    let s = &row.state;
    println!(
        "upload {} in study {} (subject {})",
        row.upload_id,
        row.study_id,
        s.subject_id.as_deref().unwrap_or("-")
    );
    println!("status:     {}", s.status.as_str());
    println!("started:    {}", time(s.started_at));
    println!("completed:  {}", time(s.completed_at));
    println!("failed:     {}", time(s.failed_at));
    if let Some(message) = &s.error_message {
        println!("error:      {message}");
    }
    if s.first_epoch_utc.is_some() || s.first_epoch_subject_tz.is_some() {
        println!("epochs UTC: {} .. {}", time(s.first_epoch_utc), time(s.last_epoch_utc));
        let local = |t: Option<chrono::NaiveDateTime>| {
            t.map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        };
        println!("subject TZ: {} .. {}", local(s.first_epoch_subject_tz), local(s.last_epoch_subject_tz));
    }
    println!("timeline:");
    for d in timeline {
        let dup = if d.duplicates > 0 { format!(" (+{} retries)", d.duplicates) } else { String::new() };
        println!(
            "  #{:<6} {}  {:<9} {}{dup}",
            d.seq,
            time(Some(d.received_at)),
            d.status.as_deref().unwrap_or("-"),
            d.delivery_id
        );
    }
    Ok(())
}

pub(super) fn list_deliveries(conn: &Connection, args: &FilterArgs) -> anyhow::Result<()> {
    let rows = deliveries::list(conn, &args.filter())?;
    if !table_wanted(&rows, args.json, "no deliveries match")? {
        return Ok(());
    }
    println!("{:<7} {:<19}  {:<26} {:<15} summary", "#", "received (UTC)", "event", "flag");
    for d in rows {
        let dup = if d.duplicates > 0 { format!(" (+{} retries)", d.duplicates) } else { String::new() };
        println!(
            "{:<7} {:<19}  {:<26} {:<15} {}{dup}",
            d.seq,
            time(Some(d.received_at)),
            d.event,
            d.flag.as_deref().unwrap_or("-"),
            d.summary
        );
    }
    Ok(())
}

pub(super) fn show_delivery(conn: &Connection, key: &str, json: bool) -> anyhow::Result<()> {
    let d = deliveries::get(conn, key)?.ok_or_else(|| anyhow!("no delivery {key}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(());
    }
    let r = &d.row;
    println!("delivery #{} ({})", r.seq, r.delivery_id);
    println!("event:     {}", r.event);
    println!("webhook:   {}", r.webhook_id.as_deref().unwrap_or("-"));
    println!("received:  {} from {}", time(Some(r.received_at)), r.peer.as_deref().unwrap_or("-"));
    println!("auth:      {}", r.auth);
    println!("summary:   {}", r.summary);
    if let Some(flag) = &r.flag {
        println!("flag:      {flag}: {}", r.problem.as_deref().unwrap_or(""));
    }
    if r.duplicates > 0 {
        println!("retries:   {} (last {})", r.duplicates, time(r.last_duplicate_at));
    }
    println!("headers:");
    for (name, value) in &d.headers {
        println!("  {name}: {value}");
    }
    println!("body:");
    match (&d.body, &d.body_base64) {
        (Some(text), _) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) => println!("{}", serde_json::to_string_pretty(&v)?),
            Err(_) => println!("{text}"),
        },
        (None, Some(b64)) => println!("(not UTF-8; base64) {b64}"),
        (None, None) => {}
    }
    Ok(())
}

pub(super) fn list_refused(conn: &Connection, limit: u32, json: bool) -> anyhow::Result<()> {
    let rows = refused::list(conn, limit, None)?;
    if !table_wanted(&rows, json, "no refused requests")? {
        return Ok(());
    }
    for r in rows {
        println!(
            "{}  {} {} {}  from {}  {}",
            time(Some(r.received_at)),
            r.status,
            r.method,
            r.path,
            r.peer.as_deref().unwrap_or("-"),
            r.reason
        );
    }
    Ok(())
}

pub(super) fn export(conn: &Connection, args: &ExportArgs) -> anyhow::Result<()> {
    let filter = store::Filter {
        study: args.study.clone(),
        since: args.since,
        until: args.until,
        ..Default::default()
    };
    let rows = uploads::list(conn, &filter)?;
    match &args.output {
        Some(path) => {
            let file =
                std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            export::write(&mut out, &rows, args.format)?;
            out.flush()?;
            eprintln!("exported {} upload(s) to {}", rows.len(), path.display());
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            export::write(&mut out, &rows, args.format)?;
            out.flush()?;
        }
    }
    Ok(())
}

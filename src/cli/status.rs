//! `cpwatch status`: the receiver, its data, and counts at a glance.

use chrono::Utc;

use super::history::time;
use cpwatch::config::Config;
use cpwatch::reach::{PublicUrl, ReachStatus, Reachability, Source};
use cpwatch::store::{self, settings, status, uptime, webhooks};

pub(super) fn run(config: &Config, json: bool) -> anyhow::Result<()> {
    let dir = config.data_dir()?;
    let conn = store::open_in(&dir)?;
    let counts = status::counts(&conn, Utc::now())?;
    let hooks = webhooks::list(&conn)?;
    let running = store::running_receiver(&dir)?;
    let auth_off = hooks.is_empty();
    let url = running
        .as_ref()
        .and_then(|r| r.url.clone())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| config.local_webhook_url(config.listen));
    let reach = reach_status(&conn, config, running.is_some())?;
    let downtime = uptime::downtime(&conn)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "receiver": {
                    "running": running.is_some(),
                    "pid": running.as_ref().and_then(|r| r.pid),
                    "url": url,
                    // Kept as it was (a string) for scripts; `public_url` says more.
                    "public_url": reach.public_url.as_ref().map(|p| p.url.clone()),
                },
                "public_url": reach.public_url,
                "reachability": reach.reachability,
                "validation": reach.validation,
                "url_change": reach.url_change,
                "tunnel": reach.tunnel,
                "downtime": downtime,
                "data_dir": dir,
                // The database's schema (migrations applied), for support and upgrades.
                "schema_version": store::SCHEMA_VERSION,
                "authentication_off": auth_off,
                "webhooks": hooks,
                "counts": counts,
            }))?
        );
        return Ok(());
    }
    match running {
        Some(r) => println!(
            "receiver:        running{} at {url}",
            r.pid.map_or_else(String::new, |p| format!(" (pid {p})"))
        ),
        None => {
            println!("receiver:        not running (start it with `cpwatch serve`); configured for {url}")
        }
    }
    match &reach.public_url {
        Some(public) => println!("public URL:      {} ({})", public.url, public.source.describe()),
        None => println!("public URL:      none known (start a tunnel, or set public_url)"),
    }
    println!("reachability:    {}", reach.in_words());
    if let Some(checked) = reach.reachability.checked_at {
        println!("                 last probed {}", time(Some(checked)));
    }
    match &reach.validation {
        Some(v) if v.at_this_url => println!("validation:      validated at this URL"),
        Some(_) => println!("validation:      not yet validated at this URL"),
        None => {}
    }
    if let Some(change) = &reach.url_change {
        println!("\n{}\n", change.message);
    }
    if let Some(problem) = reach.tunnel.as_ref().and_then(|t| t.get("problem")).and_then(|p| p.as_str()) {
        println!("tunnel:          {problem}");
    }
    for gap in downtime.iter().take(5) {
        println!(
            "downtime:        {} to {}: {}",
            time(Some(gap.from)),
            gap.to.map_or_else(|| "now".to_string(), |t| time(Some(t))),
            gap.reason
        );
    }
    if let Some(gap) = downtime.first() {
        println!("                 {}", uptime::advice(gap, Utc::now()));
    }
    println!("data:            {} (schema {})", dir.display(), store::SCHEMA_VERSION);
    if auth_off {
        println!("authentication:  OFF: anyone who knows the URL can post deliveries (cpwatch webhooks add <id> --auth passcode)");
    } else {
        println!("authentication:  {} webhook(s) configured", hooks.len());
    }
    println!(
        "last delivery:   {}",
        counts
            .last_delivery_at
            .map_or_else(|| "none yet".into(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
    );
    println!(
        "deliveries:      {} stored, {} retries recognised, {} flagged",
        counts.deliveries, counts.duplicates, counts.flagged
    );
    println!(
        "uploads:         {} completed, {} failed, {} started (in {} studies, {} subjects)",
        counts.uploads_completed,
        counts.uploads_error,
        counts.uploads_started,
        counts.studies,
        counts.subjects
    );
    println!("refused (24 h):  {}", counts.refused_last_day);
    if let Some(v) = &counts.last_validation {
        println!(
            "last validation: {} webhook {}: {}",
            time(Some(v.received_at)),
            v.webhook_id.as_deref().unwrap_or("-"),
            v.auth
        );
    }
    Ok(())
}

/// What the running receiver last knew; with none running, the configured URL and an
/// unknown reachability.
fn reach_status(conn: &rusqlite::Connection, config: &Config, running: bool) -> anyhow::Result<ReachStatus> {
    let kept = settings::reach_status(conn)?.and_then(|v| serde_json::from_value::<ReachStatus>(v).ok());
    if let (true, Some(kept)) = (running, kept) {
        return Ok(kept);
    }
    let prefs = settings::preferences(conn)?;
    let mut status = ReachStatus::initial(config.probe_interval_secs, Utc::now());
    status.public_url = prefs
        .public_url_or(config.public_url.as_deref())
        .map(|url| PublicUrl::new(&url, &config.webhook_path, Source::Config));
    status.reachability = Reachability::unknown(if running {
        "the receiver has not probed its public URL yet"
    } else {
        "cpwatch is not running: CentrePoint cannot reach it"
    });
    Ok(status)
}

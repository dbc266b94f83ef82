//! `cpwatch status`: the receiver, its data, and counts at a glance.

use chrono::Utc;

use super::history::time;
use cpwatch::config::Config;
use cpwatch::store::{self, status, webhooks};

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
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "receiver": {
                    "running": running.is_some(),
                    "pid": running.as_ref().and_then(|r| r.pid),
                    "url": url,
                    "public_url": config.public_url,
                },
                "data_dir": dir,
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
    if let Some(public) = &config.public_url {
        println!("public URL:      {public}");
    }
    println!("data:            {}", dir.display());
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

//! `cpwatch webhooks`: authentication per webhook id, secrets never on the command line.

use anyhow::{anyhow, bail};
use clap::Subcommand;
use rusqlite::Connection;

use super::read_secret;
use cpwatch::receive::auth::{AuthMethod, AuthMode, WebhookId};
use cpwatch::store::webhooks;

#[derive(Debug, Subcommand)]
pub(super) enum WebhooksCommand {
    /// Add a webhook or replace its authentication. Secrets are read from an environment
    /// variable (--secret-env), stdin (--secret-stdin) or a prompt, never from the command line.
    Add {
        /// The webhook id CentrePoint sends (X-ActiGraph-Webhook-Id), or `default` for ids not configured.
        id: String,
        #[arg(long, value_parser = super::one_of(&AuthMode::ALL, AuthMode::as_str, |_| None))]
        auth: AuthMode,
        /// A name for the study this webhook belongs to.
        #[arg(long)]
        label: Option<String>,
        /// User name, for --auth basic.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, value_name = "VAR", conflicts_with = "secret_stdin")]
        secret_env: Option<String>,
        #[arg(long)]
        secret_stdin: bool,
    },
    /// List configured webhooks (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one webhook (never its secret).
    Show { id: String },
    /// Remove a webhook's configuration.
    Remove { id: String },
}

pub(super) fn run(conn: &Connection, command: WebhooksCommand) -> anyhow::Result<()> {
    match command {
        WebhooksCommand::Add { id, auth, label, user, secret_env, secret_stdin } => {
            let id = WebhookId::parse(&id)?;
            let method = match auth {
                AuthMode::None => AuthMethod::None,
                AuthMode::Passcode => AuthMethod::Passcode(read_secret(
                    secret_env.as_deref(),
                    secret_stdin,
                    "signing passcode",
                )?),
                AuthMode::Bearer => {
                    AuthMethod::Bearer(read_secret(secret_env.as_deref(), secret_stdin, "bearer token")?)
                }
                AuthMode::Basic => {
                    let user = user.ok_or_else(|| anyhow!("--auth basic needs --user"))?;
                    AuthMethod::Basic {
                        user,
                        password: read_secret(secret_env.as_deref(), secret_stdin, "password")?,
                    }
                }
            };
            webhooks::put(conn, id.as_str(), label.as_deref(), &method)?;
            let which =
                if id.is_default() { "default authentication".to_string() } else { format!("webhook {id}") };
            println!("{which}: {} (a running receiver picks this up within a second)", auth.as_str());
        }
        WebhooksCommand::List { json } => {
            let all = webhooks::list(conn)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!(
                    "no webhooks configured: the receiver accepts every delivery (authentication is off)"
                );
            } else {
                println!("{:<10} {:<9} {:<12} {:<24} label", "webhook", "auth", "user", "updated");
                for w in all {
                    println!(
                        "{:<10} {:<9} {:<12} {:<24} {}",
                        w.webhook_id,
                        w.auth_mode.as_str(),
                        w.basic_user.as_deref().unwrap_or("-"),
                        w.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
                        w.label.as_deref().unwrap_or("")
                    );
                }
            }
        }
        WebhooksCommand::Show { id } => {
            let w = webhooks::get(conn, &id)?.ok_or_else(|| anyhow!("webhook {id} is not configured"))?;
            println!("webhook:  {}", w.webhook_id);
            println!("label:    {}", w.label.as_deref().unwrap_or("-"));
            println!("auth:     {}", w.auth_mode.as_str());
            if let Some(user) = &w.basic_user {
                println!("user:     {user}");
            }
            println!("secret:   {}", if w.secret_set { "set (never shown)" } else { "none" });
            println!("updated:  {}", w.updated_at.format("%Y-%m-%d %H:%M:%S UTC"));
        }
        WebhooksCommand::Remove { id } => {
            if !webhooks::remove(conn, &id)? {
                bail!("webhook {id} is not configured");
            }
            println!("webhook {id} removed");
        }
    }
    Ok(())
}

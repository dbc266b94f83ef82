//! Configuration: defaults, then the TOML file, then `CPWATCH_*` environment variables,
//! then command-line flags.
//!
//! The file is `--config` (or `CPWATCH_CONFIG`); else, under systemd, the unit's
//! configuration directory (`$CONFIGURATION_DIRECTORY/config.toml`: `/etc/cpwatch` for the
//! packaged service); else the user's (`~/.config/cpwatch/config.toml`) when it exists;
//! else the system's ([`SYSTEM_CONFIG_FILE`]) when it exists. The data directory is the
//! configured one; else the unit's state directory (`$STATE_DIRECTORY`); else the user's
//! when it exists; else the packaged service's ([`SYSTEM_DATA_DIR`]) when this user can
//! list it (an admin: `sudo cpwatch status` shows the service); else the user's, created
//! on first use.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::reach::tunnel::TunnelKind;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the configuration file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}={value:?} is not valid: {message}")]
    Env { name: String, value: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("no home directory is known; set --data-dir or CPWATCH_DATA_DIR")]
    NoHome,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port the receiver listens on.
    pub listen: SocketAddr,
    /// Path that accepts deliveries.
    pub webhook_path: String,
    /// Address and port of the dashboard; always a loopback address.
    pub dashboard_listen: SocketAddr,
    /// The public URL a tunnel gives the receiver, shown to the user (optional).
    pub public_url: Option<String>,
    /// Where the database lives; the platform data directory when unset.
    pub data_dir: Option<PathBuf>,
    /// Largest body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Time a client has to send its request headers (also the keep-alive idle time).
    pub header_timeout_secs: u64,
    /// Time a client has to send its whole body.
    pub body_timeout_secs: u64,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Record `X-Forwarded-For` / `CF-Connecting-IP` as the client address: only
    /// meaningful behind a tunnel or proxy that sets them.
    pub trust_forwarded_headers: bool,
    /// How many refused requests the log keeps (newest first).
    pub refused_log_size: usize,
    /// How often the public URL is probed, in seconds (also at once after it changes).
    pub probe_interval_secs: u64,
    /// How often tunnels' local APIs are asked for the public URL, in seconds (also after
    /// each failed probe).
    pub discovery_interval_secs: u64,
    /// A PEM file of certificates the probe trusts besides the system's (a lab proxy's CA).
    pub extra_ca_file: Option<PathBuf>,
    /// Where the ngrok agent's local API answers (its `web_addr`).
    pub ngrok_web_addr: String,
    /// Where cloudflared's metrics server answers; the first of 127.0.0.1:20241-20245
    /// that answers when unset.
    pub cloudflared_metrics: Option<String>,
    /// A tunnel cpwatch runs and supervises: "cloudflared" or "ngrok".
    pub tunnel: Option<TunnelKind>,
    /// More arguments for that tunnel, e.g. `["--url", "name.ngrok-free.app"]`.
    pub tunnel_args: Vec<String>,
    /// The tunnel's program, when it is not on PATH under its usual name.
    pub tunnel_program: Option<PathBuf>,
    /// `cpwatch serve` writes each study's morning digest to its log at the digest's time
    /// (Settings; 08:00 unless changed). Off by default: a server has no one to show it
    /// to unless its log is read. The desktop app shows it as a notification instead.
    pub digest_log: bool,
    /// The systemd unit's state directory (`$STATE_DIRECTORY`), below `data_dir`.
    #[serde(skip)]
    pub unit_state_dir: Option<PathBuf>,
}

/// The packaged service's configuration file (the Debian package's conffile).
pub const SYSTEM_CONFIG_FILE: &str = "/etc/cpwatch/config.toml";
/// The packaged service's data directory (its unit's `StateDirectory=cpwatch`).
pub const SYSTEM_DATA_DIR: &str = "/var/lib/cpwatch";

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            webhook_path: "/webhook".into(),
            dashboard_listen: SocketAddr::from(([127, 0, 0, 1], 8788)),
            public_url: None,
            data_dir: None,
            max_body_bytes: 1024 * 1024,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            max_connections: 256,
            trust_forwarded_headers: false,
            refused_log_size: 1000,
            probe_interval_secs: 300,
            discovery_interval_secs: 180,
            extra_ca_file: None,
            ngrok_web_addr: "127.0.0.1:4040".into(),
            cloudflared_metrics: None,
            tunnel: None,
            tunnel_args: Vec::new(),
            tunnel_program: None,
            digest_log: false,
            unit_state_dir: None,
        }
    }
}

/// The user's configuration file: `$XDG_CONFIG_HOME/cpwatch/config.toml` on Linux.
pub fn default_config_file() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("cpwatch").join("config.toml"))
}

/// The first directory of a systemd directory variable (they hold a colon-separated list).
fn unit_dir(env: &impl Fn(&str) -> Option<String>, name: &str) -> Option<PathBuf> {
    let value = env(name)?;
    value.split(':').find(|d| !d.is_empty()).map(PathBuf::from)
}

/// The configuration file to read when none is given: see the module's documentation.
fn lookup_config_file(
    env: &impl Fn(&str) -> Option<String>,
    user: Option<PathBuf>,
    system: &Path,
) -> Option<PathBuf> {
    if let Some(dir) = unit_dir(env, "CONFIGURATION_DIRECTORY") {
        return Some(dir.join("config.toml"));
    }
    match user {
        Some(user) if user.exists() => Some(user),
        _ if system.exists() => Some(system.to_path_buf()),
        user => user,
    }
}

/// The data directory when none is configured: see the module's documentation.
fn lookup_data_dir(unit: Option<&Path>, user: Option<PathBuf>, system: &Path) -> Option<PathBuf> {
    if let Some(dir) = unit {
        return Some(dir.to_path_buf());
    }
    let user_has_data = user.as_deref().is_some_and(Path::exists);
    // Listing it, not only seeing it: the service's directory is owner-only, so only
    // its user and root get this far (the package creates it before the first start).
    if !user_has_data && std::fs::read_dir(system).is_ok() {
        return Some(system.to_path_buf());
    }
    user
}

impl Config {
    /// Loads the file (when `explicit`, it must exist) and applies the environment.
    pub fn load(file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let (path, required) = match file {
            Some(p) => (Some(p.to_path_buf()), true),
            None => (lookup_config_file(&env, default_config_file(), Path::new(SYSTEM_CONFIG_FILE)), false),
        };
        let mut config = match path {
            Some(path) if required || path.exists() => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError::Parse { path, message: e.message().to_string() })?
            }
            _ => Config::default(),
        };
        config.unit_state_dir = unit_dir(&env, "STATE_DIRECTORY");
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.trim().parse().map_err(|e: T::Err| ConfigError::Env {
                name: name.into(),
                message: e.to_string(),
                value,
            })
        }
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        if let Some(v) = var("CPWATCH_LISTEN") {
            self.listen = parse("CPWATCH_LISTEN", v)?;
        }
        if let Some(v) = var("CPWATCH_DASHBOARD_LISTEN") {
            self.dashboard_listen = parse("CPWATCH_DASHBOARD_LISTEN", v)?;
        }
        if let Some(v) = var("CPWATCH_WEBHOOK_PATH") {
            self.webhook_path = v;
        }
        if let Some(v) = var("CPWATCH_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(v) = var("CPWATCH_DATA_DIR") {
            self.data_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = var("CPWATCH_MAX_BODY_BYTES") {
            self.max_body_bytes = parse("CPWATCH_MAX_BODY_BYTES", v)?;
        }
        if let Some(v) = var("CPWATCH_HEADER_TIMEOUT_SECS") {
            self.header_timeout_secs = parse("CPWATCH_HEADER_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = var("CPWATCH_BODY_TIMEOUT_SECS") {
            self.body_timeout_secs = parse("CPWATCH_BODY_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = var("CPWATCH_MAX_CONNECTIONS") {
            self.max_connections = parse("CPWATCH_MAX_CONNECTIONS", v)?;
        }
        if let Some(v) = var("CPWATCH_TRUST_FORWARDED_HEADERS") {
            self.trust_forwarded_headers = parse("CPWATCH_TRUST_FORWARDED_HEADERS", v)?;
        }
        if let Some(v) = var("CPWATCH_REFUSED_LOG_SIZE") {
            self.refused_log_size = parse("CPWATCH_REFUSED_LOG_SIZE", v)?;
        }
        if let Some(v) = var("CPWATCH_PROBE_INTERVAL_SECS") {
            self.probe_interval_secs = parse("CPWATCH_PROBE_INTERVAL_SECS", v)?;
        }
        if let Some(v) = var("CPWATCH_DISCOVERY_INTERVAL_SECS") {
            self.discovery_interval_secs = parse("CPWATCH_DISCOVERY_INTERVAL_SECS", v)?;
        }
        if let Some(v) = var("CPWATCH_EXTRA_CA_FILE") {
            self.extra_ca_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("CPWATCH_NGROK_WEB_ADDR") {
            self.ngrok_web_addr = v;
        }
        if let Some(v) = var("CPWATCH_CLOUDFLARED_METRICS") {
            self.cloudflared_metrics = Some(v);
        }
        if let Some(v) = var("CPWATCH_TUNNEL") {
            self.tunnel = Some(parse("CPWATCH_TUNNEL", v)?);
        }
        if let Some(v) = var("CPWATCH_TUNNEL_PROGRAM") {
            self.tunnel_program = Some(PathBuf::from(v));
        }
        if let Some(v) = var("CPWATCH_DIGEST_LOG") {
            self.digest_log = parse("CPWATCH_DIGEST_LOG", v)?;
        }
        Ok(())
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let path = &self.webhook_path;
        if !path.starts_with('/') || path.len() < 2 || path.contains(['?', '#', ' ']) {
            return Err(ConfigError::Invalid(format!(
                "webhook_path {path:?} must be an absolute path such as \"/webhook\""
            )));
        }
        if path == "/healthz" {
            return Err(ConfigError::Invalid("webhook_path cannot be /healthz".into()));
        }
        if !self.dashboard_listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "dashboard_listen {} must be a loopback address such as 127.0.0.1:8788: the dashboard shows study data",
                self.dashboard_listen
            )));
        }
        if self.dashboard_listen.port() != 0 && self.dashboard_listen == self.listen {
            return Err(ConfigError::Invalid("the dashboard and the receiver need different ports".into()));
        }
        if self.max_body_bytes == 0 || self.max_connections == 0 {
            return Err(ConfigError::Invalid("max_body_bytes and max_connections must be above zero".into()));
        }
        if self.header_timeout_secs == 0 || self.body_timeout_secs == 0 {
            return Err(ConfigError::Invalid("timeouts must be at least one second".into()));
        }
        if let Some(url) = &self.public_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError::Invalid(format!("public_url {url:?} must start with https://")));
            }
        }
        if self.probe_interval_secs == 0 || self.discovery_interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "probe_interval_secs and discovery_interval_secs must be at least one second".into(),
            ));
        }
        let host_port =
            |addr: &str| addr.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok());
        if !host_port(&self.ngrok_web_addr) {
            return Err(ConfigError::Invalid(format!(
                "ngrok_web_addr {:?} must be a host and port such as 127.0.0.1:4040",
                self.ngrok_web_addr
            )));
        }
        if let Some(addr) = self.cloudflared_metrics.as_deref().filter(|a| !host_port(a)) {
            return Err(ConfigError::Invalid(format!(
                "cloudflared_metrics {addr:?} must be a host and port such as 127.0.0.1:20241"
            )));
        }
        Ok(())
    }

    /// The data directory: configured, else the unit's, the user's (`$XDG_DATA_HOME/cpwatch`
    /// on Linux) or the service's, as the module's documentation says.
    pub fn data_dir(&self) -> Result<PathBuf, ConfigError> {
        match &self.data_dir {
            Some(dir) => Ok(dir.clone()),
            None => lookup_data_dir(
                self.unit_state_dir.as_deref(),
                dirs::data_dir().map(|d| d.join("cpwatch")),
                Path::new(SYSTEM_DATA_DIR),
            )
            .ok_or(ConfigError::NoHome),
        }
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }

    /// The cloudflared metrics addresses to ask for a quick tunnel's URL.
    pub fn cloudflared_metrics_addrs(&self) -> Vec<String> {
        match &self.cloudflared_metrics {
            Some(addr) => vec![addr.clone()],
            None => crate::reach::discover::cloudflared_default_addrs(),
        }
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }

    /// The local URL deliveries are posted to.
    pub fn local_webhook_url(&self, bound: SocketAddr) -> String {
        let host = if bound.ip().is_unspecified() {
            SocketAddr::new([127, 0, 0, 1].into(), bound.port())
        } else {
            bound
        };
        format!("http://{host}{}", self.webhook_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn environment_overrides_the_file_and_the_defaults() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9000\"\nmax_body_bytes = 2048\n").expect("write config");
        let config =
            Config::load(Some(&file), env_of(&[("CPWATCH_LISTEN", "127.0.0.1:9100")])).expect("loads");
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 9100)), "env beats file");
        assert_eq!(config.max_body_bytes, 2048, "file beats default");
        assert_eq!(config.webhook_path, "/webhook", "default kept");
    }

    #[test]
    fn malformed_configuration_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "listen = 8787\n").expect("write config");
        let err = Config::load(Some(&file), env_of(&[])).expect_err("a number is no address");
        assert!(err.to_string().contains("config.toml"), "{err}");
        std::fs::write(&file, "lisen = \"127.0.0.1:1\"\n").expect("write config");
        let err = Config::load(Some(&file), env_of(&[])).expect_err("an unknown key is refused");
        assert!(err.to_string().contains("lisen"), "{err}");
        let err = Config::load(None, env_of(&[("CPWATCH_LISTEN", "nowhere")])).expect_err("bad env");
        assert!(err.to_string().contains("CPWATCH_LISTEN"), "{err}");
        let missing = dir.path().join("missing.toml");
        assert!(Config::load(Some(&missing), env_of(&[])).is_err(), "an explicit file must exist");
    }

    #[test]
    fn the_unit_then_the_user_then_the_system_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let user = dir.path().join("user.toml");
        let system = dir.path().join("system.toml");
        let none = env_of(&[]);
        assert_eq!(
            lookup_config_file(&none, Some(user.clone()), &system),
            Some(user.clone()),
            "nothing exists"
        );
        std::fs::write(&system, "").expect("write");
        assert_eq!(
            lookup_config_file(&none, Some(user.clone()), &system),
            Some(system.clone()),
            "system only"
        );
        std::fs::write(&user, "").expect("write");
        assert_eq!(lookup_config_file(&none, Some(user.clone()), &system), Some(user.clone()), "user first");
        let unit = env_of(&[("CONFIGURATION_DIRECTORY", "/etc/cpwatch:/etc/other")]);
        assert_eq!(
            lookup_config_file(&unit, Some(user), &system),
            Some(PathBuf::from("/etc/cpwatch/config.toml")),
            "systemd's directory first"
        );
    }

    #[test]
    fn the_unit_then_the_user_then_the_service_data() {
        let dir = tempfile::tempdir().expect("temp dir");
        let user = dir.path().join("user");
        let system = dir.path().join("system");
        assert_eq!(lookup_data_dir(None, Some(user.clone()), &system), Some(user.clone()), "no service data");
        std::fs::create_dir(&system).expect("mkdir");
        assert_eq!(lookup_data_dir(None, Some(user.clone()), &system), Some(system.clone()), "the service's");
        std::fs::create_dir(&user).expect("mkdir");
        assert_eq!(
            lookup_data_dir(None, Some(user.clone()), &system),
            Some(user.clone()),
            "the user's own first"
        );
        let unit = Path::new("/var/lib/cpwatch");
        assert_eq!(lookup_data_dir(Some(unit), Some(user), &system), Some(unit.to_path_buf()), "the unit's");
        // (An empty unit configuration directory, so that no file on this machine is read.)
        let config = Config::load(
            None,
            env_of(&[("CONFIGURATION_DIRECTORY", "/nonexistent"), ("STATE_DIRECTORY", "/srv/state")]),
        )
        .expect("loads");
        assert_eq!(config.data_dir().expect("a directory"), PathBuf::from("/srv/state"));
        let config = Config::load(
            None,
            env_of(&[
                ("CONFIGURATION_DIRECTORY", "/nonexistent"),
                ("STATE_DIRECTORY", "/srv/state"),
                ("CPWATCH_DATA_DIR", "/srv/mine"),
            ]),
        )
        .expect("loads");
        assert_eq!(
            config.data_dir().expect("a directory"),
            PathBuf::from("/srv/mine"),
            "the environment wins"
        );
    }
}

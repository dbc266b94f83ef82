//! Stand-in until the tunnel supervisor lands (same signatures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelKind {
    Cloudflared,
    Ngrok,
}
pub struct TunnelSpec {
    pub kind: TunnelKind,
    pub program: Option<std::path::PathBuf>,
    pub args: Vec<String>,
    pub listen: std::net::SocketAddr,
    pub ngrok_web_addr: String,
}
pub enum UrlSource {
    Cloudflared { metrics: String },
    Ngrok { web_addr: String, port: u16 },
}
#[derive(Debug, Clone, serde::Serialize)]
pub struct TunnelStatus {
    pub running: bool,
}
pub struct Tunnel {
    spec: TunnelSpec,
    changes: tokio::sync::watch::Receiver<u64>,
}
impl Tunnel {
    pub fn start(spec: TunnelSpec) -> Tunnel {
        let (_tx, changes) = tokio::sync::watch::channel(0);
        Tunnel { spec, changes }
    }
    pub fn status(&self) -> TunnelStatus {
        TunnelStatus { running: false }
    }
    pub fn url_source(&self) -> UrlSource {
        UrlSource::Ngrok { web_addr: self.spec.ngrok_web_addr.clone(), port: self.spec.listen.port() }
    }
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.clone()
    }
    pub async fn stop(&self) {}
}
impl std::str::FromStr for TunnelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cloudflared" => Ok(TunnelKind::Cloudflared),
            "ngrok" => Ok(TunnelKind::Ngrok),
            _ => Err(format!("unknown tunnel {s:?}")),
        }
    }
}

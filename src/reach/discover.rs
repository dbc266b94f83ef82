//! Reading a tunnel's public URL from the local API of the program that runs it: the
//! ngrok agent's `/api/tunnels` and cloudflared's metrics server `/quicktunnel`.
//!
//! Both APIs are plain HTTP on loopback and are asked often, so a missing agent is the
//! ordinary case (`Ok(None)`), not an error; an error means something answered with
//! what cpwatch cannot use, and says what and where.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde::Deserialize;

/// Why a tunnel's local API answered but gave no usable URL (logged by the caller).
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("{from} answered HTTP {status}")]
    Status { from: String, status: u16 },
    #[error("{from} gave an answer cpwatch cannot use: {message}")]
    Malformed { from: String, message: String },
    /// Something listens but did not answer in time (a busy agent, a loaded machine):
    /// not the same as a tunnel that ended.
    #[error("{from} did not answer in time")]
    Timeout { from: String },
}

/// Larger answers are not a tunnel list: an agent with a handful of tunnels sends a few KiB.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// cloudflared's default metrics ports: it takes the first free one of these.
const CLOUDFLARED_METRICS_PORTS: std::ops::RangeInclusive<u16> = 20241..=20245;

/// A plain-HTTP client for loopback APIs: short timeouts (connect 1 s, total 2 s), no
/// proxy (a proxy from the environment must not see, or break, loopback requests), no
/// redirects (a local API that redirects is not the one we mean).
pub fn local_client() -> Result<reqwest::Client, reqwest::Error> {
    // Plain HTTP only, so no certificate store is loaded for it.
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .tls_built_in_root_certs(false)
        .build()
}

/// cloudflared's default metrics addresses: 127.0.0.1:20241 ..= 127.0.0.1:20245.
pub fn cloudflared_default_addrs() -> Vec<String> {
    CLOUDFLARED_METRICS_PORTS.map(|port| format!("127.0.0.1:{port}")).collect()
}

/// ngrok agent API: GET `http://{web_addr}/api/tunnels`. `Ok(None)` when nothing listens
/// there (connection refused or timeout: the agent is not running) or no tunnel fits:
/// an https tunnel whose local address is this machine's `port`.
pub async fn ngrok(
    client: &reqwest::Client,
    web_addr: &str,
    port: u16,
) -> Result<Option<String>, DiscoverError> {
    let from = format!("http://{web_addr}/api/tunnels");
    match get(client, &from).await? {
        None => Ok(None),
        Some(body) => parse_ngrok(&body, port).map_err(|message| DiscoverError::Malformed { from, message }),
    }
}

/// cloudflared metrics server: GET `http://{addr}/quicktunnel` on each address in turn.
/// The first that answers with a hostname, or with an empty one (not a quick tunnel),
/// or with something unusable decides. An address that answers with an HTTP error is
/// passed over (another program, or a cloudflared too old for `/quicktunnel`, may hold
/// one of the default ports) and its error returned only if no later one decides.
/// `Ok(None)` when none answers.
pub async fn cloudflared(
    client: &reqwest::Client,
    addrs: &[String],
) -> Result<Option<String>, DiscoverError> {
    let mut refused = None;
    for addr in addrs {
        let from = format!("http://{addr}/quicktunnel");
        match get(client, &from).await {
            Ok(None) => continue,
            // Another program may hold one of cloudflared's default ports: an answer that
            // is not cloudflared's is passed over, and told only if nothing later is.
            Ok(Some(body)) => match parse_quicktunnel(&body) {
                Ok(found) => return Ok(found),
                Err(message) => {
                    refused.get_or_insert(DiscoverError::Malformed { from, message });
                }
            },
            Err(e) => {
                refused.get_or_insert(e);
            }
        }
    }
    refused.map_or(Ok(None), Err)
}

/// The body of a 2xx answer; `None` when nothing answered at all.
async fn get(client: &reqwest::Client, url: &str) -> Result<Option<Vec<u8>>, DiscoverError> {
    let malformed = |message: String| DiscoverError::Malformed { from: url.to_string(), message };
    let mut response = match client.get(url).send().await {
        Ok(response) => response,
        Err(e) if e.is_connect() && !e.is_timeout() => return Ok(None),
        Err(e) if e.is_timeout() => return Err(DiscoverError::Timeout { from: url.to_string() }),
        Err(e) => return Err(malformed(format!("no HTTP answer ({e})"))),
    };
    let status = response.status();
    if !status.is_success() {
        return Err(DiscoverError::Status { from: url.to_string(), status: status.as_u16() });
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() > MAX_ANSWER_BYTES => {
                return Err(malformed(format!("the answer is over {MAX_ANSWER_BYTES} bytes")))
            }
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return Ok(Some(body)),
            Err(e) if e.is_timeout() => return Err(DiscoverError::Timeout { from: url.to_string() }),
            Err(e) => return Err(malformed(format!("the answer could not be read ({e})"))),
        }
    }
}

#[derive(Deserialize)]
struct NgrokTunnels {
    tunnels: Vec<NgrokTunnel>,
}

#[derive(Deserialize)]
struct NgrokTunnel {
    #[serde(default)]
    public_url: Option<String>,
    #[serde(default)]
    proto: Option<String>,
    #[serde(default)]
    config: Option<NgrokTunnelConfig>,
}

#[derive(Deserialize)]
struct NgrokTunnelConfig {
    #[serde(default)]
    addr: Option<String>,
}

/// The public origin (`https://host`, no trailing slash) of the first https tunnel in an
/// `/api/tunnels` answer that forwards to `port` on this machine. The error is a message
/// for [`DiscoverError::Malformed`].
pub fn parse_ngrok(json: &[u8], port: u16) -> Result<Option<String>, String> {
    let answer: NgrokTunnels =
        serde_json::from_slice(json).map_err(|e| format!("not an ngrok tunnel list ({e})"))?;
    let fits = |tunnel: &&NgrokTunnel| {
        tunnel.proto.as_deref() == Some("https")
            && tunnel.config.as_ref().and_then(|c| c.addr.as_deref()).and_then(local_port) == Some(port)
    };
    let Some(tunnel) = answer.tunnels.iter().find(fits) else {
        return Ok(None);
    };
    let public_url = tunnel.public_url.as_deref().unwrap_or_default();
    https_origin(public_url).map(Some).ok_or_else(|| {
        format!("the https tunnel for port {port} has public_url {public_url:?}, not an https:// URL")
    })
}

#[derive(Deserialize)]
struct QuickTunnel {
    hostname: String,
}

/// `https://{hostname}` from a `/quicktunnel` answer; `None` when the hostname is empty
/// (cloudflared runs a named tunnel, whose hostname it does not know). The error is a
/// message for [`DiscoverError::Malformed`].
pub fn parse_quicktunnel(json: &[u8]) -> Result<Option<String>, String> {
    let answer: QuickTunnel =
        serde_json::from_slice(json).map_err(|e| format!("not a cloudflared quick tunnel answer ({e})"))?;
    if answer.hostname.is_empty() {
        return Ok(None);
    }
    if !is_dns_name(&answer.hostname) {
        return Err(format!("the hostname {:?} is not a DNS name", answer.hostname));
    }
    Ok(Some(format!("https://{}", answer.hostname.to_ascii_lowercase())))
}

/// The port of a tunnel's local address when it is this machine's, in any of the forms
/// ngrok reports: `8787`, `localhost:8787`, `127.0.0.1:8787`, `[::1]:8787`, each with or
/// without `http://` or `https://`. Another host is another service: `None`.
fn local_port(addr: &str) -> Option<u16> {
    let addr = addr.trim();
    if let Ok(port) = addr.parse::<u16>() {
        return Some(port);
    }
    let lower = addr.to_ascii_lowercase();
    let (rest, default_port) = if let Some(rest) = lower.strip_prefix("http://") {
        (rest, Some(80))
    } else if let Some(rest) = lower.strip_prefix("https://") {
        (rest, Some(443))
    } else {
        (lower.as_str(), None)
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if !is_this_machine(host) {
        return None;
    }
    match port {
        Some(port) => port.parse().ok(),
        None => default_port,
    }
}

/// Hosts that mean "this machine" to the ngrok agent, which runs here.
fn is_this_machine(host: &str) -> bool {
    host == "localhost"
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
        || host.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

/// `https://host[:port]`, lowercased, from an https URL; `None` for anything else.
fn https_origin(url: &str) -> Option<String> {
    let lower = url.trim().to_ascii_lowercase();
    let rest = lower.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        Some(_) => return None,
        None => authority,
    };
    is_dns_name(host).then(|| format!("https://{authority}"))
}

/// A plausible DNS name: labels of letters, digits and hyphens, none empty or over 63
/// characters, at most 253 in all.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer of a current agent with one tunnel, as documented.
    const NGROK_ONE: &str = r#"{"tunnels":[{"name":"command_line","ID":"abc","uri":"/api/tunnels/command_line",
        "public_url":"https://abc.ngrok-free.app","proto":"https",
        "config":{"addr":"http://localhost:8787","inspect":true},
        "metrics":{"conns":{"count":0},"http":{"count":0}}}],"uri":"/api/tunnels"}"#;

    fn tunnel(public_url: &str, proto: &str, addr: &str) -> String {
        format!(
            r#"{{"name":"t","public_url":"{public_url}","proto":"{proto}","config":{{"addr":"{addr}"}}}}"#
        )
    }

    fn tunnels(list: &[String]) -> Vec<u8> {
        format!(r#"{{"tunnels":[{}],"uri":"/api/tunnels"}}"#, list.join(",")).into_bytes()
    }

    #[test]
    fn the_documented_ngrok_answer_gives_its_https_origin() {
        assert_eq!(parse_ngrok(NGROK_ONE.as_bytes(), 8787), Ok(Some("https://abc.ngrok-free.app".into())));
    }

    #[test]
    fn the_http_twin_of_an_older_agent_is_ignored_whichever_comes_first() {
        let json = tunnels(&[
            tunnel("http://abc.ngrok.io", "http", "localhost:8787"),
            tunnel("https://abc.ngrok.io/", "https", "localhost:8787"),
        ]);
        assert_eq!(parse_ngrok(&json, 8787), Ok(Some("https://abc.ngrok.io".into())), "no trailing slash");
        let only_twin = tunnels(&[tunnel("http://abc.ngrok.io", "http", "localhost:8787")]);
        assert_eq!(parse_ngrok(&only_twin, 8787), Ok(None), "an http tunnel is not a CentrePoint target");
    }

    #[test]
    fn a_tunnel_for_another_port_or_another_host_is_another_service() {
        let json = tunnels(&[
            tunnel("https://other.ngrok.app", "https", "http://localhost:3000"),
            tunnel("https://remote.ngrok.app", "https", "http://192.168.1.20:8787"),
            tunnel("https://named.ngrok.app", "https", "http://example.org:8787"),
        ]);
        assert_eq!(parse_ngrok(&json, 8787), Ok(None));
        assert_eq!(parse_ngrok(&json, 3000), Ok(Some("https://other.ngrok.app".into())));
    }

    #[test]
    fn every_form_of_a_local_address_names_its_port() {
        for addr in [
            "http://localhost:8787",
            "https://localhost:8787",
            "localhost:8787",
            "127.0.0.1:8787",
            "127.0.0.2:8787",
            "[::1]:8787",
            "http://[::1]:8787",
            "0.0.0.0:8787",
            "8787",
            "HTTP://LocalHost:8787/",
        ] {
            assert_eq!(local_port(addr), Some(8787), "{addr}");
        }
        assert_eq!(local_port("http://localhost"), Some(80), "the scheme's port");
        for addr in ["example.org:8787", "10.0.0.1:8787", "[fe80::1]:8787", "localhost:x", "", "http://"] {
            assert_eq!(local_port(addr), None, "{addr}");
        }
    }

    #[test]
    fn unknown_fields_and_tunnels_without_config_are_tolerated() {
        let json = br#"{"tunnels":[{"proto":"tcp","public_url":"tcp://0.tcp.ngrok.io:1"},
            {"public_url":"https://x.ngrok.app","proto":"https","config":{"addr":"8787","x":[1]},"new":{}}],
            "uri":"/api/tunnels","extra":true}"#;
        assert_eq!(parse_ngrok(json, 8787), Ok(Some("https://x.ngrok.app".into())));
        assert_eq!(parse_ngrok(br#"{"tunnels":[]}"#, 8787), Ok(None), "an agent with no tunnel yet");
    }

    #[test]
    fn a_matching_tunnel_without_an_https_url_is_malformed() {
        for url in ["http://abc.ngrok.app", "abc.ngrok.app", "https://", "https://bad host", ""] {
            let json = tunnels(&[tunnel(url, "https", "localhost:8787")]);
            let err = parse_ngrok(&json, 8787).expect_err(url);
            assert!(err.contains("public_url"), "{err}");
        }
    }

    #[test]
    fn malformed_ngrok_json_is_an_error_not_a_panic() {
        for json in [&b"{\"tunnels\": ["[..], b"", b"[]", b"{\"tunnels\":{}}", b"\xff\xfe", b"null"] {
            let err = parse_ngrok(json, 8787).expect_err("not a tunnel list");
            assert!(err.contains("not an ngrok tunnel list"), "{err}");
        }
    }

    #[test]
    fn a_quick_tunnel_hostname_becomes_an_https_url() {
        let json = br#"{"hostname":"some-words-here.trycloudflare.com"}"#;
        assert_eq!(parse_quicktunnel(json), Ok(Some("https://some-words-here.trycloudflare.com".into())));
        let extra = br#"{"hostname":"A-b.trycloudflare.com","other":1}"#;
        assert_eq!(parse_quicktunnel(extra), Ok(Some("https://a-b.trycloudflare.com".into())));
    }

    #[test]
    fn an_empty_hostname_is_not_a_quick_tunnel() {
        assert_eq!(parse_quicktunnel(br#"{"hostname":""}"#), Ok(None));
    }

    #[test]
    fn a_hostname_that_is_no_dns_name_is_malformed() {
        let long = format!("{}.trycloudflare.com", ["a"; 130].join("."));
        let long_label = format!("{}.trycloudflare.com", "a".repeat(64));
        for hostname in [
            "https://x.trycloudflare.com",
            "x..trycloudflare.com",
            ".x.trycloudflare.com",
            "x.trycloudflare.com.",
            "x y.trycloudflare.com",
            "x.trycloudflare.com/path",
            "évil.trycloudflare.com",
            long.as_str(),
            long_label.as_str(),
        ] {
            let json = serde_json::json!({ "hostname": hostname }).to_string();
            let err = parse_quicktunnel(json.as_bytes()).expect_err(hostname);
            assert!(err.contains("not a DNS name"), "{err}");
        }
    }

    #[test]
    fn malformed_quicktunnel_json_is_an_error_not_a_panic() {
        for json in [&b"{\"hostname\":"[..], b"{}", b"{\"hostname\":7}", b"<html>", b""] {
            let err = parse_quicktunnel(json).expect_err("not a quick tunnel answer");
            assert!(err.contains("not a cloudflared quick tunnel answer"), "{err}");
        }
    }

    #[test]
    fn the_default_metrics_addresses_are_cloudflareds_five() {
        let addrs = cloudflared_default_addrs();
        assert_eq!(addrs.first().map(String::as_str), Some("127.0.0.1:20241"));
        assert_eq!(addrs.last().map(String::as_str), Some("127.0.0.1:20245"));
        assert_eq!(addrs.len(), 5);
    }
}

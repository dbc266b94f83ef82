//! What the receiver reads from a request's headers: CentrePoint's ids, the sender's
//! address behind a tunnel, and the headers as stored, with credentials redacted.

use axum::http::{HeaderMap, StatusCode};

use super::auth::WebhookId;
use super::handler::Refusal;
use super::{DELIVERY_HEADER, EVENT_HEADER, WEBHOOK_HEADER};

/// CentrePoint's three ids, as sent: each `None` when absent, empty or not text.
#[derive(Debug, Clone)]
pub(super) struct Ids {
    pub event: Option<String>,
    pub delivery_id: Option<String>,
    pub webhook_id: Option<String>,
}

impl Ids {
    pub fn read(headers: &HeaderMap) -> Ids {
        Ids {
            event: header_text(headers, EVENT_HEADER),
            delivery_id: header_text(headers, DELIVERY_HEADER),
            webhook_id: header_text(headers, WEBHOOK_HEADER),
        }
    }

    /// The event name and the delivery id, when both are present and usable and the
    /// webhook id (which may be absent) is one; otherwise why not.
    pub fn check(&self, headers: &HeaderMap) -> Result<(String, String), Refusal> {
        let bad = |reason: &str| Refusal::new(StatusCode::BAD_REQUEST, reason);
        for (name, value, shown) in [
            (EVENT_HEADER, &self.event, "X-ActiGraph-Event"),
            (DELIVERY_HEADER, &self.delivery_id, "X-ActiGraph-Delivery"),
            (WEBHOOK_HEADER, &self.webhook_id, "X-ActiGraph-Webhook-Id"),
        ] {
            if value.is_none() && headers.contains_key(name) {
                return Err(bad(&format!("{shown} header is empty or not text")));
            }
        }
        let event = self.event.clone().ok_or_else(|| bad("missing X-ActiGraph-Event header"))?;
        let delivery_id =
            self.delivery_id.clone().ok_or_else(|| bad("missing X-ActiGraph-Delivery header"))?;
        if !usable_token(&event, 100) {
            return Err(bad("X-ActiGraph-Event is not an event name"));
        }
        if !usable_token(&delivery_id, 200)
            || self.webhook_id.as_deref().is_some_and(|w| WebhookId::parse(w).is_err())
        {
            return Err(bad("X-ActiGraph-Delivery or X-ActiGraph-Webhook-Id is not an id"));
        }
        Ok((event, delivery_id))
    }
}

/// The original sender's address, from the tunnel's headers, when they are trusted.
pub(super) fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    header_text(headers, "cf-connecting-ip").or_else(|| {
        header_text(headers, "x-forwarded-for")
            .and_then(|v| v.split(',').next().map(|first| first.trim().to_string()))
    })
}

/// Header value as trimmed text; `None` when absent, empty or not text.
pub(super) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// Every header, with credentials replaced, for storage and the refused log.
pub fn redacted_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let text = String::from_utf8_lossy(value.as_bytes());
            let shown = match name.as_str() {
                "authorization" | "proxy-authorization" => {
                    let scheme = text.split_whitespace().next().unwrap_or("");
                    format!("{scheme} [redacted]").trim_start().to_string()
                }
                "cookie" | "set-cookie" | "x-api-key" => "[redacted]".to_string(),
                _ => text.chars().take(1024).collect(),
            };
            (name.as_str().to_string(), shown)
        })
        .collect()
}

/// Printable ASCII without spaces, at most `max` bytes: an id or name CentrePoint sends.
pub(super) fn usable_token(value: &str, max: usize) -> bool {
    value.len() <= max && value.chars().all(|c| c.is_ascii_graphic())
}

//! The one handler: reads a delivery's headers and body (or refuses it, with the reason
//! the sender sees and a row in the bounded refused log), authenticates it, answers the
//! validation handshake, and acknowledges a delivery only once the writer has committed it.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use super::auth::{AuthOutcome, Credentials};
use super::auth_cache::AuthCache;
use super::headers::{self, header_text, redacted_headers, usable_token, Ids};
use super::{ReceiverState, HOOK_SECRET_HEADER, SIGNATURE_HEADER};
use crate::event::{self, Event, Parsed, PayloadError};
use crate::store::{NewDelivery, RefusedRequest, Stored};

/// How much of a refused request's body the log keeps.
const REFUSED_BODY_PREFIX: usize = 2048;

/// A request the receiver does not take, with the one-line reason the sender sees.
#[derive(Debug)]
pub(super) struct Refusal {
    status: StatusCode,
    reason: String,
}

impl Refusal {
    pub(super) fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Refusal { status, reason: reason.into() }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, format!("{}\n", self.reason)).into_response()
    }
}

pub(super) async fn receive(
    State(state): State<ReceiverState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let received_at = Utc::now();
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let forwarded_for =
        state.inner.trust_forwarded_headers.then(|| headers::forwarded_for(headers)).flatten();
    let ids = Ids::read(headers);
    // Requests that are not taken (and validations answered despite wrong credentials)
    // go to the bounded refused log, never to the deliveries.
    let log_refused = |status: StatusCode, reason: &str, body: &[u8], body_len: Option<u64>| {
        state.inner.writer.log_refused(RefusedRequest {
            received_at,
            peer: Some(peer.to_string()),
            method: parts.method.to_string(),
            path: parts.uri.path().chars().take(256).collect(),
            status: status.as_u16(),
            reason: reason.to_string(),
            webhook_id: ids.webhook_id.clone(),
            event: ids.event.clone(),
            delivery_id: ids.delivery_id.clone(),
            headers: redacted_headers(headers),
            body_prefix: body[..body.len().min(REFUSED_BODY_PREFIX)].to_vec(),
            body_len,
        });
    };
    let refuse = |refusal: Refusal, body: &[u8], body_len: Option<u64>| -> Response {
        tracing::warn!(peer = %peer, status = refusal.status.as_u16(), "refused a request: {}", refusal.reason);
        log_refused(refusal.status, &refusal.reason, body, body_len);
        refusal.into_response()
    };
    let (event, delivery_id) = match ids.check(headers) {
        Ok(ids) => ids,
        Err(refusal) => return refuse(refusal, &[], None),
    };
    let webhook_id = ids.webhook_id.clone();
    let body = match read_body(&state, headers, body).await {
        Ok(body) => body,
        Err((refusal, declared)) => return refuse(refusal, &[], declared),
    };
    let whole = Some(body.len() as u64);

    let table = AuthCache::current(&state).await;
    let outcome = table.authenticate(
        webhook_id.as_deref(),
        &Credentials {
            signature: headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()),
            authorization: headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()),
            body: &body,
        },
    );
    let is_validation = event.eq_ignore_ascii_case(event::VALIDATION);
    if let (AuthOutcome::Refused(why), false) = (&outcome, is_validation) {
        let refusal = Refusal::new(StatusCode::UNAUTHORIZED, format!("authentication failed: {why}"));
        return refuse(refusal, &body, whole);
    }

    let parsed = event::parse(&event, &body);
    let echo = match is_validation.then(|| validation_code(headers, &parsed)) {
        Some(Ok(code)) => Some(code),
        Some(Err(refusal)) => return refuse(refusal, &body, whole),
        None => None,
    };
    if let (AuthOutcome::Refused(why), Some(code)) = (&outcome, &echo) {
        // The code is no secret, so the handshake is answered whatever the credentials,
        // and the mismatch is recorded now, so that a wrong passcode shows up at validation
        // time rather than when the first upload is refused. It goes to the bounded log:
        // unauthenticated requests must not be able to grow the deliveries table.
        let reason = format!("validation answered, but its credentials do not match: {why}");
        tracing::warn!(
            delivery = %delivery_id, webhook = webhook_id.as_deref().unwrap_or("-"),
            "{reason}: check the webhook's passcode or credentials"
        );
        log_refused(StatusCode::OK, &reason, &body, whole);
        return answer(&format!("{reason}\n"), Some(code.clone()));
    }

    let delivery = NewDelivery {
        delivery_id: delivery_id.clone(),
        event_name: event.clone(),
        webhook_id: webhook_id.clone(),
        received_at,
        peer: Some(peer.to_string()),
        forwarded_for,
        auth: outcome.describe(),
        headers: redacted_headers(headers),
        body: body.to_vec(),
        parsed,
    }
    .prepare();
    let flag = delivery.flag();
    let summary = delivery.summary().to_owned();
    match state.inner.writer.store(delivery).await {
        Ok(stored) => {
            let what = match stored {
                Stored::New { .. } => "stored",
                Stored::Duplicate { .. } => "duplicate",
            };
            tracing::info!(
                delivery = %delivery_id, event = %event, webhook = webhook_id.as_deref().unwrap_or("-"),
                flag = flag.unwrap_or("-"), "{what}: {summary}"
            );
            answer(&format!("{what}\n"), echo)
        }
        Err(e) => {
            tracing::error!(delivery = %delivery_id, "not acknowledged, the sender will retry: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "the delivery could not be stored; retry later\n")
                .into_response()
        }
    }
}

/// The body, whole, within the size limit and the time limit; otherwise the refusal,
/// with the length the sender declared (for the refused log).
async fn read_body(
    state: &ReceiverState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, (Refusal, Option<u64>)> {
    let limit = state.inner.max_body_bytes;
    let too_large =
        || Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, format!("body is larger than the {limit}-byte limit"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err((too_large(), declared));
    }
    match tokio::time::timeout(state.inner.body_timeout, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err((too_large(), None)),
        Ok(Err(_)) => Err((Refusal::new(StatusCode::BAD_REQUEST, "the body could not be read"), None)),
        Err(_) => Err((Refusal::new(StatusCode::REQUEST_TIMEOUT, "the body took too long to arrive"), None)),
    }
}

/// The validation handshake's code, to echo in `X-ActiGraph-Hook-Secret`: from that
/// header, else from the body.
fn validation_code(
    headers: &HeaderMap,
    parsed: &Result<Parsed, PayloadError>,
) -> Result<HeaderValue, Refusal> {
    let from_body = parsed.as_ref().ok().and_then(|p| match &p.event {
        Event::Validation(v) => v.code.clone(),
        _ => None,
    });
    header_text(headers, HOOK_SECRET_HEADER)
        .or(from_body)
        .filter(|c| usable_token(c, 200))
        .and_then(|c| HeaderValue::from_str(&c).ok())
        .ok_or_else(|| Refusal::new(StatusCode::BAD_REQUEST, "validation delivery without a usable code"))
}

/// A 200 with `text`, echoing the validation code when there is one.
fn answer(text: &str, echo: Option<HeaderValue>) -> Response {
    let mut response = (StatusCode::OK, text.to_string()).into_response();
    if let Some(code) = echo {
        response.headers_mut().insert(HOOK_SECRET_HEADER, code);
    }
    response
}

//! Every request passes here first: the `Host` check (DNS rebinding), the `Origin`
//! check on state-changing requests (CSRF), and the security headers on every answer.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use super::error::ApiError;
use super::DashboardState;

/// The header a script sends on state-changing requests instead of a browser's `Origin`.
pub const SCRIPT_HEADER: &str = "x-cpwatch-request";

/// The Content-Security-Policy of every response: only this origin's own files run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// The `host:port` forms a dashboard on this port answers to.
pub(super) fn loopback_hosts(port: u16) -> Vec<String> {
    vec![format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")]
}

/// Host check, CSRF check and security headers, for every request.
pub(super) async fn guard(State(state): State<DashboardState>, request: Request, next: Next) -> Response {
    let hosts = &state.inner.hosts;
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host)) {
        let message = format!("this dashboard only answers at http://{}/", hosts[0]);
        return secured(ApiError::new(StatusCode::MISDIRECTED_REQUEST, message).into_response());
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let origin = request.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok());
        let allowed = match origin {
            Some(origin) => hosts.iter().any(|h| origin.eq_ignore_ascii_case(&format!("http://{h}"))),
            // Browsers send Origin on every state-changing request; scripts say who they are.
            None => request.headers().contains_key(SCRIPT_HEADER),
        };
        if !allowed {
            let message = "cross-origin request refused (scripts: send the X-CPWatch-Request header)";
            return secured(ApiError::new(StatusCode::FORBIDDEN, message).into_response());
        }
    }
    let is_api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    if is_api {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    secured(response)
}

fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

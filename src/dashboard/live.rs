//! The live stream: one Server-Sent Event per committed delivery (`delivery`) or
//! refused request (`refused`), `reach` when the public URL, its reachability or the
//! tunnel changed; `lagged` when this client fell behind and should reload.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use tokio::sync::broadcast;

use super::DashboardState;
use crate::store::LiveEvent;

pub(super) async fn live(State(state): State<DashboardState>) -> impl IntoResponse {
    let receiver = state.inner.writer.subscribe();
    let shutdown = state.inner.shutdown.clone();
    let reach = Some(state.inner.reach.subscribe());
    let stream = futures_util::stream::unfold(
        (receiver, shutdown, reach),
        |(mut receiver, mut shutdown, mut reach)| async move {
            if *shutdown.borrow() {
                return None;
            }
            let reach_changed = async {
                match reach.as_mut() {
                    Some(r) => match r.changed().await {
                        Ok(()) => Some(r.borrow_and_update().reachability.state),
                        Err(_) => None,
                    },
                    None => std::future::pending().await,
                }
            };
            let event = tokio::select! {
                changed = reach_changed => match changed {
                    Some(state) => SseEvent::default().event("reach").json_data(state).ok()?,
                    // The monitor stopped (shutdown): the stream goes on without it.
                    None => {
                        reach = None;
                        SseEvent::default().comment("reachability monitor stopped")
                    }
                },
                received = receiver.recv() => match received {
                    Ok(live) => {
                        let kind = match &live {
                            LiveEvent::Delivery { .. } => "delivery",
                            LiveEvent::Refused { .. } => "refused",
                        };
                        SseEvent::default().event(kind).json_data(&live).ok()?
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        SseEvent::default().event("lagged").data(missed.to_string())
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                // Ends the stream at shutdown so the server can stop without waiting on it.
                _ = shutdown.changed() => return None,
            };
            Some((Ok::<_, Infallible>(event), (receiver, shutdown, reach)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

//! The live stream: one Server-Sent Event per committed delivery (`delivery`) or
//! refused request (`refused`); `lagged` when this client fell behind and should reload.

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
    let stream =
        futures_util::stream::unfold((receiver, shutdown), |(mut receiver, mut shutdown)| async move {
            if *shutdown.borrow() {
                return None;
            }
            let event = tokio::select! {
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
            Some((Ok::<_, Infallible>(event), (receiver, shutdown)))
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

//! Serving until a signal, and the drain.
//!
//! Connections are served by `front::serve_until` (header and idle timeout, connection
//! cap). The drain, on the first SIGTERM or SIGINT: stop accepting; refuse what waits in
//! the queue and every new request (503); tell each connection to close once its current
//! answer is written (idle ones close now); wait until every connection is gone, so runs
//! in flight finish and answer. A second signal stops at once, abandoning them.

use super::state::App;
use crate::front;
use axum::Router;
use std::sync::Arc;
use tokio::net::TcpListener;

/// How the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every connection closed after its answer.
    Drained,
    /// A second signal ended the drain before it was done.
    Forced,
}

pub async fn serve(listener: TcpListener, router: Router, app: Arc<App>) -> Stopped {
    let open = front::serve_until(listener, router, app.slot.stopping()).await;
    let (in_flight, queued) = (app.limits.in_flight(), app.limits.queued());
    tracing::info!(
        in_flight,
        queued,
        "draining: no new connections; runs in flight finish, queued ones are refused"
    );
    // Before the connections are told to close: a queued request is answered 503, and
    // its connection closes after that answer.
    app.limits.close();
    if open.close(app.slot.drain_cut_short()).await {
        Stopped::Drained
    } else if app.slot.unusable().is_some() {
        tracing::warn!("stopping without waiting longer for the connections still open");
        Stopped::Forced
    } else {
        tracing::warn!("a second signal: stopping without waiting for the runs in flight");
        Stopped::Forced
    }
}

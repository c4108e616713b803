//! The accept loop, one task per HTTP/1.1 connection, and the drain.
//!
//! hyper serves each connection (keep-alive on); a header must arrive within
//! [`HEADER_TIMEOUT`], which also closes connections left idle that long. At most
//! [`MAX_CONNECTIONS`] are served at once; more wait in the kernel's backlog.
//!
//! The drain, on the first SIGTERM or SIGINT: stop accepting; refuse what waits in the
//! queue and every new request (503); tell each connection to close once its current
//! answer is written (idle ones close now); wait until every connection is gone, so
//! runs in flight finish and answer. A second signal stops at once, abandoning them.

use super::state::App;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Time for a request's head to arrive, counted from when the connection is ready for
/// one: a keep-alive connection idle this long is closed too.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once. Each costs a socket and a few KiB; runs are bounded
/// separately (capacity and queue), so this only bounds idle and refused clients.
pub const MAX_CONNECTIONS: usize = 512;

/// How the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every connection closed after its answer.
    Drained,
    /// A second signal ended the drain before it was done.
    Forced,
}

pub async fn serve(listener: TcpListener, router: Router, app: Arc<App>) -> Stopped {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // `true` tells every connection to finish its current answer and close.
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let signal = crate::interrupted();
    tokio::pin!(signal);

    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            () = &mut signal => break,
            permit = permits.clone().acquire_owned() => permit.expect("never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted:
                    // neither ends the server; a pause keeps the loop from spinning.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Responses are written in one go; without Nagle a small one leaves at once.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let mut drain = drain_rx.clone();
        connections.spawn(async move {
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let mut draining = false;
            loop {
                tokio::select! {
                    done = connection.as_mut() => {
                        if let Err(e) = done {
                            tracing::debug!(%peer, "connection ended: {e}");
                        }
                        break;
                    }
                    changed = drain.changed(), if !draining => {
                        draining = true;
                        if changed.is_ok() {
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            drop(permit);
        });
    }

    drop(listener);
    let (in_flight, queued) = (app.limits.in_flight(), app.limits.queued());
    tracing::info!(
        in_flight,
        queued,
        "draining: no new connections; runs in flight finish, queued ones are refused"
    );
    app.limits.close();
    let _ = drain_tx.send(true);
    let forced = tokio::select! {
        () = async { while connections.join_next().await.is_some() {} } => false,
        () = crate::interrupted() => true,
    };
    if forced {
        tracing::warn!("a second signal: stopping without waiting for the runs in flight");
        connections.abort_all();
        while connections.join_next().await.is_some() {}
        return Stopped::Forced;
    }
    Stopped::Drained
}

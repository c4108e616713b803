//! Serving HTTP/1.1 connections for both HTTP front doors (`spr serve --http`, `spr mcp
//! --http`): the accept loop, one task per connection, and closing them when the server
//! stops.
//!
//! hyper serves each connection (keep-alive on); a request's head must arrive within
//! [`HEADER_TIMEOUT`], which also closes connections left idle that long. At most
//! [`MAX_CONNECTIONS`] are served at once; more wait in the kernel's backlog. Without
//! these a client could hold any number of connections for ever, each with its buffers
//! and task (axum's own `serve` has neither).

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Time for a request's head to arrive, counted from when the connection is ready for
/// one: a keep-alive connection idle this long is closed too.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once. Each costs a socket and a few KiB; what requests hold is
/// bounded by each door's own admission, so this only bounds idle and refused clients.
pub const MAX_CONNECTIONS: usize = 512;

/// The connections still open when the server stopped accepting.
pub struct Open {
    connections: JoinSet<()>,
    /// `true` tells every connection to finish its current answer and close.
    close: watch::Sender<bool>,
}

/// Serve `router` on every connection `listener` accepts until `stop` completes; then
/// stop accepting (the listener is closed: new clients are refused) and hand back the
/// connections still open.
pub async fn serve_until(
    listener: TcpListener,
    router: Router,
    stop: impl Future<Output = ()>,
) -> Open {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (close, closing) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(stop);

    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            () = &mut stop => break,
            permit = permits.clone().acquire_owned() => permit.expect("never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
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
        let mut closing = closing.clone();
        connections.spawn(async move {
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let mut told = false;
            loop {
                tokio::select! {
                    done = connection.as_mut() => {
                        if let Err(e) = done {
                            tracing::debug!(%peer, "connection ended: {e}");
                        }
                        break;
                    }
                    changed = closing.changed(), if !told => {
                        told = true;
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
    Open { connections, close }
}

impl Open {
    /// Tell every connection to close once its current answer is written (idle ones
    /// close now) and wait until all are gone, or until `give_up` completes: then the
    /// rest are dropped, with whatever they were doing. Whether all closed by themselves.
    pub async fn close(mut self, give_up: impl Future<Output = ()>) -> bool {
        let _ = self.close.send(true);
        let closed = tokio::select! {
            () = async { while self.connections.join_next().await.is_some() {} } => true,
            () = give_up => false,
        };
        if !closed {
            self.connections.abort_all();
            while self.connections.join_next().await.is_some() {}
        }
        closed
    }
}

//! `spr mcp`: MCP over standard input and output, the way desktop clients start a
//! server. Standard output carries MCP messages only (diagnostics go to stderr, through
//! `tracing`); the end of input ends the server.

use super::server::SprMcp;
use crate::error::{CliError, Exit};
use crate::serve::EngineSlot;
use rmcp::service::ServerInitializeError;
use rmcp::ServiceExt;
use std::time::Duration;

/// How long a stopped server waits for its calls to notice the cancellation.
const STOP_GRACE: Duration = Duration::from_secs(2);

pub async fn serve(server: SprMcp, slot: &EngineSlot) -> Result<Exit, CliError> {
    let interrupted = slot.stopping();
    tokio::pin!(interrupted);
    // Non-blocking pipes where the client gave pipes (the usual case), so that a pending
    // read does not hold a blocking thread and cancelling it is immediate.
    let transport = rmcp::transport::stdio_pipes();
    let running = tokio::select! {
        running = server.serve(transport) => running,
        () = &mut interrupted => return Ok(Exit::Interrupted),
    };
    let running = match running {
        Ok(running) => running,
        // The client went away before it initialized: nothing was asked, nothing is wrong.
        Err(ServerInitializeError::ConnectionClosed(_)) => return Ok(Exit::Ok),
        Err(e) => {
            return Err(CliError::failed("the MCP session could not start").caused_by(e));
        }
    };
    tracing::info!("spr mcp serving on standard input and output");
    let cancel = running.cancellation_token();
    let waiting = running.waiting();
    tokio::pin!(waiting);
    let exit = tokio::select! {
        quit = &mut waiting => {
            if let Err(e) = quit {
                tracing::error!("the MCP session ended abnormally: {e}");
            }
            return Ok(Exit::Ok);
        }
        () = &mut interrupted => Exit::Interrupted,
    };
    // Cancelling the service cancels every call in flight, which frees their workers.
    cancel.cancel();
    let _ = tokio::time::timeout(STOP_GRACE, waiting).await;
    Ok(exit)
}

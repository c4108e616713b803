//! The front doors' wire: what a client sends to `spr serve --stdio`, `spr serve --http`
//! and `spr mcp`, and what it gets back (CONTRACTS.md). Defined once, here, for the CLI,
//! the bench and the tests. The MCP tool's arguments and schemas are in [`mcp`];
//! [`loggable()`] is how every message repeats client text.
//!
//! Only the format lives here. What a request's `policy` may say depends on the door (a
//! stdio parent is trusted with any policy, an HTTP client may only lower three limits),
//! so it is handed over as the JSON object the client wrote, for the door to judge.

mod loggable;
pub mod mcp;
mod request;
mod response;

pub use loggable::loggable;
pub use request::{
    Door, RequestError, RequestErrorKind, RunCall, SessionClose, SessionCreate, StdioCall,
    OP_SESSION_CLOSE, OP_SESSION_CREATE,
};
pub use response::{
    response_line, run_response_body, session_line, ErrorBody, Health, RunResponse, SessionClosed,
    SessionCreated, EXIT_INVALID_REQUEST,
};

/// Deepest nesting of arrays and objects accepted in `input_data`. Python's decoder
/// raises `RecursionError` near 1000 levels, which would take the worker down with the
/// request; 128 is also the limit `serde_json::Value` parsing always had.
pub const MAX_INPUT_DEPTH: usize = 128;

#[cfg(test)]
mod tests;

//! What the front doors send back: a run's result (with the request's id on stdio, and
//! on HTTP when the request had one), the error body of the HTTP API, and the health
//! report.

use crate::json::Json;
use crate::result::RunnerResult;
use serde::{Deserialize, Serialize};

/// `exit_code` of a result for a request refused before running: the code `spr run`
/// exits with for a usage or policy error.
pub const EXIT_INVALID_REQUEST: i32 = 2;

/// A stdio response line: the request's id, then the RunnerResult's keys.
///
/// Clients read it back as a [`RunnerResult`] (which ignores `id`) plus the id: `Json`
/// cannot be read from inside a flattened struct.
#[derive(Debug, Serialize)]
pub struct RunResponse<'a> {
    pub id: &'a Json,
    #[serde(flatten)]
    pub result: &'a RunnerResult,
}

/// One response line, newline included.
pub fn response_line(id: &Json, result: &RunnerResult) -> String {
    let mut line = serde_json::to_string(&RunResponse { id, result }).expect("responses serialize");
    line.push('\n');
    line
}

/// The body of a `POST /v1/runs` answer: the RunnerResult, preceded by the request's
/// `id` (byte for byte) when the request carried one that is not null. A request without
/// an id gets the RunnerResult keys alone, so a client that never sends ids reads plain
/// RunnerResults.
pub fn run_response_body(id: &Json, result: &RunnerResult) -> Vec<u8> {
    let body = if id.is_null() {
        serde_json::to_vec(result)
    } else {
        serde_json::to_vec(&RunResponse { id, result })
    };
    body.expect("responses serialize")
}

impl RunnerResult {
    /// The result for a request refused before it ran: `ok` false, `exit_code` 2.
    pub fn invalid_request(message: impl Into<String>) -> RunnerResult {
        RunnerResult {
            exit_code: EXIT_INVALID_REQUEST,
            ..RunnerResult::infrastructure_error(message)
        }
    }
}

/// The answer to opening a session: `{"id", "session"}` on stdio, `{"session"}` (201)
/// over HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCreated {
    pub session: String,
}

/// The answer to closing a session on stdio: `{"id", "closed": true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClosed {
    pub closed: bool,
}

#[derive(Serialize)]
struct WithId<'a, T> {
    id: &'a Json,
    #[serde(flatten)]
    body: &'a T,
}

/// A stdio line answering a session operation: the request's id, then `body`'s keys.
pub fn session_line<T: Serialize>(id: &Json, body: &T) -> String {
    let mut line = serde_json::to_string(&WithId { id, body }).expect("responses serialize");
    line.push('\n');
    line
}

/// The body of every HTTP error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What is wrong, naming the key, route or limit; client text in it is escaped.
    pub error: String,
}

/// `GET /v1/health`: the server is up and can take runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Always `"ok"` when the server answers.
    pub status: String,
    /// spr's version.
    pub version: String,
    /// The engine runs go to: `"local"` or `"docker"`.
    pub engine: String,
    /// Runs that may execute at once.
    pub capacity: usize,
    /// Runs executing now.
    pub in_flight: usize,
    /// Runs waiting for a free worker.
    pub queued: usize,
    /// Sessions open now (lost ones included until they are closed or expire).
    #[serde(default)]
    pub open_sessions: usize,
}

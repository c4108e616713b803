//! The MCP door's tools (CONTRACTS.md): `run_python`'s arguments as a client sends them,
//! and the JSON schemas advertised for them and for the tool's structured result; and
//! the session tools, `create_session` and `close_session`, likewise.
//!
//! The schemas are written here by hand rather than derived with schemars: the input
//! schema carries the operator's limit (`timeout_seconds` has the profile's maximum),
//! which a derive cannot know, and this crate depends on serde and thiserror only
//! (ARCHITECTURE.md). Tests hold them to the parser and to a serialized `RunnerResult`.

use crate::json::{Json, JsonKind};
use serde_json::{json, Map, Value};

/// The tool's name.
pub const RUN_PYTHON: &str = "run_python";

/// The arguments `run_python` takes, in the order its schema lists them.
pub const RUN_PYTHON_KEYS: &[&str] = &["code", "input_data", "timeout_seconds", "session_id"];

/// One well-formed `run_python` call.
#[derive(Debug, Clone)]
pub struct RunPythonArgs {
    pub code: String,
    /// A JSON object, or null when the call has none.
    pub input_data: Json,
    /// A limit the caller asks for; the door checks it against its profile's.
    pub timeout_seconds: Option<u64>,
    /// The session to run in (from `create_session`); none: a fresh process.
    pub session_id: Option<String>,
}

/// What is wrong with a call's arguments. Messages speak to the model that wrote the
/// call, so that it can correct it; what they repeat of the call is quoted, escaped and
/// cut ([`super::loggable()`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error("missing argument \"code\": pass the Python source to run as a string")]
    MissingCode,
    #[error("unknown argument \"{}\" (run_python takes {keys})", super::loggable(.0), keys = RUN_PYTHON_KEYS.join(", "))]
    Unknown(String),
    #[error("\"{key}\" must be {expected}, got {got}")]
    WrongType {
        key: &'static str,
        expected: &'static str,
        /// "a string", "an array"... or the number itself, for a number out of range.
        got: String,
    },
    #[error("\"input_data\" is nested deeper than {0} levels")]
    TooDeep(usize),
}

impl RunPythonArgs {
    /// Read a call's `arguments` (absent: none at all). A key given as null counts as
    /// absent: models often spell out the optional arguments they do not use that way.
    pub fn parse(arguments: Option<&Map<String, Value>>) -> Result<RunPythonArgs, ArgsError> {
        let empty = Map::new();
        let arguments = arguments.unwrap_or(&empty);
        // The least key, so the error is the same whatever order the map iterates in.
        if let Some(unknown) = arguments
            .keys()
            .filter(|k| !RUN_PYTHON_KEYS.contains(&k.as_str()))
            .min()
        {
            return Err(ArgsError::Unknown(unknown.clone()));
        }
        let given = |key: &str| arguments.get(key).filter(|v| !v.is_null());
        let code = match given("code") {
            None => return Err(ArgsError::MissingCode),
            Some(Value::String(code)) => code.clone(),
            Some(other) => return Err(wrong("code", "a string", other)),
        };
        let input_data = match given("input_data") {
            None => Json::null(),
            Some(value @ Value::Object(_)) => {
                let json = Json::from_value(value);
                if json.nesting_depth() > super::MAX_INPUT_DEPTH {
                    return Err(ArgsError::TooDeep(super::MAX_INPUT_DEPTH));
                }
                json
            }
            Some(other) => return Err(wrong("input_data", "a JSON object", other)),
        };
        let timeout_seconds = match given("timeout_seconds") {
            None => None,
            Some(value) => match value.as_u64() {
                Some(n) => Some(n),
                None => {
                    return Err(wrong(
                        "timeout_seconds",
                        "a positive whole number of seconds",
                        value,
                    ))
                }
            },
        };
        let session_id = match given("session_id") {
            None => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(other) => return Err(wrong("session_id", "a string", other)),
        };
        Ok(RunPythonArgs {
            code,
            input_data,
            timeout_seconds,
            session_id,
        })
    }
}

fn wrong(key: &'static str, expected: &'static str, got: &Value) -> ArgsError {
    let got = describe(got);
    ArgsError::WrongType { key, expected, got }
}

/// What a wrong value was, as an error message says it.
fn describe(got: &Value) -> String {
    match got {
        // A number's own text is safe to repeat and says more than "a number" (-1, 2.5).
        Value::Number(n) => n.to_string(),
        other => kind_of(other).describe().to_string(),
    }
}

fn kind_of(value: &Value) -> JsonKind {
    match value {
        Value::Null => JsonKind::Null,
        Value::Bool(_) => JsonKind::Bool,
        Value::Number(_) => JsonKind::Number,
        Value::String(_) => JsonKind::String,
        Value::Array(_) => JsonKind::Array,
        Value::Object(_) => JsonKind::Object,
    }
}

/// The input schema of `run_python` under a profile whose time limit is
/// `max_timeout_seconds`. The descriptions are for the model that writes the calls.
pub fn run_python_input_schema(max_timeout_seconds: u64) -> Map<String, Value> {
    let schema = json!({
        "type": "object",
        "properties": {
            "code": {
                "type": "string",
                "description": "Python 3 source to run. Assign the value to return to a variable named `result` (anything JSON can hold); print() output comes back as stdout. Without session_id each call is a fresh process: nothing persists between calls."
            },
            "input_data": {
                "type": "object",
                "description": "A JSON object the code reads as the dict `input_data` (its keys are also bound as variables where the policy allows). Pass data here rather than pasting it into the code."
            },
            "timeout_seconds": {
                "type": "integer",
                "minimum": 1,
                "maximum": max_timeout_seconds,
                "description": format!("Wall-clock limit of this run in seconds: at most {max_timeout_seconds}, the server's limit, which is also the default. Give a lower value to fail fast. Not with session_id: a session's limit is set by create_session.")
            },
            "session_id": {
                "type": "string",
                "description": "Run in this session (an id from create_session): its variables, imports and files persist from one call to the next, and the result's `value` is the value of the code's last expression. Leave it out for a fresh process."
            }
        },
        "required": ["code"],
        "additionalProperties": false
    });
    match schema {
        Value::Object(map) => map,
        _ => unreachable!("the schema is an object literal"),
    }
}

/// The schema of the tool's `structuredContent`: a `RunnerResult`. Keys added later
/// (sessions, files) are additions, so the schema does not close the object.
pub fn runner_result_schema() -> Map<String, Value> {
    let schema = json!({
        "type": "object",
        "description": "The run's RunnerResult, as every spr front door returns it.",
        "properties": {
            "ok": {"type": "boolean", "description": "The code ran to the end without an error."},
            "result": {"description": "The value of the code's `result` variable (null when unset)."},
            "value": {"description": "A run in a session: the value of the code's last expression (null when it ends in a statement)."},
            "session_lost": {"type": "boolean", "description": "A run in a session: the session had to be killed and its state is gone; later runs in it are refused."},
            "stdout": {"type": "string"},
            "stderr": {"type": "string"},
            "timed_out": {"type": "boolean"},
            "resource_exceeded": {"type": "boolean", "description": "A memory, output or process limit was hit."},
            "error": {"type": ["string", "null"], "description": "What went wrong, such as the exception with its message."},
            "exit_code": {"type": "integer", "description": "0 ok, 1 the code failed, 2 refused before running, 124 timeout, 125 engine failure, -N killed by signal N."},
            "duration_ms": {"type": "number"},
            "stdout_truncated": {"type": "boolean"},
            "stderr_truncated": {"type": "boolean"},
            "sandbox": {"type": "object", "description": "Receipt of the protections applied to the run."},
            "files": {
                "type": "array",
                "description": "Files returned from the run's scratch directory (base64 content).",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "content": {"type": "string"},
                        "size": {"type": "integer"},
                        "truncated": {"type": "boolean"}
                    },
                    "required": ["path", "content", "size", "truncated"]
                }
            },
            "outputs": {
                "type": "array",
                "description": "Figures the code left open, as base64 PNG (also sent as image content).",
                "items": {
                    "type": "object",
                    "properties": {"mime_type": {"type": "string"}, "data": {"type": "string"}},
                    "required": ["mime_type", "data"]
                }
            }
        },
        "required": [
            "ok", "result", "stdout", "stderr", "timed_out", "resource_exceeded", "error",
            "exit_code", "duration_ms", "stdout_truncated", "stderr_truncated"
        ]
    });
    match schema {
        Value::Object(map) => map,
        _ => unreachable!("the schema is an object literal"),
    }
}

/// The tool that opens a session.
pub const CREATE_SESSION: &str = "create_session";
/// The tool that closes one.
pub const CLOSE_SESSION: &str = "close_session";
/// The arguments `create_session` takes.
pub const CREATE_SESSION_KEYS: &[&str] = &["timeout_seconds", "ttl_seconds"];
/// The arguments `close_session` takes.
pub const CLOSE_SESSION_KEYS: &[&str] = &["session_id"];

/// One well-formed `create_session` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSessionArgs {
    /// The time limit of each of the session's runs; the door checks it against its
    /// profile's.
    pub timeout_seconds: Option<u64>,
    /// Idle time after which the session is closed (None: the default).
    pub ttl_seconds: Option<u64>,
}

/// One well-formed `close_session` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseSessionArgs {
    pub session_id: String,
}

/// What is wrong with the arguments of a session tool (spoken to the model, as
/// [`ArgsError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionArgsError {
    #[error("unknown argument \"{}\" ({tool} takes {})", super::loggable(.key), describe_keys(.expected))]
    Unknown {
        tool: &'static str,
        key: String,
        expected: &'static [&'static str],
    },
    #[error("missing argument \"session_id\": pass the id create_session returned")]
    MissingSessionId,
    #[error("\"{key}\" must be {expected}, got {got}")]
    WrongType {
        key: &'static str,
        expected: &'static str,
        got: String,
    },
}

fn describe_keys(keys: &[&str]) -> String {
    if keys.is_empty() {
        "no arguments".into()
    } else {
        keys.join(", ")
    }
}

fn only(
    tool: &'static str,
    arguments: &Map<String, Value>,
    expected: &'static [&'static str],
) -> Result<(), SessionArgsError> {
    match arguments
        .keys()
        .filter(|k| !expected.contains(&k.as_str()))
        .min()
    {
        None => Ok(()),
        Some(key) => Err(SessionArgsError::Unknown {
            tool,
            key: key.clone(),
            expected,
        }),
    }
}

fn seconds(
    arguments: &Map<String, Value>,
    key: &'static str,
) -> Result<Option<u64>, SessionArgsError> {
    match arguments.get(key).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(value) => match value.as_u64() {
            Some(n) => Ok(Some(n)),
            None => Err(SessionArgsError::WrongType {
                key,
                expected: "a positive whole number of seconds",
                got: describe(value),
            }),
        },
    }
}

impl CreateSessionArgs {
    /// Read a `create_session` call's arguments (absent: none); null counts as absent.
    pub fn parse(
        arguments: Option<&Map<String, Value>>,
    ) -> Result<CreateSessionArgs, SessionArgsError> {
        let empty = Map::new();
        let arguments = arguments.unwrap_or(&empty);
        only(CREATE_SESSION, arguments, CREATE_SESSION_KEYS)?;
        Ok(CreateSessionArgs {
            timeout_seconds: seconds(arguments, "timeout_seconds")?,
            ttl_seconds: seconds(arguments, "ttl_seconds")?,
        })
    }
}

impl CloseSessionArgs {
    /// Read a `close_session` call's arguments.
    pub fn parse(
        arguments: Option<&Map<String, Value>>,
    ) -> Result<CloseSessionArgs, SessionArgsError> {
        let empty = Map::new();
        let arguments = arguments.unwrap_or(&empty);
        only(CLOSE_SESSION, arguments, CLOSE_SESSION_KEYS)?;
        match arguments.get("session_id").filter(|v| !v.is_null()) {
            None => Err(SessionArgsError::MissingSessionId),
            Some(Value::String(id)) => Ok(CloseSessionArgs {
                session_id: id.clone(),
            }),
            Some(other) => Err(SessionArgsError::WrongType {
                key: "session_id",
                expected: "a string",
                got: describe(other),
            }),
        }
    }
}

fn object(schema: Value) -> Map<String, Value> {
    match schema {
        Value::Object(map) => map,
        _ => unreachable!("the schema is an object literal"),
    }
}

/// The input schema of `create_session` under a profile whose time limit is
/// `max_timeout_seconds`; `max_ttl_seconds` is the longest idle TTL.
pub fn create_session_input_schema(
    max_timeout_seconds: u64,
    max_ttl_seconds: u64,
) -> Map<String, Value> {
    object(json!({
        "type": "object",
        "properties": {
            "timeout_seconds": {
                "type": "integer",
                "minimum": 1,
                "maximum": max_timeout_seconds,
                "description": format!("Wall-clock limit of each run in the session, in seconds: at most {max_timeout_seconds}, the server's limit, which is also the default. A run past it is interrupted (KeyboardInterrupt) and the session keeps its state.")
            },
            "ttl_seconds": {
                "type": "integer",
                "minimum": 1,
                "maximum": max_ttl_seconds,
                "description": format!("Seconds the session may stay idle before the server closes it (default {}).", crate::DEFAULT_SESSION_TTL_SECONDS)
            }
        },
        "additionalProperties": false
    }))
}

/// The schema of `create_session`'s `structuredContent`.
pub fn create_session_output_schema() -> Map<String, Value> {
    object(json!({
        "type": "object",
        "properties": {
            "session_id": {"type": "string", "description": "Pass it as run_python's session_id, and to close_session when done."}
        },
        "required": ["session_id"]
    }))
}

/// The input schema of `close_session`.
pub fn close_session_input_schema() -> Map<String, Value> {
    object(json!({
        "type": "object",
        "properties": {
            "session_id": {"type": "string", "description": "The id create_session returned."}
        },
        "required": ["session_id"],
        "additionalProperties": false
    }))
}

/// The schema of `close_session`'s `structuredContent`.
pub fn close_session_output_schema() -> Map<String, Value> {
    object(json!({
        "type": "object",
        "properties": {
            "closed": {"type": "boolean"}
        },
        "required": ["closed"]
    }))
}

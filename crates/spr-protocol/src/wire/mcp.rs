//! The MCP door's tool (CONTRACTS.md): `run_python`'s arguments as a client sends them,
//! and the JSON schemas advertised for them and for the tool's structured result.
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
    /// A session to run in (sessions are a later feature; the door refuses it for now).
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
    let got = match got {
        // A number's own text is safe to repeat and says more than "a number" (-1, 2.5).
        Value::Number(n) => n.to_string(),
        other => kind_of(other).describe().to_string(),
    };
    ArgsError::WrongType { key, expected, got }
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
                "description": "Python 3 source to run. Assign the value to return to a variable named `result` (anything JSON can hold); print() output comes back as stdout. Each call is a fresh process: nothing persists between calls."
            },
            "input_data": {
                "type": "object",
                "description": "A JSON object the code reads as the dict `input_data` (its keys are also bound as variables where the policy allows). Pass data here rather than pasting it into the code."
            },
            "timeout_seconds": {
                "type": "integer",
                "minimum": 1,
                "maximum": max_timeout_seconds,
                "description": format!("Wall-clock limit of this run in seconds: at most {max_timeout_seconds}, the server's limit, which is also the default. Give a lower value to fail fast.")
            },
            "session_id": {
                "type": "string",
                "description": "Reserved for sessions (an interpreter whose variables persist between calls). This version of spr has no sessions: leave it out."
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

//! Parsing a run request: one pass over the client's text that keeps `id` and
//! `input_data` exactly as written and names what is wrong when the request is bad.

use crate::files::{Attachments, FileEncoding, FileIn};
use crate::json::{Json, JsonKind};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;

/// Which front door a run request came through: each accepts its own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// `spr serve --stdio`: `id`, `code`, `input_data`, `policy`, `session`.
    Stdio,
    /// `spr serve --http` (`POST /v1/runs`): `id`, `code`, `input_data`, `policy`,
    /// `profile`.
    Http,
    /// `POST /v1/sessions/{sid}/runs`: `id`, `code`, `input_data` (the session's policy
    /// was fixed when it was created).
    HttpSession,
}

impl Door {
    /// The keys a run request may carry, as listed in error messages.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Door::Stdio => &[
                "id",
                "code",
                "input_data",
                "policy",
                "session",
                "files",
                "collect",
            ],
            Door::Http => &[
                "id",
                "code",
                "input_data",
                "policy",
                "files",
                "collect",
                "profile",
            ],
            Door::HttpSession => &["id", "code", "input_data", "files", "collect"],
        }
    }
}

/// The `op` of a stdio line that opens a session.
pub const OP_SESSION_CREATE: &str = "session.create";
/// The `op` of a stdio line that closes a session.
pub const OP_SESSION_CLOSE: &str = "session.close";
const STDIO_CREATE_KEYS: &[&str] = &["id", "op", "policy", "ttl_seconds"];
const STDIO_CLOSE_KEYS: &[&str] = &["id", "op", "session"];
const HTTP_CREATE_KEYS: &[&str] = &["policy", "profile", "ttl_seconds"];

/// What one `spr serve --stdio` line asks for.
#[derive(Debug, Clone)]
pub enum StdioCall {
    /// A run, in a session when it names one.
    Run(RunCall),
    /// `{"id", "op": "session.create", "policy"?, "ttl_seconds"?}`.
    CreateSession(SessionCreate),
    /// `{"id", "op": "session.close", "session"}`.
    CloseSession(SessionClose),
}

/// A request to open a session.
#[derive(Debug, Clone)]
pub struct SessionCreate {
    /// The client's id (stdio), echoed in the response; null over HTTP.
    pub id: Json,
    /// The session's policy, for the door to judge (absent or null: the default).
    pub policy: Option<serde_json::Map<String, Value>>,
    /// Idle time before the session is closed (None: the default).
    pub ttl_seconds: Option<u64>,
    /// The operator's profile the session runs under (HTTP only).
    pub profile: Option<String>,
}

/// A request to close a session.
#[derive(Debug, Clone)]
pub struct SessionClose {
    pub id: Json,
    pub session: String,
}

/// One well-formed run request.
#[derive(Debug, Clone)]
pub struct RunCall {
    /// The client's id, byte for byte (null when absent), echoed in the response.
    pub id: Json,
    pub code: String,
    /// A JSON object as written, or null.
    pub input_data: Json,
    /// The request's `policy` object, for the door to judge (absent or null: none).
    pub policy: Option<serde_json::Map<String, Value>>,
    /// The operator's profile the request picks (HTTP only).
    pub profile: Option<String>,
    /// The session the run goes to (stdio only; HTTP names it in the route).
    pub session: Option<String>,
    /// `files` and `collect`, well-formed; checked against the run's policy when it runs
    /// ([`Attachments::validate`]).
    pub attachments: Attachments,
}

/// A request refused before running, with whatever id could be recovered from it.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct RequestError {
    pub id: Json,
    pub kind: RequestErrorKind,
}

/// What is wrong with a request. Whatever of the client's text a message repeats is
/// quoted, escaped and cut ([`super::loggable()`]): a megabyte key is not a megabyte
/// message.
#[derive(Debug, thiserror::Error)]
pub enum RequestErrorKind {
    #[error("not valid UTF-8: {0}")]
    NotUtf8(#[source] std::str::Utf8Error),
    #[error("not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("not valid JSON: a string holds an unpaired UTF-16 surrogate escape (\\ud800 to \\udfff without its pair) at line {line} column {column}; strings must be valid Unicode")]
    LoneSurrogate { line: usize, column: usize },
    #[error("a request must be a JSON object, got {}", .0.describe())]
    NotObject(JsonKind),
    #[error("unknown key \"{}\" (expected {})", super::loggable(.key), .expected.join(", "))]
    UnknownKey {
        key: String,
        expected: &'static [&'static str],
    },
    #[error("missing key \"{0}\"")]
    Missing(&'static str),
    #[error("\"{key}\" must be {expected}, got {}", .got.describe())]
    WrongType {
        key: &'static str,
        expected: &'static str,
        got: JsonKind,
    },
    #[error("\"input_data\" is nested deeper than {0} levels")]
    TooDeep(usize),
    #[error(
        "unknown \"op\" \"{}\" (expected {OP_SESSION_CREATE} or {OP_SESSION_CLOSE}; a run has no \"op\")",
        super::loggable(.0)
    )]
    UnknownOp(String),
    #[error("\"policy\" cannot be set on a run in a session: a session's policy is fixed when it is created")]
    PolicyInSession,
    #[error("\"{list}[{index}]\" must be {expected}, got {}", .got.describe())]
    ItemWrongType {
        list: &'static str,
        index: usize,
        expected: &'static str,
        got: JsonKind,
    },
    #[error("\"files[{index}].{key}\" must be {expected}, got {}", .got.describe())]
    FileKeyWrongType {
        index: usize,
        key: &'static str,
        expected: &'static str,
        got: JsonKind,
    },
    #[error("\"files[{index}]\" has no \"{key}\"")]
    FileKeyMissing { index: usize, key: &'static str },
    #[error("unknown key \"{}\" in \"files[{index}]\" (expected path, content, encoding)", super::loggable(.key))]
    FileUnknownKey { index: usize, key: String },
    #[error("\"files[{index}].encoding\" must be \"utf-8\" or \"base64\", got \"{}\"", super::loggable(.got))]
    FileBadEncoding { index: usize, got: String },
}

fn fail(id: &Json, kind: RequestErrorKind) -> RequestError {
    RequestError {
        id: id.clone(),
        kind,
    }
}

fn wrong(key: &'static str, expected: &'static str, got: &Value) -> RequestErrorKind {
    RequestErrorKind::WrongType {
        key,
        expected,
        got: value_kind(got),
    }
}

/// The request's members, read in one pass (the text must outlive them).
fn read_raw(text: &str) -> Result<RawRequest<'_>, RequestError> {
    let parsed: RawLine = serde_json::from_str(text).map_err(|e| {
        // serde_json calls every unpaired surrogate escape a "leading" one.
        let kind = if e.to_string().contains("surrogate") {
            RequestErrorKind::LoneSurrogate {
                line: e.line(),
                column: e.column(),
            }
        } else {
            RequestErrorKind::NotJson(e)
        };
        fail(&salvaged_id(text), kind)
    })?;
    let null = Json::null();
    match parsed {
        RawLine::Object(raw) => Ok(raw),
        RawLine::Other(kind) => Err(fail(&null, RequestErrorKind::NotObject(kind))),
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, RequestError> {
    std::str::from_utf8(bytes).map_err(|e| fail(&Json::null(), RequestErrorKind::NotUtf8(e)))
}

impl RawRequest<'_> {
    fn id(&self) -> Json {
        self.id.map(Json::from).unwrap_or_default()
    }

    /// Refuses the first key (in sorted order) that `expected` does not list.
    fn only(&self, expected: &'static [&'static str]) -> Result<(), RequestError> {
        match self.keys.iter().find(|k| !expected.contains(&k.as_str())) {
            None => Ok(()),
            Some(key) => Err(fail(
                &self.id(),
                RequestErrorKind::UnknownKey {
                    key: key.clone(),
                    expected,
                },
            )),
        }
    }

    fn policy(&mut self) -> Result<Option<serde_json::Map<String, Value>>, RequestError> {
        match self.policy.take() {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(other) => Err(fail(
                &self.id(),
                wrong("policy", "a JSON object or null", &other),
            )),
        }
    }

    fn profile(&mut self) -> Result<Option<String>, RequestError> {
        match self.profile.take() {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(name)) => Ok(Some(name)),
            Some(other) => Err(fail(
                &self.id(),
                wrong("profile", "a string or null", &other),
            )),
        }
    }

    fn session(&mut self) -> Result<Option<String>, RequestError> {
        match self.session.take() {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(sid)) => Ok(Some(sid)),
            Some(other) => Err(fail(&self.id(), wrong("session", "a string", &other))),
        }
    }

    fn ttl_seconds(&mut self) -> Result<Option<u64>, RequestError> {
        match self.ttl_seconds.take() {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(other) => Err(fail(
                &self.id(),
                wrong("ttl_seconds", "a whole number of seconds", &other),
            )),
        }
    }
}

impl StdioCall {
    /// Parse one `spr serve --stdio` line: a run, or a session operation (`op`).
    pub fn parse(bytes: &[u8]) -> Result<StdioCall, RequestError> {
        let text = utf8(bytes)?;
        let mut raw = read_raw(text)?;
        let op = match raw.op.take() {
            None => return RunCall::from_raw(raw, Door::Stdio).map(StdioCall::Run),
            Some(Value::String(op)) => op,
            Some(other) => return Err(fail(&raw.id(), wrong("op", "a string", &other))),
        };
        match op.as_str() {
            OP_SESSION_CREATE => {
                raw.only(STDIO_CREATE_KEYS)?;
                Ok(StdioCall::CreateSession(SessionCreate {
                    id: raw.id(),
                    policy: raw.policy()?,
                    ttl_seconds: raw.ttl_seconds()?,
                    profile: None,
                }))
            }
            OP_SESSION_CLOSE => {
                raw.only(STDIO_CLOSE_KEYS)?;
                let session = raw
                    .session()?
                    .ok_or_else(|| fail(&raw.id(), RequestErrorKind::Missing("session")))?;
                Ok(StdioCall::CloseSession(SessionClose {
                    id: raw.id(),
                    session,
                }))
            }
            _ => Err(fail(&raw.id(), RequestErrorKind::UnknownOp(op))),
        }
    }
}

impl SessionCreate {
    /// Parse the body of `POST /v1/sessions` (an empty body is an empty object).
    pub fn parse_http(bytes: &[u8]) -> Result<SessionCreate, RequestError> {
        let text = utf8(bytes)?;
        let text = if text.trim().is_empty() { "{}" } else { text };
        let mut raw = read_raw(text)?;
        raw.only(HTTP_CREATE_KEYS)?;
        Ok(SessionCreate {
            id: Json::null(),
            policy: raw.policy()?,
            ttl_seconds: raw.ttl_seconds()?,
            profile: raw.profile()?,
        })
    }
}

impl RunCall {
    /// Parse one run request as `door` accepts it.
    pub fn parse(bytes: &[u8], door: Door) -> Result<RunCall, RequestError> {
        let text = utf8(bytes)?;
        RunCall::from_raw(read_raw(text)?, door)
    }

    fn from_raw(mut raw: RawRequest<'_>, door: Door) -> Result<RunCall, RequestError> {
        raw.only(door.keys())?;
        let id = raw.id();
        let code = match raw.code.take() {
            Some(Value::String(code)) => code,
            None => return Err(fail(&id, RequestErrorKind::Missing("code"))),
            Some(other) => return Err(fail(&id, wrong("code", "a string", &other))),
        };
        let input_data = raw.input_data.map(Json::from).unwrap_or_default();
        match input_data.kind() {
            JsonKind::Null => {}
            JsonKind::Object if input_data.nesting_depth() > super::MAX_INPUT_DEPTH => {
                return Err(fail(&id, RequestErrorKind::TooDeep(super::MAX_INPUT_DEPTH)))
            }
            JsonKind::Object => {}
            got => {
                return Err(fail(
                    &id,
                    RequestErrorKind::WrongType {
                        key: "input_data",
                        expected: "a JSON object or null",
                        got,
                    },
                ))
            }
        }
        let policy = raw.policy()?;
        let profile = raw.profile()?;
        let session = raw.session()?;
        if session.is_some() && policy.is_some() {
            return Err(fail(&id, RequestErrorKind::PolicyInSession));
        }
        let files = match raw.files.take() {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(index, item)| parse_file(index, item))
                .collect::<Result<_, _>>()
                .map_err(|kind| fail(&id, kind))?,
            Some(other) => return Err(fail(&id, wrong("files", "an array or null", &other))),
        };
        let collect = match raw.collect.take() {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Value::String(glob) => Ok(glob),
                    other => Err(RequestErrorKind::ItemWrongType {
                        list: "collect",
                        index,
                        expected: "a string",
                        got: value_kind(&other),
                    }),
                })
                .collect::<Result<_, _>>()
                .map_err(|kind| fail(&id, kind))?,
            Some(other) => return Err(fail(&id, wrong("collect", "an array or null", &other))),
        };
        Ok(RunCall {
            id,
            code,
            input_data,
            policy,
            profile,
            session,
            attachments: Attachments { files, collect },
        })
    }
}

/// One element of `files`, with messages naming its index and key.
fn parse_file(index: usize, item: Value) -> Result<FileIn, RequestErrorKind> {
    let Value::Object(map) = item else {
        return Err(RequestErrorKind::ItemWrongType {
            list: "files",
            index,
            expected: "an object with \"path\" and \"content\"",
            got: value_kind(&item),
        });
    };
    if let Some(key) = map
        .keys()
        .find(|k| !["path", "content", "encoding"].contains(&k.as_str()))
    {
        return Err(RequestErrorKind::FileUnknownKey {
            index,
            key: key.clone(),
        });
    }
    let string = |key: &'static str| match map.get(key) {
        None => Err(RequestErrorKind::FileKeyMissing { index, key }),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(RequestErrorKind::FileKeyWrongType {
            index,
            key,
            expected: "a string",
            got: value_kind(other),
        }),
    };
    let path = string("path")?;
    let content = string("content")?;
    let encoding = match map.get("encoding") {
        None | Some(Value::Null) => FileEncoding::Utf8,
        Some(Value::String(e)) if e == "utf-8" => FileEncoding::Utf8,
        Some(Value::String(e)) if e == "base64" => FileEncoding::Base64,
        Some(Value::String(e)) => {
            return Err(RequestErrorKind::FileBadEncoding {
                index,
                got: e.clone(),
            })
        }
        Some(other) => {
            return Err(RequestErrorKind::FileKeyWrongType {
                index,
                key: "encoding",
                expected: "a string",
                got: value_kind(other),
            })
        }
    };
    Ok(FileIn {
        path,
        content,
        encoding,
    })
}

fn value_kind(value: &Value) -> JsonKind {
    match value {
        Value::Null => JsonKind::Null,
        Value::Bool(_) => JsonKind::Bool,
        Value::Number(_) => JsonKind::Number,
        Value::String(_) => JsonKind::String,
        Value::Array(_) => JsonKind::Array,
        Value::Object(_) => JsonKind::Object,
    }
}

/// A request read in one pass over its text: `id` and `input_data` as raw text, the
/// rest as `Value`. Parsing the members as `Value` in the same pass keeps serde_json's
/// messages for malformed text, positions included.
// Built once per request and unpacked at once: boxing the object would only add an
// allocation to every request.
#[allow(clippy::large_enum_variant)]
enum RawLine<'a> {
    Object(RawRequest<'a>),
    /// Valid JSON, but not an object.
    Other(JsonKind),
}

#[derive(Default)]
struct RawRequest<'a> {
    id: Option<&'a RawValue>,
    code: Option<Value>,
    input_data: Option<&'a RawValue>,
    policy: Option<Value>,
    profile: Option<Value>,
    op: Option<Value>,
    session: Option<Value>,
    ttl_seconds: Option<Value>,
    files: Option<Value>,
    collect: Option<Value>,
    /// Every key the request has, sorted, so the first one refused is the same whatever
    /// the order of the request. Which are allowed depends on the door and the op.
    keys: BTreeSet<String>,
}

/// The `"id"` of a line that is not valid JSON as a whole, when it comes before the first
/// error (a client sends it first, as a rule): so that the refusal still reaches the
/// caller waiting on that id. Null when it cannot be read.
fn salvaged_id(text: &str) -> Json {
    struct IdSeeker<'a, 'de>(&'a mut Option<&'de RawValue>);

    impl<'de> Visitor<'de> for IdSeeker<'_, 'de> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "id" {
                    *self.0 = Some(map.next_value()?);
                } else {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }

    let mut id = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let _ = de::Deserializer::deserialize_map(&mut de, IdSeeker(&mut id));
    id.map(Json::from).unwrap_or_default()
}

impl<'de> Deserialize<'de> for RawLine<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawLineVisitor)
    }
}

struct RawLineVisitor;

impl<'de> Visitor<'de> for RawLineVisitor {
    type Value = RawLine<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // A repeated key keeps its last value, as a `Value` object does.
        let mut request = RawRequest::default();
        while let Some(key) = map.next_key::<String>()? {
            // Read whatever the door: `RawRequest::only` refuses what it does not take.
            match key.as_str() {
                "id" => request.id = Some(map.next_value()?),
                "input_data" => request.input_data = Some(map.next_value()?),
                "code" => request.code = Some(map.next_value()?),
                "policy" => request.policy = Some(map.next_value()?),
                "profile" => request.profile = Some(map.next_value()?),
                "op" => request.op = Some(map.next_value()?),
                "session" => request.session = Some(map.next_value()?),
                "ttl_seconds" => request.ttl_seconds = Some(map.next_value()?),
                "files" => request.files = Some(map.next_value()?),
                "collect" => request.collect = Some(map.next_value()?),
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
            request.keys.insert(key);
        }
        Ok(RawLine::Object(request))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(RawLine::Other(JsonKind::Array))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(RawLine::Other(JsonKind::Null))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(RawLine::Other(JsonKind::Bool))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(RawLine::Other(JsonKind::Number))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(RawLine::Other(JsonKind::Number))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(RawLine::Other(JsonKind::Number))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(RawLine::Other(JsonKind::String))
    }
}

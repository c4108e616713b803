//! `spr serve --stdio`: JSON lines in, JSON lines out, one warm engine for the session.
//!
//! Requests run concurrently, at most as many as the engine has workers; each response
//! is written and flushed as soon as its run completes, so responses may come back out
//! of order and clients correlate them by `id`. Nothing but response lines goes to
//! stdout; diagnostics go to stderr.

use crate::engine_opts::{CliEngine, DockerConnOpts, EngineOpts};
use crate::error::{CliError, Exit};
use crate::retry::Retrying;
use crate::{output, policy, policy_file};
use clap::Args;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;
use spr_core::{
    run_code_json, Json, JsonKind, PolicySource, RunnerPolicy, RunnerResult, MAX_INPUT_DEPTH,
};
use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

/// Longest request line accepted. Longer lines are skipped as they stream in, never
/// held whole, and answered with an error.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// `exit_code` of a response to a request that was refused before running, the same
/// code `spr run` exits with for a usage or policy error.
const EXIT_INVALID_REQUEST: i32 = 2;

/// How long after a failed engine build the next request may try again. Requests in
/// between get the failure at once, so a flood of requests starts at most one build
/// every two seconds (plus the build's own time).
pub const ENGINE_RETRY_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve JSON lines on standard input and standard output.
    #[arg(long, required = true)]
    pub stdio: bool,
    /// TOML policy file for requests that carry no "policy" (default: the built-in default policy).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineOpts,
}

/// One accepted request. `id` and `input` are the caller's text, so the response echoes
/// the id byte for byte and the code sees every digit of the input.
#[derive(Debug)]
struct Request {
    id: Json,
    line: u64,
    code: String,
    input: Json,
    policy: Option<RunnerPolicy>,
}

/// A request refused before running, with whatever id could be recovered.
#[derive(Debug)]
struct Invalid {
    id: Json,
    message: String,
}

/// The engine, built in the background so that the server answers malformed lines at
/// once even while a venv is being created. Every run waits on the same build; a failed
/// build is retried by a later request once [`ENGINE_RETRY_BACKOFF`] has passed, so the
/// server recovers by itself when the cause goes away.
#[derive(Debug)]
struct EngineSlot {
    engine: Retrying<Arc<CliEngine>, CliError>,
    opts: EngineOpts,
    conn: DockerConnOpts,
}

impl EngineSlot {
    async fn get(&self) -> Result<Arc<CliEngine>, Arc<CliError>> {
        self.engine
            .get(|last| async move {
                match self.opts.build(&self.conn, None).await {
                    Ok(engine) => {
                        engine.warm_up().await;
                        if last.is_some() {
                            log("the engine started after an earlier failure");
                        }
                        Ok(Arc::new(engine))
                    }
                    Err(err) => {
                        // Once per distinct error: a cause that persists would otherwise
                        // log a line at every retry.
                        let message = err.one_line();
                        if last.is_none_or(|last| last.one_line() != message) {
                            log(&format!(
                                "the engine failed to start (a request retries it after {} s): {message}",
                                ENGINE_RETRY_BACKOFF.as_secs()
                            ));
                        }
                        Err(err)
                    }
                }
            })
            .await
    }
}

pub async fn run(args: ServeArgs, conn: &DockerConnOpts) -> Result<Exit, CliError> {
    debug_assert!(args.stdio, "clap requires --stdio");
    args.engine.check(conn)?;
    // A bad default policy is a usage error of the server itself: refuse to start
    // rather than fail every request.
    let default_policy = Arc::new(match &args.policy {
        Some(path) => policy::load(path)?,
        None => RunnerPolicy::default(),
    });
    let concurrency = args.engine.concurrency();
    let slot = Arc::new(EngineSlot {
        engine: Retrying::new(ENGINE_RETRY_BACKOFF),
        opts: args.engine.clone(),
        conn: conn.clone(),
    });
    let init = {
        let slot = slot.clone();
        tokio::spawn(async move {
            let _ = slot.get().await;
        })
    };

    let (tx, rx) = mpsc::channel::<String>(concurrency * 2 + 16);
    let writer = tokio::spawn(write_responses(rx));
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let mut reader = BufReader::with_capacity(64 << 10, tokio::io::stdin());
    let mut buf = Vec::new();
    let mut line_no: u64 = 0;
    let interrupted = crate::interrupted();
    tokio::pin!(interrupted);
    let mut was_interrupted = false;

    loop {
        while tasks.try_join_next().is_some() {}
        let line = tokio::select! {
            line = read_line_bounded(&mut reader, &mut buf, MAX_LINE_BYTES) => line,
            () = &mut interrupted => { was_interrupted = true; break; }
        };
        line_no += 1;
        let request = match line {
            Err(e) => {
                log(&format!("reading standard input failed, stopping: {e}"));
                break;
            }
            Ok(Line::Eof) => break,
            Ok(Line::TooLong) => Err(Invalid {
                id: Json::null(),
                message: format!(
                    "line {line_no}: longer than the {} MiB limit",
                    MAX_LINE_BYTES >> 20
                ),
            }),
            Ok(Line::Complete) if buf.trim_ascii().is_empty() => continue,
            Ok(Line::Complete) => parse_request(&buf, line_no),
        };
        match request {
            Err(invalid) => {
                let result = invalid_result(format!("invalid request: {}", invalid.message));
                let _ = tx.send(response_line(&invalid.id, &result)).await;
            }
            Ok(request) => {
                // Waiting for a free worker here, before reading on, keeps the memory
                // of a flood of requests bounded by the pool size.
                let permit = tokio::select! {
                    permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                    () = &mut interrupted => { was_interrupted = true; break; }
                };
                let slot = slot.clone();
                let tx = tx.clone();
                let default_policy = default_policy.clone();
                tasks.spawn(async move {
                    let id = request.id.clone();
                    // The run gets its own task so that a panic in it still produces a
                    // response for its id.
                    let result = match tokio::spawn(execute(request, slot, default_policy)).await {
                        Ok(result) => result,
                        Err(e) => RunnerResult::infrastructure_error(format!(
                            "internal error: the run's task failed: {e}"
                        )),
                    };
                    drop(permit);
                    let _ = tx.send(response_line(&id, &result)).await;
                });
            }
        }
    }

    if was_interrupted {
        tasks.abort_all();
        if let Some(engine) = slot.engine.ready() {
            engine.shutdown().await;
        }
        return Ok(Exit::Interrupted);
    }
    // EOF: let the runs in flight finish and their responses out, then stop the engine.
    while tasks.join_next().await.is_some() {}
    drop(tx);
    let _ = writer.await;
    let _ = init.await;
    if let Some(engine) = slot.engine.ready() {
        engine.shutdown().await;
    }
    Ok(Exit::Ok)
}

async fn execute(
    request: Request,
    slot: Arc<EngineSlot>,
    default_policy: Arc<RunnerPolicy>,
) -> RunnerResult {
    // The client's `config_path` is read here, in the request's own task, so that a slow
    // file holds up this request only, never the reader loop.
    let policy = match request.policy {
        Some(policy) if policy.config_path.is_some() => {
            match policy_file::resolve_requested(policy).await {
                Ok(policy) => policy,
                // Display only: the cause would tell the client about the host's files.
                Err(e) => {
                    return invalid_result(format!(
                        "invalid request: line {}: \"policy\": {e}",
                        request.line
                    ))
                }
            }
        }
        Some(policy) => policy,
        None => RunnerPolicy::clone(&default_policy),
    };
    let engine = match slot.get().await {
        Ok(engine) => engine,
        Err(err) => {
            return RunnerResult::infrastructure_error(format!(
                "the engine failed to start: {}",
                err.one_line()
            ))
        }
    };
    match run_code_json(
        &request.code,
        &*engine,
        Some(request.input),
        PolicySource::Policy(policy),
    )
    .await
    {
        Ok(result) => result,
        Err(e) => invalid_result(format!("invalid request: line {}: {e}", request.line)),
    }
}

/// Write each response line and flush it at once. If stdout goes away the responses
/// are dropped (there is no one left to read them) but runs still drain cleanly.
async fn write_responses(mut rx: mpsc::Receiver<String>) {
    let mut out = tokio::io::stdout();
    let mut broken = false;
    while let Some(line) = rx.recv().await {
        if broken {
            continue;
        }
        let written = async {
            out.write_all(line.as_bytes()).await?;
            out.flush().await
        }
        .await;
        if let Err(e) = written {
            log(&format!(
                "writing to standard output failed, dropping responses: {e}"
            ));
            broken = true;
        }
    }
}

fn log(message: &str) {
    output::stderr(&format!("spr serve: {message}\n"));
}

#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line (without its newline) is in the buffer.
    Complete,
    /// A line longer than the limit was skipped.
    TooLong,
    Eof,
}

/// Read one line into `buf` (cleared first), holding at most `max` bytes of it. A
/// longer line is consumed and dropped as it streams in.
async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    buf.clear();
    let mut seen_any = false;
    let mut too_long = false;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(match (too_long, seen_any) {
                (true, _) => Line::TooLong,
                (false, true) => Line::Complete,
                (false, false) => Line::Eof,
            });
        }
        seen_any = true;
        let newline = chunk.iter().position(|&b| b == b'\n');
        let take = newline.unwrap_or(chunk.len());
        if !too_long {
            if buf.len() + take > max {
                too_long = true;
                *buf = Vec::new();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        match newline {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(if too_long {
                    Line::TooLong
                } else {
                    Line::Complete
                });
            }
            None => reader.consume(take),
        }
    }
}

/// A request line read in one pass over its text: `id` and `input_data` as raw text,
/// the rest as `Value`. Parsing the members as `Value` inside the same pass keeps
/// serde_json's messages for malformed lines, positions included, as they always were.
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
    /// Sorted, so the first one named is the same whatever the order of the line.
    unknown: BTreeSet<String>,
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
            match key.as_str() {
                "id" => request.id = Some(map.next_value()?),
                "input_data" => request.input_data = Some(map.next_value()?),
                "code" => request.code = Some(map.next_value()?),
                "policy" => request.policy = Some(map.next_value()?),
                _ => {
                    map.next_value::<Value>()?;
                    request.unknown.insert(key);
                }
            }
        }
        Ok(RawLine::Object(request))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Value>()?.is_some() {}
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

fn parse_request(bytes: &[u8], line: u64) -> Result<Request, Invalid> {
    let invalid = |id: &Json, message: String| Invalid {
        id: id.clone(),
        message: format!("line {line}: {message}"),
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|e| invalid(&Json::null(), format!("not valid UTF-8: {e}")))?;
    let parsed: RawLine = serde_json::from_str(text)
        .map_err(|e| invalid(&Json::null(), format!("not valid JSON: {e}")))?;
    let object = match parsed {
        RawLine::Object(object) => object,
        RawLine::Other(kind) => {
            return Err(invalid(
                &Json::null(),
                format!("a request must be a JSON object, got {}", kind.describe()),
            ))
        }
    };
    let id = object.id.map(Json::from).unwrap_or_default();
    if let Some(key) = object.unknown.first() {
        return Err(invalid(
            &id,
            format!("unknown key \"{key}\" (expected id, code, input_data, policy)"),
        ));
    }
    let code = match object.code {
        Some(Value::String(code)) => code,
        None => return Err(invalid(&id, "missing key \"code\"".into())),
        Some(other) => {
            return Err(invalid(
                &id,
                format!(
                    "\"code\" must be a string, got {}",
                    crate::run::json_type(&other)
                ),
            ))
        }
    };
    let input = object.input_data.map(Json::from).unwrap_or_default();
    match input.kind() {
        JsonKind::Null => {}
        JsonKind::Object if input.nesting_depth() > MAX_INPUT_DEPTH => {
            return Err(invalid(
                &id,
                format!("\"input_data\" is nested deeper than {MAX_INPUT_DEPTH} levels"),
            ))
        }
        JsonKind::Object => {}
        other => {
            return Err(invalid(
                &id,
                format!(
                    "\"input_data\" must be a JSON object or null, got {}",
                    other.describe()
                ),
            ))
        }
    }
    let policy = match object.policy {
        None | Some(Value::Null) => None,
        Some(value @ Value::Object(_)) => {
            // Same "unknown key ... (did you mean ...?)" as in a policy file.
            if let Value::Object(map) = &value {
                spr_core::check_policy_keys("policy", map.keys().map(String::as_str))
                    .map_err(|e| invalid(&id, format!("\"policy\": {e}")))?;
                if let Some(Value::Object(sandbox)) = map.get("sandbox") {
                    spr_core::check_policy_keys("sandbox", sandbox.keys().map(String::as_str))
                        .map_err(|e| invalid(&id, format!("\"policy\": {e}")))?;
                }
            }
            let policy: RunnerPolicy = serde_json::from_value(value)
                .map_err(|e| invalid(&id, format!("\"policy\": {e}")))?;
            // `config_path` (allowed in JSON, see docs/POLICY.md) names a policy file on
            // the server's host that wins over the other fields: `execute` reads it, off
            // this reader loop (see policy_file.rs).
            if policy.config_path.is_none() {
                policy::validate(&policy).map_err(|e| invalid(&id, format!("\"policy\": {e}")))?;
            }
            Some(policy)
        }
        Some(other) => {
            return Err(invalid(
                &id,
                format!(
                    "\"policy\" must be a JSON object or null, got {}",
                    crate::run::json_type(&other)
                ),
            ))
        }
    };
    Ok(Request {
        id,
        line,
        code,
        input,
        policy,
    })
}

fn invalid_result(message: String) -> RunnerResult {
    RunnerResult {
        exit_code: EXIT_INVALID_REQUEST,
        ..RunnerResult::infrastructure_error(message)
    }
}

#[derive(serde::Serialize)]
struct Response<'a> {
    id: &'a Json,
    #[serde(flatten)]
    result: &'a RunnerResult,
}

fn response_line(id: &Json, result: &RunnerResult) -> String {
    let mut line = serde_json::to_string(&Response { id, result }).expect("responses serialize");
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<(Line, Vec<u8>)> {
        let mut reader = BufReader::with_capacity(4, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let line = read_line_bounded(&mut reader, &mut buf, max).await.unwrap();
            if line == Line::Eof {
                return out;
            }
            out.push((line, buf.clone()));
        }
    }

    #[tokio::test]
    async fn long_lines_are_skipped_and_reading_goes_on() {
        let got = lines(b"short\nthis one is too long\n\nlast", 8).await;
        assert_eq!(
            got,
            vec![
                (Line::Complete, b"short".to_vec()),
                (Line::TooLong, vec![]),
                (Line::Complete, vec![]),
                (Line::Complete, b"last".to_vec()),
            ]
        );
    }

    #[test]
    fn the_id_survives_a_bad_request() {
        let err = parse_request(br#"{"id": 7, "code": 1}"#, 3).unwrap_err();
        assert_eq!(err.id, serde_json::json!(7));
        assert_eq!(
            err.message,
            "line 3: \"code\" must be a string, got a number"
        );
    }

    #[test]
    fn a_response_line_starts_with_the_id() {
        let line = response_line(
            &serde_json::json!("a").into(),
            &RunnerResult::infrastructure_error("x"),
        );
        assert!(line.starts_with(r#"{"id":"a","ok":false,"#), "{line}");
        assert!(line.ends_with("}\n"));
    }

    #[test]
    fn ids_and_input_keep_their_text() {
        for id in [
            "18446744073709551617",
            "123456789012345678901234567890.5",
            "-1e400",
            r#"{"k": [1, 2.50]}"#,
            r#""\ud800""#,
        ] {
            let line = format!(
                r#"{{"input_data": {{"x": 99999999999999999999}}, "id": {id}, "code": "result = x"}}"#
            );
            let request = parse_request(line.as_bytes(), 1).unwrap();
            assert_eq!(request.id.get(), id);
            assert_eq!(request.input.get(), r#"{"x": 99999999999999999999}"#);
            let response = response_line(&request.id, &RunnerResult::infrastructure_error("x"));
            assert!(
                response.starts_with(&format!(r#"{{"id":{id},"ok":false,"#)),
                "{response}"
            );
        }
    }

    #[test]
    fn request_errors_name_the_same_things_as_before() {
        let err = |line: &str| parse_request(line.as_bytes(), 2).unwrap_err();
        let e = err(r#"{"zz": 1, "code": "x", "id": 9, "aa": 2}"#);
        assert_eq!(
            e.message,
            r#"line 2: unknown key "aa" (expected id, code, input_data, policy)"#
        );
        assert_eq!(e.id, serde_json::json!(9));
        assert_eq!(
            err("12").message,
            "line 2: a request must be a JSON object, got a number"
        );
        assert_eq!(
            err(r#""s""#).message,
            "line 2: a request must be a JSON object, got a string"
        );
        assert_eq!(
            err("null").message,
            "line 2: a request must be a JSON object, got null"
        );
        assert_eq!(
            err("true").message,
            "line 2: a request must be a JSON object, got a boolean"
        );
        assert_eq!(
            err(r#"{"code": null}"#).message,
            r#"line 2: "code" must be a string, got null"#
        );
        assert_eq!(
            err(r#"{"code": "x", "policy": [1]}"#).message,
            r#"line 2: "policy" must be a JSON object or null, got an array"#
        );
        assert_eq!(
            err(r#"{"id": 1, "code": "x"} x"#).message,
            "line 2: not valid JSON: trailing characters at line 1 column 24"
        );
        let deep = format!(
            r#"{{"id": 1, "code": "x", "input_data": {{"a": {}{}}}}}"#,
            "[".repeat(MAX_INPUT_DEPTH),
            "]".repeat(MAX_INPUT_DEPTH)
        );
        assert_eq!(
            err(&deep).message,
            format!(r#"line 2: "input_data" is nested deeper than {MAX_INPUT_DEPTH} levels"#)
        );
        let ok = parse_request(br#"{"code": "x", "code": "y", "input_data": null}"#, 1).unwrap();
        assert_eq!(ok.code, "y", "the last of a repeated key wins");
        assert!(ok.input.is_null() && ok.id.is_null());
    }
}

//! `spr serve --stdio`: JSON lines in, JSON lines out, one warm engine for the session.
//!
//! Requests run concurrently, at most as many as the engine has workers; each response
//! is written and flushed as soon as its run completes, so responses may come back out
//! of order and clients correlate them by `id`. Nothing but response lines goes to
//! stdout; diagnostics go to stderr, through `tracing`.
//!
//! The parent process is trusted: a request's `policy` may be any valid policy.

use super::{log_run, EngineSlot, Outcome, ServeArgs};
use crate::engine_opts::DockerConnOpts;
use crate::error::{CliError, Exit};
use crate::{policy, policy_file};
use serde::Deserialize;
use spr_core::{
    run_code_with, Attachments, Json, PolicySource, RunError, RunnerPolicy, RunnerResult,
};
use spr_protocol::wire::{response_line, session_line, SessionClosed, SessionCreated, StdioCall};
use std::io;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

/// Longest request line accepted. Longer lines are skipped as they stream in, never
/// held whole, and answered with an error.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// One accepted request. `id` and `input` are the caller's text, so the response echoes
/// the id byte for byte and the code sees every digit of the input.
#[derive(Debug)]
struct Request {
    id: Json,
    line: u64,
    op: Op,
}

/// What an accepted line asks for.
#[derive(Debug)]
enum Op {
    Run {
        code: String,
        input: Json,
        policy: Option<RunnerPolicy>,
        session: Option<String>,
        attachments: Attachments,
    },
    CreateSession {
        policy: Option<RunnerPolicy>,
        ttl_seconds: Option<u64>,
    },
    CloseSession {
        session: String,
    },
}

/// A request refused before running, with whatever id could be recovered.
#[derive(Debug)]
struct Invalid {
    id: Json,
    message: String,
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
    let slot = EngineSlot::new(args.engine.clone(), conn.clone(), (*default_policy).clone());
    let init = slot.start();

    let (tx, rx) = mpsc::channel::<String>(concurrency * 2 + 16);
    let writer = tokio::spawn(write_responses(rx));
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let mut reader = BufReader::with_capacity(64 << 10, tokio::io::stdin());
    let mut buf = Vec::new();
    let mut line_no: u64 = 0;
    let interrupted = slot.stopping();
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
                tracing::error!("reading standard input failed, stopping: {e}");
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
                let result =
                    RunnerResult::invalid_request(format!("invalid request: {}", invalid.message));
                log_run(
                    "stdio",
                    &invalid.id,
                    "-",
                    Outcome::Refused,
                    std::time::Duration::ZERO,
                );
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
                    let profile = match &request.op {
                        Op::Run {
                            session: Some(_), ..
                        } => "session",
                        Op::Run {
                            policy: Some(_), ..
                        }
                        | Op::CreateSession {
                            policy: Some(_), ..
                        } => "request",
                        _ => "default",
                    };
                    let started = Instant::now();
                    // The run gets its own task so that a panic in it still produces a
                    // response for its id.
                    let (line, outcome) =
                        match tokio::spawn(execute(request, slot, default_policy)).await {
                            Ok(done) => done,
                            Err(e) => (
                                response_line(
                                    &id,
                                    &RunnerResult::infrastructure_error(format!(
                                        "internal error: the run's task failed: {e}"
                                    )),
                                ),
                                Outcome::EngineError,
                            ),
                        };
                    drop(permit);
                    log_run("stdio", &id, profile, outcome, started.elapsed());
                    let _ = tx.send(line).await;
                });
            }
        }
    }

    // An unusable engine stops the server as the end of input does: the runs in
    // flight are answered (with its failure).
    if was_interrupted && slot.unusable().is_none() {
        tasks.abort_all();
        slot.shutdown().await;
        return Ok(Exit::Interrupted);
    }
    // EOF: let the runs in flight finish and their responses out, then stop the engine.
    while tasks.join_next().await.is_some() {}
    drop(tx);
    let _ = writer.await;
    let _ = init.await;
    slot.shutdown().await;
    match slot.unusable() {
        Some(err) => Err(err),
        None => Ok(Exit::Ok),
    }
}

/// Carry out one accepted line; returns its response line.
async fn execute(
    request: Request,
    slot: Arc<EngineSlot>,
    default_policy: Arc<RunnerPolicy>,
) -> (String, Outcome) {
    let Request { id, line, op } = request;
    let refused = |message: String| {
        (
            response_line(&id, &RunnerResult::invalid_request(message)),
            Outcome::Refused,
        )
    };
    let engine_failed = |err: Arc<CliError>| {
        let result = RunnerResult::infrastructure_error(format!(
            "the engine failed to start: {}",
            err.one_line()
        ));
        (response_line(&id, &result), Outcome::EngineError)
    };
    match op {
        Op::Run {
            code,
            input,
            session: Some(session),
            attachments,
            ..
        } => {
            let sessions = match slot.sessions().await {
                Ok(sessions) => sessions,
                Err(err) => return engine_failed(err),
            };
            match sessions
                .run_with(&session, &code, Some(input), &attachments)
                .await
            {
                Ok(result) => {
                    let outcome = Outcome::of(&result);
                    (response_line(&id, &result), outcome)
                }
                Err(e) => refused(format!("line {line}: {e}")),
            }
        }
        Op::Run {
            code,
            input,
            policy,
            session: None,
            attachments,
        } => {
            let policy = match resolve(policy, &default_policy, line).await {
                Ok(policy) => policy,
                Err(message) => return refused(message),
            };
            let engine = match slot.get().await {
                Ok(engine) => engine,
                Err(err) => return engine_failed(err),
            };
            match run_code_with(
                &code,
                &*engine,
                Some(input),
                PolicySource::Policy(policy),
                &attachments,
            )
            .await
            {
                Ok(result) => {
                    let outcome = Outcome::of(&result);
                    (response_line(&id, &result), outcome)
                }
                Err(e) => refused(format!("invalid request: line {line}: {e}")),
            }
        }
        Op::CreateSession {
            policy,
            ttl_seconds,
        } => {
            let policy = match resolve(policy, &default_policy, line).await {
                Ok(policy) => policy,
                Err(message) => return refused(message),
            };
            let sessions = match slot.sessions().await {
                Ok(sessions) => sessions,
                Err(err) => return engine_failed(err),
            };
            match sessions
                .create(PolicySource::Policy(policy), ttl_seconds)
                .await
            {
                Ok(session) => (session_line(&id, &SessionCreated { session }), Outcome::Ok),
                Err(RunError::Session(e @ spr_core::SessionError::Start(_))) => {
                    let result = RunnerResult::infrastructure_error(format!("line {line}: {e}"));
                    (response_line(&id, &result), Outcome::EngineError)
                }
                Err(e) => refused(format!("line {line}: {e}")),
            }
        }
        Op::CloseSession { session } => {
            let sessions = match slot.sessions().await {
                Ok(sessions) => sessions,
                Err(err) => return engine_failed(err),
            };
            match sessions.close(&session).await {
                Ok(()) => (
                    session_line(&id, &SessionClosed { closed: true }),
                    Outcome::Ok,
                ),
                Err(e) => refused(format!("line {line}: {e}")),
            }
        }
    }
}

/// The request's policy, or the server's default. The client's `config_path` is read
/// here, in the request's own task, so that a slow file holds up this request only,
/// never the reader loop.
async fn resolve(
    policy: Option<RunnerPolicy>,
    default_policy: &RunnerPolicy,
    line: u64,
) -> Result<RunnerPolicy, String> {
    match policy {
        Some(policy) if policy.config_path.is_some() => {
            // Display only: the cause would tell the client about the host's files.
            policy_file::resolve_requested(policy)
                .await
                .map_err(|e| format!("invalid request: line {line}: \"policy\": {e}"))
        }
        Some(policy) => Ok(policy),
        None => Ok(default_policy.clone()),
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
            tracing::error!("writing to standard output failed, dropping responses: {e}");
            broken = true;
        }
    }
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

/// A request line: the wire's parse, then the policy, which a stdio parent may set whole.
fn parse_request(bytes: &[u8], line: u64) -> Result<Request, Invalid> {
    let invalid = |id: &Json, message: String| Invalid {
        id: id.clone(),
        message: format!("line {line}: {message}"),
    };
    let call = StdioCall::parse(bytes).map_err(|e| invalid(&e.id, e.to_string()))?;
    let (id, op) = match call {
        StdioCall::Run(run) => {
            let policy = parse_policy(run.policy).map_err(|m| invalid(&run.id, m))?;
            let op = Op::Run {
                code: run.code,
                input: run.input_data,
                policy,
                session: run.session,
                attachments: run.attachments,
            };
            (run.id, op)
        }
        StdioCall::CreateSession(create) => {
            let policy = parse_policy(create.policy).map_err(|m| invalid(&create.id, m))?;
            let op = Op::CreateSession {
                policy,
                ttl_seconds: create.ttl_seconds,
            };
            (create.id, op)
        }
        StdioCall::CloseSession(close) => (
            close.id,
            Op::CloseSession {
                session: close.session,
            },
        ),
    };
    Ok(Request { id, line, op })
}

/// serde's error for a whole `policy` object does not say which key held the bad value:
/// find the first key whose value alone fails, and put its name in front.
fn name_the_key(map: &serde_json::Map<String, serde_json::Value>, e: serde_json::Error) -> String {
    for (key, value) in map {
        let one = serde_json::Map::from_iter([(key.clone(), value.clone())]);
        if let Err(e) = serde_json::from_value::<RunnerPolicy>(serde_json::Value::Object(one)) {
            return format!("{key}: {e}");
        }
    }
    e.to_string()
}

/// A request's `policy` object as a policy, checked as strictly as a policy file.
fn parse_policy(
    policy: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<Option<RunnerPolicy>, String> {
    let policy = match policy {
        None => None,
        Some(map) => {
            // Same "unknown key ... (did you mean ...?)" as in a policy file.
            spr_core::check_policy_keys("policy", map.keys().map(String::as_str))
                .map_err(|e| format!("\"policy\": {e}"))?;
            if let Some(serde_json::Value::Object(sandbox)) = map.get("sandbox") {
                spr_core::check_policy_keys("sandbox", sandbox.keys().map(String::as_str))
                    .map_err(|e| format!("\"policy\": {e}"))?;
            }
            // Deserialized from a borrow: the map is read again only when it is refused.
            let value = serde_json::Value::Object(map);
            let policy = RunnerPolicy::deserialize(&value).map_err(|e| {
                let map = value.as_object().expect("built as an object");
                format!("\"policy\": {}", name_the_key(map, e))
            })?;
            // `config_path` (allowed in JSON, see docs/POLICY.md) names a policy file on
            // the server's host that wins over the other fields: `execute` reads it, off
            // this reader loop (see policy_file.rs).
            if policy.config_path.is_none() {
                policy::validate(&policy).map_err(|e| format!("\"policy\": {e}"))?;
            }
            Some(policy)
        }
    };
    Ok(policy)
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
    fn errors_name_the_line_and_keep_the_id() {
        let err = parse_request(br#"{"id": 7, "code": 1}"#, 3).unwrap_err();
        assert_eq!(err.id, serde_json::json!(7));
        assert_eq!(
            err.message,
            "line 3: \"code\" must be a string, got a number"
        );
        let err =
            parse_request(br#"{"id": 8, "code": "x", "policy": {"timeout": 1}}"#, 4).unwrap_err();
        assert_eq!(err.id, serde_json::json!(8));
        assert!(
            err.message.starts_with("line 4: \"policy\": unknown key"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_bad_policy_value_names_its_key() {
        for (policy, key) in [
            (r#"{"timeout_seconds": -1}"#, "timeout_seconds: "),
            (
                r#"{"memory_limit_mb": 64, "timeout_seconds": 1.5}"#,
                "timeout_seconds: ",
            ),
            (r#"{"blocked_imports": ["os", null]}"#, "blocked_imports: "),
            (r#"{"mode": "deny"}"#, "mode: "),
        ] {
            let line = format!(r#"{{"id": 9, "code": "x", "policy": {policy}}}"#);
            let err = parse_request(line.as_bytes(), 1).unwrap_err();
            assert!(
                err.message
                    .starts_with(&format!("line 1: \"policy\": {key}")),
                "{policy}: {}",
                err.message
            );
        }
    }
}

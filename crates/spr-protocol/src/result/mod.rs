//! `RunnerResult` and the rules that build it from a worker's observations.
//!
//! Status (ok, timeout, memory, exit code, signal) is decided here from what the worker
//! observed of the child process; the child's own frame only contributes what user code
//! controls anyway: its `result` and its error text.

use crate::files::{self, FileOut, Output};
use crate::json::Json;
use crate::message::{ChildOutcome, ChildReport, RunReport};
use crate::receipt::SandboxReceipt;
use serde::{Deserialize, Serialize};
use spr_policy::RunnerPolicy;
use std::time::Duration;

/// `exit_code` of a run that hit its timeout (as in the original, and `timeout(1)`).
pub const EXIT_TIMEOUT: i32 = 124;
/// `exit_code` of a run that never got to execute because of an engine failure.
pub const EXIT_INFRASTRUCTURE: i32 = 125;

/// The outcome of one run. The first eight fields are the original's, with its names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerResult {
    pub ok: bool,
    /// The value of the code's `result` variable, as the JSON text Python wrote (without
    /// whitespace between tokens): integers keep every digit, floats are Python's repr.
    pub result: Json,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub resource_exceeded: bool,
    pub error: Option<String>,
    pub exit_code: i32,
    /// Wall-clock time of the run's process, as measured by the worker; when the host's
    /// backstop fired instead, the time the host waited.
    pub duration_ms: f64,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// Which protections were applied to this run (engines that know fill it in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxReceipt>,
    /// A run in a session: the JSON-safe value of the cell's last expression (null when
    /// the cell ends in a statement or failed). Absent for one-shot runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Json>,
    /// A run in a session whose process had to be killed or died: the session's state is
    /// gone and later runs in it are refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub session_lost: bool,
    /// Files the run left in scratch that matched the request's `collect` globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileOut>,
    /// Figures the code left open (matplotlib), rendered as PNG.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<Output>,
}

impl RunnerResult {
    /// A run that could not be executed at all (engine or infrastructure failure).
    pub fn infrastructure_error(message: impl Into<String>) -> Self {
        RunnerResult {
            ok: false,
            result: Json::null(),
            stdout: String::new(),
            stderr: String::new(),
            timed_out: false,
            resource_exceeded: false,
            error: Some(message.into()),
            exit_code: EXIT_INFRASTRUCTURE,
            duration_ms: 0.0,
            stdout_truncated: false,
            stderr_truncated: false,
            sandbox: None,
            value: None,
            session_lost: false,
            files: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// A run the host had to stop at its backstop because the worker did not answer;
    /// `elapsed` is how long the host waited for it.
    pub fn timeout(policy: &RunnerPolicy, elapsed: Duration) -> Self {
        RunnerResult {
            timed_out: true,
            error: Some(timeout_message(policy)),
            exit_code: EXIT_TIMEOUT,
            duration_ms: round_ms(elapsed.as_secs_f64() * 1000.0),
            ..RunnerResult::infrastructure_error("")
        }
    }
}

/// Microsecond resolution: finer digits are noise and would only bloat every result.
fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

fn timeout_message(policy: &RunnerPolicy) -> String {
    format!("Execution timed out after {}s", policy.timeout_seconds)
}

/// Build the result of a run from the worker's report.
pub fn assemble_result(report: &RunReport, policy: &RunnerPolicy) -> RunnerResult {
    let mut out = RunnerResult {
        ok: false,
        result: Json::null(),
        stdout: report.stdout.clone(),
        stderr: report.stderr.clone(),
        timed_out: false,
        resource_exceeded: false,
        error: None,
        exit_code: report.exit_code.unwrap_or(0),
        duration_ms: round_ms(report.duration_ms),
        stdout_truncated: report.stdout_truncated,
        stderr_truncated: report.stderr_truncated,
        sandbox: None,
        value: None,
        session_lost: report.cell && report.session_lost,
        files: Vec::new(),
        outputs: Vec::new(),
    };
    let mut child = parse_child_frame(report);
    if let Ok(Some(child)) = &mut child {
        // Whatever the run's process wrote in scratch it could have put in `result`:
        // these are believed as far as that, and bounded like it.
        let (files, outputs) = bounded_attachments(
            std::mem::take(&mut child.files),
            std::mem::take(&mut child.outputs),
        );
        out.files = files;
        out.outputs = outputs;
    }
    let alive_cell = report.cell && report.exit_code.is_none() && report.signal.is_none();
    if report.cell {
        out.value = Some(match &child {
            Ok(Some(c)) if alive_cell && !report.timed_out => c
                .value
                .as_ref()
                .map(|v| v.compact().readable())
                .unwrap_or_else(Json::null),
            _ => Json::null(),
        });
    }

    if report.timed_out {
        out.timed_out = true;
        out.error = Some(timeout_message(policy));
        out.exit_code = EXIT_TIMEOUT;
        if alive_cell {
            // Interrupted and still alive: what it printed on the way out is kept.
            out.error = Some(format!(
                "{} (the cell was interrupted; the session keeps its state)",
                timeout_message(policy)
            ));
        } else if report.cell {
            out.error = Some(format!(
                "{} (the cell did not stop when interrupted: the session was killed and its state is lost)",
                timeout_message(policy)
            ));
        }
        return out;
    }
    if alive_cell {
        return cell_result(out, report, child, policy);
    }
    if report.cell && report.frame_refused {
        out.exit_code = 1;
        out.error = Some(
            "The session's process wrote on its result pipe what spr never writes there: \
             the session was killed and its state is lost"
                .into(),
        );
        return out;
    }
    if let Some(signal) = report.signal {
        out.exit_code = -signal;
        let memory = matches!(&child, Ok(Some(c)) if c.outcome == ChildOutcome::MemoryError);
        if memory {
            out.resource_exceeded = true;
            out.error = Some(memory_message(policy));
        } else {
            out.error = Some(format!(
                "Process was killed by signal {signal} ({}) before reporting a result",
                signal_name(signal)
            ));
        }
        return out;
    }
    let code = report.exit_code.unwrap_or(-1);
    // 124 and 125 mean a timeout and an engine failure: a run that exits with one of
    // them itself (`sys.exit(125)`) has failed, and says so as 1 (its own status stays in
    // `error`), so that it can pass for neither.
    if code == EXIT_TIMEOUT || code == EXIT_INFRASTRUCTURE {
        out.exit_code = 1;
    }
    if report.child_frame_overflow {
        // The code ran, but spr refused what it returned: a failure of the run's own,
        // whatever status its process ended with.
        if out.exit_code == 0 {
            out.exit_code = 1;
        }
        out.error = Some(format!(
            "The result is larger than the {} MiB limit",
            MAX_RESULT_BYTES >> 20
        ));
        return out;
    }
    let child = match child {
        Ok(Some(child)) => child,
        Ok(None) => {
            out.error = Some(format!(
                "Process exited with code {code} without reporting a result"
            ));
            return out;
        }
        Err(why) => {
            out.error = Some(format!("Process reported a malformed result: {why}"));
            return out;
        }
    };
    match child.outcome {
        ChildOutcome::Completed => {
            if code == 0 {
                out.ok = true;
                // The harness writes `json.dumps` separators (", "); compact text keeps
                // results as terse as `Value` printed them, with every digit intact.
                out.result = child.result.compact().readable();
            } else {
                out.error = Some(format!(
                    "Process exited with code {code} after reporting success"
                ));
            }
        }
        ChildOutcome::Exit => {
            out.result = child.result.compact().readable();
            out.ok = code == 0 && child.exit_status == Some(0);
            if !out.ok {
                out.error = Some(child.error.unwrap_or_else(|| format!("SystemExit: {code}")));
            }
        }
        ChildOutcome::Exception => {
            out.error = Some(child.error.unwrap_or_else(|| "Exception: ".to_string()));
        }
        ChildOutcome::MemoryError => {
            out.resource_exceeded = true;
            out.error = Some(memory_message(policy));
        }
    }
    out
}

/// A cell whose session lives on: no exit status exists, so the status is the child's
/// word (all a cell's status could say is under user code's control anyway).
fn cell_result(
    mut out: RunnerResult,
    report: &RunReport,
    child: Result<Option<ChildReport>, String>,
    policy: &RunnerPolicy,
) -> RunnerResult {
    if report.child_frame_overflow {
        out.exit_code = 1;
        out.error = Some(format!(
            "The result is larger than the {} MiB limit",
            MAX_RESULT_BYTES >> 20
        ));
        return out;
    }
    let child = match child {
        Ok(Some(child)) => child,
        Ok(None) => {
            out.exit_code = 1;
            out.error = Some("The session reported no result for this run".into());
            return out;
        }
        Err(why) => {
            out.exit_code = 1;
            out.error = Some(format!("The session reported a malformed result: {why}"));
            return out;
        }
    };
    out.result = child.result.compact().readable();
    match child.outcome {
        ChildOutcome::Completed => {
            out.ok = true;
            out.exit_code = 0;
        }
        ChildOutcome::Exit => {
            let status = child.exit_status.unwrap_or(1);
            out.ok = status == 0;
            out.exit_code = match (status & 0xFF) as i32 {
                EXIT_TIMEOUT | EXIT_INFRASTRUCTURE => 1,
                code => code,
            };
            if !out.ok {
                out.error = Some(
                    child
                        .error
                        .unwrap_or_else(|| format!("SystemExit: {status}")),
                );
            }
        }
        ChildOutcome::Exception => {
            out.exit_code = 1;
            out.result = Json::null();
            out.error = Some(child.error.unwrap_or_else(|| "Exception: ".to_string()));
        }
        ChildOutcome::MemoryError => {
            out.exit_code = 1;
            out.result = Json::null();
            out.resource_exceeded = true;
            out.error = Some(memory_message(policy));
        }
    }
    out
}

/// The returned files and figures a child reported, keeping only what the harness could
/// have sent: plausible relative paths, sizes that agree with the content, the caps.
fn bounded_attachments(files: Vec<FileOut>, outputs: Vec<Output>) -> (Vec<FileOut>, Vec<Output>) {
    let mut budget = files::MAX_FILES_OUT_BYTES;
    let files = files
        .into_iter()
        .filter_map(|f| {
            let len = f.decode()?.len() as u64;
            let agrees = if f.truncated {
                len < f.size
            } else {
                len == f.size
            };
            let keep = agrees && len <= budget && files::plausible_output_path(&f.path);
            keep.then(|| {
                budget -= len;
                f
            })
        })
        .take(files::MAX_FILES_OUT)
        .collect();
    let mut budget = files::MAX_OUTPUTS_BYTES;
    let outputs = outputs
        .into_iter()
        .filter_map(|o| {
            let len = o.decode()?.len() as u64;
            let keep = len <= budget && files::OUTPUT_MIME_TYPES.contains(&o.mime_type.as_str());
            keep.then(|| {
                budget -= len;
                o
            })
        })
        .take(files::MAX_OUTPUTS)
        .collect();
    (files, outputs)
}

/// Largest result frame a child may send; the harness enforces the same number.
pub const MAX_RESULT_BYTES: usize = 16 << 20;

fn memory_message(policy: &RunnerPolicy) -> String {
    format!(
        "MemoryError: Memory limit exceeded ({} MB)",
        policy.memory_limit_mb
    )
}

fn parse_child_frame(report: &RunReport) -> Result<Option<ChildReport>, String> {
    match report.child_frame.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => serde_json::from_str::<ChildReport>(text)
            .map(Some)
            .map_err(|e| e.to_string()),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => "unknown signal",
    }
}

#[cfg(test)]
mod tests;

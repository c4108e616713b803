//! Messages exchanged between the host and a worker, and the child's own report.

use serde::{Deserialize, Serialize};
use crate::plan::RunIsolation;
use spr_policy::RunnerPolicy;

/// Host to worker.
// A message is built once per run and moved straight into a frame: boxing the large
// variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostMessage {
    /// Execute one run in a fresh process forked from the worker.
    Run(RunRequest),
    /// Finish and exit.
    Shutdown,
}

/// Worker to host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// First frame of every worker: who it is and which protocol it speaks.
    Hello(Hello),
    /// What the worker observed of one run.
    Report(RunReport),
    /// The worker cannot go on (it exits after sending this).
    Fatal { message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u32,
    pub harness_hash: String,
    pub python_version: String,
    pub pid: u32,
    /// What every run of this worker gets before its request exists.
    #[serde(default)]
    pub isolation: RunIsolation,
}

/// One run: the code, its input and the policy (with `config_path` already resolved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    pub id: u64,
    pub code: String,
    pub input_data: serde_json::Value,
    pub policy: RunnerPolicy,
}

/// What the worker saw of a run's process. Everything here except `child_frame` is
/// observed by the worker from outside the child, so user code cannot forge it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunReport {
    pub id: u64,
    /// The child's exit status when it exited normally.
    pub exit_code: Option<i32>,
    /// The signal that ended the child, if one did.
    pub signal: Option<i32>,
    /// The worker killed the run at its deadline.
    pub timed_out: bool,
    pub duration_ms: f64,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// The raw bytes the child wrote on its result channel (decoded as UTF-8 with
    /// replacement), if any. Parsed and checked host-side.
    pub child_frame: Option<String>,
    /// The child wrote more than the result limit on its result channel.
    pub child_frame_overflow: bool,
    /// Processes the run left behind that the worker had to kill.
    pub leftover_processes: u32,
    /// The worker could not make what this run wrote fresh for the next run: it serves
    /// no other run (the host replaces it).
    #[serde(default)]
    pub retire: bool,
}

/// How user code ended, as the child's harness saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildOutcome {
    /// The code ran to the end.
    Completed,
    /// The code raised (or failed to compile).
    Exception,
    /// The code raised `SystemExit`.
    Exit,
    /// The code ran out of memory.
    MemoryError,
}

/// The frame the child writes on its result channel. It is only believed where it
/// agrees with what the worker observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildReport {
    pub outcome: ChildOutcome,
    #[serde(default)]
    pub result: serde_json::Value,
    #[serde(default)]
    pub error: Option<String>,
    /// For `exit`: the status the harness derived from the `SystemExit` value.
    #[serde(default)]
    pub exit_status: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode_frame;

    #[test]
    fn wire_shapes_are_stable() {
        let run = HostMessage::Run(RunRequest {
            id: 7,
            code: "result = 2 + 2".into(),
            input_data: serde_json::json!({"x": 1}),
            policy: RunnerPolicy::default(),
        });
        insta::assert_json_snapshot!("run_request", run);
        let hello = WorkerMessage::Hello(Hello {
            protocol_version: 1,
            harness_hash: "0123456789abcdef".into(),
            python_version: "3.11.2".into(),
            pid: 42,
            isolation: RunIsolation::default(),
        });
        insta::assert_json_snapshot!("hello", hello);
        let report = WorkerMessage::Report(RunReport {
            id: 7,
            exit_code: Some(0),
            duration_ms: 1.5,
            stdout: "hi\n".into(),
            child_frame: Some(r#"{"outcome":"completed","result":4}"#.into()),
            ..RunReport::default()
        });
        insta::assert_json_snapshot!("report", report);
    }

    #[test]
    fn a_frame_is_a_big_endian_length_then_json() {
        let frame = encode_frame(&HostMessage::Shutdown).unwrap();
        insta::assert_debug_snapshot!("shutdown_frame", String::from_utf8_lossy(&frame));
        assert_eq!(&frame[..4], &[0, 0, 0, 19]);
    }
}

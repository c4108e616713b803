//! Messages exchanged between the host and a worker, and the child's own report.

use crate::files::{FileIn, FileOut, Output};
use crate::json::Json;
use crate::plan::RunIsolation;
use serde::{Deserialize, Deserializer, Serialize};
use spr_policy::RunnerPolicy;

/// Host to worker.
// A message is built once per run and moved straight into a frame: boxing the large
// variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostMessage {
    /// Execute one run in a fresh process forked from the worker.
    Run(RunRequest),
    /// Execute one cell of the worker's session: the first cell makes the session's
    /// process, later ones run in it, with the globals the earlier cells left.
    Cell(RunRequest),
    /// Finish and exit.
    Shutdown,
}

// Not derived: serde buffers the body of an internally tagged enum, and the buffer
// loses the text `RunRequest::input_data` keeps. A plain struct reads the same shape.
impl<'de> Deserialize<'de> for HostMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;

        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Kind {
            Run,
            Cell,
            Shutdown,
        }
        #[derive(Deserialize)]
        struct Wire {
            #[serde(rename = "type")]
            kind: Kind,
            id: Option<u64>,
            code: Option<String>,
            input_data: Option<Json>,
            policy: Option<RunnerPolicy>,
            #[serde(default)]
            files: Vec<FileIn>,
            #[serde(default)]
            collect: Vec<String>,
        }

        let wire = Wire::deserialize(deserializer)?;
        let request = |wire: Wire| -> Result<RunRequest, D::Error> {
            Ok(RunRequest {
                id: wire.id.ok_or_else(|| D::Error::missing_field("id"))?,
                code: wire.code.ok_or_else(|| D::Error::missing_field("code"))?,
                input_data: wire
                    .input_data
                    .ok_or_else(|| D::Error::missing_field("input_data"))?,
                policy: wire
                    .policy
                    .ok_or_else(|| D::Error::missing_field("policy"))?,
                files: wire.files,
                collect: wire.collect,
            })
        };
        match wire.kind {
            Kind::Shutdown => Ok(HostMessage::Shutdown),
            Kind::Run => Ok(HostMessage::Run(request(wire)?)),
            Kind::Cell => Ok(HostMessage::Cell(request(wire)?)),
        }
    }
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
    Fatal {
        message: String,
        /// What failed, when the worker knows it is not chance: a preload or warm-up
        /// failure will fail again in every worker started with the same options.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<FatalCause>,
    },
    /// Before the greeting, only from a worker with a preload or a warm-up: the stage of
    /// its start it enters. A worker that dies after `preload` and before `started` did
    /// so in the operator's code (a warm-up calling `os._exit`, a module
    /// that crashes the interpreter, a memory limit the preload does not fit in): every
    /// worker started with the same options would.
    Stage { stage: StartStage },
}

/// A stage of a worker's start (see [`WorkerMessage::Stage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartStage {
    /// The harness is about to import the preloaded modules and run the warm-up.
    Preload,
    /// The preload and the warm-up are done; the greeting follows.
    Started,
}

/// Why a worker could not go on, when that is known to be the options it was started
/// with rather than chance (absent: any other failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FatalCause {
    /// A `--preload` module could not be imported, or the `--warmup` code failed or
    /// left the worker in a state its runs may not share.
    Preload,
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
    /// The plan's preloaded modules and what importing them cost the worker (absent
    /// when nothing was preloaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preload: Option<PreloadCost>,
    /// The monitor's private writable memory (VmData) besides the preload's, in KiB, once
    /// it is ready to fork: the interpreter and the harness. A run's memory limit is its
    /// policy's on top of it (and of the preload's `data_kb`).
    #[serde(default)]
    pub base_data_kb: u64,
    /// How the monitor laid out its memory before forking (absent from older harnesses).
    #[serde(default)]
    pub memory: MemoryLayout,
}

/// What the monitor did to its memory once it was ready to fork: huge pages for its heap,
/// and the pages each run's process copies while it waits (learned from the warm-up).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoryLayout {
    /// The monitor's memory now in huge pages, in KiB.
    #[serde(default)]
    pub huge_pages_kb: u64,
    /// The part of those huge pages that was not in use, which the kernel filled with
    /// zeroes: resident memory the monitor gained, in KiB.
    #[serde(default)]
    pub huge_pages_filled_kb: u64,
    /// What each run's process copies before its request, in KiB: resident memory of
    /// every waiting run's process.
    #[serde(default)]
    pub prefault_kb: u64,
}

/// What the monitor measured around the import of the plan's preloaded modules. Every
/// run's process is forked with them, so the harness adds `data_kb` to each run's
/// memory limit (RLIMIT_DATA) and `vm_kb` to its address-space limit, and the local
/// engine adds `rss_kb` to its worker's memory cgroup: a run can still allocate its
/// policy's memory on top of them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PreloadCost {
    pub modules: Vec<String>,
    /// Growth of the monitor's resident set (VmRSS) over the imports, in KiB.
    #[serde(default)]
    pub rss_kb: u64,
    /// Growth of the monitor's address space (VmSize) over the imports, in KiB.
    #[serde(default)]
    pub vm_kb: u64,
    /// Growth of the monitor's private writable memory (VmData) over the imports, in KiB.
    #[serde(default)]
    pub data_kb: u64,
}

/// One run: the code, its input and the policy (with `config_path` already resolved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    pub id: u64,
    pub code: String,
    /// A JSON object, sent to the worker as the caller wrote it.
    pub input_data: Json,
    pub policy: RunnerPolicy,
    /// Written into the run's scratch directory before the code runs (already checked
    /// with [`crate::Attachments::validate`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileIn>,
    /// Globs of files to return from scratch after the code ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collect: Vec<String>,
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
    /// Microseconds the run's process spent isolating itself before it was ready for its
    /// request (off the latency path when it was made ahead of time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_us: Option<u64>,
    /// A session's cell: with neither `exit_code` nor `signal`, the session's process
    /// lives on after it (its status is then what the child's frame says).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cell: bool,
    /// The session's process ended during the cell: the session's state is gone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub session_lost: bool,
    /// The session's process was killed for writing on its result pipe what the harness
    /// never writes (user code writing on the pipe itself).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frame_refused: bool,
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
    /// The text the harness wrote, so numbers keep every digit.
    #[serde(default)]
    pub result: Json,
    #[serde(default)]
    pub error: Option<String>,
    /// For `exit`: the status the harness derived from the `SystemExit` value.
    #[serde(default)]
    pub exit_status: Option<i64>,
    /// For a session's cell: the value of its last expression (null otherwise).
    #[serde(default)]
    pub value: Option<Json>,
    /// Files matched by the request's `collect` globs.
    #[serde(default)]
    pub files: Vec<FileOut>,
    /// Figures the code left open, rendered.
    #[serde(default)]
    pub outputs: Vec<Output>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode_frame;

    #[test]
    fn a_fatal_frame_names_a_preload_failure_and_is_read_without_a_cause_too() {
        let read = |text: &str| serde_json::from_str::<WorkerMessage>(text).unwrap();
        assert_eq!(
            read(r#"{"type": "fatal", "message": "m", "cause": "preload"}"#),
            WorkerMessage::Fatal {
                message: "m".into(),
                cause: Some(FatalCause::Preload)
            }
        );
        assert_eq!(
            read(r#"{"type": "fatal", "message": "m"}"#),
            WorkerMessage::Fatal {
                message: "m".into(),
                cause: None
            }
        );
        assert!(serde_json::from_str::<WorkerMessage>(
            r#"{"type": "fatal", "message": "m", "cause": "chance"}"#
        )
        .is_err());
    }

    #[test]
    fn stage_frames_name_the_stage_of_a_start() {
        let read = |text: &str| serde_json::from_str::<WorkerMessage>(text);
        assert_eq!(
            read(r#"{"type": "stage", "stage": "preload"}"#).unwrap(),
            WorkerMessage::Stage {
                stage: StartStage::Preload
            }
        );
        assert_eq!(
            read(r#"{"type": "stage", "stage": "started"}"#).unwrap(),
            WorkerMessage::Stage {
                stage: StartStage::Started
            }
        );
        assert!(read(r#"{"type": "stage", "stage": "later"}"#).is_err());
        assert!(read(r#"{"type": "stage"}"#).is_err());
    }

    #[test]
    fn wire_shapes_are_stable() {
        let run = HostMessage::Run(RunRequest {
            id: 7,
            code: "result = 2 + 2".into(),
            input_data: serde_json::json!({"x": 1}).into(),
            policy: RunnerPolicy::default(),
            files: Vec::new(),
            collect: Vec::new(),
        });
        // Through serde_json's own text: insta's serializer would show `Json` as
        // serde_json's private raw-value struct.
        insta::assert_snapshot!("run_request", serde_json::to_string_pretty(&run).unwrap());
        let hello = WorkerMessage::Hello(Hello {
            protocol_version: 1,
            harness_hash: "0123456789abcdef".into(),
            python_version: "3.11.2".into(),
            pid: 42,
            isolation: RunIsolation::default(),
            preload: None,
            base_data_kb: 18_000,
            memory: MemoryLayout {
                huge_pages_kb: 8192,
                huge_pages_filled_kb: 1024,
                prefault_kb: 2800,
            },
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
    fn a_run_request_keeps_its_input_text_both_ways() {
        let input = r#"{"x": 123456789012345678901234567890, "f": 1e-300}"#;
        let run = HostMessage::Run(RunRequest {
            id: 1,
            code: "result = x + 1".into(),
            input_data: input.parse().unwrap(),
            policy: RunnerPolicy::default(),
            files: Vec::new(),
            collect: Vec::new(),
        });
        let frame = encode_frame(&run).unwrap();
        let text = std::str::from_utf8(&frame[4..]).unwrap();
        assert!(
            text.starts_with(&format!(
                r#"{{"type":"run","id":1,"code":"result = x + 1","input_data":{input},"#
            )),
            "{text}"
        );
        let back: HostMessage = serde_json::from_str(text).unwrap();
        let HostMessage::Run(back_run) = &back else {
            panic!("{back:?}")
        };
        assert_eq!(back_run.input_data.get(), input);
        assert_eq!(back, run);
        let shutdown: HostMessage = serde_json::from_str(r#"{"type":"shutdown"}"#).unwrap();
        assert_eq!(shutdown, HostMessage::Shutdown);
        let err = serde_json::from_str::<HostMessage>(r#"{"type":"run","id":1}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `code`"), "{err}");
    }

    #[test]
    fn a_run_request_carries_its_files_and_globs_and_old_frames_still_read() {
        let run = HostMessage::Run(RunRequest {
            id: 2,
            code: "pass".into(),
            input_data: serde_json::json!({}).into(),
            policy: RunnerPolicy::default(),
            files: vec![FileIn::text("a.txt", "hi"), FileIn::bytes("b.bin", &[0, 1])],
            collect: vec!["out/**".into()],
        });
        let frame = encode_frame(&run).unwrap();
        let text = std::str::from_utf8(&frame[4..]).unwrap();
        assert!(
            text.contains(r#""files":[{"path":"a.txt","content":"hi","encoding":"utf-8"},"#),
            "{text}"
        );
        let back: HostMessage = serde_json::from_str(text).unwrap();
        assert_eq!(back, run);
        let child: ChildReport = serde_json::from_str(
            r#"{"outcome": "completed", "files": [{"path": "o", "content": "", "size": 0, "truncated": false}],
                "outputs": [{"mime_type": "image/png", "data": ""}]}"#,
        )
        .unwrap();
        assert_eq!((child.files.len(), child.outputs.len()), (1, 1));
    }

    #[test]
    fn a_child_report_keeps_its_result_text() {
        let child: ChildReport = serde_json::from_str(
            r#"{"outcome": "completed", "result": [1, 10000000000000000000000]}"#,
        )
        .unwrap();
        assert_eq!(child.result.get(), "[1, 10000000000000000000000]");
        let bare: ChildReport = serde_json::from_str(r#"{"outcome": "exception"}"#).unwrap();
        assert!(bare.result.is_null());
    }

    #[test]
    fn a_frame_is_a_big_endian_length_then_json() {
        let frame = encode_frame(&HostMessage::Shutdown).unwrap();
        insta::assert_debug_snapshot!("shutdown_frame", String::from_utf8_lossy(&frame));
        assert_eq!(&frame[..4], &[0, 0, 0, 19]);
    }
}

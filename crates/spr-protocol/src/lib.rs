//! The contract between an spr host and its Python workers: versioned messages, framing,
//! the embedded harness, and the pure logic that turns what a worker observed into a
//! [`RunnerResult`].
//!
//! Sans-IO: nothing here reads or writes a file descriptor, so engines (local processes,
//! Docker attach streams) share one implementation and it is tested without Python.

mod causes;
mod files;
mod frame;
mod harness;
mod json;
mod message;
mod plan;
mod pool;
mod receipt;
mod result;
pub mod seccomp;
mod session;
pub mod wire;

pub use causes::message_with_causes;
pub use files::{
    AttachmentError, Attachments, FileEncoding, FileIn, FileOut, Output, PathProblem,
    MAX_COLLECT_GLOBS, MAX_FILES_IN, MAX_FILES_IN_BYTES, MAX_FILES_OUT, MAX_FILES_OUT_BYTES,
    MAX_GLOB_BYTES, MAX_OUTPUTS, MAX_OUTPUTS_BYTES, MAX_PATH_BYTES, MAX_PATH_DEPTH,
    MAX_SEGMENT_BYTES, OUTPUT_MIME_TYPES,
};
pub use frame::{encode_frame, FrameDecoder, FrameError, FRAME_HEADER_LEN, MAX_FRAME_LEN};
pub use harness::{harness_hash, HARNESS_FILE_NAME, HARNESS_SOURCE};
pub use json::{Json, JsonKind};
pub use message::{
    ChildOutcome, ChildReport, FatalCause, Hello, HostMessage, MemoryLayout, PreloadCost,
    RunReport, RunRequest, StartStage, WorkerMessage,
};
pub use plan::{
    denies_processes, validate_preload, validate_warmup, DevShm, Freshness, HarnessPlan,
    LandlockPlan, PreloadError, ProcMount, RunIsolation, TmpfsMount, WarmupError,
    LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET, LANDLOCK_SCOPE_SIGNAL, MAX_WARMUP_BYTES,
};
pub use pool::{default_pool_size, MAX_DEFAULT_POOL_SIZE, MAX_POOL_SIZE, MAX_SESSIONS};
pub use receipt::{
    CgroupReceipt, FilesystemReceipt, MissingProtection, NamespacesReceipt, RlimitsReceipt,
    SandboxReceipt, SeccompReceipt, ADDRESS_SPACE_HEADROOM_MB,
};
pub use result::{
    assemble_result, RunnerResult, EXIT_INFRASTRUCTURE, EXIT_TIMEOUT, MAX_RESULT_BYTES,
};
pub use session::{
    session_receipt, session_ttl, Cell, SessionError, CELL_INTERRUPT_GRACE, DEFAULT_MAX_SESSIONS,
    DEFAULT_SESSION_TTL_SECONDS, MAX_SESSION_TTL_SECONDS,
};
pub use wire::MAX_INPUT_DEPTH;

/// Bumped whenever a message shape or the harness behaviour changes incompatibly.
/// The host refuses a worker that greets it with another version.
pub const PROTOCOL_VERSION: u32 = 4;

//! Configuration of a `LocalEngine`.

pub use crate::sandbox::SandboxMode;
use std::path::PathBuf;

/// How a missing venv is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VenvManager {
    /// `uv` when it is on PATH, else `python -m venv`.
    #[default]
    Auto,
    Uv,
    Python,
}

impl std::str::FromStr for VenvManager {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(VenvManager::Auto),
            "uv" => Ok(VenvManager::Uv),
            "python" => Ok(VenvManager::Python),
            other => Err(format!(
                "venv_manager must be 'auto', 'uv' or 'python', got '{other}'"
            )),
        }
    }
}

/// Options of a `LocalEngine`.
#[derive(Debug, Clone)]
pub struct LocalEngineConfig {
    /// The virtual environment folder itself (created by `LocalEngine::prepare` when
    /// missing).
    pub venv_dir: PathBuf,
    pub venv_manager: VenvManager,
    /// Pinned `name==version` specs installed into the venv once.
    pub packages: Vec<String>,
    /// Warm workers kept ready; `None`: [`spr_protocol::default_pool_size`],
    /// `min(cores, 4)`. `Some(0)` is refused by `LocalEngine::new`.
    pub pool_size: Option<usize>,
    /// Interpreter used to create the venv; default: `python3` found on PATH.
    pub python: Option<PathBuf>,
    /// Where the engine makes its private directory (mode 0700, a fresh random name,
    /// removed when the engine is dropped or, if it died, by the next engine); default:
    /// the system temp dir.
    pub scratch_dir: Option<PathBuf>,
    /// How much of the Linux sandbox to apply (default: all this machine supports).
    pub sandbox: SandboxMode,
    /// Size of each sandboxed worker's scratch tmpfs (its runs' files), in MiB.
    pub scratch_tmpfs_mb: u64,
    /// Sessions that may be open at once (each holds a worker of its own); `None`:
    /// [`spr_protocol::DEFAULT_MAX_SESSIONS`]. `Some(0)` is refused by `LocalEngine::new`.
    pub max_sessions: Option<usize>,
    /// Modules imported once in every warm worker before any request (dotted names,
    /// e.g. `pandas`, `matplotlib.pyplot`): runs fork with them loaded, each with its
    /// own copy-on-write copy, so what a run changes in them never reaches the next.
    /// A run still imports them itself, under its policy. Checked by `LocalEngine::new`.
    pub preload: Vec<String>,
    /// Python run in every warm worker after the preload, before any request (e.g.
    /// `import pandas as pd; pd.DataFrame({"a": [1]}).a.sum()`): what the modules set up
    /// on first use is then in every run's process from the start, and the memory it
    /// writes is copied while each run's process waits, not while it runs (a second run of
    /// it, in a throwaway child, learns which). Operator code with the worker's privileges,
    /// never a caller's; what it leaves in the modules every run sees. Checked by
    /// `LocalEngine::new`; a warm-up that fails, or leaves a thread, an open file or a
    /// child process, fails the worker (docs/BACKENDS.md, "The warm-up").
    pub warmup: Option<String>,
}

/// Default size of a sandboxed worker's scratch tmpfs.
pub const DEFAULT_SCRATCH_TMPFS_MB: u64 = 128;

impl LocalEngineConfig {
    pub fn new(venv_dir: impl Into<PathBuf>) -> Self {
        LocalEngineConfig {
            venv_dir: venv_dir.into(),
            venv_manager: VenvManager::Auto,
            packages: Vec::new(),
            pool_size: None,
            python: None,
            scratch_dir: None,
            sandbox: SandboxMode::default(),
            scratch_tmpfs_mb: DEFAULT_SCRATCH_TMPFS_MB,
            max_sessions: None,
            preload: Vec::new(),
            warmup: None,
        }
    }
}

//! `RunnerPolicy`: what untrusted code may import, call and consume, with strict TOML loading.
//!
//! This crate does no IO beyond reading a policy file, so it can be embedded alone.
//! The full reference of keys, ranges and file layouts is `docs/POLICY.md`.

mod error;
mod file;
mod load;
pub mod packages;
mod render;
mod sandbox;
mod validate;
mod value;

pub use error::PolicyError;
pub use file::{
    read_policy_file, read_regular_file, FileKind, LocalFileError, MAX_POLICY_FILE_BYTES,
};
pub use load::{check_keys, POLICY_KEYS};
pub use packages::{validate_pinned_packages, PackageSpecError};
pub use sandbox::{
    SandboxPolicy, DEFAULT_MAX_FILE_SIZE_MB, DEFAULT_MAX_OPEN_FILES, DEFAULT_MAX_PROCESSES,
    MAX_FILE_SIZE_MB_RANGE, MAX_OPEN_FILES_RANGE, MAX_PROCESSES_RANGE, PROTECTION_NAMES,
    SANDBOX_KEYS,
};
pub use validate::{
    is_identifier, MAX_OUTPUT_KB_RANGE, MEMORY_LIMIT_MB_RANGE, RESERVED_GLOBALS,
    TIMEOUT_SECONDS_RANGE,
};
pub use value::Value;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which of the allow/block lists is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Block only what the `blocked_*` lists name (the default).
    #[default]
    Restrict,
    /// Allow only what the `allowed_*` lists name.
    Allow,
}

/// The policy a run is executed under. Field names and defaults match the original
/// `safe-py-runner` so that its TOML files load unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunnerPolicy {
    pub mode: Mode,
    pub timeout_seconds: u64,
    pub memory_limit_mb: u64,
    pub max_output_kb: u64,
    pub allowed_imports: Vec<String>,
    pub blocked_imports: Vec<String>,
    pub allowed_builtins: Vec<String>,
    pub blocked_builtins: Vec<String>,
    pub allowed_globals: Vec<String>,
    pub blocked_globals: Vec<String>,
    pub extra_globals: BTreeMap<String, Value>,
    /// The kernel sandbox under the Python policy (`[policy.sandbox]`).
    #[serde(default)]
    pub sandbox: SandboxPolicy,
    /// When set, the policy is re-read from this file before every run and the
    /// other fields are ignored (the original's semantics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_path: Option<PathBuf>,
}

pub const DEFAULT_TIMEOUT_SECONDS: u64 = 5;
pub const DEFAULT_MEMORY_LIMIT_MB: u64 = 256;
pub const DEFAULT_MAX_OUTPUT_KB: u64 = 128;
pub const DEFAULT_BLOCKED_IMPORTS: &[&str] = &["os", "subprocess", "socket", "ctypes", "importlib"];
pub const DEFAULT_BLOCKED_BUILTINS: &[&str] = &["eval", "exec", "open", "compile", "breakpoint"];

impl Default for RunnerPolicy {
    fn default() -> Self {
        RunnerPolicy {
            mode: Mode::Restrict,
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            memory_limit_mb: DEFAULT_MEMORY_LIMIT_MB,
            max_output_kb: DEFAULT_MAX_OUTPUT_KB,
            allowed_imports: Vec::new(),
            blocked_imports: strings(DEFAULT_BLOCKED_IMPORTS),
            allowed_builtins: Vec::new(),
            blocked_builtins: strings(DEFAULT_BLOCKED_BUILTINS),
            allowed_globals: Vec::new(),
            blocked_globals: Vec::new(),
            extra_globals: BTreeMap::new(),
            sandbox: SandboxPolicy::default(),
            config_path: None,
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl RunnerPolicy {
    /// Checks every field: limits within their ranges, list entries that are Python
    /// identifiers (dotted for imports), `extra_globals` names that are identifiers and do
    /// not replace what the runner binds itself.
    ///
    /// Names present in both an allowed and a blocked list are not an error: only the
    /// lists of the active mode are consulted.
    pub fn validate(&self) -> Result<(), PolicyError> {
        validate::validate(self)
    }

    /// Parses a policy from TOML text and validates it.
    ///
    /// The policy is the `[policy]` table when there is one (then nothing else may be at
    /// the top level), otherwise the whole document. Keys the text omits keep their
    /// defaults. `origin` only names the file in errors; `config_path` is left unset.
    pub fn from_toml_str(text: &str, origin: Option<&Path>) -> Result<Self, PolicyError> {
        load::from_toml_str(text, origin)
    }

    /// Loads and validates a policy file, and sets `config_path` to `path` so that
    /// [`resolve`](Self::resolve) re-reads the file before each run.
    ///
    /// The file is read with [`read_policy_file`]: only a regular file of at most
    /// [`MAX_POLICY_FILE_BYTES`] is accepted, and opening it never blocks.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, PolicyError> {
        let path = path.as_ref();
        let text = read_policy_file(path)?;
        let mut policy = Self::from_toml_str(&text, Some(path))?;
        policy.config_path = Some(path.to_path_buf());
        Ok(policy)
    }

    /// The policy a run uses, always validated. With `config_path` set the file wins:
    /// it is re-read now and the object's other fields are ignored (the original's
    /// semantics, so edits to the file apply to later runs).
    pub fn resolve(&self) -> Result<Self, PolicyError> {
        match &self.config_path {
            Some(path) => Self::from_file(path),
            None => {
                self.validate()?;
                Ok(self.clone())
            }
        }
    }

    /// The policy as a `[policy]` table with a `[policy.extra_globals]` table, in the
    /// documented key order; [`from_toml_str`](Self::from_toml_str) reads it back
    /// unchanged. `config_path` is not rendered. TOML has no null, so `Value::Null`
    /// entries of `extra_globals` are omitted and named in a comment.
    pub fn to_toml(&self) -> String {
        render::to_toml(self)
    }
}

// Keeps the README's example compiling and true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

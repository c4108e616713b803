//! `RunnerPolicy`: what untrusted code may import, call and consume, with strict TOML loading.
//!
//! This crate does no IO beyond reading a policy file, so it can be embedded alone.

mod value;

pub use value::Value;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

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
            config_path: None,
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Why a policy was refused. (Placeholder: the policy issue fills this in.)
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Invalid(String),
}

impl RunnerPolicy {
    /// Load a policy from a TOML file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| PolicyError::Invalid(format!("{}: {e}", path.display())))?;
        let mut p: RunnerPolicy =
            toml::from_str(&text).map_err(|e| PolicyError::Invalid(e.to_string()))?;
        p.config_path = Some(path.to_path_buf());
        Ok(p)
    }

    /// The effective policy: re-read from `config_path` when it is set.
    pub fn resolve(&self) -> Result<Self, PolicyError> {
        match &self.config_path {
            Some(path) => Self::from_file(path),
            None => Ok(self.clone()),
        }
    }
}

//! Helpers shared by the integration tests: parsing with a fake file name, temp files.

#![allow(dead_code)]

use spr_policy::{PolicyError, RunnerPolicy};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Parses `text` as if it came from a file called `policy.toml`.
pub fn parse(text: &str) -> Result<RunnerPolicy, PolicyError> {
    RunnerPolicy::from_toml_str(text, Some(Path::new("policy.toml")))
}

/// Parses `text` and returns the error's Display, failing the test if it parsed.
pub fn error(text: &str) -> String {
    match parse(text) {
        Ok(p) => panic!("expected an error, got {p:?}"),
        Err(e) => e.to_string(),
    }
}

/// A fresh, empty directory under the system temp dir, removed on drop (tests run in
/// parallel, so each gets its own).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir() -> TempDir {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "spr-policy-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

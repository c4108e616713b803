//! Helpers shared by the CLI tests: run the real `spr` binary and render what it did.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

// Paths are looked up at run time first, so the same binaries work from a copy:
// `cargo xtask test` also runs chosen tests as an unprivileged user, from a nextest
// archive and a copy of the sources, where the compile-time paths (a checkout under
// /root, say) are out of that user's reach.

/// The `spr` binary under test. nextest sets `NEXTEST_BIN_EXE_spr` at run time (to the
/// extracted copy when it runs an archive); the compile-time path is the fallback.
pub fn spr_bin() -> PathBuf {
    std::env::var_os("NEXTEST_BIN_EXE_spr")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_spr")))
}

/// This crate's directory: cargo and nextest set `CARGO_MANIFEST_DIR` at run time too
/// (nextest to the copy given with `--workspace-remap`).
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The repository root (for examples/).
pub fn repo_root() -> PathBuf {
    manifest_dir().join("../..")
}

/// A writable directory for test scratch: `SPR_TEST_TMPDIR`, else `CARGO_TARGET_TMPDIR`.
pub fn target_tmpdir() -> PathBuf {
    std::env::var_os("SPR_TEST_TMPDIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

/// Under CI a missing prerequisite is a failure; locally the test is skipped loudly.
pub fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{what} is required under CI but is not available");
    }
    eprintln!("SKIPPED: {what} is not available on this machine");
    false
}

pub fn spr() -> Command {
    let mut cmd = Command::new(spr_bin());
    // Keep the environment from leaking into snapshots (a venv default, colors).
    cmd.env_remove("SPR_VENV_DIR").env("NO_COLOR", "1");
    cmd
}

/// Run with `stdin` as standard input (empty when `None`).
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spr starts");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let data = stdin.unwrap_or_default().to_vec();
    // A writer thread, so a large input cannot deadlock against unread output.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&data);
    });
    let out = child.wait_with_output().expect("spr finishes");
    writer.join().unwrap();
    out
}

/// Exit code, stdout and stderr in one stable text, with `redact` paths replaced.
pub fn render(out: &Output, redact: &[(&Path, &str)]) -> String {
    let mut text = format!(
        "exit: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status
            .code()
            .map_or("signal".to_string(), |c| c.to_string()),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for (path, name) in redact {
        text = text.replace(&path.display().to_string(), name);
    }
    text
}

pub fn code(out: &Output) -> i32 {
    out.status.code().expect("spr exited normally")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

/// The JSON lines of a `serve` session, sorted by the text of their `id`.
pub fn responses(out: &Output) -> Vec<serde_json::Value> {
    let mut lines: Vec<serde_json::Value> = stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    lines.sort_by_key(|v| v["id"].to_string());
    lines
}

//! Helpers shared by the CLI tests: run the real `spr` binary and render what it did.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub fn spr() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spr"));
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

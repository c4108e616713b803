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

/// The venv every test binary of this crate shares, under `CARGO_TARGET_TMPDIR` (or
/// `SPR_TEST_TMPDIR`), made with `python -m venv` (uv may be absent) by the first test
/// that gets there; the engine's lock keeps concurrent test binaries from racing.
pub fn cli_venv() -> &'static str {
    static VENV: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VENV.get_or_init(|| {
        let dir = target_tmpdir().join("spr-cli-venv").display().to_string();
        let out = run(
            spr().args([
                "run",
                "-c",
                "pass",
                "--venv-manager",
                "python",
                "--venv-dir",
                &dir,
            ]),
            None,
        );
        assert_eq!(
            code(&out),
            0,
            "creating the test venv: {}",
            render(&out, &[])
        );
        dir
    })
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

/// Run with empty standard input, killing `spr` and failing the test if it has not exited
/// within `limit` (for commands that must not hang, such as reading a FIFO).
pub fn run_within(cmd: &mut Command, limit: std::time::Duration) -> Output {
    exit_within(cmd, false, limit)
}

/// [`run_within`] with standard input held open (a client that sends nothing and never
/// leaves): `spr` must exit by itself.
pub fn run_within_holding_stdin(cmd: &mut Command, limit: std::time::Duration) -> Output {
    exit_within(cmd, true, limit)
}

fn exit_within(cmd: &mut Command, hold_stdin: bool, limit: std::time::Duration) -> Output {
    let mut child = cmd
        .stdin(if hold_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spr starts");
    let stdin = child.stdin.take();
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().expect("spr can be waited on").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("spr finishes");
            panic!("spr did not exit within {limit:?}: {}", render(&out, &[]));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(stdin);
    child.wait_with_output().expect("spr finishes")
}

/// An interactive `spr serve --stdio` session: requests are written one at a time and
/// each response is awaited with a deadline, so a server that hangs fails the test
/// instead of hanging it. The server is killed if the test ends early.
pub struct Session {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    stdout_reader: Option<std::thread::JoinHandle<()>>,
    // Drained as it comes, so a chatty server cannot block on a full pipe.
    stderr_reader: Option<std::thread::JoinHandle<String>>,
}

impl Session {
    pub fn start(cmd: &mut Command) -> Session {
        use std::io::{BufRead, Read};
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spr starts");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout_reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Session {
            child,
            stdin,
            lines,
            stdout_reader: Some(stdout_reader),
            stderr_reader: Some(stderr_reader),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// The next response line, parsed.
    pub fn recv(&self, limit: std::time::Duration) -> serde_json::Value {
        let line = self
            .lines
            .recv_timeout(limit)
            .unwrap_or_else(|e| panic!("no response within {limit:?}: {e}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Close standard input and wait for the exit; returns the exit code and stderr.
    /// Fails if any response is left that the test did not receive.
    pub fn finish(mut self, limit: std::time::Duration) -> (Option<i32>, String) {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("spr can be waited on") {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "spr serve did not exit within {limit:?} of EOF"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        // Worker processes may still hold the pipes for a moment after the server exits.
        if let Some(reader) = self.stdout_reader.take() {
            reader.join().unwrap();
        }
        let stderr = self.stderr_reader.take().unwrap().join().unwrap();
        let rest: Vec<String> = self.lines.try_iter().collect();
        assert!(rest.is_empty(), "responses nobody awaited: {rest:?}");
        (status.code(), stderr)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Only when the test failed half-way: `finish` has already reaped the child.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

//! Shared plumbing for the xtask commands: the error type, the repo root and running child processes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a command stopped.
///
/// A refusal means a precondition did not hold and nothing was changed; it maps to exit 2 like a usage
/// error, so scripts can tell "you asked for something invalid" from "a tool we ran failed" (exit 1).
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    Refused(String),
    Failed(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Refused(_) => 2,
            Error::Failed(_) => 1,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Error::Refused(m) | Error::Failed(m) => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message())
    }
}

pub fn refused(msg: impl Into<String>) -> Error {
    Error::Refused(msg.into())
}

pub fn failed(msg: impl Into<String>) -> Error {
    Error::Failed(msg.into())
}

/// The workspace root: xtask always lives one level below it, so this holds wherever cargo is run from.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}

/// The cargo that launched us (so `cargo +toolchain xtask` stays on that toolchain), else `cargo`.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// A git command pinned to `root`.
///
/// Variables that redirect git elsewhere are removed: when xtask runs from a git hook (or its tests run from
/// one) they would point every command, including the ones aimed at temporary test repos, at the outer repo.
pub fn git(root: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(root);
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_PREFIX",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        s.push(' ');
        // Quote what the shell would split, so the echoed command can be pasted back.
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
            s.push_str(&format!("'{}'", arg.replace('\'', r"'\''")));
        } else {
            s.push_str(&arg);
        }
    }
    s
}

/// Runs a command with inherited stdio, echoing it first so a failing step in a long flow is easy to spot.
pub fn run(cmd: &mut Command) -> Result<(), Error> {
    let shown = describe(cmd);
    eprintln!("$ {shown}");
    let status = cmd
        .status()
        .map_err(|e| failed(format!("cannot start `{shown}`: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(failed(format!("`{shown}` failed ({status})")))
    }
}

/// Runs a command and returns its stdout; on failure the error carries stderr, which is where tools explain.
pub fn output(cmd: &mut Command) -> Result<String, Error> {
    let shown = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(format!("cannot start `{shown}`: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(failed(format!(
            "`{shown}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A throwaway directory under the system temp dir (removed on drop), so fixtures never land in the repo.
#[cfg(test)]
#[derive(Debug)]
pub struct TempDir(PathBuf);

#[cfg(test)]
impl TempDir {
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xtask-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

#[cfg(test)]
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_commands_are_quoted_for_the_shell() {
        let mut cmd = Command::new("git");
        cmd.args(["tag", "-a", "v1.0.0", "-m", "spr v1.0.0", "", "it's"]);
        assert_eq!(
            describe(&cmd),
            r"git tag -a v1.0.0 -m 'spr v1.0.0' '' 'it'\''s'"
        );
    }

    #[test]
    fn refusals_exit_2_and_failures_exit_1() {
        assert_eq!(refused("x").exit_code(), 2);
        assert_eq!(failed("x").exit_code(), 1);
        assert_eq!(refused("bad version").to_string(), "error: bad version");
    }
}

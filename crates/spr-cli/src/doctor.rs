//! `spr doctor`: what this machine offers spr, one check per line.
//!
//! Every check is informational: `doctor` exits 0 even when optional pieces (uv,
//! Docker) are missing, so scripts can always read its report.

use crate::engine_opts::{default_venv_dir, DockerConnOpts};
use crate::error::{CliError, Exit};
use crate::output::{self, Table};
use clap::Args;
use std::process::Command;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the checks as a JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Present and working.
    Ok,
    /// Absent or broken, but spr works without it.
    Missing,
    /// Absent or broken, and spr needs it for its default (local) engine.
    Error,
    /// A fact rather than a pass or fail (a path, a setting).
    Info,
}

/// One line of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

impl Check {
    fn new(name: &'static str, status: Status, detail: impl Into<String>) -> Self {
        Check {
            name,
            status,
            detail: detail.into(),
        }
    }
}

pub async fn run(args: DoctorArgs, conn: &DockerConnOpts) -> Result<Exit, CliError> {
    let mut checks = tokio::task::spawn_blocking(host_checks)
        .await
        .map_err(|e| CliError::infrastructure("the checks failed").caused_by(e))?;
    checks.push(docker_check(conn).await);
    checks.extend(sandbox_checks());

    if args.json {
        #[derive(serde::Serialize)]
        struct Report<'a> {
            checks: &'a [Check],
        }
        output::json(&Report { checks: &checks });
    } else {
        let mut table = Table::new(&["CHECK", "STATUS", "DETAIL"]);
        for check in &checks {
            let status = serde_json::to_value(check.status).expect("Status serializes");
            table.row(vec![
                check.name.to_string(),
                status.as_str().unwrap_or_default().to_string(),
                check.detail.clone(),
            ]);
        }
        output::stdout(&table.render());
    }
    Ok(Exit::Ok)
}

/// Checks that run local programs (blocking).
fn host_checks() -> Vec<Check> {
    vec![python_check(), uv_check(), venv_check()]
}

/// `python3` on PATH may be a pyenv shim that is slow to start, so it is asked once
/// for the real interpreter and its version in the same call.
fn python_check() -> Check {
    let probe = Command::new("python3")
        .args([
            "-c",
            "import sys; print(sys.executable); print(sys.version.split()[0])",
        ])
        .output();
    match probe {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let path = lines.next().unwrap_or("?").trim().to_string();
            let version = lines.next().unwrap_or("?").trim().to_string();
            Check::new("python", Status::Ok, format!("{path} (Python {version})"))
        }
        Ok(out) => Check::new(
            "python",
            Status::Error,
            format!(
                "python3 failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ),
        Err(e) => Check::new(
            "python",
            Status::Error,
            format!("python3 not found on PATH: {e} (the local engine needs it)"),
        ),
    }
}

fn uv_check() -> Check {
    match Command::new("uv").arg("--version").output() {
        Ok(out) if out.status.success() => Check::new(
            "uv",
            Status::Ok,
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        ),
        _ => Check::new(
            "uv",
            Status::Missing,
            "not found on PATH (optional: venvs are made with python -m venv)",
        ),
    }
}

fn venv_check() -> Check {
    match default_venv_dir() {
        Some(dir) if dir.join("bin").join("python").exists() => {
            Check::new("venv", Status::Info, format!("{} (exists)", dir.display()))
        }
        Some(dir) => Check::new(
            "venv",
            Status::Info,
            format!("{} (created on first run)", dir.display()),
        ),
        None => Check::new(
            "venv",
            Status::Info,
            "no default (HOME is not set): pass --venv-dir or set SPR_VENV_DIR",
        ),
    }
}

/// A cheap call (listing running managed containers) with a deadline, so a remote
/// daemon that does not answer does not hang the report.
async fn docker_check(conn: &DockerConnOpts) -> Check {
    let engine = match conn.admin_engine() {
        Ok(engine) => engine,
        Err(e) => return Check::new("docker", Status::Missing, e.one_line()),
    };
    let outcome = tokio::time::timeout(Duration::from_secs(5), engine.list_containers(false)).await;
    match outcome {
        Ok(Ok(running)) => Check::new(
            "docker",
            Status::Ok,
            format!(
                "daemon reachable ({} managed container(s) running)",
                running.len()
            ),
        ),
        Ok(Err(e)) => Check::new("docker", Status::Missing, format!("not reachable: {e}")),
        Err(_) => Check::new(
            "docker",
            Status::Missing,
            "not reachable: no answer within 5s",
        ),
    }
}

/// Kernel protections of the local sandbox. The sandbox work adds one check each here:
/// user/mount/PID/network namespaces, seccomp, Landlock (ABI), cgroups (memory, pids),
/// reporting what a run on this machine would actually get.
fn sandbox_checks() -> Vec<Check> {
    spr_core::local_sandbox_probe()
        .protections
        .into_iter()
        .map(|p| {
            let name = spr_core::PROTECTION_NAMES
                .iter()
                .copied()
                .find(|n| *n == p.name)
                .unwrap_or("sandbox");
            if p.available {
                let detail = p.detail.unwrap_or_else(|| "available".into());
                Check::new(name, Status::Ok, detail)
            } else {
                let reason = p.reason.unwrap_or_else(|| "not available".into());
                Check::new(name, Status::Missing, reason)
            }
        })
        .collect()
}

//! `spr doctor`: what this machine offers spr, one check per line.
//!
//! The sandbox lines come from a real probe worker of the local engine (the same
//! engine `spr run` makes with these options): the protections are those in the
//! receipt of a run on it, cross-checked by what the run observed from inside
//! (its capabilities, seccomp mode, user map, hostname, network interfaces), never a
//! guess from what the kernel seems to support.
//!
//! Every check is informational: `doctor` exits 0 even when optional pieces (uv,
//! Docker) are missing, so scripts can always read its report.

use crate::engine_opts::{default_venv_dir, DockerConnOpts, SandboxArg, VenvManagerArg};
use crate::error::{CliError, Exit};
use crate::output::{self, Table};
use clap::Args;
use spr_core::{
    run_code, LocalEngine, LocalEngineConfig, PolicySource, RunnerPolicy, SandboxReceipt,
};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the checks as a JSON object.
    #[arg(long)]
    pub json: bool,
    /// Venv folder of the probe worker [default: the one `spr run` uses].
    #[arg(long, value_name = "DIR")]
    pub venv_dir: Option<PathBuf>,
    /// How a missing venv is created [default: auto].
    #[arg(long, value_enum, value_name = "MANAGER")]
    pub venv_manager: Option<VenvManagerArg>,
    /// Sandbox mode of the probe worker [default: auto].
    #[arg(long, value_enum, value_name = "MODE")]
    pub sandbox: Option<SandboxArg>,
}

/// What the probe run reports of its own process, read from inside.
const PROBE: &str = r#"
import os, socket
def status(*keys):
    out = {}
    with open('/proc/self/status') as f:
        for line in f:
            k, _, v = line.partition(':')
            if k in keys:
                out[k] = v.strip()
    return out
def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        return 'unreadable: %s' % e.strerror
def interfaces():
    try:
        with open('/proc/net/dev') as f:
            return sorted(l.split(':')[0].strip() for l in f.readlines()[2:])
    except OSError:
        return None
result = {
    'status': status('CapEff', 'CapBnd', 'NoNewPrivs', 'Seccomp', 'Seccomp_filters'),
    'uid_map': read('/proc/self/uid_map'),
    'hostname': socket.gethostname(),
    'interfaces': interfaces(),
    'processes': sorted(int(p) for p in os.listdir('/proc') if p.isdigit()),
}
"#;

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
    let probe = probe_worker(&args).await;
    checks.extend(sandbox_checks(&probe));

    if args.json {
        #[derive(serde::Serialize)]
        struct Report<'a> {
            checks: &'a [Check],
            probe: &'a Probe,
        }
        output::json(&Report {
            checks: &checks,
            probe: &probe,
        });
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

/// What a real probe worker got: the receipt of a run on it and what the run saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Probe {
    /// What this machine supports, by trial (`spr_core::local_sandbox_probe`).
    pub support: Option<spr_core::SandboxSupport>,
    /// The receipt of the probe run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<SandboxReceipt>,
    /// What the probe run observed of its own process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<serde_json::Value>,
    /// Why there is no receipt (the engine or the run failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Start a local engine as `spr run` would (one worker) and run [`PROBE`] on it.
async fn probe_worker(args: &DoctorArgs) -> Probe {
    let mut probe = Probe {
        support: tokio::task::spawn_blocking(spr_core::local_sandbox_probe)
            .await
            .ok(),
        ..Probe::default()
    };
    let Some(venv_dir) = args.venv_dir.clone().or_else(default_venv_dir) else {
        probe.error = Some("no venv folder: pass --venv-dir or set SPR_VENV_DIR".into());
        return probe;
    };
    let mut config = LocalEngineConfig::new(venv_dir);
    config.pool_size = Some(1);
    if let Some(manager) = args.venv_manager {
        config.venv_manager = manager.into();
    }
    if let Some(mode) = args.sandbox {
        config.sandbox = mode.into();
    }
    let engine = match LocalEngine::new(config) {
        Ok(engine) => engine,
        Err(e) => {
            probe.error = Some(format!("the local engine could not start: {e}"));
            return probe;
        }
    };
    if let Err(e) = engine.prepare().await {
        probe.error = Some(format!("the local engine could not start: {e}"));
        return probe;
    }
    let policy = RunnerPolicy {
        blocked_imports: vec![],
        blocked_builtins: vec![],
        timeout_seconds: 30,
        ..RunnerPolicy::default()
    };
    match run_code(PROBE, &engine, None, PolicySource::Policy(policy)).await {
        Ok(result) if result.ok => {
            probe.observed = Some(result.result.to_value());
            probe.receipt = result.sandbox;
        }
        Ok(result) => {
            probe.receipt = result.sandbox;
            probe.error = Some(format!(
                "the probe run failed: {}",
                result.error.unwrap_or_default()
            ));
        }
        Err(e) => probe.error = Some(format!("the probe run was refused: {e}")),
    }
    engine.shutdown().await;
    probe
}

/// One line per protection of the local sandbox, from the probe run's receipt (what a
/// run on this machine, as this user, really gets). Without a receipt, what the
/// machine supports by trial, and why the probe run failed.
fn sandbox_checks(probe: &Probe) -> Vec<Check> {
    let mut checks = Vec::new();
    let support = probe.support.as_ref();
    let detail_of = |name: &str| {
        support
            .and_then(|s| s.get(name))
            .and_then(|p| p.detail.clone())
    };
    match &probe.receipt {
        Some(receipt) => {
            for name in spr_core::PROTECTION_NAMES {
                if *name == "audit_hooks" {
                    // A matter of each run's policy, not of the machine.
                    checks.push(Check::new(
                        name,
                        Status::Info,
                        "in every run whose policy withholds os, subprocess, socket, ctypes or open",
                    ));
                    continue;
                }
                if receipt.applied(name) {
                    let detail = match *name {
                        "landlock" => receipt.landlock_abi.map(|v| format!("ABI {v}")),
                        "seccomp" => receipt
                            .seccomp
                            .as_ref()
                            .map(|s| format!("deny-list of {} syscalls", s.denied_syscalls)),
                        "user_namespace" => receipt
                            .user_mapping
                            .as_ref()
                            .map(|m| format!("root inside maps to {}", mapping_words(m))),
                        _ => None,
                    }
                    .or_else(|| detail_of(name))
                    .unwrap_or_else(|| "applied".into());
                    checks.push(Check::new(name, Status::Ok, detail));
                } else {
                    let reason = receipt
                        .missing
                        .iter()
                        .find(|m| m.name == *name || name.starts_with(m.name.as_str()))
                        .map(|m| m.reason.clone())
                        .or_else(|| {
                            support
                                .and_then(|s| s.get(name))
                                .and_then(|p| p.reason.clone())
                        })
                        .unwrap_or_else(|| "not applied to the probe run".into());
                    checks.push(Check::new(name, Status::Missing, reason));
                }
            }
            if let Some(observed) = &probe.observed {
                checks.push(observed_check(receipt, observed));
            }
        }
        None => {
            for p in support.map(|s| s.protections.clone()).unwrap_or_default() {
                let name = spr_core::PROTECTION_NAMES
                    .iter()
                    .copied()
                    .find(|n| *n == p.name)
                    .unwrap_or("sandbox");
                if p.available {
                    checks.push(Check::new(
                        name,
                        Status::Info,
                        p.detail.unwrap_or_else(|| "supported (not probed)".into()),
                    ));
                } else {
                    checks.push(Check::new(
                        name,
                        Status::Missing,
                        p.reason.unwrap_or_else(|| "not available".into()),
                    ));
                }
            }
        }
    }
    if let Some(error) = &probe.error {
        checks.push(Check::new("probe_run", Status::Error, error.clone()));
    }
    checks
}

fn mapping_words(kind: &str) -> &'static str {
    match kind {
        "distinct" => "an unused unprivileged uid",
        "subordinate" => "a uid of this user's /etc/subuid range",
        _ => "this user's own uid (no other can be mapped here)",
    }
}

/// What the probe run saw of itself, and whether it agrees with its receipt.
fn observed_check(receipt: &SandboxReceipt, observed: &serde_json::Value) -> Check {
    let status = &observed["status"];
    let cap_eff = status["CapEff"].as_str().unwrap_or("?");
    let seccomp = status["Seccomp"].as_str().unwrap_or("?");
    let no_new_privs = status["NoNewPrivs"].as_str().unwrap_or("?");
    let interfaces = observed["interfaces"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_else(|| "?".into());
    let processes = observed["processes"].as_array().map_or(0, Vec::len);
    let mut disagreements = Vec::new();
    if receipt.capabilities_dropped && !cap_eff.trim_start_matches('0').is_empty() {
        disagreements.push(format!("capabilities {cap_eff} though dropped"));
    }
    if receipt.seccomp.is_some() && seccomp != "2" {
        disagreements.push(format!("seccomp mode {seccomp} though a filter was listed"));
    }
    if receipt.network.as_deref() == Some("none")
        && interfaces.split(',').any(|i| i != "lo" && !i.is_empty())
    {
        disagreements.push(format!(
            "interfaces {interfaces} though the network is none"
        ));
    }
    let detail = format!(
        "CapEff {cap_eff}, seccomp mode {seccomp} ({} filters), no_new_privs {no_new_privs}, hostname {}, interfaces [{interfaces}], {processes} process(es) visible, uid map \"{}\"",
        status["Seccomp_filters"].as_str().unwrap_or("?"),
        observed["hostname"].as_str().unwrap_or("?"),
        observed["uid_map"].as_str().unwrap_or("?").split_whitespace().collect::<Vec<_>>().join(" "),
    );
    if disagreements.is_empty() {
        Check::new("observed", Status::Ok, detail)
    } else {
        Check::new(
            "observed",
            Status::Error,
            format!(
                "{detail}; disagrees with the receipt: {}",
                disagreements.join("; ")
            ),
        )
    }
}

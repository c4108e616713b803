//! The local engine's Linux sandbox, specified by running real Python: each protection
//! is in the receipt and holds against code that tries to get around it. The attack
//! corpus (tests/attacks.rs) covers hostile programs at large; these tests pin the
//! receipt, the knobs, `require` and honest degradation.

mod common;

use common::run_on;
use serde_json::json;
use spr_core::{
    local_sandbox_probe, run_code, LocalEngine, LocalEngineConfig, PolicySource, RunnerPolicy,
    SandboxMode, VenvManager,
};

fn permissive() -> RunnerPolicy {
    RunnerPolicy {
        blocked_imports: vec![],
        blocked_builtins: vec![],
        ..RunnerPolicy::default()
    }
}

fn engine_with(mode: SandboxMode) -> LocalEngine {
    let mut config = LocalEngineConfig::new(common::shared_venv());
    config.venv_manager = VenvManager::Python;
    config.pool_size = Some(2);
    config.sandbox = mode;
    LocalEngine::new(config).expect("the test venv can be prepared")
}

/// Whether this machine has the full sandbox (a failure under CI when it has not).
fn full_sandbox() -> bool {
    let s = local_sandbox_probe();
    common::require(
        [
            "user_namespace",
            "mount_namespace",
            "pid_namespace",
            "landlock",
            "seccomp",
        ]
        .iter()
        .all(|n| s.available(n)),
        "the full local sandbox (namespaces, Landlock, seccomp)",
    )
}

#[test]
fn probe_reports_every_protection_with_a_reason_when_missing() {
    let s = local_sandbox_probe();
    for name in spr_policy_names() {
        let p = s.get(name).unwrap_or_else(|| panic!("probe lacks {name}"));
        assert!(
            p.available || p.reason.is_some(),
            "{name} missing without a reason"
        );
    }
    let text = serde_json::to_value(&s).unwrap();
    assert!(text["protections"].is_array());
}

fn spr_policy_names() -> Vec<&'static str> {
    // "namespaces" is a group and "audit_hooks" lives in Python: not probed.
    spr_core::PROTECTION_NAMES
        .iter()
        .copied()
        .filter(|n| *n != "namespaces" && *n != "audit_hooks")
        .collect()
}

#[tokio::test]
async fn every_result_carries_a_receipt_of_what_was_applied() {
    if !full_sandbox() {
        return;
    }
    let engine = engine_with(SandboxMode::Auto);
    let r = run_on(&engine, "result = 2 + 2", RunnerPolicy::default()).await;
    engine.shutdown().await;
    assert_eq!(r.result, json!(4));
    let s = r.sandbox.expect("a receipt");
    assert_eq!(s.engine, "local");
    let ns = s.namespaces.unwrap();
    assert!(
        ns.user && ns.mount && ns.pid && ns.network && ns.ipc && ns.uts,
        "{ns:?}"
    );
    assert!(s.filesystem.as_ref().unwrap().read_only_root);
    assert!(s.landlock_abi.unwrap() >= 1);
    assert_eq!(s.seccomp.as_ref().unwrap().mode, "deny-list");
    let rl = s.rlimits.as_ref().unwrap();
    // The policy's 256 MiB on top of what the interpreter and the harness hold.
    let data = rl.data_mb.unwrap();
    assert!((257..=256 + 64).contains(&data), "{rl:?}");
    assert_eq!(
        rl.address_space_mb,
        Some(256 + spr_core::ADDRESS_SPACE_HEADROOM_MB)
    );
    assert_eq!(rl.core_mb, Some(0));
    assert_eq!(rl.processes, Some(64));
    assert_eq!(s.network.as_deref(), Some("none"));
    assert!(s.audit_hooks);
    assert!(s.applied("namespaces") && s.applied("process_limit"));
}

#[tokio::test]
async fn the_run_sees_a_private_read_only_world() {
    if !full_sandbox() {
        return;
    }
    let engine = engine_with(SandboxMode::Auto);
    let code = r#"
import os, socket
out = {}
out['pid'] = os.getpid() < 100
out['hostname'] = socket.gethostname()
out['root'] = sorted(os.listdir('/'))
out['procs'] = sorted(p for p in os.listdir('/proc') if p.isdigit())
try:
    open('/usr/x', 'w')
except OSError as e:
    out['usr'] = e.errno
try:
    socket.create_connection(('1.1.1.1', 53), timeout=1)
except OSError as e:
    out['net'] = type(e).__name__
open('/tmp/left-behind', 'w').write('x')
result = out
"#;
    let r = run_on(&engine, code, permissive()).await;
    let after = run_on(
        &engine,
        "import os\nresult = os.listdir('/tmp')",
        permissive(),
    )
    .await;
    engine.shutdown().await;
    let out = &r.result.to_value();
    assert_eq!(out["pid"], json!(true), "{r:?}");
    assert_eq!(out["hostname"], json!("spr"));
    // The venv is bound at its own path: its top folder (/home for a user's venv) is in
    // the view, with nothing else of it.
    let venv_root = common::shared_venv()
        .components()
        .nth(1)
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    for absent in ["home", "var", "sys"] {
        if venv_root.as_deref() == Some(absent) {
            continue;
        }
        assert!(
            !out["root"].as_array().unwrap().contains(&json!(absent)),
            "{out}"
        );
    }
    // The run itself only: not the host's processes, not other runs, not even the
    // harness's monitor and zygote (its /proc shows only what it may trace).
    assert_eq!(out["procs"].as_array().unwrap().len(), 1, "{out}");
    assert!(out["usr"] == json!(30) || out["usr"] == json!(13), "{out}"); // EROFS or EACCES
    assert!(out.get("net").is_some(), "{out}");
    // Only the next run's own directory: what the first run left in /tmp is gone.
    // (A venv that lives under /tmp on the host is bound at the same path, so its top
    // folder is a mount point in /tmp; it is read-only and not the run's.)
    let venv_top = common::shared_venv()
        .strip_prefix("/tmp")
        .ok()
        .and_then(|rest| rest.components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    let after = after.result.to_value();
    let left: Vec<&str> = after
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .filter(|name| Some(*name) != venv_top.as_deref())
        .collect();
    assert!(left == ["run"], "{left:?}");
}

#[tokio::test]
async fn a_fork_bomb_stops_at_max_processes() {
    if !full_sandbox() {
        return;
    }
    let engine = engine_with(SandboxMode::Auto);
    let mut policy = permissive();
    policy.sandbox.max_processes = 8;
    let code = "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(5)\n            os._exit(0)\n        n += 1\nexcept OSError as e:\n    result = [n, e.errno]";
    let r = run_on(&engine, code, policy).await;
    engine.shutdown().await;
    let result = r.result.to_value();
    let n = result[0].as_u64().unwrap_or(999);
    assert!(n <= 8, "{r:?}");
    assert_eq!(result[1], json!(11)); // EAGAIN
}

#[tokio::test]
async fn two_concurrent_runs_cannot_see_each_other() {
    if !full_sandbox() {
        return;
    }
    let engine = std::sync::Arc::new(engine_with(SandboxMode::Auto));
    // Both workers are warm, so the runs overlap even on a loaded machine: the writer
    // holds its file for seconds, the reader's walk (scoped to what a run may write and
    // the view's own files, not /proc, /sys, /usr or the Python installation) is quick.
    engine.warm_up().await.expect("two workers start");
    let mut policy = permissive();
    policy.timeout_seconds = 60;
    let writer = {
        let engine = engine.clone();
        let policy = policy.clone();
        tokio::spawn(async move {
            let r = run_on(
                &engine,
                "import time\nopen('/tmp/spr-mine', 'w').write('secret-of-run-a')\nopen('/dev/shm/spr-mine', 'w').write('secret-of-run-a')\ntime.sleep(5)\nresult = 'a'",
                policy,
            )
            .await;
            (r, std::time::Instant::now())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let walk = r#"
import os, sys
skip = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
found = []
for root, dirs, files in os.walk('/'):
    real = os.path.realpath(root)
    if root == '/':
        dirs[:] = [d for d in dirs if d not in ('proc', 'sys', 'usr')]
    if real in skip or any(real.startswith(p + '/') for p in skip):
        dirs[:] = []
        continue
    found += [os.path.join(root, f) for f in files if f == 'spr-mine']
result = [found, sorted(p for p in os.listdir('/proc') if p.isdigit())]
"#;
    let reader = run_on(&engine, walk, policy).await;
    let read_at = std::time::Instant::now();
    let (a, written_at) = writer.await.unwrap();
    engine.shutdown().await;
    assert_eq!(a.result, json!("a"), "{a:?}");
    assert!(reader.ok, "{reader:?}");
    assert!(read_at < written_at, "the runs did not overlap: {reader:?}");
    assert_eq!(reader.result.to_value()[0], json!([]), "{reader:?}");
    assert_eq!(reader.result.to_value()[1].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn network_and_extra_paths_are_policy_knobs() {
    if !full_sandbox() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("spr-sbx-{}", std::process::id()));
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    // Runs are an unprivileged uid on the host: a writable path must let it write.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(dir.join("in.txt"), "shared data").unwrap();
    let engine = engine_with(SandboxMode::Auto);
    let mut policy = permissive();
    policy.sandbox.network = true;
    policy.sandbox.extra_read_paths = vec![dir.join("in.txt").display().to_string()];
    policy.sandbox.extra_write_paths = vec![out.display().to_string()];
    let code = format!(
        "data = open({:?}).read()\nopen({:?}, 'w').write(data.upper())\ntry:\n    open({:?}, 'w')\n    ro = False\nexcept OSError:\n    ro = True\nresult = ro",
        dir.join("in.txt"),
        out.join("result.txt"),
        dir.join("in.txt"),
    );
    let r = run_on(&engine, &code, policy).await;
    engine.shutdown().await;
    assert_eq!(r.result, json!(true), "{r:?}");
    assert_eq!(
        std::fs::read_to_string(out.join("result.txt")).unwrap(),
        "SHARED DATA"
    );
    let s = r.sandbox.unwrap();
    assert_eq!(s.network.as_deref(), Some("host"));
    assert!(!s.namespaces.unwrap().network);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_required_protection_that_is_missing_is_an_error_naming_it() {
    let engine = engine_with(SandboxMode::Off);
    let mut policy = RunnerPolicy::default();
    policy.sandbox.require = vec!["landlock".into(), "seccomp".into()];
    let r = run_on(&engine, "result = 1", policy).await;
    engine.shutdown().await;
    assert!(!r.ok);
    assert_eq!(r.exit_code, 125);
    let e = r.error.unwrap();
    assert!(
        e.contains("landlock") && e.contains("seccomp") && e.contains("sandbox = off"),
        "{e}"
    );
    let s = r.sandbox.unwrap();
    assert!(s.namespaces.is_none() && s.landlock_abi.is_none());
    assert_eq!(s.missing[0].name, "sandbox");
}

#[tokio::test]
async fn with_the_sandbox_off_the_receipt_says_so_and_runs_still_work() {
    let engine = engine_with(SandboxMode::Off);
    let r = run_on(&engine, "result = 2 + 2", RunnerPolicy::default()).await;
    engine.shutdown().await;
    assert_eq!(r.result, json!(4));
    let s = r.sandbox.unwrap();
    assert_eq!(s.network.as_deref(), Some("host"));
    assert!(s.rlimits.unwrap().processes.is_none());
    assert!(!s.missing.is_empty());
}

#[tokio::test]
async fn require_mode_refuses_to_start_without_the_full_sandbox_and_starts_with_it() {
    let s = local_sandbox_probe();
    let mut config = LocalEngineConfig::new(common::shared_venv());
    config.venv_manager = VenvManager::Python;
    config.sandbox = SandboxMode::Require;
    // `new` only checks the configuration; the sandbox is probed by the preparation.
    let engine = LocalEngine::new(config).expect("the configuration is valid");
    match engine.prepare().await {
        Ok(()) => {
            assert!(s.missing().is_empty());
            let r = run_code("result = 1", &engine, None, PolicySource::Default)
                .await
                .unwrap();
            engine.shutdown().await;
            assert_eq!(r.result, json!(1));
        }
        Err(e) => {
            assert!(!s.missing().is_empty());
            assert!(e.to_string().contains("the sandbox is required"), "{e}");
            // A run says the same, as an engine error.
            let r = run_code("result = 1", &engine, None, PolicySource::Default)
                .await
                .unwrap();
            assert_eq!(r.exit_code, spr_core::EXIT_INFRASTRUCTURE);
            assert!(r.error.unwrap().contains("the sandbox is required"));
        }
    }
}

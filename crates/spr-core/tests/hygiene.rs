//! Host hygiene of the local engine: descriptors the starting process left open reach no worker or run, every process of a run dies within a second of its host (SIGKILL included), the engine's directory is fresh, private and never adopted, a dead engine's directory is removed by the next, socket families a policy does not need are refused, a worker start that fails is an error and never a weaker sandbox, the receipt is honest about the user mapping, and files a root run made immutable are wiped all the same.
//!
//! Tests that need a second process (an engine holder to SIGKILL, a process started
//! with an inherited descriptor) re-run this test binary with `SPR_HYGIENE_ROLE` set:
//! `role_of_a_child_process` then plays that role instead of passing trivially.

mod common;

use serde_json::{json, Value};
use spr_core::{
    local_sandbox_probe, run_code, LocalEngine, LocalEngineConfig, PolicySource, RunnerPolicy,
    RunnerResult, SandboxMode, VenvManager,
};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROLE: &str = "SPR_HYGIENE_ROLE";
/// The line a role prints its findings on.
const REPORT: &str = "SPR_HYGIENE_REPORT ";

fn permissive(timeout_seconds: u64) -> RunnerPolicy {
    RunnerPolicy {
        blocked_imports: vec![],
        blocked_builtins: vec![],
        timeout_seconds,
        ..RunnerPolicy::default()
    }
}

fn config(pool_size: usize, mode: SandboxMode) -> LocalEngineConfig {
    let mut config = LocalEngineConfig::new(common::shared_venv());
    config.venv_manager = VenvManager::Python;
    config.pool_size = Some(pool_size);
    config.sandbox = mode;
    config
}

fn engine(pool_size: usize) -> LocalEngine {
    LocalEngine::new(config(pool_size, SandboxMode::Auto)).expect("the test venv can be prepared")
}

fn full_sandbox() -> bool {
    let s = local_sandbox_probe();
    common::require(
        [
            "user_namespace",
            "mount_namespace",
            "pid_namespace",
            "network_namespace",
            "landlock",
            "seccomp",
        ]
        .iter()
        .all(|n| s.available(n)),
        "the full local sandbox (namespaces, Landlock, seccomp)",
    )
}

async fn run(engine: &LocalEngine, code: &str, policy: RunnerPolicy) -> RunnerResult {
    run_code(code, engine, None, PolicySource::Policy(policy))
        .await
        .expect("the run is accepted")
}

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("/dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh private directory for one test.
fn test_dir(name: &str) -> PathBuf {
    let dir = common::target_tmpdir().join(format!(
        "hygiene-{name}-{}-{}",
        std::process::id(),
        random_hex()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid()).ok() == Some(0)
}

// ---------------------------------------------------------------------------------
// The child roles

/// Not a test of its own: the second process of the tests below (it passes at once
/// unless `SPR_HYGIENE_ROLE` is set).
#[test]
fn role_of_a_child_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match role.as_str() {
            "descriptors" => role_descriptors().await,
            "holder" => role_holder().await,
            "engine-in" => role_engine_in().await,
            "no-namespaces" => role_no_namespaces().await,
            other => panic!("unknown role {other}"),
        }
    });
}

fn report(value: Value) {
    println!("{REPORT}{value}");
}

/// fds 7 (the secret, read) and 8 (a sink, write) were left open by the shell that
/// started this process: a run must see neither, nor may any worker process hold them.
async fn role_descriptors() {
    let mine = |fd: i32| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
    let before = json!([mine(7), mine(8)]);
    let engine = engine(1);
    let code = r#"
import os, stat
fds = {}
for name in os.listdir("/proc/self/fd"):
    try:
        fds[name] = os.readlink("/proc/self/fd/" + name)
    except OSError as e:
        fds[name] = "gone: %s" % e.errno
out = {"fds": fds}
for fd in (7, 8):
    try:
        out["read %d" % fd] = os.read(fd, 100).decode("latin-1")
    except OSError as e:
        out["read %d" % fd] = e.errno
    try:
        out["write %d" % fd] = os.write(fd, b"written by the run")
    except OSError as e:
        out["write %d" % fd] = e.errno
open_fds = []
for fd in range(3, 1024):
    try:
        st = os.fstat(fd)
    except OSError:
        continue
    open_fds.append([fd, stat.S_IFMT(st.st_mode)])
out["open"] = open_fds
result = out
"#;
    let r = run(&engine, code, permissive(30)).await;
    // Every descendant of this process whose descriptors this user may read.
    let secret = std::env::var("SPR_SECRET_FILE").unwrap();
    let sink = std::env::var("SPR_SINK_FILE").unwrap();
    let mut checked = 0;
    let mut holders = Vec::new();
    for pid in descendants(std::process::id()) {
        let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        checked += 1;
        for e in entries.flatten() {
            if let Ok(target) = std::fs::read_link(e.path()) {
                let t = target.display().to_string();
                if t == secret || t == sink {
                    holders.push(format!(
                        "{pid}: fd {} -> {t}",
                        e.file_name().to_string_lossy()
                    ));
                }
            }
        }
    }
    engine.shutdown().await;
    report(json!({
        "before": before,
        "run": r.result.to_value(),
        "ok": r.ok,
        "error": r.error,
        "checked": checked,
        "holders": holders,
    }));
}

/// Hold an engine with runs that sleep (each: its main process, a child and a detached
/// grandchild, every one with the marker as argv[0]) until SIGKILLed.
async fn role_holder() {
    let marker = std::env::var("SPR_MARKER").unwrap();
    let mode = match std::env::var("SPR_MODE").as_deref() {
        Ok("off") => SandboxMode::Off,
        _ => SandboxMode::Auto,
    };
    let engine = std::sync::Arc::new(LocalEngine::new(config(2, mode)).unwrap());
    engine.warm_up().await.expect("workers start");
    let code = format!(
        r#"
import os, time
m = {marker:?}
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sleep", [m + "-detached", "6001"])
    os._exit(0)
if os.fork() == 0:
    os.execv("/bin/sleep", [m + "-child", "6001"])
os.execv("/bin/sleep", [m + "-main", "6001"])
"#
    );
    for _ in 0..2 {
        let engine = engine.clone();
        let code = code.clone();
        tokio::spawn(async move { run(&engine, &code, permissive(600)).await });
    }
    report(json!({"pid": std::process::id()}));
    tokio::time::sleep(Duration::from_secs(600)).await;
}

/// Make an engine in `SPR_SCRATCH_PARENT`, say which directory it made, and wait.
async fn role_engine_in() {
    let parent = PathBuf::from(std::env::var("SPR_SCRATCH_PARENT").unwrap());
    let mut config = config(1, SandboxMode::Auto);
    config.scratch_dir = Some(parent.clone());
    let before = entries(&parent);
    let engine = LocalEngine::new(config).unwrap();
    let r = run(&engine, "result = 1", RunnerPolicy::default()).await;
    let made: Vec<String> = entries(&parent).difference(&before).cloned().collect();
    report(json!({"made": made, "ok": r.ok, "pid": std::process::id()}));
    tokio::time::sleep(Duration::from_secs(600)).await;
    drop(engine);
}

/// In a user namespace whose `user.max_user_namespaces` is 0 (so the engine's probe
/// finds no namespaces, as on a machine without them): what a run of such a worker can
/// do to the process that started it, and to the harness.
async fn role_no_namespaces() {
    let engine = engine(1);
    let me = std::process::id();
    let limits = || std::fs::read_to_string("/proc/self/limits").unwrap();
    let nice = || {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .nth(16)
            .unwrap()
            .to_string()
    };
    let (limits_before, nice_before) = (limits(), nice());
    let code = format!(
        r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
out = {{"caps": [l for l in open("/proc/self/status").read().splitlines() if l.startswith("Cap")]}}
host = {me}
new = (ctypes.c_uint64 * 2)(0, 0)
out["prlimit host"] = [libc.prlimit(host, 4, new, None), ctypes.get_errno()]  # RLIMIT_CORE
try:
    os.setpriority(os.PRIO_PROCESS, host, 7)
    out["renice host"] = "changed"
except OSError as e:
    out["renice host"] = e.errno
for entry in ("environ", "mem"):
    try:
        with open("/proc/%d/%s" % (host, entry), "rb") as f:
            out["read host " + entry] = f.read(4096).decode("latin-1")
    except OSError as e:
        out["read host " + entry] = e.errno
libc.shmget.restype = ctypes.c_int
out["shmget"] = [libc.shmget(0, 4096, 0o1600), ctypes.get_errno()]
result = out
"#
    );
    let r = run(&engine, &code, permissive(30)).await;
    // And the zygote's limits, for the next run.
    let z = run(
        &engine,
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nnew = (ctypes.c_uint64 * 2)(4, 4)\nresult = libc.prlimit(os.getppid(), 7, new, None)",
        permissive(30),
    )
    .await;
    let next = run(&engine, "result = 2 + 2", permissive(30)).await;
    engine.shutdown().await;
    let s = r.sandbox.clone().unwrap_or_default();
    report(json!({
        "namespaced": s.applied("user_namespace"),
        "capabilities_dropped": s.capabilities_dropped,
        "run": r.result.to_value(),
        "error": r.error,
        "limits_changed": limits() != limits_before,
        "nice_changed": nice() != nice_before,
        "zygote_prlimit": z.result.to_value(),
        "next": [next.ok, next.exit_code, next.error],
    }));
}

/// Start this test binary in `role`, with `env`; `shell` (a `sh -c` prefix run before
/// it, such as redirections) when given.
fn spawn_role(role: &str, env: &[(&str, String)], shell: Option<&str>) -> Child {
    let exe = std::env::current_exe().unwrap();
    let args = [
        "--exact",
        "role_of_a_child_process",
        "--nocapture",
        "--test-threads",
        "1",
    ];
    let mut cmd = match shell {
        Some(prefix) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c")
                .arg(format!("{prefix}; exec \"$0\" \"$@\""))
                .arg(&exe)
                .args(args);
            c
        }
        None => {
            let mut c = Command::new(&exe);
            c.args(args);
            c
        }
    };
    cmd.env(ROLE, role)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd.spawn().expect("the test binary starts again")
}

/// The role's report line (waiting at most `limit` for it).
fn read_report(child: &mut Child, limit: Duration) -> Value {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may print "test <name> ... " on the same line first.
            if let Some(at) = line.find(REPORT) {
                let _ = tx.send(serde_json::from_str::<Value>(&line[at + REPORT.len()..]).unwrap());
            }
        }
    });
    rx.recv_timeout(limit).expect("the child role reports")
}

fn descendants(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for kid in children(p) {
            all.push(kid);
            todo.push(kid);
        }
    }
    all
}

/// Wait (at most 10 s) until none of `pids` is alive (gone, or a zombie).
fn wait_until_gone(pids: &[u32]) {
    let alive = |pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let state = stat
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .next()?
                    .to_string();
                Some(state != "Z" && state != "X")
            })
            .unwrap_or(false)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pids.iter().any(alive) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Children of every thread of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return kids;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            kids.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    kids
}

fn entries(dir: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

// ---------------------------------------------------------------------------------
// Inherited descriptors

#[test]
fn descriptors_left_open_by_the_starting_process_reach_no_worker_and_no_run() {
    if !full_sandbox() {
        return;
    }
    let dir = test_dir("fds");
    let secret_file = dir.join("secret");
    let sink = dir.join("sink");
    std::fs::write(&secret_file, format!("inherited-secret-{}", random_hex())).unwrap();
    std::fs::write(&sink, "").unwrap();
    let mut child = spawn_role(
        "descriptors",
        &[
            ("SPR_SECRET_FILE", secret_file.display().to_string()),
            ("SPR_SINK_FILE", sink.display().to_string()),
        ],
        // No close-on-exec: the shell's own redirections, kept across its exec.
        Some("exec 7<\"$SPR_SECRET_FILE\" 8>>\"$SPR_SINK_FILE\""),
    );
    let report = read_report(&mut child, Duration::from_secs(120));
    let status = child.wait().unwrap();
    let sink_text = std::fs::read_to_string(&sink).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{report}");
    // The starting process really had them.
    assert_eq!(
        report["before"],
        json!([
            secret_file.display().to_string(),
            sink.display().to_string()
        ]),
        "{report}"
    );
    assert_eq!(report["ok"], json!(true), "{report}");
    let r = &report["run"];
    for key in ["read 7", "write 7", "read 8", "write 8"] {
        assert_eq!(r[key], json!(9), "{key}: {r}"); // EBADF
    }
    assert!(
        sink_text.is_empty(),
        "the run wrote to the sink: {sink_text}"
    );
    // 0, 1, 2, the result pipe, and the listing's own descriptor: nothing else.
    for (fd, target) in r["fds"].as_object().unwrap() {
        let fd: i32 = fd.parse().unwrap();
        let t = target.as_str().unwrap_or("");
        let expected = match fd {
            0 => t == "/dev/null",
            1 | 2 => t.starts_with("pipe:"),
            _ => t.starts_with("pipe:") || t.starts_with("gone:") || t.starts_with("/proc/"),
        };
        assert!(expected, "fd {fd} -> {t} in the run: {r}");
    }
    let open = r["open"].as_array().unwrap();
    assert!(
        open.iter().all(|e| e[1] == json!(0o010000)),
        "descriptors other than pipes above 2: {open:?}"
    );
    assert!(
        open.len() <= 1,
        "more than the result pipe above 2: {open:?}"
    );
    assert_eq!(report["holders"], json!([]), "{report}");
    // Only root may read the descriptors of a worker's processes (they are another uid,
    // in the worker's user namespace, from its first process on).
    if is_root() {
        assert!(report["checked"].as_u64().unwrap_or(0) >= 1, "{report}");
    }
}

// ---------------------------------------------------------------------------------
// A host killed with SIGKILL

fn host_sigkill(mode: &str) -> Duration {
    let marker = format!("spr-hygiene-kill-{}-{}", std::process::id(), random_hex());
    let mut child = spawn_role(
        "holder",
        &[
            ("SPR_MARKER", marker.clone()),
            ("SPR_MODE", mode.to_string()),
        ],
        None,
    );
    let report = read_report(&mut child, Duration::from_secs(120));
    assert_eq!(report["pid"], json!(child.id()), "{report}");
    // Two runs, three processes each.
    let started = Instant::now();
    while common::pids_with(&marker).len() < 6 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the runs did not start: {:?}",
            common::pids_with(&marker)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pids = common::pids_with(&marker);
    child.kill().unwrap(); // SIGKILL
    let killed = Instant::now();
    child.wait().unwrap();
    let mut survivors = pids.clone();
    while !survivors.is_empty() && killed.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
        survivors = common::pids_with(&marker);
    }
    let delay = killed.elapsed();
    common::signal(&survivors, "KILL");
    eprintln!(
        "sandbox {mode}: the {} processes of the runs were gone {delay:?} after the host's SIGKILL",
        pids.len()
    );
    assert!(
        survivors.is_empty(),
        "still alive 10 s after the host died: {survivors:?}"
    );
    delay
}

#[test]
fn every_process_of_a_run_dies_within_a_second_of_its_host_being_sigkilled() {
    if !full_sandbox() {
        return;
    }
    let delay = host_sigkill("auto");
    assert!(delay < Duration::from_secs(1), "{delay:?}");
}

#[test]
fn without_namespaces_too_every_process_of_a_run_dies_with_its_host() {
    // The sandbox off: no PID namespace to take the runs with it, only the death
    // signals and the supervisor's sweep.
    let delay = host_sigkill("off");
    assert!(delay < Duration::from_secs(1), "{delay:?}");
}

/// `unshare --user --map-root-user` with `user.max_user_namespaces = 0` inside: a
/// worker there gets no namespaces, as on a machine without them (Landlock, seccomp,
/// no capabilities, rlimits only). Its runs must still not reach the process that
/// started spr (same uid, no PID namespace in between) or break the harness.
#[test]
fn without_namespaces_a_run_cannot_touch_the_process_that_started_spr() {
    let unshare_works = Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !common::require(unshare_works, "unshare --user --map-root-user") {
        return;
    }
    let mut child = spawn_role(
        "no-namespaces",
        &[],
        Some("exec unshare --user --map-root-user /bin/sh -c 'echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" \"$@\"' \"$0\" \"$@\""),
    );
    let report = read_report(&mut child, Duration::from_secs(120));
    let _ = child.wait();
    assert_eq!(
        report["namespaced"],
        json!(false),
        "the worker got namespaces after all: {report}"
    );
    assert_eq!(report["capabilities_dropped"], json!(true), "{report}");
    let r = &report["run"];
    for line in r["caps"].as_array().unwrap() {
        assert!(
            line.as_str().unwrap().ends_with("0000000000000000"),
            "{report}"
        );
    }
    // No SysV IPC without a private IPC namespace.
    assert_eq!(r["shmget"][0], json!(-1), "{report}");
    assert!(r["read host environ"].is_number(), "{report}");
    assert!(r["read host mem"].is_number(), "{report}");
    assert_ne!(r["renice host"], json!("changed"), "{report}");
    assert_ne!(
        r["prlimit host"][0],
        json!(0),
        "a run changed the host's limits: {report}"
    );
    assert_eq!(report["limits_changed"], json!(false), "{report}");
    assert_eq!(report["nice_changed"], json!(false), "{report}");
    assert_eq!(
        report["next"][0],
        json!(true),
        "after prlimit on the zygote: {report}"
    );
}

// ---------------------------------------------------------------------------------
// The engine's directory

#[tokio::test]
async fn the_engines_directory_is_fresh_private_and_nothing_planted_is_adopted_or_written_through()
{
    let parent = test_dir("squat");
    let victim_dir = parent.join("victim-dir");
    let victim_file = parent.join("victim-file");
    std::fs::create_dir(&victim_dir).unwrap();
    std::fs::write(&victim_file, "keep").unwrap();
    let pid = std::process::id();
    // Every name an attacker can guess: pid-only names, all-zero and all-f randoms,
    // directories open to all, symlinks to the victims, and the harness's file name.
    let mut planted = Vec::new();
    for (i, name) in [
        format!("spr-{pid}"),
        format!("spr-{pid}-"),
        format!("spr-{pid}-0000000000000000"),
        format!("spr-{pid}-ffffffffffffffff"),
        format!("spr-{pid}-0000000000000001"),
        "spr_harness.py".to_string(),
        "spr-harness.py".to_string(),
        ".lock".to_string(),
        "w-0".to_string(),
    ]
    .into_iter()
    .enumerate()
    {
        let path = parent.join(&name);
        if name.contains("harness") || name == ".lock" {
            std::os::unix::fs::symlink(&victim_file, &path).unwrap();
        } else if i % 2 == 0 {
            std::os::unix::fs::symlink(&victim_dir, &path).unwrap();
        } else {
            std::fs::create_dir(&path).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
            std::os::unix::fs::symlink(&victim_file, path.join("spr_harness.py")).unwrap();
            std::os::unix::fs::symlink(&victim_file, path.join(".lock")).unwrap();
        }
        planted.push(path);
    }
    let before = entries(&parent);
    let mut cfg = config(1, SandboxMode::Auto);
    cfg.scratch_dir = Some(parent.clone());
    let engine = LocalEngine::new(cfg).unwrap();
    let r = run(&engine, "result = 2 + 2", RunnerPolicy::default()).await;
    let made: Vec<String> = entries(&parent).difference(&before).cloned().collect();
    let root = made.first().map(|n| parent.join(n));
    let root_meta = root
        .as_ref()
        .and_then(|p| std::fs::symlink_metadata(p).ok());
    let harness_meta = root
        .as_ref()
        .and_then(|p| std::fs::symlink_metadata(p.join("spr_harness.py")).ok());
    engine.shutdown().await;
    drop(engine);
    let gone = root.as_ref().is_some_and(|p| !p.exists());
    let victim_text = std::fs::read_to_string(&victim_file).unwrap();
    let victim_entries = entries(&victim_dir);
    let after = entries(&parent);
    let _ = std::fs::remove_dir_all(&parent);
    assert_eq!(r.result, json!(4), "{r:?}");
    assert_eq!(made.len(), 1, "the engine made {made:?}");
    let name = &made[0];
    let hex = name
        .strip_prefix(&format!("spr-{pid}-"))
        .unwrap_or_else(|| panic!("{name}"));
    assert!(
        hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "{name}"
    );
    assert!(!before.contains(name), "a planted name was adopted: {name}");
    let meta = root_meta.expect("the engine's directory");
    assert!(meta.is_dir() && !meta.file_type().is_symlink(), "{meta:?}");
    assert_eq!(meta.mode() & 0o777, 0o700, "{:o}", meta.mode());
    assert_eq!(
        Some(meta.uid()),
        std::fs::metadata("/proc/self").ok().map(|m| m.uid())
    );
    let h = harness_meta.expect("the harness file");
    assert!(h.is_file() && !h.file_type().is_symlink(), "{h:?}");
    assert_eq!(victim_text, "keep", "written through a planted symlink");
    assert!(
        victim_entries.is_empty(),
        "written into a planted directory: {victim_entries:?}"
    );
    assert!(gone, "the engine's directory outlived the engine");
    assert_eq!(after, before, "the planted entries were touched");
}

#[test]
fn a_dead_engines_directory_is_removed_by_the_next_engine_and_nothing_else_is() {
    let parent = test_dir("stale");
    let env = [("SPR_SCRATCH_PARENT", parent.display().to_string())];
    // One engine that dies with SIGKILL, one that stays alive.
    let mut dead = spawn_role("engine-in", &env, None);
    let dead_report = read_report(&mut dead, Duration::from_secs(120));
    let mut live = spawn_role("engine-in", &env, None);
    let live_report = read_report(&mut live, Duration::from_secs(120));
    let dead_pid = dead.id();
    dead.kill().unwrap();
    dead.wait().unwrap();
    let dir_of = |r: &Value| {
        assert_eq!(r["ok"], json!(true), "{r}");
        let made = r["made"].as_array().unwrap();
        assert_eq!(made.len(), 1, "{r}");
        parent.join(made[0].as_str().unwrap())
    };
    let dead_dir = dir_of(&dead_report);
    let live_dir = dir_of(&live_report);
    assert!(
        dead_dir.exists(),
        "a SIGKILLed engine cannot clean up: {dead_dir:?}"
    );
    // Lookalikes of the dead engine's: not to be touched.
    let victim = parent.join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep"), "keep").unwrap();
    let symlink = parent.join(format!("spr-{dead_pid}-00000000000000aa"));
    std::os::unix::fs::symlink(&victim, &symlink).unwrap();
    let open = parent.join(format!("spr-{dead_pid}-00000000000000bb"));
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(open.join(".lock"), "").unwrap();
    let foreign = parent.join(format!("spr-{dead_pid}-00000000000000cc"));
    std::fs::create_dir(&foreign).unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(foreign.join(".lock"), "").unwrap();
    let other_user =
        is_root() && std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).is_ok();
    // The next engine.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cfg = config(1, SandboxMode::Auto);
    cfg.scratch_dir = Some(parent.clone());
    let engine = LocalEngine::new(cfg).unwrap();
    let r = rt.block_on(run(&engine, "result = 1", RunnerPolicy::default()));
    let dead_gone = !dead_dir.exists();
    let live_kept = live_dir.join(".lock").exists();
    let kept = [&symlink, &open, &foreign].map(|p| std::fs::symlink_metadata(p).is_ok());
    let victim_kept = victim.join("keep").exists();
    rt.block_on(engine.shutdown());
    drop(engine);
    let _ = live.kill();
    let _ = live.wait();
    let _ = std::fs::remove_dir_all(&parent);
    assert_eq!(r.result, json!(1), "{r:?}");
    assert!(
        dead_gone,
        "the dead engine's directory is still there: {dead_dir:?}"
    );
    assert!(live_kept, "a live engine's directory was removed");
    assert!(
        kept[0] && kept[1],
        "a symlink or a 0755 directory was removed"
    );
    // Not root: the "other user's" directory is this user's own, unlocked: stale.
    assert!(
        kept[2] || !other_user,
        "another user's directory was removed"
    );
    assert!(victim_kept, "removed through a symlink");
    if !other_user {
        eprintln!("(not root: the other user's directory was one of this user's)");
    }
}

// ---------------------------------------------------------------------------------
// Sockets

const FAMILIES: &str = r#"
import socket
families = {"AF_VSOCK": 40, "AF_PACKET": 17, "AF_ALG": 38, "AF_NETLINK": 16, "AF_INET": 2,
            "AF_INET6": 10, "AF_KEY": 15, "AF_BLUETOOTH": 31, "AF_TIPC": 30, "AF_XDP": 44,
            "AF_CAN": 29, "AF_RDS": 21, "AF_UNIX": 1}
out = {}
for name, family in families.items():
    for kind in (socket.SOCK_DGRAM, socket.SOCK_RAW, socket.SOCK_STREAM, socket.SOCK_SEQPACKET):
        try:
            socket.socket(family, kind).close()
            out[name] = "created"
            break
        except OSError as e:
            out[name] = e.errno
result = out
"#;

/// Root without the sandbox keeps CAP_LINUX_IMMUTABLE: a run can make its files
/// immutable or append-only. The scrub clears the flags, so the next run finds its
/// scratch empty and nothing is left on the host once the engine stops.
#[tokio::test]
async fn files_a_root_run_without_the_sandbox_made_immutable_are_wiped_all_the_same() {
    if !is_root() {
        eprintln!("skipped: only root (CAP_LINUX_IMMUTABLE) can make a file immutable");
        return;
    }
    let parent = test_dir("immutable");
    let mut cfg = config(1, SandboxMode::Off);
    cfg.scratch_dir = Some(parent.clone());
    let engine = LocalEngine::new(cfg).unwrap();
    let freeze = r#"
import fcntl, os, struct
def flag(path, value):
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, 0x40086602, struct.pack("i", value) + bytes(4))
    finally:
        os.close(fd)
open("frozen", "w").write("left for the next run")
os.mkdir("appending")
open("appending/inside", "w").write("x")
try:
    flag("frozen", 0x10)
    flag("appending", 0x20)
    result = "set"
except OSError as exc:
    result = "the filesystem has no flags: %s" % exc
"#;
    let set = run(&engine, freeze, permissive(10)).await;
    assert!(set.ok, "{set:?}");
    if set.result != json!("set") {
        eprintln!("skipped: {}", set.result);
        engine.shutdown().await;
        return;
    }
    let next = run(
        &engine,
        "import os\nresult = sorted(os.listdir('.'))",
        permissive(10),
    )
    .await;
    assert_eq!(next.result, json!([]), "{next:?}");
    engine.shutdown().await;
    // The engine's directory goes with the engine.
    drop(engine);
    assert!(
        entries(&parent).is_empty(),
        "left on the host: {:?}",
        entries(&parent)
    );
    std::fs::remove_dir(&parent).unwrap();
}

#[tokio::test]
async fn socket_families_a_policy_does_not_need_are_refused() {
    if !full_sandbox() {
        return;
    }
    let engine = engine(1);
    let offline = run(&engine, FAMILIES, permissive(30)).await;
    let mut online_policy = permissive(30);
    online_policy.sandbox.network = true;
    let online = run(&engine, FAMILIES, online_policy).await;
    engine.shutdown().await;
    let refused = |v: &Value| v == &json!(97) || v == &json!(1); // EAFNOSUPPORT, EPERM
    let off = offline.result.to_value();
    for name in [
        "AF_VSOCK",
        "AF_PACKET",
        "AF_ALG",
        "AF_NETLINK",
        "AF_INET",
        "AF_INET6",
        "AF_KEY",
        "AF_BLUETOOTH",
        "AF_TIPC",
        "AF_XDP",
        "AF_CAN",
        "AF_RDS",
    ] {
        assert!(refused(&off[name]), "{name} without network: {off}");
    }
    assert_eq!(off["AF_UNIX"], json!("created"), "{off}");
    let on = online.result.to_value();
    assert_eq!(on["AF_INET"], json!("created"), "{on}");
    for name in ["AF_VSOCK", "AF_PACKET", "AF_ALG", "AF_KEY", "AF_XDP"] {
        assert!(refused(&on[name]), "{name} with network: {on}");
    }
}

#[tokio::test]
async fn tcp_to_the_host_only_with_network_and_never_its_abstract_unix_sockets() {
    if !full_sandbox() {
        return;
    }
    use std::os::linux::net::SocketAddrExt;
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let port = tcp.local_addr().unwrap().port();
    let name = format!("spr-hygiene-{}-{}", std::process::id(), random_hex());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let abstract_listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    abstract_listener.set_nonblocking(true).unwrap();
    let code = format!(
        r#"
import socket
out = {{}}
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
    out["tcp"] = "connected"
except OSError as e:
    out["tcp"] = e.errno
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("\0" + {name:?})
    out["abstract"] = "connected"
except OSError as e:
    out["abstract"] = e.errno
result = out
"#
    );
    let engine = engine(1);
    let offline = run(&engine, &code, permissive(30)).await;
    let offline_accepts = (tcp.accept().is_ok(), abstract_listener.accept().is_ok());
    let mut online_policy = permissive(30);
    online_policy.sandbox.network = true;
    let online = run(&engine, &code, online_policy).await;
    let online_abstract = abstract_listener.accept().is_ok();
    engine.shutdown().await;
    assert_ne!(
        offline.result.to_value()["tcp"],
        json!("connected"),
        "{offline:?}"
    );
    assert_eq!(offline_accepts, (false, false), "{offline:?}");
    assert_eq!(
        online.result.to_value()["tcp"],
        json!("connected"),
        "{online:?}"
    );
    assert_ne!(
        online.result.to_value()["abstract"],
        json!("connected"),
        "{online:?}"
    );
    assert!(!online_abstract, "a run reached the host's abstract socket");
}

// ---------------------------------------------------------------------------------
// Worker starts, receipts, /proc

/// A venv of its own (its `bin` is made unreadable for a moment): a pyvenv.cfg and a
/// `bin/python` pointing at the shared venv's interpreter.
async fn private_venv(dir: &Path) -> PathBuf {
    let shared = common::shared_venv();
    // The shared venv exists once an engine on it was prepared.
    let engine = LocalEngine::new(config(1, SandboxMode::Off)).unwrap();
    engine
        .prepare()
        .await
        .expect("the test venv can be prepared");
    drop(engine);
    let venv = dir.join("venv");
    std::fs::create_dir_all(venv.join("bin")).unwrap();
    std::fs::copy(shared.join("pyvenv.cfg"), venv.join("pyvenv.cfg")).unwrap();
    let python = shared.join("bin/python").canonicalize().unwrap();
    std::os::unix::fs::symlink(python, venv.join("bin/python")).unwrap();
    venv
}

#[tokio::test]
async fn a_worker_start_that_fails_is_an_engine_error_never_a_weaker_sandbox() {
    if !full_sandbox() {
        return;
    }
    let dir = test_dir("transient");
    let venv = private_venv(&dir).await;
    let mut cfg = config(1, SandboxMode::Auto);
    cfg.venv_dir = venv.clone();
    let engine = LocalEngine::new(cfg).unwrap();
    let first = run(&engine, "result = 1", RunnerPolicy::default()).await;
    // The idle worker goes (its supervisor is a child of this process), so the next
    // run needs a new one, which cannot start while `bin` is unreadable. Only this
    // engine's: the tests share this process (under `cargo test`), and another test's
    // children (a role of its own) are children of it too.
    let ours = common::pids_with(&venv.display().to_string());
    let supervisors: Vec<u32> = children(std::process::id())
        .into_iter()
        .filter(|p| descendants(*p).iter().any(|d| ours.contains(d)))
        .collect();
    let worker_tree: Vec<u32> = supervisors.iter().flat_map(|p| descendants(*p)).collect();
    common::signal(&supervisors, "KILL");
    // The worker dies with its supervisor, but not at once: a run sent before it is gone
    // would still be served by it.
    wait_until_gone(&worker_tree);
    let bin = venv.join("bin");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o000)).unwrap();
    let failed = run(&engine, "result = 2", RunnerPolicy::default()).await;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let after = run(&engine, "result = 3", RunnerPolicy::default()).await;
    engine.shutdown().await;
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(first.result, json!(1), "{first:?}");
    assert!(
        !supervisors.is_empty(),
        "no worker supervisor among this process's children"
    );
    eprintln!(
        "the run on a worker that could not start: {:?}",
        failed.error
    );
    assert_eq!(failed.exit_code, 125, "{failed:?}");
    assert!(!failed.ok && failed.result.is_null(), "{failed:?}");
    let why = failed.error.clone().unwrap_or_default();
    assert!(
        why.len() > 20 && why.contains("worker"),
        "no reason: {failed:?}"
    );
    if let Some(s) = &failed.sandbox {
        assert!(s.applied("namespaces"), "ran with a weaker sandbox: {s:?}");
    }
    assert_eq!(after.result, json!(3), "{after:?}");
    let s = after.sandbox.expect("a receipt");
    for p in [
        "namespaces",
        "network_namespace",
        "filesystem",
        "landlock",
        "seccomp",
    ] {
        assert!(
            s.applied(p),
            "{p} is missing after the cause is gone: {s:?}"
        );
    }
    assert!(s.capabilities_dropped, "{s:?}");
    let per_run = s.per_run.expect("per-run isolation");
    assert_eq!(
        per_run.fresh_namespaces,
        vec!["mount", "ipc"],
        "{per_run:?}"
    );
}

/// The mapping the receipt names is the one this process gets: distinct (root with
/// the whole id space), subordinate (an ordinary user with a range) or own (one id).
#[tokio::test]
async fn the_receipt_is_honest_about_who_the_run_is_on_the_host() {
    if !full_sandbox() {
        return;
    }
    let code = r#"
import os
result = {"uid_map": open("/proc/self/uid_map").read().split(), "uid": os.getuid(),
          "caps": [l for l in open("/proc/self/status").read().splitlines() if l.startswith("Cap")]}
"#;
    let engine = engine(1);
    let r = run(&engine, code, permissive(30)).await;
    engine.shutdown().await;
    let out = r.result.to_value();
    let s = r.sandbox.expect("a receipt");
    let mapping = s.user_mapping.clone().expect("a mapping");
    let my_map = std::fs::read_to_string("/proc/self/uid_map").unwrap();
    let my_lines: Vec<Vec<u64>> = my_map
        .lines()
        .map(|l| l.split_whitespace().map(|w| w.parse().unwrap()).collect())
        .collect();
    let euid = std::fs::metadata("/proc/self").unwrap().uid() as u64;
    let outside: u64 = out["uid_map"][1].as_str().unwrap().parse().unwrap();
    assert_eq!(out["uid"], json!(0), "{out}");
    assert_eq!(out["uid_map"][2], json!("1"), "one id mapped: {out}");
    let full_range = my_lines.iter().any(|l| l[2] >= 1 << 31);
    match mapping.as_str() {
        "distinct" => {
            assert_eq!(euid, 0, "distinct without root");
            assert_ne!(outside, 0, "{out}");
            if full_range {
                assert!(outside >= 1_000_000_000, "{out}");
            }
        }
        "subordinate" => {
            assert_ne!(euid, 0);
            assert_ne!(outside, euid, "{out}");
        }
        "own" => {
            assert_eq!(outside, euid, "{out}");
            assert!(
                !(euid == 0 && full_range),
                "own mapping for root with the whole id space"
            );
        }
        other => panic!("unknown mapping {other}"),
    }
    for line in out["caps"].as_array().unwrap() {
        let l = line.as_str().unwrap();
        assert!(
            l.ends_with("0000000000000000"),
            "capabilities in the run: {l}"
        );
    }
    assert!(s.capabilities_dropped && s.applied("namespaces"), "{s:?}");
}

#[tokio::test]
async fn each_runs_proc_shows_only_its_own_processes() {
    if !full_sandbox() {
        return;
    }
    let code = r#"
import os, time
kids = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    kids.append(pid)
time.sleep(0.2)
seen = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
harness = sorted({1, os.getppid()} - {os.getpid()})
hidden = [os.path.exists("/proc/%d" % p) for p in harness]
result = {"seen": seen, "expected": sorted(kids + [os.getpid()]), "harness_visible": hidden}
"#;
    let engine = engine(2);
    let a = {
        let code = code.to_string();
        async move {
            let e = engine;
            let r = tokio::join!(
                run(&e, &code, permissive(30)),
                run(&e, &code, permissive(30))
            );
            e.shutdown().await;
            r
        }
    };
    let (a, b) = a.await;
    for r in [a, b] {
        let out = r.result.to_value();
        assert_eq!(out["seen"], out["expected"], "{out}");
        let visible = out["harness_visible"].as_array().unwrap();
        assert!(
            !visible.is_empty() && visible.iter().all(|v| v == &json!(false)),
            "{out}"
        );
    }
}

//! Two-run attacks on one worker (an engine with `pool_size = 1`, sandbox auto): what one run leaves or holds never reaches the next, no run can break the worker for the next, and no run can forge its status or turn its own failure into an engine error.
//!
//! Victim runs spread a fresh random secret (`SPRSECRET-` and 24 hex digits) over every
//! place a run can write (tests/programs/victim.py); attacker runs under a policy that
//! blocks nothing, so that only the kernel boundary stops them, search for any text of
//! that shape everywhere a run can look (tests/programs/snoop.py) without knowing it.

mod common;

use serde_json::{json, Value};
use spr_core::{
    local_sandbox_probe, run_code, LocalEngine, LocalEngineConfig, PolicySource, RunnerPolicy,
    RunnerResult, SandboxMode, Value as PolicyValue, VenvManager,
};
use std::io::Read;
use std::time::{Duration, Instant};

const VICTIM: &str = include_str!("programs/victim.py");
const SNOOP: &str = include_str!("programs/snoop.py");

/// A run whose worker state is observed before and after an attack (see `state`).
const STATE: &str = r#"
import os, re, stat
def mode(p):
    return oct(stat.S_IMODE(os.stat(p).st_mode))
def rows(p):
    try:
        return len(open(p).read().splitlines()) - 1
    except OSError as e:
        return str(e)
def writable(p):
    try:
        with open(os.path.join(p, "probe-file"), "w") as f:
            f.write("x")
        os.unlink(os.path.join(p, "probe-file"))
        return True
    except OSError as e:
        return str(e)
tmp = os.statvfs("/tmp")
shm = os.statvfs("/dev/shm")
result = {
    "tmp": sorted(re.sub(r"^run-\d+$", "run-N", n) for n in os.listdir("/tmp")),
    "tmp_mode": mode("/tmp"),
    "cwd": os.getcwd().startswith("/tmp/run-"),
    "cwd_mode": mode("."),
    "cwd_entries": os.listdir("."),
    "dev": sorted(os.listdir("/dev")),
    "dev_mode": mode("/dev"),
    "dev_shm": sorted(os.listdir("/dev/shm")),
    "dev_shm_mode": mode("/dev/shm"),
    "null_mode": mode("/dev/null"),
    "writable": [writable("."), writable("/tmp"), writable("/dev/shm")],
    "tmp_free_mb": tmp.f_bavail * tmp.f_frsize >> 20,
    "shm_free_mb": shm.f_bavail * shm.f_frsize >> 20,
    "sysv": [rows("/proc/sysvipc/" + n) for n in ("shm", "msg", "sem")],
    "processes": len([p for p in os.listdir("/proc") if p.isdigit()]),
    "mounts": len(open("/proc/self/mountinfo").read().splitlines()),
}
"#;

fn permissive(timeout_seconds: u64) -> RunnerPolicy {
    RunnerPolicy {
        blocked_imports: vec![],
        blocked_builtins: vec![],
        timeout_seconds,
        ..RunnerPolicy::default()
    }
}

/// One worker, so every run of a test lands on the same one.
fn engine_with(mode: SandboxMode) -> LocalEngine {
    let mut config = LocalEngineConfig::new(common::shared_venv());
    config.venv_manager = VenvManager::Python;
    config.pool_size = Some(1);
    config.sandbox = mode;
    LocalEngine::new(config).expect("the test venv can be prepared")
}

fn engine() -> LocalEngine {
    engine_with(SandboxMode::Auto)
}

/// Whether this machine gives workers the full sandbox (a failure under CI when not).
fn full_sandbox() -> bool {
    let s = local_sandbox_probe();
    common::require(
        [
            "user_namespace",
            "mount_namespace",
            "pid_namespace",
            "ipc_namespace",
            "landlock",
            "seccomp",
        ]
        .iter()
        .all(|n| s.available(n)),
        "the full local sandbox (namespaces, Landlock, seccomp)",
    )
}

async fn run(
    engine: &LocalEngine,
    code: &str,
    input: Option<Value>,
    policy: RunnerPolicy,
) -> RunnerResult {
    run_code(code, engine, input, PolicySource::Policy(policy))
        .await
        .expect("the run is accepted")
}

/// `SPRSECRET-` and 24 random hex digits, new for every call.
fn secret() -> String {
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("/dev/urandom");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("SPRSECRET-{hex}")
}

/// A unique marker for processes a run starts (found in /proc/*/cmdline by the host).
fn marker(name: &str) -> String {
    format!(
        "spr-isolation-{name}-{}-{}",
        std::process::id(),
        &secret()[10..18]
    )
}

/// The victim run: the secret in its code, input, extra_globals, output, files in
/// scratch, /tmp and /dev/shm, a FIFO, sockets, SysV shm and message queue and a POSIX
/// message queue where this worker allows them. `tail` is appended to its code.
async fn victim(engine: &LocalEngine, secret: &str, tail: &str, timeout: u64) -> RunnerResult {
    let code = format!("{}\n{tail}\n", VICTIM.replace("@SECRET@", secret));
    let mut policy = permissive(timeout);
    policy.extra_globals.insert(
        "victim_global".into(),
        PolicyValue::String(secret.to_string()),
    );
    let input = json!({ "secret": secret, format!("k{}", &secret[10..]): [secret] });
    run(engine, &code, Some(input), policy).await
}

/// The attacker run: everything it found and how much it searched.
async fn snoop(engine: &LocalEngine) -> (Value, RunnerResult) {
    let r = run(engine, SNOOP, None, permissive(60)).await;
    assert!(r.ok, "the snoop itself failed: {r:?}");
    (r.result.to_value(), r)
}

/// The snoop really searched (so a clean result means something) and found no secret.
fn assert_clean(found: &Value, secrets: &[&str]) {
    let stats = &found["stats"];
    assert!(
        stats["mem_bytes"].as_u64().unwrap_or(0) > 4 << 20,
        "the memory scan did not happen: {stats}"
    );
    assert!(stats["frames"].as_u64().unwrap_or(0) >= 2, "{stats}");
    assert!(stats["modules"].as_u64().unwrap_or(0) > 20, "{stats}");
    assert!(stats["classes"].as_u64().unwrap_or(0) > 100, "{stats}");
    assert!(stats["dirs_walked"].as_u64().unwrap_or(0) >= 3, "{stats}");
    let text = found.to_string();
    for s in secrets {
        assert!(
            !text.contains(s),
            "the secret {s} of an earlier run was found: {:#}",
            found["found"]
        );
    }
    // Anything of the secret's shape is some run's secret: the snoop knows none.
    assert_eq!(found["found"], json!({}), "{:#}", found["found"]);
}

fn planted(r: &RunnerResult) -> Value {
    r.result.to_value()["planted"].clone()
}

/// The worker's state as a run sees it (fresh /tmp, /dev, /dev/shm, IPC).
async fn state(engine: &LocalEngine) -> Value {
    let r = run(engine, STATE, None, permissive(30)).await;
    assert!(r.ok, "the state probe failed: {r:?}");
    let mut v = r.result.to_value();
    // Free space moves by a page or so with the probe's own directory.
    for key in ["tmp_free_mb", "shm_free_mb"] {
        let mb = v[key].as_u64().unwrap_or(0);
        v[key] = json!(mb / 4);
    }
    v
}

// ---------------------------------------------------------------------------------
// Nothing of one run reaches the next

#[tokio::test]
async fn a_victims_secret_never_reaches_the_next_run_on_the_same_worker() {
    if !full_sandbox() {
        return;
    }
    let engine = engine();
    let s = secret();
    let v = victim(&engine, &s, "", 30).await;
    assert!(v.ok, "{v:?}");
    assert!(v.stdout.contains(&s) && v.stderr.contains(&s), "{v:?}");
    let p = planted(&v);
    for key in [
        "scratch",
        "tmp",
        "tmp_hidden",
        "dev_shm",
        "fifo",
        "unix_socket",
    ] {
        assert_eq!(p[key], json!(true), "{key}: {p}");
    }
    // Each run has its own IPC namespace: SysV IPC is allowed (and must not outlive it).
    assert_eq!(p["sysv_shm"], json!(true), "{p}");
    assert_eq!(p["sysv_msg"], json!(true), "{p}");
    let (found, _) = snoop(&engine).await;
    // A second attacker, for what the first one's own run might have disturbed.
    let (again, _) = snoop(&engine).await;
    engine.shutdown().await;
    assert_clean(&found, &[&s]);
    assert_clean(&again, &[&s]);
    let stats = &found["stats"];
    assert_eq!(
        stats["proc_pids"].as_array().map(Vec::len),
        Some(1),
        "{stats}"
    );
    assert!(stats.get("mem_opened").is_none(), "{stats}");
    assert!(stats.get("victim_shm_key").is_none(), "{stats}");
    assert!(stats.get("victim_msg_key").is_none(), "{stats}");
    assert!(stats.get("victim_mq_opened").is_none(), "{stats}");
    assert_eq!(stats["dev_shm"], json!([]), "{stats}");
}

#[tokio::test]
async fn a_victim_killed_at_its_deadline_leaves_nothing_for_the_next_run() {
    if !full_sandbox() {
        return;
    }
    let engine = engine();
    let s = secret();
    let code = "import time\nwhile True:\n    time.sleep(1)";
    let v = victim(&engine, &s, code, 2).await;
    assert!(v.timed_out && v.exit_code == 124, "{v:?}");
    let (found, _) = snoop(&engine).await;
    engine.shutdown().await;
    assert_clean(&found, &[&s]);
}

#[tokio::test]
async fn a_victim_that_fails_with_its_secret_in_the_error_leaves_nothing_either() {
    if !full_sandbox() {
        return;
    }
    let engine = engine();
    let s = secret();
    let v = victim(&engine, &s, "raise RuntimeError(s * 3)", 30).await;
    assert!(
        !v.ok && v.error.as_deref().unwrap_or("").contains(&s),
        "{v:?}"
    );
    let (found, _) = snoop(&engine).await;
    engine.shutdown().await;
    assert_clean(&found, &[&s]);
}

#[tokio::test]
async fn secrets_of_many_victims_never_reach_an_attacker() {
    if !full_sandbox() {
        return;
    }
    let engine = engine();
    let mut secrets = Vec::new();
    for _ in 0..4 {
        let s = secret();
        let v = victim(&engine, &s, "", 30).await;
        assert!(v.ok, "{v:?}");
        secrets.push(s);
    }
    let (found, _) = snoop(&engine).await;
    engine.shutdown().await;
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_clean(&found, &refs);
}

/// Counters a worker keeps across runs tell a run what earlier runs did: its own pid
/// (the worker's PID namespace numbers every process any run started), the last pid of
/// /proc/loadavg, and its scratch directory's name (`run-<serial>`). Two identical runs
/// around a victim that starts 37 processes must see the same.
#[tokio::test]
async fn a_run_cannot_count_what_earlier_runs_on_its_worker_did() {
    if !require_full() {
        return;
    }
    let look =
        "import os\nresult = [os.getpid(), os.getcwd(), open('/proc/loadavg').read().split()[-1]]";
    let victim = "import os\nfor _ in range(37):\n    if os.fork() == 0:\n        os._exit(0)\n    os.wait()\nresult = 'done'";
    let engine = engine();
    let first = run(&engine, look, None, permissive(30)).await;
    let v = run(&engine, victim, None, permissive(30)).await;
    // As many again, so that one lands on the victim's zygote whatever their number.
    let mut later = Vec::new();
    for _ in 0..2 {
        later.push(run(&engine, look, None, permissive(30)).await.result);
    }
    engine.shutdown().await;
    assert_eq!(v.result, json!("done"), "{v:?}");
    assert_eq!(
        vec![first.result.clone(); 2],
        later,
        "later runs learn how many processes and runs came before them"
    );
}

/// Without namespaces (here: the sandbox off; a machine without user namespaces takes
/// the same path) the zygote empties the scratch directory itself: the names of what a
/// run left there must not stay in its memory, which every later run is a copy of.
#[tokio::test]
async fn a_scrubbed_worker_keeps_no_file_name_of_a_run_in_the_zygote() {
    let engine = engine_with(SandboxMode::Off);
    let s = secret();
    let code = format!(
        "import os\ns = {s:?}\nfor i in range(400):\n    open('%03d-%s' % (i, s), 'w').close()\n    os.mkdir('d%03d-%s' % (i, s))\nresult = 1"
    );
    let v = run(&engine, &code, None, permissive(30)).await;
    assert!(v.ok, "{v:?}");
    // Only the memory scan: with the sandbox off the host's files are not the point.
    let scan = SNOOP.split("# 2. Objects").next().unwrap().to_string()
        + "\nresult = {'found': found, 'stats': stats}\n";
    let r = run(&engine, &scan, None, permissive(60)).await;
    engine.shutdown().await;
    assert!(r.ok, "{r:?}");
    let found = r.result.to_value();
    assert!(
        found["stats"]["mem_bytes"].as_u64().unwrap_or(0) > 4 << 20,
        "{found}"
    );
    assert!(
        !found.to_string().contains(&s),
        "the zygote kept the previous run's file names, and the next run read them from its own memory: {:#}",
        found["found"]
    );
}

// ---------------------------------------------------------------------------------
// No run can break, fill or slow the worker for the next

/// `attack`, then the worker's state must be what it was before, twice over, and a
/// victim must still run.
async fn survives(name: &str, attack: &str, policy: RunnerPolicy) -> RunnerResult {
    let engine = engine();
    let before = state(&engine).await;
    let r = run(&engine, attack, None, policy).await;
    let after = state(&engine).await;
    let again = state(&engine).await;
    let s = secret();
    let v = victim(&engine, &s, "", 30).await;
    engine.shutdown().await;
    assert_ne!(
        r.exit_code, 125,
        "{name}: the attack itself became an engine error: {r:?}"
    );
    assert_eq!(
        before, after,
        "{name}: the next run found the worker changed ({r:?})"
    );
    assert_eq!(before, again, "{name}");
    assert!(v.ok, "{name}: a victim after the attack failed: {v:?}");
    r
}

fn require_full() -> bool {
    full_sandbox()
}

#[tokio::test]
async fn chmod_of_scratch_its_parent_tmp_dev_and_dev_shm_is_gone_for_the_next_run() {
    if !require_full() {
        return;
    }
    let attack = r#"
import os
done = {}
for p, m in [(".", 0), ("..", 0o300), ("/tmp", 0), ("/dev/shm", 0), ("/dev", 0), ("/", 0), ("/proc", 0)]:
    try:
        os.chmod(p, m)
        done[p] = True
    except OSError as e:
        done[p] = e.errno
result = done
"#;
    let r = survives("chmod", attack, permissive(30)).await;
    // /dev and / are read-only in the view.
    let done = r.result.to_value();
    assert_ne!(done["/dev"], json!(true), "{done}");
    assert_ne!(done["/"], json!(true), "{done}");
}

#[tokio::test]
async fn a_hidden_directory_that_fills_tmp_and_dev_shm_is_gone_for_the_next_run() {
    if !require_full() {
        return;
    }
    let attack = r#"
import os
full = {}
chunk = b"x" * (1 << 20)
for top in ("/tmp", "/dev/shm"):
    d = os.path.join(top, ".hidden", ".deeper")
    os.makedirs(d)
    n = 0
    try:
        with open(os.path.join(d, ".fill"), "wb") as f:
            while True:
                f.write(chunk)
                f.flush()
                n += 1
    except OSError as e:
        full[top] = [n, e.errno]
    # And a directory nobody may enter afterwards.
    os.chmod(os.path.join(top, ".hidden"), 0)
result = full
"#;
    let mut policy = permissive(60);
    policy.sandbox.max_file_size_mb = 1024;
    let r = survives("fill /tmp", attack, policy).await;
    let full = r.result.to_value();
    assert_eq!(full["/tmp"][1], json!(28), "/tmp was not filled: {r:?}"); // ENOSPC
}

#[tokio::test]
async fn memory_parked_in_sysv_shm_is_gone_for_the_next_run() {
    if !require_full() {
        return;
    }
    // 350 MB in four segments never removed (each attached, touched and detached, so
    // the run's own address-space limit is never reached).
    let attack = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
parked = 0
for i in range(4):
    sid = libc.shmget(0x600 + i, 90 << 20, 0o1600)
    if sid < 0:
        break
    addr = libc.shmat(sid, None, 0)
    if addr is None or addr == ctypes.c_void_p(-1).value:
        break
    ctypes.memset(addr, 1, 90 << 20)
    libc.shmdt(ctypes.c_void_p(addr))
    parked += 90
mq = libc.mq_open(b"/spr-park", ctypes.c_int(0o100 | 0o1), ctypes.c_int(0o600), None)
result = [parked, mq]
"#;
    let mut policy = permissive(60);
    policy.memory_limit_mb = 512;
    let r = survives("sysv shm", attack, policy).await;
    // A run's SysV shared memory is limited like its /dev/shm (64 MiB by default): a
    // 90 MiB segment is refused, so nothing was parked; and the next runs succeeded.
    assert_eq!(r.result.to_value()[0], json!(0), "{r:?}");
}

/// SysV shm parked in 8 MiB segments, attached, touched and detached one by one (the
/// address-space limit never sees more than one), printing how much so far: its
/// progress survives the run being killed.
fn park_sysv(limit_mb: u64) -> String {
    format!(
        r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
parked = 0
while parked < {limit_mb}:
    sid = libc.shmget(0, 8 << 20, 0o1600)
    if sid < 0:
        break
    addr = libc.shmat(sid, None, 0)
    if addr is None or addr == ctypes.c_void_p(-1).value:
        break
    ctypes.memset(addr, 1, 8 << 20)
    libc.shmdt(ctypes.c_void_p(addr))
    parked += 8
# What really stays parked: the segments that still exist, detached.
held = 0
for line in open('/proc/sysvipc/shm').readlines()[1:]:
    held += int(line.split()[3])
print(held >> 20, flush=True)
result = held >> 20
"#
    )
}

fn parked_mb(r: &RunnerResult) -> u64 {
    r.stdout
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A run that parks SysV shm up to the worker's memory limit (and is killed for it):
/// the segments die with its IPC namespace, which the kernel frees a moment later;
/// the next run must not be killed for want of that memory.
#[tokio::test]
async fn sysv_shm_parked_up_to_the_memory_limit_does_not_kill_the_next_run() {
    if !require_full() {
        return;
    }
    let engine = engine();
    let probe = run(&engine, "result = 1", None, permissive(30)).await;
    let limited = probe
        .sandbox
        .as_ref()
        .and_then(|s| s.cgroup.as_ref())
        .is_some_and(|c| c.memory_limit_mb.is_some());
    if !limited {
        // Without a memory cgroup the park would take the host's memory (see
        // `a_run_cannot_park_more_sysv_shm_than_its_memory_limit`).
        engine.shutdown().await;
        eprintln!("SKIPPED: no memory cgroup for the worker");
        return;
    }
    let mut failures = Vec::new();
    // The kernel frees a dead IPC namespace a moment later (after an RCU grace
    // period): whether the next run starts before that is a race, run often enough to
    // lose it.
    for _ in 0..12 {
        let p = run(&engine, &park_sysv(4096), None, permissive(60)).await;
        for _ in 0..2 {
            let next = run(&engine, "result = 2 + 2", None, permissive(30)).await;
            if next.result != json!(4) {
                failures.push(format!(
                    "after {} MiB parked ({:?}): {:?}",
                    parked_mb(&p),
                    p.error,
                    next.error
                ));
            }
        }
    }
    engine.shutdown().await;
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The policy's memory limit holds for SysV shm too (the address-space limit does not
/// count detached segments; a worker without a memory cgroup has nothing else).
#[tokio::test]
async fn a_run_cannot_park_more_sysv_shm_than_its_memory_limit() {
    if !require_full() {
        return;
    }
    let mut policy = permissive(60);
    policy.memory_limit_mb = 64;
    let engine = engine();
    // At most 1 GiB, whatever stops it (or not).
    let p = run(&engine, &park_sysv(1024), None, policy).await;
    let next = run(&engine, "result = 2 + 2", None, permissive(30)).await;
    engine.shutdown().await;
    let parked = parked_mb(&p);
    // The worker's whole budget (run, harness, scratch and /dev/shm) is the ceiling.
    let ceiling = 64 + 96 + 128 + 64;
    assert!(
        parked <= ceiling,
        "a run limited to 64 MB held {parked} MiB of SysV shm ({:?})",
        p.sandbox.as_ref().map(|s| &s.cgroup)
    );
    let _ = next;
}

#[tokio::test]
async fn fifos_and_sockets_left_in_tmp_are_gone_for_the_next_run() {
    if !require_full() {
        return;
    }
    let attack = r#"
import os, socket
os.mkfifo("/tmp/fifo")
os.mkfifo("fifo-in-scratch")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("/tmp/sock")
s.listen(5)
d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
d.bind("/dev/shm/dgram")
a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
a.bind("\0spr-isolation-abstract")
a.listen(5)
if os.fork() == 0:
    # A child keeps them open, blocked on the FIFO.
    os.setsid()
    open("/tmp/fifo", "w")
    os._exit(0)
result = sorted(os.listdir("/tmp"))
"#;
    survives("fifo and sockets", attack, permissive(30)).await;
}

#[tokio::test]
async fn a_detached_sleeper_is_dead_when_its_run_reports() {
    if !require_full() {
        return;
    }
    let m = marker("detached");
    let attack = format!(
        r#"
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sh", ["sh", "-c", "sleep 600; true", {m:?}])
    os._exit(0)
result = "left"
"#
    );
    let engine = engine();
    let r = run(&engine, &attack, None, permissive(30)).await;
    let alive = common::pids_with(&m);
    let next = run(&engine, "result = 2 + 2", None, permissive(30)).await;
    engine.shutdown().await;
    common::signal(&alive, "KILL");
    assert_eq!(r.result, json!("left"), "{r:?}");
    assert!(
        alive.is_empty(),
        "processes of a finished run are alive: {alive:?}"
    );
    assert_eq!(next.result, json!(4), "{next:?}");
}

#[tokio::test]
async fn signalling_everyone_or_the_parent_harms_no_later_run() {
    if !require_full() {
        return;
    }
    let attack = r#"
import fcntl, os, signal
out = {}
def sigio(owner):
    # SIGKILL as the "I/O possible" signal of a pipe owned by the zygote.
    r, w = os.pipe()
    fcntl.fcntl(r, fcntl.F_SETOWN, owner)
    fcntl.fcntl(r, 10, signal.SIGKILL)  # F_SETSIG
    fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_ASYNC)
    os.write(w, b"x")
    return "written"
# The harness processes a run can name: its zygote (its parent) and PID 1 of its PID
# namespace (the monitor, or the zygote itself when each zygote has a namespace).
HARNESS = sorted({1, os.getppid()} - {os.getpid()})
out["harness"] = HARNESS
attempts = []
for pid in HARNESS:
    attempts += [
        ("kill %d" % pid, lambda pid=pid: os.kill(pid, signal.SIGKILL)),
        ("stop %d" % pid, lambda pid=pid: os.kill(pid, signal.SIGSTOP)),
        ("pidfd %d" % pid, lambda pid=pid: signal.pidfd_send_signal(os.pidfd_open(pid), signal.SIGKILL)),
        ("killpg %d" % pid, lambda pid=pid: os.killpg(pid, signal.SIGKILL)),
        ("sigio %d" % pid, lambda pid=pid: sigio(pid)),
        ("sigio group %d" % pid, lambda pid=pid: sigio(-pid)),
    ]
for name, fn in attempts:
    try:
        fn()
        out[name] = "sent"
    except OSError as e:
        out[name] = e.errno
result = out
try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass  # nothing but itself and PID 1 in its namespace
"#;
    let r = survives("kill", attack, permissive(30)).await;
    let out = r.result.to_value();
    assert!(
        !out["harness"].as_array().is_none_or(Vec::is_empty),
        "{r:?}"
    );
    for (key, value) in out.as_object().unwrap() {
        // SIGIO needs no permission to be armed: whether it arrived shows in `survives`.
        if !key.starts_with("sigio") {
            assert_ne!(value, &json!("sent"), "{key}: {out}");
        }
    }
}

#[tokio::test]
async fn a_fork_storm_with_sessions_subreapers_and_threads_leaves_no_process() {
    if !require_full() {
        return;
    }
    let m = marker("storm");
    let attack = format!(
        r#"
MARKER = {m:?}
import ctypes, os, threading, time
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER in the run itself
def spawn(depth):
    try:
        pid = os.fork()
    except OSError:
        return
    if pid:
        return
    try:
        os.setsid()
        libc.prctl(36, 1, 0, 0, 0)
        for _ in range(3 if depth else 0):
            spawn(depth - 1)
        try:
            threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
        except RuntimeError:
            pass
        if depth % 2:
            os.execv("/bin/sh", ["sh", "-c", "sleep 600; true", MARKER])
        time.sleep(600)
    finally:
        os._exit(0)
for _ in range(4):
    spawn(3)
# The main thread leaves; a thread goes on forking.
def late():
    time.sleep(0.2)
    spawn(1)
try:
    threading.Thread(target=late).start()
except RuntimeError:  # no task left for a thread: the storm is at its limit
    pass
time.sleep(0.5)
result = len([p for p in os.listdir("/proc") if p.isdigit()])
"#
    );
    let mut policy = permissive(30);
    policy.sandbox.max_processes = 60;
    let engine = engine();
    let r = run(&engine, &attack, None, policy).await;
    let alive = common::pids_with(&m);
    let next = state(&engine).await;
    engine.shutdown().await;
    common::signal(&alive, "KILL");
    assert!(r.ok, "{r:?}");
    assert!(
        r.result.to_value().as_u64().unwrap_or(0) > 10,
        "no storm: {r:?}"
    );
    assert!(
        alive.is_empty(),
        "processes of a finished run are alive: {alive:?}"
    );
    assert_eq!(next["processes"], json!(1), "{next}");
}

#[tokio::test]
async fn processes_and_memory_used_up_by_a_run_are_back_for_the_next() {
    if !require_full() {
        return;
    }
    let attack = r#"
import os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        n += 1
except OSError:
    pass
hog = []
try:
    while True:
        hog.append(bytearray(16 << 20))
except MemoryError:
    pass
result = [n, len(hog)]
"#;
    let engine = engine();
    let r = run(&engine, attack, None, permissive(30)).await;
    let forks = "import os, time\nkids = []\nfor _ in range(60):\n    pid = os.fork()\n    if pid == 0:\n        time.sleep(600)\n        os._exit(0)\n    kids.append(pid)\nb = bytearray(200 << 20)\nresult = len(kids)";
    let next = run(&engine, forks, None, permissive(30)).await;
    engine.shutdown().await;
    assert!(r.result.to_value()[0].as_u64().unwrap_or(0) >= 60, "{r:?}");
    assert_eq!(next.result, json!(60), "{next:?}");
}

/// `prlimit(2)` on process `target` (a Python expression) from a run, then enough runs
/// to come back to every zygote of the worker: none of them may fail, nor the attack
/// itself turn into an engine error, and the prlimit must have been refused.
async fn prlimit_attack(target: &str, what: &str) {
    let attack = format!(
        r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
new = (ctypes.c_uint64 * 2)(4, 4)
rc = libc.prlimit({target}, 7, new, None)  # RLIMIT_NOFILE
result = [rc, ctypes.get_errno()]
"#
    );
    let engine = engine();
    let r = run(&engine, &attack, None, permissive(30)).await;
    let mut later = Vec::new();
    for _ in 0..4 {
        later.push(run(&engine, "result = 2 + 2", None, permissive(30)).await);
    }
    engine.shutdown().await;
    assert_ne!(
        r.exit_code, 125,
        "the run turned itself into an engine error: {r:?}"
    );
    for next in &later {
        assert_eq!(
            next.result,
            json!(4),
            "after prlimit on {what} ({:?}): {next:?}",
            r.result
        );
    }
    assert_ne!(
        r.result.to_value()[0],
        json!(0),
        "prlimit on {what} succeeded: {r:?}"
    );
}

/// The zygote and the monitor share the run's uid and gid inside the worker's user
/// namespace, and `prlimit(2)` on another process needs nothing more: a run must not
/// be able to shrink their limits (no more descriptors: the zygote cannot make the
/// next run's pipes; no more CPU time: it is killed).
#[tokio::test]
async fn a_run_cannot_change_the_limits_of_its_zygote_for_later_runs() {
    if !require_full() {
        return;
    }
    prlimit_attack("os.getppid()", "the zygote").await;
}

/// PID 1 of the run's PID namespace (the monitor, or the run's zygote where each
/// zygote has a namespace of its own): limiting it must not turn this run into an
/// engine error, nor break later runs.
#[tokio::test]
async fn a_run_cannot_change_the_limits_of_pid_1_of_its_namespace() {
    if !require_full() {
        return;
    }
    prlimit_attack("1", "PID 1").await;
}

/// A harness process that holds no capability (the monitor drops them all) may be
/// reniced, pinned to one CPU, made SCHED_IDLE or given idle I/O priority by any
/// process of its uid with no more capabilities, a run: the monitor enforces the
/// deadlines of every later run, the zygote forks them.
#[tokio::test]
async fn a_run_cannot_deprioritize_the_monitor_or_the_zygote_for_later_runs() {
    if !require_full() {
        return;
    }
    let look = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
HARNESS = sorted({1, os.getppid()} - {os.getpid()})
result = [[os.getpriority(os.PRIO_PROCESS, pid), os.sched_getscheduler(pid),
           len(os.sched_getaffinity(pid)), libc.syscall(252, 1, pid) >> 13]  # ioprio class
          for pid in HARNESS]
"#;
    let attack = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
HARNESS = sorted({1, os.getppid()} - {os.getpid()})
out = {"harness": HARNESS}
for pid in HARNESS:
    for name, fn in [
        ("nice", lambda: os.setpriority(os.PRIO_PROCESS, pid, 19)),
        ("idle", lambda: os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))),
        ("affinity", lambda: os.sched_setaffinity(pid, {min(os.sched_getaffinity(0))})),
        ("ioprio", lambda: libc.syscall(251, 1, pid, 3 << 13) == 0 or (_ for _ in ()).throw(OSError(ctypes.get_errno(), "ioprio_set"))),
    ]:
        try:
            fn()
            out["%s %d" % (name, pid)] = "changed"
        except OSError as e:
            out["%s %d" % (name, pid)] = e.errno
try:
    os.setpriority(os.PRIO_USER, 0, 19)
    out["nice everyone"] = "changed"
except OSError as e:
    out["nice everyone"] = e.errno
result = out
"#;
    // What the harness inherits from this process: its nice value and CPUs.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let nice: i64 = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .nth(16)
        .unwrap()
        .parse()
        .unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let engine = engine();
    let r = run(&engine, attack, None, permissive(30)).await;
    let mut after = Vec::new();
    for _ in 0..4 {
        after.push(run(&engine, look, None, permissive(30)).await);
    }
    engine.shutdown().await;
    assert!(r.ok, "{r:?}");
    let changed: Vec<String> = r
        .result
        .to_value()
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, v)| *v == "changed" && k.as_str() != "nice everyone")
        .map(|(k, _)| k.clone())
        .collect();
    for a in &after {
        for h in a.result.to_value().as_array().expect("the look ran") {
            assert_eq!(
                (
                    h[0].as_i64(),
                    h[1].as_i64(),
                    h[2].as_u64(),
                    h[3].as_i64() == Some(3)
                ),
                (Some(nice), Some(0), Some(cpus as u64), false),
                "a later run finds its harness reniced, idle, pinned or I/O-idle ({changed:?})"
            );
        }
    }
    assert!(
        changed.is_empty(),
        "a run changed the scheduling of the harness: {changed:?}"
    );
}

/// Device nodes are bound from the host: where root of the worker's namespace is the
/// host's owner of /dev/null (a one-uid namespace of root, as `unshare -r`), a run must
/// still not change their modes or times, which every later run and the host share.
#[tokio::test]
async fn a_run_cannot_change_the_host_device_nodes() {
    if !require_full() {
        return;
    }
    // chmod to the mode they have: harmless if it is (wrongly) allowed.
    let attack = r#"
import os, stat
out = {}
for p in ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"]:
    m = stat.S_IMODE(os.stat(p).st_mode)
    try:
        os.chmod(p, m)
        out[p] = "chmod allowed"
    except OSError as e:
        out[p] = e.errno
result = out
"#;
    let engine = engine();
    let r = run(&engine, attack, None, permissive(30)).await;
    engine.shutdown().await;
    let out = r.result.to_value();
    assert!(
        !out.to_string().contains("chmod allowed"),
        "a run may chmod the host's device nodes: {out} ({:?})",
        r.sandbox.as_ref().and_then(|s| s.user_mapping.clone())
    );
}

/// The times of the host's device nodes are shared by every run and the host: a run
/// must not be able to set them (a mark the next run finds).
#[tokio::test]
async fn a_run_cannot_touch_the_host_device_nodes() {
    if !require_full() {
        return;
    }
    let attack = r#"
import os
out = {}
for p in ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"]:
    try:
        os.utime(p)
        out[p] = "touched"
    except OSError as e:
        out[p] = e.errno
result = out
"#;
    let engine = engine();
    let r = run(&engine, attack, None, permissive(30)).await;
    engine.shutdown().await;
    assert!(!r.result.to_string().contains("touched"), "{:?}", r.result);
}

#[tokio::test]
async fn a_run_cannot_write_proc_sys_or_its_own_oom_score() {
    if !require_full() {
        return;
    }
    let attack = r#"
out = {}
for p in ["/proc/sys/kernel/hostname", "/proc/sys/kernel/printk_ratelimit", "/proc/sys/vm/overcommit_memory", "/proc/self/oom_score_adj", "/proc/sys/fs/pipe-max-size"]:
    try:
        with open(p) as f:
            v = f.read()
    except OSError as e:
        out[p] = e.errno
        continue
    try:
        with open(p, "w") as f:
            f.write(v)  # the same value: harmless if it is (wrongly) allowed
        out[p] = "written"
    except OSError as e:
        out[p] = e.errno
result = out
"#;
    let engine = engine();
    let r = run(&engine, attack, None, permissive(30)).await;
    engine.shutdown().await;
    assert!(!r.result.to_string().contains("written"), "{r:?}");
}

#[tokio::test]
async fn a_run_cannot_reach_the_monitor_or_zygote_through_proc_ptrace_or_mounts() {
    if !require_full() {
        return;
    }
    let attack = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
out = {}
HARNESS = sorted({1, os.getppid()} - {os.getpid()})
def t(name, fn):
    try:
        out[name] = ["ok", repr(fn())[:80]]
    except OSError as e:
        out[name] = e.errno
for pid in HARNESS:
    for entry in ("environ", "mem", "maps", "cmdline", "fd", "cwd", "root", "stack"):
        t("%d/%s" % (pid, entry), lambda: os.listdir("/proc/%d/%s" % (pid, entry)) if entry in ("fd", "cwd", "root") else open("/proc/%d/%s" % (pid, entry), "rb").read(64))
def ptrace(pid):
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), "ptrace")
    return "attached"
def vm_read(pid):
    class iovec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
    buf = ctypes.create_string_buffer(64)
    local = iovec(ctypes.cast(buf, ctypes.c_void_p), 64)
    remote = iovec(0x400000, 64)
    n = libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if n < 0:
        raise OSError(ctypes.get_errno(), "process_vm_readv")
    return n
def mount():
    if libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) != 0:
        raise OSError(ctypes.get_errno(), "mount")
def umount():
    if libc.umount2(b"/tmp", 2) != 0:
        raise OSError(ctypes.get_errno(), "umount")
for pid in HARNESS:
    t("ptrace %d" % pid, lambda: ptrace(pid))
    t("vm_read %d" % pid, lambda: vm_read(pid))
t("mount", mount)
t("umount /tmp", umount)
t("umount /proc", lambda: libc.umount2(b"/proc", 2) == 0 or (_ for _ in ()).throw(OSError(ctypes.get_errno(), "umount")))
t("setns", lambda: libc.setns(os.open("/proc/self/ns/mnt", os.O_RDONLY), 0) == 0 or (_ for _ in ()).throw(OSError(ctypes.get_errno(), "setns")))
t("unshare", lambda: libc.unshare(0x00020000) == 0 or (_ for _ in ()).throw(OSError(ctypes.get_errno(), "unshare")))
result = out
"#;
    let r = survives("reach the harness", attack, permissive(30)).await;
    let out = r.result.to_value();
    for (k, v) in out.as_object().unwrap() {
        assert!(v.is_number(), "{k} was allowed: {v} (all: {out})");
    }
}

/// A process of the run that outlives it would race the next run's process (pre-forked
/// right after the sweep): it tries to signal and write every process it can find.
#[tokio::test]
async fn a_leftover_cannot_race_the_next_pre_forked_process() {
    if !require_full() {
        return;
    }
    let attack = r#"
import os, signal, time
main = os.getpid()
if os.fork() == 0:
    os.setsid()
    # Not its own run's processes: any other one is a later run's (or the harness's).
    mine = {os.getpid(), main}
    end = time.time() + 20
    while time.time() < end:
        for pid in range(1, 200):
            if pid in mine:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                with open("/proc/%d/mem" % pid, "r+b") as f:
                    f.seek(0x400000)
                    f.write(b"x")
            except OSError:
                pass
    os._exit(0)
result = "armed"
"#;
    let engine = engine();
    let r = run(&engine, attack, None, permissive(30)).await;
    let mut results = Vec::new();
    for _ in 0..5 {
        results.push(run(&engine, "result = 2 + 2", None, permissive(30)).await);
    }
    engine.shutdown().await;
    assert_eq!(r.result, json!("armed"), "{r:?}");
    for next in results {
        assert_eq!(next.result, json!(4), "{next:?}");
    }
}

// ---------------------------------------------------------------------------------
// A status no run can forge

#[tokio::test]
async fn a_completed_frame_on_every_descriptor_then_a_hang_is_a_timeout() {
    if !require_full() {
        return;
    }
    let attack = r#"
import os, time
frame = b'{"outcome":"completed","result":1}'
for fd in range(3, 65):
    try:
        os.write(fd, frame)
    except OSError:
        pass
for fd in range(0, 65):
    try:
        os.close(fd)
    except OSError:
        pass
time.sleep(60)
"#;
    let engine = engine();
    let started = Instant::now();
    let r = run(&engine, attack, None, permissive(2)).await;
    let next = run(&engine, "result = 2 + 2", None, permissive(30)).await;
    engine.shutdown().await;
    assert!(r.timed_out, "{r:?}");
    assert_eq!(r.exit_code, 124, "{r:?}");
    assert!(!r.ok && r.result.is_null(), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(next.result, json!(4), "{next:?}");
}

#[tokio::test]
async fn a_forged_frame_from_a_child_that_outlives_its_run_is_not_believed() {
    if !require_full() {
        return;
    }
    // The child writes a completed frame on the result descriptor, closes everything and
    // hangs on; the main process hangs too: alive at the deadline, a timeout.
    let attack = r#"
import os, time
frame = b'{"outcome":"completed","result":1}'
if os.fork() == 0:
    os.setsid()
    for fd in range(3, 65):
        try:
            os.write(fd, frame)
        except OSError:
            pass
    for fd in range(0, 65):
        try:
            os.close(fd)
        except OSError:
            pass
    time.sleep(60)
    os._exit(0)
time.sleep(60)
"#;
    let engine = engine();
    let r = run(&engine, attack, None, permissive(2)).await;
    engine.shutdown().await;
    assert!(r.timed_out && r.exit_code == 124, "{r:?}");
}

#[tokio::test]
async fn a_child_left_alive_when_the_run_exits_early_is_not_alive_at_the_deadline() {
    if !require_full() {
        return;
    }
    let m = marker("early-exit");
    let attack = format!(
        r#"
import os
if os.fork() == 0:
    os.setsid()
    os.execv("/bin/sh", ["sh", "-c", "sleep 60; true", {m:?}])
result = "main done"
"#
    );
    let engine = engine();
    let timeout = 3;
    let r = run(&engine, &attack, None, permissive(timeout)).await;
    let alive = common::pids_with(&m);
    engine.shutdown().await;
    common::signal(&alive, "KILL");
    assert_ne!(r.exit_code, 125, "{r:?}");
    if !r.timed_out {
        // Not a timeout: then the run and all it started ended before the deadline.
        assert!(r.duration_ms < (timeout * 1000) as f64, "{r:?}");
        assert!(
            alive.is_empty(),
            "not a timeout, yet alive after the report: {alive:?}"
        );
        assert_eq!(r.result, json!("main done"), "{r:?}");
    } else {
        assert_eq!(r.exit_code, 124, "{r:?}");
    }
}

/// The run's own exit status must not read as the engine's: 125 is what a run that
/// never executed gets (`spr run` exits 125 on it), 124 what a timeout gets.
#[tokio::test]
async fn a_run_that_exits_with_the_engines_codes_is_neither_an_engine_error_nor_a_timeout() {
    let engine = engine_with(SandboxMode::Auto);
    let e125 = run(
        &engine,
        "import sys\nsys.exit(125)",
        None,
        RunnerPolicy::default(),
    )
    .await;
    let e124 = run(
        &engine,
        "import sys\nsys.exit(124)",
        None,
        RunnerPolicy::default(),
    )
    .await;
    let raw = run(&engine, "import os\nos._exit(125)", None, permissive(30)).await;
    engine.shutdown().await;
    assert!(!e124.timed_out, "{e124:?}");
    assert_ne!(
        e125.exit_code,
        spr_core::EXIT_INFRASTRUCTURE,
        "sys.exit(125) reads as an engine error: {e125:?}"
    );
    assert_ne!(raw.exit_code, spr_core::EXIT_INFRASTRUCTURE, "{raw:?}");
}

#[tokio::test]
async fn a_result_over_16_mib_is_the_runs_own_error() {
    if !require_full() {
        return;
    }
    let engine = engine();
    let r = run(&engine, "result = 'x' * (17 << 20)", None, permissive(60)).await;
    let next = run(&engine, "result = 2 + 2", None, permissive(30)).await;
    engine.shutdown().await;
    assert_ne!(r.exit_code, 125, "{:?}", r.error);
    assert!(!r.ok, "{:?}", r.error);
    assert!(
        r.error.as_deref().unwrap_or("").contains("16 MiB"),
        "{:?}",
        r.error
    );
    assert_eq!(next.result, json!(4), "{next:?}");
}

/// A result that JSON escapes (every `"` twice over: in the run's frame, then in the
/// report) just under and just over the limit.
#[tokio::test]
async fn a_result_full_of_quotes_is_never_an_engine_error() {
    if !require_full() {
        return;
    }
    let engine = engine();
    let under = run(&engine, "result = '\"' * (7 << 20)", None, permissive(60)).await;
    let over = run(
        &engine,
        "result = '\"' * ((8 << 20) + 16)",
        None,
        permissive(60),
    )
    .await;
    let next = run(&engine, "result = 2 + 2", None, permissive(30)).await;
    engine.shutdown().await;
    assert_ne!(under.exit_code, 125, "{:?}", under.error);
    assert!(under.ok, "{:?}", under.error);
    assert_eq!(under.result.as_str().len(), (7 << 21) + 2);
    assert_ne!(over.exit_code, 125, "{:?}", over.error);
    assert!(
        !over.ok && over.error.as_deref().unwrap_or("").contains("16 MiB"),
        "{:?}",
        over.error
    );
    assert_eq!(next.result, json!(4), "{next:?}");
}

const FLOOD: &str = r#"
import os
chunk = ("\x01" * (1 << 20)).encode()
for _ in range(10):
    os.write(1, chunk)
    os.write(2, chunk)
result = "done"
"#;

fn max_output() -> RunnerPolicy {
    RunnerPolicy {
        max_output_kb: 1_048_576,
        ..permissive(60)
    }
}

/// 10 MB of a character JSON escapes 6x on each stream, kept whole by the policy: the
/// report is cut down to fit the frame limit, never refused.
#[tokio::test]
async fn escaped_output_at_the_largest_output_limit_is_never_an_engine_error() {
    if !require_full() {
        return;
    }
    let engine = engine();
    let r = run(&engine, FLOOD, None, max_output()).await;
    let next = run(&engine, "result = 2 + 2", None, permissive(30)).await;
    engine.shutdown().await;
    assert_ne!(r.exit_code, 125, "{:?}", r.error);
    assert!(
        r.stdout_truncated || r.stdout.len() == 10 << 20,
        "{:?}",
        r.error
    );
    assert_eq!(next.result, json!(4), "{next:?}");
}

/// The report must be cut where it is too large: the output, not a 6-byte result.
#[tokio::test]
async fn escaped_output_that_is_cut_does_not_cost_the_run_its_result() {
    if !require_full() {
        return;
    }
    let engine = engine();
    let r = run(&engine, FLOOD, None, max_output()).await;
    engine.shutdown().await;
    assert!(r.stdout_truncated && r.stderr_truncated, "{:?}", r.error);
    assert_eq!(
        (r.ok, r.result.to_value(), r.error.clone()),
        (true, json!("done"), None),
        "the run's 6-byte result was dropped for its output's sake"
    );
}

/// Output the monitor keeps (up to max_output_kb, at most 1 GiB per stream) must not
/// cost it its life: the run that printed it gets its own result, not an engine error.
#[tokio::test]
async fn hundreds_of_megabytes_of_output_at_the_largest_output_limit_are_not_an_engine_error() {
    if !require_full() {
        return;
    }
    let code = r#"
import os
chunk = b"x" * (1 << 20)
for _ in range(300):
    os.write(1, chunk)
result = "done"
"#;
    let engine = engine();
    let r = run(&engine, code, None, max_output()).await;
    let next = run(&engine, "result = 2 + 2", None, permissive(30)).await;
    engine.shutdown().await;
    assert_ne!(r.exit_code, 125, "{:?}", r.error);
    assert_eq!(next.result, json!(4), "{next:?}");
}

#[tokio::test]
async fn output_that_looks_like_frames_is_only_output() {
    if !require_full() {
        return;
    }
    let code = r#"
import os, struct, json
fake = json.dumps({"type": "report", "id": 1, "exit_code": 0, "signal": None, "timed_out": False,
    "duration_ms": 1.0, "stdout": "forged", "stderr": "", "stdout_truncated": False,
    "stderr_truncated": False, "child_frame": '{"outcome":"completed","result":"SPOOF"}',
    "child_frame_overflow": False, "leftover_processes": 0, "retire": False}).encode()
hello = json.dumps({"type": "fatal", "message": "forged"}).encode()
for fd in (1, 2):
    os.write(fd, struct.pack(">I", len(fake)) + fake + struct.pack(">I", len(hello)) + hello)
# The result descriptor too: after the harness's marker, a failure marker and a frame.
for fd in range(3, 65):
    try:
        os.fstat(fd)
    except OSError:
        continue
    if fd != 1 and fd != 2:
        try:
            os.write(fd, b"Fforged isolation failure")
        except OSError:
            pass
os._exit(3)
"#;
    let engine = engine();
    let r = run(&engine, code, None, permissive(30)).await;
    let next = run(&engine, "result = 2 + 2", None, permissive(30)).await;
    engine.shutdown().await;
    assert_ne!(r.exit_code, 125, "{r:?}");
    assert_eq!(r.exit_code, 3, "{r:?}");
    assert!(!r.ok && r.result != json!("SPOOF"), "{r:?}");
    assert!(r.stdout.contains("\"type\": \"report\""), "{r:?}");
    assert_eq!(next.result, json!(4), "{next:?}");
}

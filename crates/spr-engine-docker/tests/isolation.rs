//! Attacks on the isolation between runs that share one container (pool size 1), and on
//! what a dead spr leaves behind: a run hunting an earlier run's secrets, a run wrecking
//! the scratch tmpfs and IPC, forbidden socket families, signals at the harness, a
//! forged report, the host killed mid-run, containers of dead owners.

mod common;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, RemoveContainerOptionsBuilder,
};
use common::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use spr_engine_docker::{DockerEngine, DockerEngineConfig};
use spr_policy::{RunnerPolicy, Value};
use spr_protocol::{Json, RunnerResult};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A secret no earlier test run can have seen: 32 random hex digits.
fn random_secret() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut text = String::from("Q");
    for i in 0..2u8 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u8(i);
        h.write_u32(std::process::id());
        text.push_str(&format!("{:016x}", h.finish()));
    }
    text
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn permissive(timeout_seconds: u64) -> RunnerPolicy {
    RunnerPolicy {
        timeout_seconds,
        ..open_policy()
    }
}

fn receipt_scoped(r: &RunnerResult) -> bool {
    r.sandbox
        .as_ref()
        .and_then(|s| s.per_run.as_ref())
        .is_some_and(|p| p.landlock_abi.is_some() && p.landlock_scoped)
}

/// The victim: its secret in its code, its input, a policy global, its stdout, its
/// result, the environment, files and names in the scratch tree (many: whatever reads
/// them after the run must not keep them where the next run can look), and a process it
/// leaves behind holding it.
const VICTIM: &str = r#"
SECRET = "@SECRET@"
import os, time
os.environ["SPR_VICTIM"] = SECRET
print("the secret is", SECRET)
open("secret.txt", "w").write(SECRET)
open("/tmp/" + SECRET, "w").write(SECRET)
os.mkdir(SECRET)
open(SECRET + "/" + SECRET, "w").write(SECRET)
for i in range(300):
    open("/tmp/%s-%d" % (SECRET, i), "w").close()
    os.mkdir("%s-d%d" % (SECRET, i))
if os.fork() == 0:
    hold = SECRET * 3
    time.sleep(30)
    os._exit(0)
result = {"code": SECRET, "input": input_data["secret"], "extra": tenant_key}
"#;

/// The attacker knows only a prefix of the secret, its length and its SHA-256 (so that
/// its own memory holds no copy of it), and hunts it everywhere it can reach: every
/// readable byte of its own memory, the interpreter's objects through frames, class
/// subclasses and their functions' globals, `sys.modules`, the file tree, and other
/// processes' /proc entries. A canary it makes itself proves each hunt works.
const ATTACKER: &str = r#"
import hashlib, os, sys, types
canary = "C" + os.urandom(16).hex()
NEEDLES = [
    ("secret", "@PREFIX@".encode(), "@DIGEST@", @LENGTH@),
    ("canary", canary[:12].encode(), hashlib.sha256(canary.encode()).hexdigest(), len(canary)),
]
found = {}
stats = {"bytes": 0, "regions": 0, "unreadable": 0, "objects": 0, "files": 0}

def look(data, where):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    elif isinstance(data, bytearray):
        data = bytes(data)
    elif not isinstance(data, bytes):
        return
    for name, prefix, digest, length in NEEDLES:
        i = data.find(prefix)
        while i != -1:
            if hashlib.sha256(data[i:i + length]).hexdigest() == digest:
                found.setdefault(name, []).append(where)
                break
            i = data.find(prefix, i + 1)

# 1. Every readable region of this process's memory (first: nothing read later may
#    bring a copy in).
mem = os.open("/proc/self/mem", os.O_RDONLY)
with open("/proc/self/maps") as f:
    maps = f.read().splitlines()
for line in maps:
    fields = line.split()
    if fields[1][0] != "r":
        continue
    start, end = (int(x, 16) for x in fields[0].split("-"))
    stats["regions"] += 1
    pos = start
    while pos < end:
        try:
            chunk = os.pread(mem, min(end - pos, 1 << 22), pos)
        except OSError:
            stats["unreadable"] += 1
            break
        if not chunk:
            break
        stats["bytes"] += len(chunk)
        look(chunk, "mem %s" % (fields[5] if len(fields) > 5 else "anonymous"))
        # Overlap the next read so that nothing straddling a boundary is missed.
        pos += len(chunk) if pos + len(chunk) >= end else len(chunk) - 64
        del chunk
os.close(mem)

# 2. The interpreter's objects, without gc: frames up into the harness, every class
#    and its functions' globals, every module.
keep = []
seen = set()
def walk(obj, where, depth=0):
    if depth > 12 or id(obj) in seen:
        return
    seen.add(id(obj))
    keep.append(obj)
    stats["objects"] += 1
    if isinstance(obj, (str, bytes, bytearray)):
        look(obj, where)
    elif isinstance(obj, dict):
        for k, v in list(obj.items()):
            walk(k, where, depth + 1)
            walk(v, "%s.%s" % (where, str(k)[:30]), depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in list(obj):
            walk(v, where, depth + 1)
    elif isinstance(obj, types.FunctionType):
        walk(obj.__code__.co_consts, where + ".consts", depth + 1)
        walk(obj.__defaults__, where + ".defaults", depth + 1)
        walk(obj.__kwdefaults__, where + ".kwdefaults", depth + 1)
        for cell in obj.__closure__ or ():
            try:
                walk(cell.cell_contents, where + ".closure", depth + 1)
            except ValueError:
                pass
        walk(obj.__globals__, where + ".globals", depth + 1)
    elif isinstance(obj, types.CodeType):
        walk(obj.co_consts, where + ".consts", depth + 1)
    elif isinstance(obj, types.ModuleType):
        walk(vars(obj), where, depth + 1)
    elif isinstance(obj, type):
        try:
            walk(dict(vars(obj)), where, depth + 1)
        except Exception:
            pass
    elif isinstance(obj, (types.MethodType, staticmethod, classmethod)):
        walk(getattr(obj, "__func__", None), where, depth + 1)
    else:
        try:
            d = object.__getattribute__(obj, "__dict__")
        except Exception:
            d = None
        if isinstance(d, dict):
            walk(d, where + ".__dict__", depth + 1)

frame = sys._getframe()
n = 0
while frame is not None:
    walk(frame.f_globals, "frame%d.globals" % n)
    walk(frame.f_locals, "frame%d.locals" % n)
    walk(frame.f_code, "frame%d.code" % n)
    frame = frame.f_back
    n += 1
stats["frames"] = n
def subclasses(cls, out):
    try:
        subs = type.__subclasses__(cls)
    except Exception:
        return
    for sub in subs:
        if sub not in out:
            out.add(sub)
            subclasses(sub, out)
classes = set()
subclasses([].__class__.__base__, classes)
stats["classes"] = len(classes)
for cls in classes:
    init = cls.__dict__.get("__init__")
    if isinstance(init, types.FunctionType):
        walk(init.__globals__, "%s.__init__.__globals__" % cls.__name__)
    walk(cls, "class %s" % cls.__name__)
walk(dict(sys.modules), "sys.modules")
walk(dict(os.environ), "environ")

# 3. The file tree a run can see, names and contents.
for top in ("/tmp", "/dev/shm", "/dev/mqueue", "/run", "/var/tmp", "/home"):
    for root, dirs, files in os.walk(top):
        look(root, "path " + root)
        for name in dirs + files:
            look(name, "name in " + root)
        for name in files:
            try:
                with open(os.path.join(root, name), "rb") as f:
                    look(f.read(1 << 24), "file " + os.path.join(root, name))
                stats["files"] += 1
            except OSError:
                pass

# 4. Other processes (the harness's monitor and zygote): what /proc lets through.
readable = []
for pid in os.listdir("/proc"):
    if not pid.isdigit() or int(pid) == os.getpid():
        continue
    for leaf in ("cmdline", "environ", "mem", "maps", "stack", "fd", "cwd"):
        path = "/proc/%s/%s" % (pid, leaf)
        try:
            if leaf in ("fd", "cwd"):
                look(" ".join(os.listdir(path)), path)
            else:
                with open(path, "rb") as f:
                    look(f.read(1 << 20), path)
            readable.append(leaf)
        except OSError:
            pass
result = {"found": found, "stats": stats, "readable": sorted(set(readable))}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_finds_nothing_of_an_earlier_run_on_the_same_container() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let secret = random_secret();
    let mut victim_policy = permissive(10);
    victim_policy
        .extra_globals
        .insert("tenant_key".into(), Value::String(secret.clone()));
    let victim = engine
        .run(
            &VICTIM.replace("@SECRET@", &secret),
            &json!({ "secret": secret }).into(),
            &victim_policy,
        )
        .await;
    assert!(victim.ok, "{victim:?}");
    assert_eq!(
        victim.result,
        json!({"code": secret, "input": secret, "extra": secret})
    );
    assert!(victim.stdout.contains(&secret));

    let attacker = ATTACKER
        .replace("@PREFIX@", &secret[..12])
        .replace("@DIGEST@", &sha256_hex(&secret))
        .replace("@LENGTH@", &secret.len().to_string());
    assert!(!attacker.contains(&secret));
    let r = engine.run(&attacker, &Json::null(), &permissive(60)).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(
        container_of(&r),
        container_of(&victim),
        "the attacker ran on the victim's container"
    );
    let out = r.result.to_value();
    println!("attacker: {}", serde_json::to_string(&out).unwrap());
    let found = &out["found"];
    assert!(
        found.get("secret").is_none(),
        "the victim's secret was found: {found}"
    );
    // The hunt works: the attacker's own canary is found in its memory and its objects.
    let canary: Vec<String> = serde_json::from_value(found["canary"].clone()).unwrap();
    assert!(canary.iter().any(|w| w.starts_with("mem")), "{canary:?}");
    assert!(canary.iter().any(|w| w.starts_with("frame")), "{canary:?}");
    assert!(out["stats"]["bytes"].as_u64().unwrap() > 10 << 20, "{out}");
    assert!(out["stats"]["classes"].as_u64().unwrap() > 100, "{out}");
    // The harness's processes are not dumpable: only their command lines can be read.
    let readable: Vec<String> = serde_json::from_value(out["readable"].clone()).unwrap();
    for leaf in ["environ", "mem", "maps", "stack", "fd", "cwd"] {
        assert!(!readable.iter().any(|r| r == leaf), "{readable:?}");
    }
    engine.shutdown().await;
}

const WRECK: &str = r#"
import ctypes, os
out = {}
base = "/tmp"
# Hidden, unlistable directories, in the base and in the run's own directory.
os.makedirs(base + "/.hidden/inner")
open(base + "/.hidden/inner/f", "w").write("x")
os.chmod(base + "/.hidden/inner", 0o300)
os.chmod(base + "/.hidden", 0o300)
os.makedirs("mine/deeper")
os.chmod("mine/deeper", 0)
os.chmod("mine", 0o300)
# Fill the tmpfs (file by file: one file stops at RLIMIT_FSIZE).
i = 0
try:
    while True:
        with open("%s/fill-%d" % (base, i), "wb") as f:
            for _ in range(16):
                f.write(b"\0" * (1 << 20))
        i += 1
except OSError as e:
    out["fill"] = e.errno
out["free_kb"] = os.statvfs(base).f_bavail * os.statvfs(base).f_frsize // 1024
# IPC objects that would outlive the run in the container's IPC namespace.
libc = ctypes.CDLL(None, use_errno=True)
IPC_CREAT = 0o1000
for name, call in [
    ("shmget", lambda: libc.shmget(0, 4096, IPC_CREAT | 0o600)),
    ("msgget", lambda: libc.msgget(0, IPC_CREAT | 0o600)),
    ("semget", lambda: libc.semget(0, 1, IPC_CREAT | 0o600)),
    ("mq_open", lambda: libc.mq_open(b"/spr-q", os.O_CREAT | os.O_RDWR, 0o600, None)),
]:
    ctypes.set_errno(0)
    rc = call()
    out[name] = ctypes.get_errno() if rc == -1 else "created"
try:
    os.close(os.open("/dev/mqueue/spr-q", os.O_CREAT | os.O_RDWR, 0o600))
    out["mqueue_file"] = "created"
except OSError as e:
    out["mqueue_file"] = e.errno
# Lock everyone out of the scratch base and of the run's own directory.
for path in (base, "."):
    try:
        os.chmod(path, 0)
        out["chmod " + path] = 0
    except OSError as e:
        out["chmod " + path] = e.errno
result = out
"#;

const INSPECT_SCRATCH: &str = r#"
import os
base = "/tmp"
st = os.statvfs(base)
def lines(path):
    try:
        with open(path) as f:
            return len(f.read().splitlines()) - 1
    except OSError:
        return None
result = {
    "entries": sorted(os.listdir(base)) == [os.path.basename(os.getcwd())],
    "own": os.listdir("."),
    "free_mb": st.f_bavail * st.f_frsize >> 20,
    "shm": lines("/proc/sysvipc/shm"),
    "msg": lines("/proc/sysvipc/msg"),
    "sem": lines("/proc/sysvipc/sem"),
    "mqueue": os.listdir("/dev/mqueue"),
}
"#;

/// What `INSPECT_SCRATCH` found is a clean container: the run's directory alone in an
/// empty tmpfs with its space back, and no IPC objects.
fn assert_clean_scratch(r: &RunnerResult) {
    let mut out = r.result.to_value();
    let free_mb = out["free_mb"].take().as_u64().unwrap();
    assert!(
        free_mb >= 63,
        "the tmpfs is empty again: {free_mb} MiB free"
    );
    assert_eq!(
        out,
        json!({"entries": true, "own": [], "free_mb": null, "shm": 0, "msg": 0, "sem": 0, "mqueue": []}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrecked_scratch_and_refused_ipc_leave_the_next_run_a_clean_container() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let r = engine.run(WRECK, &Json::null(), &permissive(20)).await;
    assert!(r.ok, "{r:?}");
    let out = r.result.to_value();
    println!("wreck: {out}");
    assert_eq!(out["fill"], 28, "ENOSPC: the tmpfs was full: {out}");
    assert!(out["free_kb"].as_u64().unwrap() < 1024, "{out}");
    for call in ["shmget", "msgget", "semget", "mq_open"] {
        assert_eq!(out[call], 1, "{call} must fail with EPERM: {out}");
    }
    assert_ne!(out["mqueue_file"], "created", "{out}");
    assert_eq!(out["chmod /tmp"], 1, "the base is root's: {out}");
    let wrecked = container_of(&r);
    for _ in 0..2 {
        let r = engine
            .run(INSPECT_SCRATCH, &Json::null(), &permissive(5))
            .await;
        assert!(r.ok, "{r:?}");
        assert_eq!(
            container_of(&r),
            wrecked,
            "the container was made clean, not replaced"
        );
        assert_clean_scratch(&r);
    }
    engine.shutdown().await;
}

/// A tree deeper than Python's recursion limit and PATH_MAX (made with `mkdir` and
/// `chdir`) is emptied all the same: the next run gets the same container, clean, with
/// its tmpfs's space back. (The scrub once recursed and failed on it, retiring the
/// container.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_deeper_than_any_path_is_wiped_and_the_container_kept() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let deep =
        "import os\nfor _ in range(2500):\n    os.mkdir('dd')\n    os.chdir('dd')\nopen('leaf', 'w').write('x' * 4096)\nresult = 'deep'";
    let r = engine.run(deep, &Json::null(), &permissive(20)).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.result, json!("deep"));
    let first = container_of(&r);
    let next = engine
        .run(INSPECT_SCRATCH, &Json::null(), &permissive(5))
        .await;
    assert!(next.ok, "{next:?}");
    assert_eq!(
        container_of(&next),
        first,
        "the container was made clean, kept"
    );
    assert_clean_scratch(&next);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_socket_families_are_refused_unix_sockets_work() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let code = r#"
import socket
out = {}
for name, family in [("vsock", 40), ("inet", 2), ("inet6", 10), ("netlink", 16), ("packet", 17)]:
    try:
        socket.socket(family, socket.SOCK_DGRAM if family == 16 else socket.SOCK_STREAM).close()
        out[name] = "created"
    except OSError as e:
        out[name] = e.errno
a, b = socket.socketpair()
a.sendall(b"ok")
out["unix"] = b.recv(2).decode()
result = out
"#;
    let r = engine.run(code, &Json::null(), &permissive(5)).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(
        r.result,
        json!({"vsock": 97, "inet": 97, "inet6": 97, "netlink": 97, "packet": 97, "unix": "ok"}),
        "EAFNOSUPPORT for every family but AF_UNIX"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_at_the_harness_cannot_break_the_container() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let code = r#"
import os, signal
out = {}
for name, target in [("all", -1), ("parent", os.getppid()), ("init", 1)]:
    for sig in (signal.SIGSTOP, signal.SIGKILL, signal.SIGTERM):
        try:
            os.kill(target, sig)
            out["%s %d" % (name, sig)] = "sent"
        except OSError as e:
            out["%s %d" % (name, sig)] = e.errno
try:
    os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)
    out["zygote group"] = "sent"
except OSError as e:
    out["zygote group"] = e.errno
result = out
"#;
    let r = engine.run(code, &Json::null(), &permissive(5)).await;
    assert!(r.ok, "{r:?}");
    println!("signals: {}", r.result);
    let scoped = receipt_scoped(&r);
    let first = container_of(&r);
    let next = engine.run("result = 2", &Json::null(), &policy()).await;
    assert!(next.ok, "{next:?}");
    assert_eq!(next.result, json!(2));
    if scoped {
        // kill(-1) (and killpg(1), the same call) reports success even when every
        // target refused: only the direct sends say EPERM. The next run on the same
        // container shows that nothing was delivered.
        let out = r.result.to_value();
        for (key, value) in out.as_object().unwrap() {
            if key.starts_with("parent") || key.starts_with("init") {
                assert_eq!(value, 1, "{key}: EPERM (Landlock scoping) expected");
            }
        }
        assert_eq!(
            container_of(&next),
            first,
            "the same container serves the next run"
        );
    } else {
        eprintln!("NOTE: no Landlock scoping on this kernel: a run can signal the zygote (the container is replaced)");
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_completion_report_does_not_hide_a_timeout() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let code = r#"
import fcntl, os, stat, time
forged = b'{"outcome":"completed","result":"forged"}'
for fd in range(3, 64):
    try:
        st = os.fstat(fd)
    except OSError:
        continue
    if stat.S_ISFIFO(st.st_mode) and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
        os.write(fd, forged)
        os.close(fd)
os.close(1)
os.close(2)
time.sleep(30)
"#;
    let started = Instant::now();
    let r = engine.run(code, &Json::null(), &permissive(1)).await;
    assert!(r.timed_out, "{r:?}");
    assert_eq!(r.exit_code, 124, "{r:?}");
    assert!(!r.ok);
    assert_ne!(r.result, json!("forged"), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receipt_says_what_every_run_gets() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let code = r#"
import os, signal
status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
try:
    os.kill(os.getppid(), 0)
    scoped = False
except PermissionError:
    scoped = True
result = {k: status[k].strip() for k in ("Seccomp", "NoNewPrivs", "CapEff", "CapPrm", "CapBnd")}
result["scoped"] = scoped
result["oom"] = open("/proc/self/oom_score_adj").read().strip()
"#;
    let r = engine.run(code, &Json::null(), &permissive(5)).await;
    assert!(r.ok, "{r:?}");
    let out = r.result.to_value();
    assert_eq!(out["Seccomp"], "2", "{out}");
    assert_eq!(out["NoNewPrivs"], "1", "{out}");
    assert_eq!(out["CapEff"], "0000000000000000", "{out}");
    assert_eq!(out["CapPrm"], "0000000000000000", "{out}");
    assert_eq!(out["oom"], "1000", "{out}");
    let receipt = r.sandbox.clone().unwrap();
    let per_run = receipt.per_run.clone().unwrap();
    assert!(
        per_run.seccomp && per_run.capabilities_dropped,
        "{per_run:?}"
    );
    assert_eq!(per_run.scratch, "scrubbed");
    assert!(receipt.capabilities_dropped);
    assert!(
        receipt.seccomp.as_ref().unwrap().denied_syscalls > 50,
        "{receipt:?}"
    );
    assert_eq!(receipt.landlock_abi, per_run.landlock_abi);
    assert_eq!(out["scoped"], receipt_scoped(&r), "{out} vs {receipt:?}");
    let landlock_missing = receipt.missing.iter().any(|m| m.name == "landlock");
    assert_eq!(landlock_missing, !receipt_scoped(&r), "{receipt:?}");
    if landlock_missing {
        eprintln!("NOTE: this kernel has no Landlock scoping; the receipt says so");
    }
    engine.shutdown().await;
}

// ---------------------------------------------------------------------------------
// A dead host leaves nothing running

/// The run the host is killed in: a process that sleeps and a child of its own.
const SLEEPER: &str = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n    os._exit(0)\ntime.sleep(60)";
/// Set (to "socket" or "ssh") in the host process the test starts and kills.
const CHILD_ENV: &str = "SPR_TEST_HOST_CHILD";
/// The SSH set-up of .ci/sshd-setup.sh: an sshd on 127.0.0.1:2222 in front of the
/// default daemon.
const SSH_KEY: &str = "/root/.ssh/spr_test_ed25519";

fn host_config(via: &str) -> DockerEngineConfig {
    match via {
        "ssh" => DockerEngineConfig {
            ssh_host: Some("127.0.0.1".into()),
            ssh_user: Some("root".into()),
            ssh_port: Some(2222),
            ssh_key_path: Some(SSH_KEY.into()),
            pool_size: Some(1),
            ..Default::default()
        },
        _ => config(1),
    }
}

/// The host process the test kills (the test binary again, running this test with
/// `CHILD_ENV` set): it prints its container's name, then runs `SLEEPER` until killed.
async fn be_the_host_process(via: &str) {
    let engine = DockerEngine::new(host_config(via)).unwrap();
    let p = permissive(120);
    engine.prewarm(&p).await.expect("prewarm");
    let name = engine.idle_containers().pop().expect("a warm container");
    println!("SPR-CONTAINER {name}");
    let r = engine.run(SLEEPER, &Json::null(), &p).await;
    println!("SPR-UNEXPECTED {r:?}");
}

async fn processes_in(docker: &bollard::Docker, name: &str) -> Option<usize> {
    let top = docker
        .top_processes(name, None::<bollard::query_parameters::TopOptions>)
        .await
        .ok()?;
    Some(top.processes.unwrap_or_default().len())
}

/// Start a host process reaching the default daemon `via` its socket or SSH, SIGKILL
/// it mid-run, and return how long until no process of the run was alive, and until
/// the container was removed.
async fn kill_the_host_mid_run(via: &str) -> (Duration, Duration) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "a_host_killed_mid_run_leaves_nothing_running",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, via)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let name = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // libtest writes "test <name> ... " first, on the same line.
            if let Some((_, name)) = line.split_once("SPR-CONTAINER ") {
                return name.trim().to_string();
            }
        }
        panic!("the host process ended without naming its container");
    })
    .await
    .expect("the host process names its container");
    let d = docker();
    // The run is under way once its process and its child exist (monitor, zygote, run,
    // the run's child).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = processes_in(&d, &name).await.unwrap_or(0);
        if n >= 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never started ({n} processes)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let host_pid = child.id().unwrap();
    child.start_kill().unwrap();
    let killed = Instant::now();
    let _ = child.wait().await;
    let stopped = loop {
        let state = d
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
            .ok()
            .and_then(|c| c.state);
        let running = state.as_ref().is_some_and(|s| s.running == Some(true));
        let alive = if running {
            processes_in(&d, &name).await.unwrap_or(0)
        } else {
            0
        };
        if alive == 0 {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "{alive} processes still alive in {name} 10 s after the host died ({via})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // auto_remove then removes the stopped container.
    let removed = loop {
        if !exists(&d, &name).await || killed.elapsed() > Duration::from_secs(10) {
            break killed.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    end_orphaned_tunnel(host_pid);
    (stopped, removed)
}

/// The SSH tunnel of a host killed with SIGKILL outlives it (nothing tells ssh its
/// parent died; the containers die all the same, as its forwarded connections close):
/// end it, so that the test leaves nothing behind.
fn end_orphaned_tunnel(host_pid: u32) {
    let marker = format!("spr-ssh-{host_pid}-");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&marker) {
            let pid = entry.file_name().to_string_lossy().to_string();
            eprintln!("NOTE: the SSH tunnel (pid {pid}) outlived its SIGKILLed host: ending it");
            let _ = std::process::Command::new("kill").arg(&pid).status();
        }
    }
    if let Ok(dirs) = std::fs::read_dir(std::env::temp_dir()) {
        for dir in dirs.flatten() {
            if dir.file_name().to_string_lossy().starts_with(&marker) {
                let _ = std::fs::remove_dir_all(dir.path());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_mid_run_leaves_nothing_running() {
    if let Some(via) = std::env::var_os(CHILD_ENV) {
        return be_the_host_process(&via.to_string_lossy()).await;
    }
    let Some(probe) = engine(config(1)).await else {
        return;
    };
    probe.shutdown().await;
    let mut ways = vec!["socket"];
    if std::path::Path::new(SSH_KEY).exists() {
        ways.push("ssh");
    } else {
        missing("the SSH test key is missing (run .ci/sshd-setup.sh)");
    }
    for via in ways {
        let (stopped, removed) = kill_the_host_mid_run(via).await;
        println!(
            "host SIGKILLed mid-run ({via}): no process of the run alive after {stopped:?}, container removed after {removed:?}"
        );
        assert!(stopped < Duration::from_secs(2), "{via}: {stopped:?}");
    }
}

// ---------------------------------------------------------------------------------
// What a dead spr left behind is removed by the next engine

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

/// The owner label of a process that existed and is gone.
fn dead_owner(host: &str) -> String {
    let mut c = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = c.id();
    let start = start_time(pid);
    c.kill().unwrap();
    c.wait().unwrap();
    format!("{pid}:{start}@{host}")
}

/// A managed-looking container with `owner`, running (or paused).
async fn planted(d: &bollard::Docker, owner: &str, paused: bool, dead_owner: bool) -> String {
    let mut labels = HashMap::new();
    labels.insert("dev.spr.managed".to_string(), "true".to_string());
    labels.insert("dev.spr.owner".to_string(), owner.to_string());
    let id = d
        .create_container(
            None::<CreateContainerOptions>,
            ContainerCreateBody {
                image: Some("spr-runtime:latest".into()),
                entrypoint: Some(vec![
                    "python3".into(),
                    "-c".into(),
                    "import time; time.sleep(600)".into(),
                ]),
                cmd: Some(vec![]),
                labels: Some(labels),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id;
    // An engine starting meanwhile (another test) may remove a dead owner's container
    // at any point from here on: gone (or going) is what it is meant to be.
    let started = d
        .start_container(
            &id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await;
    let paused_ok = match (&started, paused) {
        (Ok(()), true) => d.pause_container(&id).await,
        _ => Ok(()),
    };
    if !dead_owner {
        started.expect("start a live owner's container");
        paused_ok.expect("pause a live owner's container");
    }
    id
}

async fn exists(d: &bollard::Docker, id: &str) -> bool {
    d.inspect_container(id, None::<InspectContainerOptions>)
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_dead_owners_are_removed_by_the_next_engine() {
    let Some(probe) = engine(config(1)).await else {
        return;
    };
    probe.shutdown().await;
    let d = docker();
    let host = hostname();
    let me = std::process::id();
    let start = start_time(me);
    let dead = dead_owner(&host);
    // (owner, paused, removed?)
    let cases = [
        (dead.clone(), false, true),
        (dead, true, true),
        // Our pid, but another start time: the owner died and its pid was reused.
        (format!("{me}:{}@{host}", start + 1), true, true),
        // The old label format, of a pid that cannot exist.
        (format!("4194305@{host}"), false, true),
        // A live owner, in both formats, paused or not.
        (format!("{me}:{start}@{host}"), false, false),
        (format!("{me}@{host}"), true, false),
        // Another machine's owner: never ours to judge.
        (format!("4194305:1@not-{host}"), false, false),
    ];
    let mut planted_ids = Vec::new();
    for (owner, paused, removed) in &cases {
        planted_ids.push(planted(&d, owner, *paused, *removed).await);
    }
    let engine = DockerEngine::new(DockerEngineConfig {
        pool_size: Some(1),
        ..Default::default()
    })
    .unwrap();
    let started = Instant::now();
    let r = engine.run("result = 1", &Json::null(), &policy()).await;
    let first_run = started.elapsed();
    assert!(r.ok, "{r:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut states = Vec::new();
    loop {
        states.clear();
        for id in &planted_ids {
            states.push(exists(&d, id).await);
        }
        let done = cases
            .iter()
            .zip(&states)
            .all(|((_, _, removed), exists)| !removed || !exists);
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let swept = started.elapsed();
    // Clean up before asserting: a kept container must not outlive a failed test.
    for id in &planted_ids {
        let _ = d.unpause_container(id).await;
        let _ = d
            .remove_container(
                id,
                Some(RemoveContainerOptionsBuilder::default().force(true).build()),
            )
            .await;
    }
    engine.shutdown().await;
    println!("first run {first_run:?}; dead owners' containers gone after {swept:?}");
    for ((owner, paused, removed), exists) in cases.iter().zip(&states) {
        assert_eq!(
            !exists, *removed,
            "owner {owner} (paused: {paused}): removed {}, expected {removed}",
            !exists
        );
    }
}

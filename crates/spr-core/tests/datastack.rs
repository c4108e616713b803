//! The common data stack (numpy, pandas, matplotlib, scipy from PyPI, pinned by
//! `.ci/datastack-setup.sh`) under spr's policies, through a real local engine: typical
//! data work under the default policy, attacks that reach a blocked module through a
//! library, the kernel's refusal of exec and fork when the policy denies processes, and
//! multiprocessing where it allows them.
//!
//! The venv is `/opt/spr-datastack` (`SPR_DATASTACK_VENV` overrides it): without it these
//! tests fail under CI and are skipped loudly elsewhere.

mod common;

use common::run_on;
use spr_core::{
    LocalEngine, LocalEngineConfig, RunnerPolicy, RunnerResult, SandboxMode, VenvManager,
};
use std::path::PathBuf;
use std::process::{Command, Stdio};

const DATASTACK_VENV: &str = "/opt/spr-datastack";

/// The data-stack venv, if every library of the stack imports from it.
fn datastack_venv() -> Option<PathBuf> {
    let venv = std::env::var_os("SPR_DATASTACK_VENV")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DATASTACK_VENV), PathBuf::from);
    let works = Command::new(venv.join("bin").join("python"))
        .args(["-c", "import numpy, pandas, matplotlib, scipy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    works.then_some(venv)
}

/// The tests of this file one at a time: each imports the whole stack in its runs, and
/// side by side on a small machine they would race their deadlines.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn engine_with(mode: SandboxMode) -> Option<LocalEngine> {
    let venv = datastack_venv();
    if !common::require(
        venv.is_some(),
        "the data-stack venv (bash .ci/datastack-setup.sh, or SPR_DATASTACK_VENV)",
    ) {
        return None;
    }
    let mut config = LocalEngineConfig::new(venv.expect("checked"));
    config.venv_manager = VenvManager::Python;
    config.pool_size = Some(1);
    config.sandbox = mode;
    Some(LocalEngine::new(config).expect("an engine over the data-stack venv"))
}

fn engine() -> Option<LocalEngine> {
    engine_with(SandboxMode::Auto)
}

/// Room for the runs that allow processes and natives: a pool of processes each
/// importing numpy. The Python rules are the default's.
fn roomy() -> RunnerPolicy {
    RunnerPolicy {
        memory_limit_mb: 1024,
        timeout_seconds: 30,
        ..RunnerPolicy::default()
    }
}

/// The default policy with a deadline a loaded CI machine cannot miss: nextest runs
/// these tests side by side with others, and importing the whole stack takes seconds
/// there. Everything else, memory included, is the default's.
fn default_rules() -> RunnerPolicy {
    RunnerPolicy {
        timeout_seconds: 20,
        ..RunnerPolicy::default()
    }
}

/// Processes allowed (no `os`, `subprocess` or `multiprocessing` blocked), network not.
fn processes_allowed() -> RunnerPolicy {
    RunnerPolicy {
        blocked_imports: vec!["socket".into(), "ctypes".into(), "importlib".into()],
        blocked_builtins: vec![],
        ..roomy()
    }
}

fn describe(r: &RunnerResult) -> String {
    format!(
        "ok={} error={:?} result={:?}\nstderr: {}",
        r.ok, r.error, r.result, r.stderr
    )
}

#[track_caller]
fn ok(r: &RunnerResult) -> serde_json::Value {
    assert!(r.ok, "{}", describe(r));
    serde_json::from_str(r.result.get()).expect("a JSON result")
}

#[tokio::test(flavor = "multi_thread")]
async fn typical_data_work_runs_under_the_default_policy() {
    let _serial = SERIAL.lock().await;
    let Some(engine) = engine() else { return };
    // The issue's own example, under the default policy exactly.
    let r = run_on(
        &engine,
        r#"import pandas as pd; result = int(pd.DataFrame({"a": [1, 2]}).a.sum())"#,
        RunnerPolicy::default(),
    )
    .await;
    assert_eq!(ok(&r), 3);
    let receipt = r.sandbox.as_ref().expect("a receipt");
    let per_run = receipt.per_run.as_ref().expect("per-run isolation");
    assert!(per_run.process_filter, "{per_run:?}");
    // numpy's linear algebra, under the default policy exactly too.
    let code = "import numpy as np\nm = np.array([[2.0, 1.0], [1.0, 3.0]])\n\
                result = [round(float(np.linalg.det(m)), 6), np.linalg.solve(m, [3.0, 4.0]).round(6).tolist()]";
    let r = run_on(&engine, code, RunnerPolicy::default()).await;
    assert_eq!(ok(&r), serde_json::json!([5.0, [1.0, 1.0]]));

    let code = r#"
import numpy as np, pandas as pd
a = np.random.default_rng(0).normal(size=(60, 60))
spd = a @ a.T + np.eye(60)
x = np.linalg.solve(spd, np.ones(60))
df = pd.DataFrame({"g": ["a", "b"] * 50, "v": np.arange(100)})
sums = df.groupby("g").v.sum().to_dict()
df.to_csv("data.csv", index=False)
back = pd.read_csv("data.csv")
result = {"residual": float(np.abs(spd @ x - 1).max()), "sums": sums, "rows": len(back)}
"#;
    let v = ok(&run_on(&engine, code, default_rules()).await);
    assert!(v["residual"].as_f64().unwrap() < 1e-9, "{v}");
    assert_eq!(v["sums"], serde_json::json!({"a": 2450, "b": 2500}));
    assert_eq!(v["rows"], 100);

    let code = r#"
import matplotlib, matplotlib.pyplot as plt, pathlib
fig, ax = plt.subplots()
ax.plot([1, 2, 3], [3, 1, 2])
ax.set_title("a title draws text with the bundled fonts")
fig.savefig("plot.png")
result = {
    "backend": matplotlib.get_backend(),
    "png": pathlib.Path("plot.png").read_bytes()[:8].hex(),
    "config": matplotlib.get_configdir().startswith(str(pathlib.Path.cwd())),
}
"#;
    let r = run_on(&engine, code, default_rules()).await;
    let v = ok(&r);
    assert_eq!(v["backend"].as_str().unwrap().to_lowercase(), "agg");
    assert_eq!(v["png"], "89504e470d0a1a0a", "a PNG signature");
    assert_eq!(v["config"], true, "matplotlib's config dir is in scratch");
    assert!(
        !r.stderr.contains("Matplotlib") && !r.stderr.contains("Warning"),
        "no warning about a config dir or fonts: {}",
        r.stderr
    );

    // The whole stack at once, scipy included, under the default policy: about 240 MiB
    // of private memory on top of the interpreter and the harness, 128 of them two
    // copies of OpenBLAS's buffers (numpy's and scipy's; docs/POLICY.md, "The data
    // stack").
    let code = r#"
import numpy as np, pandas as pd, matplotlib.pyplot as plt
import scipy.stats, scipy.optimize, scipy.linalg
df = pd.DataFrame({"x": np.arange(10.0)})
fig, ax = plt.subplots()
df.plot(ax=ax)
fig.savefig("all.png")
t = scipy.stats.ttest_ind(np.arange(10.0), np.arange(10.0) + 1)
m = scipy.optimize.minimize(lambda x: (x[0] - 3.0) ** 2, [0.0]).x[0]
lu, piv = scipy.linalg.lu_factor(np.array([[4.0, 3.0], [6.0, 3.0]]))
result = [round(float(t.pvalue), 4), round(float(m), 4), float(abs(lu).max())]
"#;
    let r = run_on(&engine, code, default_rules()).await;
    assert_eq!(ok(&r), serde_json::json!([0.4697, 3.0, 6.0]));

    // The receipt's memory limits are the run's own, and numeric libraries keep to
    // one thread.
    let code = r#"
import resource, threading, numpy
numpy.linalg.inv(numpy.eye(300) * 2.0)
result = [resource.getrlimit(resource.RLIMIT_DATA)[0] >> 20,
          resource.getrlimit(resource.RLIMIT_AS)[0] >> 20, threading.active_count()]
"#;
    let r = run_on(&engine, code, default_rules()).await;
    let v = ok(&r);
    let rl = r
        .sandbox
        .as_ref()
        .and_then(|s| s.rlimits.clone())
        .expect("rlimits");
    // The policy's 256 MiB on top of what the interpreter and the harness hold.
    let data = rl.data_mb.unwrap();
    assert!((257..=256 + 64).contains(&data), "{rl:?}");
    assert_eq!(
        rl.address_space_mb,
        Some(256 + spr_core::ADDRESS_SPACE_HEADROOM_MB)
    );
    assert_eq!(v, serde_json::json!([rl.data_mb, rl.address_space_mb, 1]));
    engine.shutdown().await;
}

/// (code, what the error must say): each reaches a blocked module or capability
/// through a library.
const ATTACKS: &[(&str, &str)] = &[
    (
        "import matplotlib; matplotlib.subprocess.run(['id'])",
        "PermissionError: Starting processes is blocked by policy (subprocess.Popen)",
    ),
    (
        "import pandas; pandas.io.common.os.system('id')",
        "PermissionError: Starting processes is blocked by policy (os.system)",
    ),
    (
        "import numpy\nps = numpy.__builtins__['__import__']('_posixsubprocess')\n\
         os_ = numpy.__builtins__['__import__']('os')\nr, w = os_.pipe()\n\
         ps.fork_exec([b'/bin/sh', b'-c', b'id'], [b'/bin/sh'], True, (w,), None, None, \
         -1, -1, -1, -1, -1, -1, r, w, True, False, -1, None, None, None, -1, None, False)",
        "PermissionError: [Errno 1] Operation not permitted",
    ),
    (
        "import matplotlib\nsp = matplotlib.subprocess\nr, w = sp.os.pipe()\n\
         sp._fork_exec([b'/bin/true'], [b'/bin/true'], True, (w,), None, None, -1, -1, -1, \
         -1, -1, -1, r, w, True, False, -1, None, None, None, -1, None, True)",
        "PermissionError: [Errno 1] Operation not permitted",
    ),
    (
        "import pandas; pandas.io.common.os.fork()",
        "PermissionError: Starting processes is blocked by policy (os.fork)",
    ),
    (
        "import numpy.ctypeslib as c; c.ctypes.CDLL(None).system(b'id')",
        "PermissionError: Native code (ctypes) is blocked by policy (ctypes.dlsym)",
    ),
    (
        "import numpy, numpy.ctypeslib as c\nc.load_library('_multiarray_umath', numpy._core.__path__[0])",
        "PermissionError: Native code (ctypes) is blocked by policy (ctypes.dlopen)",
    ),
    (
        "import numpy.ctypeslib as c; c.ctypes.CDLL('libc.so.6')",
        "PermissionError: Native code (ctypes) is blocked by policy (ctypes.dlopen)",
    ),
    (
        "import numpy; ct = numpy._core._internal.ctypes; ct.string_at(id(1), 8)",
        "PermissionError: Native code (ctypes) is blocked by policy (ctypes.string_at)",
    ),
    (
        "import numpy; ct = numpy._core._internal.ctypes; ct.c_char.from_address(id(1))",
        "PermissionError: Native code (ctypes) is blocked by policy (ctypes.cdata)",
    ),
    (
        "import pandas\nsock = pandas.__builtins__['__import__']('socket')\nsock.socket()",
        "PermissionError: Network access is blocked by policy (socket.__new__)",
    ),
    (
        "import urllib.request; urllib.request.urlopen('http://192.0.2.1/')",
        "Network access is blocked by policy (socket.getaddrinfo)",
    ),
    (
        "import numpy as np; np.save('/etc/spr-x', np.arange(3))",
        "PermissionError: Writing '/etc/spr-x.npy' is blocked by policy",
    ),
    (
        "import pandas as pd; pd.DataFrame({'a': [1]}).to_csv('/tmp/../etc/spr-x')",
        "PermissionError: Writing '/tmp/../etc/spr-x' is blocked by policy",
    ),
    (
        "import pathlib; pathlib.os.system('id')",
        "PermissionError: Starting processes is blocked by policy (os.system)",
    ),
    (
        "import pathlib; pathlib.os.remove('/etc/hostname')",
        "PermissionError: Changing '/etc/hostname' is blocked by policy",
    ),
    (
        "import shutil; shutil.rmtree('/usr/share')",
        "PermissionError: Changing '/usr/share' is blocked by policy",
    ),
    (
        "import matplotlib.pyplot as plt; plt.figure().savefig('/etc/spr-x.png')",
        "PermissionError: Writing '/etc/spr-x.png' is blocked by policy",
    ),
    // The user's own imports of the C modules behind blocked wrappers.
    (
        "import _posixsubprocess",
        "ImportError: Import '_posixsubprocess' is blocked by policy",
    ),
    (
        "import _ctypes",
        "ImportError: Import '_ctypes' is blocked by policy",
    ),
    (
        "import posix",
        "ImportError: Import 'posix' is blocked by policy",
    ),
    (
        "import _socket",
        "ImportError: Import '_socket' is blocked by policy",
    ),
    (
        "import numpy
numpy.__builtins__['__import__']('_socket').socket()",
        "PermissionError: Network access is blocked by policy (socket.__new__)",
    ),
];

/// A run after an attack: the worker is fine and nothing of the attack is left.
const VICTIM: &str = r#"
import numpy as np, pathlib
result = [int(np.arange(10).sum()), pathlib.Path("/etc/spr-x").exists(),
          pathlib.Path("/etc/spr-x.npy").exists(), sorted(p.name for p in pathlib.Path(".").iterdir())]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn attacks_through_a_library_are_refused_and_the_next_run_is_clean() {
    let _serial = SERIAL.lock().await;
    let Some(engine) = engine() else { return };
    for (attack, expected) in ATTACKS {
        let r = run_on(&engine, attack, default_rules()).await;
        assert!(!r.ok, "{attack}\n{}", describe(&r));
        let error = r.error.clone().unwrap_or_default();
        assert!(
            error.contains(expected),
            "{attack}\nexpected {expected:?}\n{}",
            describe(&r)
        );
        let v = run_on(&engine, VICTIM, default_rules()).await;
        assert_eq!(
            ok(&v),
            serde_json::json!([45, false, false, []]),
            "after {attack}"
        );
    }
    engine.shutdown().await;
}

/// What the kernel refuses once the process filter is on: libc's own fork through
/// ctypes and a fork_exec raise no audit event (the policy allows ctypes and open here,
/// so that nothing but the kernel stands in the way).
const KERNEL_REFUSAL: &str = r#"
import ctypes, threading, numpy as np
libc = ctypes.CDLL(None, use_errno=True)
forked = libc.fork()
fork_errno = ctypes.get_errno()
import json
ps = json.__builtins__["__import__"]("_posixsubprocess")
os_ = json.__builtins__["__import__"]("os")
r, w = os_.pipe()
try:
    ps.fork_exec([b"/bin/true"], [b"/bin/true"], True, (w,), None, None, -1, -1, -1, -1,
                 -1, -1, r, w, True, False, -1, None, None, None, -1, None, False)
    spawned = "spawned"
except OSError as e:
    spawned = e.errno
execve = libc.execve(b"/bin/true", None, None)
exec_errno = ctypes.get_errno()
out = []
t = threading.Thread(target=lambda: out.append(float(np.dot(np.ones((200, 200)), np.ones(200)).sum())))
t.start(); t.join()
status = dict(l.split(":", 1) for l in open("/proc/self/status"))
result = {"fork": [forked, fork_errno], "fork_exec": spawned, "execve": [execve, exec_errno],
          "thread": out, "filters": status.get("Seccomp_filters", "?").strip()}
"#;

fn processes_denied_natives_allowed() -> RunnerPolicy {
    RunnerPolicy {
        blocked_imports: vec!["subprocess".into()],
        blocked_builtins: vec![],
        ..roomy()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kernel_refuses_exec_and_fork_when_the_policy_denies_processes() {
    let _serial = SERIAL.lock().await;
    for mode in [SandboxMode::Auto, SandboxMode::Off] {
        let Some(engine) = engine_with(mode) else {
            return;
        };
        let r = run_on(&engine, KERNEL_REFUSAL, processes_denied_natives_allowed()).await;
        let v = ok(&r);
        assert_eq!(v["fork"], serde_json::json!([-1, 1]), "{mode:?}: {v}");
        assert_eq!(v["fork_exec"], 1, "{mode:?}: {v}");
        assert_eq!(v["execve"], serde_json::json!([-1, 1]), "{mode:?}: {v}");
        assert_eq!(v["thread"], serde_json::json!([40000.0]), "{mode:?}: {v}");
        let per_run = r
            .sandbox
            .as_ref()
            .and_then(|s| s.per_run.as_ref())
            .expect("the receipt names the process filter");
        assert!(per_run.process_filter, "{mode:?}: {per_run:?}");
        // A policy that allows processes gets no process filter: the same run forks.
        let allowed = RunnerPolicy {
            blocked_imports: vec![],
            ..processes_denied_natives_allowed()
        };
        let code = "import os\npid = os.fork()\nif pid == 0:\n    os._exit(7)\n\
                    result = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])";
        let r = run_on(&engine, code, allowed).await;
        assert_eq!(ok(&r), 7, "{mode:?}");
        let filter = r.sandbox.as_ref().and_then(|s| s.per_run.as_ref());
        assert!(
            !filter.is_some_and(|p| p.process_filter),
            "{mode:?}: {filter:?}"
        );
        engine.shutdown().await;
    }
}

const POOL: &str = r#"
import multiprocessing as mp, concurrent.futures as cf, os

def square(x):
    return x * x

with mp.Pool(2) as pool:
    squares = pool.map(square, range(6))
with cf.ProcessPoolExecutor(max_workers=2) as ex:
    cubes = list(ex.map(pow, range(4), [3] * 4))
lock = mp.Lock()
with lock:
    pass
shm = os.statvfs("/dev/shm")
seen = sorted(os.listdir("/dev/shm"))
open("/dev/shm/left-by-run", "w").write("x")
result = {"squares": squares, "cubes": cubes, "shm_mb": shm.f_blocks * shm.f_frsize >> 20, "seen": seen}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn multiprocessing_works_where_the_policy_allows_processes() {
    let _serial = SERIAL.lock().await;
    let Some(engine) = engine() else { return };
    let r = run_on(&engine, POOL, processes_allowed()).await;
    let per_run = r.sandbox.as_ref().and_then(|s| s.per_run.clone());
    if !common::require(
        per_run
            .as_ref()
            .is_some_and(|p| p.dev_shm == Some(spr_protocol::DevShm::Tmpfs)),
        "a /dev/shm of each run's own (per-run mount namespaces)",
    ) {
        engine.shutdown().await;
        return;
    }
    let v = ok(&r);
    assert_eq!(v["squares"], serde_json::json!([0, 1, 4, 9, 16, 25]));
    assert_eq!(v["cubes"], serde_json::json!([0, 1, 8, 27]));
    let shm_mb = v["shm_mb"].as_u64().unwrap();
    assert!(shm_mb > 0 && shm_mb <= 64, "size-limited: {shm_mb} MiB");
    assert!(!per_run.unwrap().process_filter);
    // Fresh for the next run (the pool has one worker: the same worker serves it).
    for _ in 0..2 {
        let r = run_on(&engine, POOL, processes_allowed()).await;
        assert_eq!(ok(&r)["seen"], serde_json::json!([]), "{}", describe(&r));
    }
    // Filling it is the run's own failure, and the next run is fine.
    let fill = "open('/dev/shm/big', 'wb').write(b'x' * (80 << 20))";
    let r = run_on(&engine, fill, processes_allowed()).await;
    assert!(!r.ok, "{}", describe(&r));
    let r = run_on(&engine, POOL, processes_allowed()).await;
    assert_eq!(ok(&r)["seen"], serde_json::json!([]));
    engine.shutdown().await;
}

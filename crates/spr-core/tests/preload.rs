//! Preloaded packages on the local engine, sandbox on: the pinned data stack imported
//! once in the warm worker, usable by runs, and fresh in every run (what one run changes
//! in a preloaded module never reaches the next); the policy still judges the run's own
//! imports and its memory; bad names and failing imports are clear engine errors. The
//! operator's warm-up runs before any request: what it leaves in the modules every
//! run sees, what a run changes still never reaches the next, and a bad one is a clear
//! error.

mod common;

use common::run_on;
use spr_core::{LocalEngine, LocalEngineConfig, LocalEngineError, RunnerPolicy};
use std::path::PathBuf;

/// The pinned data stack (`.ci/datastack-setup.sh`): `SPR_DATASTACK_VENV`, else
/// `/opt/spr-datastack`. `None` (a failure under CI) when it is not installed.
fn datastack() -> Option<PathBuf> {
    let venv = std::env::var_os("SPR_DATASTACK_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/spr-datastack"));
    let ok = venv.join("bin/python").exists();
    common::require(
        ok,
        &format!(
            "the data-stack venv at {} (.ci/datastack-setup.sh)",
            venv.display()
        ),
    )
    .then_some(venv)
}

fn engine(venv: PathBuf, preload: &[&str]) -> Result<LocalEngine, LocalEngineError> {
    warmed(venv, preload, None)
}

fn warmed(
    venv: PathBuf,
    preload: &[&str],
    warmup: Option<&str>,
) -> Result<LocalEngine, LocalEngineError> {
    let mut config = LocalEngineConfig::new(venv);
    config.pool_size = Some(1);
    config.preload = preload.iter().map(|s| s.to_string()).collect();
    config.warmup = warmup.map(str::to_string);
    LocalEngine::new(config)
}

/// The engine runs with the kernel sandbox (namespaces, Landlock, seccomp; a cgroup only
/// where one is writable), a failure under CI when it does not.
async fn sandboxed(engine: &LocalEngine) -> bool {
    engine.prepare().await.expect("the engine can be prepared");
    let full = engine.sandbox_support().is_some_and(|s| {
        [
            "user_namespace",
            "mount_namespace",
            "pid_namespace",
            "landlock",
            "seccomp",
        ]
        .iter()
        .all(|n| s.available(n))
    });
    common::require(
        full,
        "the full local sandbox (namespaces, Landlock, seccomp)",
    )
}

/// The default policy without import or builtin checks (the kernel sandbox still applies):
/// for probes that read the run's own /proc entries.
fn unchecked() -> RunnerPolicy {
    RunnerPolicy {
        blocked_imports: vec![],
        blocked_builtins: vec![],
        ..RunnerPolicy::default()
    }
}

fn result_of(r: &spr_core::RunnerResult) -> serde_json::Value {
    assert!(r.ok, "run failed: {r:#?}");
    r.result.to_value()
}

#[tokio::test]
async fn preloaded_pandas_and_numpy_are_usable_and_counted_by_the_worker() {
    let Some(venv) = datastack() else { return };
    let engine = engine(venv, &["pandas", "numpy"]).unwrap();
    if !sandboxed(&engine).await {
        return;
    }
    let policy = RunnerPolicy::default();
    let code = r#"
import sys
before = ["pandas" in sys.modules, "pd" in globals(), "pandas" in globals()]
import pandas as pd
import numpy as np
df = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]})
result = before + [int(df.a.sum()), float(np.linalg.norm(np.array([3.0, 4.0])))]
"#;
    for _ in 0..3 {
        let r = run_on(&engine, code, policy.clone()).await;
        assert_eq!(
            result_of(&r),
            serde_json::json!([true, false, false, 3, 5.0])
        );
        // The receipt's memory limits include what the preload maps.
        let rl = r.sandbox.as_ref().unwrap().rlimits.as_ref().unwrap();
        assert!(rl.data_mb.unwrap() > policy.memory_limit_mb + 50, "{rl:?}");
        assert!(
            rl.address_space_mb.unwrap()
                > rl.data_mb.unwrap() + spr_core::ADDRESS_SPACE_HEADROOM_MB,
            "{rl:?}"
        );
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn what_a_run_changes_in_preloaded_modules_never_reaches_the_next() {
    let Some(venv) = datastack() else { return };
    let engine = engine(venv, &["pandas", "numpy"]).unwrap();
    if !sandboxed(&engine).await {
        return;
    }
    let policy = RunnerPolicy::default();
    let mutate = r#"
import pandas as pd
import numpy as np
pd.options.display.max_rows = 3
pd.spr_added = "run 1"
pd.DataFrame.sum = lambda self, *a, **k: "patched"
import pandas._config.config as cfg
cfg._registered_options["spr.secret"] = "run 1's secret"
np.random.seed(1234)
result = [pd.DataFrame({"a": [1]}).sum(), pd.get_option("display.max_rows")]
"#;
    let look = r#"
import pandas as pd
import numpy as np
import pandas._config.config as cfg
result = [
    pd.get_option("display.max_rows"),
    hasattr(pd, "spr_added"),
    int(pd.DataFrame({"a": [1, 2]}).sum()["a"]),
    "spr.secret" in cfg._registered_options,
    float(np.random.rand()),
]
"#;
    let r = run_on(&engine, mutate, policy.clone()).await;
    assert_eq!(result_of(&r), serde_json::json!(["patched", 3]));
    let mut draws = Vec::new();
    for _ in 0..3 {
        let got = result_of(&run_on(&engine, look, policy.clone()).await);
        assert_eq!(got[0], 60, "{got}");
        assert_eq!(got[1], false, "{got}");
        assert_eq!(got[2], 3, "{got}");
        assert_eq!(got[3], false, "{got}");
        draws.push(got[4].as_f64().unwrap());
    }
    // numpy's global generator is reseeded in every run: not the seed run 1 set, and not
    // one sequence shared by all runs either.
    let seeded = 0.1915194503788923; // np.random.seed(1234); np.random.rand()
    assert!(draws.iter().all(|d| *d != seeded), "{draws:?}");
    assert!(draws[0] != draws[1] && draws[1] != draws[2], "{draws:?}");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_preloaded_module_the_policy_blocks_stays_blocked() {
    let Some(venv) = datastack() else { return };
    let engine = engine(venv, &["pandas"]).unwrap();
    if !sandboxed(&engine).await {
        return;
    }
    let mut policy = RunnerPolicy::default();
    policy.blocked_imports.push("pandas".into());
    let r = run_on(&engine, "import pandas", policy.clone()).await;
    assert!(!r.ok);
    assert_eq!(
        r.error.as_deref(),
        Some("ImportError: Import 'pandas' is blocked by policy")
    );
    let r = run_on(&engine, "from pandas import DataFrame", policy).await;
    assert!(!r.ok);
    // Under the default policy (processes denied), what pandas loaded for itself in
    // the worker gives the run no way to start a process or load native code.
    let code = r#"
import pandas as pd
import numpy as np
out = []
try:
    import _posixsubprocess
except ImportError as e:
    out.append(str(e))
# What a library reaches: the module pandas loaded in the worker.
import json
_posixsubprocess = json.__builtins__["__import__"]("_posixsubprocess")
try:
    _posixsubprocess.fork_exec(*([None] * 23))
except PermissionError as e:
    out.append(str(e))
try:
    np._core._internal.ctypes.CDLL("libc.so.6")
except PermissionError as e:
    out.append(str(e))
try:
    import subprocess
except ImportError as e:
    out.append(str(e))
result = out
"#;
    let got = result_of(&run_on(&engine, code, RunnerPolicy::default()).await);
    assert_eq!(
        got,
        serde_json::json!([
            "Import '_posixsubprocess' is blocked by policy",
            "Starting processes is blocked by policy (_posixsubprocess.fork_exec)",
            "Native code (ctypes) is blocked by policy (ctypes.dlopen)",
            "Import 'subprocess' is blocked by policy"
        ])
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_run_gets_its_policys_memory_on_top_of_the_preload() {
    let Some(venv) = datastack() else { return };
    let engine = engine(venv, &["pandas", "matplotlib.pyplot"]).unwrap();
    if !sandboxed(&engine).await {
        return;
    }
    let policy = RunnerPolicy::default(); // 256 MiB
    let fill = |mb: u64| {
        format!(
            "import pandas as pd\nb = bytearray({mb} << 20)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\nresult = len(b) >> 20"
        )
    };
    let r = run_on(&engine, &fill(200), policy.clone()).await;
    assert_eq!(result_of(&r), 200);
    // And the policy still bounds the run.
    let r = run_on(&engine, &fill(300), policy.clone()).await;
    assert!(!r.ok, "{r:#?}");
    assert!(
        r.resource_exceeded || r.error.as_deref().unwrap_or("").contains("MemoryError"),
        "{r:#?}"
    );
    // A plot with the preloaded pyplot, whose font cache the preload built.
    let code = "import io\nimport matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2, 3])\nbuf = io.BytesIO()\nfig.savefig(buf, format='png')\nresult = buf.getvalue()[:4] == b'\\x89PNG'";
    assert_eq!(result_of(&run_on(&engine, code, policy).await), true);
    engine.shutdown().await;
}

#[test]
fn a_bad_module_name_is_refused_when_the_engine_is_made() {
    for (names, want) in [
        (
            &["pandas", "os; import sys"][..],
            "preload: 'os; import sys' is not a module name",
        ),
        (&["numpy", "numpy"][..], "preload: 'numpy' is listed twice"),
    ] {
        let err = engine(common::shared_venv(), names).unwrap_err();
        assert!(
            matches!(err, LocalEngineError::InvalidPreload(_)),
            "{err:?}"
        );
        assert!(err.to_string().starts_with(want), "{err}");
    }
}

#[tokio::test]
async fn a_module_that_raises_at_import_is_a_clear_engine_error() {
    // A module of our own in the tests' venv, that fails as a broken package would.
    let plain = common::engine();
    plain
        .prepare()
        .await
        .expect("the test venv can be prepared");
    let python = plain.python().expect("prepared").to_path_buf();
    plain.shutdown().await;
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .output()
        .unwrap();
    let site = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let module = site.join("spr_test_preload_boom.py");
    let tmp = site.join(format!(".spr_test_preload_boom.{}", std::process::id()));
    std::fs::write(&tmp, "raise ValueError('boom at import')\n").unwrap();
    std::fs::rename(&tmp, &module).unwrap();

    let venv = python.parent().unwrap().parent().unwrap().to_path_buf();
    let engine = engine(venv, &["json", "spr_test_preload_boom"]).unwrap();
    let err = engine.warm_up().await.unwrap_err();
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        text.contains(
            "could not preload module 'spr_test_preload_boom': ValueError: boom at import"
        ),
        "{text}"
    );
    // Through the trait, a prepared engine whose workers do not start is `Workers`.
    let err = spr_core::Engine::warm_up(&engine).await.unwrap_err();
    assert!(matches!(err, spr_core::WarmUpError::Workers(_)), "{err:?}");
    // A run says the same, and does not hang or loop: each attempt is one worker start.
    let r = run_on(&engine, "result = 1", RunnerPolicy::default()).await;
    assert!(!r.ok);
    assert_eq!(r.exit_code, spr_core::EXIT_INFRASTRUCTURE);
    assert!(
        r.error
            .as_deref()
            .unwrap_or("")
            .contains("ValueError: boom at import"),
        "{r:#?}"
    );
    engine.shutdown().await;
}

/// The snippet's page faults and the run's memory in huge pages, on a ready worker.
const FAULTS_AND_HUGE_PAGES: &str = include_str!("../../../tests/probes/faults_and_huge_pages.py");

/// A warm-up that uses pandas the way runs do, and leaves a mark a run can see.
const WARMUP: &str = r#"
import pandas as pd
df = pd.DataFrame({"x": [1.5, 2.5], "y": ["p", "q"]})
df.x.mean()
pd.spr_warmed = int(df.x.sum())
"#;

#[tokio::test]
async fn the_warm_up_runs_before_any_run_and_runs_stay_fresh() {
    let Some(venv) = datastack() else { return };
    let engine = warmed(venv, &["pandas"], Some(WARMUP)).unwrap();
    if !sandboxed(&engine).await {
        return;
    }
    let policy = RunnerPolicy::default();
    // The warm-up's own names are gone; what it set in the module is there, as in M.
    let look = r#"
import pandas as pd
result = [
    getattr(pd, "spr_warmed", None),
    "df" in globals(),
    hasattr(pd, "spr_added"),
    int(pd.DataFrame({"a": [1, 2]}).a.sum()),
]
pd.spr_added = "this run's"
pd.spr_warmed = -1
"#;
    for _ in 0..4 {
        let got = result_of(&run_on(&engine, look, policy.clone()).await);
        assert_eq!(got, serde_json::json!([4, false, false, 3]));
    }
    // On a ready worker the snippet finds most of its pages copied (it takes some 600
    // faults without the warm-up, about 70 with it), and the monitor's heap is in huge
    // pages.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let open = unchecked();
    let got = result_of(&run_on(&engine, FAULTS_AND_HUGE_PAGES, open).await);
    assert!(got[0].as_u64().unwrap() < 300, "{got}");
    assert!(got[1].as_u64().unwrap() >= 2048, "{got}");
    // A run that writes far more than the warm-up did is unaffected by the pre-copied
    // pages, and so is its memory limit.
    let big = r#"
import pandas as pd
df = pd.DataFrame({"a": range(200_000)})
result = int(df.a.sum())
"#;
    let got = result_of(&run_on(&engine, big, policy.clone()).await);
    assert_eq!(got, serde_json::json!(19_999_900_000_i64));
    let r = run_on(&engine, "x = bytearray(300 * 1024 * 1024)", policy.clone()).await;
    assert!(!r.ok && r.resource_exceeded, "{r:#?}");
    engine.shutdown().await;
}

#[test]
fn a_bad_warm_up_is_refused_when_the_engine_is_made() {
    for (code, want) in [
        ("  \n", "warmup: the code is empty"),
        (
            "x = 1\0",
            "warmup: the code contains a NUL character (at byte 5)",
        ),
    ] {
        let err = warmed(common::shared_venv(), &[], Some(code)).unwrap_err();
        assert!(matches!(err, LocalEngineError::InvalidWarmup(_)), "{err:?}");
        assert!(err.to_string().starts_with(want), "{err}");
    }
    let big = "#".repeat(spr_core::MAX_WARMUP_BYTES + 1);
    let err = warmed(common::shared_venv(), &[], Some(&big)).unwrap_err();
    assert!(err.to_string().contains("more than the 65536"), "{err}");
}

#[tokio::test]
async fn a_warm_up_that_fails_or_leaves_threads_is_a_clear_engine_error() {
    for (code, want) in [
        ("1 / 0", "the warm-up failed: ZeroDivisionError: division by zero"),
        ("def f(:\n", "the warm-up failed: SyntaxError"),
        (
            "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()",
            "the warm-up left 1 thread running besides the main one",
        ),
    ] {
        let engine = warmed(common::shared_venv(), &["json"], Some(code)).unwrap();
        engine.prepare().await.expect("the test venv can be prepared");
        let r = run_on(&engine, "result = 1", RunnerPolicy::default()).await;
        assert!(!r.ok, "{r:#?}");
        assert_eq!(r.exit_code, spr_core::EXIT_INFRASTRUCTURE);
        assert!(r.error.as_deref().unwrap_or("").contains(want), "{code}: {r:#?}");
        engine.shutdown().await;
    }
}

/// A warm-up that draws text: matplotlib keeps the font it used open, and every run reads
/// its own opening of it (where one run seeks is not where the next one reads).
const DRAWING_WARMUP: &str = r#"
import io
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.plot([1, 2, 3])
ax.set_title("warm")
fig.savefig(io.BytesIO(), format="png")
plt.close(fig)
"#;

#[tokio::test]
async fn a_warm_up_that_draws_text_leaves_each_run_its_own_font_file() {
    let Some(venv) = datastack() else { return };
    let engine = warmed(venv, &["matplotlib.pyplot"], Some(DRAWING_WARMUP)).unwrap();
    if !sandboxed(&engine).await {
        return;
    }
    let open = unchecked();
    let look = r#"
import os
fonts = {}
for name in os.listdir("/proc/self/fd"):
    try:
        target = os.readlink("/proc/self/fd/" + name)
    except OSError:
        continue
    if target.endswith(".ttf"):
        fonts[os.path.basename(target)] = os.lseek(int(name), 0, os.SEEK_CUR)
        os.lseek(int(name), 0, os.SEEK_END)
result = fonts
"#;
    let first = result_of(&run_on(&engine, look, open.clone()).await);
    assert!(
        first.as_object().is_some_and(|f| !f.is_empty()),
        "the warm-up's font is open in the run: {first}"
    );
    for _ in 0..3 {
        assert_eq!(result_of(&run_on(&engine, look, open.clone()).await), first);
    }
    // Drawing text in a run still works, and the figure comes back.
    let draw = r#"
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.bar(["a", "b"], [3, 5])
ax.set_title("a run's title")
result = len(fig.axes)
"#;
    let r = run_on(&engine, draw, RunnerPolicy::default()).await;
    assert_eq!(result_of(&r), serde_json::json!(1));
    assert_eq!(r.outputs.len(), 1, "{r:#?}");
    assert_eq!(r.outputs[0].mime_type, "image/png");
    engine.shutdown().await;
}

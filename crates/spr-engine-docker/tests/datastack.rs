//! The data stack in the Docker engine: a derived image with the pinned numpy, pandas,
//! matplotlib and scipy of `.ci/datastack-setup.sh` (built once, cached by its content
//! hash), under the policies. The most important cases of the local engine's
//! `crates/spr-core/tests/datastack.rs`: the issue's example under the default policy, a
//! figure saved to scratch, the kernel's refusal of fork_exec reached through a library,
//! and multiprocessing with a /dev/shm emptied after every run.

mod common;

use common::engine;
use serde_json::json;
use spr_engine_docker::{DockerEngine, DockerEngineConfig};
use spr_policy::RunnerPolicy;
use spr_protocol::{Json, RunnerResult};

/// The same pins as `.ci/datastack-setup.sh`.
const PINS: &[&str] = &[
    "numpy==2.2.6",
    "pandas==2.2.3",
    "matplotlib==3.10.3",
    "scipy==1.15.3",
];

/// An engine on the derived image (its first run builds the image), or None when the
/// Docker tests are skipped.
async fn datastack_engine() -> Option<DockerEngine> {
    let probe = engine(common::config(1)).await?;
    probe.shutdown().await;
    Some(
        DockerEngine::new(DockerEngineConfig {
            packages: PINS.iter().map(|p| p.to_string()).collect(),
            name: Some("itest-datastack".into()),
            pool_size: Some(1),
            ..Default::default()
        })
        .expect("a valid config"),
    )
}

fn roomy(policy: RunnerPolicy) -> RunnerPolicy {
    RunnerPolicy {
        memory_limit_mb: 1024,
        timeout_seconds: 60,
        ..policy
    }
}

async fn run(engine: &DockerEngine, code: &str, policy: &RunnerPolicy) -> RunnerResult {
    engine.run(code, &Json::null(), policy).await
}

fn ok(r: &RunnerResult) -> serde_json::Value {
    assert!(r.ok, "error={:?}\nstderr: {}", r.error, r.stderr);
    serde_json::from_str(r.result.get()).expect("a JSON result")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_stack_runs_in_a_derived_image_and_attacks_through_it_fail() {
    let Some(engine) = datastack_engine().await else {
        return;
    };
    // The first run builds the image (minutes): a generous deadline for it alone.
    let first = run(
        &engine,
        r#"import pandas as pd; result = int(pd.DataFrame({"a": [1, 2]}).a.sum())"#,
        &roomy(RunnerPolicy::default()),
    )
    .await;
    assert_eq!(ok(&first), 3);

    // The issue's example, under the default policy exactly.
    let r = run(
        &engine,
        r#"import pandas as pd; result = int(pd.DataFrame({"a": [1, 2]}).a.sum())"#,
        &RunnerPolicy::default(),
    )
    .await;
    assert_eq!(ok(&r), 3);
    let per_run = r
        .sandbox
        .as_ref()
        .and_then(|s| s.per_run.clone())
        .expect("a per-run receipt");
    assert!(per_run.process_filter, "{per_run:?}");
    assert_eq!(per_run.dev_shm, Some(spr_protocol::DevShm::Scrubbed));

    let figure = r#"
import matplotlib, matplotlib.pyplot as plt, pathlib
fig, ax = plt.subplots()
ax.plot([1, 2, 3]); ax.set_title("t")
fig.savefig("plot.png")
result = [matplotlib.get_backend().lower(), pathlib.Path("plot.png").read_bytes()[:4].hex()]
"#;
    let r = run(&engine, figure, &RunnerPolicy::default()).await;
    assert_eq!(ok(&r), json!(["agg", "89504e47"]));

    let attacks = [
        (
            "import numpy\nps = numpy.__builtins__['__import__']('_posixsubprocess')\n\
             os_ = numpy.__builtins__['__import__']('os')\nr, w = os_.pipe()\n\
             ps.fork_exec([b'/bin/sh', b'-c', b'id'], [b'/bin/sh'], True, (w,), None, None, \
             -1, -1, -1, -1, -1, -1, r, w, True, False, -1, None, None, None, -1, None, False)",
            "PermissionError: [Errno 1] Operation not permitted",
        ),
        (
            "import matplotlib; matplotlib.subprocess.run(['id'])",
            "Starting processes is blocked by policy (subprocess.Popen)",
        ),
        (
            "import numpy.ctypeslib as c; c.ctypes.CDLL(None).system(b'id')",
            "Native code (ctypes) is blocked by policy (ctypes.dlsym)",
        ),
        (
            "import pandas as pd; pd.DataFrame({'a': [1]}).to_csv('/tmp/../etc/spr-x')",
            "Writing '/tmp/../etc/spr-x' is blocked by policy",
        ),
    ];
    for (attack, expected) in attacks {
        let r = run(&engine, attack, &RunnerPolicy::default()).await;
        assert!(
            !r.ok && r.error.as_deref().unwrap_or_default().contains(expected),
            "{attack}: error={:?}\nstderr: {}",
            r.error,
            r.stderr
        );
        let victim = run(
            &engine,
            "import numpy as np; result = int(np.arange(10).sum())",
            &RunnerPolicy::default(),
        )
        .await;
        assert_eq!(ok(&victim), 45, "after {attack}");
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiprocessing_works_where_processes_are_allowed_and_dev_shm_is_emptied() {
    let Some(engine) = datastack_engine().await else {
        return;
    };
    let policy = roomy(RunnerPolicy {
        blocked_imports: vec!["socket".into(), "ctypes".into(), "importlib".into()],
        blocked_builtins: vec![],
        ..RunnerPolicy::default()
    });
    let code = r#"
import multiprocessing as mp, concurrent.futures as cf, os
def square(x):
    return x * x
with mp.Pool(2) as pool:
    squares = pool.map(square, range(5))
with cf.ProcessPoolExecutor(max_workers=2) as ex:
    cubes = list(ex.map(pow, range(3), [3] * 3))
seen = sorted(os.listdir("/dev/shm"))
open("/dev/shm/left-by-run", "w").write("x")
st = os.statvfs("/dev/shm")
result = {"squares": squares, "cubes": cubes, "seen": seen, "shm_mb": st.f_blocks * st.f_frsize >> 20}
"#;
    for _ in 0..2 {
        let r = run(&engine, code, &policy).await;
        let v = ok(&r);
        assert_eq!(v["squares"], json!([0, 1, 4, 9, 16]));
        assert_eq!(v["cubes"], json!([0, 1, 8]));
        assert_eq!(v["seen"], json!([]), "emptied after the last run");
        assert_eq!(v["shm_mb"], 64);
        let per_run = r.sandbox.as_ref().and_then(|s| s.per_run.clone()).unwrap();
        assert!(!per_run.process_filter, "{per_run:?}");
    }
    engine.shutdown().await;
}

/// A warm-up that draws text leaves matplotlib's font open in each container's monitor;
/// every run reads its own opening of it (one run's seek is not the next run's offset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_up_that_draws_text_leaves_each_run_its_own_font_file() {
    let Some(probe) = datastack_engine().await else {
        return;
    };
    probe.shutdown().await;
    let engine = DockerEngine::new(DockerEngineConfig {
        packages: PINS.iter().map(|p| p.to_string()).collect(),
        name: Some("itest-datastack-warm".into()),
        pool_size: Some(1),
        max_runs: Some(100),
        preload: vec!["matplotlib.pyplot".into()],
        warmup: Some(
            "import io\nimport matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n\
             ax.set_title('warm')\nfig.savefig(io.BytesIO(), format='png')\nplt.close(fig)"
                .into(),
        ),
        ..Default::default()
    })
    .expect("a valid config");
    let open = RunnerPolicy {
        blocked_imports: vec![],
        blocked_builtins: vec![],
        ..roomy(RunnerPolicy::default())
    };
    let look = "import os\nfonts = {}\nfor n in os.listdir('/proc/self/fd'):\n    try:\n        t = os.readlink('/proc/self/fd/' + n)\n    except OSError:\n        continue\n    if t.endswith('.ttf'):\n        fonts[os.path.basename(t)] = os.lseek(int(n), 0, 1)\n        os.lseek(int(n), 0, 2)\nresult = fonts";
    let first = ok(&run(&engine, look, &open).await);
    assert!(first.as_object().is_some_and(|f| !f.is_empty()), "{first}");
    for _ in 0..2 {
        assert_eq!(ok(&run(&engine, look, &open).await), first);
    }
    let draw = "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.set_title('a run')\nresult = 1";
    let r = run(&engine, draw, &roomy(RunnerPolicy::default())).await;
    assert_eq!(ok(&r), json!(1));
    assert_eq!(r.outputs.len(), 1, "{r:?}");
    engine.shutdown().await;
}

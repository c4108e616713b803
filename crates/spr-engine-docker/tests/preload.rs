//! Preloaded modules in the Docker engine: pandas from PyPI baked into the derived image,
//! imported once by each container's harness, fresh in every run of the container, still
//! under the policy; a module that fails to import is a clear engine error. The
//! operator's warm-up runs in each container before any run: its runs see what it left, stay fresh
//! from each other, and a bad warm-up is refused or named.

mod common;

use common::*;
use serde_json::json;
use spr_engine_docker::{DockerEngine, DockerEngineConfig};
use spr_protocol::Json;

fn pandas_config(preload: &[&str]) -> DockerEngineConfig {
    DockerEngineConfig {
        packages: vec!["pandas==2.2.3".into(), "numpy==2.2.6".into()],
        name: Some("itest-preload".into()),
        preload: preload.iter().map(|s| s.to_string()).collect(),
        pool_size: Some(1),
        // One container for every run below, so the isolation is between runs of it.
        max_runs: Some(100),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preloaded_pandas_is_fresh_in_every_run_of_a_container() {
    let Some(probe) = engine(config(1)).await else {
        return;
    };
    probe.shutdown().await;
    let engine = DockerEngine::new(pandas_config(&["pandas"])).unwrap();
    let code = "import sys\nloaded = 'pandas' in sys.modules\nimport pandas as pd\nresult = [loaded, 'pd' in dir(), int(pd.DataFrame({'a': [1, 2]}).a.sum())]";
    let r = engine.run(code, &Json::null(), &policy()).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.result, json!([true, true, 3]));
    let container = container_of(&r);

    let mutate = r#"
import pandas as pd
pd.options.display.max_rows = 3
pd.spr_added = "run 1"
pd.DataFrame.sum = lambda self, *a, **k: "patched"
import pandas._config.config as cfg
cfg._registered_options["spr.secret"] = "run 1's secret"
result = pd.DataFrame({"a": [1]}).sum()
"#;
    let r = engine.run(mutate, &Json::null(), &policy()).await;
    assert_eq!(r.result, json!("patched"), "{r:?}");
    let look = r#"
import pandas as pd
import pandas._config.config as cfg
result = [pd.get_option("display.max_rows"), hasattr(pd, "spr_added"),
          int(pd.DataFrame({"a": [1, 2]}).sum()["a"]), "spr.secret" in cfg._registered_options]
"#;
    for _ in 0..2 {
        let r = engine.run(look, &Json::null(), &policy()).await;
        assert_eq!(r.result, json!([60, false, 3, false]), "{r:?}");
        assert_eq!(container_of(&r), container, "the same container served");
    }

    // Blocked stays blocked; the policy's memory is on top of the preload.
    let mut blocked = policy();
    blocked.blocked_imports.push("pandas".into());
    let r = engine.run("import pandas", &Json::null(), &blocked).await;
    assert_eq!(
        r.error.as_deref(),
        Some("ImportError: Import 'pandas' is blocked by policy"),
        "{r:?}"
    );
    let fill = "import pandas\nb = bytearray(200 << 20)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\nresult = len(b) >> 20";
    let r = engine.run(fill, &Json::null(), &policy()).await;
    assert_eq!(r.result, json!(200), "{r:?}");
    engine.shutdown().await;
}

/// The error of a run on an engine whose containers cannot start (exit code 125).
async fn start_failure(config: DockerEngineConfig) -> String {
    let engine = DockerEngine::new(DockerEngineConfig {
        pool_size: Some(1),
        ..config
    })
    .unwrap();
    let r = engine.run("result = 1", &Json::null(), &policy()).await;
    assert!(!r.ok);
    assert_eq!(r.exit_code, 125);
    engine.shutdown().await;
    r.error.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preload_that_fails_is_a_clear_engine_error() {
    let Some(probe) = engine(config(1)).await else {
        return;
    };
    probe.shutdown().await;
    let err = DockerEngine::new(pandas_config(&["pandas", "pandas"])).unwrap_err();
    assert_eq!(err.to_string(), "preload: 'pandas' is listed twice");
    let error = start_failure(DockerEngineConfig {
        preload: vec!["spr_no_such_module".into()],
        ..Default::default()
    })
    .await;
    assert!(
        error.contains("could not preload module 'spr_no_such_module': ModuleNotFoundError"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warm_up_runs_before_any_run_of_a_container_and_runs_stay_fresh() {
    let Some(probe) = engine(config(1)).await else {
        return;
    };
    probe.shutdown().await;
    let err = DockerEngine::new(DockerEngineConfig {
        warmup: Some("\n".into()),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "warmup: the code is empty (leave the warm-up unset for none)"
    );
    let engine = DockerEngine::new(DockerEngineConfig {
        warmup: Some(
            "import pandas as pd\npd.spr_warm = int(pd.DataFrame({'a': [2, 3]}).a.sum())".into(),
        ),
        ..pandas_config(&["pandas"])
    })
    .unwrap();
    let code = "import pandas as pd\nresult = [getattr(pd, 'spr_warm', None), 'pd' in dir()]\npd.spr_warm = -1";
    let mut containers = Vec::new();
    for _ in 0..3 {
        let r = engine.run(code, &Json::null(), &policy()).await;
        assert_eq!(r.result, json!([5, true]), "{r:?}");
        containers.push(container_of(&r));
    }
    assert!(
        containers.windows(2).all(|w| w[0] == w[1]),
        "{containers:?}"
    );
    // In a container too (its harness is not root): the snippet finds most of its pages
    // copied on a ready worker (some 600 faults without the warm-up), and the monitor's
    // heap is in huge pages.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut open = policy();
    open.blocked_imports.clear();
    open.blocked_builtins.clear();
    let faults = include_str!("../../../tests/probes/faults_and_huge_pages.py");
    let r = engine.run(faults, &Json::null(), &open).await;
    let got = r.result.to_value();
    assert!(got[0].as_u64().unwrap_or(u64::MAX) < 300, "{r:?}");
    assert!(got[1].as_u64().unwrap_or(0) >= 2048, "{r:?}");
    engine.shutdown().await;

    let error = start_failure(DockerEngineConfig {
        warmup: Some("raise RuntimeError('warm-up broke')".into()),
        ..Default::default()
    })
    .await;
    assert!(
        error.contains("the warm-up failed: RuntimeError: warm-up broke"),
        "{error}"
    );
}

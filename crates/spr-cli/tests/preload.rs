//! `--preload MOD`: the flag reaches the engine (`spr run` with the pinned data stack),
//! a bad name is a usage-time engine error, and the Docker-only and local-only checks
//! leave it alone (it applies to both engines). `--warmup CODE` runs once in the worker
//! after the preload: runs see what it left, and a failing one is named (a server whose
//! workers fail in it stops with that error).

mod common;

use common::{code, render, run, run_within_holding_stdin, spr, stdout};
use std::path::PathBuf;

/// The pinned data stack (`.ci/datastack-setup.sh`), a failure under CI when missing.
fn datastack() -> Option<PathBuf> {
    let venv = std::env::var_os("SPR_DATASTACK_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/spr-datastack"));
    let ok = venv.join("bin/python").exists();
    common::require(ok, &format!("the data-stack venv at {}", venv.display())).then_some(venv)
}

#[test]
fn run_with_preload_finds_pandas_loaded_and_fresh() {
    let Some(venv) = datastack() else { return };
    let code_text = r#"
import sys
loaded = "pandas" in sys.modules
import pandas as pd
result = [loaded, int(pd.DataFrame({"a": [1, 2]}).a.sum())]
"#;
    let out = run(
        spr()
            .args(["run", "--json", "--venv-dir"])
            .arg(&venv)
            .args(["--preload", "pandas", "--preload", "numpy", "-c", code_text]),
        None,
    );
    assert_eq!(code(&out), 0, "{}", render(&out, &[]));
    let result: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(result["result"], serde_json::json!([true, 3]), "{result}");

    // Without the flag nothing is preloaded.
    let out = run(
        spr()
            .args(["run", "--json", "--venv-dir"])
            .arg(&venv)
            .args(["-c", "import sys\nresult = 'pandas' in sys.modules"]),
        None,
    );
    let result: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(result["result"], false, "{result}");
}

/// `spr run --json --venv-dir <venv> <args> -c 'result = 1'`, which must fail to start its
/// worker (exit 125): the result's error.
fn worker_failure(venv: &std::path::Path, args: &[&str]) -> String {
    let out = run(
        spr()
            .args(["run", "--json", "--venv-dir"])
            .arg(venv)
            .args(args)
            .args(["-c", "result = 1"]),
        None,
    );
    assert_eq!(code(&out), 125, "{}", render(&out, &[]));
    let result: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    result["error"].as_str().unwrap().to_string()
}

#[test]
fn a_bad_preload_is_refused_and_a_missing_module_named() {
    let Some(venv) = datastack() else { return };
    let out = run(
        spr().args(["run", "--venv-dir"]).arg(&venv).args([
            "--preload",
            "pandas;rm",
            "-c",
            "result = 1",
        ]),
        None,
    );
    assert_eq!(code(&out), 125, "{}", render(&out, &[]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("preload: 'pandas;rm' is not a module name"),
        "{err}"
    );

    let error = worker_failure(&venv, &["--preload", "spr_no_such_module"]);
    assert!(
        error.contains(
            "could not preload module 'spr_no_such_module': ModuleNotFoundError: No module named 'spr_no_such_module'"
        ),
        "{error}"
    );
}

#[test]
fn preload_and_warmup_are_options_of_every_engine_command() {
    for command in [&["run"][..], &["serve"], &["mcp"]] {
        let out = run(spr().args(command).arg("--help"), None);
        assert!(stdout(&out).contains("--preload <MOD>"), "{command:?}");
        assert!(stdout(&out).contains("--warmup <CODE>"), "{command:?}");
    }
}

#[test]
fn run_with_a_warm_up_sees_what_it_left_and_a_failing_one_is_named() {
    let Some(venv) = datastack() else { return };
    let warmup = "import pandas as pd\npd.spr_warm = int(pd.DataFrame({'a': [2, 3]}).a.sum())";
    let out = run(
        spr()
            .args(["run", "--json", "--venv-dir"])
            .arg(&venv)
            .args(["--preload", "pandas", "--warmup", warmup, "-c"])
            .arg("import pandas as pd\nresult = pd.spr_warm"),
        None,
    );
    assert_eq!(code(&out), 0, "{}", render(&out, &[]));
    let result: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(result["result"], 5, "{result}");

    let error = worker_failure(&venv, &["--warmup", "import spr_no_such_module"]);
    assert!(
        error.contains(
            "the warm-up failed: ModuleNotFoundError: No module named 'spr_no_such_module'"
        ),
        "{error}"
    );

    let out = run(
        spr()
            .args(["run", "--venv-dir"])
            .arg(&venv)
            .args(["--warmup", " ", "-c", "result = 1"]),
        None,
    );
    assert_eq!(code(&out), 125, "{}", render(&out, &[]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warmup: the code is empty"), "{err}");
    // The servers refuse it before serving, as `run` does, rather than fail every request.
    let huge = "#".repeat(70_000);
    for (door, bad, says) in [
        (
            &["serve", "--stdio"][..],
            &["--warmup", " "][..],
            "warmup: the code is empty",
        ),
        (
            &["mcp"][..],
            &["--warmup", &huge][..],
            "more than the 65536 a warm-up may have",
        ),
        (
            &["serve", "--stdio"][..],
            &["--preload", "os; x"][..],
            "preload: 'os; x' is not a module name",
        ),
    ] {
        let out = run(
            spr().args(door).arg("--venv-dir").arg(&venv).args(bad),
            Some(b"{\"id\": 1, \"code\": \"result = 1\"}\n"),
        );
        assert_eq!(code(&out), 125, "{door:?} {bad:?}: {}", render(&out, &[]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{door:?}: {err}");
        assert!(out.stdout.is_empty(), "{door:?}: nothing was served");
    }
}

#[test]
fn a_server_whose_warm_up_or_preload_fails_in_the_worker_stops_naming_it() {
    let Some(venv) = datastack() else { return };
    for (door, bad, says) in [
        (
            &["serve", "--stdio"][..],
            &["--warmup", "1 +"][..],
            "the warm-up failed: SyntaxError: invalid syntax",
        ),
        (
            &["serve", "--http", "127.0.0.1:0"][..],
            &["--preload", "spr_no_such_module"][..],
            "could not preload module 'spr_no_such_module'",
        ),
        (
            &["mcp"][..],
            &["--warmup", "raise RuntimeError('spr warm-up')"][..],
            "the warm-up failed: RuntimeError: spr warm-up",
        ),
        (
            &["mcp", "--http", "127.0.0.1:0"][..],
            &["--preload", "spr_no_such_module"][..],
            "No module named 'spr_no_such_module'",
        ),
        // No fatal frame: the worker is seen dying in the warm-up.
        (
            &["serve", "--stdio"][..],
            &["--warmup", "import os\nos._exit(3)"][..],
            "the worker died in the preload or warm-up (exit status: 3)",
        ),
    ] {
        let out = run_within_holding_stdin(
            spr().args(door).arg("--venv-dir").arg(&venv).args(bad),
            std::time::Duration::from_secs(60),
        );
        assert_stopped_naming(&out, &format!("{door:?} {bad:?}"), says);
    }

    // A request that was waiting for the engine is answered with the failure first.
    let out = run(
        spr()
            .args(["serve", "--stdio", "--venv-dir"])
            .arg(&venv)
            .args(["--warmup", "1 +"]),
        Some(b"{\"id\": 7, \"code\": \"result = 1\"}\n"),
    );
    assert_eq!(code(&out), 125, "{}", render(&out, &[]));
    let answer: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(answer["id"], 7, "{answer}");
    assert_eq!(answer["exit_code"], 125, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("the warm-up failed"),
        "{answer}"
    );
}

/// With `--engine docker`, a `--preload` or `--warmup` makes the server start its
/// containers at start, so one that fails them stops it as on the local engine.
#[test]
fn a_docker_server_whose_containers_fail_the_preload_stops_naming_it() {
    for (door, bad, says) in [
        (
            &["serve", "--stdio"][..],
            &["--preload", "spr_no_such_module"][..],
            "No module named 'spr_no_such_module'",
        ),
        (
            &["mcp"][..],
            &["--warmup", "raise RuntimeError('spr warm-up')"][..],
            "the warm-up failed: RuntimeError: spr warm-up",
        ),
        (
            &["serve", "--http", "127.0.0.1:0"][..],
            &["--warmup", "import os\nos._exit(3)"][..],
            "The container's harness died in the preload or warm-up",
        ),
        // More than the container may hold: the daemon's out-of-memory kill is named.
        (
            &["serve", "--stdio"][..],
            &["--warmup", "x = b'x' * (3 << 30)"][..],
            "died in the preload or warm-up: out of memory (the container's limit is 1024 MiB)",
        ),
    ] {
        let out = run_within_holding_stdin(
            spr()
                .args(door)
                .args(["--engine", "docker", "--pool-size", "1"])
                .args(bad),
            std::time::Duration::from_secs(120),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("not reachable") || err.contains("was not found") {
            common::require(
                false,
                &format!("a Docker daemon and the runtime image ({err})"),
            );
            return;
        }
        assert_stopped_naming(&out, &format!("{door:?} {bad:?}"), says);
    }
}

/// `out` is a server that stopped on its `--preload` or `--warmup` (exit code 125), its
/// error saying `says`; `what` names the case.
fn assert_stopped_naming(out: &std::process::Output, what: &str, says: &str) {
    assert_eq!(code(out), 125, "{what}: {}", render(out, &[]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: the server stopped: the --preload or --warmup failed"),
        "{what}: {err}"
    );
    assert!(err.contains(says), "{what}: {err}");
}

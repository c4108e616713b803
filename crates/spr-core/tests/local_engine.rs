//! The local engine, specified by running real Python through `run_code`.

mod common;

use common::{run, run_on, run_with};
use serde_json::json;
use spr_core::{run_code_json, Json, Mode, PolicySource, RunnerPolicy, RunnerResult};
use std::collections::BTreeMap;

fn permissive() -> RunnerPolicy {
    RunnerPolicy {
        blocked_imports: vec![],
        blocked_builtins: vec![],
        ..RunnerPolicy::default()
    }
}

fn allow_mode(imports: &[&str], builtins: &[&str], globals: &[&str]) -> RunnerPolicy {
    RunnerPolicy {
        mode: Mode::Allow,
        allowed_imports: imports.iter().map(|s| s.to_string()).collect(),
        allowed_builtins: builtins.iter().map(|s| s.to_string()).collect(),
        allowed_globals: globals.iter().map(|s| s.to_string()).collect(),
        ..RunnerPolicy::default()
    }
}

/// The result as serde_json writes it (insta's own serializer cannot see through
/// `Json`), without what varies from run to run.
fn stable(mut r: RunnerResult) -> String {
    r.duration_ms = 0.0;
    // The sandbox receipt depends on the machine (kernel features, cgroups); it is
    // specified by tests/sandbox.rs.
    r.sandbox = None;
    serde_json::to_string_pretty(&r).expect("a result serializes")
}

// ---- results and values ----------------------------------------------------------

#[tokio::test]
async fn quick_start_computes_with_input() {
    let r = run_with(
        "import math\nresult = math.sqrt(input_data['x'])",
        Some(json!({"x": 81})),
        RunnerPolicy::default(),
    )
    .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.result, json!(9.0));
    assert_eq!(r.exit_code, 0);
}

#[tokio::test]
async fn a_successful_run_has_the_documented_json_shape() {
    let r = run("print('hello')\nresult = 123").await;
    insta::assert_snapshot!(stable(r));
}

#[tokio::test]
async fn values_that_json_cannot_hold_come_back_as_strings() {
    let r = run("import datetime\nresult = [ (1, 2), {1, 2}, b'ab', 1+2j, datetime.date(2020, 1, 2), float('nan'), float('inf'), 10**30, None ]").await;
    assert!(r.ok, "{r:?}");
    // 10**30 keeps every digit: it is an int in Python, not the float 1e30.
    assert_eq!(
        r.result.get(),
        r#"[[1,2],"{1, 2}","b'ab'","(1+2j)","2020-01-02","NaN","Infinity",1000000000000000000000000000000,null]"#
    );
}

#[tokio::test]
async fn lone_surrogates_come_back_replaced_and_the_result_stays_valid_json() {
    // Python strings may hold an unpaired surrogate (bytes decoded with surrogateescape);
    // a strict JSON reader refuses one, so it comes back as U+FFFD. Pairs and emoji stay.
    let r = run(
        "result = {'\\udc80': ['\\udcff', b'a\\xffb'.decode('utf-8', 'surrogateescape'), '\\ud83d\\ude00', '😀', 'back\\\\ud800slash']}",
    )
    .await;
    assert!(r.ok, "{r:?}");
    let value: serde_json::Value = serde_json::from_str(r.result.get()).expect("valid JSON");
    assert_eq!(
        value,
        json!({"\u{fffd}": ["\u{fffd}", "a\u{fffd}b", "😀", "😀", "back\\ud800slash"]})
    );
    let r = run("raise ValueError('bad \\udcff byte')").await;
    assert_eq!(r.error.as_deref(), Some("ValueError: bad \u{fffd} byte"));
}

#[tokio::test]
async fn dict_keys_are_converted_like_json_does() {
    let r = run("result = {1: 'a', None: 2}").await;
    assert_eq!(r.result, json!({"1": "a", "null": 2}));
}

#[tokio::test]
async fn an_unserializable_result_is_an_error_that_says_why() {
    let r = run("x = []\nx.append(x)\nprint('kept')\nresult = x").await;
    assert!(!r.ok);
    assert_eq!(
        r.error.as_deref(),
        Some("Result is not JSON-serializable: Circular reference detected")
    );
    let r = run("result = {(1, 2): 3}").await;
    assert!(r.error.unwrap().contains("keys must be str"));
}

#[tokio::test]
async fn an_unset_or_deleted_result_is_null() {
    assert_eq!(run("x = 1").await.result, json!(null));
    assert_eq!(run("del result").await.result, json!(null));
}

#[tokio::test]
async fn name_is_main_in_user_code() {
    let r = run("if __name__ == '__main__':\n    result = 'main'").await;
    assert_eq!(r.result, json!("main"));
}

#[tokio::test]
async fn a_variable_named_printed_is_not_appended_to_stdout() {
    let r = run("print('a')\nprinted = 'EXTRA'").await;
    assert_eq!(r.stdout, "a\n");
}

// ---- exact numbers ---------------------------------------------------------------------

/// Runs on one engine, with the input given as JSON text.
async fn run_texts(runs: &[(&str, Option<&str>)]) -> Vec<RunnerResult> {
    let engine = common::engine();
    let mut out = Vec::new();
    for (code, input) in runs {
        let input = input.map(|text| text.parse::<Json>().expect("valid test input"));
        let r = run_code_json(code, &engine, input, PolicySource::Default)
            .await
            .expect("the run is accepted");
        assert!(r.ok, "{code}: {r:?}");
        out.push(r);
    }
    engine.shutdown().await;
    out
}

#[tokio::test]
async fn integers_of_any_size_come_back_with_every_digit() {
    let r = run_texts(&[
        ("result = 10**30", None),
        ("result = -(2**200)", None),
        ("result = [2**64 + 1, -(2**63) - 1, 0]", None),
    ])
    .await;
    assert_eq!(r[0].result.get(), "1000000000000000000000000000000");
    assert_eq!(
        r[1].result.get(),
        "-1606938044258990275541962092341162602522202993782792835301376"
    );
    assert_eq!(
        r[2].result.get(),
        "[18446744073709551617,-9223372036854775809,0]"
    );
    // And so does the JSON of the whole result.
    let text = serde_json::to_string(&r[0]).unwrap();
    assert!(
        text.starts_with(r#"{"ok":true,"result":1000000000000000000000000000000,"#),
        "{text}"
    );
}

#[tokio::test]
async fn floats_come_back_as_python_prints_them() {
    let r = run_texts(&[
        ("result = 0.1", None),
        ("result = 1e-300", None),
        ("result = [1e16, 2.5e-08, -0.0, 9.0]", None),
    ])
    .await;
    assert_eq!(r[0].result.get(), "0.1");
    assert_eq!(r[1].result.get(), "1e-300");
    assert_eq!(r[2].result.get(), "[1e+16,2.5e-08,-0.0,9.0]");
}

#[tokio::test]
async fn input_numbers_reach_the_code_exactly() {
    let r = run_texts(&[
        (
            "result = x + 1",
            Some(r#"{"x": 123456789012345678901234567890}"#),
        ),
        (
            "result = [type(n).__name__, repr(f), repr(g)]",
            Some(r#"{"n": 99999999999999999999, "f": 0.1, "g": 1e-300}"#),
        ),
        ("result = x", Some(r#"{"x": -1e400}"#)),
    ])
    .await;
    assert_eq!(r[0].result.get(), "123456789012345678901234567891");
    assert_eq!(r[1].result.get(), r#"["int","0.1","1e-300"]"#);
    // Python reads 1e400 as -inf, and a result cannot be infinite JSON.
    assert_eq!(r[2].result, json!("-Infinity"));
    // `run_code` with a `Value` is exact for every number a `Value` holds.
    let r = run_with(
        "result = [x + 1, y]",
        Some(json!({"x": u64::MAX, "y": i64::MIN})),
        RunnerPolicy::default(),
    )
    .await;
    assert_eq!(
        r.result.get(),
        "[18446744073709551616,-9223372036854775808]"
    );
}

// ---- output --------------------------------------------------------------------------

#[tokio::test]
async fn stdout_and_stderr_are_captured_separately() {
    let r = run("import sys\nprint('out')\nprint('err', file=sys.stderr)\nimport warnings\nwarnings.warn('w')").await;
    assert_eq!(r.stdout, "out\n");
    assert!(r.stderr.starts_with("err\n"), "{:?}", r.stderr);
    assert!(r.stderr.contains("UserWarning: w"));
}

#[tokio::test]
async fn output_is_captured_at_the_file_descriptor_level() {
    let code = "import os, sys, subprocess\nos.write(1, b'fd1\\n')\nsys.__stdout__.write('dunder\\n')\nsys.__stdout__.flush()\nsubprocess.run(['echo', 'child'])\nos.write(2, b'fd2\\n')";
    let r = run_with(code, None, permissive()).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.stdout, "fd1\ndunder\nchild\n");
    assert_eq!(r.stderr, "fd2\n");
}

#[tokio::test]
async fn output_is_capped_while_it_streams_and_reported_as_truncated() {
    let policy = RunnerPolicy {
        max_output_kb: 4,
        ..RunnerPolicy::default()
    };
    let r = run_with(
        "print('a' * (10 * 1024))\nimport sys\nsys.stderr.write('e' * 50_000_000)",
        None,
        policy,
    )
    .await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(r.stdout.len(), 4096);
    assert!(r.stdout_truncated);
    assert_eq!(r.stderr.len(), 4096);
    assert!(r.stderr_truncated);
}

#[tokio::test]
async fn truncation_never_splits_a_character() {
    let policy = RunnerPolicy {
        max_output_kb: 1,
        ..RunnerPolicy::default()
    };
    let r = run_with("print('é' * 3000)", None, policy).await;
    assert!(r.stdout_truncated);
    assert_eq!(r.stdout.chars().count(), 512);
    assert!(r.stdout.chars().all(|c| c == 'é'));
}

#[tokio::test]
async fn zero_output_cap_gives_empty_output() {
    let policy = RunnerPolicy {
        max_output_kb: 0,
        ..RunnerPolicy::default()
    };
    let r = run_with("print('x')", None, policy).await;
    assert_eq!(r.stdout, "");
    assert!(r.stdout_truncated);
}

// ---- errors --------------------------------------------------------------------------

#[tokio::test]
async fn a_syntax_error_names_the_problem_and_line() {
    let r = run("x = (").await;
    assert!(!r.ok);
    assert_eq!(
        r.error.as_deref(),
        Some("SyntaxError: '(' was never closed (<user_code>, line 1)")
    );
    assert_eq!(r.exit_code, 1);
}

#[tokio::test]
async fn a_runtime_error_forces_result_to_null_and_keeps_a_user_level_traceback() {
    let r = run("result = 5\nclass E(Exception): pass\nprint('before')\nraise E('m')").await;
    assert!(!r.ok);
    assert_eq!(r.error.as_deref(), Some("E: m"));
    assert_eq!(r.result, json!(null));
    assert_eq!(r.stdout, "before\n");
    assert!(
        r.stderr.contains("File \"<user_code>\", line 4"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("spr_harness"), "{}", r.stderr);
    insta::assert_snapshot!(stable(r));
}

#[tokio::test]
async fn keyboard_interrupt_is_an_error_not_a_crash() {
    let r = run("raise KeyboardInterrupt").await;
    assert!(!r.ok);
    assert_eq!(r.error.as_deref(), Some("KeyboardInterrupt: "));
    assert_eq!(r.exit_code, 1);
}

#[tokio::test]
async fn system_exit_follows_the_original_table() {
    let prefix = "import sys\nresult = 'r'\nprint('p')\n";
    let cases: &[(&str, bool, Option<&str>, i32)] = &[
        ("sys.exit(0)", true, None, 0),
        ("sys.exit(None)", true, None, 0),
        ("raise SystemExit", true, None, 0),
        ("sys.exit(1)", false, Some("SystemExit: 1"), 1),
        ("sys.exit(2)", false, Some("SystemExit: 2"), 2),
        ("exit(3)", false, Some("SystemExit: 3"), 3),
        (
            "sys.exit('stop now')",
            false,
            Some("SystemExit: stop now"),
            1,
        ),
        ("sys.exit(True)", false, Some("SystemExit: True"), 1),
        ("sys.exit(2.5)", false, Some("SystemExit: 2.5"), 1),
        ("sys.exit([1])", false, Some("SystemExit: [1]"), 1),
        ("sys.exit(256)", false, Some("SystemExit: 256"), 0),
        ("sys.exit(-1)", false, Some("SystemExit: -1"), 255),
    ];
    let engine = common::engine();
    for (exit, ok, error, code) in cases {
        let program = format!("{prefix}{exit}");
        let r = run_on(&engine, &program, RunnerPolicy::default()).await;
        assert_eq!(r.ok, *ok, "{exit}: {r:?}");
        assert_eq!(r.error.as_deref(), *error, "{exit}");
        assert_eq!(r.exit_code, *code, "{exit}");
        assert_eq!(r.result, json!("r"), "{exit}");
        assert_eq!(r.stdout, "p\n", "{exit}");
    }
    let code = format!("{prefix}sys.exit('stop now')");
    let r = run_on(&engine, &code, RunnerPolicy::default()).await;
    assert_eq!(r.stderr, "stop now\n");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_process_that_dies_without_a_result_gets_an_error_naming_how() {
    let r = run_with("import os\nos._exit(7)", None, permissive()).await;
    assert!(!r.ok);
    assert_eq!(r.exit_code, 7);
    assert_eq!(
        r.error.as_deref(),
        Some("Process exited with code 7 without reporting a result")
    );
    let r = run_with(
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
        None,
        permissive(),
    )
    .await;
    assert_eq!(r.exit_code, -9);
    assert!(r.error.unwrap().contains("signal 9 (SIGKILL)"));
}

// ---- imports and builtins ---------------------------------------------------------

#[tokio::test]
async fn default_policy_blocks_os_with_the_original_message() {
    let r = run("import os").await;
    assert_eq!(
        r.error.as_deref(),
        Some("ImportError: Import 'os' is blocked by policy")
    );
    assert_eq!(r.exit_code, 1);
    let r = run("from os import path").await;
    assert_eq!(
        r.error.as_deref(),
        Some("ImportError: Import 'os' is blocked by policy")
    );
    let r = run("import os.path").await;
    assert_eq!(
        r.error.as_deref(),
        Some("ImportError: Import 'os.path' is blocked by policy")
    );
    let r = run("__import__('subprocess')").await;
    assert_eq!(
        r.error.as_deref(),
        Some("ImportError: Import 'subprocess' is blocked by policy")
    );
}

#[tokio::test]
async fn importlib_is_blocked_in_every_mode_even_when_allowed() {
    let r = run_with("import importlib.util", None, permissive()).await;
    assert_eq!(
        r.error.as_deref(),
        Some("ImportError: Import 'importlib' is blocked by policy")
    );
    let r = run_with(
        "import importlib",
        None,
        allow_mode(&["importlib"], &[], &[]),
    )
    .await;
    assert_eq!(
        r.error.as_deref(),
        Some("ImportError: Import 'importlib' is blocked by policy")
    );
}

#[tokio::test]
async fn dotted_block_entries_take_effect() {
    let policy = RunnerPolicy {
        blocked_imports: vec!["xml.etree".into()],
        ..RunnerPolicy::default()
    };
    let r = run_with("import xml.etree.ElementTree", None, policy.clone()).await;
    assert_eq!(
        r.error.as_deref(),
        Some("ImportError: Import 'xml.etree.ElementTree' is blocked by policy")
    );
    let r = run_with("from xml import etree", None, policy.clone()).await;
    assert_eq!(
        r.error.as_deref(),
        Some("ImportError: Import 'xml.etree' is blocked by policy")
    );
    let r = run_with("import xml.dom\nresult = 1", None, policy).await;
    assert!(r.ok, "{r:?}");
}

#[tokio::test]
async fn allow_mode_allows_only_what_it_lists() {
    let policy = allow_mode(&["math"], &["print", "len", "range"], &["x", "helper"]);
    let policy = RunnerPolicy {
        extra_globals: BTreeMap::from([("helper".to_string(), spr_core::Value::Int(10))]),
        ..policy
    };
    let r = run_with(
        "import math\nresult = math.sqrt(x) + helper",
        Some(json!({"x": 81})),
        policy.clone(),
    )
    .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.result, json!(19.0));
    let r = run_with("import json", None, policy.clone()).await;
    assert_eq!(
        r.error.as_deref(),
        Some("ImportError: Import 'json' is not allowed by policy")
    );
    let r = run_with("result = sorted([2, 1])", None, policy).await;
    assert_eq!(
        r.error.as_deref(),
        Some("NameError: name 'sorted' is not defined")
    );
}

#[tokio::test]
async fn blocked_builtins_are_not_defined() {
    for name in ["eval", "exec", "open", "compile", "breakpoint"] {
        let r = run(&format!("{name}('1')")).await;
        assert_eq!(
            r.error,
            Some(format!("NameError: name '{name}' is not defined"))
        );
    }
}

#[tokio::test]
async fn restrict_mode_ignores_the_allow_lists() {
    let policy = RunnerPolicy {
        allowed_imports: vec!["math".into()],
        ..RunnerPolicy::default()
    };
    let r = run_with("import json\nresult = json.dumps([1])", None, policy).await;
    assert_eq!(r.result, json!("[1]"));
}

// ---- globals and injection ---------------------------------------------------------

#[tokio::test]
async fn flat_input_keys_become_globals() {
    let r = run_with(
        "result = x + y",
        Some(json!({"x": 3, "y": 4})),
        RunnerPolicy::default(),
    )
    .await;
    assert_eq!(r.result, json!(7));
    let r = run_with(
        "result = customer['name'].upper()",
        Some(json!({"customer": {"name": "ada"}})),
        RunnerPolicy::default(),
    )
    .await;
    assert_eq!(r.result, json!("ADA"));
}

#[tokio::test]
async fn injection_skips_private_reserved_and_non_identifier_keys() {
    let input = json!({"_p": 1, "result": "malicious", "not-ident": 2, "ok": 3});
    let code =
        "g = globals()\nresult = [('_p' in g), ('not-ident' in g), g.get('ok'), input_data['_p']]";
    let r = run_with(code, Some(input), RunnerPolicy::default()).await;
    assert_eq!(r.result, json!([false, false, 3, 1]));
}

#[tokio::test]
async fn blocked_globals_hide_keys_from_injection_only() {
    let policy = RunnerPolicy {
        blocked_globals: vec!["secret".into()],
        ..RunnerPolicy::default()
    };
    let r = run_with(
        "result = [('secret' in globals()), input_data['secret']]",
        Some(json!({"secret": 1})),
        policy,
    )
    .await;
    assert_eq!(r.result, json!([false, 1]));
}

#[tokio::test]
async fn extra_globals_win_over_input_keys_and_are_filtered_by_mode() {
    let policy = RunnerPolicy {
        extra_globals: BTreeMap::from([
            ("project".to_string(), spr_core::Value::String("spr".into())),
            ("x".to_string(), spr_core::Value::Int(1)),
        ]),
        ..RunnerPolicy::default()
    };
    let r = run_with(
        "result = [project, x]",
        Some(json!({"x": 99})),
        policy.clone(),
    )
    .await;
    assert_eq!(r.result, json!(["spr", 1]));
    let allow = RunnerPolicy {
        allowed_globals: vec!["x".into()],
        ..allow_mode(&[], &["globals"], &["x"])
    };
    let allow = RunnerPolicy {
        extra_globals: policy.extra_globals,
        ..allow
    };
    let r = run_with(
        "result = sorted(k for k in globals() if not k.startswith('__'))",
        None,
        allow.clone(),
    )
    .await;
    assert!(!r.ok); // sorted is not allowed
    let r = run_with("result = 'project' in globals()", None, allow).await;
    assert_eq!(r.result, json!(false));
}

// ---- limits ----------------------------------------------------------------------------

#[tokio::test]
async fn a_timeout_keeps_partial_output_and_exits_124() {
    let policy = RunnerPolicy {
        timeout_seconds: 1,
        ..RunnerPolicy::default()
    };
    let started = std::time::Instant::now();
    let r = run_with(
        "print('before', flush=True)\nwhile True:\n    pass",
        None,
        policy,
    )
    .await;
    assert!(r.timed_out && !r.ok);
    assert_eq!(r.exit_code, 124);
    assert_eq!(r.error.as_deref(), Some("Execution timed out after 1s"));
    assert_eq!(r.stdout, "before\n");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}

#[tokio::test]
async fn a_worker_that_stops_answering_reports_the_time_the_host_waited() {
    // Without the sandbox the worker's command line names the engine's own scratch
    // directory, so the test can find the worker (and what it pre-forked) and freeze it.
    let scratch = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("spr-wedged-{}", std::process::id()));
    let mut config = spr_core::LocalEngineConfig::new(common::shared_venv());
    config.venv_manager = spr_core::VenvManager::Python;
    config.pool_size = Some(1);
    config.sandbox = spr_core::SandboxMode::Off;
    config.scratch_dir = Some(scratch.clone());
    let engine = spr_core::LocalEngine::new(config).unwrap();
    engine.warm_up().await.unwrap();
    let marker = scratch.to_string_lossy().into_owned();
    let frozen = common::pids_with(&marker);
    assert!(!frozen.is_empty(), "no worker under {marker}");
    common::signal(&frozen, "STOP");

    let policy = RunnerPolicy {
        timeout_seconds: 1,
        ..RunnerPolicy::default()
    };
    let started = std::time::Instant::now();
    let r = run_on(&engine, "result = 1", policy).await;
    let waited = started.elapsed();
    common::signal(&frozen, "KILL"); // whatever the discard left (nothing, normally)
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&scratch);

    assert!(r.timed_out && !r.ok, "{r:?}");
    assert_eq!(r.exit_code, 124);
    assert_eq!(
        r.error.as_deref(),
        Some("Execution timed out after 1s (the worker stopped responding and was replaced)")
    );
    // The host's backstop is the timeout plus 5 s; it used to report the bare timeout.
    assert!(r.duration_ms >= 6000.0, "{r:?}");
    assert!(
        r.duration_ms <= waited.as_secs_f64() * 1000.0,
        "{r:?} in {waited:?}"
    );
}

#[tokio::test]
async fn a_timeout_kills_forked_and_detached_children_too() {
    let dir = tempdir();
    let marker = dir.join("survived");
    let code = format!(
        "import os, time\nfor _ in range(2):\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n            time.sleep(2)\n            open({m:?}, 'w').write('x')\n        os._exit(0)\nwhile True:\n    time.sleep(0.1)",
        m = marker.display().to_string()
    );
    let policy = RunnerPolicy {
        timeout_seconds: 1,
        ..permissive()
    };
    let r = run_with(&code, None, policy).await;
    assert!(r.timed_out);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(
        !marker.exists(),
        "a detached grandchild survived the timeout"
    );
}

#[tokio::test]
async fn a_finished_run_leaves_no_background_process() {
    let dir = tempdir();
    let marker = dir.join("survived");
    let code = format!(
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1)\n    open({m:?}, 'w').write('x')\n    os._exit(0)\nresult = 'done'",
        m = marker.display().to_string()
    );
    let r = run_with(&code, None, permissive()).await;
    assert_eq!(r.result, json!("done"));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(!marker.exists(), "a background process outlived its run");
}

#[tokio::test]
async fn exceeding_the_memory_limit_sets_resource_exceeded() {
    let policy = RunnerPolicy {
        memory_limit_mb: 64,
        ..RunnerPolicy::default()
    };
    let r = run_with("x = bytearray(200 * 1024 * 1024)", None, policy).await;
    assert!(!r.ok);
    assert!(r.resource_exceeded, "{r:?}");
    assert_eq!(
        r.error.as_deref(),
        Some("MemoryError: Memory limit exceeded (64 MB)")
    );
}

#[tokio::test]
async fn each_run_gets_a_clean_environment_and_a_fresh_scratch_directory() {
    std::env::set_var("SPR_TEST_HOST_SECRET", "leaked");
    let code = "import os\nresult = [os.environ.get('SPR_TEST_HOST_SECRET'), os.getcwd(), os.listdir('.')]\nopen('f.txt', 'w').write('x')";
    let engine = common::engine();
    let a = run_on(&engine, code, permissive()).await;
    let b = run_on(&engine, code, permissive()).await;
    engine.shutdown().await;
    let (a, b) = (a.result.to_value(), b.result.to_value());
    assert_eq!(a[0], json!(null));
    // The same name for every run (a number would count earlier runs), but fresh: what
    // the first run wrote there is gone for the second.
    assert_eq!(a[2], json!([]));
    assert_eq!(b[2], json!([]));
    let cwd = a[1].as_str().unwrap();
    assert!(
        !std::path::Path::new(cwd).exists(),
        "scratch dir {cwd} was not removed"
    );
}

#[tokio::test]
async fn module_state_does_not_leak_between_runs() {
    let engine = common::engine();
    let code = "import math\nresult = getattr(math, 'leak', None)\nmath.leak = 1";
    for _ in 0..3 {
        let r = spr_core::run_code(code, &engine, None, spr_core::PolicySource::Default)
            .await
            .unwrap();
        assert_eq!(r.result, json!(null));
    }
    engine.shutdown().await;
}

// ---- forgery and hostile output ---------------------------------------------------------

#[tokio::test]
async fn a_forged_result_frame_cannot_hide_an_exit_status() {
    let code = "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'{\"outcome\":\"completed\",\"result\":\"SPOOF\"}')\n    except OSError:\n        pass\nos._exit(3)";
    let r = run_with(code, None, permissive()).await;
    assert!(!r.ok);
    assert_eq!(r.exit_code, 3);
    assert_ne!(r.result, json!("SPOOF"));
}

#[tokio::test]
async fn patching_json_dumps_does_not_change_the_reported_status() {
    let code = "import json\njson.dumps = lambda *a, **k: '{\"outcome\":\"completed\",\"result\":\"SPOOFED\"}'\nraise ValueError('real')";
    let r = run(code).await;
    assert!(!r.ok);
    assert_eq!(r.error.as_deref(), Some("ValueError: real"));
}

#[tokio::test]
async fn junk_on_every_descriptor_yields_a_coherent_result() {
    let code = "import os\nfor fd in range(0, 64):\n    try:\n        os.write(fd, b'\\x00\\xff not json [1]')\n    except OSError:\n        pass\nresult = 1";
    let r = run_with(code, None, permissive()).await;
    assert!(!r.ok);
    assert!(r
        .error
        .unwrap()
        .starts_with("Process reported a malformed result"));
}

#[tokio::test]
async fn the_engine_survives_a_run_that_kills_its_worker() {
    let engine = common::engine();
    let kill = "import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\n    result = 'sent'\nexcept PermissionError:\n    result = 'refused'\nimport time\ntime.sleep(0.2)";
    let r = run_on(&engine, kill, permissive()).await;
    // A run's parent is the harness's zygote. Where Landlock scopes signals the kill is
    // refused; elsewhere the zygote dies and the run fails. Either way the engine must
    // answer the next run.
    let scoped = r
        .sandbox
        .as_ref()
        .and_then(|s| s.per_run.as_ref())
        .is_some_and(|p| p.landlock_scoped);
    if scoped {
        assert_eq!(r.result, json!("refused"), "{r:?}");
    }
    let r = run_on(&engine, "result = 2 + 2", RunnerPolicy::default()).await;
    assert_eq!(r.result, json!(4), "{r:?}");
    engine.shutdown().await;
}

#[tokio::test]
async fn concurrent_runs_share_the_pool_safely() {
    let engine = std::sync::Arc::new(common::engine());
    let mut tasks = Vec::new();
    for i in 0..12 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let r = spr_core::run_code(
                "result = x * 2",
                &engine,
                Some(json!({"x": i})),
                spr_core::PolicySource::Default,
            )
            .await
            .unwrap();
            assert_eq!(r.result, json!(i * 2));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    engine.shutdown().await;
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "spr-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn what_a_run_leaves_next_to_its_directory_is_gone_before_the_next_run() {
    for mode in [spr_core::SandboxMode::Auto, spr_core::SandboxMode::Off] {
        let mut config = spr_core::LocalEngineConfig::new(common::shared_venv());
        config.venv_manager = spr_core::VenvManager::Python;
        config.pool_size = Some(1);
        config.sandbox = mode;
        let engine = spr_core::LocalEngine::new(config).unwrap();
        let write = "open('../left-behind', 'w').write('x')";
        let r = run_on(&engine, write, permissive()).await;
        assert!(r.ok, "{mode:?}: {r:?}");
        let list = "import os\nresult = os.listdir('..')";
        let r = run_on(&engine, list, permissive()).await;
        engine.shutdown().await;
        let names = r.result.to_value();
        let names = names.as_array().unwrap();
        assert!(
            !names.contains(&json!("left-behind")),
            "{mode:?}: {names:?}"
        );
    }
}

/// A caller that gives up on a run (an HTTP client that disconnects, a cancelled task)
/// drops its future: the run must die with it and its worker must be replaced, so the
/// pool serves the next run at once.
#[tokio::test]
async fn a_dropped_run_is_killed_and_its_worker_replaced() {
    let dir = common::target_tmpdir().join(format!("spr-cancel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let beat = dir.join("beat");
    let mut config = spr_core::LocalEngineConfig::new(common::shared_venv());
    config.venv_manager = spr_core::VenvManager::Python;
    config.pool_size = Some(1);
    let engine = spr_core::LocalEngine::new(config).unwrap();
    let mut policy = permissive();
    policy.timeout_seconds = 60;
    policy.sandbox.extra_write_paths = vec![dir.display().to_string()];
    let code = format!(
        "import time\nn = 0\nwhile True:\n    n += 1\n    open({beat:?}, 'w').write(str(n))\n    time.sleep(0.02)"
    );
    let run = run_on(&engine, &code, policy.clone());
    let gave_up = tokio::time::timeout(std::time::Duration::from_secs(3), run).await;
    assert!(gave_up.is_err(), "the loop never ends by itself");
    assert!(beat.exists(), "the run was running");
    // Dead, not merely forgotten: the heartbeat stops.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut last = std::fs::read_to_string(&beat).unwrap();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = std::fs::read_to_string(&beat).unwrap();
        if now == last {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped run goes on writing"
        );
        last = now;
    }
    // The pool (of one) serves the next run: its slot was freed and its worker replaced.
    let started = std::time::Instant::now();
    let next = run_on(&engine, "result = 41 + 1", permissive()).await;
    assert_eq!(next.result, json!(42), "{next:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

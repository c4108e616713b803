//! `run_code`'s contract: policy sources, refusals before a run, and config_path re-reads.

mod common;

use serde_json::json;
use spr_core::{run_code, PolicySource, RunError, RunnerPolicy};
use std::path::PathBuf;

fn write_policy(name: &str, text: &str) -> PathBuf {
    let dir = common::target_tmpdir().join(format!("policies-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_policy_file_is_loaded_for_the_run() {
    let path = write_policy(
        "block-json.toml",
        "[policy]\nblocked_imports = [\"json\"]\n",
    );
    let engine = common::engine();
    let r = run_code("import json", &engine, None, PolicySource::File(path))
        .await
        .unwrap();
    assert_eq!(
        r.error.as_deref(),
        Some("ImportError: Import 'json' is blocked by policy")
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_file_that_omits_the_lists_keeps_the_default_blocks() {
    let path = write_policy("mode-only.toml", "mode = \"restrict\"\n");
    let engine = common::engine();
    let r = run_code("import os", &engine, None, PolicySource::File(path))
        .await
        .unwrap();
    assert_eq!(
        r.error.as_deref(),
        Some("ImportError: Import 'os' is blocked by policy")
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_missing_policy_file_refuses_the_run() {
    let engine = common::engine();
    let err = run_code(
        "result = 1",
        &engine,
        None,
        PolicySource::File("/nonexistent/p.toml".into()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RunError::Policy(_)));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/p.toml: cannot read policy file"),
        "{err}"
    );
}

#[tokio::test]
async fn an_invalid_policy_object_refuses_the_run() {
    let engine = common::engine();
    let policy = RunnerPolicy {
        timeout_seconds: 0,
        ..RunnerPolicy::default()
    };
    let err = run_code("result = 1", &engine, None, PolicySource::Policy(policy))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "timeout_seconds: must be between 1 and 86400, got 0"
    );
}

#[tokio::test]
async fn config_path_is_re_read_for_every_run_and_wins_over_the_fields() {
    let path = write_policy("live.toml", "blocked_imports = [\"json\"]\n");
    let mut policy = RunnerPolicy::from_file(&path).unwrap();
    policy.blocked_imports.clear(); // ignored: the file wins
    let engine = common::engine();
    let source = PolicySource::Policy(policy);
    let r = run_code("import json\nresult = 1", &engine, None, source.clone())
        .await
        .unwrap();
    assert!(!r.ok);
    std::fs::write(&path, "blocked_imports = []\n").unwrap();
    let r = run_code("import json\nresult = 1", &engine, None, source)
        .await
        .unwrap();
    assert_eq!(r.result, json!(1));
    engine.shutdown().await;
}

#[tokio::test]
async fn input_must_be_an_object() {
    let engine = common::engine();
    let err = run_code(
        "result = 1",
        &engine,
        Some(json!([1, 2])),
        PolicySource::Default,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "input_data must be a JSON object (or null), got an array"
    );
    let r = run_code(
        "result = input_data",
        &engine,
        Some(json!(null)),
        PolicySource::Default,
    )
    .await
    .unwrap();
    assert_eq!(r.result, json!({}));
    engine.shutdown().await;
}

#[test]
fn the_blocking_api_runs_without_a_runtime() {
    let engine = common::engine();
    let r = spr_core::run_code_blocking("result = 6 * 7", &engine, None, PolicySource::Default)
        .unwrap();
    assert_eq!(r.result, json!(42));
}

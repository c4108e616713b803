//! Making a local engine is cheap and touches nothing; preparing it is an explicit step
//! that concurrent callers share, whose failure every waiter gets and the next call
//! retries, and that `warm_up`, runs and sessions report in their own terms.

mod common;

use common::which;
use spr_core::{
    run_code, Engine, LocalEngine, LocalEngineConfig, LocalEngineError, PolicySource, RunnerPolicy,
    SessionError, VenvManager, WarmUpError,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fresh_dir(name: &str) -> PathBuf {
    let dir = common::target_tmpdir().join(format!("prepare-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// An executable shell script at `path` that appends a line to `count` each time it is
/// started, then runs `body`.
fn counting_script(path: &Path, count: &Path, body: &str) {
    let text = format!("#!/bin/sh\necho started >> '{}'\n{body}\n", count.display());
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn starts(count: &Path) -> usize {
    std::fs::read_to_string(count).map_or(0, |t| t.lines().count())
}

#[test]
fn new_returns_at_once_and_creates_nothing() {
    let dir = fresh_dir("new");
    let mut config = LocalEngineConfig::new(dir.join("deep/venv"));
    config.venv_manager = VenvManager::Uv;
    config.packages = vec!["six==1.16.0".into()];
    config.preload = vec!["json".into()];
    config.scratch_dir = Some(dir.join("scratch"));
    config.python = Some("/nonexistent/python3".into());
    let started = Instant::now();
    let engine = LocalEngine::new(config).expect("a valid configuration");
    assert!(started.elapsed() < Duration::from_millis(200));
    assert!(!dir.exists(), "new created {}", dir.display());
    assert!(!engine.is_prepared());
    assert_eq!(engine.python(), None);
    assert!(engine.sandbox_support().is_none());
    assert_eq!(engine.open_sessions(), 0);
    drop(engine);
    assert!(!dir.exists());
}

#[tokio::test]
async fn a_failed_preparation_is_the_typed_warm_up_error_and_each_runs_125() {
    let dir = fresh_dir("nopython");
    let mut config = LocalEngineConfig::new(dir.join("venv"));
    config.venv_manager = VenvManager::Python;
    config.python = Some("/nonexistent/python3".into());
    let engine: Arc<dyn Engine> = Arc::new(LocalEngine::new(config).unwrap());
    let want = "Python was not found (/nonexistent/python3); install python3 or set the interpreter explicitly";

    let err = engine.warm_up().await.unwrap_err();
    assert!(
        matches!(
            &err,
            WarmUpError::Prepare(LocalEngineError::PythonNotFound { .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "the local engine could not be prepared");
    assert_eq!(std::error::Error::source(&err).unwrap().to_string(), want);

    let r = run_code("result = 1", &engine, None, PolicySource::Default)
        .await
        .expect("the run is accepted");
    assert!(!r.ok);
    assert_eq!(r.exit_code, spr_core::EXIT_INFRASTRUCTURE);
    assert_eq!(r.error.as_deref(), Some(want));

    match engine.open_session(&RunnerPolicy::default()).await {
        Err(SessionError::Start(message)) => assert_eq!(message, want),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a session opened on an engine that cannot be prepared"),
    }
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_io_failure_names_its_cause_and_the_next_call_retries() {
    let dir = fresh_dir("retry");
    std::fs::create_dir_all(&dir).unwrap();
    // A regular file where the scratch folder's parent should be.
    let parent = dir.join("parent");
    std::fs::write(&parent, "not a folder").unwrap();
    let mut config = LocalEngineConfig::new(common::shared_venv());
    config.venv_manager = VenvManager::Python;
    config.pool_size = Some(1);
    config.scratch_dir = Some(parent.join("scratch"));
    let engine = LocalEngine::new(config).unwrap();

    let err = engine.prepare().await.unwrap_err();
    assert!(matches!(err, LocalEngineError::Io { .. }), "{err:?}");
    let r = common::run_on(&engine, "result = 1", RunnerPolicy::default()).await;
    assert_eq!(r.exit_code, spr_core::EXIT_INFRASTRUCTURE);
    let error = r.error.unwrap();
    // The message and the OS error under it: a run's error has no room for a chain.
    assert!(
        error.starts_with(&format!(
            "could not create the scratch directory at {}: ",
            parent.join("scratch").display()
        )),
        "{error}"
    );
    assert!(error.len() > err.to_string().len() + 2, "{error}");

    // A failure is not kept: once the cause is gone, the next call prepares.
    std::fs::remove_file(&parent).unwrap();
    std::fs::create_dir(&parent).unwrap();
    let r = common::run_on(&engine, "result = 2", RunnerPolicy::default()).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.result.to_value(), serde_json::json!(2));
    assert!(engine.is_prepared());
    assert!(engine.python().is_some());
    engine.shutdown().await;
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn concurrent_first_runs_share_one_preparation_and_its_failure() {
    let dir = fresh_dir("shared-failure");
    std::fs::create_dir_all(&dir).unwrap();
    let count = dir.join("starts");
    let python = dir.join("python3");
    counting_script(
        &python,
        &count,
        "sleep 0.3\necho 'no venv today' >&2\nexit 1",
    );
    let mut config = LocalEngineConfig::new(dir.join("venv"));
    config.venv_manager = VenvManager::Python;
    config.python = Some(python);
    let engine = Arc::new(LocalEngine::new(config).unwrap());

    let runs = (0..6).map(|_| {
        let engine = engine.clone();
        tokio::spawn(
            async move { common::run_on(&engine, "result = 1", RunnerPolicy::default()).await },
        )
    });
    for run in runs.collect::<Vec<_>>() {
        let r = run.await.unwrap();
        assert_eq!(r.exit_code, spr_core::EXIT_INFRASTRUCTURE);
        assert_eq!(
            r.error.as_deref(),
            Some("Failed to create venv with python: no venv today")
        );
    }
    assert_eq!(starts(&count), 1, "six waiting runs, one attempt");

    // The next call tries again (and fails again, the same way).
    let err = engine.prepare().await.unwrap_err();
    assert!(
        matches!(err, LocalEngineError::CreateVenv { .. }),
        "{err:?}"
    );
    assert_eq!(starts(&count), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn concurrent_first_runs_prepare_once() {
    let Some(real) = which("python3") else {
        assert!(
            common::require(false, "python3 on PATH"),
            "python3 is missing"
        );
        return;
    };
    let dir = fresh_dir("shared-success");
    std::fs::create_dir_all(&dir).unwrap();
    let count = dir.join("starts");
    let python = dir.join("python3");
    // No pip: the venv only has to start the harness.
    counting_script(
        &python,
        &count,
        &format!("exec '{}' \"$@\" --without-pip", real.display()),
    );
    let mut config = LocalEngineConfig::new(dir.join("venv"));
    config.venv_manager = VenvManager::Python;
    config.python = Some(python);
    config.pool_size = Some(2);
    config.scratch_dir = Some(dir.join("scratch"));
    let engine = Arc::new(LocalEngine::new(config).unwrap());

    let runs = (0..4).map(|i| {
        let engine = engine.clone();
        tokio::spawn(async move {
            common::run_on(&engine, &format!("result = {i}"), RunnerPolicy::default()).await
        })
    });
    for (i, run) in runs.collect::<Vec<_>>().into_iter().enumerate() {
        let r = run.await.unwrap();
        assert!(r.ok, "{r:#?}");
        assert_eq!(r.result.to_value(), serde_json::json!(i));
    }
    assert_eq!(starts(&count), 1, "four first runs, one venv creation");
    // One engine directory in the scratch folder: one preparation made it.
    let roots: Vec<_> = std::fs::read_dir(dir.join("scratch"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(roots.len(), 1, "{roots:?}");
    engine.warm_up().await.expect("prepared once, warm now");
    engine.prepare().await.unwrap();
    assert_eq!(starts(&count), 1);
    engine.shutdown().await;
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

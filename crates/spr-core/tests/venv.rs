//! The managed venv: creation with python and with uv, pinned packages installed once, clear errors.

mod common;

use common::{require, which};
use serde_json::json;
use spr_core::{
    run_code, LocalEngine, LocalEngineConfig, LocalEngineError, PolicySource, VenvManager,
};
use std::path::PathBuf;

fn fresh_dir(name: &str) -> PathBuf {
    let dir = common::target_tmpdir().join(format!("venv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn version_of(engine: &LocalEngine, module: &str) -> serde_json::Value {
    let policy = spr_core::RunnerPolicy::default();
    let r = run_code(
        &format!("import {module}\nresult = {module}.__version__"),
        engine,
        None,
        PolicySource::Policy(policy),
    )
    .await
    .unwrap();
    assert!(r.ok, "{r:?}");
    r.result.to_value()
}

#[tokio::test]
async fn python_creates_a_venv_and_installs_a_pinned_package_once() {
    let dir = fresh_dir("python");
    let mut config = LocalEngineConfig::new(&dir);
    config.venv_manager = VenvManager::Python;
    config.packages = vec!["six==1.16.0".into()];
    let engine = LocalEngine::new(config.clone()).expect("a valid configuration");
    assert!(!dir.exists(), "new prepares nothing");
    engine.prepare().await.expect("venv with six");
    assert!(dir.join("bin/python").exists());
    assert_eq!(version_of(&engine, "six").await, json!("1.16.0"));
    engine.shutdown().await;

    let marker = dir.join(".spr_packages.txt");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "six==1.16.0\n");
    let before = std::fs::metadata(&marker).unwrap().modified().unwrap();
    let again = LocalEngine::new(config).expect("a valid configuration");
    again.prepare().await.expect("reuse");
    assert_eq!(
        std::fs::metadata(&marker).unwrap().modified().unwrap(),
        before
    );
    drop(again);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn uv_creates_a_venv_and_installs_packages_with_uv() {
    if !require(which("uv").is_some(), "uv") {
        return;
    }
    let dir = fresh_dir("uv");
    let mut config = LocalEngineConfig::new(&dir);
    config.venv_manager = VenvManager::Uv;
    config.packages = vec!["six==1.16.0".into()];
    let engine = LocalEngine::new(config).expect("a valid configuration");
    engine
        .prepare()
        .await
        .expect("a uv venv with six (uv venvs have no pip)");
    let cfg = std::fs::read_to_string(dir.join("pyvenv.cfg")).unwrap();
    assert!(cfg.contains("uv ="), "{cfg}");
    assert_eq!(version_of(&engine, "six").await, json!("1.16.0"));
    engine.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unpinned_packages_are_refused_before_touching_the_disk() {
    let dir = fresh_dir("unpinned");
    let mut config = LocalEngineConfig::new(&dir);
    config.packages = vec!["pandas>=2".into()];
    let err = LocalEngine::new(config).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Package specs must be pinned as 'name==version'. Invalid package: pandas>=2"
    );
    assert!(!dir.exists());
}

#[tokio::test]
async fn a_missing_interpreter_is_a_clear_error() {
    let dir = fresh_dir("nopython");
    let mut config = LocalEngineConfig::new(&dir);
    config.venv_manager = VenvManager::Python;
    config.python = Some("/nonexistent/python3".into());
    let engine = LocalEngine::new(config).expect("a valid configuration");
    let err = engine.prepare().await.unwrap_err();
    assert!(
        matches!(err, LocalEngineError::PythonNotFound { .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "Python was not found (/nonexistent/python3); install python3 or set the interpreter explicitly"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_package_that_does_not_exist_fails_with_the_installer_message() {
    let dir = fresh_dir("badpkg");
    let mut config = LocalEngineConfig::new(&dir);
    config.venv_manager = VenvManager::Python;
    config.packages = vec!["spr-no-such-package-xyz==0.0.1".into()];
    let err = LocalEngine::new(config)
        .expect("a valid configuration")
        .prepare()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("Failed to install local packages: "),
        "{text}"
    );
    assert!(!dir.join(".spr_packages.txt").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_empty_venv_dir_and_a_zero_pool_are_refused() {
    let err = LocalEngine::new(LocalEngineConfig::new("  ")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "LocalEngine requires a non-empty 'venv_dir'"
    );
    let mut config = LocalEngineConfig::new(fresh_dir("zero"));
    config.pool_size = Some(0);
    assert!(matches!(
        LocalEngine::new(config.clone()),
        Err(LocalEngineError::ZeroPoolSize)
    ));
    assert_eq!(
        LocalEngine::new(config).unwrap_err().to_string(),
        "pool_size must be at least 1 (omit it for the default, min(cores, 4))"
    );
    let mut config = LocalEngineConfig::new(fresh_dir("zero"));
    config.max_sessions = Some(0);
    assert_eq!(
        LocalEngine::new(config).unwrap_err().to_string(),
        "max_sessions must be at least 1 (omit it for the default, 16)"
    );
    // `None` is the default, min(cores, 4).
    let engine = LocalEngine::new(LocalEngineConfig::new(fresh_dir("zero"))).unwrap();
    assert_eq!(engine.pool_size(), spr_core::default_pool_size());
    assert!(!fresh_dir("zero").exists());
}

//! The Docker engine through the `Engine` trait: `new` refuses counts of 0, `warm_up`
//! resolves the image and fills the pool for the default policy (its failures typed),
//! `shutdown` empties it. Needs the `docker` feature; the daemon tests skip locally (and
//! fail under CI) without a daemon and the runtime image.
#![cfg(feature = "docker")]

mod common;

use spr_core::{
    run_code, DockerAdminError, DockerEngine, DockerEngineConfig, Engine, PolicySource, WarmUpError,
};
use std::sync::Arc;

#[test]
fn zero_counts_are_refused_naming_the_field() {
    type Set = fn(&mut DockerEngineConfig);
    let cases: [(&str, Set); 5] = [
        ("pool_size", |c| c.pool_size = Some(0)),
        ("max_sessions", |c| c.max_sessions = Some(0)),
        ("max_runs", |c| c.max_runs = Some(0)),
        ("ttl_seconds", |c| c.ttl_seconds = Some(0)),
        ("acquire_timeout_seconds", |c| {
            c.acquire_timeout_seconds = Some(0)
        }),
    ];
    for (field, set) in cases {
        let mut config = DockerEngineConfig::default();
        set(&mut config);
        let err = DockerEngine::new(config).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{field} must be at least 1 (omit it for the default, "
            )),
            "{err}"
        );
    }
    let engine = DockerEngine::new(DockerEngineConfig::default()).unwrap();
    assert_eq!(
        engine.pool_settings().pool_size,
        spr_core::default_pool_size()
    );
}

#[tokio::test]
async fn an_unreachable_daemon_is_the_typed_warm_up_error() {
    let engine: Arc<dyn Engine> = Arc::new(
        DockerEngine::new(DockerEngineConfig {
            docker_host: Some("tcp://127.0.0.1:1".into()),
            ..DockerEngineConfig::default()
        })
        .unwrap(),
    );
    let err = engine.warm_up().await.unwrap_err();
    assert!(
        matches!(&err, WarmUpError::Docker(DockerAdminError::Unreachable(_))),
        "{err:?}"
    );
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.starts_with("Docker is not reachable at "), "{cause}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_fills_the_pool_that_runs_use_and_shutdown_empties_it() {
    let docker = DockerEngine::new(DockerEngineConfig {
        pool_size: Some(1),
        ..DockerEngineConfig::default()
    })
    .unwrap();
    if let Err(e) = docker.ping().await {
        common::require(false, &format!("a Docker daemon ({e})"));
        return;
    }
    let engine: Arc<dyn Engine> = Arc::new(docker.clone());
    match engine.warm_up().await {
        Ok(()) => {}
        Err(WarmUpError::Docker(DockerAdminError::Api(e))) if e.contains("was not found") => {
            common::require(false, &format!("the runtime image ({e})"));
            return;
        }
        Err(e) => panic!("{e}: {:?}", std::error::Error::source(&e)),
    }
    let idle = docker.idle_containers();
    assert_eq!(idle.len(), 1, "{idle:?}");
    let r = run_code("result = 1", &engine, None, PolicySource::Default)
        .await
        .unwrap();
    assert!(r.ok, "{r:#?}");
    let used = r.sandbox.as_ref().unwrap().details["container"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(used, idle[0], "the run used the warmed container");
    engine.shutdown().await;
    assert!(docker.idle_containers().is_empty());
}

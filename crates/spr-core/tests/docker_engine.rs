//! The Docker engine through the `Engine` trait: `new` refuses counts of 0, `warm_up`
//! resolves the image and fills the pool for the default policy (`warm_up_for`, for the
//! policy given; its failures typed, a failing preload among them), `shutdown` empties
//! it. Needs the `docker` feature; the daemon tests skip locally (and
//! fail under CI) without a daemon and the runtime image.
#![cfg(feature = "docker")]

mod common;

use spr_core::{
    run_code, DockerAdminError, DockerEngine, DockerEngineConfig, Engine, PolicySource,
    RunnerPolicy, WarmUpError,
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
    let Some((docker, engine)) = on_daemon(DockerEngineConfig {
        pool_size: Some(1),
        ..DockerEngineConfig::default()
    })
    .await
    else {
        return;
    };
    match engine.warm_up().await {
        Ok(()) => {}
        Err(e) if image_missing(&e) => return,
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

    // `warm_up_for` fills the pool of the policy given (a container's size is its
    // policy's): that policy's runs take the warmed container, not a new one.
    let big = RunnerPolicy {
        memory_limit_mb: 1024,
        ..RunnerPolicy::default()
    };
    engine.warm_up_for(&big).await.unwrap();
    let idle = docker.idle_containers();
    assert_eq!(idle.len(), 1, "{idle:?}");
    let r = run_code("result = 1", &engine, None, PolicySource::Policy(big))
        .await
        .unwrap();
    assert!(r.ok, "{r:#?}");
    assert_eq!(
        r.sandbox.as_ref().unwrap().details["container"],
        idle[0].as_str(),
        "the run used the container warmed for its policy"
    );
    engine.shutdown().await;
}

/// A `preload` every container fails is the typed warm-up error a server stops on
/// (`is_preload_failure`), naming the module, and leaves no container behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preload_every_container_fails_is_the_typed_warm_up_error() {
    const PREFIX: &str = "spr-test-bad-preload";
    let Some((docker, engine)) = on_daemon(DockerEngineConfig {
        pool_size: Some(2),
        preload: vec!["spr_no_such_module".into()],
        container_prefix: Some(PREFIX.into()),
        ..DockerEngineConfig::default()
    })
    .await
    else {
        return;
    };
    let err = engine.warm_up().await.unwrap_err();
    match &err {
        e if image_missing(e) => return,
        WarmUpError::Docker(DockerAdminError::Preload(message)) => assert!(
            message.contains("No module named 'spr_no_such_module'"),
            "{message}"
        ),
        other => panic!("{other}: {:?}", std::error::Error::source(other)),
    }
    assert!(err.is_preload_failure(), "{err:?}");
    assert!(docker.idle_containers().is_empty());
    let left: Vec<_> = docker
        .list_containers(true)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.name.trim_start_matches('/').starts_with(PREFIX))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    engine.shutdown().await;
}

/// An engine of `config` on the default daemon (also as a `dyn Engine`), or None when
/// there is no daemon (the test is skipped locally, failed under CI).
async fn on_daemon(config: DockerEngineConfig) -> Option<(DockerEngine, Arc<dyn Engine>)> {
    let docker = DockerEngine::new(config).unwrap();
    if let Err(e) = docker.ping().await {
        common::require(false, &format!("a Docker daemon ({e})"));
        return None;
    }
    Some((docker.clone(), Arc::new(docker)))
}

/// Whether `err` says the runtime image is missing (the test is then skipped locally;
/// under CI this fails it).
fn image_missing(err: &WarmUpError) -> bool {
    match err {
        WarmUpError::Docker(DockerAdminError::Api(e)) if e.contains("was not found") => {
            !common::require(false, &format!("the runtime image ({e})"))
        }
        _ => false,
    }
}

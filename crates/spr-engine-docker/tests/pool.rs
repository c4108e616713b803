//! The warm pool against a real daemon: hardening of a live container, reuse, recycling
//! by runs and age, replacement of a killed container, concurrency, pre-warming.

mod common;

use bollard::query_parameters::InspectContainerOptions;
use common::*;
use serde_json::json;
use spr_engine_docker::DockerEngineConfig;
use spr_protocol::Json;
use std::collections::HashSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_container_is_hardened() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let r = engine.run("result = 1", &Json::null(), &policy()).await;
    let name = container_of(&r);
    let c = docker()
        .inspect_container(&name, None::<InspectContainerOptions>)
        .await
        .expect("inspect");
    let hc = c.host_config.expect("host config");
    let cfg = c.config.expect("config");
    assert_eq!(hc.network_mode.as_deref(), Some("none"));
    assert_eq!(hc.readonly_rootfs, Some(true));
    let tmpfs = hc.tmpfs.expect("tmpfs");
    let opts = &tmpfs["/tmp"];
    for o in ["noexec", "nosuid", "size=64m"] {
        assert!(opts.contains(o), "{opts}");
    }
    assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
    assert_eq!(hc.cap_add.unwrap_or_default(), Vec::<String>::new());
    assert!(hc
        .security_opt
        .unwrap()
        .iter()
        .any(|s| s.starts_with("no-new-privileges")));
    assert_eq!(cfg.user.as_deref(), Some("65534:65534"));
    assert!(hc.pids_limit.unwrap() > 0);
    let mem = hc.memory.unwrap();
    assert!(mem >= 128 << 20);
    assert_eq!(hc.memory_swap, Some(mem), "swap equal to memory");
    assert_eq!(hc.nano_cpus, Some(1_000_000_000), "cpus default 1");
    assert_eq!(hc.privileged, Some(false));
    let labels = cfg.labels.expect("labels");
    assert_eq!(labels["dev.spr.managed"], "true");
    // `pid:starttime@hostname`: a reused pid cannot pass for the owner.
    let owner = &labels["dev.spr.owner"];
    let (process, _host) = owner.split_once('@').expect(owner);
    let (pid, start) = process.split_once(':').expect(owner);
    assert_eq!(pid, std::process::id().to_string());
    assert!(start.parse::<u64>().unwrap() > 0, "{owner}");
    assert_eq!(labels["dev.spr.pool"].len(), 16);
    assert_eq!(c.state.unwrap().running, Some(true));
    engine.shutdown().await;
    // shutdown removes the pooled container.
    let gone = docker()
        .inspect_container(&name, None::<InspectContainerOptions>)
        .await;
    assert!(gone.is_err() || gone.unwrap().state.unwrap().running != Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_are_reused_then_recycled_by_runs_and_age() {
    let Some(engine) = engine(DockerEngineConfig {
        pool_size: Some(1),
        max_runs: Some(3),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    // The probe used one run of the first container.
    let mut names = Vec::new();
    for _ in 0..4 {
        let r = engine.run("result = 1", &Json::null(), &policy()).await;
        assert!(r.ok, "{r:?}");
        names.push(container_of(&r));
    }
    assert_eq!(names[0], names[1], "reused");
    assert_ne!(names[1], names[2], "recycled after max_runs=3");
    assert_eq!(names[2], names[3]);
    engine.shutdown().await;

    let Some(engine) = engine_with_ttl().await else {
        return;
    };
    let a = container_of(&engine.run("result = 1", &Json::null(), &policy()).await);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let b = container_of(&engine.run("result = 1", &Json::null(), &policy()).await);
    assert_ne!(a, b, "recycled after ttl");
    engine.shutdown().await;
}

async fn engine_with_ttl() -> Option<spr_engine_docker::DockerEngine> {
    engine(DockerEngineConfig {
        pool_size: Some(1),
        ttl_seconds: Some(1),
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_container_is_replaced_not_reused() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let first = container_of(&engine.run("result = 1", &Json::null(), &policy()).await);
    engine
        .kill_container(&first)
        .await
        .expect("kill managed container");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let r = engine.run("result = 2", &Json::null(), &policy()).await;
    assert!(r.ok, "{r:?}");
    assert_ne!(container_of(&r), first);

    // Killed right under the pool's nose (no pause): still a clean run.
    let second = container_of(&r);
    docker()
        .remove_container(
            &second,
            Some(
                bollard::query_parameters::RemoveContainerOptionsBuilder::default()
                    .force(true)
                    .build(),
            ),
        )
        .await
        .unwrap();
    let r = engine.run("result = 3", &Json::null(), &policy()).await;
    assert!(r.ok, "{r:?}");
    assert_ne!(container_of(&r), second);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_share_the_pool_safely() {
    let Some(engine) = engine(config(2)).await else {
        return;
    };
    let runs = (0..10).map(|i| {
        let engine = engine.clone();
        async move {
            engine
                .run("result = input_data * 2", &json!(i).into(), &policy())
                .await
        }
    });
    let results = futures_util::future::join_all(runs).await;
    let mut names = HashSet::new();
    for (i, r) in results.iter().enumerate() {
        assert!(r.ok, "{r:?}");
        assert_eq!(r.result, json!(i * 2));
        names.insert(container_of(r));
    }
    assert!(names.len() <= 2, "pool_size=2 but {names:?}");
    assert!(engine.idle_containers().len() <= 2);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prewarming_fills_the_pool() {
    let Some(engine) = engine(config(2)).await else {
        return;
    };
    let started = engine.prewarm(&policy()).await.expect("prewarm");
    assert_eq!(started, 1, "the probe's container plus one more");
    assert_eq!(engine.idle_containers().len(), 2);
    engine.shutdown().await;
    assert!(engine.idle_containers().is_empty());
}

/// A caller that gives up on a run drops its future: the container (where the run may
/// still be going on) is removed and its place in the pool given back, so a pool of one
/// serves the next run instead of waiting for a container that is never returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_run_removes_its_container_and_frees_its_place() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let first = container_of(&engine.run("result = 1", &Json::null(), &policy()).await);
    let mut long = policy();
    long.timeout_seconds = 60;
    let no_input = Json::null();
    let run = engine.run("import time\ntime.sleep(60)", &no_input, &long);
    assert!(
        tokio::time::timeout(std::time::Duration::from_secs(2), run)
            .await
            .is_err(),
        "the run sleeps a minute"
    );
    let started = std::time::Instant::now();
    let r = engine.run("result = 2", &Json::null(), &policy()).await;
    assert!(r.ok, "{r:?}");
    assert_ne!(
        container_of(&r),
        first,
        "the abandoned container is not reused"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // Removed, not merely left behind.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while docker()
        .inspect_container(&first, None::<InspectContainerOptions>)
        .await
        .is_ok()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the abandoned container {first} is still there"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    engine.shutdown().await;
}

//! Remote daemons for real: a second dockerd on its own socket, the same over TCP on
//! loopback, a Docker context naming it, SSH to an sshd on 127.0.0.1:2222 with a key
//! file, and gVisor where it is registered. Set up by .ci/docker-second-daemon.sh and
//! .ci/sshd-setup.sh.

mod common;

use common::*;
use serde_json::json;
use spr_engine_docker::{DockerEngine, DockerEngineConfig};
use spr_protocol::Json;
use std::path::PathBuf;

const SECOND_SOCKET: &str = "/run/spr-docker2/docker.sock";
const SECOND_TCP: &str = "tcp://127.0.0.1:23750";
const CONTEXT: &str = "spr-second";
const SSH_PORT: u16 = 2222;
const SSH_KEY: &str = "/root/.ssh/spr_test_ed25519";

/// Run once on an engine and return the receipt's endpoint, or None when skipped.
async fn run_on(config: DockerEngineConfig, what: &str) -> Option<String> {
    let engine = DockerEngine::new(config).expect("valid config");
    if let Err(e) = engine.ping().await {
        missing(&format!(
            "{what} is not reachable ({e}); run .ci/docker-second-daemon.sh and .ci/sshd-setup.sh"
        ));
        return None;
    }
    let r = engine
        .run(
            "import sys\nresult = sys.version_info[0]",
            &Json::null(),
            &policy(),
        )
        .await;
    assert!(r.ok, "{what}: {r:?}");
    assert_eq!(r.result, json!(3));
    let endpoint = r.sandbox.as_ref().unwrap()["endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    let containers = engine.list_containers(false).await.unwrap();
    assert!(
        containers.iter().any(|c| c.name == container_of(&r)),
        "{what}: {containers:?}"
    );
    engine.shutdown().await;
    Some(endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_by_socket_tcp_and_context() {
    let by_socket = DockerEngineConfig {
        docker_host: Some(format!("unix://{SECOND_SOCKET}")),
        pool_size: Some(1),
        ..Default::default()
    };
    let Some(ep) = run_on(by_socket, "the second daemon's socket").await else {
        return;
    };
    assert_eq!(ep, format!("unix://{SECOND_SOCKET}"));

    let by_tcp = DockerEngineConfig {
        docker_host: Some(SECOND_TCP.into()),
        pool_size: Some(1),
        ..Default::default()
    };
    let Some(ep) = run_on(by_tcp, "the second daemon over TCP").await else {
        return;
    };
    assert_eq!(ep, SECOND_TCP);

    let by_context = DockerEngineConfig {
        docker_context: Some(CONTEXT.into()),
        pool_size: Some(1),
        ..Default::default()
    };
    let Some(ep) = run_on(by_context, "the Docker context spr-second").await else {
        return;
    };
    assert_eq!(
        ep,
        format!("unix://{SECOND_SOCKET}"),
        "the context resolved to the second daemon"
    );

    // The containers really ran on the second daemon, not the first.
    let second = DockerEngine::new(DockerEngineConfig {
        docker_host: Some(format!("unix://{SECOND_SOCKET}")),
        ..Default::default()
    })
    .unwrap();
    let first = DockerEngine::new(DockerEngineConfig::default()).unwrap();
    let r = second.run("result = 1", &Json::null(), &policy()).await;
    let name = container_of(&r);
    assert!(second
        .list_containers(false)
        .await
        .unwrap()
        .iter()
        .any(|c| c.name == name));
    if first.ping().await.is_ok() {
        assert!(!first
            .list_containers(true)
            .await
            .unwrap()
            .iter()
            .any(|c| c.name == name));
    }
    second.shutdown().await;
}

fn ssh_config(port: u16, key: &str) -> DockerEngineConfig {
    DockerEngineConfig {
        ssh_host: Some("127.0.0.1".into()),
        ssh_user: Some("root".into()),
        ssh_port: Some(port),
        ssh_key_path: Some(PathBuf::from(key)),
        pool_size: Some(1),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_with_a_port_and_a_key_file() {
    if !std::path::Path::new(SSH_KEY).exists() {
        missing("the SSH test key is missing (run .ci/sshd-setup.sh)");
        return;
    }
    let Some(ep) = run_on(ssh_config(SSH_PORT, SSH_KEY), "Docker over SSH").await else {
        return;
    };
    assert_eq!(ep, format!("ssh://root@127.0.0.1:{SSH_PORT}"));

    // The port and the key really take effect: a wrong one of either fails, clearly.
    let wrong_port = DockerEngine::new(ssh_config(1, SSH_KEY)).unwrap();
    let r = wrong_port.run("result = 1", &Json::null(), &policy()).await;
    assert!(!r.ok);
    assert_eq!(r.exit_code, 125);
    let err = r.error.unwrap();
    assert!(
        err.contains("ssh://root@127.0.0.1:1") && err.contains("ssh"),
        "{err}"
    );

    let wrong_key = DockerEngine::new(ssh_config(SSH_PORT, "/nonexistent/spr-key")).unwrap();
    let r = wrong_key.run("result = 1", &Json::null(), &policy()).await;
    assert!(!r.ok);
    assert_eq!(r.exit_code, 125);
    assert!(r.error.unwrap().contains("ssh"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_daemon_is_an_engine_error_not_a_fallback() {
    let engine = DockerEngine::new(DockerEngineConfig {
        docker_host: Some("unix:///nonexistent/docker.sock".into()),
        ..Default::default()
    })
    .unwrap();
    let r = engine.run("result = 1", &Json::null(), &policy()).await;
    assert!(!r.ok);
    assert_eq!(r.exit_code, 125);
    let err = r.error.unwrap();
    assert!(
        err.contains("Docker is not reachable at unix:///nonexistent/docker.sock"),
        "{err}"
    );
    assert!(err.contains("Start the Docker daemon"), "{err}");
    assert!(matches!(
        engine.list_containers(true).await,
        Err(spr_engine_docker::DockerAdminError::Unreachable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_says_how_to_build_it() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    drop(engine);
    let engine = DockerEngine::new(DockerEngineConfig {
        image: Some("spr-no-such-image:none".into()),
        ..Default::default()
    })
    .unwrap();
    let r = engine.run("result = 1", &Json::null(), &policy()).await;
    assert!(!r.ok);
    assert_eq!(r.exit_code, 125);
    assert!(r.error.unwrap().contains("was not found"));
    // An image without the harness labels (the cached Debian base) is stale.
    let engine = DockerEngine::new(DockerEngineConfig {
        image: Some("spr-base:bookworm".into()),
        ..Default::default()
    })
    .unwrap();
    let r = engine.run("result = 1", &Json::null(), &policy()).await;
    assert_eq!(r.exit_code, 125);
    let err = r.error.unwrap();
    assert!(
        err.contains("is stale") && err.contains("cargo xtask image"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gvisor_runtime_where_registered() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    drop(engine);
    let info = docker().info().await.expect("docker info");
    let has_runsc = info.runtimes.unwrap_or_default().contains_key("runsc");
    if !has_runsc {
        // Optional by design: gVisor is covered where it is installed.
        eprintln!(
            "SKIPPED: the runsc runtime is not registered with dockerd (see .ci/docker-setup.sh)"
        );
        return;
    }
    let engine = DockerEngine::new(DockerEngineConfig {
        runtime: Some("runsc".into()),
        pool_size: Some(1),
        ..Default::default()
    })
    .unwrap();
    let r = engine
        .run(
            "import os\nresult = os.uname().release",
            &Json::null(),
            &open_policy(),
        )
        .await;
    assert!(r.ok, "{r:?}");
    let receipt = r.sandbox.as_ref().unwrap();
    assert_eq!(receipt["runtime"], "runsc");
    // gVisor applies the runs' seccomp filter and has no capabilities to keep, but no
    // Landlock: the receipt says so.
    let per_run = receipt.per_run.as_ref().unwrap();
    assert!(
        per_run.seccomp && per_run.capabilities_dropped,
        "{per_run:?}"
    );
    assert_eq!(
        per_run.landlock_abi.is_none(),
        receipt.missing.iter().any(|m| m.name == "landlock"),
        "{receipt:?}"
    );
    // gVisor reports its own kernel version, not the host's.
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_ne!(r.result.to_value().as_str().unwrap(), host.trim());
    let t = std::time::Instant::now();
    let r = engine.run("result = 2", &Json::null(), &policy()).await;
    assert!(r.ok, "{r:?}");
    println!(
        "gVisor warm run: {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    engine.shutdown().await;
}

//! Managed-only administration against a real daemon.

mod common;

use bollard::models::ContainerCreateBody;
use common::*;
use spr_engine_docker::DockerAdminError;
use spr_protocol::Json;
use std::collections::HashMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_lists_and_touches_only_managed_resources() {
    let Some(engine) = engine(config(1)).await else {
        return;
    };
    let r = engine.run("result = 1", &Json::null(), &policy()).await;
    let name = container_of(&r);

    let running = engine.list_containers(false).await.unwrap();
    assert!(
        running
            .iter()
            .any(|c| c.name == name && c.state == "running"),
        "{running:?}"
    );
    let images = engine.list_images().await.unwrap();
    assert!(
        images
            .iter()
            .any(|i| i.repository == "spr-runtime" && i.tag == "latest"),
        "{images:?}"
    );

    // A container spr did not create (even from spr's own image) is refused.
    let d = docker();
    let foreign = d
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            ContainerCreateBody {
                image: Some("spr-runtime:latest".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id;
    let err = engine.kill_container(&foreign).await.unwrap_err();
    assert!(matches!(err, DockerAdminError::NotManaged(_)));
    assert_eq!(
        err.to_string(),
        format!("Container '{foreign}' is not managed by spr and cannot be modified")
    );
    assert!(matches!(
        engine.stop_container(&foreign, 1).await,
        Err(DockerAdminError::NotManaged(_))
    ));
    assert!(matches!(
        engine.stop_container("no-such-container-spr", 1).await,
        Err(DockerAdminError::NotManaged(_))
    ));
    // cleanup_stale leaves the foreign container alone.
    let mut labels = HashMap::new();
    labels.insert("dev.spr.managed".to_string(), "true".to_string());
    labels.insert(
        "dev.spr.owner".to_string(),
        format!("4194305@{}", hostname()),
    );
    let orphan = d
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            ContainerCreateBody {
                image: Some("spr-runtime:latest".into()),
                labels: Some(labels),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id;
    // Any engine that connects meanwhile may remove the orphan first (its owner is
    // gone): what counts is that it is gone, not who removed it.
    let _summary = engine.cleanup_stale().await.unwrap();
    assert!(
        d.inspect_container(&orphan, None).await.is_err(),
        "orphan removed"
    );
    assert!(
        d.inspect_container(&foreign, None).await.is_ok(),
        "foreign kept"
    );
    // Our own running pooled container (owner alive) is kept, and so is the runtime image.
    assert!(engine
        .list_containers(false)
        .await
        .unwrap()
        .iter()
        .any(|c| c.name == name));
    assert!(engine
        .list_images()
        .await
        .unwrap()
        .iter()
        .any(|i| i.repository == "spr-runtime"));

    engine.stop_container(&name, 1).await.expect("stop managed");
    d.remove_container(
        &foreign,
        Some(
            bollard::query_parameters::RemoveContainerOptionsBuilder::default()
                .force(true)
                .build(),
        ),
    )
    .await
    .unwrap();
    engine.shutdown().await;
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

//! Managed-only administration: everything here filters on `dev.spr.managed=true` and
//! refuses to touch anything else.

use crate::image::{LABEL_KIND, LABEL_MANAGED, LABEL_OWNER};
use crate::owner;
use crate::worker::force_remove;
use crate::{CleanupSummary, ContainerInfo, DockerAdminError, ImageInfo};
use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::{
    KillContainerOptions, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    RemoveImageOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use std::collections::{HashMap, HashSet};

fn managed_filter() -> HashMap<String, Vec<String>> {
    let mut f = HashMap::new();
    f.insert("label".to_string(), vec![format!("{LABEL_MANAGED}=true")]);
    f
}

/// Containers inherit their image's labels, and the runtime image is labelled managed
/// (so `list_images` shows it): a container counts as managed only when it also has the
/// owner label, which only the engine sets.
fn managed_container_filter() -> HashMap<String, Vec<String>> {
    let mut f = HashMap::new();
    f.insert(
        "label".to_string(),
        vec![format!("{LABEL_MANAGED}=true"), LABEL_OWNER.to_string()],
    );
    f
}

pub(crate) fn is_managed_container(labels: &HashMap<String, String>) -> bool {
    labels.get(LABEL_MANAGED).is_some_and(|v| v == "true") && labels.contains_key(LABEL_OWNER)
}

fn api(e: bollard::errors::Error) -> DockerAdminError {
    DockerAdminError::Api(e.to_string())
}

pub(crate) async fn list_containers(
    docker: &Docker,
    all_states: bool,
) -> Result<Vec<ContainerInfo>, DockerAdminError> {
    let filters = managed_container_filter();
    let list = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(all_states)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| DockerAdminError::Api(format!("Failed to list containers: {e}")))?;
    Ok(list
        .into_iter()
        .map(|c| ContainerInfo {
            id: short_id(c.id.as_deref().unwrap_or_default()),
            name: c
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image: c.image.unwrap_or_default(),
            state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            status: c.status.unwrap_or_default(),
        })
        .collect())
}

pub(crate) async fn list_images(docker: &Docker) -> Result<Vec<ImageInfo>, DockerAdminError> {
    let filters = managed_filter();
    let list = docker
        .list_images(Some(
            ListImagesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| DockerAdminError::Api(format!("Failed to list images: {e}")))?;
    let now = now_secs();
    let mut out = Vec::new();
    for img in list {
        let tags: Vec<String> = img
            .repo_tags
            .iter()
            .filter(|t| t.as_str() != "<none>:<none>")
            .cloned()
            .collect();
        let rows = if tags.is_empty() {
            vec![("<none>".to_string(), "<none>".to_string())]
        } else {
            tags.iter()
                .map(|t| match t.rsplit_once(':') {
                    Some((r, tag)) => (r.to_string(), tag.to_string()),
                    None => (t.clone(), String::new()),
                })
                .collect()
        };
        for (repository, tag) in rows {
            out.push(ImageInfo {
                id: short_id(&img.id),
                repository,
                tag,
                created_since: human_age(now.saturating_sub(img.created)),
                size: human_size(img.size),
            });
        }
    }
    Ok(out)
}

/// Inspect a container and refuse it unless it carries the managed label.
async fn ensure_managed(docker: &Docker, id: &str) -> Result<(), DockerAdminError> {
    match docker.inspect_container(id, None).await {
        Ok(c) => {
            let managed = c
                .config
                .and_then(|cfg| cfg.labels)
                .is_some_and(|l| is_managed_container(&l));
            if managed {
                Ok(())
            } else {
                Err(DockerAdminError::NotManaged(id.to_string()))
            }
        }
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Err(DockerAdminError::NotManaged(id.to_string())),
        Err(e) => Err(api(e)),
    }
}

pub(crate) async fn stop_container(
    docker: &Docker,
    id: &str,
    timeout_seconds: u64,
) -> Result<(), DockerAdminError> {
    ensure_managed(docker, id).await?;
    docker
        .stop_container(
            id,
            Some(
                StopContainerOptionsBuilder::default()
                    .t(timeout_seconds.min(i32::MAX as u64) as i32)
                    .build(),
            ),
        )
        .await
        .map_err(|e| DockerAdminError::Api(format!("Failed to stop container: {e}")))
}

pub(crate) async fn kill_container(docker: &Docker, id: &str) -> Result<(), DockerAdminError> {
    ensure_managed(docker, id).await?;
    docker
        .kill_container(id, None::<KillContainerOptions>)
        .await
        .map_err(|e| DockerAdminError::Api(format!("Failed to kill container: {e}")))
}

/// A managed container as listed: its ID, state and owner label.
struct Listed {
    id: String,
    state: Option<ContainerSummaryStateEnum>,
    owner: String,
}

async fn managed_containers(docker: &Docker) -> Result<Vec<Listed>, DockerAdminError> {
    let filters = managed_container_filter();
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| DockerAdminError::Api(format!("Failed to list containers: {e}")))?;
    Ok(containers
        .into_iter()
        .filter_map(|c| {
            let owner = c
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_OWNER))
                .cloned()
                .unwrap_or_default();
            Some(Listed {
                id: c.id?,
                state: c.state,
                owner,
            })
        })
        .collect())
}

/// Remove one listed container; true when it is gone (a 404 means it already was: it
/// was auto-removed meanwhile, which is what was asked).
async fn remove_listed(docker: &Docker, c: &Listed) -> bool {
    let paused = c.state == Some(ContainerSummaryStateEnum::PAUSED);
    match force_remove(docker, &c.id, paused).await {
        Ok(()) => true,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => true,
        Err(_) => false,
    }
}

/// Remove the managed containers, in any state, whose owner was a process of this host
/// that is provably gone (see `owner::gone`); never another host's or a live owner's.
/// Returns how many were removed. The engine runs this on its first connection to a
/// daemon.
pub(crate) async fn remove_dead_owners(
    docker: &Docker,
    this_host: &str,
) -> Result<u32, DockerAdminError> {
    let mut removed = 0;
    for c in managed_containers(docker).await? {
        if owner::gone(&c.owner, this_host) && remove_listed(docker, &c).await {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Remove stopped managed containers and the others whose owner process is gone from
/// this host; then remove managed package images and untagged managed images that no
/// container uses. The runtime image and the cached base image are kept: they are what
/// `cargo xtask image` built, and removing them would break the next run.
pub(crate) async fn cleanup_stale(
    docker: &Docker,
    this_host: &str,
) -> Result<CleanupSummary, DockerAdminError> {
    let mut summary = CleanupSummary::default();
    for c in managed_containers(docker).await? {
        // A created container may be one a live engine is starting right now, a paused
        // one one it paused: only a container that has ended is stale whoever owns it.
        let ended = matches!(
            c.state,
            Some(ContainerSummaryStateEnum::EXITED) | Some(ContainerSummaryStateEnum::DEAD)
        );
        if !ended && !owner::gone(&c.owner, this_host) {
            continue;
        }
        if remove_listed(docker, &c).await {
            summary.removed_containers += 1;
        }
    }

    // Images used by any container (managed or not) are never removed.
    let all = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default().all(true).build(),
        ))
        .await
        .map_err(|e| DockerAdminError::Api(format!("Failed to list containers: {e}")))?;
    let used: HashSet<String> = all.into_iter().filter_map(|c| c.image_id).collect();
    let image_filters = managed_filter();
    let images = docker
        .list_images(Some(
            ListImagesOptionsBuilder::default()
                .all(false)
                .filters(&image_filters)
                .build(),
        ))
        .await
        .map_err(|e| DockerAdminError::Api(format!("Failed to list images: {e}")))?;
    for img in images {
        if used.contains(&img.id) {
            continue;
        }
        let kind = img.labels.get(LABEL_KIND).map(String::as_str).unwrap_or("");
        let tagged: Vec<&String> = img
            .repo_tags
            .iter()
            .filter(|t| t.as_str() != "<none>:<none>")
            .collect();
        if kind != "env" && !tagged.is_empty() {
            continue;
        }
        let target = tagged
            .first()
            .map(|t| t.as_str())
            .unwrap_or(img.id.as_str());
        let removed = docker
            .remove_image(
                target,
                Some(RemoveImageOptionsBuilder::default().force(false).build()),
                None,
            )
            .await;
        if removed.is_ok() {
            summary.removed_images += 1;
        }
    }
    Ok(summary)
}

pub(crate) fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// "3 minutes ago", in the style of `docker image ls`.
pub(crate) fn human_age(secs: i64) -> String {
    let (n, unit) = match secs {
        s if s < 60 => return "Less than a minute ago".into(),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s if s < 86_400 * 14 => (s / 86_400, "day"),
        s if s < 86_400 * 60 => (s / (86_400 * 7), "week"),
        s if s < 86_400 * 365 * 2 => (s / (86_400 * 30), "month"),
        s => (s / (86_400 * 365), "year"),
    };
    if n == 1 {
        format!(
            "{} {unit} ago",
            if unit == "hour" { "About an" } else { "1" }
        )
    } else {
        format!("{n} {unit}s ago")
    }
}

/// "174MB", in the style of `docker image ls` (decimal units).
pub(crate) fn human_size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        return format!("{bytes}B");
    }
    let number = if v < 10.0 {
        let t = format!("{v:.3}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.0}")
    };
    format!("{number}{}", units[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(human_age(5), "Less than a minute ago");
        assert_eq!(human_age(180), "3 minutes ago");
        assert_eq!(human_age(3700), "About an hour ago");
        assert_eq!(human_size(174_000_000), "174MB");
        assert_eq!(human_size(1_500_000), "1.5MB");
        assert_eq!(human_size(999), "999B");
    }
}

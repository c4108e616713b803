//! Docker admin commands: list, inspect, stop, kill and clean up spr-managed containers
//! and images. The engine refuses anything that is not labelled as spr-managed, so
//! these commands never touch other Docker resources.

use crate::engine_opts::DockerConnOpts;
use crate::error::{CliError, Exit};
use crate::output::{self, Table};
use clap::{Args, Subcommand};
use spr_core::{ContainerInfo, DockerAdminError, DockerEngine};

#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// List spr-managed containers, in every state (running, exited, ...).
    Containers {
        /// Only running containers.
        #[arg(long, conflicts_with = "all")]
        running: bool,
        /// Every state (the default; kept for scripts written for the original).
        #[arg(long)]
        all: bool,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// List spr-managed images.
    Images {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ContainerArgs {
    /// Container id (or a prefix of it) or exact name.
    #[arg(value_name = "ID", value_parser = non_empty)]
    pub id: String,
    /// Print a JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum StopCommand {
    /// Stop one spr-managed container.
    Container {
        #[arg(value_name = "ID", value_parser = non_empty)]
        id: String,
        /// Seconds to wait after SIGTERM before SIGKILL.
        #[arg(long, value_name = "N", default_value_t = 10)]
        timeout_seconds: u64,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Stop every running spr-managed container.
    All {
        /// Seconds to wait after SIGTERM before SIGKILL.
        #[arg(long, value_name = "N", default_value_t = 10)]
        timeout_seconds: u64,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KillCommand {
    /// Kill one spr-managed container (SIGKILL).
    Container {
        #[arg(value_name = "ID", value_parser = non_empty)]
        id: String,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Print the summary as a JSON object.
    #[arg(long)]
    pub json: bool,
}

/// An empty id would prefix-match every container.
fn non_empty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s.to_string())
    }
}

/// Unreachable daemon: infrastructure (125); a refusal or a failed operation: 1.
fn admin_error(what: &str, err: DockerAdminError) -> CliError {
    let exit = match err {
        DockerAdminError::Unreachable(_) => Exit::Infrastructure,
        _ => Exit::Failed,
    };
    CliError::new(exit, what.to_string()).caused_by(err)
}

pub async fn list(command: ListCommand, conn: &DockerConnOpts) -> Result<Exit, CliError> {
    let engine = conn.admin_engine()?;
    match command {
        ListCommand::Containers { running, json, .. } => {
            let containers = engine
                .list_containers(!running)
                .await
                .map_err(|e| admin_error("cannot list managed containers", e))?;
            if json {
                output::json(&containers);
            } else if containers.is_empty() {
                output::stdout("No managed containers.\n");
            } else {
                let mut table = Table::new(&["ID", "NAME", "IMAGE", "STATE", "STATUS"]);
                for c in &containers {
                    table.row(vec![
                        short_id(&c.id),
                        c.name.clone(),
                        c.image.clone(),
                        c.state.clone(),
                        c.status.clone(),
                    ]);
                }
                output::stdout(&table.render());
            }
        }
        ListCommand::Images { json } => {
            let images = engine
                .list_images()
                .await
                .map_err(|e| admin_error("cannot list managed images", e))?;
            if json {
                output::json(&images);
            } else if images.is_empty() {
                output::stdout("No managed images.\n");
            } else {
                let mut table = Table::new(&["ID", "REPOSITORY", "TAG", "CREATED", "SIZE"]);
                for i in &images {
                    table.row(vec![
                        short_id(&i.id),
                        i.repository.clone(),
                        i.tag.clone(),
                        i.created_since.clone(),
                        i.size.clone(),
                    ]);
                }
                output::stdout(&table.render());
            }
        }
    }
    Ok(Exit::Ok)
}

/// Docker's 12-character short id, without a `sha256:` prefix.
fn short_id(id: &str) -> String {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.chars().take(12).collect()
}

/// The original's rule: the first managed container whose id starts with `query` or
/// whose name is `query` (Docker names may carry a leading `/`).
fn find<'a>(containers: &'a [ContainerInfo], query: &str) -> Option<&'a ContainerInfo> {
    containers.iter().find(|c| {
        c.id.starts_with(query) || c.name == query || c.name.trim_start_matches('/') == query
    })
}

pub async fn container(args: ContainerArgs, conn: &DockerConnOpts) -> Result<Exit, CliError> {
    let engine = conn.admin_engine()?;
    let containers = engine
        .list_containers(true)
        .await
        .map_err(|e| admin_error("cannot list managed containers", e))?;
    let Some(found) = find(&containers, &args.id) else {
        return Err(CliError::failed(format!(
            "No managed container matched '{}'",
            args.id
        )));
    };
    if args.json {
        output::json(found);
    } else {
        output::stdout(&format!(
            "id:      {}\nname:    {}\nimage:   {}\nstate:   {}\nstatus:  {}\n",
            found.id, found.name, found.image, found.state, found.status
        ));
    }
    Ok(Exit::Ok)
}

pub async fn stop(command: StopCommand, conn: &DockerConnOpts) -> Result<Exit, CliError> {
    let engine = conn.admin_engine()?;
    match command {
        StopCommand::Container {
            id,
            timeout_seconds,
            json,
        } => {
            engine
                .stop_container(&id, timeout_seconds)
                .await
                .map_err(|e| admin_error(&format!("cannot stop container '{id}'"), e))?;
            if json {
                output::json(
                    &serde_json::json!({ "stopped": [id], "timeout_seconds": timeout_seconds }),
                );
            } else {
                output::stdout(&format!("Stopped container {id}\n"));
            }
            Ok(Exit::Ok)
        }
        StopCommand::All {
            timeout_seconds,
            json,
        } => stop_all(&engine, timeout_seconds, json).await,
    }
}

/// Stops every running managed container; one that fails does not keep the others
/// running, but makes the command fail after all were tried.
async fn stop_all(
    engine: &DockerEngine,
    timeout_seconds: u64,
    json: bool,
) -> Result<Exit, CliError> {
    let running: Vec<ContainerInfo> = engine
        .list_containers(false)
        .await
        .map_err(|e| admin_error("cannot list managed containers", e))?
        .into_iter()
        .filter(|c| c.state == "running")
        .collect();
    let mut stopped = Vec::new();
    let mut first_error = None;
    for c in &running {
        match engine.stop_container(&c.id, timeout_seconds).await {
            Ok(()) => stopped.push(c.id.clone()),
            Err(e) => {
                output::stderr(&format!("error: cannot stop container '{}': {e}\n", c.id));
                first_error.get_or_insert((c.id.clone(), e));
            }
        }
    }
    if json {
        output::json(
            &serde_json::json!({ "stopped": stopped, "timeout_seconds": timeout_seconds }),
        );
    } else if running.is_empty() {
        output::stdout("No running managed containers to stop.\n");
    } else {
        output::stdout(&format!(
            "Stopped {} managed container(s) with timeout {timeout_seconds}s\n",
            stopped.len()
        ));
    }
    match first_error {
        None => Ok(Exit::Ok),
        Some((id, e)) => Err(admin_error(&format!("cannot stop container '{id}'"), e)),
    }
}

pub async fn kill(command: KillCommand, conn: &DockerConnOpts) -> Result<Exit, CliError> {
    let engine = conn.admin_engine()?;
    let KillCommand::Container { id, json } = command;
    engine
        .kill_container(&id)
        .await
        .map_err(|e| admin_error(&format!("cannot kill container '{id}'"), e))?;
    if json {
        output::json(&serde_json::json!({ "killed": [id] }));
    } else {
        output::stdout(&format!("Killed container {id}\n"));
    }
    Ok(Exit::Ok)
}

pub async fn cleanup(args: CleanupArgs, conn: &DockerConnOpts) -> Result<Exit, CliError> {
    let engine = conn.admin_engine()?;
    let summary = engine
        .cleanup_stale()
        .await
        .map_err(|e| admin_error("cannot clean up managed resources", e))?;
    if args.json {
        output::json(&summary);
    } else {
        output::stdout(&format!(
            "Removed {} stale managed container(s) and {} unused managed image(s)\n",
            summary.removed_containers, summary.removed_images
        ));
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, name: &str) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            name: name.into(),
            image: "img".into(),
            state: "running".into(),
            status: "Up".into(),
        }
    }

    #[test]
    fn find_matches_an_id_prefix_or_an_exact_name() {
        let all = [info("abc123", "spr-one"), info("def456", "/spr-two")];
        assert_eq!(find(&all, "abc").unwrap().id, "abc123");
        assert_eq!(find(&all, "spr-two").unwrap().id, "def456");
        assert!(find(&all, "spr").is_none());
    }
}

//! Engine options shared by `run` and `serve`, the global Docker connection options, and
//! the engine they build.

use crate::error::CliError;
use clap::{Args, ValueEnum};
use spr_core::{
    DockerEngine, DockerEngineConfig, Engine, LocalEngine, LocalEngineConfig, RunnerPolicy,
    SandboxMode, VenvManager,
};
use std::path::PathBuf;
use std::sync::Arc;

/// Which engine runs the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// Warm Python workers on this machine, in a managed venv.
    Local,
    /// A warm pool of hardened, spr-managed Docker containers.
    Docker,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Local => "local",
            EngineKind::Docker => "docker",
        }
    }
}

/// `--venv-manager`: mirrors `VenvManager` so clap can list the choices in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VenvManagerArg {
    /// uv when it is on PATH, else python -m venv.
    Auto,
    Uv,
    Python,
}

impl From<VenvManagerArg> for VenvManager {
    fn from(arg: VenvManagerArg) -> Self {
        match arg {
            VenvManagerArg::Auto => VenvManager::Auto,
            VenvManagerArg::Uv => VenvManager::Uv,
            VenvManagerArg::Python => VenvManager::Python,
        }
    }
}

/// `--sandbox`: mirrors `SandboxMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SandboxArg {
    /// Apply every kernel protection this machine supports; the receipt lists the rest.
    Auto,
    /// Only the harness's own limits (rlimits, audit hooks): for comparison and debugging.
    Off,
    /// Refuse to run unless every protection is available.
    Require,
}

impl From<SandboxArg> for SandboxMode {
    fn from(arg: SandboxArg) -> Self {
        match arg {
            SandboxArg::Auto => SandboxMode::Auto,
            SandboxArg::Off => SandboxMode::Off,
            SandboxArg::Require => SandboxMode::Require,
        }
    }
}

/// Where the Docker daemon is. Global: accepted before or after the subcommand.
///
/// The original's conflict rules are enforced by clap so they are usage errors (exit 2)
/// rather than the original's `ValueError` traceback; `--docker-host` together with
/// `--ssh-host` stays allowed (ssh wins), as it was.
#[derive(Debug, Clone, Default, Args)]
pub struct DockerConnOpts {
    /// Docker context to use (from the Docker context store).
    #[arg(long, global = true, value_name = "NAME", conflicts_with_all = ["docker_host", "ssh_host"], help_heading = "Docker connection")]
    pub docker_context: Option<String>,
    /// Docker daemon address: unix://, tcp://, ssh://user@host.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        help_heading = "Docker connection"
    )]
    pub docker_host: Option<String>,
    /// Reach the Docker daemon over SSH on this host.
    #[arg(
        long,
        global = true,
        value_name = "HOST",
        help_heading = "Docker connection"
    )]
    pub ssh_host: Option<String>,
    /// SSH user (requires --ssh-host).
    #[arg(
        long,
        global = true,
        value_name = "USER",
        requires = "ssh_host",
        help_heading = "Docker connection"
    )]
    pub ssh_user: Option<String>,
    /// SSH port (requires --ssh-host).
    #[arg(
        long,
        global = true,
        value_name = "PORT",
        requires = "ssh_host",
        help_heading = "Docker connection"
    )]
    pub ssh_port: Option<u16>,
    /// SSH private key file (requires --ssh-host).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        requires = "ssh_host",
        help_heading = "Docker connection"
    )]
    pub ssh_key_path: Option<PathBuf>,
}

impl DockerConnOpts {
    fn given(&self) -> Option<&'static str> {
        if self.docker_context.is_some() {
            Some("--docker-context")
        } else if self.docker_host.is_some() {
            Some("--docker-host")
        } else if self.ssh_host.is_some() {
            Some("--ssh-host")
        } else {
            None
        }
    }

    /// A Docker engine configuration with these connection settings and defaults for the rest.
    pub fn docker_config(&self) -> DockerEngineConfig {
        DockerEngineConfig {
            docker_host: self.docker_host.clone(),
            docker_context: self.docker_context.clone(),
            ssh_host: self.ssh_host.clone(),
            ssh_user: self.ssh_user.clone(),
            ssh_port: self.ssh_port,
            ssh_key_path: self.ssh_key_path.clone(),
            ..DockerEngineConfig::default()
        }
    }

    /// A Docker engine for the admin commands and `doctor`. `new` does no IO, so an
    /// error here is always about the options.
    pub fn admin_engine(&self) -> Result<DockerEngine, CliError> {
        DockerEngine::new(self.docker_config())
            .map_err(|e| CliError::usage("invalid Docker connection options").caused_by(e))
    }
}

/// Options that pick and configure the engine of `run` and `serve`.
#[derive(Debug, Clone, Args)]
pub struct EngineOpts {
    /// Engine that runs the code.
    #[arg(long, value_enum, default_value_t = EngineKind::Local)]
    pub engine: EngineKind,

    /// Venv folder of the local engine (created when missing) [default: $SPR_VENV_DIR,
    /// else $XDG_CACHE_HOME/spr/venv, else ~/.cache/spr/venv].
    #[arg(long, value_name = "DIR", help_heading = "Local engine")]
    pub venv_dir: Option<PathBuf>,
    /// How a missing venv is created [default: auto].
    #[arg(
        long,
        value_enum,
        value_name = "MANAGER",
        help_heading = "Local engine"
    )]
    pub venv_manager: Option<VenvManagerArg>,
    /// Pinned package (name==version) to install in the venv; repeatable.
    #[arg(long = "package", value_name = "SPEC", help_heading = "Local engine")]
    pub packages: Vec<String>,
    /// Kernel sandbox of the local workers [default: auto].
    #[arg(long, value_enum, value_name = "MODE", help_heading = "Local engine")]
    pub sandbox: Option<SandboxArg>,
    /// Module to import once in every warm worker (e.g. pandas), so runs fork with it
    /// loaded; each run still imports it itself, under its policy. Repeatable.
    #[arg(long = "preload", value_name = "MOD")]
    pub preload: Vec<String>,
    /// Python to run in every warm worker after the preloads, before any request (e.g.
    /// 'import pandas as pd; pd.DataFrame({"a": [1]}).a.sum()'): what the modules set up
    /// on first use is then ready in every run, and the pages it writes are copied while
    /// each run's process waits. It runs twice at start (the second time to learn those
    /// pages). Operator code, with the worker's privileges: never a caller's input.
    #[arg(long, value_name = "CODE")]
    pub warmup: Option<String>,
    /// Number of warm workers (containers for --engine docker), at least 1 [default:
    /// min(cores, 4); spr run: 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub pool_size: Option<u16>,
    /// Sessions that may be open at once (each holds a sandboxed interpreter of its
    /// own); more are refused until one is closed or idles past its TTL [default: 16].
    /// Only for the servers: spr serve and spr mcp.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_sessions: Option<u16>,

    /// Image to run (default: the runtime image built by `cargo xtask image`).
    #[arg(long, value_name = "IMAGE", help_heading = "Docker engine")]
    pub image: Option<String>,
    /// Pinned package (name==version) baked into a derived image; repeatable.
    #[arg(
        long = "docker-package",
        value_name = "SPEC",
        help_heading = "Docker engine"
    )]
    pub docker_packages: Vec<String>,
}

impl EngineOpts {
    /// Refuse options that the chosen engine would ignore: silently ignored options were
    /// one of the original's traps (its ssh_port did nothing).
    pub fn check(&self, conn: &DockerConnOpts) -> Result<(), CliError> {
        let ignored = match self.engine {
            EngineKind::Local => {
                if self.image.is_some() {
                    Some(("--image", "docker"))
                } else if !self.docker_packages.is_empty() {
                    Some(("--docker-package", "docker"))
                } else {
                    conn.given().map(|flag| (flag, "docker"))
                }
            }
            EngineKind::Docker => {
                if self.venv_dir.is_some() {
                    Some(("--venv-dir", "local"))
                } else if self.venv_manager.is_some() {
                    Some(("--venv-manager", "local"))
                } else if !self.packages.is_empty() {
                    Some(("--package", "local"))
                } else if self.sandbox.is_some() {
                    Some(("--sandbox", "local"))
                } else {
                    None
                }
            }
        };
        match ignored {
            Some(("--package", _)) => Err(CliError::usage(
                "--package only applies to --engine local; use --docker-package with --engine docker",
            )),
            Some((flag, engine)) => Err(CliError::usage(format!(
                "{flag} only applies to --engine {engine}"
            ))),
            None => self.check_preload_and_warmup(),
        }
    }

    /// `--preload` names and `--warmup` code, refused before anything starts (a server
    /// would otherwise serve, and fail every request with the same error), and the way
    /// `build` would refuse them: exit 125 for the local engine (its contract, from when
    /// `new` prepared the venv), a usage error for the Docker engine's options.
    fn check_preload_and_warmup(&self) -> Result<(), CliError> {
        let refused = |cause: Box<dyn std::error::Error + Send + Sync>| match self.engine {
            EngineKind::Local => {
                CliError::infrastructure("the local engine could not be prepared").caused_by(cause)
            }
            EngineKind::Docker => CliError::usage("invalid Docker engine options").caused_by(cause),
        };
        spr_protocol::validate_preload(&self.preload).map_err(|e| refused(e.into()))?;
        spr_protocol::validate_warmup(self.warmup.as_deref()).map_err(|e| refused(e.into()))
    }

    /// Build the engine, ready to run: a local engine is prepared here (its venv
    /// created and its packages installed when missing), so that a failure there is
    /// the command's; a Docker engine contacts its daemon on first use. `default_pool`
    /// applies when `--pool-size` is not given (`run` needs a single worker, `serve` a
    /// pool).
    pub async fn build(
        &self,
        conn: &DockerConnOpts,
        default_pool: Option<usize>,
    ) -> Result<Arc<dyn Engine>, CliError> {
        let pool_size = self.pool_size.map(usize::from).or(default_pool);
        let max_sessions = self.max_sessions.map(usize::from);
        match self.engine {
            EngineKind::Local => {
                let venv_dir = match &self.venv_dir {
                    Some(dir) => dir.clone(),
                    None => default_venv_dir().ok_or_else(|| {
                        CliError::usage(
                            "cannot choose a venv folder: pass --venv-dir or set SPR_VENV_DIR (HOME is not set)",
                        )
                    })?,
                };
                let mut config = LocalEngineConfig::new(venv_dir);
                if let Some(manager) = self.venv_manager {
                    config.venv_manager = manager.into();
                }
                config.packages = self.packages.clone();
                config.preload = self.preload.clone();
                config.warmup = self.warmup.clone();
                if let Some(mode) = self.sandbox {
                    config.sandbox = mode.into();
                }
                config.pool_size = pool_size;
                config.max_sessions = max_sessions;
                // Refused options are reported as they were when `new` prepared the
                // venv too: the exit code (125) is a contract.
                let not_prepared = |e| {
                    CliError::infrastructure("the local engine could not be prepared").caused_by(e)
                };
                let engine = LocalEngine::new(config).map_err(not_prepared)?;
                engine.prepare().await.map_err(not_prepared)?;
                Ok(Arc::new(engine))
            }
            EngineKind::Docker => {
                let config = DockerEngineConfig {
                    image: self.image.clone(),
                    packages: self.docker_packages.clone(),
                    preload: self.preload.clone(),
                    warmup: self.warmup.clone(),
                    pool_size,
                    max_sessions,
                    ..conn.docker_config()
                };
                let engine = DockerEngine::new(config)
                    .map_err(|e| CliError::usage("invalid Docker engine options").caused_by(e))?;
                Ok(Arc::new(engine))
            }
        }
    }

    /// Whether a server starts the engine's pool before its first request: the local
    /// engine's workers, yes; Docker containers only with a `--preload` or `--warmup`
    /// (the operator asked for warm containers, and one that fails them must stop the
    /// server at start rather than fail every request). Otherwise the runs that need
    /// containers start them: a server does not fill a daemon with containers it may
    /// never use.
    pub fn warms_up(&self) -> bool {
        self.engine == EngineKind::Local || !self.preload.is_empty() || self.warmup.is_some()
    }

    /// How many runs `serve` keeps in flight: the engine's pool, so requests queue in
    /// the server rather than inside the engine.
    pub fn concurrency(&self) -> usize {
        match self.pool_size {
            Some(n) => usize::from(n),
            None => spr_core::default_pool_size(),
        }
    }
}

/// `$SPR_VENV_DIR`, else `$XDG_CACHE_HOME/spr/venv`, else `~/.cache/spr/venv`.
pub fn default_venv_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("SPR_VENV_DIR") {
        return Some(PathBuf::from(dir));
    }
    // The XDG spec says relative values are invalid and must be ignored.
    if let Some(cache) = var("XDG_CACHE_HOME").map(PathBuf::from) {
        if cache.is_absolute() {
            return Some(cache.join("spr").join("venv"));
        }
    }
    var("HOME").map(|home| PathBuf::from(home).join(".cache").join("spr").join("venv"))
}

/// Start the engine's warm workers now (for the runs of `policy`, the server's default),
/// so the first requests do not pay for them. A
/// failure that may pass is a warning (each run reports it in its own result); one of the
/// operator's `--preload` or `--warmup`, which every worker would repeat, is the error.
pub async fn warm_up(engine: &dyn Engine, policy: &RunnerPolicy) -> Result<(), CliError> {
    let Err(e) = engine.warm_up_for(policy).await else {
        return Ok(());
    };
    if e.is_preload_failure() {
        return Err(CliError::infrastructure("the --preload or --warmup failed").caused_by(e));
    }
    crate::output::stderr(&format!(
        "spr: warning: could not warm up workers: {}\n",
        spr_protocol::message_with_causes(&e)
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_of_the_other_engine_are_refused() {
        let opts = EngineOpts {
            engine: EngineKind::Local,
            venv_dir: None,
            venv_manager: None,
            packages: vec![],
            sandbox: None,
            preload: vec![],
            warmup: None,
            pool_size: None,
            max_sessions: None,
            image: Some("x".into()),
            docker_packages: vec![],
        };
        let err = opts.check(&DockerConnOpts::default()).unwrap_err();
        assert_eq!(err.to_string(), "--image only applies to --engine docker");
    }
}

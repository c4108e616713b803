//! `cargo xtask image`: build the Docker runtime image that spr's DockerEngine runs, or
//! (`--server`, see server.rs) the image that serves spr's HTTP API.
//!
//! The image holds python3 and the harness at `/opt/spr/spr_harness.py`, runs as uid
//! 65534, and carries labels with the protocol version and harness hash so the engine
//! can refuse a stale copy. Two ways to get python3:
//! - `--dockerfile`: `FROM python:3.11-slim`, where a registry is reachable;
//! - `--offline`: a Debian root filesystem made by `debootstrap`, imported with
//!   `docker import` and cached as its own image, so a harness change only re-adds the
//!   small harness layer.
//!
//! Without either flag the Dockerfile path is tried first and the offline path is used
//! when the base image cannot be pulled. The docker CLI is fine here (build time only);
//! the engine itself never shells out to it.

mod server;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The tag the engine uses when no image is configured (keep in sync with
/// `spr_engine_docker::DEFAULT_IMAGE`).
pub const DEFAULT_TAG: &str = "spr-runtime:latest";
const PYTHON_BASE: &str = "python:3.11-slim";
const DEBIAN_SUITE: &str = "bookworm";
const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";
/// Packages of the offline root filesystem. pip is there so the engine can derive
/// images with pinned packages from this one.
const DEBIAN_PACKAGES: &str = "python3,python3-pip,ca-certificates";
const HARNESS_DIR: &str = "/opt/spr";
const NOBODY: &str = "65534:65534";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Auto,
    Offline,
    Dockerfile,
}

#[derive(Debug)]
struct Options {
    mode: Mode,
    tag: String,
    rebuild_base: bool,
    /// `--server`: the HTTP server image, with this spr binary in it.
    server: Option<server::Binary>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut opts = Options {
        mode: Mode::Auto,
        tag: String::new(),
        rebuild_base: false,
        server: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--offline" => opts.mode = Mode::Offline,
            "--dockerfile" => opts.mode = Mode::Dockerfile,
            "--rebuild-base" => opts.rebuild_base = true,
            "--server" => {
                opts.server.get_or_insert(server::Binary::Release);
            }
            "--debug" => opts.server = Some(server::Binary::Debug),
            "--binary" => {
                let path = it
                    .next()
                    .ok_or("--binary needs the path of an spr binary")?;
                opts.server = Some(server::Binary::Path(PathBuf::from(path)));
            }
            "--tag" => {
                opts.tag = it
                    .next()
                    .ok_or("--tag needs a value, for example --tag spr-runtime:latest")?
                    .clone()
            }
            "-h" | "--help" => {
                println!("{}", HELP);
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}'\n\n{HELP}")),
        }
    }
    if opts.tag.is_empty() {
        opts.tag = match opts.server {
            Some(_) => server::DEFAULT_TAG.to_string(),
            None => DEFAULT_TAG.to_string(),
        };
    }
    Ok(opts)
}

const HELP: &str = "\
cargo xtask image [--offline|--dockerfile] [--tag TAG] [--rebuild-base]
cargo xtask image --server [--debug | --binary PATH] [--offline|--dockerfile] [--tag TAG]

Build spr's Docker runtime image (python3 + the harness, uid 65534, labelled with the
protocol version and harness hash), or with --server the image that serves the HTTP API
(`spr serve --http 0.0.0.0:8080`, the local engine's sandbox inside; docs/DEPLOY.md).
DOCKER_HOST selects the daemon, as for the docker CLI.

  --offline       debootstrap a Debian root filesystem and `docker import` it (no registry needed)
  --dockerfile    build FROM python:3.11-slim (needs a reachable registry)
  --tag TAG       image tag (default spr-runtime:latest)
  --rebuild-base  rebuild the cached offline base image even if it exists
  --server        the HTTP server image (default tag spr-server:latest), with a release build of spr
  --debug         the server image with the debug build of spr (quicker to build; for tests)
  --binary PATH   the server image with this spr binary (built for the image's Debian)";

/// Entry point wired to `cargo xtask image [args]`.
pub fn run(args: &[String]) -> Result<(), String> {
    let opts = parse(args)?;
    docker_ok()?;
    let base = match opts.mode {
        Mode::Dockerfile => pull_python_base()?,
        Mode::Offline => offline_base(opts.rebuild_base)?,
        Mode::Auto => match pull_python_base() {
            Ok(base) => base,
            Err(why) => {
                eprintln!("xtask image: {why}; using the offline (debootstrap) path");
                offline_base(opts.rebuild_base)?
            }
        },
    };
    if let Some(binary) = &opts.server {
        return server::build(&base, binary, &opts.tag);
    }
    build_harness_layer(&base, &opts.tag)?;
    eprintln!(
        "xtask image: built {} (protocol {}, harness {})",
        opts.tag,
        spr_protocol::PROTOCOL_VERSION,
        spr_protocol::harness_hash()
    );
    Ok(())
}

fn docker_ok() -> Result<(), String> {
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map_err(|e| {
            format!("cannot run the docker CLI ({e}); install docker.io (see .ci/docker-setup.sh)")
        })?;
    if !out.status.success() {
        return Err(format!(
            "the Docker daemon is not reachable: {}; start dockerd (see .ci/docker-setup.sh)",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// `docker pull python:3.11-slim`, bounded in time: on machines without a registry the
/// pull can hang on connection attempts, and the offline path should take over quickly.
fn pull_python_base() -> Result<String, String> {
    if inspect_ok(PYTHON_BASE) {
        return Ok(PYTHON_BASE.to_string());
    }
    eprintln!("xtask image: pulling {PYTHON_BASE}");
    let mut child = Command::new("docker")
        .args(["pull", "--quiet", PYTHON_BASE])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("docker pull: {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) if status.success() => return Ok(PYTHON_BASE.to_string()),
            Some(_) => {
                let mut err = String::new();
                if let Some(mut s) = child.stderr.take() {
                    use std::io::Read;
                    let _ = s.read_to_string(&mut err);
                }
                return Err(format!("cannot pull {PYTHON_BASE}: {}", err.trim()));
            }
            None if started.elapsed() > Duration::from_secs(90) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("pulling {PYTHON_BASE} took more than 90 s"));
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn inspect_ok(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn image_label(image: &str, label: &str) -> Option<String> {
    let out = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            &format!("{{{{ index .Config.Labels \"{label}\" }}}}"),
            image,
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The recipe of the offline base; the cached base image is reused while it matches.
fn base_recipe() -> String {
    format!("debootstrap --variant=minbase --include={DEBIAN_PACKAGES} {DEBIAN_SUITE}")
}

fn base_tag() -> String {
    format!("spr-base:{DEBIAN_SUITE}")
}

/// The cached Debian base image, made with debootstrap when missing or outdated.
fn offline_base(rebuild: bool) -> Result<String, String> {
    let tag = base_tag();
    let recipe = base_recipe();
    if !rebuild && image_label(&tag, "dev.spr.base-recipe").as_deref() == Some(recipe.as_str()) {
        eprintln!("xtask image: reusing cached base image {tag}");
        return Ok(tag);
    }
    if Command::new("debootstrap")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return Err(
            "debootstrap is not installed: `apt-get install -y debootstrap` (as root)".into(),
        );
    }
    let root = TempDir::new("spr-rootfs")?;
    eprintln!(
        "xtask image: debootstrap {DEBIAN_SUITE} into {} (about 30-60 s)",
        root.path().display()
    );
    let status = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            &format!("--include={DEBIAN_PACKAGES}"),
            DEBIAN_SUITE,
        ])
        .arg(root.path())
        .arg(DEBIAN_MIRROR)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("debootstrap: {e}"))?;
    if !status.success() {
        return Err(format!(
            "debootstrap failed ({status}); see its output above"
        ));
    }
    // Trim what a runtime never needs, so the import is smaller.
    for dir in [
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
    ] {
        let p = root.path().join(dir);
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::create_dir_all(&p);
    }
    eprintln!("xtask image: docker import as {tag}");
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(root.path())
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("tar: {e}"))?;
    let tar_out = tar.stdout.take().ok_or("tar: no stdout")?;
    let import = Command::new("docker")
        .args([
            "import",
            "--change",
            &format!(
                "LABEL dev.spr.managed=true dev.spr.kind=base dev.spr.base-recipe=\"{recipe}\""
            ),
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8",
            "-",
            &tag,
        ])
        .stdin(tar_out)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("docker import: {e}"))?;
    let tar_status = tar.wait().map_err(|e| e.to_string())?;
    if !tar_status.success() || !import.success() {
        return Err(format!(
            "importing the root filesystem failed (tar {tar_status}, docker import {import})"
        ));
    }
    Ok(tag)
}

/// The Dockerfile of the harness layer (public so tests can check it).
pub fn harness_dockerfile(base: &str) -> String {
    let protocol = spr_protocol::PROTOCOL_VERSION;
    let hash = spr_protocol::harness_hash();
    let file = spr_protocol::HARNESS_FILE_NAME;
    format!(
        "FROM {base}\n\
         COPY {file} {HARNESS_DIR}/{file}\n\
         RUN chmod 0755 {HARNESS_DIR} && chmod 0644 {HARNESS_DIR}/{file} \
         && python3 -c 'import sys; assert sys.version_info >= (3, 8), sys.version'\n\
         ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
         LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1\n\
         USER {NOBODY}\n\
         WORKDIR /tmp\n\
         ENTRYPOINT [\"python3\", \"-I\", \"{HARNESS_DIR}/{file}\"]\n\
         CMD [\"--scratch\", \"/tmp/spr\"]\n\
         LABEL dev.spr.managed=\"true\" dev.spr.kind=\"runtime\" \
         dev.spr.protocol=\"{protocol}\" dev.spr.harness-hash=\"{hash}\"\n"
    )
}

fn build_harness_layer(base: &str, tag: &str) -> Result<(), String> {
    let ctx = TempDir::new("spr-image")?;
    std::fs::write(
        ctx.path().join(spr_protocol::HARNESS_FILE_NAME),
        spr_protocol::HARNESS_SOURCE,
    )
    .map_err(|e| e.to_string())?;
    let dockerfile = ctx.path().join("Dockerfile");
    std::fs::File::create(&dockerfile)
        .and_then(|mut f| f.write_all(harness_dockerfile(base).as_bytes()))
        .map_err(|e| e.to_string())?;
    eprintln!("xtask image: docker build -t {tag} (harness layer on {base})");
    docker_build(ctx.path(), &dockerfile, tag)
}

/// `docker build` of a context that needs no network.
fn docker_build(ctx: &Path, dockerfile: &Path, tag: &str) -> Result<(), String> {
    // The classic builder uses local images as they are and never tries to pull the
    // base, which is what an offline machine needs.
    let status = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        // The layer needs no network; --network none also keeps the build independent
        // of the daemon's bridge.
        .args(["build", "--quiet", "--network", "none", "-t", tag, "-f"])
        .arg(dockerfile)
        .arg(ctx)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("docker build: {e}"))?;
    if !status.success() {
        return Err(format!("docker build of {tag} failed ({status})"));
    }
    Ok(())
}

/// A directory removed on drop (std has none, and xtask keeps its dependencies few).
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Result<Self, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(TempDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_harness_layer_is_labelled_and_unprivileged() {
        let d = harness_dockerfile("spr-base:bookworm");
        assert!(d.starts_with("FROM spr-base:bookworm\n"));
        assert!(d.contains("USER 65534:65534"));
        assert!(d.contains(&format!(
            "dev.spr.harness-hash=\"{}\"",
            spr_protocol::harness_hash()
        )));
        assert!(d.contains("dev.spr.managed=\"true\""));
    }

    #[test]
    fn arguments_parse() {
        let o = parse(&["--offline".into(), "--tag".into(), "x:y".into()]).unwrap();
        assert_eq!(o.mode, Mode::Offline);
        assert_eq!(o.tag, "x:y");
        assert!(parse(&["--bogus".into()]).is_err());
        assert!(parse(&["--tag".into()]).is_err());
        assert_eq!(parse(&[]).unwrap().tag, DEFAULT_TAG);
        let o = parse(&["--server".into(), "--debug".into()]).unwrap();
        assert_eq!(o.tag, server::DEFAULT_TAG);
        assert!(matches!(o.server, Some(server::Binary::Debug)));
    }
}

//! `cargo xtask image --server`: the image that serves spr's HTTP API, with the local
//! engine and its namespace sandbox running inside the container (docs/DEPLOY.md).
//!
//! Built on the same base as the runtime image (python3 from Debian bookworm), so the
//! host's spr binary (built on Debian 12) runs there as it is. The venv is made at build
//! time, so the container can start with a read-only root filesystem; it runs as an
//! unprivileged uid, which the sandbox maps into its own user namespace.

use super::{docker_build, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const DEFAULT_TAG: &str = "spr-server:latest";
/// The uid and gid the server runs as: not 0, and not one of the base's system users.
pub const UID: u32 = 10001;
const VENV: &str = "/opt/spr/venv";
const PORT: u16 = 8080;

/// Which spr binary goes into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binary {
    /// `cargo build --release -p spr-cli`, then target/release/spr.
    Release,
    /// `cargo build -p spr-cli`, then target/debug/spr (what the tests build anyway).
    Debug,
    Path(PathBuf),
}

impl Binary {
    fn resolve(&self) -> Result<PathBuf, String> {
        let root = crate::util::repo_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let (args, path): (&[&str], PathBuf) = match self {
            Binary::Path(path) => return Ok(path.clone()),
            Binary::Release => (
                &["build", "--release", "-p", "spr-cli", "--bin", "spr"],
                target.join("release/spr"),
            ),
            Binary::Debug => (
                &["build", "-p", "spr-cli", "--bin", "spr"],
                target.join("debug/spr"),
            ),
        };
        eprintln!("xtask image: cargo {}", args.join(" "));
        let status = crate::util::cargo()
            .args(args)
            .current_dir(&root)
            .status()
            .map_err(|e| format!("cargo: {e}"))?;
        if !status.success() {
            return Err(format!("cargo {} failed ({status})", args.join(" ")));
        }
        Ok(path)
    }
}

/// The Dockerfile of the server image (public so tests can check it).
pub fn dockerfile(base: &str) -> String {
    let version = env!("CARGO_PKG_VERSION");
    format!(
        "FROM {base}\n\
         COPY spr /usr/local/bin/spr\n\
         RUN chmod 0755 /usr/local/bin/spr \
         && echo 'spr:x:{UID}:{UID}:spr:/home/spr:/usr/sbin/nologin' >> /etc/passwd \
         && echo 'spr:x:{UID}:' >> /etc/group \
         && mkdir -p /home/spr /opt/spr \
         && python3 -m venv --without-pip {VENV} \
         && touch {VENV}.spr-lock \
         && SPR_VENV_DIR={VENV} spr run --sandbox off --venv-manager python -c 'result = 1' > /dev/null \
         && chown -R {UID}:{UID} /home/spr /opt/spr\n\
         ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
         LANG=C.UTF-8 HOME=/home/spr SPR_VENV_DIR={VENV}\n\
         USER {UID}:{UID}\n\
         WORKDIR /home/spr\n\
         EXPOSE {PORT}\n\
         ENTRYPOINT [\"spr\", \"serve\", \"--http\", \"0.0.0.0:{PORT}\", \"--venv-manager\", \"python\"]\n\
         LABEL dev.spr.kind=\"server\" dev.spr.version=\"{version}\" \
         dev.spr.protocol=\"{protocol}\" dev.spr.harness-hash=\"{hash}\"\n",
        protocol = spr_protocol::PROTOCOL_VERSION,
        hash = spr_protocol::harness_hash(),
    )
}

/// Build the server image `tag` on `base` with `binary`.
pub fn build(base: &str, binary: &Binary, tag: &str) -> Result<(), String> {
    let spr = binary.resolve()?;
    check_binary(&spr)?;
    let ctx = TempDir::new("spr-server-image")?;
    std::fs::copy(&spr, ctx.path().join("spr"))
        .map_err(|e| format!("copy {} into the build context: {e}", spr.display()))?;
    let file = ctx.path().join("Dockerfile");
    std::fs::write(&file, dockerfile(base)).map_err(|e| e.to_string())?;
    eprintln!("xtask image: docker build -t {tag} (spr serve --http on {base})");
    docker_build(ctx.path(), &file, tag)?;
    eprintln!("xtask image: built {tag}; run it as docs/DEPLOY.md says (a token and the sandbox's security options)");
    Ok(())
}

fn check_binary(path: &Path) -> Result<(), String> {
    let out = Command::new(path)
        .arg("--version")
        .output()
        .map_err(|e| format!("{} does not run here: {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!("{} --version failed", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_runs_unprivileged_on_8080_with_a_ready_venv() {
        let d = dockerfile("spr-base:bookworm");
        assert!(d.starts_with("FROM spr-base:bookworm\n"));
        assert!(d.contains(&format!("USER {UID}:{UID}")));
        assert!(d.contains(
            "ENTRYPOINT [\"spr\", \"serve\", \"--http\", \"0.0.0.0:8080\", \"--venv-manager\", \"python\"]"
        ));
        assert!(d.contains("python3 -m venv --without-pip /opt/spr/venv"));
        assert!(d.contains("SPR_VENV_DIR=/opt/spr/venv"));
        // Not an spr-managed image: `spr cleanup` must never remove a deployment's image.
        assert!(!d.contains("dev.spr.managed"));
    }
}

//! The managed virtual environment: find Python, create the venv, install pinned packages once.

use crate::config::{LocalEngineConfig, VenvManager};
use crate::engine::LocalEngineError;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Name of the marker recording which package specs a venv was given.
pub(crate) const PACKAGES_MARKER: &str = ".spr_packages.txt";

/// Make sure the venv exists and holds the pinned packages; return its interpreter.
pub(crate) fn prepare(config: &LocalEngineConfig) -> Result<PathBuf, LocalEngineError> {
    let venv_dir = expand_home(&config.venv_dir)?;
    let packages = spr_policy::validate_pinned_packages(&config.packages)
        .map_err(LocalEngineError::InvalidPackage)?;
    std::fs::create_dir_all(&venv_dir).map_err(|source| {
        LocalEngineError::io("create the venv directory", venv_dir.clone(), source)
    })?;
    // Several engines (threads, processes, test binaries) may share one venv: only one
    // of them creates it or installs packages at a time.
    let _lock = lock_venv(&venv_dir)?;
    let python = venv_dir.join("bin").join("python");
    if !python.exists() {
        create_venv(config, &venv_dir)?;
    }
    if !python.exists() {
        return Err(LocalEngineError::VenvBroken {
            path: venv_dir.clone(),
        });
    }
    if !packages.is_empty() {
        install_packages(&venv_dir, &python, &packages)?;
    }
    Ok(python)
}

fn lock_venv(venv_dir: &Path) -> Result<std::fs::File, LocalEngineError> {
    let mut name = venv_dir.file_name().unwrap_or_default().to_os_string();
    name.push(".spr-lock");
    let path = venv_dir.with_file_name(name);
    let io_err = |source| LocalEngineError::io("lock the venv", path.clone(), source);
    let file = match std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
    {
        Ok(file) => file,
        // A venv made ahead of time on a filesystem that is read-only now (a container
        // image with a read-only root): its lock file, opened for reading, locks as well.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            std::fs::File::open(&path).map_err(|_| io_err(e))?
        }
        Err(e) => return Err(io_err(e)),
    };
    // `File::lock` is newer than the declared MSRV; the workspace's toolchain has it.
    #[allow(clippy::incompatible_msrv)]
    file.lock().map_err(io_err)?;
    Ok(file)
}

fn expand_home(dir: &Path) -> Result<PathBuf, LocalEngineError> {
    let text = dir.to_string_lossy();
    if text.trim().is_empty() {
        return Err(LocalEngineError::EmptyVenvDir);
    }
    if let Some(rest) = text.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return Ok(PathBuf::from(home).join(rest));
        }
    }
    Ok(dir.to_path_buf())
}

/// Look a program up on PATH the way a shell would.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The interpreter used to create venvs: the configured one, else `python3` on PATH.
pub(crate) fn base_python(config: &LocalEngineConfig) -> Result<PathBuf, LocalEngineError> {
    match &config.python {
        Some(p) if is_executable(p) => Ok(p.clone()),
        Some(p) => Err(LocalEngineError::PythonNotFound {
            looked_for: p.display().to_string(),
        }),
        None => which("python3").or_else(|| which("python")).ok_or_else(|| {
            LocalEngineError::PythonNotFound {
                looked_for: "python3 or python on PATH".into(),
            }
        }),
    }
}

fn create_venv(config: &LocalEngineConfig, venv_dir: &Path) -> Result<(), LocalEngineError> {
    let manager = match config.venv_manager {
        VenvManager::Auto if which("uv").is_some() => VenvManager::Uv,
        VenvManager::Auto => VenvManager::Python,
        m => m,
    };
    let mut cmd = match manager {
        VenvManager::Uv => {
            let uv = which("uv").ok_or(LocalEngineError::UvNotFound)?;
            let mut cmd = Command::new(uv);
            cmd.arg("venv").arg("--quiet");
            if let Ok(python) = base_python(config) {
                cmd.arg("--python").arg(python);
            }
            cmd.arg(venv_dir);
            cmd
        }
        _ => {
            let mut cmd = Command::new(base_python(config)?);
            cmd.arg("-m").arg("venv").arg(venv_dir);
            cmd
        }
    };
    let name = if manager == VenvManager::Uv {
        "uv"
    } else {
        "python"
    };
    run_checked(&mut cmd).map_err(|stderr| LocalEngineError::CreateVenv {
        manager: name,
        stderr,
    })
}

/// A venv made by uv has no pip; it says so in pyvenv.cfg.
fn made_by_uv(venv_dir: &Path) -> bool {
    std::fs::read_to_string(venv_dir.join("pyvenv.cfg"))
        .map(|cfg| cfg.lines().any(|l| l.trim_start().starts_with("uv =")))
        .unwrap_or(false)
}

fn install_packages(
    venv_dir: &Path,
    python: &Path,
    packages: &[String],
) -> Result<(), LocalEngineError> {
    let marker = venv_dir.join(PACKAGES_MARKER);
    let wanted = format!("{}\n", packages.join("\n"));
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    let mut cmd = if made_by_uv(venv_dir) {
        let uv = which("uv").ok_or(LocalEngineError::UvNotFound)?;
        let mut cmd = Command::new(uv);
        cmd.arg("pip")
            .arg("install")
            .arg("--quiet")
            .arg("--python")
            .arg(python);
        cmd
    } else {
        let mut cmd = Command::new(python);
        cmd.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]);
        cmd
    };
    cmd.args(packages);
    run_checked(&mut cmd).map_err(|stderr| LocalEngineError::InstallPackages { stderr })?;
    std::fs::write(&marker, wanted)
        .map_err(|source| LocalEngineError::io("write the package marker", marker, source))
}

/// Run a set-up command; on failure return its stderr (or why it could not start).
fn run_checked(cmd: &mut Command) -> Result<(), String> {
    let output = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("could not start {:?}: {e}", cmd.get_program()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    Err(if stderr.is_empty() {
        format!("exited with {}", output.status)
    } else {
        stderr
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_venv_dir_is_refused() {
        assert!(matches!(
            expand_home(Path::new("  ")),
            Err(LocalEngineError::EmptyVenvDir)
        ));
    }

    #[test]
    fn a_uv_venv_is_recognised_by_its_config() {
        let dir = std::env::temp_dir().join(format!("spr-uvcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pyvenv.cfg"), "home = /usr/bin\nuv = 0.5.1\n").unwrap();
        assert!(made_by_uv(&dir));
        std::fs::write(dir.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        assert!(!made_by_uv(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The Python package's checks: `pip install ./crates/spr-python` into a fresh venv, as a
//! user would, then its pytest suite (`crates/spr-python/tests`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{self, failed, Error};

/// The pytest the suite runs under (pinned: a new release must not change a green CI).
const PYTEST: &str = "pytest==8.3.5";
/// The package's own directory, which pip builds with maturin (its PEP 517 backend).
pub const PACKAGE: &str = "crates/spr-python";

/// How the extension is compiled: the suite does not need an optimised build, the bench does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Dev,
    Release,
}

/// The interpreter venvs are made from: `SPR_PYTHON`, else the system's (the pyenv shim on
/// PATH is slow to start and absent under CI).
fn base_python() -> PathBuf {
    std::env::var_os("SPR_PYTHON")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/python3"), PathBuf::from)
}

/// A venv at `target/spr-python/<name>` with pytest and the package installed by pip;
/// its interpreter.
pub fn install(root: &Path, name: &str, profile: Profile) -> Result<PathBuf, Error> {
    let venv = crate::bench::target_dir(root).join("spr-python").join(name);
    let python = venv.join("bin/python");
    if !python.is_file() {
        util::run(Command::new(base_python()).args(["-m", "venv"]).arg(&venv))?;
    }
    let pip = |cmd: &mut Command| {
        cmd.arg("-m")
            .arg("pip")
            .args(["install", "--quiet", "--disable-pip-version-check"]);
    };
    let mut tools = Command::new(&python);
    pip(&mut tools);
    util::run(tools.arg(PYTEST))?;
    let mut package = Command::new(&python);
    pip(&mut package);
    package
        .args(["--force-reinstall", "--no-deps"])
        .arg(root.join(PACKAGE))
        .current_dir(root);
    if profile == Profile::Dev {
        // maturin's PEP 517 backend takes its build options from here.
        package.env("MATURIN_PEP517_ARGS", "--profile dev");
    }
    util::run(&mut package)?;
    Ok(python)
}

/// Install the package and run its pytest suite.
pub fn suite(root: &Path) -> Result<(), Error> {
    let python = install(root, "test", Profile::Dev)?;
    util::run(
        Command::new(&python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(root.join(PACKAGE).join("tests"))
            .current_dir(root),
    )
    .map_err(|e| failed(format!("the Python package's suite failed: {e}")))
}

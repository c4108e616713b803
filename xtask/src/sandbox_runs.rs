//! The sandbox tests, run twice more by `cargo xtask test`: as an unprivileged user and inside
//! `unshare --user --map-root-user`, so the kernel sandbox is exercised in the three shapes it
//! meets (root, an ordinary user, a one-uid user namespace), not only as root.
//!
//! How the other user gets the tests, whatever directory the checkout lives in (a clone under
//! a 0700 /root is the common CI case): root builds the listed test binaries into a nextest
//! archive, then stages a private copy in the user's home (the archive, the nextest binary, the
//! sources git knows about, a scratch directory) owned by that user. The user runs the archive
//! with `--workspace-remap` to the copied sources; the tests look paths up at run time
//! (`CARGO_MANIFEST_DIR` set by nextest, `SPR_TEST_TMPDIR`, `SPR_TEST_VENV`, `NEXTEST_BIN_EXE_*`,
//! insta's `INSTA_WORKSPACE_ROOT`) before the compile-time ones, so nothing under the original
//! checkout is needed.
//! nextest runs each test in its own process, as the main run does; retries are off (a flaky
//! test is a failing test).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::util::{self, failed, Error};

/// The tests run again as the unprivileged user and inside `unshare --user --map-root-user`:
/// (package, integration test target), one line each. A target listed here that the package
/// does not have is an error, never a silent skip.
pub const SANDBOX_TESTS: &[(&str, &str)] = &[
    // The receipt, the knobs, `require` and honest degradation.
    ("spr-core", "sandbox"),
    // The attack corpus (tests/attacks/) with its host-side checks.
    ("spr-core", "attacks"),
    // Two-run attacks on one worker: nothing of one run reaches the next.
    ("spr-core", "isolation"),
    // Host hygiene: descriptors, host death, the engine's directories, socket families.
    ("spr-core", "hygiene"),
    // Sessions: one long-lived sandboxed interpreter per session, isolated like runs.
    ("spr-core", "sessions"),
    // Files in and out and figures: traversal refused, symlinks never followed, caps.
    ("spr-core", "files"),
    // Preloaded packages: fresh in every run, still under the policy.
    ("spr-core", "preload"),
    // `spr doctor` against the receipt of a real run, for whoever runs the tests.
    ("spr-cli", "doctor"),
    // numpy, pandas, matplotlib and scipy under the policies: library imports, attacks
    // through a library, the process filter, each run's /dev/shm.
    ("spr-core", "datastack"),
];

/// The unprivileged user, created by `.ci/users-setup.sh`; `SPR_CI_USER` names another.
pub const DEFAULT_USER: &str = "spr-ci";

/// Variables the user's run keeps from ours (its environment is otherwise built from scratch:
/// root's PATH, HOME and CARGO_* point at places the user cannot read).
const PASS_ENV: &[&str] = &[
    "CI",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "RUST_LOG",
    "TERM",
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "CARGO_TERM_COLOR",
    "LANG",
    "LC_ALL",
    // The data-stack venv's place, when not the default (it is readable by everyone).
    "SPR_DATASTACK_VENV",
];
/// Prefixes of variables kept as well (the attack corpus's own knobs, `SPR_ATTACK=name`).
const PASS_ENV_PREFIXES: &[&str] = &["SPR_ATTACK"];
/// The user's PATH: Debian's `/usr/bin/python3` first (root's pyenv shims are out of its
/// reach), newuidmap/newgidmap from uidmap, and the staged nextest.
const USER_PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin";

/// Which parts of `cargo xtask test` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Runs {
    /// The suite, then the sandbox runs (the default, what CI runs).
    #[default]
    All,
    /// The suite only (`--no-sandbox-runs`; refused under CI).
    SuiteOnly,
    /// The sandbox runs only (`--sandbox-runs-only`).
    SandboxOnly,
}

pub fn parse_test_args(args: &[String]) -> Result<Runs, String> {
    match args {
        [] => Ok(Runs::All),
        [a] if a == "--no-sandbox-runs" => Ok(Runs::SuiteOnly),
        [a] if a == "--sandbox-runs-only" => Ok(Runs::SandboxOnly),
        _ => Err(format!(
            "`test` takes at most one of --no-sandbox-runs, --sandbox-runs-only (got: {})",
            args.join(" ")
        )),
    }
}

pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// What the sandbox runs produced: the runs that failed, by header.
#[derive(Debug, Default)]
pub struct Outcome {
    pub failures: Vec<String>,
}

/// A run that cannot happen here: a failure under CI (recorded, so the other run still
/// happens and the log shows both), a loud skip otherwise.
fn unavailable(ci: bool, what: &str, why: &str, outcome: &mut Outcome) {
    if ci {
        eprintln!("\nerror: {what}: {why}. Under CI=true the sandbox runs are mandatory.");
        outcome
            .failures
            .push(format!("{what}: {why} (mandatory under CI=true)"));
        return;
    }
    eprintln!();
    eprintln!("!!!! SKIPPED: {what}: {why}.");
    eprintln!("!!!! (Under CI=true this is an error; `--no-sandbox-runs` silences it locally.)");
    eprintln!();
}

fn header(text: &str) {
    let rule = "=".repeat(text.len().clamp(40, 100));
    eprintln!("\n{rule}\n{text}\n{rule}");
}

/// Builds the listed tests and runs them as the unprivileged user and inside
/// `unshare --user --map-root-user`. Err only for what stops both runs (a listed target that
/// does not exist, a failed build); a failing run, or under CI a run that cannot happen (no
/// such user, no `unshare`), is collected in the outcome, so both runs always report.
pub fn run(root: &Path) -> Result<Outcome, Error> {
    let ci = under_ci();
    let metadata = cargo_metadata(root)?;
    check_targets(&metadata, SANDBOX_TESTS).map_err(failed)?;
    let mut outcome = Outcome::default();
    let Some(nextest) = find_nextest() else {
        unavailable(
            ci,
            "the sandbox runs",
            "cargo-nextest is not installed (`cargo install --locked cargo-nextest`)",
            &mut outcome,
        );
        return Ok(outcome);
    };
    let target_dir = metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let archive = build_archive(root, &target_dir)?;
    let filter = filterset(SANDBOX_TESTS);
    let list = SANDBOX_TESTS
        .iter()
        .map(|(p, t)| format!("{p}::{t}"))
        .collect::<Vec<_>>()
        .join(", ");

    let user_name = std::env::var("SPR_CI_USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_USER.to_string());
    let euid = effective_uid()?;
    match lookup_user(&user_name)? {
        None => unavailable(
            ci,
            &format!("sandbox tests as {user_name}"),
            &format!("there is no user {user_name} (create it with `bash .ci/users-setup.sh`)"),
            &mut outcome,
        ),
        Some(_) if euid != 0 => unavailable(
            ci,
            &format!("sandbox tests as {user_name}"),
            &format!("xtask runs as uid {euid}, and only root can switch to {user_name}"),
            &mut outcome,
        ),
        Some(user) => {
            let title = format!("sandbox tests as {} (uid {}): {list}", user.name, user.uid);
            header(&title);
            if let Err(e) = run_as_user(root, &user, &nextest, &archive, &filter) {
                eprintln!("{e}");
                outcome.failures.push(title);
            }
        }
    }

    match unshare_works() {
        Err(why) => unavailable(
            ci,
            "sandbox tests inside unshare --user --map-root-user",
            &why,
            &mut outcome,
        ),
        Ok(()) => {
            let title = format!(
                "sandbox tests inside unshare --user --map-root-user (outer uid {euid}): {list}"
            );
            header(&title);
            let mut cmd = Command::new("unshare");
            cmd.args(["--user", "--map-root-user", "--"])
                .arg(&nextest)
                .args(nextest_run_args(&archive, root, &filter))
                .current_dir(root);
            if let Err(e) = util::run(&mut cmd) {
                eprintln!("{e}");
                outcome.failures.push(title);
            }
        }
    }
    Ok(outcome)
}

// ---------------------------------------------------------------------------------------------------------
// The test list

fn cargo_metadata(root: &Path) -> Result<Value, Error> {
    let text = util::output(
        util::cargo()
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(root),
    )?;
    serde_json::from_str(&text).map_err(|e| failed(format!("cargo metadata: bad JSON: {e}")))
}

/// Every listed (package, test target) exists, as an integration test of that package.
pub fn check_targets(metadata: &Value, list: &[(&str, &str)]) -> Result<(), String> {
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let mut problems = Vec::new();
    for (package, target) in list {
        let Some(pkg) = packages.iter().find(|p| p["name"] == *package) else {
            problems.push(format!("there is no workspace package `{package}`"));
            continue;
        };
        let tests: BTreeSet<&str> = pkg["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "test"))
            })
            .filter_map(|t| t["name"].as_str())
            .collect();
        if !tests.contains(target) {
            problems.push(format!(
                "`{package}` has no integration test `{target}` (add tests/{target}.rs to it or drop \
                 the line; its tests: {})",
                tests.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "SANDBOX_TESTS in xtask/src/sandbox_runs.rs lists tests that do not exist:\n  {}",
            problems.join("\n  ")
        ))
    }
}

/// The nextest filterset selecting exactly the listed binaries.
pub fn filterset(list: &[(&str, &str)]) -> String {
    list.iter()
        .map(|(p, t)| format!("binary_id({p}::{t})"))
        .collect::<Vec<_>>()
        .join(" | ")
}

// ---------------------------------------------------------------------------------------------------------
// Build and run

fn find_nextest() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("cargo-nextest"))
        .find(|p| p.is_file())
}

/// `cargo nextest archive` of the listed targets. `--workspace` keeps the feature set of the
/// main run (so nothing is rebuilt); `--test` narrows the archive to the listed targets.
fn build_archive(root: &Path, target_dir: &Path) -> Result<PathBuf, Error> {
    let dir = target_dir.join("xtask");
    fs::create_dir_all(&dir)
        .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
    let archive = dir.join("sandbox-tests.tar.zst");
    let mut cmd = util::cargo();
    cmd.args(["nextest", "archive", "--workspace"]);
    let names: BTreeSet<&str> = SANDBOX_TESTS.iter().map(|(_, t)| *t).collect();
    for name in names {
        cmd.args(["--test", name]);
    }
    cmd.arg("--archive-file").arg(&archive).current_dir(root);
    util::run(&mut cmd)?;
    Ok(archive)
}

/// `nextest run` of the archive against the sources at `workspace`: no retries, every failure
/// reported, and an empty selection is a failure too.
fn nextest_run_args(archive: &Path, workspace: &Path, filter: &str) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["nextest", "run", "--archive-file"]
        .map(OsString::from)
        .into();
    args.push(archive.into());
    args.push("--workspace-remap".into());
    args.push(workspace.into());
    for a in [
        "--no-fail-fast",
        "--retries",
        "0",
        "--no-tests",
        "fail",
        "-E",
        filter,
    ] {
        args.push(a.into());
    }
    args
}

/// `unshare --user --map-root-user true` succeeds, or why not.
fn unshare_works() -> Result<(), String> {
    match Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
    {
        Err(e) => Err(format!(
            "`unshare` cannot be started ({e}; it is in util-linux)"
        )),
        Ok(out) if !out.status.success() => Err(format!(
            "`unshare --user --map-root-user true` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => Ok(()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// A passwd line (`name:x:uid:gid:gecos:home:shell`).
pub fn parse_passwd(line: &str) -> Option<User> {
    let f: Vec<&str> = line.trim_end().split(':').collect();
    if f.len() < 7 {
        return None;
    }
    Some(User {
        name: f[0].to_string(),
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        home: PathBuf::from(f[5]),
    })
}

fn lookup_user(name: &str) -> Result<Option<User>, Error> {
    // getent, not /etc/passwd: the user may come from any NSS source. Exit 2 means "not found".
    let out = Command::new("getent")
        .args(["passwd", name])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(format!("cannot run getent: {e}")))?;
    if !out.status.success() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    parse_passwd(text.lines().next().unwrap_or_default())
        .map(Some)
        .ok_or_else(|| {
            failed(format!(
                "getent passwd {name}: cannot parse `{}`",
                text.trim()
            ))
        })
}

/// The effective uid, from /proc (xtask has no libc dependency).
fn effective_uid() -> Result<u32, Error> {
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e| failed(format!("cannot read /proc/self/status: {e}")))?;
    parse_euid(&status).ok_or_else(|| failed("no Uid line in /proc/self/status"))
}

pub fn parse_euid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|e| e.parse().ok())
}

/// The private copy the user runs from: `<home>/.cache/spr-xtask/<checkout hash>`.
fn stage_dir(user: &User, root: &Path) -> PathBuf {
    user.home.join(".cache/spr-xtask").join(format!(
        "{:016x}",
        fnv1a(root.as_os_str().as_encoded_bytes())
    ))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The environment of the user's run, built from scratch.
pub fn user_env(user: &User, stage: &Path, ours: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = ours
        .iter()
        .filter(|(k, _)| {
            PASS_ENV.contains(&k.as_str()) || PASS_ENV_PREFIXES.iter().any(|p| k.starts_with(p))
        })
        .cloned()
        .collect();
    let s = |p: PathBuf| p.display().to_string();
    env.extend([
        (
            "PATH".into(),
            format!("{}:{USER_PATH}", s(stage.join("bin"))),
        ),
        ("HOME".into(), s(user.home.clone())),
        ("USER".into(), user.name.clone()),
        ("LOGNAME".into(), user.name.clone()),
        ("SPR_TEST_TMPDIR".into(), s(stage.join("tmp"))),
        ("SPR_TEST_VENV".into(), s(stage.join("venv"))),
        // insta finds the snapshots from the workspace root, which it otherwise asks
        // `cargo metadata` for at the compile-time path: the user has neither.
        ("INSTA_WORKSPACE_ROOT".into(), s(stage.join("src"))),
    ]);
    env
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let msg = format!("{what} {}", path.display());
    move |e| failed(format!("{msg}: {e}"))
}

/// Copies what the user needs into its own directory, owned by it, and runs the archive there
/// through `setpriv` (no PAM, no login shell needed; the environment is ours to choose).
fn run_as_user(
    root: &Path,
    user: &User,
    nextest: &Path,
    archive: &Path,
    filter: &str,
) -> Result<(), Error> {
    let stage = stage_dir(user, root);
    // Root works inside a directory the user owns: refuse symlinks on the way, so the copy and
    // the clean-up below stay inside the user's home.
    let mut dir = user.home.clone();
    for part in [".cache", "spr-xtask"] {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(failed(format!(
                    "{} is not a directory; remove it",
                    dir.display()
                )))
            }
            Err(_) => {
                fs::create_dir(&dir).map_err(io_err("cannot create", &dir))?;
                std::os::unix::fs::lchown(&dir, Some(user.uid), Some(user.gid))
                    .map_err(io_err("cannot chown", &dir))?;
            }
        }
    }
    if fs::symlink_metadata(&stage).is_ok() {
        fs::remove_dir_all(&stage).map_err(io_err("cannot remove the old copy", &stage))?;
    }
    let src = stage.join("src");
    for d in [&stage, &src, &stage.join("bin"), &stage.join("tmp")] {
        fs::create_dir(d).map_err(io_err("cannot create", d))?;
    }
    fs::set_permissions(&stage, fs::Permissions::from_mode(0o700))
        .map_err(io_err("cannot chmod", &stage))?;
    let copied = copy_sources(root, &src)?;
    let staged_archive = stage.join("sandbox-tests.tar.zst");
    fs::copy(archive, &staged_archive).map_err(io_err("cannot copy", archive))?;
    let staged_nextest = stage.join("bin/cargo-nextest");
    fs::copy(nextest, &staged_nextest).map_err(io_err("cannot copy", nextest))?;
    chown_tree(&stage, user.uid, user.gid)?;
    eprintln!(
        "staged for {}: {copied} source files, the archive and cargo-nextest in {}",
        user.name,
        stage.display()
    );

    let ours: Vec<(String, String)> = std::env::vars().collect();
    let env = user_env(user, &stage, &ours);
    for (k, v) in &env {
        if k == "PATH" || k.starts_with("SPR_TEST") || k == "HOME" || k == "CI" {
            eprintln!("  {k}={v}");
        }
    }
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .args(["--init-groups", "--inh-caps=-all", "--"])
        .arg(&staged_nextest)
        .args(nextest_run_args(&staged_archive, &src, filter))
        .current_dir(&src)
        .env_clear()
        .envs(env);
    let result = util::run(&mut cmd);
    // The copy is only for this run; the next one starts from scratch anyway.
    if let Err(e) = fs::remove_dir_all(&stage) {
        eprintln!("warning: cannot remove {}: {e}", stage.display());
    }
    result
}

/// Copies the files git knows about (tracked, and untracked but not ignored, so a new test
/// fixture counts before it is committed), keeping modes and symlinks. Returns how many.
fn copy_sources(root: &Path, dest: &Path) -> Result<usize, Error> {
    let list = util::output(util::git(root).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]))
    .map_err(|e| {
        failed(format!(
            "the sandbox runs copy the sources that git lists: {}",
            e.message()
        ))
    })?;
    let mut n = 0;
    for rel in list.split('\0').filter(|r| !r.is_empty()) {
        let from = root.join(rel);
        let Ok(meta) = fs::symlink_metadata(&from) else {
            continue; // deleted in the working tree but not yet in the index
        };
        let to = dest.join(rel);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
        }
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&from).map_err(io_err("cannot read", &from))?;
            std::os::unix::fs::symlink(target, &to).map_err(io_err("cannot create", &to))?;
        } else if meta.is_file() {
            fs::copy(&from, &to).map_err(io_err("cannot copy", &from))?;
        } else {
            continue; // a submodule: not something a test reads
        }
        n += 1;
    }
    Ok(n)
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), Error> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io_err("cannot chown", path))?;
    let meta = fs::symlink_metadata(path).map_err(io_err("cannot stat", path))?;
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(io_err("cannot list", path))? {
            let entry = entry.map_err(io_err("cannot list", path))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metadata() -> Value {
        let target = |name: &str, kind: &str| json!({"name": name, "kind": [kind]});
        json!({"packages": [
            {"name": "spr-core", "targets": [
                target("spr_core", "lib"), target("sandbox", "test"),
                target("attacks", "test"), target("quickstart", "example"),
            ]},
            {"name": "spr-cli", "targets": [target("spr", "bin"), target("cli", "test")]},
        ]})
    }

    #[test]
    fn the_real_list_names_real_targets() {
        let root = util::repo_root();
        let metadata = cargo_metadata(&root).unwrap();
        check_targets(&metadata, SANDBOX_TESTS).unwrap();
    }

    #[test]
    fn a_listed_target_that_does_not_exist_is_an_error_naming_it() {
        check_targets(&metadata(), &[("spr-core", "sandbox"), ("spr-cli", "cli")]).unwrap();
        let err = check_targets(
            &metadata(),
            &[
                ("spr-core", "sandbox"),
                ("spr-core", "isolation"),
                ("spr-core", "quickstart"),
                ("spr-cli", "spr"),
                ("spr-nope", "doctor"),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "SANDBOX_TESTS in xtask/src/sandbox_runs.rs lists tests that do not exist:\n  \
             `spr-core` has no integration test `isolation` (add tests/isolation.rs to it or drop \
             the line; its tests: attacks, sandbox)\n  \
             `spr-core` has no integration test `quickstart` (add tests/quickstart.rs to it or drop \
             the line; its tests: attacks, sandbox)\n  \
             `spr-cli` has no integration test `spr` (add tests/spr.rs to it or drop the line; its \
             tests: cli)\n  \
             there is no workspace package `spr-nope`"
        );
    }

    #[test]
    fn the_filterset_selects_exactly_the_listed_binaries() {
        assert_eq!(
            filterset(&[("spr-core", "sandbox"), ("spr-cli", "doctor")]),
            "binary_id(spr-core::sandbox) | binary_id(spr-cli::doctor)"
        );
    }

    #[test]
    fn test_arguments() {
        let a = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_test_args(&a(&[])), Ok(Runs::All));
        assert_eq!(
            parse_test_args(&a(&["--no-sandbox-runs"])),
            Ok(Runs::SuiteOnly)
        );
        assert_eq!(
            parse_test_args(&a(&["--sandbox-runs-only"])),
            Ok(Runs::SandboxOnly)
        );
        assert!(parse_test_args(&a(&["--sandbox-runs-only", "--no-sandbox-runs"])).is_err());
        assert!(parse_test_args(&a(&["--retries"])).is_err());
    }

    #[test]
    fn passwd_and_status_parsing() {
        assert_eq!(
            parse_passwd("spr-ci:x:1001:1002:spr CI, tests:/home/spr-ci:/usr/sbin/nologin\n"),
            Some(User {
                name: "spr-ci".into(),
                uid: 1001,
                gid: 1002,
                home: "/home/spr-ci".into()
            })
        );
        assert_eq!(parse_passwd("broken:x:1001"), None);
        assert_eq!(
            parse_euid("Name:\txtask\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n"),
            Some(0)
        );
        assert_eq!(parse_euid("Name:\txtask\n"), None);
    }

    #[test]
    fn the_users_environment_is_built_from_scratch() {
        let user = parse_passwd("spr-ci:x:1001:1001::/home/spr-ci:/usr/sbin/nologin").unwrap();
        let ours: Vec<(String, String)> = [
            ("CI", "true"),
            ("RUST_BACKTRACE", "1"),
            ("SPR_ATTACK", "fork"),
            ("PATH", "/root/.pyenv/shims:/usr/bin"),
            ("HOME", "/root"),
            ("CARGO_MANIFEST_DIR", "/root/spr/xtask"),
            ("SPR_VENV_DIR", "/root/venv"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let env = user_env(&user, Path::new("/home/spr-ci/.cache/spr-xtask/x"), &ours);
        let get = |k: &str| {
            env.iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("CI"), ["true"]);
        assert_eq!(get("RUST_BACKTRACE"), ["1"]);
        assert_eq!(get("SPR_ATTACK"), ["fork"]);
        assert_eq!(
            get("PATH"),
            ["/home/spr-ci/.cache/spr-xtask/x/bin:/usr/bin:/bin:/usr/sbin:/sbin"]
        );
        assert_eq!(get("HOME"), ["/home/spr-ci"]);
        assert_eq!(
            get("SPR_TEST_VENV"),
            ["/home/spr-ci/.cache/spr-xtask/x/venv"]
        );
        assert_eq!(
            get("SPR_TEST_TMPDIR"),
            ["/home/spr-ci/.cache/spr-xtask/x/tmp"]
        );
        assert_eq!(
            get("INSTA_WORKSPACE_ROOT"),
            ["/home/spr-ci/.cache/spr-xtask/x/src"]
        );
        assert!(get("CARGO_MANIFEST_DIR").is_empty());
        assert!(get("SPR_VENV_DIR").is_empty());
    }

    #[test]
    fn the_copy_of_each_checkout_has_its_own_directory() {
        let user = parse_passwd("u:x:1:1::/home/u:/bin/false").unwrap();
        let a = stage_dir(&user, Path::new("/root/ci/spr"));
        let b = stage_dir(&user, Path::new("/tmp/ci/spr"));
        assert_ne!(a, b);
        assert!(a.starts_with("/home/u/.cache/spr-xtask"), "{a:?}");
        assert_eq!(a, stage_dir(&user, Path::new("/root/ci/spr")));
    }
}

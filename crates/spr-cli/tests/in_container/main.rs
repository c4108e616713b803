//! spr inside a container: the host-built `spr` binary, bind-mounted into a container of the
//! runtime image and started with the security options that user namespaces inside Docker
//! need, runs code on its local engine with the full namespace sandbox, and says so in the
//! receipt. Once as the container's root, once as uid 1000 (the usual CI-runner shape).
//!
//! The options (docs/SECURITY.md), each needed on its own:
//! - `--security-opt seccomp=<profile>`: Docker's default profile refuses unshare, mount,
//!   umount2, pivot_root and sethostname to a container without CAP_SYS_ADMIN; the profile
//!   (seccomp.rs) is Docker's default plus exactly those five.
//! - `--security-opt systempaths=unconfined`: Docker masks and write-protects paths of the
//!   container's /proc (`MaskedPaths`, `ReadonlyPaths`) by mounting over them, and the kernel
//!   refuses a fresh proc mount in a user namespace while any of /proc is covered.
//! - `--security-opt apparmor=unconfined`, added only where the daemon reports AppArmor:
//!   Docker's `docker-default` profile denies mount.
//!
//! The image has python3 but not python3-venv, so the venv is made with `--without-pip`
//! (no ensurepip needed) and spr reuses it. The host is Debian 12 like the image, so the
//! host's `spr` binary runs there as it is.

#[path = "../common/mod.rs"]
mod common;
mod seccomp;
mod server;

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `SPR_IMAGE` names another image, as for .ci/docker-second-daemon.sh.
fn image() -> String {
    std::env::var("SPR_IMAGE")
        .ok()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| "spr-runtime:latest".into())
}

/// Where the venv lives inside the container: a tmpfs any uid can write, outside /tmp
/// (the sandbox puts its own scratch tmpfs on /tmp).
const HOME: &str = "/spr-home";
const VENV: &str = "/spr-home/venv";
/// Every `docker` call gets this long: a wedged daemon or run fails the test, never hangs it.
const DEADLINE: Duration = Duration::from_secs(180);

/// Runs a docker command to completion within DEADLINE (killing it after).
fn docker(args: &[&str]) -> Output {
    let mut child = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker starts");
    let started = Instant::now();
    while child
        .try_wait()
        .expect("docker can be waited for")
        .is_none()
    {
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("`docker {}` took longer than {DEADLINE:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("docker output")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A daemon and the runtime image, or a skip (a failure under CI).
fn docker_ready() -> bool {
    docker_ready_for(&image(), "cargo xtask image")
}

/// A daemon and `image`, made by `build`, or a skip (a failure under CI).
fn docker_ready_for(image: &str, build: &str) -> bool {
    let version = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .output();
    let daemon = matches!(&version, Ok(o) if o.status.success());
    if !common::require(daemon, "a Docker daemon (run .ci/docker-setup.sh)") {
        return false;
    }
    let present = docker(&["image", "inspect", "--format", "{{.Id}}", image])
        .status
        .success();
    common::require(
        present,
        &format!("the image {image} (build it with `{build}`)"),
    )
}

/// Whether the daemon confines containers with AppArmor (then mounts need it lifted).
fn apparmor() -> bool {
    let out = docker(&["info", "--format", "{{json .SecurityOptions}}"]);
    String::from_utf8_lossy(&out.stdout).contains("apparmor")
}

/// The options user namespaces inside Docker need, as `docker run` arguments.
fn sandbox_options() -> Vec<String> {
    let dir = common::target_tmpdir();
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join(format!("in-container-seccomp-{}.json", std::process::id()));
    std::fs::write(&profile, seccomp::profile().to_string()).unwrap();
    let mut opts = vec![
        "--security-opt".to_string(),
        format!("seccomp={}", profile.display()),
        "--security-opt".into(),
        "systempaths=unconfined".into(),
    ];
    if apparmor() {
        opts.extend(["--security-opt".into(), "apparmor=unconfined".into()]);
    }
    opts
}

/// A running container (`sleep infinity` as its main process, commands run with exec, so
/// each step's output and exit code stand alone); removed on drop, even after a panic.
struct Container {
    name: String,
}

impl Container {
    fn start(user: &str, security: &[String]) -> Container {
        // Unique per test, also when the tests share a process (plain `cargo test`).
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "spr-in-container-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mount = format!("{}:/usr/local/bin/spr:ro", common::spr_bin().display());
        let tmpfs = format!("{HOME}:rw,exec,size=256m,mode=1777");
        let home = format!("HOME={HOME}");
        let image = image();
        let mut args: Vec<&str> = vec![
            "run",
            "-d",
            "--rm",
            "--name",
            &name,
            "--user",
            user,
            "--network",
            "none",
        ];
        args.extend(security.iter().map(String::as_str));
        args.extend([
            "--tmpfs",
            &tmpfs,
            "-e",
            &home,
            "-v",
            &mount,
            "--label",
            "dev.spr.test=in_container",
            "--entrypoint",
            "sleep",
            &image,
            "infinity",
        ]);
        let out = docker(&args);
        assert!(out.status.success(), "the container starts: {}", text(&out));
        Container { name }
    }

    fn exec(&self, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", self.name.as_str()];
        args.extend(cmd);
        docker(&args)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn json_of(out: &Output, what: &str) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{what} prints one JSON object ({e}): {}", text(out)))
}

/// Starts the container, makes the venv, runs `spr doctor --json` and
/// `spr run --json -c 'result = 1'`, and returns the run's result.
fn run_in_container(user: &str, security: &[String]) -> serde_json::Value {
    let c = Container::start(user, security);

    let venv = c.exec(&["python3", "-m", "venv", "--without-pip", VENV]);
    assert!(venv.status.success(), "the venv is made: {}", text(&venv));

    let doctor = c.exec(&["spr", "doctor", "--json"]);
    assert_eq!(doctor.status.code(), Some(0), "{}", text(&doctor));
    let report = json_of(&doctor, "spr doctor --json");
    let checks = report["checks"].as_array().expect("doctor lists checks");
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("doctor has no `{name}` check: {report}"))
    };
    assert_eq!(status("python"), "ok", "{report}");

    let run = c.exec(&[
        "spr",
        "run",
        "--json",
        "--venv-manager",
        "python",
        "--venv-dir",
        VENV,
        "-c",
        "result = 1",
    ]);
    assert_eq!(run.status.code(), Some(0), "spr run: {}", text(&run));
    let result = json_of(&run, "spr run --json");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["result"], 1, "{result}");
    result
}

/// Asserts the receipt says the namespace sandbox was applied, naming what was missing
/// and why when it was not.
fn assert_full_sandbox(result: &serde_json::Value, case: &str) {
    let s = &result["sandbox"];
    assert_eq!(s["engine"], "local", "{result}");
    let ns = &s["namespaces"];
    let all = ["user", "mount", "pid", "network", "ipc", "uts"]
        .iter()
        .all(|n| ns[n] == true);
    let read_only = s["filesystem"]["read_only_root"] == true;
    if !(all && read_only) {
        let missing: Vec<String> = s["missing"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let field = |k: &str| m[k].as_str().unwrap_or_default().to_string();
                format!("{}: {}", field("name"), field("reason"))
            })
            .collect();
        panic!(
            "{case}: the namespace sandbox was not applied inside the container:\n  \
             namespaces {ns}\n  filesystem {}\n  missing:\n    {}",
            s["filesystem"],
            missing.join("\n    ")
        );
    }
}

#[test]
fn spr_in_a_container_as_root_gets_the_full_namespace_sandbox() {
    if !docker_ready() {
        return;
    }
    let security = sandbox_options();
    let result = run_in_container("0:0", &security);
    assert_full_sandbox(&result, "as the container's root (0:0)");
}

#[test]
fn spr_in_a_container_as_uid_1000_gets_the_full_namespace_sandbox() {
    if !docker_ready() {
        return;
    }
    let security = sandbox_options();
    let result = run_in_container("1000:1000", &security);
    assert_full_sandbox(&result, "as uid 1000 (--user 1000:1000)");
}

/// The control: with Docker's defaults the sandbox cannot set up, and the receipt says so
/// instead of pretending (the run itself still works, on what the machine supports).
#[test]
fn with_dockers_defaults_the_receipt_says_the_namespaces_are_missing() {
    if !docker_ready() {
        return;
    }
    let result = run_in_container("1000:1000", &[]);
    let s = &result["sandbox"];
    assert_eq!(s["namespaces"]["user"], false, "{result}");
    // Named `namespaces` when the set-up failed, `user_namespace` when the probe did.
    let reason = s["missing"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == "namespaces" || m["name"] == "user_namespace")
        .and_then(|m| m["reason"].as_str())
        .unwrap_or_else(|| panic!("no reason for the missing namespaces: {result}"));
    assert!(!reason.is_empty(), "{result}");
}

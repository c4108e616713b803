//! The server image (`cargo xtask image --server`): `spr serve --http 0.0.0.0:8080` in a
//! container started as docs/DEPLOY.md says, answering over the published port with the
//! local engine's namespace sandbox applied inside the container, and refusing to start
//! without a token.

use super::{assert_full_sandbox, common, docker, docker_ready_for, sandbox_options, text};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `SPR_SERVER_IMAGE` names another image.
fn server_image() -> String {
    std::env::var("SPR_SERVER_IMAGE")
        .ok()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| "spr-server:latest".into())
}

/// A detached server container, removed on drop.
struct Server {
    name: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    let body = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = body.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn token() -> String {
    format!(
        "spr-test-token-{:x}{:x}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ 0x5eed
    )
}

#[test]
fn the_server_image_serves_runs_with_the_namespace_sandbox_inside() {
    if !docker_ready_for(&server_image(), "cargo xtask image --server") {
        return;
    }
    let name = format!("spr-server-test-{}", std::process::id());
    let server = Server { name: name.clone() };
    let token = token();
    let env = format!("SPR_TOKEN={token}");
    // The current binary over the image's, so the test checks this checkout's spr in the
    // image's layout (user, venv, entrypoint).
    let mount = format!("{}:/usr/local/bin/spr:ro", common::spr_bin().display());
    let image = server_image();
    let security = sandbox_options();
    let mut args: Vec<&str> = vec![
        "run",
        "-d",
        "--name",
        &name,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "-e",
        &env,
        "-v",
        &mount,
        "-p",
        "127.0.0.1::8080",
        "--label",
        "dev.spr.test=in_container",
    ];
    args.extend(security.iter().map(String::as_str));
    args.push(&image);
    let out = docker(&args);
    assert!(out.status.success(), "the server starts: {}", text(&out));

    let port = docker(&["port", &name, "8080/tcp"]);
    let port = String::from_utf8_lossy(&port.stdout)
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next().map(str::to_string))
        .unwrap_or_else(|| panic!("no published port: {}", text(&port)));
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (code, _) = curl(&[&format!("{base}/v1/health")]);
        if code == 200 {
            break;
        }
        if Instant::now() > deadline {
            let logs = docker(&["logs", &name]);
            panic!("the server never became healthy: {}", text(&logs));
        }
        std::thread::sleep(Duration::from_millis(250));
    }

    let auth = format!("Authorization: Bearer {token}");
    let run = |code_text: &str| {
        let body = serde_json::json!({"code": code_text}).to_string();
        curl(&[
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body,
            &format!("{base}/v1/runs"),
        ])
    };
    let (code, body) = run("result = 6 * 7");
    assert_eq!(code, 200, "{body}");
    let result: serde_json::Value = serde_json::from_str(&body).expect("a RunnerResult");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["result"], 42, "{result}");
    assert_full_sandbox(&result, "in the server image");

    let (code, body) = curl(&[
        "--data-binary",
        r#"{"code": "result = 1"}"#,
        &format!("{base}/v1/runs"),
    ]);
    assert_eq!(code, 401, "no token, no run: {body}");

    // SIGTERM drains and exits cleanly.
    let stop = docker(&["stop", "--time", "30", &name]);
    assert!(stop.status.success(), "{}", text(&stop));
    let state = docker(&["inspect", "--format", "{{.State.ExitCode}}", &name]);
    assert_eq!(
        String::from_utf8_lossy(&state.stdout).trim(),
        "0",
        "exit code after SIGTERM; logs: {}",
        text(&docker(&["logs", &name]))
    );
    drop(server);
}

#[test]
fn the_server_image_refuses_to_listen_beyond_loopback_without_a_token() {
    if !docker_ready_for(&server_image(), "cargo xtask image --server") {
        return;
    }
    let mount = format!("{}:/usr/local/bin/spr:ro", common::spr_bin().display());
    let image = server_image();
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &mount,
        "--label",
        "dev.spr.test=in_container",
        &image,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without a token"), "{}", text(&out));
}

/// docs/DEPLOY.md points at deploy/seccomp.json: it must be the profile these tests use.
/// `SPR_UPDATE_DEPLOY=1` rewrites it.
#[test]
fn the_deploy_seccomp_profile_is_the_tested_one() {
    let path = common::manifest_dir().join("../../deploy/seccomp.json");
    let want = format!("{:#}\n", super::seccomp::profile());
    if std::env::var_os("SPR_UPDATE_DEPLOY").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is not the profile of crates/spr-cli/tests/in_container/seccomp.rs; rerun with SPR_UPDATE_DEPLOY=1",
        path.display()
    );
}

//! CLI behaviour that needs neither a Python run nor a Docker daemon: usage errors, policy
//! commands, the exit-code contract for refusals, and `serve` on malformed input.

mod common;

use common::{code, render, responses, run, run_within, spr, stdout};
use insta::assert_snapshot;
use std::path::Path;
use std::time::Duration;

fn snap(args: &[&str]) -> String {
    render(&run(spr().args(args), None), &[])
}

#[test]
fn help_says_what_spr_is_and_that_admin_is_managed_only() {
    let out = run(spr().arg("--help"), None);
    assert_eq!(code(&out), 0);
    let help = stdout(&out);
    assert!(help.contains("run untrusted, LLM-written Python with guardrails"));
    assert!(help.contains("manage only spr-managed"));
    assert!(help.contains("Quick examples:"));
    assert!(help.contains("Remote examples:"));
    assert!(help.contains("spr serve --stdio"));
    assert!(help.contains("--ssh-port 2222"));
}

#[test]
fn usage_errors_exit_2() {
    assert_snapshot!("no_command", snap(&[]));
    assert_snapshot!("unknown_command", snap(&["bogus"]));
    assert_snapshot!("run_without_code", snap(&["run"]));
    assert_snapshot!("run_with_file_and_c", snap(&["run", "a.py", "-c", "x"]));
    assert_snapshot!(
        "run_input_and_input_file",
        snap(&["run", "-c", "x", "--input", "{}", "--input-file", "i.json"])
    );
    assert_snapshot!(
        "run_bad_engine",
        snap(&["run", "-c", "x", "--engine", "wasm"])
    );
    assert_snapshot!(
        "run_bad_venv_manager",
        snap(&["run", "-c", "x", "--venv-manager", "conda"])
    );
    assert_snapshot!(
        "run_zero_pool",
        snap(&["run", "-c", "x", "--pool-size", "0"])
    );
    assert_snapshot!("serve_without_stdio", snap(&["serve"]));
    assert_snapshot!(
        "serve_stdio_and_http",
        snap(&["serve", "--stdio", "--http", "127.0.0.1:0"])
    );
    assert_snapshot!(
        "serve_http_options_without_http",
        snap(&["serve", "--stdio", "--profile", "strict=s.toml"])
    );
    assert_snapshot!(
        "serve_http_bad_address",
        snap(&["serve", "--http", "example.com:80"])
    );
    assert_snapshot!(
        "serve_http_default_profile_name",
        snap(&[
            "serve",
            "--http",
            "127.0.0.1:0",
            "--profile",
            "default=p.toml"
        ])
    );
    assert_snapshot!("policy_check_without_file", snap(&["policy", "check"]));
}

/// Python's decoder gives up near 1000 levels (and would take its worker with it); the
/// input is refused before an engine is built, as it always was past 128.
#[test]
fn run_refuses_input_nested_deeper_than_128_levels() {
    let deep = |n: usize| format!("{{\"a\": {}{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
    let out = run(
        spr().args([
            "run",
            "-c",
            "x",
            "--engine",
            "docker",
            "--input",
            &deep(129),
        ]),
        None,
    );
    assert_eq!(code(&out), 2, "{}", render(&out, &[]));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: --input is nested deeper than 128 levels\n"
    );
}

#[test]
fn refusals_before_running_exit_2() {
    assert_snapshot!("run_missing_file", snap(&["run", "missing.py"]));
    assert_snapshot!(
        "run_input_not_json",
        snap(&["run", "-c", "x", "--input", "{nope"])
    );
    assert_snapshot!(
        "run_input_not_object",
        snap(&["run", "-c", "x", "--input", "[1, 2]"])
    );
    assert_snapshot!(
        "run_image_with_local_engine",
        snap(&["run", "-c", "x", "--image", "python:3.11"])
    );
    assert_snapshot!(
        "run_package_with_docker_engine",
        snap(&[
            "run",
            "-c",
            "x",
            "--engine",
            "docker",
            "--package",
            "six==1.16.0"
        ])
    );
    assert_snapshot!(
        "run_docker_host_with_local_engine",
        snap(&["run", "-c", "x", "--docker-host", "tcp://127.0.0.1:1"])
    );
}

#[test]
fn run_json_reports_a_refusal_as_one_result_object() {
    let out = run(
        spr().args(["run", "--json", "-c", "x", "--input", "[1]"]),
        None,
    );
    assert_eq!(code(&out), 2);
    let result: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(result["ok"], false);
    assert_eq!(result["exit_code"], 2);
    assert_eq!(
        result["error"],
        "--input must be a JSON object, got an array"
    );
    assert_eq!(stdout(&out).lines().count(), 1);
}

#[test]
fn docker_connection_conflicts_are_usage_errors_before_or_after_the_command() {
    assert_snapshot!(
        "context_and_host",
        snap(&[
            "--docker-context",
            "c",
            "--docker-host",
            "tcp://h:1",
            "list",
            "containers"
        ])
    );
    assert_snapshot!(
        "context_and_ssh_host_after_command",
        snap(&["list", "images", "--docker-context", "c", "--ssh-host", "h"])
    );
    assert_snapshot!(
        "ssh_user_without_host",
        snap(&["stop", "all", "--ssh-user", "u"])
    );
    assert_snapshot!(
        "ssh_port_without_host",
        snap(&["--ssh-port", "2222", "cleanup"])
    );
    assert_snapshot!(
        "ssh_key_without_host",
        snap(&["kill", "container", "abc", "--ssh-key-path", "/k"])
    );
    assert_snapshot!(
        "ssh_port_not_a_number",
        snap(&["--ssh-host", "h", "--ssh-port", "ssh", "list", "containers"])
    );
    assert_snapshot!("container_empty_id", snap(&["container", ""]));
    assert_snapshot!(
        "stop_bad_timeout",
        snap(&["stop", "container", "abc", "--timeout-seconds", "-1"])
    );
}

#[test]
fn docker_host_with_ssh_host_is_allowed_as_in_the_original() {
    // Parsing succeeds; what happens next depends on the daemon, not on the arguments.
    let out = run(
        spr().args(["--docker-host", "tcp://h:1", "--ssh-host", "h", "--help"]),
        None,
    );
    assert_eq!(code(&out), 0);
}

fn policy_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn policy_check_and_show() {
    let dir = tempfile::tempdir().unwrap();
    let redact = [(dir.path(), "[DIR]")];
    let good = policy_file(
        dir.path(),
        "good.toml",
        "[policy]\nmode = \"allow\"\nallowed_imports = [\"math\"]\ntimeout_seconds = 2\n\n[policy.extra_globals]\nlimit = 3\n",
    );
    let typo = policy_file(dir.path(), "typo.toml", "blocked_import = [\"os\"]\n");
    let zero = policy_file(dir.path(), "zero.toml", "[policy]\ntimeout_seconds = 0\n");
    let syntax = policy_file(dir.path(), "syntax.toml", "[policy\n");
    let missing = dir.path().join("missing.toml").display().to_string();

    let check = |file: &str| render(&run(spr().args(["policy", "check", file]), None), &redact);
    assert_snapshot!("policy_check_ok", check(&good));
    assert_snapshot!("policy_check_unknown_key", check(&typo));
    assert_snapshot!("policy_check_out_of_range", check(&zero));
    assert_snapshot!("policy_check_bad_toml", check(&syntax));
    assert_snapshot!("policy_check_missing_file", check(&missing));

    assert_snapshot!("policy_show_default", snap(&["policy", "show"]));
    let show = render(&run(spr().args(["policy", "show", &good]), None), &redact);
    assert_snapshot!("policy_show_file", show);
    assert_snapshot!(
        "policy_show_invalid",
        render(&run(spr().args(["policy", "show", &typo]), None), &redact)
    );
}

/// A policy path that names a device or a FIFO is refused at once: `/dev/zero` is not
/// read without end, and a FIFO nobody writes to does not block.
#[test]
fn policy_check_refuses_what_is_not_a_regular_file_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let check = |file: &Path| {
        let out = run_within(
            spr().args(["policy", "check"]).arg(file),
            Duration::from_secs(30),
        );
        render(&out, &[(dir.path(), "[DIR]")])
    };
    assert_snapshot!("policy_check_dev_zero", check(Path::new("/dev/zero")));
    assert_snapshot!("policy_check_fifo", check(&fifo));
    assert_snapshot!("policy_check_directory", check(dir.path()));
}

#[test]
fn run_refuses_an_invalid_policy_file_before_building_an_engine() {
    let dir = tempfile::tempdir().unwrap();
    let zero = policy_file(dir.path(), "zero.toml", "timeout_seconds = 0\n");
    // A venv dir that cannot be created would fail differently: the policy is checked first.
    let out = run(
        spr().args([
            "run",
            "-c",
            "x",
            "--venv-dir",
            "/proc/spr-no-venv",
            "--policy",
            &zero,
        ]),
        None,
    );
    assert_snapshot!(render(&out, &[(dir.path(), "[DIR]")]));
}

#[test]
fn run_reports_an_engine_that_cannot_start_as_125() {
    // /proc refuses new directories, so the venv cannot be created.
    let out = run(
        spr().args([
            "run",
            "--json",
            "-c",
            "x",
            "--venv-dir",
            "/proc/spr-no-venv/venv",
        ]),
        None,
    );
    assert_eq!(code(&out), 125, "{}", render(&out, &[]));
    let result: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(result["exit_code"], 125);
    assert!(String::from_utf8_lossy(&out.stderr)
        .starts_with("error: the local engine could not be prepared\n  caused by: "));
}

/// `--engine docker` so the session needs no venv: `DockerEngine::new` does no IO, and
/// malformed lines never reach the engine.
#[test]
fn serve_answers_malformed_lines_and_carries_on() {
    let input = [
        "not json",
        "",
        "   ",
        "[1, 2]",
        r#"{"id": 1}"#,
        r#"{"id": 2, "code": 42}"#,
        r#"{"id": 3, "code": "x", "input_data": [1]}"#,
        r#"{"id": 4, "code": "x", "extra": true}"#,
        r#"{"id": 5, "code": "x", "policy": {"mode": "bogus"}}"#,
        r#"{"id": 6, "code": "x", "policy": {"blocked_import": []}}"#,
        r#"{"id": 7, "code": "x", "policy": {"timeout_seconds": 0}}"#,
        r#"{"id": 8, "code": "x", "policy": {"sandbox": {"max_procs": 1}}}"#,
        r#"{"id": {"nested": true}, "code": "x", "policy": 3}"#,
        r#"{"id": 9, "code": "x", "input_data": "s"}"#,
        "{\"id\": 10, \"code\": \"\\ud800\"",
    ]
    .join("\n");
    let out = run(
        spr().args(["serve", "--stdio", "--engine", "docker"]),
        Some(input.as_bytes()),
    );
    assert_eq!(code(&out), 0, "{}", render(&out, &[]));
    let lines = responses(&out);
    assert_eq!(lines.len(), 13);
    for line in &lines {
        assert_eq!(line["exit_code"], 2);
        assert_eq!(line["ok"], false);
        assert_eq!(line["duration_ms"], 0.0);
    }
    // Refusals are answered by the reader in input order, so the raw stream is stable.
    assert_snapshot!(stdout(&out));
}

#[test]
fn serve_refuses_an_overlong_line_without_dying() {
    let mut input = Vec::with_capacity((65 << 20) + 100);
    input.extend_from_slice(b"{\"id\": 1, \"code\": \"");
    input.resize((65 << 20) + 20, b'a');
    input.extend_from_slice(b"\"}\n");
    input.extend_from_slice(b"{\"id\": 2, \"code\": 3}\n");
    let out = run(
        spr().args(["serve", "--stdio", "--engine", "docker"]),
        Some(&input),
    );
    assert_eq!(code(&out), 0);
    let lines = responses(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["id"], 2);
    assert_eq!(lines[1]["id"], serde_json::Value::Null);
    assert_eq!(
        lines[1]["error"],
        "invalid request: line 1: longer than the 64 MiB limit"
    );
}

#[test]
fn serve_refuses_to_start_with_an_invalid_default_policy() {
    let dir = tempfile::tempdir().unwrap();
    let zero = policy_file(dir.path(), "zero.toml", "timeout_seconds = 0\n");
    let out = run(
        spr().args(["serve", "--stdio", "--engine", "docker", "--policy", &zero]),
        Some(b"{\"id\": 1, \"code\": \"x\"}\n"),
    );
    assert_snapshot!(render(&out, &[(dir.path(), "[DIR]")]));
}

#[test]
fn doctor_reports_every_check_and_exits_0() {
    // A venv folder no run made yet (the probe worker then creates it).
    let venv = common::target_tmpdir().join(format!(
        "spr-doctor-venv-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let out = run(
        spr().args(["doctor", "--json"]).env("SPR_VENV_DIR", &venv),
        None,
    );
    assert_eq!(code(&out), 0, "{}", render(&out, &[]));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(&names[..4], ["python", "uv", "venv", "docker"]);
    assert_eq!(
        report["checks"][2]["detail"],
        format!("{} (created on first run)", venv.display())
    );

    let out = run(spr().arg("doctor").env("SPR_VENV_DIR", &venv), None);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).starts_with("CHECK"));
    let _ = std::fs::remove_dir_all(&venv);
}

#[test]
fn serve_answers_125_when_the_engine_cannot_start_and_keeps_serving() {
    // /proc refuses new directories, so the venv cannot be created.
    let input = "{\"id\": 1, \"code\": \"result = 1\"}\n{\"id\": 2}\n{\"id\": 3, \"code\": \"result = 3\"}\n";
    let out = run(
        spr().args(["serve", "--stdio", "--venv-dir", "/proc/spr-no-venv/venv"]),
        Some(input.as_bytes()),
    );
    assert_eq!(code(&out), 0, "{}", render(&out, &[]));
    let lines = responses(&out);
    assert_eq!(lines.len(), 3);
    assert_eq!(
        (lines[0]["id"].clone(), lines[0]["exit_code"].clone()),
        (1.into(), 125.into())
    );
    assert_eq!(
        (lines[1]["id"].clone(), lines[1]["exit_code"].clone()),
        (2.into(), 2.into())
    );
    assert_eq!(
        (lines[2]["id"].clone(), lines[2]["exit_code"].clone()),
        (3.into(), 125.into())
    );
    let error = lines[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("the engine failed to start: the local engine could not be prepared: "),
        "{error}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("the engine failed to start"));
}

/// A device, a FIFO or a directory named as the code, the input, an upload or the token is
/// refused before it is opened: `/dev/zero` would be read until memory ran out, a FIFO
/// nobody writes to would block forever.
#[test]
fn files_that_are_not_regular_are_refused_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let fifo = fifo.to_str().unwrap();
    let upload = format!("x={fifo}");
    let cases: [(&[&str], &str, &str); 5] = [
        (
            &["run", "/dev/zero"],
            "code file '/dev/zero'",
            "character device",
        ),
        (
            &["run", "-c", "result=1", "--input-file", "/dev/zero"],
            "input file '/dev/zero'",
            "character device",
        ),
        (
            &["run", "-c", "result=1", "--file", &upload],
            "--file x",
            "a FIFO",
        ),
        (
            &["run", "-c", "result=1", "--input-file", "/"],
            "input file '/'",
            "a directory",
        ),
        (
            &[
                "serve",
                "--http",
                "127.0.0.1:0",
                "--token-file",
                "/dev/zero",
            ],
            "--token-file /dev/zero",
            "character device",
        ),
    ];
    for (args, names, kind) in cases {
        let out = run(spr().args(args), None);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(code(&out), 2, "{args:?}: {err}");
        assert!(err.contains(names) && err.contains(kind), "{args:?}: {err}");
    }
}

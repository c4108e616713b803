//! CLI behaviour that needs real Python runs through the local engine: the `run` exit
//! codes and output formats, and `serve` with concurrent requests and an EOF drain.
//!
//! Every test shares one venv ([`common::cli_venv`]).

mod common;

use common::{code, render, responses, run, spr, stdout, Session};
use insta::assert_snapshot;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn venv() -> &'static str {
    common::cli_venv()
}

fn spr_local(args: &[&str]) -> Command {
    let mut cmd = spr();
    cmd.args(args)
        .args(["--venv-manager", "python", "--venv-dir", venv()]);
    cmd
}

fn result_of(out: &std::process::Output) -> serde_json::Value {
    let text = stdout(out);
    assert_eq!(text.lines().count(), 1, "exactly one JSON line: {text}");
    serde_json::from_str(&text).expect("stdout is one JSON object")
}

#[test]
fn run_json_prints_one_result_object() {
    let out = run(
        &mut spr_local(&["run", "--json", "-c", "result = 2 + 2"]),
        None,
    );
    assert_eq!(code(&out), 0, "{}", render(&out, &[]));
    let result = result_of(&out);
    for key in [
        "ok",
        "result",
        "stdout",
        "stderr",
        "timed_out",
        "resource_exceeded",
        "error",
        "exit_code",
        "duration_ms",
        "stdout_truncated",
        "stderr_truncated",
    ] {
        assert!(result.get(key).is_some(), "missing {key}: {result}");
    }
    assert_eq!(result["ok"], true);
    assert_eq!(result["result"], 4);
    assert_eq!(result["exit_code"], 0);
}

#[test]
fn run_human_output_passes_the_runs_output_through() {
    let code_text =
        "import sys\nprint('out')\nprint('err', file=sys.stderr)\nresult = {'a': [1, 2]}";
    let out = run(&mut spr_local(&["run", "-c", code_text]), None);
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), "out\nresult: {\"a\":[1,2]}\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
}

#[test]
fn run_reads_code_from_a_file_or_stdin_and_input_from_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("code.py");
    std::fs::write(&file, "result = x * 2").unwrap();
    let input = dir.path().join("input.json");
    std::fs::write(&input, r#"{"x": 21}"#).unwrap();
    let out = run(
        &mut spr_local(&[
            "run",
            file.to_str().unwrap(),
            "--input-file",
            input.to_str().unwrap(),
        ]),
        None,
    );
    assert_eq!(stdout(&out), "result: 42\n", "{}", render(&out, &[]));

    let out = run(
        &mut spr_local(&["run", "-", "--input", r#"{"x": "ab"}"#, "--json"]),
        Some(b"result = x + '!'"),
    );
    assert_eq!(result_of(&out)["result"], "ab!");
}

#[test]
fn run_prints_numbers_with_every_digit() {
    let out = run(
        &mut spr_local(&[
            "run",
            "--json",
            "--input",
            r#"{"x": 99999999999999999999}"#,
            "-c",
            "result = x",
        ]),
        None,
    );
    assert_eq!(code(&out), 0, "{}", render(&out, &[]));
    let text = stdout(&out);
    assert!(
        text.starts_with(r#"{"ok":true,"result":99999999999999999999,"#),
        "{text}"
    );
    result_of(&out);

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.json");
    std::fs::write(
        &input,
        "{\"x\": 123456789012345678901234567890,\n \"f\": 1e-300}\n",
    )
    .unwrap();
    let out = run(
        &mut spr_local(&[
            "run",
            "--input-file",
            input.to_str().unwrap(),
            "-c",
            "result = [x * 10, f, 10**30 / 10**29]",
        ]),
        None,
    );
    assert_eq!(
        stdout(&out),
        "result: [1234567890123456789012345678900,1e-300,10.0]\n",
        "{}",
        render(&out, &[])
    );
}

#[test]
fn run_exits_1_when_the_code_fails() {
    let out = run(&mut spr_local(&["run", "-c", "import os"]), None);
    assert_eq!(code(&out), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.ends_with("error: ImportError: Import 'os' is blocked by policy\n"),
        "{stderr}"
    );

    let out = run(
        &mut spr_local(&["run", "--json", "-c", "raise ValueError('bad')"]),
        None,
    );
    assert_eq!(code(&out), 1);
    let result = result_of(&out);
    assert_eq!(result["ok"], false);
    assert_eq!(result["error"], "ValueError: bad");
}

#[test]
fn run_exits_124_on_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, "timeout_seconds = 1\n").unwrap();
    let started = Instant::now();
    let out = run(
        &mut spr_local(&[
            "run",
            "--json",
            "--policy",
            policy.to_str().unwrap(),
            "-c",
            "while True: pass",
        ]),
        None,
    );
    assert_eq!(code(&out), 124, "{}", render(&out, &[]));
    let result = result_of(&out);
    assert_eq!(result["timed_out"], true);
    assert_eq!(result["error"], "Execution timed out after 1s");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn run_human_output_of_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, "timeout_seconds = 1\n").unwrap();
    let out = run(
        &mut spr_local(&[
            "run",
            "--policy",
            policy.to_str().unwrap(),
            "-c",
            "print('before', flush=True)\nwhile True: pass",
        ]),
        None,
    );
    assert_snapshot!(render(&out, &[]));
}

/// Each request records when it ran; with two workers, runs overlap in time, and every
/// id gets exactly one response. (Overlap rather than wall-clock time, so a loaded
/// machine cannot make the test flaky.)
#[test]
fn serve_runs_requests_concurrently_and_correlates_ids() {
    let mut input = String::new();
    for i in 0..4 {
        input.push_str(&format!(
            "{{\"id\": {i}, \"code\": \"import time\\nstart = time.time()\\ntime.sleep(0.5)\\nresult = [n, start, time.time()]\", \"input_data\": {{\"n\": {i}}}}}\n"
        ));
    }
    input.push_str("not json\n");
    let out = run(
        &mut spr_local(&["serve", "--stdio", "--pool-size", "2"]),
        Some(input.as_bytes()),
    );
    assert_eq!(code(&out), 0, "{}", render(&out, &[]));
    let lines = responses(&out);
    assert_eq!(lines.len(), 5, "{lines:?}");
    let mut spans = Vec::new();
    for (i, line) in lines.iter().take(4).enumerate() {
        assert_eq!(line["id"], i);
        assert_eq!(line["ok"], true, "{line}");
        assert_eq!(line["result"][0], i, "{line}");
        spans.push((
            line["result"][1].as_f64().unwrap(),
            line["result"][2].as_f64().unwrap(),
        ));
    }
    assert_eq!(lines[4]["id"], serde_json::Value::Null);
    assert_eq!(lines[4]["exit_code"], 2);
    let overlapping = spans
        .iter()
        .enumerate()
        .any(|(i, a)| spans[i + 1..].iter().any(|b| a.0 < b.1 && b.0 < a.1));
    assert!(overlapping, "no two runs overlapped: {spans:?}");
}

/// Clients match responses by id: an id a float cannot hold must come back as written,
/// and numbers in the input and the result keep every digit.
#[test]
fn serve_echoes_ids_byte_for_byte_and_keeps_every_digit() {
    let input = concat!(
        r#"{"id": 18446744073709551617, "code": "result = x + 1", "input_data": {"x": 123456789012345678901234567890}}"#,
        "\n",
        r#"{"id": 123456789012345678901234567890.5, "code": "result = 0.1"}"#,
        "\n",
        r#"{"id": [1, 18446744073709551617], "code": 7}"#,
        "\n",
    );
    let out = run(
        &mut spr_local(&["serve", "--stdio"]),
        Some(input.as_bytes()),
    );
    assert_eq!(code(&out), 0, "{}", render(&out, &[]));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 3, "{text}");
    for prefix in [
        r#"{"id":18446744073709551617,"ok":true,"result":123456789012345678901234567891,"#,
        r#"{"id":123456789012345678901234567890.5,"ok":true,"result":0.1,"#,
        r#"{"id":[1, 18446744073709551617],"ok":false,"result":null,"#,
    ] {
        assert!(
            text.lines().any(|line| line.starts_with(prefix)),
            "no response starts with {prefix}: {text}"
        );
    }
    responses(&out);
}

/// Stdin closes right after the requests: the server still answers all of them before
/// it exits 0.
#[test]
fn serve_drains_in_flight_runs_at_eof() {
    let input = concat!(
        "{\"id\": \"slow\", \"code\": \"import time\\ntime.sleep(1)\\nresult = 'done'\"}\n",
        "{\"id\": \"fail\", \"code\": \"1/0\"}\n",
        "{\"id\": \"out\", \"code\": \"print('hello')\", \"policy\": {\"timeout_seconds\": 2}}\n",
    );
    let out = run(
        &mut spr_local(&["serve", "--stdio"]),
        Some(input.as_bytes()),
    );
    assert_eq!(code(&out), 0, "{}", render(&out, &[]));
    let mut lines = responses(&out);
    for line in &mut lines {
        assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
        line["duration_ms"] = "[duration_ms]".into();
        // The receipt depends on what this machine supports; doctor's tests cover it.
        line.as_object_mut().unwrap().remove("sandbox");
        // Traceback layout differs between Python versions.
        if line["stderr"].as_str().unwrap().contains("Traceback") {
            line["stderr"] = "[traceback]".into();
        }
    }
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    assert_snapshot!(text.join("\n"));
}

/// The README's main job: `spr run examples/quickstart.py --input '{"x": 81}'`.
#[test]
fn the_readme_main_job_prints_the_square_root() {
    let example = common::repo_root().join("examples/quickstart.py");
    let example = example.display().to_string();
    let out = run(
        &mut spr_local(&["run", &example, "--input", r#"{"x": 81}"#]),
        None,
    );
    assert_eq!(code(&out), 0, "{}", render(&out, &[]));
    assert_eq!(
        stdout(&out),
        "computing the square root of 81\nresult: 9.0\n"
    );
}

/// Every policy file shipped in examples/ is valid.
#[test]
fn the_example_policies_are_valid() {
    let dir = common::repo_root().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = run(spr().args(["policy", "check"]).arg(&path), None);
            assert_eq!(code(&out), 0, "{}: {}", path.display(), render(&out, &[]));
            checked += 1;
        }
    }
    assert!(checked >= 2);
}

/// The peak resident set of a live process, in KiB (`VmHWM` in /proc).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn config_path_request(id: &str, path: &std::path::Path) -> String {
    serde_json::json!({
        "id": id,
        "code": "result = limit",
        "policy": {"config_path": path},
    })
    .to_string()
}

/// A client's `config_path` can name anything on the server's host. None of these may
/// hang the server, make it read without end, or tell the client what is there: each
/// gets the same refusal, a valid file and a plain request still run, and EOF still
/// ends the session.
#[test]
fn serve_refuses_unusable_config_paths_without_revealing_them() {
    venv(); // made before the clock starts
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let fifo = dir.path().join("fifo.toml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let cap = usize::try_from(spr_policy::MAX_POLICY_FILE_BYTES).unwrap();
    let mut big = b"[policy.extra_globals]\nlimit = 1\n".to_vec();
    big.resize(cap + 1, b'#');
    let refused = [
        ("dev-zero", PathBuf::from("/dev/zero")),
        ("fifo", fifo),
        ("directory", dir.path().to_path_buf()),
        ("too-large", file("big.toml", &big)),
        ("missing", dir.path().join("missing.toml")),
        ("not-toml", file("syntax.toml", b"[policy\n")),
        ("not-utf8", file("latin1.toml", b"# caf\xe9\n")),
        ("invalid", file("zero.toml", b"timeout_seconds = 0\n")),
        (
            "names-a-file",
            file("nested.toml", b"config_path = '/etc/passwd'\n"),
        ),
    ];
    let good = file(
        "good.toml",
        b"timeout_seconds = 3\n[extra_globals]\nlimit = 7\n",
    );

    let started = Instant::now();
    let mut serve = Session::start(&mut spr_local(&["serve", "--stdio"]));
    let wait = Duration::from_secs(30);

    // /dev/zero first and alone, so the server's memory can be looked at right after.
    serve.send(&config_path_request(refused[0].0, &refused[0].1));
    let mut answers = vec![serve.recv(wait)];
    let rss = peak_rss_kib(serve.pid());
    assert!(rss < 256 << 10, "spr serve peaked at {rss} KiB");

    for (id, path) in &refused[1..] {
        serve.send(&config_path_request(id, path));
    }
    serve.send(&config_path_request("good", &good));
    serve.send(r#"{"id": "plain", "code": "result = 'still serving'"}"#);
    for _ in 1..refused.len() + 2 {
        answers.push(serve.recv(wait));
    }
    let (code, stderr) = serve.finish(wait);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );

    answers.sort_by_key(|a| a["id"].as_str().unwrap().to_string());
    let by_id = |id: &str| answers.iter().find(|a| a["id"] == id).unwrap();
    assert_eq!(by_id("good")["result"], 7, "{}", by_id("good"));
    assert_eq!(by_id("plain")["result"], "still serving");
    let mut text = String::new();
    for answer in answers.iter().filter(|a| a["ok"] == false) {
        assert_eq!(answer["exit_code"], 2, "{answer}");
        let error = answer["error"].as_str().unwrap();
        // Nothing about the host's files: no path, no OS error, no parse position.
        for leak in [
            dir.path().to_str().unwrap(),
            "/dev/zero",
            "os error",
            "column",
        ] {
            assert!(!error.contains(leak), "{error}");
        }
        text.push_str(&format!("{}: {error}\n", answer["id"]));
    }
    // Nor on the server's stderr, which the client may well be reading too.
    assert!(!stderr.contains(dir.path().to_str().unwrap()), "{stderr}");
    assert_snapshot!(text);
}

/// An engine that cannot start at first (its venv folder's parent is a regular file)
/// fails the first request with 125; once the cause is gone, a later request (after
/// the retry backoff) starts it and runs.
#[test]
fn serve_recovers_when_the_engine_can_start_again() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("parent");
    std::fs::write(&parent, "a regular file where the venv's parent should be").unwrap();
    let venv_dir = parent.join("venv");
    let mut cmd = spr();
    cmd.args(["serve", "--stdio", "--venv-manager", "python", "--venv-dir"])
        .arg(&venv_dir);
    let mut serve = Session::start(&mut cmd);
    let wait = Duration::from_secs(60);

    for id in 1..=3 {
        serve.send(&format!(r#"{{"id": {id}, "code": "result = {id}"}}"#));
    }
    for _ in 1..=3 {
        let answer = serve.recv(wait);
        assert_eq!(answer["exit_code"], 125, "{answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.starts_with(
                "the engine failed to start: the local engine could not be prepared: "
            ),
            "{error}"
        );
    }

    std::fs::remove_file(&parent).unwrap();
    std::fs::create_dir(&parent).unwrap();
    // Past the backoff, the next request builds the engine again.
    std::thread::sleep(Duration::from_millis(2500));
    serve.send(r#"{"id": 4, "code": "result = 'recovered'"}"#);
    let answer = serve.recv(wait);
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["result"], "recovered");
    serve.send(r#"{"id": 5, "code": "result = 5"}"#);
    assert_eq!(serve.recv(wait)["result"], 5);

    let (code, stderr) = serve.finish(wait);
    assert_eq!(code, Some(0), "{stderr}");
    // The failure is logged once on stderr, however many requests saw it, and so is the
    // recovery; stdout carried responses only (each line above parsed as one).
    assert_eq!(
        stderr.matches("the engine failed to start").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("the engine started after an earlier failure"),
        "{stderr}"
    );
}

/// The stdio agent loop of docs/SESSIONS.md: create, cells that share state and return
/// `value`, an interrupted cell that keeps the session, close, and refusals naming the
/// session.
#[test]
fn serve_keeps_a_session_s_state_between_runs_and_closes_it() {
    let wait = std::time::Duration::from_secs(60);
    let mut serve = Session::start(&mut spr_local(&["serve", "--stdio"]));
    serve.send(r#"{"id": "c", "op": "session.create", "policy": {"timeout_seconds": 1}, "ttl_seconds": 120}"#);
    let created = serve.recv(wait);
    assert_eq!(created["id"], "c", "{created}");
    let sid = created["session"]
        .as_str()
        .expect("a session id")
        .to_string();
    let cell = |id: u32, code: &str| {
        serde_json::json!({"id": id, "session": sid, "code": code}).to_string()
    };
    serve.send(&cell(
        1,
        "import statistics\ndata = [1, 2, 3, 4]\nprint('loaded')",
    ));
    let r = serve.recv(wait);
    assert_eq!(
        (r["id"].as_u64(), r["ok"].as_bool()),
        (Some(1), Some(true)),
        "{r}"
    );
    assert_eq!(r["stdout"], "loaded\n");
    assert!(r["value"].is_null(), "{r}");
    serve.send(&cell(2, "statistics.mean(data)"));
    let r = serve.recv(wait);
    assert_eq!(r["value"], 2.5, "{r}");
    serve.send(&cell(3, "while True:\n    pass"));
    let r = serve.recv(wait);
    assert_eq!(r["timed_out"], true, "{r}");
    assert!(r.get("session_lost").is_none(), "{r}");
    serve.send(&cell(4, "len(data)"));
    assert_eq!(serve.recv(wait)["value"], 4);
    serve.send(&format!(
        r#"{{"id": 5, "op": "session.close", "session": "{sid}"}}"#
    ));
    assert_eq!(
        serve.recv(wait),
        serde_json::json!({"id": 5, "closed": true})
    );
    serve.send(&cell(6, "data"));
    let r = serve.recv(wait);
    assert_eq!(r["exit_code"], 2, "{r}");
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains(&sid) && error.contains("unknown session"),
        "{r}"
    );
    serve.send(&format!(
        r#"{{"id": 7, "session": "{sid}", "code": "1", "policy": {{}}}}"#
    ));
    let r = serve.recv(wait);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("fixed when it is created"),
        "{r}"
    );
    let (status, stderr) = serve.finish(wait);
    assert_eq!(status, Some(0), "{stderr}");
}

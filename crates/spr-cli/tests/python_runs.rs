//! CLI behaviour that needs real Python runs through the local engine: the `run` exit
//! codes and output formats, and `serve` with concurrent requests and an EOF drain.
//!
//! Every test shares one venv under `CARGO_TARGET_TMPDIR` (or `SPR_TEST_TMPDIR`), made
//! with `python -m venv` (uv may be absent) by the first test that gets there.

mod common;

use common::{code, render, responses, run, spr, stdout};
use insta::assert_snapshot;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The shared venv, created once per test binary so concurrent tests do not race to
/// create it.
fn venv() -> &'static str {
    static VENV: OnceLock<String> = OnceLock::new();
    VENV.get_or_init(|| {
        let dir = common::target_tmpdir().join("spr-cli-venv");
        let dir = dir.display().to_string();
        let out = run(
            spr().args([
                "run",
                "-c",
                "pass",
                "--venv-manager",
                "python",
                "--venv-dir",
                &dir,
            ]),
            None,
        );
        assert_eq!(
            code(&out),
            0,
            "creating the test venv: {}",
            render(&out, &[])
        );
        dir
    })
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

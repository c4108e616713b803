//! A soak of the Docker engine: 10,000 mixed runs with the pool's containers killed,
//! stopped and paused along the way. Every request gets an answer, every answer is
//! either right or the honest failure of the run a disturbed container was serving, and
//! no container of the engine is left once it shuts down.

mod common;

use serde_json::json;
use spr_engine_docker::DockerEngineConfig;
use spr_policy::RunnerPolicy;
use spr_protocol::{Json, RunnerResult};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUNS: usize = 10_000;
const IN_FLIGHT: usize = 3;

#[derive(Debug, Clone)]
enum Check {
    Result(serde_json::Value),
    Stdout(String),
    Error(String),
    ExitCode(i32),
    Timeout,
}

fn case(i: usize) -> (String, Json, RunnerPolicy, Check) {
    let n = i as i64;
    let default = RunnerPolicy::default();
    match i % 8 {
        0..=2 => (
            "result = x * 3".into(),
            Json::from_value(&json!({"x": n})),
            default,
            Check::Result(json!(n * 3)),
        ),
        3 => (
            format!("print('line {i}')"),
            Json::from_value(&json!({})),
            default,
            Check::Stdout(format!("line {i}\n")),
        ),
        4 => (
            format!("raise KeyError({i})"),
            Json::from_value(&json!({})),
            default,
            Check::Error(format!("KeyError: {i}")),
        ),
        5 => (
            "import sys\nsys.exit(4)".into(),
            Json::from_value(&json!({})),
            default,
            Check::ExitCode(4),
        ),
        6 if i % 600 == 6 => (
            "import time\ntime.sleep(30)".into(),
            Json::from_value(&json!({})),
            RunnerPolicy {
                timeout_seconds: 1,
                ..default
            },
            Check::Timeout,
        ),
        _ => (
            // Leaves files and an orphan behind: the next run must not see them.
            "import os, time\nopen('/tmp/left', 'w').write('x')\nif os.fork() == 0:\n    time.sleep(60)\nresult = len(os.listdir('/tmp'))".into(),
            Json::from_value(&json!({})),
            common::open_policy(),
            Check::Result(json!(2)), // its own directory and the file it just wrote
        ),
    }
}

impl Check {
    fn holds(&self, r: &RunnerResult) -> bool {
        match self {
            Check::Result(v) => r.ok && r.result == *v,
            Check::Stdout(s) => r.ok && r.stdout == *s,
            Check::Error(e) => !r.ok && r.error.as_deref() == Some(e.as_str()),
            Check::ExitCode(c) => r.exit_code == *c,
            Check::Timeout => r.timed_out && r.exit_code == 124,
        }
    }
}

/// The failure a run may honestly get when its container was killed, stopped or
/// paused under it.
fn disturbed(r: &RunnerResult) -> bool {
    let error = r.error.as_deref().unwrap_or("");
    (r.exit_code == 125 && (error.contains("container") || error.contains("Container")))
        || (r.timed_out && error.contains("stopped answering"))
}

/// This process's owner label, as the engine writes it (`pid:starttime@hostname`).
fn owner_label() -> String {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    // Field 22 of the whole line is the 20th after the command's closing parenthesis.
    let start: u64 = rest.split_whitespace().nth(19).unwrap().parse().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    format!("{}:{start}@{host}", std::process::id())
}

/// The engine's containers, busy or idle (never another test's).
fn our_containers(owner: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "--filter",
            &format!("label=dev.spr.owner={owner}"),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn docker_cli(args: &[&str]) {
    let _ = std::process::Command::new("docker")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_mixed_runs_with_containers_killed_stopped_and_paused() {
    let config = DockerEngineConfig {
        pool_size: Some(2),
        // Recycling is part of the soak too.
        max_runs: Some(500),
        ..Default::default()
    };
    let Some(engine) = common::engine(config).await else {
        return;
    };
    let engine = Arc::new(engine);
    let done = Arc::new(AtomicUsize::new(0));
    let events = Arc::new(AtomicUsize::new(0));
    let owner = owner_label();
    assert!(
        !our_containers(&owner).is_empty(),
        "the owner label {owner} finds no container"
    );
    let chaos = {
        let (done, events, owner) = (done.clone(), events.clone(), owner.clone());
        tokio::spawn(async move {
            let mut round = 0u32;
            while done.load(Ordering::Relaxed) < RUNS - 300 {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                round += 1;
                let ours = our_containers(&owner);
                let Some(name) = ours.get(round as usize % ours.len().max(1)).cloned() else {
                    continue;
                };
                events.fetch_add(1, Ordering::Relaxed);
                match round % 3 {
                    0 => docker_cli(&["kill", &name]),
                    1 => docker_cli(&["stop", "-t", "0", &name]),
                    _ => {
                        // Paused, then resumed.
                        docker_cli(&["pause", &name]);
                        tokio::time::sleep(Duration::from_millis(400)).await;
                        docker_cli(&["unpause", &name]);
                    }
                }
            }
        })
    };
    let started = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tasks = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (engine, done) = (engine.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let (code, input, policy, check) = case(i);
            let r = engine.run(&code, &input, &policy).await;
            drop(permit);
            done.fetch_add(1, Ordering::Relaxed);
            if check.holds(&r) {
                Ok(false)
            } else if disturbed(&r) {
                Ok(true)
            } else {
                Err(format!("run {i}: expected {check:?}, got {r:?}"))
            }
        }));
    }
    let mut wrong = Vec::new();
    let mut disturbed_runs = 0;
    for task in tasks {
        match task.await.expect("every run answers") {
            Ok(true) => disturbed_runs += 1,
            Ok(false) => {}
            Err(why) => wrong.push(why),
        }
    }
    chaos.abort();
    let elapsed = started.elapsed();
    let events = events.load(Ordering::Relaxed);
    eprintln!(
        "soak: {RUNS} runs in {elapsed:?}, {events} chaos events, {disturbed_runs} disturbed"
    );
    assert!(
        wrong.is_empty(),
        "{} wrong answers, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert!(
        disturbed_runs <= 3 * events + 3,
        "{disturbed_runs} for {events}"
    );
    assert!(events > 0, "the chaos never struck");
    engine.shutdown().await;
    // Nothing left: none of the engine's containers exists any more (paused or stopped
    // ones included).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = std::process::Command::new("docker")
            .args([
                "ps",
                "-a",
                "--filter",
                &format!("label=dev.spr.owner={owner}"),
                "--format",
                "{{.Names}} {{.Status}}",
            ])
            .output()
            .expect("docker ps");
        let left = String::from_utf8_lossy(&left.stdout).trim().to_string();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

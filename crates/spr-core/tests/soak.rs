//! A soak of the local engine: 10,000 mixed runs (results, output, exceptions, exits,
//! policy refusals, truncation, memory errors, orphans, timeouts) with workers killed,
//! stopped and paused along the way. Every request gets an answer, every answer is
//! either right or the honest failure of the one run a disturbed worker was serving,
//! and nothing is left behind.

mod common;

use serde_json::json;
use spr_core::{run_code, LocalEngine, LocalEngineConfig, PolicySource, RunnerPolicy, VenvManager};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUNS: usize = 10_000;
const IN_FLIGHT: usize = 4;

fn permissive(timeout_seconds: u64) -> RunnerPolicy {
    RunnerPolicy {
        blocked_imports: vec![],
        blocked_builtins: vec![],
        timeout_seconds,
        ..RunnerPolicy::default()
    }
}

/// What run `i` is, and a check of its result (`Err` says what is wrong).
fn case(i: usize) -> (String, serde_json::Value, RunnerPolicy, Check) {
    let n = i as i64;
    match i % 10 {
        0..=2 => (
            "result = x * 3 + len(input_data)".into(),
            json!({"x": n}),
            RunnerPolicy::default(),
            Check::Result(json!(n * 3 + 1)),
        ),
        3 => (
            format!("print('line {i}')\nresult = 'p'"),
            json!({}),
            RunnerPolicy::default(),
            Check::Stdout(format!("line {i}\n")),
        ),
        4 => (
            format!("raise ValueError('boom {i}')"),
            json!({}),
            RunnerPolicy::default(),
            Check::Error(format!("ValueError: boom {i}")),
        ),
        5 => (
            "import sys\nsys.exit(3)".into(),
            json!({}),
            RunnerPolicy::default(),
            Check::ExitCode(3),
        ),
        6 => (
            "import os".into(),
            json!({}),
            RunnerPolicy::default(),
            Check::Error("ImportError: Import 'os' is blocked by policy".into()),
        ),
        7 => (
            "print('x' * 300000)".into(),
            json!({}),
            RunnerPolicy::default(),
            Check::Truncated,
        ),
        8 if i % 40 == 8 => (
            "x = bytearray(1 << 30)".into(),
            json!({}),
            RunnerPolicy {
                memory_limit_mb: 64,
                ..RunnerPolicy::default()
            },
            Check::Memory,
        ),
        8 => (
            // An orphan that outlives the run's process: killed by the sweep.
            "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\nresult = 'parent'".into(),
            json!({}),
            permissive(5),
            Check::Result(json!("parent")),
        ),
        _ if i % 500 == 9 => (
            "import time\ntime.sleep(30)".into(),
            json!({}),
            permissive(1),
            Check::Timeout,
        ),
        _ => (
            "result = sum(range(1000))".into(),
            json!({}),
            RunnerPolicy::default(),
            Check::Result(json!(499500)),
        ),
    }
}

#[derive(Debug, Clone)]
enum Check {
    Result(serde_json::Value),
    Stdout(String),
    Error(String),
    ExitCode(i32),
    Truncated,
    Memory,
    Timeout,
}

impl Check {
    fn holds(&self, r: &spr_core::RunnerResult) -> Result<(), String> {
        let ok = match self {
            Check::Result(v) => r.ok && r.result == *v,
            Check::Stdout(s) => r.ok && r.stdout == *s,
            Check::Error(e) => !r.ok && r.error.as_deref() == Some(e.as_str()),
            Check::ExitCode(c) => r.exit_code == *c,
            Check::Truncated => r.ok && r.stdout_truncated,
            Check::Memory => !r.ok && r.resource_exceeded,
            Check::Timeout => r.timed_out && r.exit_code == 124,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("expected {self:?}, got {r:?}"))
        }
    }
}

/// The failure a run may honestly get when its worker was killed or stopped under it.
fn disturbed(r: &spr_core::RunnerResult) -> bool {
    let error = r.error.as_deref().unwrap_or("");
    (r.exit_code == 125
        && (error.contains("worker failed during the run")
            || error.contains("Could not start a Python worker")))
        || (r.timed_out && error.contains("stopped responding"))
}

/// Host pids of this process's workers' monitors (a run's parent's parent's parent is
/// never one: only processes whose command line is the harness and whose parent is a
/// direct child of this process, the supervisor).
fn monitors() -> Vec<i32> {
    let me = std::process::id() as i32;
    let parent_of = |pid: i32| -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 2..];
        rest.split_whitespace().nth(1)?.parse().ok()
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains("spr_harness.py") {
            continue;
        }
        if parent_of(pid).and_then(parent_of) == Some(me) {
            out.push(pid);
        }
    }
    out
}

fn signal(pid: i32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_mixed_runs_with_workers_killed_stopped_and_paused() {
    let mut config = LocalEngineConfig::new(common::shared_venv());
    config.venv_manager = VenvManager::Python;
    config.pool_size = Some(2);
    let engine = Arc::new(LocalEngine::new(config).expect("the engine starts"));
    let private_dirs = |marker: u32| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("spr-{marker}-")))
            })
            .collect()
    };
    let done = Arc::new(AtomicUsize::new(0));
    let chaos_events = Arc::new(AtomicUsize::new(0));
    let chaos = {
        let done = done.clone();
        let events = chaos_events.clone();
        tokio::spawn(async move {
            let mut round = 0u32;
            while done.load(Ordering::Relaxed) < RUNS - 200 {
                tokio::time::sleep(Duration::from_millis(700)).await;
                round += 1;
                let Some(&pid) = monitors().first() else {
                    continue;
                };
                events.fetch_add(1, Ordering::Relaxed);
                match round % 4 {
                    // Killed outright.
                    0 => signal(pid, "-KILL"),
                    // Stopped for good: the host's backstop discards it.
                    1 if round % 16 == 1 => signal(pid, "-STOP"),
                    // Paused, then resumed.
                    1 | 2 => {
                        signal(pid, "-STOP");
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        signal(pid, "-CONT");
                    }
                    _ => signal(pid, "-KILL"),
                }
            }
        })
    };
    let started = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tasks = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let engine = engine.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let (code, input, policy, check) = case(i);
            let r = run_code(&code, &*engine, Some(input), PolicySource::Policy(policy))
                .await
                .expect("the run is accepted");
            drop(permit);
            done.fetch_add(1, Ordering::Relaxed);
            match check.holds(&r) {
                Ok(()) => Ok(false),
                Err(_) if disturbed(&r) => Ok(true),
                Err(why) => Err(format!("run {i}: {why}")),
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
    // Resume whatever the chaos left stopped, so shutdown is not waiting on it.
    for pid in monitors() {
        signal(pid, "-CONT");
    }
    engine.shutdown().await;
    let events = chaos_events.load(Ordering::Relaxed);
    eprintln!(
        "soak: {RUNS} runs in {elapsed:?}, {events} chaos events, {disturbed_runs} runs disturbed"
    );
    assert!(
        wrong.is_empty(),
        "{} wrong answers, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    // A kill or stop costs the run in progress and at most the next start.
    assert!(
        disturbed_runs <= 3 * events + 2,
        "{disturbed_runs} disturbed runs for {events} chaos events"
    );
    assert!(events > 0, "the chaos never struck");
    drop(engine);
    // Nothing left: no harness process of ours, no private directory of this process.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = monitors();
        let dirs = private_dirs(std::process::id());
        if left.is_empty() && dirs.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: workers {left:?}, directories {dirs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

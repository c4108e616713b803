//! `cargo xtask bench --python`: warm `run_code` from Python (the package built in release
//! mode and installed by pip), sync and asyncio, and threads sharing one engine.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::bench::{self, summarize, Args};
use crate::python::{self, Profile};
use crate::util::{self, failed, Error};

/// The bar for a warm `run_code` from Python.
pub const TARGET_P50_MS: f64 = 3.5;

pub fn run(root: &Path, args: &Args, raw: &[String]) -> Result<(), Error> {
    if args.engine != "local" {
        return Err(util::refused(
            "bench: --python measures the local engine only",
        ));
    }
    let python = python::install(root, "bench", Profile::Release)?;
    let venv = bench::target_dir(root).join("bench-python-engine-venv");
    let script = root.join(python::PACKAGE).join("bench/bench_runs.py");
    let out = util::output(
        Command::new(&python)
            .arg(&script)
            .arg(&venv)
            .arg(args.runs.to_string())
            .arg(args.seconds.to_string())
            .current_dir(root),
    )?;
    let data: Value = serde_json::from_str(out.trim())
        .map_err(|e| failed(format!("the bench script printed no JSON ({e}): {out}")))?;
    let samples = |key: &str| -> Result<Vec<f64>, Error> {
        data[key]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect::<Vec<_>>())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| failed(format!("the bench script gave no `{key}` samples")))
    };
    let sync = summarize(&samples("sync")?);
    let aio = summarize(&samples("async")?);
    let threads = data["threads"].as_u64().unwrap_or(0);
    let thread_runs = data["thread_runs"].as_f64().unwrap_or(0.0);
    let thread_seconds = data["thread_seconds"].as_f64().unwrap_or(1.0);
    let ms = |v: f64| format!("{v:.2} ms");
    let verdict = if sync.p50 <= TARGET_P50_MS {
        format!("target ≤ {TARGET_P50_MS} ms: met")
    } else {
        format!("target ≤ {TARGET_P50_MS} ms: MISSED")
    };
    let table = format!(
        "| metric | value | target / note |\n|---|---:|---|\n\
         | `spr.run_code` p50 | {} | {verdict} |\n\
         | `spr.run_code` p99 | {} | mean {}, {} runs |\n\
         | `await spr.run_code_async` p50 | {} | p99 {}, {} runs |\n\
         | throughput, {threads} threads, one engine | {:.0} runs/s | {:.0} runs in {:.1} s |\n",
        ms(sync.p50),
        ms(sync.p99),
        ms(sync.mean),
        sync.n,
        ms(aio.p50),
        ms(aio.p99),
        aio.n,
        thread_runs / thread_seconds,
        thread_runs,
        thread_seconds,
    );
    let engine_python = data["engine_python"].as_str().unwrap_or("?");
    let body = format!(
        "Measured {} on {}.\n\nCommand: `cargo xtask bench --python {}`. The package is built in release \
         mode and installed with pip into a venv of its own; each sample is one `run_code(\"{}\", engine)` \
         call timed in Python with `time.perf_counter`, on a warm `spr.LocalEngine` (default pool, full \
         sandbox), host Python {}.\n\n{table}",
        bench::today(),
        bench::machine(engine_python),
        raw.iter()
            .filter(|a| *a != "--python" && *a != "--write")
            .cloned()
            .collect::<Vec<_>>()
            .join(" "),
        "result = 2 + 2",
        data["host_python"].as_str().unwrap_or("?"),
    );
    println!("{body}");
    if args.write {
        bench::write_section(root, "python", &body)?;
    }
    Ok(())
}

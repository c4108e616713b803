//! `cargo xtask bench --pandas`: warm latency of a run that imports pandas, through `spr serve
//! --stdio`, without and with `--preload pandas`, with pandas really installed from PyPI (the pinned
//! data stack of `.ci/datastack-setup.sh` when it is there, else `pandas==2.2.3` installed by the
//! engine: into a bench venv, or baked into the Docker engine's derived image).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::bench::{self, summarize, Args, Server, Summary};
use crate::util::{failed, Error};

pub const CODE: &str = "import pandas as pd\nresult = int(pd.DataFrame({\"a\": [1, 2]}).a.sum())";
const PANDAS: &str = "pandas==2.2.3";
const WARMUP: usize = 5;
/// Runs without the preload pay the whole import each (hundreds of ms): fewer of them.
const MAX_RUNS_WITHOUT: usize = 50;
/// The first request may create a venv and install pandas, or build the derived image.
const FIRST_TIMEOUT: Duration = Duration::from_secs(900);
const TIMEOUT: Duration = Duration::from_secs(60);
/// The issue's bar for the snippet with pandas preloaded.
pub const TARGET_P50_MS: f64 = 6.0;
/// The pause between the runs of the paced phase: long enough for each run to find the
/// worker idle (the previous run's process gone, the next ones ready).
const PACED_GAP: Duration = Duration::from_millis(20);
/// Fewer runs than this make the CPU figure mostly rounding: /proc/stat counts in ticks
/// (10 ms at the usual 100 per second).
const MIN_RUNS_FOR_CPU: usize = 50;

/// The pinned data-stack venv, when this machine has it.
fn datastack() -> Option<PathBuf> {
    let venv = std::env::var_os("SPR_DATASTACK_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/spr-datastack"));
    venv.join("bin/python").is_file().then_some(venv)
}

/// Where pandas comes from, as `spr serve` options, and how to say it in the table.
fn source_args(root: &Path, engine: &str) -> (Vec<String>, String) {
    if engine == "docker" {
        return (
            vec!["--docker-package".into(), PANDAS.into()],
            format!("`{PANDAS}` from PyPI in the engine's derived image"),
        );
    }
    match datastack() {
        Some(venv) => (
            vec!["--venv-dir".into(), venv.display().to_string()],
            format!(
                "the pinned data stack (`{PANDAS}` from PyPI) in {}",
                venv.display()
            ),
        ),
        None => {
            let venv = bench::target_dir(root).join("bench-pandas-venv");
            (
                vec![
                    "--venv-dir".into(),
                    venv.display().to_string(),
                    "--package".into(),
                    PANDAS.into(),
                ],
                format!("`{PANDAS}` from PyPI, installed by the engine into a bench venv"),
            )
        }
    }
}

/// The operator's warm-up of the third server (`--warmup`): pandas used once the way
/// runs use it, but not the measured snippet (other columns, dtypes and reductions).
pub const WARMUP_CODE: &str = "import pandas as pd\ndf = pd.DataFrame({\"x\": [1.5, 2.5], \"y\": [\"p\", \"q\"]})\ndf.x.mean()\ndf[\"x\"].sum()";

/// The same server's cost of a run that does nothing, to tell the preloaded process's own
/// per-run cost (its fork and exit) from pandas' work.
pub const TRIVIAL: (&str, i64) = ("result = 2 + 2", 4);
const SNIPPET: (&str, i64) = (CODE, 3);

fn check(resp: &Value, id: &str, expected: i64) -> Result<Option<f64>, String> {
    if resp["id"] != id {
        return Err(format!("expected the response to id {id}, got {resp}"));
    }
    if resp["ok"] != true || resp["result"].as_i64() != Some(expected) {
        return Err(format!("the run {id} did not return {expected}: {resp}"));
    }
    Ok(resp["duration_ms"].as_f64())
}

#[derive(Debug, Clone)]
pub struct Measured {
    pub runs: usize,
    pub latency: Summary,
    pub server: Option<Summary>,
    /// The whole machine's CPU time over the measured runs (None: not measured).
    pub cpu: Option<Cpu>,
}

#[derive(Debug, Clone)]
pub struct Cpu {
    /// Busy time of every core per run (/proc/stat).
    pub ms_per_run: f64,
    /// The machine's online cores.
    pub cores: usize,
}

/// The policy of every run: the default, unless pandas cannot be imported under it (before issue 11's
/// item 0, the default policy's import checks also judged what pandas imports for itself, `subprocess`
/// and `ctypes`); then the default with only `os`, `socket` and `importlib` blocked, for both phases,
/// and the table says so.
fn relaxed_policy() -> Value {
    json!({ "blocked_imports": ["os", "socket", "importlib"] })
}

fn request(id: &str, code: &str, policy: &Option<Value>) -> Value {
    let mut r = json!({ "id": id, "code": code });
    if let Some(p) = policy {
        r["policy"] = p.clone();
    }
    r
}

/// Whether the default policy lets a run import pandas itself (one probe on a server without the
/// preload; its first request may create the venv or the image).
fn default_policy_imports_pandas(server: &mut Server) -> Result<bool, Error> {
    server.send_request(&request("probe", CODE, &None))?;
    let resp = server.recv(FIRST_TIMEOUT)?;
    Ok(check(&resp, "probe", 3).is_ok())
}

/// The clock ticks per second /proc/stat counts in (`getconf CLK_TCK`; 100 where it
/// cannot say, as on every common architecture).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.trim().parse().ok())
        .filter(|&t: &f64| t > 0.0)
        .unwrap_or(100.0)
}

/// (busy ticks of every online core since boot, the number of those cores), from
/// /proc/stat: user, nice, system, irq and softirq; neither idle, I/O wait nor the time
/// a hypervisor stole.
fn machine_busy_ticks() -> Option<(f64, usize)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut lines = stat.lines();
    let fields: Vec<f64> = lines
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let busy: f64 = [0, 1, 2, 5, 6].iter().filter_map(|&i| fields.get(i)).sum();
    let cores = lines
        .filter(|l| l.starts_with("cpu") && l[3..].starts_with(|c: char| c.is_ascii_digit()))
        .count();
    Some((busy, cores.max(1)))
}

fn measure(
    server: &mut Server,
    tag: &str,
    runs: usize,
    (code, expected): (&str, i64),
    policy: &Option<Value>,
    pause: Duration,
) -> Result<Measured, Error> {
    eprintln!(
        "bench: {tag}: {WARMUP} warm-up runs, then {runs} sequential runs of {code:?}, {} ms apart",
        pause.as_millis()
    );
    let mut latency = Vec::with_capacity(runs);
    let mut reported = Vec::with_capacity(runs);
    let mut busy_at_start = None;
    for i in 0..WARMUP + runs {
        if i == WARMUP {
            busy_at_start = machine_busy_ticks();
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        let id = format!("{tag}{i}");
        let start = Instant::now();
        server.send_request(&request(&id, code, policy))?;
        let resp = server.recv(if i == 0 { FIRST_TIMEOUT } else { TIMEOUT })?;
        let elapsed = start.elapsed().as_secs_f64() * 1000.0;
        let ms = check(&resp, &id, expected).map_err(failed)?;
        if i >= WARMUP {
            latency.push(elapsed);
            reported.extend(ms);
        }
    }
    // With no pause the machine's busy time is the runs' (and the client's, which is
    // small); a paced phase would count whatever else ran while it slept.
    let cpu = match (busy_at_start, machine_busy_ticks()) {
        (Some((a, cores)), Some((b, _))) if pause.is_zero() && runs >= MIN_RUNS_FOR_CPU => {
            Some(Cpu {
                ms_per_run: (b - a) * 1000.0 / clock_ticks() / runs as f64,
                cores,
            })
        }
        _ => None,
    };
    Ok(Measured {
        runs,
        latency: summarize(&latency),
        server: (!reported.is_empty()).then(|| summarize(&reported)),
        cpu,
    })
}

fn ms(v: f64) -> String {
    format!("{v:.2} ms")
}

/// The one-minute load average, as /proc/loadavg says (the machine is often shared).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

pub struct Context<'a> {
    pub source: &'a str,
    pub policy: &'a str,
    /// Load average before and after.
    pub load: (String, String),
}

/// What one bench measured: `with` back-to-back runs preloaded, `paced` the same with a
/// pause before each, `trivial` `result = 2 + 2` preloaded, `warmed` and `warmed_paced`
/// the snippet on a server with `--warmup` too, `without` runs that import pandas.
pub struct Phases {
    pub with: Measured,
    pub paced: Measured,
    pub trivial: Measured,
    pub warmed: Measured,
    pub warmed_paced: Measured,
    pub without: Measured,
}

fn verdict(p50: f64) -> String {
    let word = if p50 <= TARGET_P50_MS {
        "met"
    } else {
        "missed"
    };
    format!("≤ {TARGET_P50_MS} ms ({word})")
}

fn cpu_row(label: &str, m: &Measured) -> Option<(String, String, String)> {
    let cpu = m.cpu.as_ref()?;
    Some((
        label.to_string(),
        ms(cpu.ms_per_run),
        format!(
            "every core's busy time over the runs: back-to-back runs cannot average under {} on {} cores",
            ms(cpu.ms_per_run / cpu.cores as f64),
            cpu.cores
        ),
    ))
}

pub fn table(cx: &Context, phases: &Phases) -> String {
    let (source, policy) = (cx.source, cx.policy);
    let Phases {
        with,
        paced,
        trivial,
        warmed,
        warmed_paced,
        without,
    } = phases;
    let mut rows = vec![
        ("pandas from".to_string(), source.to_string(), String::new()),
        ("policy".to_string(), policy.to_string(), String::new()),
        (
            "load average (1 min) before / after".to_string(),
            format!("{} / {}", cx.load.0, cx.load.1),
            format!(
                "{} cores",
                std::thread::available_parallelism().map_or(1, |n| n.get())
            ),
        ),
        (
            "runs with `--preload pandas`".into(),
            format!("{} (after {WARMUP} warm-up)", with.runs),
            String::new(),
        ),
        (
            "latency p50, preloaded".into(),
            ms(with.latency.p50),
            format!("{}, back-to-back", verdict(with.latency.p50)),
        ),
        (
            "latency p90, preloaded".into(),
            ms(with.latency.p90),
            String::new(),
        ),
        (
            "latency p99, preloaded".into(),
            ms(with.latency.p99),
            String::new(),
        ),
        (
            "latency max, preloaded".into(),
            ms(with.latency.max),
            String::new(),
        ),
    ];
    if let Some(s) = &with.server {
        rows.push((
            "server-reported `duration_ms` p50, preloaded".into(),
            ms(s.p50),
            String::new(),
        ));
    }
    rows.extend(cpu_row("machine CPU per run, preloaded", with));
    rows.push((
        format!("latency p50, preloaded, {} ms apart", PACED_GAP.as_millis()),
        ms(paced.latency.p50),
        format!(
            "{} runs, each finding the worker idle; p99 {}",
            paced.runs,
            ms(paced.latency.p99)
        ),
    ));
    rows.push((
        "latency p50 of `result = 2 + 2`, pandas preloaded".into(),
        ms(trivial.latency.p50),
        format!(
            "{} runs: the preloaded process's own cost (fork, exit); p99 {}",
            trivial.runs,
            ms(trivial.latency.p99)
        ),
    ));
    rows.push((
        "warm-up of the third server (`--warmup`)".into(),
        format!("`{}`", WARMUP_CODE.replace('\n', "; ")),
        "pandas used once, not the measured snippet".into(),
    ));
    rows.push((
        "latency p50, preloaded and warmed up".into(),
        ms(warmed.latency.p50),
        format!(
            "{}, back-to-back; p99 {}",
            verdict(warmed.latency.p50),
            ms(warmed.latency.p99)
        ),
    ));
    rows.extend(cpu_row(
        "machine CPU per run, preloaded and warmed up",
        warmed,
    ));
    rows.push((
        format!(
            "latency p50, preloaded and warmed up, {} ms apart",
            PACED_GAP.as_millis()
        ),
        ms(warmed_paced.latency.p50),
        format!(
            "{}, {} runs, each finding the worker ready; p99 {}",
            verdict(warmed_paced.latency.p50),
            warmed_paced.runs,
            ms(warmed_paced.latency.p99)
        ),
    ));
    rows.push((
        "runs without preload".into(),
        format!("{} (after {WARMUP} warm-up)", without.runs),
        "each imports pandas itself".into(),
    ));
    rows.push((
        "latency p50, not preloaded".into(),
        ms(without.latency.p50),
        String::new(),
    ));
    rows.push((
        "latency p99, not preloaded".into(),
        ms(without.latency.p99),
        String::new(),
    ));
    if let Some(s) = &without.server {
        rows.push((
            "server-reported `duration_ms` p50, not preloaded".into(),
            ms(s.p50),
            String::new(),
        ));
    }
    rows.push((
        "speed-up of the p50".into(),
        format!("{:.0}×", without.latency.p50 / with.latency.p50),
        String::new(),
    ));
    let mut out = String::from("| metric | value | target / note |\n|---|---:|---|\n");
    for (a, b, c) in rows {
        out.push_str(&format!("| {a} | {b} | {c} |\n"));
    }
    out
}

pub fn run(root: &Path, bin: &Path, args: &Args, raw: &[String]) -> Result<(), Error> {
    let (source, described) = source_args(root, &args.engine);
    let serve = |preload: bool, warmup: bool| {
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--stdio"]).current_dir(root);
        if args.engine != "local" {
            cmd.args(["--engine", &args.engine]);
        }
        if let Some(n) = args.pool_size {
            cmd.args(["--pool-size", &n.to_string()]);
        }
        cmd.args(&source);
        if preload {
            cmd.args(["--preload", "pandas"]);
        }
        if warmup {
            cmd.args(["--warmup", WARMUP_CODE]);
        }
        cmd
    };
    let load_before = load_average();
    let mut server = Server::start(&mut serve(false, false))?;
    let (policy, policy_note) = if default_policy_imports_pandas(&mut server)? {
        (None, "the default".to_string())
    } else {
        eprintln!(
            "bench: pandas cannot be imported under the default policy here; both phases use {}",
            relaxed_policy()
        );
        (
            Some(relaxed_policy()),
            "the default but `blocked_imports = [\"os\", \"socket\", \"importlib\"]` (pandas imports `subprocess` and `ctypes` for itself, which the default refuses a run that imports pandas; the same for both phases)".to_string(),
        )
    };
    let without = measure(
        &mut server,
        "n",
        args.runs.min(MAX_RUNS_WITHOUT),
        SNIPPET,
        &policy,
        Duration::ZERO,
    )?;
    if let Err(e) = server.finish() {
        eprintln!("bench: warning: {}", e.message());
    }
    let local = args.engine == "local";
    let mut server = Server::start(&mut serve(true, false))?;
    let phase = |server: &mut Server, tag, runs, snippet, pause| {
        let mut m = measure(server, tag, runs, snippet, &policy, pause)?;
        if !local {
            // The runs' CPU is then a daemon's, perhaps on another machine or under a
            // container's CPU quota: this machine's busy time would not say it.
            m.cpu = None;
        }
        Ok::<_, Error>(m)
    };
    let with = phase(&mut server, "p", args.runs, SNIPPET, Duration::ZERO)?;
    let paced = phase(&mut server, "q", args.runs.min(200), SNIPPET, PACED_GAP)?;
    let trivial = phase(
        &mut server,
        "t",
        args.runs.min(200),
        TRIVIAL,
        Duration::ZERO,
    )?;
    let python = bench::python_version(&mut server);
    if let Err(e) = server.finish() {
        eprintln!("bench: warning: {}", e.message());
    }
    let mut server = Server::start(&mut serve(true, true))?;
    let warmed = phase(&mut server, "w", args.runs, SNIPPET, Duration::ZERO)?;
    let warmed_paced = phase(&mut server, "x", args.runs.min(200), SNIPPET, PACED_GAP)?;
    if let Err(e) = server.finish() {
        eprintln!("bench: warning: {}", e.message());
    }

    let cx = Context {
        source: &described,
        policy: &policy_note,
        load: (load_before, load_average()),
    };
    let phases = Phases {
        with,
        paced,
        trivial,
        warmed,
        warmed_paced,
        without,
    };
    let table = table(&cx, &phases);
    let command = format!("cargo xtask bench {}", raw.join(" "));
    let machine = bench::machine(&python);
    println!("\npandas, {} engine, {machine}\n\n{table}", args.engine);
    if args.write {
        let body = format!(
            "Measured {} on {machine}.\n\nCommand: `{command}`\n\n{table}",
            bench::today()
        );
        bench::write_section(root, &format!("pandas-{}", args.engine), &body)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(samples: &[f64]) -> Measured {
        Measured {
            runs: samples.len(),
            latency: summarize(samples),
            server: Some(summarize(samples)),
            cpu: Some(Cpu {
                ms_per_run: 12.0,
                cores: 2,
            }),
        }
    }

    #[test]
    fn the_snippet_is_the_issues() {
        assert_eq!(
            CODE,
            "import pandas as pd\nresult = int(pd.DataFrame({\"a\": [1, 2]}).a.sum())"
        );
        let ok = json!({"id": "p1", "ok": true, "result": 3, "duration_ms": 2.0});
        assert_eq!(check(&ok, "p1", 3), Ok(Some(2.0)));
        let wrong = json!({"id": "p1", "ok": true, "result": 4});
        assert_eq!(request("a", CODE, &None), json!({"id": "a", "code": CODE}));
        assert_eq!(
            request("a", CODE, &Some(relaxed_policy()))["policy"],
            relaxed_policy()
        );
        assert!(check(&wrong, "p1", 3).is_err());
    }

    #[test]
    fn table_marks_the_target_and_the_speed_up() {
        let cx = Context {
            source: "x",
            policy: "the default",
            load: ("0.5".into(), "0.7".into()),
        };
        let phases = |with: &[f64], warmed: &[f64]| Phases {
            with: measured(with),
            paced: measured(&[3.5]),
            trivial: measured(&[3.0]),
            warmed: measured(warmed),
            warmed_paced: measured(&[2.5]),
            without: measured(&[400.0, 500.0]),
        };
        let t = table(&cx, &phases(&[4.0, 5.0], &[7.0]));
        assert!(
            t.contains("| latency p50, preloaded, 20 ms apart | 3.50 ms |"),
            "{t}"
        );
        assert!(
            t.contains("| machine CPU per run, preloaded | 12.00 ms | every core's busy time over the runs: back-to-back runs cannot average under 6.00 ms on 2 cores |"),
            "{t}"
        );
        assert!(
            t.contains("| load average (1 min) before / after | 0.5 / 0.7 |"),
            "{t}"
        );
        assert!(
            t.contains("| latency p50, preloaded | 4.00 ms | ≤ 6 ms (met), back-to-back |"),
            "{t}"
        );
        assert!(
            t.contains("| latency p50, preloaded and warmed up | 7.00 ms | ≤ 6 ms (missed), back-to-back; p99 7.00 ms |"),
            "{t}"
        );
        assert!(
            t.contains("| latency p50, preloaded and warmed up, 20 ms apart | 2.50 ms | ≤ 6 ms (met), 1 runs, each finding the worker ready; p99 2.50 ms |"),
            "{t}"
        );
        assert!(
            t.contains("| machine CPU per run, preloaded and warmed up | 12.00 ms |"),
            "{t}"
        );
        assert!(t.contains("| speed-up of the p50 | 100× |  |"), "{t}");
    }
}

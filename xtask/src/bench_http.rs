//! `cargo xtask bench --http`: latency, throughput and memory of `spr serve --http`, measured from outside.
//!
//! The client is a few dozen lines of HTTP/1.1 over `std::net::TcpStream` rather than a client library: the
//! bench must know that the sequential phase used exactly one kept-alive connection (a closed one is an
//! error, never a silent reconnect), and the numbers should be the server's, not a client's.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use spr_protocol::RunnerResult;

use crate::bench::{self, summarize, Args, Summary};
use crate::util::{failed, Error};

const CODE: &str = "result = 2 + 2";
const WARMUP: usize = 20;
const FIRST_TIMEOUT: Duration = Duration::from_secs(180);
const TIMEOUT: Duration = Duration::from_secs(60);
/// Clients in the throughput phase, each on its own kept-alive connection.
pub const CLIENTS: usize = 16;
/// Requests of the memory flood, and the size of each one's body.
pub const FLOOD_REQUESTS: usize = 1000;
pub const FLOOD_BODY_BYTES: usize = 1 << 20;
/// Queue places asked of the server: every throughput client fits (none gets 429).
const QUEUE: usize = 64;

/// The targets of the HTTP issue, on a 2-core machine.
pub const TARGET_P50_MS: f64 = 4.0;
pub const TARGET_RUNS_PER_S: f64 = 400.0;
pub const TARGET_RSS_MB: f64 = 200.0;

// ---------------------------------------------------------------------------------------------------------
// HTTP/1.1 by hand

/// One kept-alive connection.
#[derive(Debug)]
pub struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    host: String,
}

/// One answer: its status and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Connection {
    pub fn open(addr: &str) -> Result<Connection, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connecting to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(TIMEOUT))
            .map_err(|e| e.to_string())?;
        Ok(Connection {
            writer: stream.try_clone().map_err(|e| e.to_string())?,
            reader: BufReader::with_capacity(64 << 10, stream),
            host: addr.to_string(),
        })
    }

    /// `POST path` with a JSON body; the answer, read by its Content-Length. An answer that closes the
    /// connection is an error: the bench promises one connection per client.
    pub fn post(&mut self, path: &str, body: &[u8]) -> Result<Reply, String> {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        self.writer
            .write_all(&request)
            .map_err(|e| format!("writing a request: {e}"))?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> Result<Reply, String> {
        let mut line = String::new();
        let read = |reader: &mut BufReader<TcpStream>, line: &mut String| {
            line.clear();
            match reader.read_line(line) {
                Ok(0) => Err("the server closed the connection".to_string()),
                Ok(_) => Ok(()),
                Err(e) => Err(format!("reading an answer: {e}")),
            }
        };
        read(&mut self.reader, &mut line)?;
        let status = parse_status(&line)?;
        let mut length = None;
        let mut close = false;
        loop {
            read(&mut self.reader, &mut line)?;
            if line == "\r\n" {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(format!("not a header: {line:?}"));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
            {
                close = true;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(format!("unexpected transfer-encoding {value}"));
            }
        }
        let length = length.ok_or("an answer without Content-Length")?;
        let mut body = vec![0; length];
        self.reader
            .read_exact(&mut body)
            .map_err(|e| format!("reading an answer's body: {e}"))?;
        if close {
            return Err(format!(
                "the server closed the connection after a {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(Reply { status, body })
    }
}

/// `utime + stime` of a /proc/PID/stat line, in seconds. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from its closing parenthesis.
pub fn cpu_seconds_of(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let ticks = |i: usize| fields.get(i - 3)?.parse::<f64>().ok();
    Some((ticks(14)? + ticks(15)?) / 100.0)
}

pub fn parse_status(line: &str) -> Result<u16, String> {
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next().and_then(|s| s.parse().ok())) {
        (Some(version), Some(status)) if version.starts_with("HTTP/1.") => Ok(status),
        _ => Err(format!("not a status line: {line:?}")),
    }
}

/// Checks the answer to `result = 2 + 2`.
pub fn check_run(reply: &Reply) -> Result<(), String> {
    let text = String::from_utf8_lossy(&reply.body);
    if reply.status != 200 {
        return Err(format!("HTTP {}: {text}", reply.status));
    }
    // The answer is read as the wire's own type: a shape the server changes fails here.
    let result: RunnerResult = serde_json::from_slice(&reply.body)
        .map_err(|e| format!("not a RunnerResult ({e}): {text}"))?;
    if !result.ok || result.result.get() != "4" {
        return Err(format!("the run did not return 4: {text}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// The server

#[derive(Debug)]
struct Server {
    child: Child,
    addr: String,
    tail: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(cmd: &mut Command) -> Result<Server, Error> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("cannot start spr serve --http: {e}")))?;
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        let tail = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&tail);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some((_, rest)) = line.split_once("listening on http://") {
                    let _ = tx.send(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_string(),
                    );
                }
                let mut t = keep.lock().expect("not poisoned");
                if t.len() == 20 {
                    t.remove(0);
                }
                t.push(line);
            }
        });
        let mut server = Server {
            child,
            addr: String::new(),
            tail,
        };
        server.addr = rx.recv_timeout(FIRST_TIMEOUT).map_err(|_| {
            failed(format!(
                "spr serve --http never said where it listens{}",
                server.context()
            ))
        })?;
        Ok(server)
    }

    fn context(&self) -> String {
        let tail = self.tail.lock().expect("not poisoned");
        if tail.is_empty() {
            String::new()
        } else {
            format!("\nlast lines of spr's stderr:\n  {}", tail.join("\n  "))
        }
    }

    fn fail(&self, what: impl std::fmt::Display) -> Error {
        failed(format!("{what}{}", self.context()))
    }

    /// `(VmHWM, VmRSS)` of the server process, in MiB.
    fn memory(&self) -> Result<(f64, f64), Error> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .map_err(|e| self.fail(format!("reading the server's /proc status: {e}")))?;
        let kib = |key: &str| {
            bench::field(&status, key)
                .and_then(|v| {
                    v.split_whitespace()
                        .next()
                        .and_then(|n| n.parse::<f64>().ok())
                })
                .ok_or_else(|| self.fail(format!("no {key} in /proc/PID/status")))
        };
        Ok((kib("VmHWM")? / 1024.0, kib("VmRSS")? / 1024.0))
    }

    /// CPU time the server process (all its threads; the workers are other processes) has used, in
    /// seconds: `utime + stime` of /proc/PID/stat, in USER_HZ ticks (100 a second on Linux).
    fn cpu_seconds(&self) -> Result<f64, Error> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .map_err(|e| self.fail(format!("reading the server's /proc stat: {e}")))?;
        cpu_seconds_of(&stat).ok_or_else(|| self.fail("an unreadable /proc/PID/stat"))
    }

    /// SIGTERM, then the drain-and-exit-0 that docs/HTTP.md promises.
    fn finish(mut self) -> Result<(), Error> {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map_err(|e| failed(format!("kill -TERM {pid}: {e}")))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(
                        self.fail(format!("spr serve --http exited with {status} on SIGTERM"))
                    )
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => return Err(self.fail("spr serve --http did not exit within 30 s of SIGTERM")),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Measuring

#[derive(Debug, Clone)]
pub struct Measurement {
    pub sequential: Summary,
    pub clients: usize,
    pub seconds: f64,
    pub completed: usize,
    pub throughput: f64,
    pub loaded: Summary,
    /// CPU time of the server process per run of the throughput phase, in microseconds: what HTTP,
    /// JSON and the host's side of a run cost, apart from the workers.
    pub server_cpu_us: f64,
    pub flood: Flood,
}

#[derive(Debug, Clone)]
pub struct Flood {
    pub requests: usize,
    pub answered: usize,
    /// 429 answers (the queue was full): expected with more clients than places.
    pub busy: usize,
    pub seconds: f64,
    pub rss_before_mb: f64,
    pub rss_peak_mb: f64,
    pub rss_after_mb: f64,
}

fn run_body(code: &str) -> Vec<u8> {
    json!({ "code": code }).to_string().into_bytes()
}

fn sequential(server: &Server, runs: usize) -> Result<Summary, Error> {
    eprintln!(
        "bench: {WARMUP} warm-up runs, then {runs} sequential runs over one kept-alive connection"
    );
    let mut conn = Connection::open(&server.addr).map_err(|e| server.fail(e))?;
    let body = run_body(CODE);
    let mut latencies = Vec::with_capacity(runs);
    for i in 0..WARMUP + runs {
        if i == 0 {
            conn.reader
                .get_ref()
                .set_read_timeout(Some(FIRST_TIMEOUT))
                .ok();
        }
        let start = Instant::now();
        let reply = conn.post("/v1/runs", &body).map_err(|e| server.fail(e))?;
        let elapsed = start.elapsed().as_secs_f64() * 1000.0;
        check_run(&reply).map_err(|e| server.fail(e))?;
        if i == 0 {
            conn.reader.get_ref().set_read_timeout(Some(TIMEOUT)).ok();
        }
        if i >= WARMUP {
            latencies.push(elapsed);
        }
    }
    Ok(summarize(&latencies))
}

fn throughput(
    server: &Server,
    clients: usize,
    seconds: f64,
) -> Result<(f64, usize, f64, Summary), Error> {
    eprintln!("bench: throughput with {clients} clients for {seconds} s");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let addr = server.addr.clone();
            thread::spawn(move || -> Result<Vec<f64>, String> {
                let mut conn = Connection::open(&addr)?;
                let body = run_body(CODE);
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let reply = conn.post("/v1/runs", &body)?;
                    check_run(&reply)?;
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for handle in handles {
        let latencies = handle
            .join()
            .map_err(|_| server.fail("a client thread panicked"))?
            .map_err(|e| server.fail(e))?;
        all.extend(latencies);
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok((
        all.len() as f64 / elapsed,
        all.len(),
        elapsed,
        summarize(&all),
    ))
}

/// 1,000 requests with 1 MiB bodies (a string in `input_data`) from `clients` connections; the server's
/// peak resident memory (VmHWM) is read after.
fn flood(server: &Server, clients: usize) -> Result<Flood, Error> {
    eprintln!(
        "bench: a flood of {FLOOD_REQUESTS} requests with {} KiB bodies from {clients} clients",
        FLOOD_BODY_BYTES >> 10
    );
    let (_, rss_before_mb) = server.memory()?;
    let filler = FLOOD_BODY_BYTES - 64;
    let body = Arc::new(
        json!({ "code": "result = len(s)", "input_data": { "s": "x".repeat(filler) } })
            .to_string()
            .into_bytes(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let busy = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, body, next, busy) = (
                server.addr.clone(),
                body.clone(),
                next.clone(),
                busy.clone(),
            );
            thread::spawn(move || -> Result<usize, String> {
                let mut conn = Connection::open(&addr)?;
                let mut answered = 0;
                while next.fetch_add(1, Ordering::Relaxed) < FLOOD_REQUESTS as u64 {
                    let reply = conn.post("/v1/runs", &body)?;
                    match reply.status {
                        200 => {
                            let result: RunnerResult =
                                serde_json::from_slice(&reply.body).map_err(|e| e.to_string())?;
                            if result.result.get() != filler.to_string() {
                                return Err(format!(
                                    "a flood run answered {}",
                                    String::from_utf8_lossy(&reply.body)
                                ));
                            }
                            answered += 1;
                        }
                        429 => {
                            busy.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            return Err(format!(
                                "HTTP {other}: {}",
                                String::from_utf8_lossy(&reply.body)
                            ));
                        }
                    }
                }
                Ok(answered)
            })
        })
        .collect();
    let mut answered = 0;
    let mut failure = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(n)) => answered += n,
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some("a flood client panicked".into()),
        }
    }
    if let Some(e) = failure {
        return Err(server.fail(e));
    }
    let seconds = start.elapsed().as_secs_f64();
    let (rss_peak_mb, rss_after_mb) = server.memory()?;
    Ok(Flood {
        requests: FLOOD_REQUESTS,
        answered,
        busy: busy.load(Ordering::Relaxed) as usize,
        seconds,
        rss_before_mb,
        rss_peak_mb,
        rss_after_mb,
    })
}

fn python_version(server: &Server) -> String {
    Connection::open(&server.addr)
        .and_then(|mut c| {
            c.post(
                "/v1/runs",
                &run_body("import sys\nresult = sys.version.split()[0]"),
            )
        })
        .ok()
        .and_then(|r| serde_json::from_slice::<RunnerResult>(&r.body).ok())
        .and_then(|r| r.result.parse::<String>().ok())
        .unwrap_or_else(|| "unknown".into())
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}

pub fn table(runs: usize, m: &Measurement) -> String {
    let ms = |v: f64| format!("{v:.2} ms");
    let f = &m.flood;
    let rows = vec![
        (
            "sequential runs of `result = 2 + 2`, one kept-alive connection".to_string(),
            format!("{runs} (after {WARMUP} warm-up)"),
            String::new(),
        ),
        (
            "latency p50".into(),
            ms(m.sequential.p50),
            format!(
                "≤ {TARGET_P50_MS} ms ({})",
                verdict(m.sequential.p50 <= TARGET_P50_MS)
            ),
        ),
        ("latency p90".into(), ms(m.sequential.p90), String::new()),
        ("latency p99".into(), ms(m.sequential.p99), String::new()),
        ("latency max".into(), ms(m.sequential.max), String::new()),
        (
            format!("throughput, {} concurrent clients", m.clients),
            format!("{:.0} runs/s", m.throughput),
            format!(
                "≥ {TARGET_RUNS_PER_S} runs/s ({}); {} runs in {:.1} s",
                verdict(m.throughput >= TARGET_RUNS_PER_S),
                m.completed,
                m.seconds
            ),
        ),
        (
            "latency p50 under that load".into(),
            ms(m.loaded.p50),
            String::new(),
        ),
        (
            "latency p99 under that load".into(),
            ms(m.loaded.p99),
            String::new(),
        ),
        (
            "server process CPU per run under that load".into(),
            format!("{:.0} µs", m.server_cpu_us),
            "HTTP, JSON and the host's side of a run; the workers are other processes".into(),
        ),
        (
            format!(
                "flood: {} requests of {} KiB, {} clients",
                f.requests,
                FLOOD_BODY_BYTES >> 10,
                m.clients
            ),
            format!("{} answered, {} refused (429)", f.answered, f.busy),
            format!("{:.1} s", f.seconds),
        ),
        (
            "server RSS peak (VmHWM) through the flood".into(),
            format!("{:.1} MiB", f.rss_peak_mb),
            format!(
                "< {TARGET_RSS_MB} MB ({})",
                verdict(f.rss_peak_mb < TARGET_RSS_MB)
            ),
        ),
        (
            "server RSS before / after the flood".into(),
            format!("{:.1} / {:.1} MiB", f.rss_before_mb, f.rss_after_mb),
            String::new(),
        ),
    ];
    let mut out = String::from("| metric | value | target / note |\n|---|---:|---|\n");
    for (a, b, c) in rows {
        out.push_str(&format!("| {a} | {b} | {c} |\n"));
    }
    out
}

pub fn run(root: &Path, bin: &Path, args: &Args, raw: &[String]) -> Result<(), Error> {
    let clients = args.clients.unwrap_or(CLIENTS);
    let mut cmd = Command::new(bin);
    cmd.args([
        "serve",
        "--http",
        "127.0.0.1:0",
        "--queue",
        &QUEUE.max(clients).to_string(),
    ])
    .current_dir(root)
    .env_remove("SPR_TOKEN")
    .env_remove("SPR_LOG");
    if args.engine != "local" {
        cmd.args(["--engine", &args.engine]);
    }
    if let Some(n) = args.pool_size {
        cmd.args(["--pool-size", &n.to_string()]);
    }
    let server = Server::start(&mut cmd)?;
    let sequential = sequential(&server, args.runs)?;
    let cpu_before = server.cpu_seconds()?;
    let (throughput, completed, seconds, loaded) = throughput(&server, clients, args.seconds)?;
    let server_cpu_us = (server.cpu_seconds()? - cpu_before) * 1e6 / completed.max(1) as f64;
    let flood = flood(&server, clients)?;
    let python = python_version(&server);
    server.finish()?;
    let m = Measurement {
        sequential,
        clients,
        seconds,
        completed,
        throughput,
        loaded,
        server_cpu_us,
        flood,
    };
    let table = table(args.runs, &m);
    let command = format!("cargo xtask bench {}", raw.join(" "));
    let machine = bench::machine(&python);
    println!(
        "\nspr serve --http, {} engine, {machine}\n\n{table}",
        args.engine
    );
    if args.write {
        let body = format!(
            "Measured {} on {machine}, {} engine.\n\nCommand: `{command}`\n\n{table}",
            bench::today(),
            args.engine
        );
        bench::write_section(root, "http", &body)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_and_run_answers_are_checked() {
        assert_eq!(parse_status("HTTP/1.1 429 Too Many Requests\r\n"), Ok(429));
        assert!(parse_status("SSH-2.0 hello").is_err());
        let answer = |result: &str| {
            let mut r = RunnerResult::infrastructure_error("");
            r.ok = true;
            r.error = None;
            r.exit_code = 0;
            r.result = result.parse().unwrap();
            Reply {
                status: 200,
                body: serde_json::to_vec(&r).unwrap(),
            }
        };
        assert_eq!(check_run(&answer("4")), Ok(()));
        let wrong = answer("5");
        let partial = Reply {
            status: 200,
            body: br#"{"ok":true,"result":4}"#.to_vec(),
        };
        assert!(check_run(&partial).is_err(), "not a whole RunnerResult");
        assert!(check_run(&wrong).is_err());
        let busy = Reply {
            status: 429,
            body: br#"{"error":"busy"}"#.to_vec(),
        };
        assert!(check_run(&busy).unwrap_err().starts_with("HTTP 429"));
    }

    #[test]
    fn the_table_marks_the_three_targets() {
        let s = summarize(&[2.0, 3.0]);
        let m = Measurement {
            sequential: s.clone(),
            clients: 16,
            seconds: 3.0,
            completed: 1500,
            throughput: 500.0,
            loaded: s,
            server_cpu_us: 120.0,
            flood: Flood {
                requests: 1000,
                answered: 1000,
                busy: 0,
                seconds: 9.0,
                rss_before_mb: 20.0,
                rss_peak_mb: 250.0,
                rss_after_mb: 30.0,
            },
        };
        let t = table(500, &m);
        assert!(
            t.contains("| latency p50 | 2.00 ms | ≤ 4 ms (met) |"),
            "{t}"
        );
        assert!(t.contains("≥ 400 runs/s (met)"), "{t}");
        assert!(t.contains("| 250.0 MiB | < 200 MB (missed) |"), "{t}");
        assert!(t.contains("| 120 µs |"), "{t}");
    }

    #[test]
    fn cpu_time_is_read_past_the_command_name() {
        let stat = "4242 (spr (x) y) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 8 0 100 0 0";
        assert_eq!(cpu_seconds_of(stat), Some(3.0));
        assert_eq!(cpu_seconds_of("4242 (spr) S 1"), None);
    }
}

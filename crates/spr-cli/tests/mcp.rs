//! `spr mcp` with the official MCP Python SDK as its client, over both transports: the
//! real binary, the local engine, and `tests/mcp/client.py`, which makes every call and
//! check (see its docstring); plus the command line's refusals, which need no SDK.
//!
//! The SDK lives in a venv of its own, made by `.ci/mcp-setup.sh` at a fixed path
//! (`SPR_MCP_SDK_VENV` overrides it). Without it the SDK tests fail under CI and are
//! skipped loudly elsewhere. The engine's venv is the one the other CLI tests share.

mod common;

use common::{code, render, run, run_within, spr};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where `.ci/mcp-setup.sh` puts the SDK's venv.
const SDK_VENV: &str = "/opt/spr-mcp-sdk";
/// The default profile's time limit: long enough for the cancellation check's run to
/// outlast the check by far.
const DEFAULT_TIMEOUT: u64 = 40;
/// The profile `strict`'s.
const STRICT_TIMEOUT: u64 = 3;
const TOKEN: &str = "spr-mcp-test-token-0123456789";
/// The servers' cap on open sessions, which `client.py` checks.
const MAX_SESSIONS: u32 = 2;
/// Bounds for things that take a second when all is well; they only stop a hang.
const SCENARIO_LIMIT: Duration = Duration::from_secs(300);
const START_LIMIT: Duration = Duration::from_secs(120);

/// The SDK venv's interpreter, if the SDK is installed there.
fn sdk_python() -> Option<PathBuf> {
    let venv = std::env::var_os("SPR_MCP_SDK_VENV")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(SDK_VENV), PathBuf::from);
    let python = venv.join("bin").join("python");
    let works = Command::new(&python)
        .args(["-c", "import mcp.client, httpx2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    works.then_some(python)
}

fn sdk_or_skip() -> Option<PathBuf> {
    let python = sdk_python();
    common::require(
        python.is_some(),
        "the MCP Python SDK (bash .ci/mcp-setup.sh, or SPR_MCP_SDK_VENV)",
    )
    .then(|| python.expect("checked"))
}

/// The engine venv the CLI tests share (made once per test binary; the engine's lock
/// keeps binaries that make it at once apart).
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

/// A fresh folder with the policy files and the token file the servers are given.
fn setup(name: &str) -> PathBuf {
    let dir = common::target_tmpdir().join(format!("mcp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let policy = |timeout: u64| format!("[policy]\ntimeout_seconds = {timeout}\n");
    std::fs::write(dir.join("default.toml"), policy(DEFAULT_TIMEOUT)).unwrap();
    std::fs::write(dir.join("strict.toml"), policy(STRICT_TIMEOUT)).unwrap();
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    dir
}

/// The `spr mcp` arguments every server here gets: the shared venv, one worker (the
/// cancellation checks need the only worker to be the one a cancelled run held), a cap of
/// two sessions, and the two profiles.
fn server_args(dir: &Path) -> Vec<String> {
    let s = |p: PathBuf| p.display().to_string();
    vec![
        "mcp".into(),
        "--venv-manager".into(),
        "python".into(),
        "--venv-dir".into(),
        venv().into(),
        "--pool-size".into(),
        "1".into(),
        "--max-sessions".into(),
        MAX_SESSIONS.to_string(),
        "--policy".into(),
        s(dir.join("default.toml")),
        "--profile".into(),
        format!("strict={}", s(dir.join("strict.toml"))),
    ]
}

/// Run `client.py` with `args` and fail the test with its output unless every check
/// passed.
fn client(python: &Path, args: &[String]) -> Output {
    let script = common::manifest_dir().join("tests/mcp/client.py");
    let mut cmd = Command::new(python);
    cmd.arg(&script).args(args).env("NO_COLOR", "1");
    let out = run_bounded(&mut cmd, SCENARIO_LIMIT);
    assert!(
        out.status.success(),
        "client.py {}:\n{}",
        args.join(" "),
        render(&out, &[])
    );
    out
}

/// Like `common::run_within`, with the output read as it comes (a chatty child cannot
/// fill a pipe and stall).
fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client starts");
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let (out, err) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the client did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

#[test]
fn stdio_with_a_client_of_the_handshake_era() {
    let Some(python) = sdk_or_skip() else { return };
    let dir = setup("stdio-legacy");
    let mut args: Vec<String> = [
        "stdio",
        "--mode",
        "legacy",
        "--cancel",
        "--max-sessions",
        &MAX_SESSIONS.to_string(),
        "--max-timeout",
    ]
    .map(String::from)
    .into();
    args.push(DEFAULT_TIMEOUT.to_string());
    args.push("--".into());
    args.push(common::spr_bin().display().to_string());
    args.extend(server_args(&dir));
    let out = client(&python, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // One info line per call, and never the code.
    assert!(stderr.contains("door=\"mcp\""), "{stderr}");
    assert!(stderr.contains("outcome=\"cancelled\""), "{stderr}");
    assert!(!stderr.contains("input_data"), "{stderr}");
}

#[test]
fn stdio_returns_figures_as_image_content() {
    let Some(python) = sdk_or_skip() else { return };
    let datastack = std::env::var_os("SPR_DATASTACK_VENV")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/opt/spr-datastack"), PathBuf::from);
    let has_matplotlib = Command::new(datastack.join("bin/python"))
        .args(["-c", "import matplotlib"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !common::require(
        has_matplotlib,
        "the data-stack venv (.ci/datastack-setup.sh)",
    ) {
        return;
    }
    let dir = setup("stdio-figures");
    // Until matplotlib imports under the default policy: `subprocess` not blocked.
    std::fs::write(
        dir.join("plot.toml"),
        "[policy]\ntimeout_seconds = 60\nmemory_limit_mb = 1024\nblocked_imports = [\"socket\", \"ctypes\", \"importlib\"]\n",
    )
    .unwrap();
    let mut args: Vec<String> = ["stdio", "--figures", "--max-timeout", "60", "--"]
        .map(String::from)
        .into();
    args.push(common::spr_bin().display().to_string());
    args.extend(
        [
            "mcp",
            "--venv-dir",
            datastack.to_str().unwrap(),
            "--pool-size",
            "1",
            "--policy",
            dir.join("plot.toml").to_str().unwrap(),
        ]
        .map(String::from),
    );
    client(&python, &args);
}

#[test]
fn stdio_with_a_current_client_and_a_named_profile() {
    let Some(python) = sdk_or_skip() else { return };
    let dir = setup("stdio-auto");
    let mut args: Vec<String> = [
        "stdio",
        "--mode",
        "auto",
        "--profile",
        "strict",
        "--max-sessions",
        &MAX_SESSIONS.to_string(),
    ]
    .map(String::from)
    .into();
    args.extend([
        "--max-timeout".into(),
        STRICT_TIMEOUT.to_string(),
        "--".into(),
    ]);
    args.push(common::spr_bin().display().to_string());
    args.extend(server_args(&dir));
    args.extend(["--use-profile".into(), "strict".into()]);
    client(&python, &args);
}

/// A running `spr mcp --http` and the address it bound.
struct HttpServer {
    child: Child,
    url: String,
    stderr: mpsc::Receiver<String>,
}

impl HttpServer {
    fn start(dir: &Path) -> HttpServer {
        HttpServer::start_with(dir, &[])
    }

    fn start_with(dir: &Path, env: &[(&str, &str)]) -> HttpServer {
        let mut cmd = spr();
        cmd.args(server_args(dir))
            .args(["--http", "127.0.0.1:0", "--token-file"])
            .arg(dir.join("token"))
            .env_remove("SPR_LOG");
        for (key, value) in env {
            cmd.env(key, value);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spr starts");
        let (tx, stderr) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + START_LIMIT;
        let mut seen = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = stderr
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("spr mcp --http did not listen: {seen:#?}"));
            // `spr mcp listening on http://127.0.0.1:PORT token=true`
            if let Some((_, rest)) = line.split_once("listening on http://") {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
            }
            seen.push(line);
        };
        HttpServer {
            child,
            url: format!("http://{addr}/mcp"),
            stderr,
        }
    }

    fn addr(&self) -> &str {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
    }

    /// SIGTERM, then the exit code and everything it logged.
    fn stop(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "spr mcp --http ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        let log: Vec<String> = self.stderr.try_iter().collect();
        (status.code(), log.join("\n"))
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn http_with_clients_of_both_eras_behind_a_token() {
    let Some(python) = sdk_or_skip() else { return };
    let dir = setup("http");
    let server = HttpServer::start(&dir);
    for mode in ["legacy", "auto"] {
        let args: Vec<String> = [
            "http",
            "--mode",
            mode,
            "--cancel",
            "--max-sessions",
            &MAX_SESSIONS.to_string(),
            "--max-timeout",
            &DEFAULT_TIMEOUT.to_string(),
            "--strict-timeout",
            &STRICT_TIMEOUT.to_string(),
            "--url",
            &server.url,
            "--token",
            TOKEN,
        ]
        .map(String::from)
        .into();
        client(&python, &args);
    }
    let (code, log) = server.stop();
    assert_eq!(code, Some(130), "SIGTERM stops the server: {log}");
    assert!(log.contains("outcome=\"cancelled\""), "{log}");
    assert!(log.contains("profile=strict"), "{log}");
    assert!(!log.contains(TOKEN), "the token is never logged: {log}");
}

#[test]
fn operator_mistakes_are_refused_before_serving() {
    let dir = setup("refusals");
    let policy = dir.join("default.toml").display().to_string();
    let token = dir.join("token").display().to_string();
    let mut lines = Vec::new();
    for args in [
        vec!["mcp", "--http", "0.0.0.0:0"],
        vec!["mcp", "--use-profile", "nope"],
        vec!["mcp", "--token-file", &token],
        vec!["mcp", "--http", "127.0.0.1:0", "--use-profile", "x"],
        vec!["mcp", "--profile", "strict"],
        vec!["mcp", "--profile", "default=x.toml"],
        vec!["mcp", "--profile", "a=/nonexistent.toml"],
        vec!["mcp", "--policy", &policy, "--image", "x"],
    ] {
        let mut cmd = spr();
        cmd.args(&args).env_remove("SPR_TOKEN");
        let out = run_within(&mut cmd, Duration::from_secs(60));
        let text = render(&out, &[(&dir, "DIR")]);
        // clap's usage lines are its own; the first lines say what is wrong.
        let text: String = text.lines().take(5).collect::<Vec<_>>().join("\n");
        lines.push(format!(
            "$ spr {}\n{text}",
            args.join(" ").replace(&*dir.display().to_string(), "DIR")
        ));
    }
    insta::assert_snapshot!(lines.join("\n\n"));
}

/// One request by hand, on its own connection (`Connection: close`): the status, the
/// head and the body as text. For what an SDK would not send.
fn raw_post(server: &HttpServer, path: &str, headers: &str, body: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_read_timeout(Some(START_LIMIT)).unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Connection: close\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"));
    (status, head.to_string(), body.to_string())
}

/// A legacy (handshake-era) MCP session opened by hand: its `Mcp-Session-Id`.
fn raw_session(server: &HttpServer) -> String {
    let init = r#"{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}"#;
    let (status, head, body) = raw_post(server, "/mcp", "", init);
    assert_eq!(status, 200, "{head}\n{body}");
    let sid = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("mcp-session-id")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no session id: {head}"));
    let headers = format!("Mcp-Session-Id: {sid}\r\nMcp-Protocol-Version: 2025-06-18\r\n");
    let initialized = r#"{"jsonrpc": "2.0", "method": "notifications/initialized"}"#;
    let (status, ..) = raw_post(server, "/mcp", &headers, initialized);
    assert_eq!(status, 202);
    headers
}

/// What a client sends reaches the log escaped, whoever logs it: the SDK's own warning
/// for an unknown method repeats the request's id, a string the client chose.
#[test]
fn http_logs_escape_what_clients_send() {
    let dir = setup("http-log");
    let server = HttpServer::start_with(&dir, &[("SPR_LOG", "info")]);
    let session = raw_session(&server);
    let forged = "x\n2026-01-01T00:00:00.000000Z  INFO run door=\"mcp\" FORGED\u{1b}[2J";
    let call = serde_json::json!({"jsonrpc": "2.0", "id": forged, "method": "nope/x"});
    let (status, _, body) = raw_post(&server, "/mcp", &session, &call.to_string());
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("-32601"), "{body}");
    let (_, log) = server.stop();
    assert!(
        log.contains("nope/x"),
        "the SDK's warning is in the log: {log}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("2026-01-01")),
        "a forged line: {log}"
    );
    assert!(!log.contains('\u{1b}'), "a terminal escape: {log:?}");
}

/// The requests read or answered at once are bounded (twice the calls taken: one worker
/// plus `MAX_WAITING_CALLS`, 64), so a flood of large or slow bodies holds a bounded
/// amount of memory: beyond that a request is refused at once with 429 and
/// `Retry-After`, and the server carries on once the flood is gone. Only `/mcp` is MCP.
#[test]
fn http_bounds_the_requests_it_reads_at_once() {
    let dir = setup("http-flood");
    let server = HttpServer::start(&dir);
    let (status, _, body) = raw_post(&server, "/mcp/x", "", "{}");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("spr mcp serves MCP at /mcp"), "{body}");

    // Bodies that never finish: each holds a place. A few more than there are places,
    // so that a connection the server has not got to yet on a loaded machine does not
    // leave a place free for the whole test.
    const PLACES: usize = 2 * (1 + 64);
    let slow: Vec<TcpStream> = (0..PLACES + 16)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr()).unwrap();
            let head = format!(
                "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
                 Content-Length: 1000000\r\n\r\n{{\"jsonrpc\": "
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    let init = r#"{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}"#;
    let deadline = Instant::now() + Duration::from_secs(30);
    let (head, body) = loop {
        let (status, head, body) = raw_post(&server, "/mcp", "", init);
        if status == 429 {
            break (head, body);
        }
        assert!(
            Instant::now() < deadline,
            "{PLACES} unfinished bodies and still no 429: {status} {head}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(error["error"].as_str().unwrap().contains("busy"), "{body}");
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, head, _) = raw_post(&server, "/mcp", "", init);
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never free again: {head}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

//! `spr serve --http`: the real binary on a free loopback port, spoken to with reqwest
//! (and by hand over a raw socket where a client library would hide the connection),
//! with real Python runs on the shared test venv.
//!
//! No assertion depends on how fast the machine is: waits poll `GET /v1/health` for the
//! state they need, with deadlines far beyond what a loaded machine takes.

mod common;

use common::{cli_venv, spr};
use reqwest::blocking::{Body, Client};
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::Value;
use spr_protocol::wire::{ErrorBody, Health};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest any single wait may take; only a broken server gets near it.
const PATIENCE: Duration = Duration::from_secs(120);
const TOKEN: &str = "test-token-0123456789abcdef";

/// A running `spr serve --http 127.0.0.1:0`, killed if the test ends early.
struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
    /// For the health polls.
    client: Client,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        Server::start_with(args, &[])
    }

    fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = spr();
        cmd.args(["serve", "--http", "127.0.0.1:0"])
            .args(args)
            .args(["--venv-manager", "python", "--venv-dir", cli_venv()])
            .env_remove("SPR_TOKEN")
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
        let stderr = child.stderr.take().expect("piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // The address `front::http::bind` logs: port 0 picked a free one.
                if let Some((_, rest)) = line.split_once("listening on http://") {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("no \"listening on\" line: {}", log.lock().unwrap()));
        Server {
            child,
            base: format!("http://{addr}"),
            log,
            client: client(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once `ready` holds of it: a line is written before its answer leaves the
    /// server, but the thread that reads stderr may not have it yet.
    fn log_when(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = self.log();
            if ready(&log) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the log never showed {what}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn health(&self) -> Value {
        let response = self.client.get(self.url("/v1/health")).send().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response.bytes().unwrap();
        // The wire's own type: a shape the server changes fails here.
        let health: Health = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(health.status, "ok");
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Poll health until `ready` holds.
    fn wait_for(&self, what: &str, ready: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let health = self.health();
            if ready(&health) {
                return;
            }
            assert!(Instant::now() < deadline, "never {what}: {health}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait for the exit; its code.
    fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "spr serve did not exit: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
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

fn client() -> Client {
    Client::builder().timeout(PATIENCE).build().unwrap()
}

/// One answer: status, headers and the body as JSON (every answer of the API is JSON).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    json: Value,
}

impl Answer {
    fn of(response: reqwest::blocking::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text:?}"));
        Answer {
            status,
            headers,
            text,
            json,
        }
    }

    /// The message of an error answer, checked to be exactly `{"error": "..."}` in JSON.
    fn error(&self, status: StatusCode) -> &str {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.headers[CONTENT_TYPE], "application/json",
            "{}",
            self.text
        );
        let object = self.json.as_object().unwrap();
        assert_eq!(object.len(), 1, "{}", self.text);
        let body: ErrorBody = serde_json::from_str(&self.text).unwrap();
        assert_eq!(object["error"], body.error);
        object["error"].as_str().unwrap()
    }
}

fn post_run(server: &Server, body: &str) -> Answer {
    post_run_as(server, body, None)
}

fn post_run_as(server: &Server, body: &str, token: Option<&str>) -> Answer {
    let mut request = client()
        .post(server.url("/v1/runs"))
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    Answer::of(request.send().unwrap())
}

/// A connection spoken by hand: one request at a time, answers read by Content-Length.
struct RawConnection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RawConnection {
    fn open(server: &Server) -> RawConnection {
        let stream = TcpStream::connect(server.addr()).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        RawConnection {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    fn send_run(&mut self, body: &str) {
        let request = format!(
            "POST /v1/runs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.writer.write_all(request.as_bytes()).unwrap();
    }

    /// The status and the JSON body of the next answer.
    fn answer(&mut self) -> (u16, Value) {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {line:?}"));
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }
}

/// The value of `name{labels}` in a Prometheus text exposition.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .parse()
        .unwrap()
}

fn scrape(server: &Server, token: Option<&str>) -> String {
    let mut request = client().get(server.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    response.text().unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn runs_answer_with_their_result_and_are_counted() {
    let server = Server::start(&["--pool-size", "2"]);

    // Success; the id comes back byte for byte, numbers keep every digit both ways.
    let ok = post_run(
        &server,
        r#"{"id": 18446744073709551617, "code": "print('hi')\nresult = [x + 1, f]", "input_data": {"x": 123456789012345678901234567890, "f": 1e-300}}"#,
    );
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert!(
        ok.text.starts_with(
            r#"{"id":18446744073709551617,"ok":true,"result":[123456789012345678901234567891,1e-300],"stdout":"hi\n","#
        ),
        "{}",
        ok.text
    );
    assert_eq!(ok.json["exit_code"], 0);

    // Without an id, the RunnerResult alone.
    let plain = post_run(&server, r#"{"code": "result = 2 + 2"}"#);
    assert!(
        plain.text.starts_with(r#"{"ok":true,"result":4,"#),
        "{}",
        plain.text
    );
    assert!(plain.json.get("id").is_none());

    // The code failing is a run that happened: 200, ok false.
    let failed = post_run(&server, r#"{"id": "e", "code": "raise ValueError('bad')"}"#);
    assert_eq!(failed.status, StatusCode::OK);
    assert_eq!(failed.json["ok"], false);
    assert_eq!(failed.json["error"], "ValueError: bad");
    assert_eq!(failed.json["exit_code"], 1);

    // A timeout, with the limit lowered by the request.
    let slow = post_run(
        &server,
        r#"{"id": "t", "code": "while True: pass", "policy": {"timeout_seconds": 1}}"#,
    );
    assert_eq!(slow.status, StatusCode::OK);
    assert_eq!(slow.json["timed_out"], true, "{}", slow.text);
    assert_eq!(slow.json["exit_code"], 124);
    assert_eq!(slow.json["error"], "Execution timed out after 1s");

    // A refusal.
    let refused = post_run(&server, r#"{"code": 7}"#);
    refused.error(StatusCode::BAD_REQUEST);

    let text = scrape(&server, None);
    assert_eq!(metric(&text, r#"spr_runs_total{outcome="ok"}"#), 2.0);
    assert_eq!(metric(&text, r#"spr_runs_total{outcome="error"}"#), 1.0);
    assert_eq!(metric(&text, r#"spr_runs_total{outcome="timeout"}"#), 1.0);
    assert_eq!(metric(&text, r#"spr_runs_total{outcome="refused"}"#), 1.0);
    assert_eq!(metric(&text, r#"spr_runs_total{outcome="cancelled"}"#), 0.0);
    assert_eq!(metric(&text, "spr_run_duration_seconds_count"), 4.0);
    assert_eq!(
        metric(&text, r#"spr_run_duration_seconds_bucket{le="+Inf"}"#),
        4.0
    );
    assert_eq!(
        metric(
            &text,
            r#"spr_http_responses_total{route="/v1/runs",status="200"}"#
        ),
        4.0
    );
    assert_eq!(metric(&text, "spr_runs_in_flight"), 0.0);
    assert_eq!(metric(&text, "spr_runs_capacity"), 2.0);

    let health = server.health();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["engine"], "local");
    assert_eq!(health["capacity"], 2);
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));

    // One info line per run request, never the code or its output.
    let runs = |log: &str| log.matches(" run door=\"http\"").count();
    let log = server.log_when("five run lines", |log| runs(log) >= 5);
    assert_eq!(runs(&log), 5, "{log}");
    assert!(
        log.contains("id=18446744073709551617 profile=default outcome=\"ok\""),
        "{log}"
    );
    assert!(
        !log.contains("ValueError") && !log.contains("print("),
        "{log}"
    );
}

#[test]
fn profiles_are_picked_by_name_and_requests_may_only_lower_three_limits() {
    let dir = tempfile::tempdir().unwrap();
    let default = write(
        dir.path(),
        "default.toml",
        "timeout_seconds = 3\n[extra_globals]\nwho = 'default'\n",
    );
    let strict = write(
        dir.path(),
        "strict.toml",
        "timeout_seconds = 2\nmemory_limit_mb = 128\nblocked_imports = ['os', 'json']\n[extra_globals]\nwho = 'strict'\n",
    );
    let server = Server::start(&[
        "--pool-size",
        "1",
        "--policy",
        &default,
        "--profile",
        &format!("strict={strict}"),
    ]);

    let run = |body: &str| post_run(&server, body);
    assert_eq!(run(r#"{"code": "result = who"}"#).json["result"], "default");
    let picked = run(r#"{"code": "result = who", "profile": "strict"}"#);
    assert_eq!(picked.json["result"], "strict", "{}", picked.text);
    let blocked = run(r#"{"code": "import json", "profile": "strict"}"#);
    assert_eq!(blocked.json["ok"], false);
    assert!(blocked.json["error"]
        .as_str()
        .unwrap()
        .contains("'json' is blocked"));
    let lowered = run(
        r#"{"code": "result = who", "profile": "strict", "policy": {"timeout_seconds": 1, "memory_limit_mb": 64, "max_output_kb": 1}}"#,
    );
    assert_eq!(lowered.json["result"], "strict", "{}", lowered.text);

    let unknown = run(r#"{"code": "1", "profile": "nope\u001b[2J"}"#);
    assert_eq!(
        unknown.error(StatusCode::BAD_REQUEST),
        "unknown profile \"nope\\u{1b}[2J\" (configured: default, strict)"
    );
    let higher = run(r#"{"code": "1", "profile": "strict", "policy": {"timeout_seconds": 3}}"#);
    assert_eq!(
        higher.error(StatusCode::FORBIDDEN),
        "policy key \"timeout_seconds\" may not be set by a client: 3 is above the profile's 2"
    );
    for key in [
        "blocked_imports",
        "sandbox",
        "config_path",
        "mode",
        "extra_globals",
    ] {
        let widening = run(&format!(r#"{{"code": "1", "policy": {{"{key}": []}}}}"#));
        let message = widening.error(StatusCode::FORBIDDEN);
        assert!(
            message.starts_with(&format!("policy key \"{key}\" may not be set by a client")),
            "{message}"
        );
    }
    let zero = run(r#"{"code": "1", "policy": {"timeout_seconds": 0}}"#);
    assert!(zero
        .error(StatusCode::BAD_REQUEST)
        .starts_with("invalid policy: "));
    let typed = run(r#"{"code": "1", "policy": {"timeout_seconds": "1"}}"#);
    assert!(typed
        .error(StatusCode::BAD_REQUEST)
        .starts_with("invalid policy: timeout_seconds"));
    let not_object = run(r#"{"code": "1", "policy": [1]}"#);
    not_object.error(StatusCode::BAD_REQUEST);
}

#[test]
fn every_bad_request_gets_its_status_and_the_server_carries_on() {
    let server = Server::start(&["--pool-size", "1", "--max-body-mb", "1"]);
    let post = |content_type: Option<&str>, body: Body| {
        let mut request = client().post(server.url("/v1/runs")).body(body);
        if let Some(t) = content_type {
            request = request.header(CONTENT_TYPE, t);
        }
        Answer::of(request.send().unwrap())
    };
    let json = |text: &str| post(Some("application/json"), Body::from(text.to_string()));

    let bad = [
        (
            "{\"code\": ",
            "invalid request: not valid JSON: EOF while parsing a value at line 1 column 9",
        ),
        (
            "{\"code\": 1}",
            "invalid request: \"code\" must be a string, got a number",
        ),
        (
            "[1]",
            "invalid request: a request must be a JSON object, got an array",
        ),
        ("{\"id\": 1}", "invalid request: missing key \"code\""),
        (
            "{\"code\": \"x\", \"input_data\": [1]}",
            "invalid request: \"input_data\" must be a JSON object or null, got an array",
        ),
    ];
    for (body, message) in bad {
        assert_eq!(json(body).error(StatusCode::BAD_REQUEST), message, "{body}");
    }
    // A key that would forge a log line is escaped, in the answer and in the log.
    let forged = json("{\"code\": \"x\", \"k\\nINJECTED line\": 1}");
    assert!(forged
        .error(StatusCode::BAD_REQUEST)
        .contains("\\nINJECTED line"));
    // However long the client's text, a message repeats a few dozen characters of it.
    let long_key = json(&format!(
        "{{\"code\": \"x\", \"{}\": 1}}",
        "k".repeat(500_000)
    ));
    assert!(long_key.error(StatusCode::BAD_REQUEST).len() < 300);
    let long_policy_key = json(&format!(
        "{{\"code\": \"x\", \"policy\": {{\"{}\": 1}}}}",
        "k".repeat(500_000)
    ));
    assert!(long_policy_key.error(StatusCode::FORBIDDEN).len() < 400);
    let long_profile = json(&format!(
        "{{\"code\": \"x\", \"profile\": \"{}\"}}",
        "p".repeat(500_000)
    ));
    assert!(long_profile.error(StatusCode::BAD_REQUEST).len() < 300);
    let not_utf8 = post(
        Some("application/json"),
        Body::from(b"{\"code\": \"\xff\"}".to_vec()),
    );
    assert!(not_utf8
        .error(StatusCode::BAD_REQUEST)
        .starts_with("invalid request: not valid UTF-8"));

    let plain = post(Some("text/plain"), Body::from("{\"code\": \"1\"}"));
    assert!(plain
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .contains("(got \"text/plain\")"));
    let none = post(None, Body::from("{\"code\": \"1\"}"));
    none.error(StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Over the 1 MiB cap: declared (refused before it is read) and streamed (counted).
    let comment = |bytes: usize| format!("{{\"code\": \"#{}\"}}", "x".repeat(bytes));
    let declared = json(&comment(2 << 20));
    assert!(declared
        .error(StatusCode::PAYLOAD_TOO_LARGE)
        .contains("limit of 1048576 bytes"));
    let streamed = post(
        Some("application/json"),
        Body::new(std::io::Cursor::new(comment(2 << 20).into_bytes())),
    );
    streamed.error(StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the cap runs.
    let near = json(&comment((1 << 20) - 64));
    assert_eq!(
        near.json["ok"],
        true,
        "{}",
        &near.text[..200.min(near.text.len())]
    );

    // Routes and methods.
    let get = |path: &str| Answer::of(client().get(server.url(path)).send().unwrap());
    assert_eq!(
        get("/nope").error(StatusCode::NOT_FOUND),
        "no route for GET \"/nope\""
    );
    let wrong = get("/v1/runs");
    assert!(wrong
        .error(StatusCode::METHOD_NOT_ALLOWED)
        .starts_with("method GET is not allowed on \"/v1/runs\""));
    assert_eq!(wrong.headers["allow"], "POST");
    let delete = Answer::of(client().delete(server.url("/v1/health")).send().unwrap());
    delete.error(StatusCode::METHOD_NOT_ALLOWED);
    // The session routes: JSON bodies only, as runs; an unknown session is a 404.
    for path in ["/v1/sessions", "/v1/sessions/abc/runs"] {
        let answer = Answer::of(client().post(server.url(path)).send().unwrap());
        answer.error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let answer = Answer::of(
        client()
            .delete(server.url("/v1/sessions/abc"))
            .send()
            .unwrap(),
    );
    assert_eq!(
        answer.error(StatusCode::NOT_FOUND),
        "unknown session \"abc\": it was never created, was closed, or expired"
    );
    // Without a token, only loopback names are served (DNS rebinding).
    let rebound = Answer::of(
        client()
            .get(server.url("/v1/health"))
            .header("host", "evil.example")
            .send()
            .unwrap(),
    );
    assert!(rebound
        .error(StatusCode::FORBIDDEN)
        .starts_with("host \"evil.example\" is not served"));

    // Still serving, several requests on one kept-alive connection.
    let mut connection = RawConnection::open(&server);
    for i in 0..3 {
        connection.send_run(&format!("{{\"id\": {i}, \"code\": \"result = {i} * 2\"}}"));
        let (status, answer) = connection.answer();
        assert_eq!(
            (status, &answer["id"], &answer["result"]),
            (200, &i.into(), &(i * 2).into())
        );
    }
    let log = server.log();
    assert!(!log.lines().any(|l| l.starts_with("INJECTED")), "{log}");
}

#[test]
fn the_token_guards_every_route_but_health() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = write(dir.path(), "token", &format!("{TOKEN}\n"));
    let from_file = Server::start(&["--pool-size", "1", "--token-file", &token_file]);
    let from_env = Server::start_with(&["--pool-size", "1"], &[("SPR_TOKEN", TOKEN)]);
    for server in [&from_file, &from_env] {
        let send = |method: reqwest::Method, path: &str, token: Option<&str>| {
            let mut request = client()
                .request(method, server.url(path))
                .header(CONTENT_TYPE, "application/json")
                .body(r#"{"code": "result = 1"}"#);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            Answer::of(request.send().unwrap())
        };
        use reqwest::Method;
        for (method, path) in [
            (Method::POST, "/v1/runs"),
            (Method::GET, "/metrics"),
            (Method::GET, "/nope"),
            (Method::POST, "/v1/sessions"),
            (Method::GET, "/v1/runs"),
        ] {
            for (token, message) in [
                (
                    None,
                    "missing bearer token: send Authorization: Bearer <token>",
                ),
                (Some("wrong-token-0123456789"), "wrong bearer token"),
            ] {
                let answer = send(method.clone(), path, token);
                assert_eq!(
                    answer.error(StatusCode::UNAUTHORIZED),
                    message,
                    "{method} {path}"
                );
                assert_eq!(answer.headers[WWW_AUTHENTICATE], "Bearer");
            }
        }
        assert_eq!(server.health()["status"], "ok");
        let ran = post_run_as(server, r#"{"code": "result = 1"}"#, Some(TOKEN));
        assert_eq!(ran.json["result"], 1, "{}", ran.text);
        send(Method::GET, "/nope", Some(TOKEN)).error(StatusCode::NOT_FOUND);
        let text = scrape(server, Some(TOKEN));
        assert_eq!(metric(&text, r#"spr_runs_total{outcome="ok"}"#), 1.0);
        assert!(
            metric(
                &text,
                r#"spr_http_responses_total{route="/v1/runs",status="401"}"#
            ) >= 2.0
        );
    }
}

#[test]
fn a_server_refuses_to_listen_beyond_loopback_without_a_token() {
    let out = common::run_within(
        spr()
            .args(["serve", "--http", "0.0.0.0:0"])
            .env_remove("SPR_TOKEN"),
        PATIENCE,
    );
    assert_eq!(common::code(&out), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{stderr}"
    );
    let out = common::run_within(
        spr()
            .args(["serve", "--http", "127.0.0.1:0"])
            .env("SPR_TOKEN", "short"),
        PATIENCE,
    );
    assert_eq!(common::code(&out), 2);
}

/// A long run occupies the only worker, a second request waits in the queue of one, a
/// third is refused with 429 and `Retry-After`; once the first client hangs up, the
/// waiting one runs.
#[test]
fn a_full_queue_is_refused_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(dir.path(), "p.toml", "timeout_seconds = 120\n");
    let server = Server::start(&["--pool-size", "1", "--queue", "1", "--policy", &policy]);
    server.wait_for("ready", |h| h["capacity"] == 1);

    let mut long = RawConnection::open(&server);
    long.send_run(r#"{"code": "import time\ntime.sleep(100)"}"#);
    server.wait_for("running the long run", |h| h["in_flight"] == 1);
    let base = server.base.clone();
    let waiting = std::thread::spawn(move || {
        let response = client()
            .post(format!("{base}/v1/runs"))
            .header(CONTENT_TYPE, "application/json")
            .body(r#"{"id": "queued", "code": "result = 'ran'"}"#)
            .send()
            .unwrap();
        Answer::of(response)
    });
    server.wait_for("one waiting", |h| h["queued"] == 1);

    let full = post_run(&server, r#"{"code": "result = 1"}"#);
    assert!(full
        .error(StatusCode::TOO_MANY_REQUESTS)
        .starts_with("the server is busy"));
    assert_eq!(full.headers[RETRY_AFTER], "1");

    drop(long);
    let ran = waiting.join().unwrap();
    assert_eq!(ran.status, StatusCode::OK, "{}", ran.text);
    assert_eq!(ran.json["result"], "ran");
    let text = scrape(&server, None);
    assert_eq!(metric(&text, r#"spr_runs_total{outcome="cancelled"}"#), 1.0);
    assert_eq!(
        metric(
            &text,
            r#"spr_http_responses_total{route="/v1/runs",status="429"}"#
        ),
        1.0
    );
}

/// A run whose client hangs up is killed (its heartbeat stops) and its worker is free:
/// the next request on a pool of one runs.
#[test]
fn a_client_that_hangs_up_cancels_its_run() {
    let dir = common::target_tmpdir().join(format!("spr-http-cancel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    // The run's uid may not be ours (a distinct uid under root).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let beat = dir.join("beat");
    let policy = write(
        &dir,
        "p.toml",
        &format!(
            "[policy]\ntimeout_seconds = 120\nblocked_builtins = ['eval', 'exec', 'compile']\n\n[policy.sandbox]\nextra_write_paths = [{:?}]\n",
            dir.display().to_string()
        ),
    );
    let server = Server::start(&["--pool-size", "1", "--policy", &policy]);
    let code = format!(
        "import time\nn = 0\nwhile True:\n    n += 1\n    open({:?}, 'w').write(str(n))\n    time.sleep(0.02)",
        beat.display().to_string()
    );
    let mut connection = RawConnection::open(&server);
    connection.send_run(&serde_json::json!({"id": "beating", "code": code}).to_string());
    let deadline = Instant::now() + PATIENCE;
    while !beat.exists() {
        assert!(
            Instant::now() < deadline,
            "the run never beat: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(connection);

    // Dead, not merely forgotten: the heartbeat stops.
    let deadline = Instant::now() + PATIENCE;
    let mut last = std::fs::read_to_string(&beat).unwrap();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = std::fs::read_to_string(&beat).unwrap();
        if now == last {
            break;
        }
        assert!(Instant::now() < deadline, "the abandoned run goes on");
        last = now;
    }
    let next = post_run(&server, r#"{"code": "result = 'next'"}"#);
    assert_eq!(next.json["result"], "next", "{}", next.text);
    let text = scrape(&server, None);
    assert_eq!(metric(&text, r#"spr_runs_total{outcome="cancelled"}"#), 1.0);
    assert_eq!(metric(&text, "spr_runs_in_flight"), 0.0);
    server.log_when("the cancelled run", |log| {
        log.contains("id=\\\"beating\\\" profile=default outcome=\"cancelled\"")
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM: the run in flight finishes and answers, the one waiting gets 503, new
/// connections are refused, and the server exits 0.
#[test]
fn sigterm_drains_the_runs_in_flight_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(dir.path(), "p.toml", "timeout_seconds = 60\n");
    let mut server = Server::start(&["--pool-size", "1", "--policy", &policy]);
    let spawn_run = |body: &'static str| {
        let base = server.base.clone();
        std::thread::spawn(move || {
            let response = client()
                .post(format!("{base}/v1/runs"))
                .header(CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .unwrap();
            Answer::of(response)
        })
    };
    let in_flight =
        spawn_run(r#"{"id": 1, "code": "import time\ntime.sleep(6)\nresult = 'finished'"}"#);
    server.wait_for("running", |h| h["in_flight"] == 1);
    let queued = spawn_run(r#"{"id": 2, "code": "result = 'never'"}"#);
    server.wait_for("one waiting", |h| h["queued"] == 1);

    server.terminate();
    let refused = queued.join().unwrap();
    assert!(refused
        .error(StatusCode::SERVICE_UNAVAILABLE)
        .starts_with("the server is shutting down"));
    assert_eq!(refused.headers[RETRY_AFTER], "5");
    // No new connections while the drain goes on.
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(server.addr()).is_ok() {
        assert!(Instant::now() < deadline, "still accepting connections");
        std::thread::sleep(Duration::from_millis(20));
    }
    let finished = in_flight.join().unwrap();
    assert_eq!(finished.status, StatusCode::OK, "{}", finished.text);
    assert_eq!(finished.json["result"], "finished");
    assert_eq!(server.wait_exit(), Some(0), "{}", server.log());
    server.log_when("the drain", |log| {
        log.contains("drained: every run answered")
    });
}

/// docs/HTTP.md's examples, as examples/http/curl.sh runs them with the real curl.
#[test]
fn the_curl_examples_run() {
    let curl = Command::new("curl").arg("--version").output();
    if !common::require(curl.is_ok_and(|o| o.status.success()), "curl") {
        return;
    }
    let server = Server::start_with(&["--pool-size", "1"], &[("SPR_TOKEN", TOKEN)]);
    let script = common::repo_root().join("examples/http/curl.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("SPR_URL", &server.base)
        .env("SPR_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for expected in [
        r#""status":"ok""#,
        r#"{"id":"sqrt","ok":true,"result":9.0,"stdout":"computing the square root of 81\n""#,
        r#""timed_out":true"#,
        r#"{"error":"policy key \"memory_limit_mb\" may not be set by a client: 4096 is above the profile's 256"}"#,
        r#"{"id":2,"ok":true,"#,
        r#""value":21"#,
        " (HTTP 204)",
        // Two runs in the session and the one-shot one.
        "spr_runs_total{outcome=\"ok\"} 3",
    ] {
        assert!(
            stdout.contains(expected),
            "no {expected} in:\n{stdout}\n{stderr}"
        );
    }
}

#[test]
fn runs_bring_files_and_collect_what_they_make() {
    let server = Server::start(&["--pool-size", "1"]);
    // The default profile: no `open`, no `os`, yet scratch is the run's to use.
    let ok = post_run(
        &server,
        r#"{"id": "f", "code": "import pathlib\ntext = pathlib.Path('in/data.txt').read_text()\npathlib.Path('out').mkdir()\npathlib.Path('out/upper.txt').write_text(text.upper())\nresult = len(text)",
            "files": [{"path": "in/data.txt", "content": "hello"}, {"path": "in/raw.bin", "content": "AAEC", "encoding": "base64"}],
            "collect": ["out/*.txt", "in/*.bin"]}"#,
    );
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.json["ok"], true, "{}", ok.text);
    assert_eq!(ok.json["result"], 5);
    let files: Vec<spr_protocol::FileOut> =
        serde_json::from_value(ok.json["files"].clone()).unwrap();
    let got: Vec<(&str, Vec<u8>)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.decode().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("in/raw.bin", vec![0, 1, 2]),
            ("out/upper.txt", b"HELLO".to_vec())
        ]
    );
    // No files asked for: the result has the keys it always had.
    let plain = post_run(&server, r#"{"code": "result = 1"}"#);
    assert!(
        plain.json.get("files").is_none() && plain.json.get("outputs").is_none(),
        "{}",
        plain.text
    );
    // Refusals are 400s naming the file, before any run.
    for (body, says) in [
        (
            r#"{"code": "result = 1", "files": [{"path": "/etc/passwd", "content": "x"}]}"#,
            "invalid request: files[0] \"/etc/passwd\": absolute paths are refused",
        ),
        (
            r#"{"code": "result = 1", "collect": ["ok", "../*"]}"#,
            "invalid request: collect[1] \"../*\": '..' segments are refused",
        ),
        (
            r#"{"code": "result = 1", "files": [{"path": "a", "content": "%%%", "encoding": "base64"}]}"#,
            "invalid request: files[0] \"a\": the content is not valid base64",
        ),
        (
            r#"{"code": "result = 1", "files": "a"}"#,
            "invalid request: \"files\" must be an array or null, got a string",
        ),
    ] {
        let answer = post_run(&server, body);
        let error = answer.error(StatusCode::BAD_REQUEST);
        assert!(error.starts_with(says), "{body}: {error}");
    }
}

/// A JSON request on a fresh connection, with the bearer token when given.
fn send_json(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> reqwest::blocking::Response {
    let mut request = client()
        .request(method, server.url(path))
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().unwrap()
}

/// Sessions over HTTP: created under a profile narrowed like a run's, cells keep their
/// state and return `value`, an interrupted cell keeps the session, a client that hangs
/// up mid-cell loses it, the engine's cap is a 429, DELETE closes; all behind the token.
#[test]
fn sessions_keep_state_between_runs_and_are_judged_like_runs() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(dir.path(), "p.toml", "timeout_seconds = 20\n");
    let server = Server::start_with(
        &[
            "--pool-size",
            "1",
            "--max-sessions",
            "2",
            "--policy",
            &policy,
        ],
        &[("SPR_TOKEN", TOKEN)],
    );
    use reqwest::Method;
    let post = |path: &str, body: &str| {
        Answer::of(send_json(&server, Method::POST, path, body, Some(TOKEN)))
    };
    let create = |body: &str| post("/v1/sessions", body);
    let cell = |sid: &str, body: &str| post(&format!("/v1/sessions/{sid}/runs"), body);

    // Every session route wants the token.
    for (method, path) in [
        (Method::POST, "/v1/sessions"),
        (Method::POST, "/v1/sessions/x/runs"),
        (Method::DELETE, "/v1/sessions/x"),
    ] {
        let answer = Answer::of(send_json(&server, method.clone(), path, "{}", None));
        answer.error(StatusCode::UNAUTHORIZED);
    }

    // A session whose cells may take 1 s (narrowed like a run's policy).
    let made = create(r#"{"ttl_seconds": 120, "policy": {"timeout_seconds": 1}}"#);
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    assert_eq!(made.headers[CONTENT_TYPE], "application/json");
    let quick = made.json["session"].as_str().unwrap().to_string();
    assert!(quick.starts_with("ses_") && quick.len() == 36, "{quick}");
    assert_eq!(made.json.as_object().unwrap().len(), 1, "{}", made.text);

    // State persists; `value` is the last expression's, null after a statement.
    let first = cell(
        &quick,
        r#"{"id": 1, "code": "import math\nx = 20\nprint('set')"}"#,
    );
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert!(
        first.text.starts_with(r#"{"id":1,"ok":true,"#),
        "{}",
        first.text
    );
    assert_eq!(first.json["stdout"], "set\n");
    assert_eq!(first.json["value"], Value::Null);
    let second = cell(
        &quick,
        r#"{"code": "x += 1\n{'x': x, 'f': math.factorial(4)}"}"#,
    );
    assert_eq!(
        second.json["value"],
        serde_json::json!({"x": 21, "f": 24}),
        "{}",
        second.text
    );
    let from_input = cell(
        &quick,
        r#"{"code": "x + input_data['k']", "input_data": {"k": 100}}"#,
    );
    assert_eq!(from_input.json["value"], 121, "{}", from_input.text);

    // A cell past its 1 s is interrupted; the session and its state survive.
    let slow = cell(&quick, r#"{"code": "while True: pass"}"#);
    assert_eq!(slow.status, StatusCode::OK);
    assert_eq!(slow.json["timed_out"], true, "{}", slow.text);
    assert_eq!(slow.json["exit_code"], 124);
    assert!(slow.json.get("session_lost").is_none(), "{}", slow.text);
    let after = cell(&quick, r#"{"code": "x * 2"}"#);
    assert_eq!(after.json["value"], 42, "{}", after.text);

    // A run in a session cannot set a policy; its body is checked like a run's.
    let with_policy = cell(&quick, r#"{"code": "1", "policy": {"timeout_seconds": 1}}"#);
    assert!(with_policy
        .error(StatusCode::BAD_REQUEST)
        .starts_with("invalid request: unknown key \"policy\""));
    cell(&quick, r#"{"code": 1}"#).error(StatusCode::BAD_REQUEST);

    // Creation is judged like a run: widening 403, unknown profile, bad TTL and body 400.
    let higher = create(r#"{"policy": {"timeout_seconds": 21}}"#);
    assert_eq!(
        higher.error(StatusCode::FORBIDDEN),
        "policy key \"timeout_seconds\" may not be set by a client: 21 is above the profile's 20"
    );
    let widening = create(r#"{"policy": {"blocked_imports": []}}"#);
    assert!(widening
        .error(StatusCode::FORBIDDEN)
        .starts_with("policy key \"blocked_imports\" may not be set by a client"));
    assert!(create(r#"{"profile": "nope"}"#)
        .error(StatusCode::BAD_REQUEST)
        .starts_with("unknown profile \"nope\""));
    assert_eq!(
        create(r#"{"ttl_seconds": 0}"#).error(StatusCode::BAD_REQUEST),
        "\"ttl_seconds\" must be between 1 and 86400, got 0"
    );
    assert!(create(r#"{"code": "x"}"#)
        .error(StatusCode::BAD_REQUEST)
        .starts_with("invalid request: unknown key \"code\""));

    // An empty body is the default profile; the cap of 2 is then reached: 429.
    let long = create("");
    assert_eq!(long.status, StatusCode::CREATED, "{}", long.text);
    let long = long.json["session"].as_str().unwrap().to_string();
    let full = create("{}");
    assert!(
        full.error(StatusCode::TOO_MANY_REQUESTS)
            .starts_with("too many open sessions: this engine allows 2"),
        "{}",
        full.text
    );
    assert_eq!(full.headers[RETRY_AFTER], "5");
    server.wait_for("two open sessions", |h| h["open_sessions"] == 2);
    let text = scrape(&server, Some(TOKEN));
    assert_eq!(metric(&text, "spr_sessions_open"), 2.0);
    assert_eq!(metric(&text, "spr_sessions_created_total"), 2.0);
    assert_eq!(
        metric(&text, r#"spr_session_runs_total{outcome="ok"}"#),
        4.0
    );
    assert_eq!(
        metric(&text, r#"spr_session_runs_total{outcome="timeout"}"#),
        1.0
    );
    assert_eq!(
        metric(&text, r#"spr_session_runs_total{outcome="refused"}"#),
        2.0
    );
    // Session runs are runs too.
    assert_eq!(metric(&text, r#"spr_runs_total{outcome="ok"}"#), 4.0);
    assert_eq!(
        metric(
            &text,
            r#"spr_http_responses_total{route="/v1/sessions",status="201"}"#
        ),
        2.0
    );

    // A client that hangs up mid-cell cancels it, and that loses the session.
    let mut raw = RawConnection::open(&server);
    let body = r#"{"code": "import time\ntime.sleep(60)"}"#;
    let request = format!(
        "POST /v1/sessions/{long}/runs HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw.writer.write_all(request.as_bytes()).unwrap();
    server.wait_for("the cell running", |h| h["in_flight"] == 1);
    // The slot is taken just before the cell starts: give it time to be under way.
    std::thread::sleep(Duration::from_secs(1));
    drop(raw);
    let deadline = Instant::now() + PATIENCE;
    let lost = loop {
        let answer = cell(&long, r#"{"code": "1"}"#);
        if answer.status == StatusCode::NOT_FOUND {
            break answer;
        }
        assert!(Instant::now() < deadline, "never lost: {}", answer.text);
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        lost.error(StatusCode::NOT_FOUND).ends_with(
            "was lost (its process was killed or died) and its state is gone; create a new session"
        ),
        "{}",
        lost.text
    );

    // DELETE closes (a lost session too); then the id is unknown.
    let delete = |sid: &str| {
        send_json(
            &server,
            Method::DELETE,
            &format!("/v1/sessions/{sid}"),
            "",
            Some(TOKEN),
        )
    };
    for sid in [&quick, &long] {
        let closed = delete(sid);
        assert_eq!(closed.status(), StatusCode::NO_CONTENT);
        assert!(closed.text().unwrap().is_empty());
    }
    let again = Answer::of(delete(&quick));
    assert!(again
        .error(StatusCode::NOT_FOUND)
        .starts_with("unknown session \"ses_"));
    let gone = cell(&quick, r#"{"code": "x"}"#);
    assert!(gone
        .error(StatusCode::NOT_FOUND)
        .starts_with("unknown session"));
    server.wait_for("no open session", |h| h["open_sessions"] == 0);
    // A place is free again.
    assert_eq!(create("{}").status, StatusCode::CREATED);

    // One line per operation; the ids, which let a client in, only cut short.
    let log = server.log_when("the session lines", |log| {
        log.matches(" session door=\"http\" op=\"close\"").count() >= 3
    });
    assert!(log.contains("op=\"create\""), "{log}");
    assert!(log.contains("profile=session outcome=\"timeout\""), "{log}");
    assert!(log.contains("outcome=\"cancelled\""), "{log}");
    for sid in [&quick, &long] {
        assert!(
            !log.contains(sid.as_str()),
            "a whole session id is logged: {log}"
        );
        assert!(log.contains(&sid[..12]), "{log}");
    }
}

/// A session's runs take `files` and `collect` too: files stay for the session's life,
/// and a bad path is a 400 that leaves the session as it was.
#[test]
fn session_runs_bring_files_that_stay_and_collect_them() {
    let server = Server::start(&["--pool-size", "1"]);
    let post = |path: &str, body: &str| {
        Answer::of(send_json(&server, reqwest::Method::POST, path, body, None))
    };
    let made = post("/v1/sessions", "{}");
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let sid = made.json["session"].as_str().unwrap().to_string();
    let runs = format!("/v1/sessions/{sid}/runs");
    let first = post(
        &runs,
        r#"{"code": "import pathlib\nrows = pathlib.Path('in/data.csv').read_text().split()", "files": [{"path": "in/data.csv", "content": "a\n1\n2\n"}]}"#,
    );
    assert_eq!(first.json["ok"], true, "{}", first.text);
    let second = post(
        &runs,
        r#"{"code": "pathlib.Path('out.txt').write_text(str(len(rows)))\nlen(rows)", "collect": ["in/*", "*.txt"]}"#,
    );
    assert_eq!(second.json["value"], 3, "{}", second.text);
    let files: Vec<spr_protocol::FileOut> =
        serde_json::from_value(second.json["files"].clone()).unwrap();
    let got: Vec<(&str, Vec<u8>)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.decode().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("in/data.csv", b"a\n1\n2\n".to_vec()),
            ("out.txt", b"3".to_vec())
        ]
    );
    let bad = post(
        &runs,
        r#"{"code": "1", "files": [{"path": "../x", "content": "x"}]}"#,
    );
    assert!(
        bad.error(StatusCode::BAD_REQUEST)
            .contains("'..' segments are refused"),
        "{}",
        bad.text
    );
    assert_eq!(post(&runs, r#"{"code": "len(rows)"}"#).json["value"], 3);
}

/// A server whose workers fail in the operator's `--warmup` stops (exit 125, naming the
/// failure) even while a client holds a request it never finishes sending: no signal is
/// coming to cut such a drain short, so a grace does.
#[test]
fn a_server_whose_warm_up_fails_stops_though_a_client_holds_a_request_half_sent() {
    let mut server = Server::start(&[
        "--warmup",
        "import time\ntime.sleep(2)\nraise RuntimeError('spr late warm-up')",
    ]);
    let mut held = RawConnection::open(&server);
    held.writer
        .write_all(
            b"POST /v1/runs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"code\":",
        )
        .unwrap();
    assert_eq!(server.wait_exit(), Some(125), "{}", server.log());
    server.log_when("the failure", |log| {
        log.contains("error: the server stopped: the --preload or --warmup failed")
            && log.contains("the warm-up failed: RuntimeError: spr late warm-up")
    });
}

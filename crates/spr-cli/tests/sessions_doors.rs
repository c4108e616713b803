//! Sessions through `spr serve --stdio` and the `--max-sessions` option, on the real
//! binary and the shared test venv (HTTP and MCP have theirs in `http.rs` and `mcp.rs`).

mod common;

use common::{cli_venv, spr, Session};
use serde_json::{json, Value};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(120);

fn ask(server: &mut Session, request: Value) -> Value {
    server.send(&request.to_string());
    server.recv(PATIENCE)
}

#[test]
fn stdio_sessions_keep_state_and_honour_the_cap() {
    let mut server = Session::start(spr().args([
        "serve",
        "--stdio",
        "--venv-manager",
        "python",
        "--venv-dir",
        cli_venv(),
        "--pool-size",
        "1",
        "--max-sessions",
        "1",
    ]));
    let made = ask(
        &mut server,
        json!({"id": "c", "op": "session.create", "ttl_seconds": 60, "policy": {"timeout_seconds": 1}}),
    );
    let sid = made["session"]
        .as_str()
        .unwrap_or_else(|| panic!("{made}"))
        .to_string();
    assert_eq!(made["id"], "c");

    let first = ask(
        &mut server,
        json!({"id": 1, "code": "n = 2\nn * 10", "session": sid}),
    );
    assert_eq!(
        (first["ok"].clone(), first["value"].clone()),
        (json!(true), json!(20)),
        "{first}"
    );
    let slow = ask(
        &mut server,
        json!({"id": 2, "code": "while True: pass", "session": sid}),
    );
    assert_eq!(slow["timed_out"], true, "{slow}");
    let after = ask(
        &mut server,
        json!({"id": 3, "code": "n + 1", "session": sid}),
    );
    assert_eq!(after["value"], 3, "{after}");
    // A one-shot run beside the session sees none of its state.
    let apart = ask(
        &mut server,
        json!({"id": 4, "code": "result = 'n' in globals()"}),
    );
    assert_eq!(apart["result"], false, "{apart}");
    assert!(apart.get("value").is_none(), "{apart}");

    // The cap of one.
    let full = ask(&mut server, json!({"id": 5, "op": "session.create"}));
    assert!(
        full["error"]
            .as_str()
            .unwrap_or_default()
            .contains("too many open sessions: this engine allows 1"),
        "{full}"
    );

    let closed = ask(
        &mut server,
        json!({"id": 6, "op": "session.close", "session": sid}),
    );
    assert_eq!(closed, json!({"id": 6, "closed": true}));
    let gone = ask(&mut server, json!({"id": 7, "code": "n", "session": sid}));
    assert!(
        gone["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("line 8: unknown session"),
        "{gone}"
    );
    let again = ask(&mut server, json!({"id": 8, "op": "session.create"}));
    assert!(
        again["session"].is_string(),
        "a place is free again: {again}"
    );
    let (code, stderr) = server.finish(PATIENCE);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn max_sessions_is_checked_and_refused_where_it_means_nothing() {
    let out = common::run_within(
        spr().args(["serve", "--stdio", "--max-sessions", "0"]),
        PATIENCE,
    );
    assert_eq!(common::code(&out), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--max-sessions"), "{stderr}");
    let out = common::run_within(
        spr().args(["run", "-c", "pass", "--max-sessions", "2"]),
        PATIENCE,
    );
    assert_eq!(common::code(&out), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--max-sessions only applies to the servers (spr serve, spr mcp)"),
        "{stderr}"
    );
    let help = common::run_within(spr().args(["serve", "--help"]), PATIENCE);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--max-sessions <N>"), "{text}");
}

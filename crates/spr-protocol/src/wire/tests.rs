//! The front doors' wire: ids and input keep their text, every bad request is named,
//! and the shapes clients read are pinned by snapshots.

use super::*;
use crate::{Json, RunnerResult};

fn refuse(text: &str, door: Door) -> RequestError {
    RunCall::parse(text.as_bytes(), door).unwrap_err()
}

#[test]
fn ids_and_input_keep_their_text() {
    for id in [
        "18446744073709551617",
        "123456789012345678901234567890.5",
        "-1e400",
        r#"{"k": [1, 2.50]}"#,
        r#""\ud800""#,
    ] {
        let line = format!(
            r#"{{"input_data": {{"x": 99999999999999999999}}, "id": {id}, "code": "result = x"}}"#
        );
        let call = RunCall::parse(line.as_bytes(), Door::Stdio).unwrap();
        assert_eq!(call.id.get(), id);
        assert_eq!(call.input_data.get(), r#"{"x": 99999999999999999999}"#);
        let response = response_line(&call.id, &RunnerResult::infrastructure_error("x"));
        assert!(
            response.starts_with(&format!(r#"{{"id":{id},"ok":false,"#)),
            "{response}"
        );
        assert!(response.ends_with("}\n"));
    }
}

#[test]
fn the_id_survives_a_bad_request() {
    let err = refuse(r#"{"id": 7, "code": 1}"#, Door::Stdio);
    assert_eq!(err.id, serde_json::json!(7));
    assert_eq!(err.to_string(), "\"code\" must be a string, got a number");
}

#[test]
fn every_bad_request_is_named() {
    let mut lines = Vec::new();
    let deep = format!(
        r#"{{"id": 1, "code": "x", "input_data": {{"a": {}{}}}}}"#,
        "[".repeat(MAX_INPUT_DEPTH),
        "]".repeat(MAX_INPUT_DEPTH)
    );
    for (door, text) in [
        (Door::Stdio, r#"{"zz": 1, "code": "x", "id": 9, "aa": 2}"#),
        (Door::Stdio, r#"{"code": "x", "profile": "p"}"#),
        (Door::Http, r#"{"code": "x", "profile": 3}"#),
        (Door::Http, r#"{"code": "x", "bad\nkey\u001b": 3}"#),
        (Door::Stdio, "12"),
        (Door::Stdio, r#""s""#),
        (Door::Stdio, "null"),
        (Door::Stdio, "true"),
        (Door::Stdio, "[1, 2]"),
        (Door::Stdio, r#"{"code": null}"#),
        (Door::Stdio, r#"{"id": 1}"#),
        (Door::Stdio, r#"{"code": "x", "policy": [1]}"#),
        (Door::Stdio, r#"{"code": "x", "input_data": [1]}"#),
        (Door::Stdio, r#"{"id": 1, "code": "x"} x"#),
        (Door::Stdio, r#"{"id": 1, "code": "x""#),
        (
            Door::Stdio,
            r#"{"id": "b", "code": "x", "files": [{"path": "\udc00", "content": "x"}]}"#,
        ),
        (Door::Stdio, r#"{"code": "x\ud800", "id": 7}"#),
        (Door::Stdio, r#"{"id": "\ud800", bad}"#),
        (Door::Stdio, r#"{"id": 1e999, bad}"#),
        (Door::Stdio, deep.as_str()),
    ] {
        let err = refuse(text, door);
        lines.push(format!("{door:?} id={}: {err}", err.id.get()));
    }
    let not_utf8 = RunCall::parse(b"{\"code\": \"\xff\"}", Door::Http).unwrap_err();
    lines.push(format!("not utf-8: {not_utf8}"));
    insta::assert_snapshot!("request_errors", lines.join("\n"));
}

#[test]
fn files_and_collect_are_read_and_every_bad_one_is_named() {
    let call = RunCall::parse(
        br#"{"code": "x", "files": [{"path": "a.txt", "content": "hi"},
            {"path": "b.bin", "content": "AAE=", "encoding": "base64"}], "collect": ["*.png"]}"#,
        Door::Stdio,
    )
    .unwrap();
    assert_eq!(call.attachments.files.len(), 2);
    assert_eq!(
        call.attachments.files[1].encoding,
        crate::FileEncoding::Base64
    );
    assert_eq!(call.attachments.collect, ["*.png"]);
    let none = RunCall::parse(br#"{"code": "x", "files": null}"#, Door::Http).unwrap();
    assert!(none.attachments.is_empty());
    let mut lines = Vec::new();
    for text in [
        r#"{"code": "x", "files": {"path": "a"}}"#,
        r#"{"code": "x", "files": ["a.txt"]}"#,
        r#"{"code": "x", "files": [{"path": "a", "content": "", "mode": 1}]}"#,
        r#"{"code": "x", "files": [{"content": ""}]}"#,
        r#"{"code": "x", "files": [{"path": "a", "content": 3}]}"#,
        r#"{"code": "x", "files": [{"path": "a", "content": "", "encoding": "latin-1"}]}"#,
        r#"{"code": "x", "files": [{"path": "a", "content": "", "encoding": 8}]}"#,
        r#"{"code": "x", "collect": "*.png"}"#,
        r#"{"code": "x", "collect": ["*.png", 4]}"#,
    ] {
        lines.push(refuse(text, Door::Http).to_string());
    }
    insta::assert_snapshot!("attachment_request_errors", lines.join("\n"));
}

/// A message repeats at most a few dozen characters of what the client wrote, however
/// long it is: a megabyte key must not come back as a megabyte error (or log line).
#[test]
fn messages_cut_what_they_repeat() {
    let key = "k".repeat(1 << 20);
    let err = refuse(&format!(r#"{{"code": "x", "{key}": 1}}"#), Door::Http);
    let message = err.to_string();
    assert!(message.len() < 300, "{} bytes", message.len());
    assert!(message.starts_with("unknown key \"kkkk"), "{message}");
    assert!(message.contains("k…\" (expected id, code,"), "{message}");
    assert_eq!(loggable(&"é".repeat(100)).chars().count(), 65);
}

#[test]
fn http_requests_pick_a_profile() {
    let call = RunCall::parse(
        br#"{"code": "x", "profile": "strict", "policy": {"timeout_seconds": 1}}"#,
        Door::Http,
    )
    .unwrap();
    assert_eq!(call.profile.as_deref(), Some("strict"));
    assert_eq!(call.policy.unwrap()["timeout_seconds"], 1);
    assert!(call.id.is_null() && call.input_data.is_null());
    let call =
        RunCall::parse(br#"{"code": "x", "code": "y", "policy": null}"#, Door::Http).unwrap();
    assert_eq!(call.code, "y", "the last of a repeated key wins");
    assert!(call.policy.is_none());
}

#[test]
fn response_shapes() {
    let id: Json = "\"req-1\"".parse().unwrap();
    let mut result = RunnerResult::infrastructure_error("x");
    result.ok = true;
    result.error = None;
    result.exit_code = 0;
    result.result = "4".parse().unwrap();
    result.stdout = "hi\n".into();
    insta::assert_snapshot!("run_response", response_line(&id, &result));
    // HTTP: the id first when there is one, the RunnerResult alone when there is none.
    let http = |id: &Json| String::from_utf8(run_response_body(id, &result)).unwrap();
    assert_eq!(http(&id), response_line(&id, &result).trim_end());
    insta::assert_snapshot!("http_run_body_without_id", http(&Json::null()));
    insta::assert_snapshot!(
        "invalid_request",
        response_line(
            &Json::null(),
            &RunnerResult::invalid_request("invalid request: line 1: missing key \"code\"")
        )
    );
    insta::assert_json_snapshot!(
        "error_body",
        ErrorBody {
            error: "unknown profile \"x\" (configured: default)".into()
        }
    );
    insta::assert_json_snapshot!(
        "health",
        Health {
            status: "ok".into(),
            version: "0.1.0".into(),
            engine: "local".into(),
            capacity: 2,
            in_flight: 1,
            queued: 0,
            open_sessions: 3,
        }
    );
    // Clients read a response line back as a RunnerResult.
    let back: RunnerResult = serde_json::from_str(&response_line(&id, &result)).unwrap();
    assert_eq!(back, result);
}

mod mcp_tool {
    use super::super::mcp::*;
    use super::MAX_INPUT_DEPTH;
    use serde_json::{json, Map, Value};

    fn args(value: Value) -> Result<RunPythonArgs, ArgsError> {
        match value {
            Value::Object(map) => RunPythonArgs::parse(Some(&map)),
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn a_call_with_every_argument() {
        let call = args(json!({
            "code": "result = x",
            "input_data": {"x": [1, 2.5]},
            "timeout_seconds": 3,
            "session_id": "s1"
        }))
        .unwrap();
        assert_eq!(call.code, "result = x");
        assert_eq!(call.input_data.get(), r#"{"x":[1,2.5]}"#);
        assert_eq!(call.timeout_seconds, Some(3));
        assert_eq!(call.session_id.as_deref(), Some("s1"));
        // Optional arguments spelled out as null are absent.
        let call = args(
            json!({"code": "", "input_data": null, "timeout_seconds": null, "session_id": null}),
        )
        .unwrap();
        assert!(call.input_data.is_null());
        assert_eq!((call.timeout_seconds, call.session_id), (None, None));
    }

    #[test]
    fn every_bad_call_is_named() {
        let deep = (0..MAX_INPUT_DEPTH).fold(json!(1), |inner, _| json!([inner]));
        let mut lines = vec![format!(
            "no arguments: {}",
            RunPythonArgs::parse(None).unwrap_err()
        )];
        for call in [
            json!({}),
            json!({"code": null}),
            json!({"code": 1}),
            json!({"code": ["print(1)"]}),
            json!({"code": "x", "zz": 1, "policy": {"timeout_seconds": 1}}),
            json!({"code": "x", "bad\nkey\u{1b}": 1}),
            json!({"code": "x", "input_data": [1]}),
            json!({"code": "x", "input_data": "{\"a\": 1}"}),
            json!({"code": "x", "timeout_seconds": "5"}),
            json!({"code": "x", "timeout_seconds": -1}),
            json!({"code": "x", "timeout_seconds": 2.5}),
            json!({"code": "x", "session_id": 7}),
        ] {
            lines.push(format!("{call}: {}", args(call.clone()).unwrap_err()));
        }
        let too_deep = args(json!({"code": "x", "input_data": {"a": deep}})).unwrap_err();
        lines.push(format!(
            "{{\"input_data\": {{\"a\": [[...]]}}}} ({} levels): {too_deep}",
            MAX_INPUT_DEPTH + 1
        ));
        insta::assert_snapshot!("mcp_args_errors", lines.join("\n"));
    }

    #[test]
    fn an_unknown_argument_is_named_but_cut() {
        let key = "k".repeat(1 << 20);
        let err = args(json!({"code": "x", key: 1})).unwrap_err();
        let message = err.to_string();
        assert!(message.len() < 300, "{} bytes", message.len());
        assert!(message.starts_with("unknown argument \"kkkk"), "{message}");
    }

    #[test]
    fn input_as_deep_as_the_limit_is_accepted() {
        // `{"a": [[...1]]}` with the object itself as the first level.
        let inner = (1..MAX_INPUT_DEPTH).fold(json!(1), |inner, _| json!([inner]));
        let call = args(json!({"code": "x", "input_data": {"a": inner}})).unwrap();
        assert_eq!(call.input_data.nesting_depth(), MAX_INPUT_DEPTH);
    }

    #[test]
    fn the_schemas_clients_see() {
        insta::assert_json_snapshot!("mcp_input_schema", run_python_input_schema(30));
        insta::assert_json_snapshot!("mcp_output_schema", runner_result_schema());
    }

    #[test]
    fn the_input_schema_lists_what_the_parser_takes() {
        let schema = run_python_input_schema(5);
        let properties: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut keys = RUN_PYTHON_KEYS.to_vec();
        keys.sort_unstable();
        assert_eq!(properties, keys);
        assert_eq!(schema["required"], json!(["code"]));
        assert_eq!(schema["properties"]["timeout_seconds"]["maximum"], 5);
    }

    #[test]
    fn the_output_schema_describes_every_key_of_a_result() {
        let schema = runner_result_schema();
        let properties = schema["properties"].as_object().unwrap();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        let result = serde_json::to_value(crate::RunnerResult::invalid_request("x")).unwrap();
        let keys: Map<String, Value> = result.as_object().unwrap().clone();
        for key in keys.keys() {
            assert!(properties.contains_key(key), "{key} is not in the schema");
            assert!(required.contains(&key.as_str()), "{key} is not required");
        }
        for key in &required {
            assert!(keys.contains_key(*key), "{key} is required but never sent");
        }
        // The one optional key: engines that know fill in the receipt.
        let optional: Vec<&String> = properties
            .keys()
            .filter(|k| !required.contains(&k.as_str()))
            .collect();
        assert_eq!(
            optional,
            ["files", "outputs", "sandbox", "session_lost", "value"]
        );
    }

    #[test]
    fn the_session_tools_take_what_their_schemas_list() {
        let map = |v: Value| match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        };
        let create = CreateSessionArgs::parse(Some(&map(
            json!({"timeout_seconds": 5, "ttl_seconds": null}),
        )))
        .unwrap();
        assert_eq!(
            (create.timeout_seconds, create.ttl_seconds),
            (Some(5), None)
        );
        assert_eq!(
            CreateSessionArgs::parse(None).unwrap().timeout_seconds,
            None
        );
        let close = CloseSessionArgs::parse(Some(&map(json!({"session_id": "ses_1"})))).unwrap();
        assert_eq!(close.session_id, "ses_1");
        let errors = [
            CreateSessionArgs::parse(Some(&map(json!({"code": "x"})))).unwrap_err(),
            CreateSessionArgs::parse(Some(&map(json!({"ttl_seconds": -1})))).unwrap_err(),
            CloseSessionArgs::parse(None).unwrap_err(),
            CloseSessionArgs::parse(Some(&map(json!({"session_id": 7})))).unwrap_err(),
            CloseSessionArgs::parse(Some(&map(json!({"session_id": "s", "x\n": 1})))).unwrap_err(),
        ]
        .map(|e| e.to_string());
        assert_eq!(
            errors,
            [
                "unknown argument \"code\" (create_session takes timeout_seconds, ttl_seconds)",
                "\"ttl_seconds\" must be a positive whole number of seconds, got -1",
                "missing argument \"session_id\": pass the id create_session returned",
                "\"session_id\" must be a string, got 7",
                "unknown argument \"x\\n\" (close_session takes session_id)",
            ]
        );
        for (schema, keys) in [
            (create_session_input_schema(5, 60), CREATE_SESSION_KEYS),
            (close_session_input_schema(), CLOSE_SESSION_KEYS),
        ] {
            let listed: Vec<&str> = schema["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(listed, keys);
        }
        let out = create_session_output_schema();
        assert_eq!(out["required"], json!(["session_id"]));
        assert_eq!(close_session_output_schema()["required"], json!(["closed"]));
    }
}

#[test]
fn stdio_lines_are_runs_or_session_operations() {
    let parse = |text: &str| StdioCall::parse(text.as_bytes());
    match parse(
        r#"{"id": 1, "op": "session.create", "ttl_seconds": 30, "policy": {"timeout_seconds": 2}}"#,
    )
    .unwrap()
    {
        StdioCall::CreateSession(c) => {
            assert_eq!(c.id.get(), "1");
            assert_eq!(c.ttl_seconds, Some(30));
            assert!(c.policy.is_some());
        }
        other => panic!("{other:?}"),
    }
    match parse(r#"{"id": "c", "op": "session.close", "session": "ses_1"}"#).unwrap() {
        StdioCall::CloseSession(c) => assert_eq!(c.session, "ses_1"),
        other => panic!("{other:?}"),
    }
    match parse(r#"{"id": 2, "code": "x", "session": "ses_1"}"#).unwrap() {
        StdioCall::Run(run) => assert_eq!(run.session.as_deref(), Some("ses_1")),
        other => panic!("{other:?}"),
    }
    let created = session_line(
        &serde_json::json!(7).into(),
        &SessionCreated {
            session: "ses_1".into(),
        },
    );
    assert_eq!(created, "{\"id\":7,\"session\":\"ses_1\"}\n");
    let closed = session_line(&Json::null(), &SessionClosed { closed: true });
    assert_eq!(closed, "{\"id\":null,\"closed\":true}\n");
}

#[test]
fn every_bad_session_request_is_named() {
    let mut lines = Vec::new();
    for text in [
        r#"{"id": 1, "op": "session.open"}"#,
        r#"{"id": 1, "op": 3}"#,
        r#"{"id": 1, "op": "session.create", "code": "x"}"#,
        r#"{"id": 1, "op": "session.create", "ttl_seconds": -1}"#,
        r#"{"id": 1, "op": "session.create", "ttl_seconds": "60"}"#,
        r#"{"id": 1, "op": "session.close"}"#,
        r#"{"id": 1, "op": "session.close", "session": 5}"#,
        r#"{"id": 1, "code": "x", "session": "s", "policy": {}}"#,
    ] {
        let err = StdioCall::parse(text.as_bytes()).unwrap_err();
        lines.push(format!("id={}: {err}", err.id.get()));
    }
    for text in [r#"{"code": "x"}"#, r#"{"ttl_seconds": 1.5}"#, "[]"] {
        let err = SessionCreate::parse_http(text.as_bytes()).unwrap_err();
        lines.push(format!("http create: {err}"));
    }
    let err = RunCall::parse(br#"{"code": "x", "policy": {}}"#, Door::HttpSession).unwrap_err();
    lines.push(format!("http session run: {err}"));
    insta::assert_snapshot!("session_request_errors", lines.join("\n"));
    assert!(SessionCreate::parse_http(b"").unwrap().policy.is_none());
}

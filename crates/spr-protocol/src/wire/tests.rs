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
        }
    );
    // Clients read a response line back as a RunnerResult.
    let back: RunnerResult = serde_json::from_str(&response_line(&id, &result)).unwrap();
    assert_eq!(back, result);
}

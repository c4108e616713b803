//! The status rules of `assemble_result`, one case per row of the contract.

use super::*;

fn report(exit: Option<i32>, frame: Option<&str>) -> RunReport {
    RunReport {
        id: 1,
        exit_code: exit,
        duration_ms: 1.25,
        child_frame: frame.map(str::to_string),
        ..RunReport::default()
    }
}

#[test]
fn a_completed_run_with_status_zero_is_ok_and_keeps_its_result() {
    let r = assemble_result(
        &report(Some(0), Some(r#"{"outcome":"completed","result":4}"#)),
        &RunnerPolicy::default(),
    );
    assert!(r.ok);
    assert_eq!(r.result, serde_json::json!(4));
    assert_eq!(r.error, None);
}

#[test]
fn a_success_frame_from_a_process_that_exited_non_zero_is_not_believed() {
    let r = assemble_result(
        &report(Some(3), Some(r#"{"outcome":"completed","result":"SPOOF"}"#)),
        &RunnerPolicy::default(),
    );
    assert!(!r.ok);
    assert_eq!(r.exit_code, 3);
    assert_eq!(r.result, serde_json::Value::Null);
}

#[test]
fn a_process_that_dies_silently_gets_an_error_naming_its_status() {
    let r = assemble_result(&report(Some(7), None), &RunnerPolicy::default());
    assert_eq!(
        r.error.as_deref(),
        Some("Process exited with code 7 without reporting a result")
    );
    let mut killed = report(None, None);
    killed.signal = Some(9);
    let r = assemble_result(&killed, &RunnerPolicy::default());
    assert_eq!(r.exit_code, -9);
    assert!(r.error.unwrap().contains("SIGKILL"));
}

#[test]
fn garbage_and_non_object_frames_are_errors() {
    for frame in [
        "[1]",
        "not json",
        r#"{"outcome":"completed"}{"outcome":"completed"}"#,
    ] {
        let r = assemble_result(&report(Some(0), Some(frame)), &RunnerPolicy::default());
        assert!(!r.ok, "{frame}");
        assert!(r
            .error
            .unwrap()
            .starts_with("Process reported a malformed result"));
    }
}

#[test]
fn a_timeout_wins_over_everything_and_keeps_partial_output() {
    let mut rep = report(None, None);
    rep.signal = Some(9);
    rep.timed_out = true;
    rep.stdout = "partial\n".into();
    let policy = RunnerPolicy {
        timeout_seconds: 2,
        ..RunnerPolicy::default()
    };
    let r = assemble_result(&rep, &policy);
    assert!(r.timed_out && !r.ok);
    assert_eq!(r.exit_code, EXIT_TIMEOUT);
    assert_eq!(r.error.as_deref(), Some("Execution timed out after 2s"));
    assert_eq!(r.stdout, "partial\n");
}

#[test]
fn system_exit_keeps_result_and_uses_the_process_status() {
    let zero = assemble_result(
        &report(
            Some(0),
            Some(r#"{"outcome":"exit","result":"r","exit_status":0}"#),
        ),
        &RunnerPolicy::default(),
    );
    assert!(zero.ok);
    assert_eq!(zero.result, serde_json::json!("r"));
    let wrapped = assemble_result(
        &report(
            Some(0),
            Some(r#"{"outcome":"exit","result":"r","exit_status":256,"error":"SystemExit: 256"}"#),
        ),
        &RunnerPolicy::default(),
    );
    assert!(!wrapped.ok);
    assert_eq!(wrapped.exit_code, 0);
    assert_eq!(wrapped.error.as_deref(), Some("SystemExit: 256"));
}

#[test]
fn a_memory_error_sets_resource_exceeded() {
    let r = assemble_result(
        &report(Some(1), Some(r#"{"outcome":"memory_error"}"#)),
        &RunnerPolicy::default(),
    );
    assert!(r.resource_exceeded && !r.ok);
    assert_eq!(
        r.error.as_deref(),
        Some("MemoryError: Memory limit exceeded (256 MB)")
    );
}

#[test]
fn result_json_has_the_original_keys_first() {
    let r = assemble_result(
        &report(Some(0), Some(r#"{"outcome":"completed","result":[1,"a"]}"#)),
        &RunnerPolicy::default(),
    );
    // serde_json's text, not insta's serializer, which cannot see through `Json`.
    insta::assert_snapshot!(serde_json::to_string_pretty(&r).unwrap());
}

#[test]
fn a_result_keeps_every_digit_without_the_harness_whitespace() {
    let r = assemble_result(
        &report(
            Some(0),
            Some(
                r#"{"outcome": "completed", "result": [1000000000000000000000000000000, -1e-300, 0.1, "a, b"]}"#,
            ),
        ),
        &RunnerPolicy::default(),
    );
    assert!(r.ok, "{r:?}");
    assert_eq!(
        r.result.get(),
        r#"[1000000000000000000000000000000,-1e-300,0.1,"a, b"]"#
    );
    let text = serde_json::to_string(&r).unwrap();
    assert!(
        text.starts_with(r#"{"ok":true,"result":[1000000000000000000000000000000,-1e-300,"#),
        "{text}"
    );
    let back: RunnerResult = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
    assert_eq!(back.result.get(), r.result.get());
}

#[test]
fn a_backstop_timeout_reports_the_time_the_host_waited() {
    let policy = RunnerPolicy {
        timeout_seconds: 2,
        ..RunnerPolicy::default()
    };
    let r = RunnerResult::timeout(&policy, std::time::Duration::from_micros(70_123_456));
    assert!(r.timed_out && !r.ok);
    assert_eq!(r.exit_code, EXIT_TIMEOUT);
    assert_eq!(r.duration_ms, 70_123.456);
    assert_eq!(r.error.as_deref(), Some("Execution timed out after 2s"));
}

#[test]
fn a_run_cannot_pass_for_a_timeout_or_an_engine_error_by_its_exit_status() {
    for status in [124, 125] {
        let r = assemble_result(
            &report(
                Some(status),
                Some(&format!(
                    r#"{{"outcome":"exit","result":null,"exit_status":{status},"error":"SystemExit: {status}"}}"#
                )),
            ),
            &RunnerPolicy::default(),
        );
        assert_eq!(r.exit_code, 1, "{r:?}");
        assert!(!r.ok && !r.timed_out);
        assert_eq!(
            r.error.as_deref(),
            Some(format!("SystemExit: {status}").as_str())
        );
    }
}

#[test]
fn returned_files_and_figures_are_kept_only_where_the_harness_could_have_sent_them() {
    let frame = serde_json::json!({
        "outcome": "completed",
        "result": 1,
        "files": [
            {"path": "out/a.txt", "content": "aGk=", "size": 2, "truncated": false},
            {"path": "big.bin", "content": "aGk=", "size": 900, "truncated": true},
            {"path": "/etc/passwd", "content": "aGk=", "size": 2, "truncated": false},
            {"path": "../x", "content": "aGk=", "size": 2, "truncated": false},
            {"path": "lies.txt", "content": "aGk=", "size": 5, "truncated": false},
            {"path": "bad.txt", "content": "!!", "size": 2, "truncated": false}
        ],
        "outputs": [
            {"mime_type": "image/png", "data": "iVBORw0KGgo="},
            {"mime_type": "text/html", "data": "PGI+"},
            {"mime_type": "image/png", "data": "***"}
        ]
    })
    .to_string();
    let r = assemble_result(&report(Some(0), Some(&frame)), &RunnerPolicy::default());
    assert!(r.ok, "{r:?}");
    let paths: Vec<_> = r.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["out/a.txt", "big.bin"]);
    assert_eq!(r.outputs.len(), 1);
    assert_eq!(&r.outputs[0].decode().unwrap()[..4], b"\x89PNG");
    // A failed run keeps what it returned (a figure drawn before the error helps).
    let frame = r#"{"outcome":"exception","error":"E: x","outputs":[{"mime_type":"image/png","data":"iVBORw0KGgo="}]}"#;
    let r = assemble_result(&report(Some(1), Some(frame)), &RunnerPolicy::default());
    assert!(!r.ok);
    assert_eq!(r.outputs.len(), 1);
}

#[test]
fn a_result_without_files_keeps_the_original_keys() {
    let r = assemble_result(
        &report(Some(0), Some(r#"{"outcome":"completed","result":4}"#)),
        &RunnerPolicy::default(),
    );
    let json = serde_json::to_value(&r).unwrap();
    assert!(
        json.get("files").is_none() && json.get("outputs").is_none(),
        "{json}"
    );
}

#[test]
fn a_result_too_large_to_carry_is_a_failure_of_the_run() {
    let mut big = report(Some(0), None);
    big.child_frame_overflow = true;
    let r = assemble_result(&big, &RunnerPolicy::default());
    assert!(!r.ok);
    assert_eq!(r.exit_code, 1);
    assert_eq!(
        r.error.as_deref(),
        Some("The result is larger than the 16 MiB limit")
    );
    // A status of its own is kept.
    let mut big = report(Some(3), None);
    big.child_frame_overflow = true;
    assert_eq!(assemble_result(&big, &RunnerPolicy::default()).exit_code, 3);
}

#[test]
fn a_result_with_a_lone_surrogate_escape_is_made_readable() {
    let frame = r#"{"outcome": "completed", "result": ["\udcff", "\ud83d\ude00"]}"#;
    let r = assemble_result(&report(Some(0), Some(frame)), &RunnerPolicy::default());
    assert!(r.ok, "{r:?}");
    assert_eq!(r.result.get(), "[\"\u{fffd}\",\"\u{1f600}\"]");
    assert!(serde_json::to_value(&r).is_ok());
}

#[test]
fn a_session_killed_for_writing_on_its_result_pipe_is_not_a_timeout() {
    let mut lost = report(None, None);
    lost.cell = true;
    lost.signal = Some(9);
    lost.session_lost = true;
    lost.frame_refused = true;
    let r = assemble_result(&lost, &RunnerPolicy::default());
    assert!(!r.ok && !r.timed_out && r.session_lost, "{r:?}");
    assert_eq!(r.exit_code, 1);
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .contains("wrote on its result pipe"),
        "{r:?}"
    );
}

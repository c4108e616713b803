//! `to_toml` and serde: what is written reads back as the same policy.

mod common;

use spr_policy::{Mode, RunnerPolicy, Value};
use std::collections::BTreeMap;

fn rich_policy() -> RunnerPolicy {
    let mut extra = BTreeMap::new();
    extra.insert("answer".to_string(), Value::Int(42));
    extra.insert("ratio".to_string(), Value::Float(1.0));
    extra.insert("tiny".to_string(), Value::Float(1e-12));
    extra.insert("flag".to_string(), Value::Bool(false));
    extra.insert(
        "text".to_string(),
        Value::from("quote \" backslash \\ tab \t nl \n bell \u{7}"),
    );
    extra.insert(
        "nested".to_string(),
        Value::Table(
            [
                (
                    "list".to_string(),
                    Value::Array(vec![Value::Int(1), Value::from("x")]),
                ),
                ("key with space".to_string(), Value::Table(BTreeMap::new())),
            ]
            .into(),
        ),
    );
    RunnerPolicy {
        mode: Mode::Allow,
        timeout_seconds: 30,
        memory_limit_mb: 512,
        max_output_kb: 0,
        allowed_imports: vec!["math".into(), "os.path".into()],
        blocked_imports: vec![],
        allowed_builtins: vec!["print".into(), "len".into()],
        blocked_builtins: vec!["eval".into()],
        allowed_globals: vec!["answer".into()],
        blocked_globals: vec!["secret".into()],
        extra_globals: extra,
        sandbox: Default::default(),
        config_path: None,
    }
}

#[test]
fn the_default_policy_round_trips_through_toml() {
    let p = RunnerPolicy::default();
    assert_eq!(RunnerPolicy::from_toml_str(&p.to_toml(), None).unwrap(), p);
}

#[test]
fn a_rich_policy_round_trips_through_toml() {
    let p = rich_policy();
    assert_eq!(RunnerPolicy::from_toml_str(&p.to_toml(), None).unwrap(), p);
}

#[test]
fn to_toml_renders_a_policy_table_and_an_extra_globals_table() {
    insta::assert_snapshot!(rich_policy().to_toml());
}

#[test]
fn to_toml_does_not_render_config_path() {
    let p = RunnerPolicy {
        config_path: Some("/etc/spr/policy.toml".into()),
        ..RunnerPolicy::default()
    };
    assert!(!p.to_toml().contains("config_path"));
}

#[test]
fn to_toml_omits_nulls_and_says_so() {
    let mut p = RunnerPolicy::default();
    p.extra_globals.insert("nothing".into(), Value::Null);
    p.extra_globals.insert("kept".into(), Value::Int(1));
    let text = p.to_toml();
    assert!(text.contains("# extra_globals.nothing is null, which TOML cannot express: omitted"));
    let back = RunnerPolicy::from_toml_str(&text, None).unwrap();
    assert_eq!(back.extra_globals.len(), 1);
    assert_eq!(back.extra_globals["kept"], Value::Int(1));
}

#[test]
fn a_policy_round_trips_through_json() {
    let p = rich_policy();
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<RunnerPolicy>(&json).unwrap(), p);
}

#[test]
fn null_serializes_as_json_null() {
    let mut p = RunnerPolicy::default();
    p.extra_globals.insert("x".into(), Value::Null);
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["extra_globals"]["x"], serde_json::Value::Null);
}

#[test]
fn json_values_serialize_as_plain_data() {
    let v = Value::Array(vec![
        Value::Int(1),
        Value::Float(2.5),
        Value::from("s"),
        Value::Bool(true),
    ]);
    assert_eq!(serde_json::to_string(&v).unwrap(), r#"[1,2.5,"s",true]"#);
}

#[test]
fn json_with_an_unknown_key_is_rejected() {
    let e = serde_json::from_str::<RunnerPolicy>(r#"{"blocked_import": ["os"]}"#).unwrap_err();
    assert!(
        e.to_string().contains("unknown field `blocked_import`"),
        "{e}"
    );
}

#[test]
fn json_with_omitted_keys_keeps_defaults() {
    let p: RunnerPolicy = serde_json::from_str(r#"{"mode": "allow"}"#).unwrap();
    assert_eq!(p.mode, Mode::Allow);
    assert_eq!(p.blocked_imports, RunnerPolicy::default().blocked_imports);
}

#[test]
fn json_with_an_invalid_mode_is_rejected() {
    assert!(serde_json::from_str::<RunnerPolicy>(r#"{"mode": "deny"}"#).is_err());
}

#[test]
fn json_with_a_negative_limit_is_rejected() {
    assert!(serde_json::from_str::<RunnerPolicy>(r#"{"timeout_seconds": -1}"#).is_err());
}

#[test]
fn json_that_parses_is_still_subject_to_validate() {
    let p: RunnerPolicy = serde_json::from_str(r#"{"extra_globals": {"result": 1}}"#).unwrap();
    assert_eq!(
        p.validate().unwrap_err().key(),
        Some("extra_globals.result")
    );
}

#[test]
fn json_extra_globals_accept_null_and_nested_data() {
    let p: RunnerPolicy =
        serde_json::from_str(r#"{"extra_globals": {"a": null, "b": {"c": [1, 2.5, "x"]}}}"#)
            .unwrap();
    assert_eq!(p.extra_globals["a"], Value::Null);
    p.validate().unwrap();
}

#[test]
fn json_integers_beyond_i64_are_refused() {
    let e = serde_json::from_str::<Value>("18446744073709551615").unwrap_err();
    assert!(
        e.to_string()
            .contains("does not fit in a signed 64-bit integer"),
        "{e}"
    );
}

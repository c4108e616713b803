//! `validate()`: the ranges and name rules, for policies built in Rust or from JSON.

use spr_policy::{PolicyError, RunnerPolicy, Value};

fn invalid(p: &RunnerPolicy) -> (String, String) {
    match p.validate() {
        Err(PolicyError::Invalid {
            key,
            reason,
            path: None,
            line: None,
        }) => (key, reason),
        other => panic!("expected an Invalid error without location, got {other:?}"),
    }
}

fn with(f: impl FnOnce(&mut RunnerPolicy)) -> RunnerPolicy {
    let mut p = RunnerPolicy::default();
    f(&mut p);
    p
}

#[test]
fn timeout_accepts_1_to_86400() {
    with(|p| p.timeout_seconds = 1).validate().unwrap();
    with(|p| p.timeout_seconds = 86_400).validate().unwrap();
}

#[test]
fn timeout_of_zero_is_refused() {
    assert_eq!(
        invalid(&with(|p| p.timeout_seconds = 0)),
        (
            "timeout_seconds".into(),
            "must be between 1 and 86400, got 0".into()
        )
    );
}

#[test]
fn timeout_over_a_day_is_refused() {
    assert_eq!(
        invalid(&with(|p| p.timeout_seconds = 86_401)).0,
        "timeout_seconds"
    );
}

#[test]
fn memory_accepts_16_to_1048576() {
    with(|p| p.memory_limit_mb = 16).validate().unwrap();
    with(|p| p.memory_limit_mb = 1_048_576).validate().unwrap();
}

#[test]
fn memory_below_16_mb_is_refused() {
    assert_eq!(
        invalid(&with(|p| p.memory_limit_mb = 15)),
        (
            "memory_limit_mb".into(),
            "must be between 16 and 1048576, got 15".into()
        )
    );
}

#[test]
fn memory_above_1_tb_is_refused() {
    assert_eq!(
        invalid(&with(|p| p.memory_limit_mb = 1_048_577)).0,
        "memory_limit_mb"
    );
}

#[test]
fn max_output_of_zero_is_valid() {
    with(|p| p.max_output_kb = 0).validate().unwrap();
}

#[test]
fn max_output_above_1_gb_is_refused() {
    assert_eq!(
        invalid(&with(|p| p.max_output_kb = 1_048_577)),
        (
            "max_output_kb".into(),
            "must be between 0 and 1048576, got 1048577".into()
        )
    );
}

#[test]
fn dotted_module_names_are_valid_imports() {
    with(|p| p.blocked_imports = vec!["os".into(), "os.path".into(), "_thread".into()])
        .validate()
        .unwrap();
}

#[test]
fn an_empty_import_entry_is_refused() {
    assert_eq!(
        invalid(&with(
            |p| p.allowed_imports = vec!["math".into(), String::new()]
        )),
        ("allowed_imports[1]".into(), "must not be empty".into())
    );
}

#[test]
fn a_malformed_module_name_is_refused() {
    for bad in ["os.", ".os", "os..path", "1os", "os path", "os-path", " os"] {
        let p = with(|p| p.blocked_imports = vec![bad.into()]);
        assert_eq!(invalid(&p).0, "blocked_imports[0]", "{bad:?}");
    }
}

#[test]
fn builtin_names_must_be_identifiers() {
    assert_eq!(
        invalid(&with(|p| p.blocked_builtins = vec!["os.system".into()])),
        (
            "blocked_builtins[0]".into(),
            "'os.system' is not a Python identifier".into()
        )
    );
}

#[test]
fn global_names_must_be_identifiers() {
    assert_eq!(
        invalid(&with(|p| p.allowed_globals = vec!["a-b".into()])).0,
        "allowed_globals[0]"
    );
    assert_eq!(
        invalid(&with(|p| p.blocked_globals = vec![String::new()])).0,
        "blocked_globals[0]"
    );
}

#[test]
fn unicode_identifiers_are_valid_like_in_python() {
    with(|p| p.allowed_globals = vec!["données".into(), "_x1".into()])
        .validate()
        .unwrap();
}

#[test]
fn duplicate_entries_are_allowed() {
    with(|p| p.blocked_imports = vec!["os".into(), "os".into()])
        .validate()
        .unwrap();
}

#[test]
fn reserved_names_cannot_be_extra_globals() {
    for name in ["__builtins__", "__name__", "input_data", "result"] {
        let p = with(|p| {
            p.extra_globals.insert(name.into(), Value::Int(1));
        });
        let (key, reason) = invalid(&p);
        assert_eq!(key, format!("extra_globals.{name}"));
        assert!(reason.contains("reserved"), "{reason}");
    }
}

#[test]
fn an_extra_global_name_must_be_an_identifier() {
    let p = with(|p| {
        p.extra_globals.insert("my key".into(), Value::Int(1));
    });
    assert_eq!(
        invalid(&p),
        (
            "extra_globals.\"my key\"".into(),
            "'my key' is not a Python identifier".into()
        )
    );
}

#[test]
fn an_empty_extra_global_name_is_refused() {
    let p = with(|p| {
        p.extra_globals.insert(String::new(), Value::Int(1));
    });
    assert_eq!(invalid(&p).1, "must not be empty");
}

#[test]
fn non_finite_floats_in_extra_globals_are_refused_with_their_path() {
    let p = with(|p| {
        p.extra_globals.insert(
            "xs".into(),
            Value::Array(vec![Value::Float(1.0), Value::Float(f64::INFINITY)]),
        );
    });
    assert_eq!(invalid(&p).0, "extra_globals.xs[1]");
}

#[test]
fn allow_mode_with_empty_lists_is_valid() {
    with(|p| p.mode = spr_policy::Mode::Allow)
        .validate()
        .unwrap();
}

#[test]
fn keys_from_other_formats_get_the_same_did_you_mean() {
    let err = spr_policy::check_keys("policy", ["mode", "blocked_import"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown key 'blocked_import' (did you mean 'blocked_imports'?)"
    );
    let err = spr_policy::check_keys("sandbox", ["netwrok"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown key 'sandbox.netwrok' (did you mean 'sandbox.network'?)"
    );
    assert!(spr_policy::check_keys("policy", ["mode", "timeout_seconds", "sandbox"]).is_ok());
}

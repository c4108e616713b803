//! Loading TOML: both layouts, defaults for omitted keys, strict keys and types, lines.

mod common;

use common::{error, parse};
use spr_policy::{Mode, PolicyError, RunnerPolicy, Value};

#[test]
fn a_policy_table_is_read() {
    let p =
        parse("[policy]\nmode = \"allow\"\ntimeout_seconds = 9\nallowed_imports = [\"math\"]\n")
            .unwrap();
    assert_eq!(p.mode, Mode::Allow);
    assert_eq!(p.timeout_seconds, 9);
    assert_eq!(p.allowed_imports, ["math"]);
}

#[test]
fn a_flat_file_without_a_policy_table_is_read() {
    let p = parse("mode = \"allow\"\nmax_output_kb = 0\n[extra_globals]\nanswer = 42\n").unwrap();
    assert_eq!(p.mode, Mode::Allow);
    assert_eq!(p.max_output_kb, 0);
    assert_eq!(p.extra_globals["answer"], Value::Int(42));
}

#[test]
fn dotted_keys_under_policy_are_read() {
    let p = parse("policy.timeout_seconds = 7\npolicy.extra_globals.name = \"x\"\n").unwrap();
    assert_eq!(p.timeout_seconds, 7);
    assert_eq!(p.extra_globals["name"], Value::from("x"));
}

#[test]
fn a_file_with_only_mode_restrict_still_blocks_os_and_eval() {
    // The original turned every omitted list into [], which unblocked everything.
    let p = parse("mode = \"restrict\"\n").unwrap();
    assert!(p.blocked_imports.iter().any(|m| m == "os"));
    assert!(p.blocked_builtins.iter().any(|b| b == "eval"));
    assert_eq!(p, RunnerPolicy::default());
}

#[test]
fn an_omitted_key_keeps_its_default_under_a_policy_table_too() {
    let p = parse("[policy]\nblocked_builtins = [\"print\"]\n").unwrap();
    assert_eq!(p.blocked_builtins, ["print"]);
    assert_eq!(p.blocked_imports, RunnerPolicy::default().blocked_imports);
    assert_eq!(p.timeout_seconds, 5);
}

#[test]
fn an_empty_list_in_the_file_is_kept_empty() {
    let p = parse("blocked_imports = []\n").unwrap();
    assert!(p.blocked_imports.is_empty());
}

#[test]
fn extra_globals_hold_nested_plain_data() {
    let p = parse(
        "[policy.extra_globals]\nflag = true\nratio = 0.5\nitems = [1, \"two\"]\ncfg = { depth = 2 }\n",
    )
    .unwrap();
    let g = &p.extra_globals;
    assert_eq!(g["flag"], Value::Bool(true));
    assert_eq!(g["ratio"], Value::Float(0.5));
    assert_eq!(
        g["items"],
        Value::Array(vec![Value::Int(1), Value::from("two")])
    );
    assert_eq!(
        g["cfg"],
        Value::Table([("depth".to_string(), Value::Int(2))].into())
    );
}

#[test]
fn from_toml_str_does_not_set_config_path() {
    assert_eq!(parse("").unwrap().config_path, None);
}

#[test]
fn without_an_origin_errors_name_no_file() {
    let e = RunnerPolicy::from_toml_str("timeout_seconds = 0\n", None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 1: timeout_seconds: must be between 1 and 86400, got 0"
    );
}

#[test]
fn a_range_error_names_file_line_and_key() {
    assert_eq!(
        error("[policy]\nmode = \"restrict\"\ntimeout_seconds = 0\n"),
        "policy.toml: line 3: timeout_seconds: must be between 1 and 86400, got 0"
    );
}

#[test]
fn a_negative_limit_is_a_range_error() {
    assert_eq!(
        error("memory_limit_mb = -1\n"),
        "policy.toml: line 1: memory_limit_mb: must be between 16 and 1048576, got -1"
    );
}

#[test]
fn an_unknown_key_is_an_error_with_a_suggestion() {
    assert_eq!(
        error("[policy]\nblocked_import = [\"os\"]\n"),
        "policy.toml: line 2: unknown key 'blocked_import' (did you mean 'blocked_imports'?)"
    );
}

#[test]
fn an_unknown_key_that_is_a_prefix_of_a_known_one_gets_a_suggestion() {
    assert_eq!(
        error("timeout = 3\n"),
        "policy.toml: line 1: unknown key 'timeout' (did you mean 'timeout_seconds'?)"
    );
}

#[test]
fn an_unknown_key_far_from_every_known_key_gets_no_suggestion() {
    assert_eq!(
        error("[policy]\nflavour = true\n"),
        "policy.toml: line 2: unknown key 'flavour'"
    );
}

#[test]
fn a_top_level_key_beside_a_policy_table_is_unknown() {
    assert_eq!(
        error("[other]\nx = 1\n[policy]\nmode = \"allow\"\n"),
        "policy.toml: line 1: unknown key 'other'"
    );
}

#[test]
fn a_policy_key_outside_the_policy_table_suggests_moving_it() {
    assert_eq!(
        error("timeout_seconds = 3\n[policy]\n"),
        "policy.toml: line 1: unknown key 'timeout_seconds' (did you mean 'policy.timeout_seconds'?)"
    );
}

#[test]
fn a_policy_key_that_is_not_a_table_is_an_error() {
    assert_eq!(
        error("policy = \"strict\"\n"),
        "policy.toml: line 1: policy: expected a table, got a string"
    );
}

#[test]
fn a_float_limit_is_a_type_error_not_truncated() {
    assert_eq!(
        error("timeout_seconds = 1.9\n"),
        "policy.toml: line 1: timeout_seconds: expected an integer, got a float (1.9)"
    );
}

#[test]
fn a_string_limit_is_a_type_error() {
    assert_eq!(
        error("\n\nmemory_limit_mb = \"abc\"\n"),
        "policy.toml: line 3: memory_limit_mb: expected an integer, got a string"
    );
}

#[test]
fn an_invalid_mode_is_an_error() {
    assert_eq!(
        error("mode = \"deny\"\n"),
        "policy.toml: line 1: mode: must be 'allow' or 'restrict', got 'deny'"
    );
}

#[test]
fn mode_is_case_sensitive_like_the_original() {
    assert!(parse("mode = \"Allow\"\n").is_err());
}

#[test]
fn a_non_string_mode_is_a_type_error() {
    assert_eq!(
        error("mode = true\n"),
        "policy.toml: line 1: mode: expected a string ('allow' or 'restrict'), got a boolean"
    );
}

#[test]
fn a_list_field_holding_a_string_is_a_type_error() {
    assert_eq!(
        error("blocked_imports = \"os\"\n"),
        "policy.toml: line 1: blocked_imports: expected an array of strings, got a string"
    );
}

#[test]
fn a_non_string_list_item_is_named_by_index_and_its_own_line() {
    assert_eq!(
        error("blocked_imports = [\n  \"os\",\n  42,\n]\n"),
        "policy.toml: line 3: blocked_imports[1]: expected a string, got an integer"
    );
}

#[test]
fn a_validation_error_in_a_list_item_reports_the_items_line() {
    assert_eq!(
        error("[policy]\nallowed_builtins = [\n  \"print\",\n  \"not valid\",\n]\n"),
        "policy.toml: line 4: allowed_builtins[1]: 'not valid' is not a Python identifier"
    );
}

#[test]
fn extra_globals_that_is_not_a_table_is_an_error() {
    assert_eq!(
        error("extra_globals = [1]\n"),
        "policy.toml: line 1: extra_globals: expected a table, got an array"
    );
}

#[test]
fn a_datetime_in_extra_globals_is_refused_by_name() {
    assert_eq!(
        error("[policy]\n[policy.extra_globals]\nok = 1\nwhen = 1979-05-27T07:32:00Z\n"),
        "policy.toml: line 4: extra_globals.when: TOML datetimes are not supported, use a string"
    );
}

#[test]
fn a_nested_datetime_in_extra_globals_is_refused_with_its_path() {
    assert_eq!(
        error("[extra_globals]\ncfg = { days = [2024-01-01] }\n"),
        "policy.toml: line 2: extra_globals.cfg.days[0]: TOML datetimes are not supported, use a string"
    );
}

#[test]
fn a_datetime_in_a_scalar_field_is_a_type_error() {
    assert_eq!(
        error("timeout_seconds = 07:32:00\n"),
        "policy.toml: line 1: timeout_seconds: expected an integer, got a datetime"
    );
}

#[test]
fn config_path_cannot_be_set_inside_a_file() {
    assert_eq!(
        error("config_path = \"/etc/other.toml\"\n"),
        "policy.toml: line 1: config_path: cannot be set inside a policy file (it is where the file was loaded from)"
    );
}

#[test]
fn a_syntax_error_has_line_and_column() {
    let e = parse("mode = \"allow\"\n[policy\n").unwrap_err();
    match &e {
        PolicyError::Syntax { line, column, .. } => assert_eq!((*line, *column), (2, 8)),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(
        e.to_string()
            .starts_with("policy.toml: line 2, column 8: invalid TOML: "),
        "{e}"
    );
}

#[test]
fn a_duplicate_key_is_a_syntax_error() {
    let e = parse("mode = \"allow\"\nmode = \"restrict\"\n").unwrap_err();
    assert!(matches!(e, PolicyError::Syntax { line: 2, .. }), "{e:?}");
}

#[test]
fn errors_expose_key_line_and_path() {
    let e = parse("[policy]\nblocked_imports = [\"os\", \"\"]\n").unwrap_err();
    assert_eq!(e.key(), Some("blocked_imports[1]"));
    assert_eq!(e.line(), Some(2));
    assert_eq!(e.path(), Some(std::path::Path::new("policy.toml")));
}

#[test]
fn keys_in_both_allowed_and_blocked_lists_are_accepted() {
    // Only the active mode's lists are consulted, so the overlap is harmless.
    let p = parse("allowed_imports = [\"os\"]\nblocked_imports = [\"os\"]\n").unwrap();
    assert_eq!(p.allowed_imports, p.blocked_imports);
}

#[test]
fn toml_deserialized_directly_through_serde_also_refuses_datetimes() {
    let e = toml::from_str::<RunnerPolicy>("[extra_globals]\nw = 1979-05-27\n").unwrap_err();
    assert!(
        e.to_string()
            .contains("TOML datetimes are not supported, use a string"),
        "{e}"
    );
}

#[test]
fn an_error_under_a_dotted_key_still_names_its_line() {
    assert_eq!(
        error("# limits\npolicy.timeout_seconds = 0\n"),
        "policy.toml: line 2: timeout_seconds: must be between 1 and 86400, got 0"
    );
}

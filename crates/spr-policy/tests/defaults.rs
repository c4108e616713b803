//! The defaults are the original safe-py-runner's, field for field.

use spr_policy::{Mode, RunnerPolicy};

#[test]
fn default_mode_is_restrict() {
    assert_eq!(RunnerPolicy::default().mode, Mode::Restrict);
}

#[test]
fn default_limits_are_5_seconds_256_mb_128_kb() {
    let p = RunnerPolicy::default();
    assert_eq!(p.timeout_seconds, 5);
    assert_eq!(p.memory_limit_mb, 256);
    assert_eq!(p.max_output_kb, 128);
}

#[test]
fn default_blocked_imports_are_os_subprocess_socket_ctypes_importlib() {
    assert_eq!(
        RunnerPolicy::default().blocked_imports,
        ["os", "subprocess", "socket", "ctypes", "importlib"]
    );
}

#[test]
fn default_blocked_builtins_are_eval_exec_open_compile_breakpoint() {
    assert_eq!(
        RunnerPolicy::default().blocked_builtins,
        ["eval", "exec", "open", "compile", "breakpoint"]
    );
}

#[test]
fn default_allow_lists_globals_and_extra_globals_are_empty() {
    let p = RunnerPolicy::default();
    assert!(p.allowed_imports.is_empty());
    assert!(p.allowed_builtins.is_empty());
    assert!(p.allowed_globals.is_empty());
    assert!(p.blocked_globals.is_empty());
    assert!(p.extra_globals.is_empty());
    assert_eq!(p.config_path, None);
}

#[test]
fn default_policy_is_valid() {
    RunnerPolicy::default().validate().unwrap();
}

#[test]
fn an_empty_toml_document_is_the_default_policy() {
    assert_eq!(
        RunnerPolicy::from_toml_str("", None).unwrap(),
        RunnerPolicy::default()
    );
}

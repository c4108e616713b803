//! The rules a policy must satisfy, wherever it came from (Rust, TOML or JSON).

use crate::{PolicyError, RunnerPolicy, Value};

/// `timeout_seconds`: a run of zero seconds is meaningless; a day is a generous ceiling.
pub const TIMEOUT_SECONDS_RANGE: (u64, u64) = (1, 86_400);
/// `memory_limit_mb`: what a run's code may allocate on top of the interpreter; ordinary
/// code does not run in less than 16 MiB.
pub const MEMORY_LIMIT_MB_RANGE: (u64, u64) = (16, 1_048_576);
/// `max_output_kb`: 0 means "keep no output", which is a valid choice.
pub const MAX_OUTPUT_KB_RANGE: (u64, u64) = (0, 1_048_576);

/// Names the runner binds itself; an `extra_globals` entry must not replace them.
pub const RESERVED_GLOBALS: &[&str] = &["__builtins__", "__name__", "input_data", "result"];

pub(crate) fn validate(p: &RunnerPolicy) -> Result<(), PolicyError> {
    check_range(
        "timeout_seconds",
        p.timeout_seconds.into(),
        TIMEOUT_SECONDS_RANGE,
    )?;
    check_range(
        "memory_limit_mb",
        p.memory_limit_mb.into(),
        MEMORY_LIMIT_MB_RANGE,
    )?;
    check_range("max_output_kb", p.max_output_kb.into(), MAX_OUTPUT_KB_RANGE)?;
    check_modules("allowed_imports", &p.allowed_imports)?;
    check_modules("blocked_imports", &p.blocked_imports)?;
    check_names("allowed_builtins", &p.allowed_builtins)?;
    check_names("blocked_builtins", &p.blocked_builtins)?;
    check_names("allowed_globals", &p.allowed_globals)?;
    check_names("blocked_globals", &p.blocked_globals)?;
    for (name, value) in &p.extra_globals {
        let key = crate::load::key_path("extra_globals", name);
        if name.is_empty() {
            return Err(PolicyError::invalid(key, "must not be empty"));
        }
        if !is_identifier(name) {
            return Err(PolicyError::invalid(
                key,
                format!("'{name}' is not a Python identifier"),
            ));
        }
        if RESERVED_GLOBALS.contains(&name.as_str()) {
            return Err(PolicyError::invalid(
                key,
                format!("'{name}' is reserved: the runner sets it for every run"),
            ));
        }
        check_value(&key, value)?;
    }
    crate::sandbox::validate(&p.sandbox)?;
    Ok(())
}

/// Checks an integer against an inclusive range; `i128` so negative TOML integers get the
/// same message as out-of-range unsigned ones.
pub(crate) fn check_range(key: &str, value: i128, (lo, hi): (u64, u64)) -> Result<(), PolicyError> {
    if value < i128::from(lo) || value > i128::from(hi) {
        return Err(PolicyError::invalid(
            key,
            format!("must be between {lo} and {hi}, got {value}"),
        ));
    }
    Ok(())
}

fn check_modules(field: &str, items: &[String]) -> Result<(), PolicyError> {
    for (i, item) in items.iter().enumerate() {
        if item.is_empty() {
            return Err(PolicyError::invalid(
                format!("{field}[{i}]"),
                "must not be empty",
            ));
        }
        if !item.split('.').all(is_identifier) {
            return Err(PolicyError::invalid(
                format!("{field}[{i}]"),
                format!("'{item}' is not a module name (expected a dotted Python identifier like 'os' or 'os.path')"),
            ));
        }
    }
    Ok(())
}

fn check_names(field: &str, items: &[String]) -> Result<(), PolicyError> {
    for (i, item) in items.iter().enumerate() {
        if item.is_empty() {
            return Err(PolicyError::invalid(
                format!("{field}[{i}]"),
                "must not be empty",
            ));
        }
        if !is_identifier(item) {
            return Err(PolicyError::invalid(
                format!("{field}[{i}]"),
                format!("'{item}' is not a Python identifier"),
            ));
        }
    }
    Ok(())
}

/// Values travel to Python as JSON, which has no NaN or infinity (serde_json would
/// silently turn them into `null`).
fn check_value(key: &str, value: &Value) -> Result<(), PolicyError> {
    match value {
        Value::Float(x) if !x.is_finite() => Err(PolicyError::invalid(
            key,
            format!("{x} cannot be passed to Python as JSON (only finite floats can)"),
        )),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_value(&format!("{key}[{i}]"), v)),
        Value::Table(entries) => entries
            .iter()
            .try_for_each(|(k, v)| check_value(&crate::load::key_path(key, k), v)),
        _ => Ok(()),
    }
}

/// An approximation of Python's `str.isidentifier()`: exact for ASCII; for other
/// characters Unicode alphabetic/alphanumeric stand in for XID_Start/XID_Continue,
/// which would need tables this crate does not carry.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c == '_' || c.is_alphanumeric())
}

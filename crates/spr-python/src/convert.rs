//! What crosses between Python and spr: policies, inputs and attachments in, results out.
//!
//! Policies arrive as JSON text of the TOML `[policy]` table's keys (what `spr serve`
//! takes), judged as strictly as a policy file; results leave as the `RunnerResult` JSON
//! every door of spr returns.

use crate::errors::{chain, policy_error, value_error};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use spr_core::{Attachments, FileIn, Json, JsonKind, PolicySource, RunnerPolicy, RunnerResult};
use std::path::PathBuf;

/// A call's policy: JSON text of a policy object, or a policy file, or neither.
pub(crate) fn policy_source(
    policy_json: Option<&str>,
    policy_file: Option<PathBuf>,
) -> PyResult<PolicySource> {
    let policy = policy_json.map(parse_policy).transpose()?;
    PolicySource::from_options(policy, policy_file).map_err(|e| value_error(&e))
}

/// A policy object as a policy: unknown keys (with a suggestion), types and ranges are
/// refused with the key named. A `config_path` wins over the other keys and is read
/// when the run resolves its policy, as in the original.
pub(crate) fn parse_policy(text: &str) -> PyResult<RunnerPolicy> {
    let invalid = |message: String| PyValueError::new_err(format!("invalid policy: {message}"));
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let serde_json::Value::Object(map) = value else {
        return Err(invalid("a policy must be an object of its keys".into()));
    };
    spr_core::check_policy_keys("policy", map.keys().map(String::as_str))
        .map_err(|e| invalid(chain(&e)))?;
    if let Some(serde_json::Value::Object(sandbox)) = map.get("sandbox") {
        spr_core::check_policy_keys("sandbox", sandbox.keys().map(String::as_str))
            .map_err(|e| invalid(chain(&e)))?;
    }
    // The path names the key of a wrong type ("sandbox.max_processes: invalid type ...").
    let policy: RunnerPolicy = serde_path_to_error::deserialize(serde_json::Value::Object(map))
        .map_err(|e| invalid(format!("{}: {}", e.path(), e.inner())))?;
    if policy.config_path.is_none() {
        policy.validate().map_err(|e| invalid(chain(&e)))?;
    }
    Ok(policy)
}

/// The run's input as JSON text (`None`: an empty object).
pub(crate) fn input(text: Option<&str>) -> PyResult<Option<Json>> {
    text.map(|t| {
        t.parse::<Json>()
            .map_err(|e| PyValueError::new_err(format!("input_data is not valid JSON: {e}")))
    })
    .transpose()
}

/// A cell's input: a JSON object, or nothing (an empty object), as for a run.
pub(crate) fn object_input(text: Option<&str>) -> PyResult<Json> {
    match input(text)? {
        None => Ok(empty_object()),
        Some(json) => match json.kind() {
            JsonKind::Object => Ok(json),
            JsonKind::Null => Ok(empty_object()),
            other => Err(PyValueError::new_err(format!(
                "input_data must be a JSON object (or null), got {}",
                other.describe()
            ))),
        },
    }
}

fn empty_object() -> Json {
    "{}".parse().expect("an empty object is JSON")
}

/// Files for the run's scratch (`(path, bytes)`; text was encoded by the caller) and
/// the globs to collect after it.
pub(crate) fn attachments(files: Vec<(String, Vec<u8>)>, collect: Vec<String>) -> Attachments {
    Attachments {
        files: files
            .into_iter()
            .map(|(path, bytes)| match String::from_utf8(bytes) {
                Ok(text) => FileIn::text(path, text),
                Err(e) => FileIn::bytes(path, e.as_bytes()),
            })
            .collect(),
        collect,
    }
}

/// A result as three JSON texts: the record without `result` and `value`, then those two.
/// They are the run's own values, which the caller decodes apart: a Python may refuse one
/// (an integer of more digits than it converts, nesting deeper than it recurses), and that
/// must not cost the caller the rest of the result.
pub(crate) fn result_parts(mut result: RunnerResult) -> (String, String, Option<String>) {
    let value = result.value.take().map(|v| v.get().to_string());
    let text = std::mem::replace(&mut result.result, "null".parse().expect("null is JSON"));
    let record = serde_json::to_string(&result).expect("a RunnerResult always serializes");
    (record, text.get().to_string(), value)
}

fn policy_json(policy: &RunnerPolicy) -> String {
    serde_json::to_string(policy).expect("a policy always serializes")
}

/// The default policy as JSON, so the Python dataclass's defaults are spr's.
#[pyfunction]
pub(crate) fn default_policy() -> String {
    policy_json(&RunnerPolicy::default())
}

/// Load and check a TOML policy file; JSON of its policy, `config_path` set to `path`.
#[pyfunction]
pub(crate) fn load_policy_file(path: PathBuf) -> PyResult<String> {
    let policy = RunnerPolicy::from_file(&path).map_err(|e| policy_error(&e))?;
    policy.validate().map_err(|e| value_error(&e))?;
    Ok(policy_json(&policy))
}

/// Check a policy object (JSON text) now rather than at its first run; its normal form.
#[pyfunction]
pub(crate) fn check_policy(text: &str) -> PyResult<String> {
    parse_policy(text).map(|p| policy_json(&p))
}

/// The original's pinned-spec check: stripped, empty ones dropped, deduplicated, sorted.
#[pyfunction]
pub(crate) fn validate_pinned_packages(specs: Vec<String>) -> PyResult<Vec<String>> {
    spr_policy::validate_pinned_packages(&specs).map_err(|e| value_error(&e))
}

//! `run_code`: resolve the policy, check the input, hand the run to an engine.

use crate::engine::Engine;
use spr_policy::{PolicyError, RunnerPolicy};
use spr_protocol::RunnerResult;
use std::path::PathBuf;

/// Where the policy of a run comes from. The original took `policy` and `policy_file`
/// as two optional arguments and refused both at once; [`PolicySource::from_options`]
/// keeps that contract for callers that have two options.
// Built once per run and consumed by `run_code`: boxing the policy would only add an
// allocation to every call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Default)]
pub enum PolicySource {
    /// `RunnerPolicy::default()`.
    #[default]
    Default,
    /// This policy (if its `config_path` is set, that file is re-read for every run).
    Policy(RunnerPolicy),
    /// Load the policy from this TOML file for this run.
    File(PathBuf),
}

impl PolicySource {
    /// The original's rule: either a policy or a policy file, not both.
    pub fn from_options(
        policy: Option<RunnerPolicy>,
        policy_file: Option<PathBuf>,
    ) -> Result<Self, RunError> {
        match (policy, policy_file) {
            (Some(_), Some(_)) => Err(RunError::PolicyConflict),
            (Some(p), None) => Ok(PolicySource::Policy(p)),
            (None, Some(f)) => Ok(PolicySource::File(f)),
            (None, None) => Ok(PolicySource::Default),
        }
    }

    /// The effective policy for one run.
    pub fn resolve(&self) -> Result<RunnerPolicy, PolicyError> {
        match self {
            PolicySource::Default => Ok(RunnerPolicy::default()),
            PolicySource::Policy(p) => p.resolve(),
            PolicySource::File(path) => RunnerPolicy::from_file(path),
        }
    }
}

/// Why a run was refused before it reached an engine.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("Provide either 'policy' or 'policy_file', not both")]
    PolicyConflict,
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("input_data must be a JSON object (or null), got {0}")]
    InputNotObject(&'static str),
}

/// Run `code` on `engine`. Errors are refusals before execution (bad policy, bad
/// input); everything that happens once the run starts is in the `RunnerResult`.
pub async fn run_code<E: Engine + ?Sized>(
    code: &str,
    engine: &E,
    input_data: Option<serde_json::Value>,
    policy: PolicySource,
) -> Result<RunnerResult, RunError> {
    let policy = policy.resolve()?;
    let input = normalize_input(input_data)?;
    Ok(engine.execute(code, &input, &policy).await)
}

/// [`run_code`] for callers without an async runtime. Must not be called from inside
/// a tokio runtime.
///
/// All blocking calls share one background runtime: an engine's workers are bound to
/// the runtime that started them, so a runtime per call would strand them.
pub fn run_code_blocking<E: Engine + ?Sized>(
    code: &str,
    engine: &E,
    input_data: Option<serde_json::Value>,
    policy: PolicySource,
) -> Result<RunnerResult, RunError> {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("spr-blocking")
            .enable_all()
            .build()
            .expect("the blocking-call runtime can be built")
    });
    rt.block_on(run_code(code, engine, input_data, policy))
}

fn normalize_input(input: Option<serde_json::Value>) -> Result<serde_json::Value, RunError> {
    use serde_json::Value;
    match input {
        None | Some(Value::Null) => Ok(Value::Object(Default::default())),
        Some(v @ Value::Object(_)) => Ok(v),
        Some(Value::Array(_)) => Err(RunError::InputNotObject("an array")),
        Some(Value::String(_)) => Err(RunError::InputNotObject("a string")),
        Some(Value::Number(_)) => Err(RunError::InputNotObject("a number")),
        Some(Value::Bool(_)) => Err(RunError::InputNotObject("a boolean")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_and_policy_file_together_are_refused_with_the_original_message() {
        let err = PolicySource::from_options(Some(RunnerPolicy::default()), Some("p.toml".into()))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Provide either 'policy' or 'policy_file', not both"
        );
    }

    #[test]
    fn missing_input_becomes_an_empty_object_and_non_objects_are_refused() {
        assert_eq!(normalize_input(None).unwrap(), serde_json::json!({}));
        assert!(normalize_input(Some(serde_json::json!([1]))).is_err());
    }
}

//! `run_code`: resolve the policy, check the input, hand the run to an engine.

use crate::engine::Engine;
use spr_policy::{PolicyError, RunnerPolicy};
use spr_protocol::{AttachmentError, Attachments, Json, JsonKind, RunnerResult};
use std::path::PathBuf;

pub use spr_protocol::MAX_INPUT_DEPTH;

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
    #[error("input_data is nested deeper than {limit} levels")]
    InputTooDeep { limit: usize },
    #[error(transparent)]
    Session(#[from] spr_protocol::SessionError),
    #[error(transparent)]
    Attachments(#[from] AttachmentError),
}

/// Run `code` on `engine`. Errors are refusals before execution (bad policy, bad
/// input); everything that happens once the run starts is in the `RunnerResult`.
///
/// A `Value` holds numbers as `u64`, `i64` or `f64`; callers with JSON text whose
/// numbers may not fit use [`run_code_json`], which passes the text on unchanged.
pub async fn run_code<E: Engine + ?Sized>(
    code: &str,
    engine: &E,
    input_data: Option<serde_json::Value>,
    policy: PolicySource,
) -> Result<RunnerResult, RunError> {
    run_code_json(code, engine, input_data.map(Json::from), policy).await
}

/// [`run_code`] with the input as JSON text, sent to Python exactly as written (an
/// integer of any size stays exact). The same refusals: it must be an object or null.
pub async fn run_code_json<E: Engine + ?Sized>(
    code: &str,
    engine: &E,
    input_data: Option<Json>,
    policy: PolicySource,
) -> Result<RunnerResult, RunError> {
    let policy = policy.resolve()?;
    let input = normalize_input(input_data)?;
    Ok(engine.execute(code, &input, &policy).await)
}

/// [`run_code_json`] with files written into the run's scratch directory before the code
/// runs and the files matching `attachments.collect` returned in `RunnerResult::files`
/// (figures the code leaves open come back in `outputs` whatever the attachments).
/// Attachments that could leave scratch or break a cap are refused here, naming the file.
///
/// ```no_run
/// use spr_core::{run_code_with, Attachments, FileIn, LocalEngine, LocalEngineConfig, PolicySource};
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// # let engine = LocalEngine::new(LocalEngineConfig::new("/tmp/spr-venv"))?;
/// let attachments = Attachments {
///     files: vec![FileIn::text("data/in.csv", "a,b\n1,2\n")],
///     collect: vec!["out/*.csv".into()],
/// };
/// let code = "import csv, pathlib\n\
///             pathlib.Path('out').mkdir()\n\
///             pathlib.Path('out/copy.csv').write_text(open('data/in.csv').read())";
/// let result = run_code_with(code, &engine, None, PolicySource::Default, &attachments).await?;
/// assert_eq!(result.files[0].decode().unwrap(), b"a,b\n1,2\n");
/// # Ok(()) }
/// ```
pub async fn run_code_with<E: Engine + ?Sized>(
    code: &str,
    engine: &E,
    input_data: Option<Json>,
    policy: PolicySource,
    attachments: &Attachments,
) -> Result<RunnerResult, RunError> {
    let policy = policy.resolve()?;
    let input = normalize_input(input_data)?;
    attachments.validate(&policy)?;
    Ok(engine
        .execute_with(code, &input, &policy, attachments)
        .await)
}

/// [`run_code_with`] for callers without an async runtime. Must not be called from inside
/// a tokio runtime.
pub fn run_code_with_blocking<E: Engine + ?Sized>(
    code: &str,
    engine: &E,
    input_data: Option<Json>,
    policy: PolicySource,
    attachments: &Attachments,
) -> Result<RunnerResult, RunError> {
    blocking_runtime().block_on(run_code_with(code, engine, input_data, policy, attachments))
}

/// [`run_code`] for callers without an async runtime. Must not be called from inside
/// a tokio runtime.
pub fn run_code_blocking<E: Engine + ?Sized>(
    code: &str,
    engine: &E,
    input_data: Option<serde_json::Value>,
    policy: PolicySource,
) -> Result<RunnerResult, RunError> {
    blocking_runtime().block_on(run_code(code, engine, input_data, policy))
}

/// [`run_code_json`] for callers without an async runtime. Must not be called from
/// inside a tokio runtime.
pub fn run_code_json_blocking<E: Engine + ?Sized>(
    code: &str,
    engine: &E,
    input_data: Option<Json>,
    policy: PolicySource,
) -> Result<RunnerResult, RunError> {
    blocking_runtime().block_on(run_code_json(code, engine, input_data, policy))
}

/// All blocking calls share one background runtime: an engine's workers are bound to
/// the runtime that started them, so a runtime per call would strand them.
fn blocking_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("spr-blocking")
            .enable_all()
            .build()
            .expect("the blocking-call runtime can be built")
    })
}

pub(crate) fn normalize_input(input: Option<Json>) -> Result<Json, RunError> {
    let input = match input {
        None => return Ok(empty_object()),
        Some(json) => json,
    };
    match input.kind() {
        JsonKind::Null => Ok(empty_object()),
        JsonKind::Object if input.nesting_depth() > MAX_INPUT_DEPTH => {
            Err(RunError::InputTooDeep {
                limit: MAX_INPUT_DEPTH,
            })
        }
        JsonKind::Object => Ok(input),
        other => Err(RunError::InputNotObject(other.describe())),
    }
}

fn empty_object() -> Json {
    Json::from_value(&serde_json::Value::Object(Default::default()))
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

    fn text(s: &str) -> Option<Json> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn missing_input_becomes_an_empty_object_and_non_objects_are_refused() {
        assert_eq!(normalize_input(None).unwrap(), serde_json::json!({}));
        assert_eq!(
            normalize_input(text("null")).unwrap(),
            serde_json::json!({})
        );
        for (input, kind) in [
            ("[1]", "an array"),
            ("\"s\"", "a string"),
            ("1e400", "a number"),
            ("true", "a boolean"),
        ] {
            let err = normalize_input(text(input)).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("input_data must be a JSON object (or null), got {kind}")
            );
        }
    }

    #[test]
    fn object_input_is_kept_as_written() {
        let input = r#"{"x": 123456789012345678901234567890, "y": [0.1]}"#;
        assert_eq!(normalize_input(text(input)).unwrap().get(), input);
    }

    #[test]
    fn input_nested_deeper_than_python_can_decode_is_refused() {
        let nest = |n: usize| format!("{{\"a\": {}{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
        assert!(normalize_input(text(&nest(MAX_INPUT_DEPTH))).is_ok());
        let err = normalize_input(text(&nest(MAX_INPUT_DEPTH + 1))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "input_data is nested deeper than 128 levels"
        );
    }
}

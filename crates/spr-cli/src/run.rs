//! `spr run`: run one piece of code and report it for people or, with `--json`, for tools.

use crate::engine_opts::{DockerConnOpts, EngineOpts};
use crate::error::{CliError, Exit};
use crate::run_files;
use crate::{output, policy};
use clap::{ArgGroup, Args};
use spr_core::{
    run_code_with, Json, JsonKind, PolicySource, RunnerPolicy, RunnerResult, EXIT_INFRASTRUCTURE,
    MAX_INPUT_DEPTH,
};
use std::path::PathBuf;
use tokio::io::AsyncReadExt;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["file", "code"])))]
pub struct RunArgs {
    /// Python file to run, or `-` to read the code from standard input.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The code to run, given inline.
    #[arg(short = 'c', long = "code", value_name = "CODE")]
    pub code: Option<String>,
    /// input_data as a JSON object; its keys also become globals of the code.
    #[arg(long, value_name = "JSON", conflicts_with = "input_file")]
    pub input: Option<String>,
    /// Read input_data (a JSON object) from this file.
    #[arg(long, value_name = "PATH")]
    pub input_file: Option<PathBuf>,
    /// TOML policy file (default: the built-in default policy).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Print exactly one JSON object, the RunnerResult, on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write LOCALPATH into the run's directory as DEST before the code runs (repeatable).
    #[arg(long = "file", value_name = "DEST=LOCALPATH")]
    pub files: Vec<String>,
    /// Return the files the run leaves that match GLOB (relative to its directory;
    /// `**` spans directories; repeatable).
    #[arg(long = "collect", value_name = "GLOB")]
    pub collect: Vec<String>,
    /// Save the collected files (at their paths) and figures (output-N.png) here.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineOpts,
}

pub async fn run(args: RunArgs, conn: &DockerConnOpts) -> Result<Exit, CliError> {
    let json = args.json;
    let out_dir = args.out_dir.clone();
    match execute(args, conn).await {
        Ok(result) => {
            let saved = match &out_dir {
                Some(dir) => run_files::save(&result, dir),
                None => Ok(Vec::new()),
            };
            if json {
                let text = serde_json::to_string(&result).expect("RunnerResult serializes");
                output::stdout(&format!("{text}\n"));
            } else {
                print_human(&result);
            }
            let saved = saved?;
            if !json {
                print_saved(&result, &saved, out_dir.is_some());
            }
            Ok(exit_for(&result))
        }
        Err(err) => {
            // Tools parse stdout whatever happened, so a refusal is a result too; the
            // human-readable report still goes to stderr (main prints it).
            if json && err.exit != Exit::Interrupted {
                let result = RunnerResult {
                    exit_code: err.exit.code(),
                    ..RunnerResult::infrastructure_error(err.one_line())
                };
                let text = serde_json::to_string(&result).expect("RunnerResult serializes");
                output::stdout(&format!("{text}\n"));
            }
            Err(err)
        }
    }
}

/// Everything that can be refused is checked before the engine is built, so a typo
/// never waits for a venv to be created.
async fn execute(args: RunArgs, conn: &DockerConnOpts) -> Result<RunnerResult, CliError> {
    args.engine.check(conn)?;
    if args.engine.max_sessions.is_some() {
        // One run has no sessions: an option that would do nothing is refused.
        return Err(CliError::usage(
            "--max-sessions only applies to the servers (spr serve, spr mcp): spr run has no sessions",
        ));
    }
    let code = read_code(&args).await?;
    let input = read_input(&args)?;
    let policy = match &args.policy {
        Some(path) => policy::load(path)?,
        None => RunnerPolicy::default(),
    };
    let attachments = run_files::read(&args.files, &args.collect)?;
    attachments
        .validate(&policy)
        .map_err(|e| CliError::usage("the run was refused").caused_by(e))?;
    if let Some(dir) = &args.out_dir {
        run_files::prepare(dir)?;
    }
    // One run needs one worker; a full pool would only cost start-up time.
    let engine = args.engine.build(conn, Some(1)).await?;
    let outcome = tokio::select! {
        outcome = run_code_with(&code, &engine, Some(input), PolicySource::Policy(policy), &attachments) => outcome,
        () = crate::interrupted() => {
            engine.shutdown().await;
            return Err(CliError::new(Exit::Interrupted, "interrupted"));
        }
    };
    engine.shutdown().await;
    outcome.map_err(|e| CliError::usage("the run was refused").caused_by(e))
}

async fn read_code(args: &RunArgs) -> Result<String, CliError> {
    if let Some(code) = &args.code {
        return Ok(code.clone());
    }
    let file = args
        .file
        .as_ref()
        .expect("clap requires FILE or -c (the `source` group)");
    let bytes = if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        let cap = crate::local_file::MAX_REQUEST_FILE_BYTES;
        tokio::io::stdin()
            .take(cap + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| {
                CliError::usage("cannot read the code from standard input").caused_by(e)
            })?;
        if buf.len() as u64 > cap {
            return Err(CliError::usage(format!(
                "the code on standard input is larger than the limit of {cap} bytes"
            )));
        }
        buf
    } else {
        crate::local_file::read(
            file,
            crate::local_file::MAX_REQUEST_FILE_BYTES,
            &format!("cannot read code file '{}'", file.display()),
        )?
    };
    String::from_utf8(bytes).map_err(|e| {
        let from = if file.as_os_str() == "-" {
            "standard input".to_string()
        } else {
            format!("'{}'", file.display())
        };
        CliError::usage(format!("the code in {from} is not valid UTF-8")).caused_by(e)
    })
}

/// The input as the caller wrote it, so every digit reaches the code.
fn read_input(args: &RunArgs) -> Result<Json, CliError> {
    let (text, what) = match (&args.input, &args.input_file) {
        (Some(text), _) => (text.clone(), "--input".to_string()),
        (None, Some(path)) => {
            let what = format!("input file '{}'", path.display());
            let bytes = crate::local_file::read(
                path,
                crate::local_file::MAX_REQUEST_FILE_BYTES,
                &format!("cannot read {what}"),
            )?;
            let text = String::from_utf8(bytes)
                .map_err(|e| CliError::usage(format!("{what} is not valid UTF-8")).caused_by(e))?;
            (text, what)
        }
        (None, None) => return Ok(Json::null()),
    };
    let value = Json::from_text(text)
        .map_err(|e| CliError::usage(format!("{what} is not valid JSON")).caused_by(e))?;
    match value.kind() {
        JsonKind::Object if value.nesting_depth() > MAX_INPUT_DEPTH => Err(CliError::usage(
            format!("{what} is nested deeper than {MAX_INPUT_DEPTH} levels"),
        )),
        // `run_code_json` turns null into an empty object.
        JsonKind::Object | JsonKind::Null => Ok(value),
        other => Err(CliError::usage(format!(
            "{what} must be a JSON object, got {}",
            other.describe()
        ))),
    }
}

pub fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The exit-code contract of DIRECTION.md. Only `timed_out` means a timeout: code that
/// calls `sys.exit(124)` failed, it did not time out.
pub fn exit_for(result: &RunnerResult) -> Exit {
    if result.ok {
        Exit::Ok
    } else if result.timed_out {
        Exit::Timeout
    } else if result.exit_code == EXIT_INFRASTRUCTURE {
        Exit::Infrastructure
    } else {
        Exit::Failed
    }
}

/// What became of the returned files and figures, on stderr.
fn print_saved(result: &RunnerResult, saved: &[PathBuf], out_dir: bool) {
    let mut err = String::new();
    for path in saved {
        err.push_str(&format!("saved: {}\n", path.display()));
    }
    if let Some(cut) = result.files.iter().find(|f| f.truncated) {
        err.push_str(&format!(
            "note: {} was truncated at the returned-files cap ({} of {} bytes)\n",
            cut.path,
            cut.decode().map_or(0, |b| b.len()),
            cut.size
        ));
    }
    let returned = !result.files.is_empty() || !result.outputs.is_empty();
    if !out_dir && returned {
        err.push_str(&format!(
            "note: {} files and {} figures returned; --out-dir DIR saves them, --json prints them\n",
            result.files.len(),
            result.outputs.len()
        ));
    }
    output::stderr(&err);
}

/// The run's own output verbatim, then what spr has to say about it on separate lines.
fn print_human(result: &RunnerResult) {
    output::stdout(&result.stdout);
    output::stderr(&result.stderr);
    let mut out = String::new();
    if !result.result.is_null() {
        if !result.stdout.is_empty() && !result.stdout.ends_with('\n') {
            out.push('\n');
        }
        // The JSON text itself: `10**30` prints with all its digits.
        out.push_str(&format!("result: {}\n", result.result));
    }
    output::stdout(&out);

    let mut err = String::new();
    let mut separate = !result.stderr.is_empty() && !result.stderr.ends_with('\n');
    let mut line = |text: String| {
        if std::mem::take(&mut separate) {
            err.push('\n');
        }
        err.push_str(&text);
        err.push('\n');
    };
    if result.stdout_truncated {
        line("note: stdout was truncated at the policy's max_output_kb".into());
    }
    if result.stderr_truncated {
        line("note: stderr was truncated at the policy's max_output_kb".into());
    }
    if !result.ok {
        let message = result.error.as_deref().unwrap_or("the run failed");
        line(format!("error: {message}"));
    }
    output::stderr(&err);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_timed_out_maps_to_124() {
        let mut r = RunnerResult::infrastructure_error("x");
        assert_eq!(exit_for(&r), Exit::Infrastructure);
        r.exit_code = 124;
        assert_eq!(exit_for(&r), Exit::Failed);
        r.timed_out = true;
        assert_eq!(exit_for(&r), Exit::Timeout);
        r.ok = true;
        assert_eq!(exit_for(&r), Exit::Ok);
    }
}

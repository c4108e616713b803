//! `spr policy check FILE` and `spr policy show [FILE]`, and policy loading for the
//! other commands.

use crate::error::{CliError, Exit};
use crate::output;
use clap::Subcommand;
use spr_core::RunnerPolicy;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check that FILE is a valid policy (exit 0), or say what is wrong (exit 2).
    Check {
        /// TOML policy file (with or without a [policy] table).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the effective policy as TOML: FILE with its defaults filled in, or the
    /// default policy when no FILE is given.
    Show {
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

pub fn run(command: PolicyCommand) -> Result<Exit, CliError> {
    match command {
        PolicyCommand::Check { file } => {
            load(&file)?;
            output::stdout(&format!("ok: {} is a valid policy\n", file.display()));
            Ok(Exit::Ok)
        }
        PolicyCommand::Show { file } => {
            let policy = match file {
                Some(file) => load(&file)?,
                None => RunnerPolicy::default(),
            };
            let text = policy.to_toml();
            output::stdout(&text);
            if !text.ends_with('\n') {
                output::stdout("\n");
            }
            Ok(Exit::Ok)
        }
    }
}

/// Load and validate a policy file once. The result has no `config_path`: the CLI
/// resolves the file up front, so a run never re-reads it (and cannot find it changed
/// or gone half-way through a `serve` session).
pub fn load(path: &Path) -> Result<RunnerPolicy, CliError> {
    let invalid = || CliError::usage(format!("invalid policy file '{}'", path.display()));
    let mut policy = RunnerPolicy::from_file(path).map_err(|e| invalid().caused_by(e))?;
    validate(&policy).map_err(|e| invalid().caused_by(e))?;
    policy.config_path = None;
    Ok(policy)
}

/// The policy crate's validation (limits in range, names that are identifiers...),
/// for policies that did not come from a file, such as a `serve` request's.
pub fn validate(policy: &RunnerPolicy) -> Result<(), spr_policy::PolicyError> {
    policy.validate()
}

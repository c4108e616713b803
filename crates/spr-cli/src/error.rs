//! The CLI's error type and its exit codes (a contract that outside tools rely on).

use std::error::Error as StdError;
use std::fmt;
use std::process::ExitCode;

/// Exit codes of `spr`. `run` uses all of them; DIRECTION.md fixes their meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// The code ran and failed, or an admin operation was refused.
    Failed = 1,
    /// Bad arguments or a bad policy: nothing was run.
    Usage = 2,
    /// The run hit its timeout.
    Timeout = 124,
    /// The engine or the infrastructure under it failed.
    Infrastructure = 125,
    /// Stopped by SIGINT or SIGTERM (the shell convention, 128 + SIGINT).
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

type Source = Box<dyn StdError + Send + Sync + 'static>;

/// A failure of a command: a message of our own, the error that caused it (printed as
/// `caused by:` lines) and the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    message: String,
    source: Option<Source>,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        CliError {
            exit,
            message: message.into(),
            source: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Exit::Failed, message)
    }

    pub fn infrastructure(message: impl Into<String>) -> Self {
        Self::new(Exit::Infrastructure, message)
    }

    pub fn caused_by(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The message followed by every cause, outermost first.
    pub fn chain(&self) -> Vec<String> {
        let mut out = vec![self.message.clone()];
        let mut next: Option<&(dyn StdError + 'static)> = self.source();
        while let Some(err) = next {
            let text = err.to_string();
            // Errors that print their source inline (thiserror's `transparent`, or
            // "cannot read x: {source}") would otherwise repeat it as a cause.
            if !out.last().is_some_and(|last| last.ends_with(&text)) {
                out.push(text);
            }
            next = err.source();
        }
        out
    }

    /// One line for places that have room for one (a `RunnerResult.error`).
    pub fn one_line(&self) -> String {
        self.chain().join(": ")
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for CliError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_lists_causes_outermost_first_without_repeats() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let err = CliError::usage("cannot read code file 'x.py'").caused_by(io);
        assert_eq!(err.chain(), vec!["cannot read code file 'x.py'", "gone"]);
        assert_eq!(err.one_line(), "cannot read code file 'x.py': gone");
        assert_eq!(err.exit.code(), 2);
    }

    #[test]
    fn a_cause_already_printed_by_its_parent_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read p.toml: {0}")]
        struct Read(#[source] std::io::Error);
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let err = CliError::usage("invalid policy").caused_by(Read(io));
        assert_eq!(
            err.chain(),
            vec!["invalid policy", "cannot read p.toml: gone"]
        );
    }
}

//! `PolicyError`: why a policy was refused, with the file, line and key it concerns.

use crate::FileKind;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why a policy could not be loaded or was refused by validation.
///
/// Every variant names where the problem is: the file (when the policy came from one),
/// the line (when it is known) and the key as a dotted path such as `timeout_seconds`,
/// `blocked_imports[2]` or `extra_globals.when`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy file could not be read (a missing file is an error, unlike the original).
    #[error("{}: cannot read policy file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The path is not a regular file (a directory, FIFO, socket or device): reading one
    /// could block or never end, so it is refused before it is read.
    #[error("{}: cannot read policy file: it is {kind}, not a regular file", path.display())]
    NotRegularFile { path: PathBuf, kind: FileKind },

    /// The file is larger than [`MAX_POLICY_FILE_BYTES`](crate::MAX_POLICY_FILE_BYTES).
    #[error("{}: cannot read policy file: larger than the limit of {max_bytes} bytes", path.display())]
    TooLarge { path: PathBuf, max_bytes: u64 },

    /// The text is not valid TOML.
    #[error("{}line {line}, column {column}: invalid TOML: {message}", Prefix(path.as_deref(), None))]
    Syntax {
        path: Option<PathBuf>,
        /// 1-based.
        line: usize,
        /// 1-based, in characters.
        column: usize,
        message: String,
    },

    /// A key the policy does not have (typos are errors, not silently ignored).
    #[error(
        "{}unknown key '{key}'{}",
        Prefix(path.as_deref(), *line),
        Suggestion(suggestion.as_deref())
    )]
    UnknownKey {
        path: Option<PathBuf>,
        line: Option<usize>,
        key: String,
        /// A known key within a small edit distance, offered as "did you mean".
        suggestion: Option<String>,
    },

    /// A value of the wrong type, out of range, or otherwise meaningless.
    #[error("{}{key}: {reason}", Prefix(path.as_deref(), *line))]
    Invalid {
        path: Option<PathBuf>,
        line: Option<usize>,
        /// Dotted path of the offending value, e.g. `blocked_imports[2]`.
        key: String,
        reason: String,
    },
}

impl PolicyError {
    /// The dotted key the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            PolicyError::UnknownKey { key, .. } | PolicyError::Invalid { key, .. } => Some(key),
            PolicyError::Read { .. }
            | PolicyError::NotRegularFile { .. }
            | PolicyError::TooLarge { .. }
            | PolicyError::Syntax { .. } => None,
        }
    }

    /// The 1-based line in the policy file, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            PolicyError::Syntax { line, .. } => Some(*line),
            PolicyError::UnknownKey { line, .. } | PolicyError::Invalid { line, .. } => *line,
            PolicyError::Read { .. }
            | PolicyError::NotRegularFile { .. }
            | PolicyError::TooLarge { .. } => None,
        }
    }

    /// The policy file the error is about, when the policy came from one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            PolicyError::Read { path, .. }
            | PolicyError::NotRegularFile { path, .. }
            | PolicyError::TooLarge { path, .. } => Some(path),
            PolicyError::Syntax { path, .. }
            | PolicyError::UnknownKey { path, .. }
            | PolicyError::Invalid { path, .. } => path.as_deref(),
        }
    }

    pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        PolicyError::Invalid {
            path: None,
            line: None,
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// Attach the file and, where the caller can find it, the line of the key.
    pub(crate) fn locate(
        mut self,
        origin: Option<&Path>,
        line_of: impl FnOnce(&str) -> Option<usize>,
    ) -> Self {
        match &mut self {
            PolicyError::UnknownKey {
                path, line, key, ..
            }
            | PolicyError::Invalid {
                path, line, key, ..
            } => {
                if path.is_none() {
                    *path = origin.map(Path::to_path_buf);
                }
                if line.is_none() {
                    *line = line_of(key);
                }
            }
            PolicyError::Syntax { path, .. } => {
                if path.is_none() {
                    *path = origin.map(Path::to_path_buf);
                }
            }
            PolicyError::Read { .. }
            | PolicyError::NotRegularFile { .. }
            | PolicyError::TooLarge { .. } => {}
        }
        self
    }
}

/// Renders `path: line N: `, dropping whichever part is unknown.
struct Prefix<'a>(Option<&'a Path>, Option<usize>);

impl fmt::Display for Prefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = self.0 {
            write!(f, "{}: ", path.display())?;
        }
        if let Some(line) = self.1 {
            write!(f, "line {line}: ")?;
        }
        Ok(())
    }
}

struct Suggestion<'a>(Option<&'a str>);

impl fmt::Display for Suggestion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, " (did you mean '{s}'?)"),
            None => Ok(()),
        }
    }
}

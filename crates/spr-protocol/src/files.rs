//! Files in and out of a run: what a request brings besides its code ([`Attachments`]),
//! what a run returns ([`FileOut`], [`Output`]), the caps on both, and the host-side
//! checks that refuse a bad attachment before any run starts.
//!
//! Every path is relative to the run's scratch directory and is refused unless it stays
//! there: no absolute path, no `.` or `..` segment, no empty segment. The harness checks
//! again where it writes (component by component, never following a symlink), so these
//! checks are what gives a client a clear message, not the boundary.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use spr_policy::RunnerPolicy;

/// Most files one request may bring.
pub const MAX_FILES_IN: usize = 256;
/// Most bytes (decoded) all of a request's files may bring together. Base64 makes them
/// 4/3 larger on the wire, which keeps a full request under the 64 MiB frame; a run's
/// scratch tmpfs is 128 MiB by default, so it leaves the run room to work.
pub const MAX_FILES_IN_BYTES: u64 = 32 << 20;
/// Longest path, in bytes (as Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest path segment, in bytes (as Linux's `NAME_MAX`).
pub const MAX_SEGMENT_BYTES: usize = 255;
/// Deepest path, in segments.
pub const MAX_PATH_DEPTH: usize = 32;
/// Most `collect` globs one request may name.
pub const MAX_COLLECT_GLOBS: usize = 32;
/// Longest `collect` glob, in bytes.
pub const MAX_GLOB_BYTES: usize = 1024;
/// Most files a run returns; further matches are left out (and said so on stderr).
pub const MAX_FILES_OUT: usize = 256;
/// Most bytes (before base64) of all returned files together. With the figures' cap and
/// base64's 4/3 this fits in [`crate::MAX_RESULT_BYTES`] (16 MiB) with room for the
/// result; the harness also cuts to whatever room the result leaves.
pub const MAX_FILES_OUT_BYTES: u64 = 8 << 20;
/// Most figures a run returns.
pub const MAX_OUTPUTS: usize = 16;
/// Most bytes (before base64) of all returned figures together.
pub const MAX_OUTPUTS_BYTES: u64 = 3 << 20;
/// The MIME types a run's `outputs` may carry.
pub const OUTPUT_MIME_TYPES: &[&str] = &["image/png"];

/// How a request file's `content` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FileEncoding {
    /// The text, written as UTF-8.
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    /// Standard base64 (RFC 4648, with padding), written as the bytes it decodes to.
    #[serde(rename = "base64")]
    Base64,
}

/// A file written into the run's scratch directory before the code runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileIn {
    /// Relative to scratch, `/`-separated (`data/in.csv`); parent directories are made.
    pub path: String,
    pub content: String,
    #[serde(default)]
    pub encoding: FileEncoding,
}

impl FileIn {
    /// A text file.
    pub fn text(path: impl Into<String>, content: impl Into<String>) -> Self {
        FileIn {
            path: path.into(),
            content: content.into(),
            encoding: FileEncoding::Utf8,
        }
    }

    /// A binary file (encoded here as base64).
    pub fn bytes(path: impl Into<String>, content: &[u8]) -> Self {
        FileIn {
            path: path.into(),
            content: base64::engine::general_purpose::STANDARD.encode(content),
            encoding: FileEncoding::Base64,
        }
    }

    /// How many bytes the file has once written (`None`: not valid base64).
    fn decoded_len(&self) -> Option<u64> {
        match self.encoding {
            FileEncoding::Utf8 => Some(self.content.len() as u64),
            FileEncoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(self.content.as_bytes())
                .ok()
                .map(|b| b.len() as u64),
        }
    }
}

/// A file the run left in scratch that matched a `collect` glob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOut {
    /// Relative to scratch, `/`-separated.
    pub path: String,
    /// The file's bytes (the first ones only, when `truncated`), base64.
    pub content: String,
    /// The file's size in scratch, whatever was returned of it.
    pub size: u64,
    /// `content` holds fewer than `size` bytes: a cap was reached.
    pub truncated: bool,
}

impl FileOut {
    /// The returned bytes (`None` if `content` is not valid base64).
    pub fn decode(&self) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD
            .decode(self.content.as_bytes())
            .ok()
    }
}

/// A rich output of the run: a figure the code left open, rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// `image/png`.
    pub mime_type: String,
    /// base64.
    pub data: String,
}

impl Output {
    /// The output's bytes (`None` if `data` is not valid base64).
    pub fn decode(&self) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD
            .decode(self.data.as_bytes())
            .ok()
    }
}

/// What a request brings besides its code, input and policy: files to write into
/// scratch before the code runs, and globs of files to return after it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Attachments {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileIn>,
    /// Globs relative to scratch: `*`, `?` and `[...]` within a segment, `**` for any
    /// number of directories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collect: Vec<String>,
}

impl Attachments {
    /// No files and no globs.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.collect.is_empty()
    }

    /// Refuse what the run could not honour or that would leave scratch, before the run.
    /// `policy` bounds each file (`sandbox.max_file_size_mb`: the run could not write a
    /// larger one).
    pub fn validate(&self, policy: &RunnerPolicy) -> Result<(), AttachmentError> {
        if self.files.len() > MAX_FILES_IN {
            return Err(AttachmentError::TooManyFiles {
                count: self.files.len(),
                limit: MAX_FILES_IN,
            });
        }
        let per_file = policy.sandbox.max_file_size_mb.saturating_mul(1 << 20);
        let mut total = 0u64;
        let mut seen = std::collections::BTreeSet::new();
        for (index, file) in self.files.iter().enumerate() {
            let fail = |problem| AttachmentError::File {
                index,
                path: crate::wire::loggable(&file.path),
                problem,
            };
            check_path(&file.path, false).map_err(fail)?;
            let size = file
                .decoded_len()
                .ok_or_else(|| fail(PathProblem::BadBase64))?;
            if size > per_file {
                return Err(fail(PathProblem::TooLarge {
                    size,
                    limit_mb: policy.sandbox.max_file_size_mb,
                }));
            }
            total += size;
            if total > MAX_FILES_IN_BYTES {
                return Err(fail(PathProblem::TooManyBytes {
                    limit_mb: MAX_FILES_IN_BYTES >> 20,
                }));
            }
            if !seen.insert(file.path.as_str()) {
                return Err(fail(PathProblem::Duplicate));
            }
        }
        // A file whose path is another's directory ("a" and "a/b") cannot be both.
        for (index, file) in self.files.iter().enumerate() {
            let mut prefix = file.path.as_str();
            while let Some(cut) = prefix.rfind('/') {
                prefix = &prefix[..cut];
                if seen.contains(prefix) {
                    return Err(AttachmentError::File {
                        index,
                        path: crate::wire::loggable(&file.path),
                        problem: PathProblem::UnderAFile(crate::wire::loggable(prefix)),
                    });
                }
            }
        }
        if self.collect.len() > MAX_COLLECT_GLOBS {
            return Err(AttachmentError::TooManyGlobs {
                count: self.collect.len(),
                limit: MAX_COLLECT_GLOBS,
            });
        }
        for (index, glob) in self.collect.iter().enumerate() {
            check_path(glob, true).map_err(|problem| AttachmentError::Glob {
                index,
                glob: crate::wire::loggable(glob),
                problem,
            })?;
        }
        Ok(())
    }
}

/// Why an attachment was refused. Paths are quoted escaped and cut.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    #[error("files[{index}] \"{path}\": {problem}")]
    File {
        index: usize,
        path: String,
        problem: PathProblem,
    },
    #[error("collect[{index}] \"{glob}\": {problem}")]
    Glob {
        index: usize,
        glob: String,
        problem: PathProblem,
    },
    #[error("too many files: {count} (at most {limit})")]
    TooManyFiles { count: usize, limit: usize },
    #[error("too many collect globs: {count} (at most {limit})")]
    TooManyGlobs { count: usize, limit: usize },
}

/// What is wrong with one path or glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathProblem {
    #[error("the path is empty")]
    Empty,
    #[error("absolute paths are refused: paths are relative to the run's scratch directory")]
    Absolute,
    #[error("'..' segments are refused: paths must stay inside the run's scratch directory")]
    Parent,
    #[error("'.' segments are refused: write the path without them")]
    Dot,
    #[error("empty segments are refused (a doubled or trailing '/')")]
    EmptySegment,
    #[error("backslashes are refused: use '/' to separate directories")]
    Backslash,
    #[error("control characters (NUL, newline, ...) are refused")]
    Control,
    #[error("the path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("the glob is longer than {MAX_GLOB_BYTES} bytes")]
    GlobTooLong,
    #[error("a segment is longer than {MAX_SEGMENT_BYTES} bytes")]
    SegmentTooLong,
    #[error("the path is deeper than {MAX_PATH_DEPTH} segments")]
    TooDeep,
    #[error("the same path is given twice")]
    Duplicate,
    #[error("\"{0}\" is another file of this request, so it cannot be a directory")]
    UnderAFile(String),
    #[error("the content is not valid base64 (standard alphabet, with padding)")]
    BadBase64,
    #[error("{size} bytes is more than sandbox.max_file_size_mb ({limit_mb} MiB)")]
    TooLarge { size: u64, limit_mb: u64 },
    #[error("with this file the request's files hold more than {limit_mb} MiB together")]
    TooManyBytes { limit_mb: u64 },
    #[error("'**' must be a whole segment (as in \"out/**\" or \"**/*.png\")")]
    BadDoubleStar,
    #[error("an unclosed '['")]
    UnclosedBracket,
}

fn check_path(path: &str, glob: bool) -> Result<(), PathProblem> {
    if path.is_empty() {
        return Err(PathProblem::Empty);
    }
    if path.chars().any(char::is_control) {
        return Err(PathProblem::Control);
    }
    if path.starts_with('/') {
        return Err(PathProblem::Absolute);
    }
    if path.contains('\\') {
        return Err(PathProblem::Backslash);
    }
    if glob && path.len() > MAX_GLOB_BYTES {
        return Err(PathProblem::GlobTooLong);
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(PathProblem::TooLong);
    }
    let segments: Vec<&str> = path.split('/').collect();
    if segments.len() > MAX_PATH_DEPTH {
        return Err(PathProblem::TooDeep);
    }
    for segment in segments {
        match segment {
            "" => return Err(PathProblem::EmptySegment),
            "." => return Err(PathProblem::Dot),
            ".." => return Err(PathProblem::Parent),
            _ if segment.len() > MAX_SEGMENT_BYTES => return Err(PathProblem::SegmentTooLong),
            _ if glob => check_glob_segment(segment)?,
            _ => {}
        }
    }
    Ok(())
}

fn check_glob_segment(segment: &str) -> Result<(), PathProblem> {
    if segment != "**" && segment.contains("**") {
        return Err(PathProblem::BadDoubleStar);
    }
    // As Python's fnmatch reads it: '[' opens a set closed by the first ']' after it
    // (a ']' right after '[' or '[!' is a member).
    let bytes = segment.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'[' {
            let mut j = i + 1;
            if j < bytes.len() && bytes[j] == b'!' {
                j += 1;
            }
            if j < bytes.len() && bytes[j] == b']' {
                j += 1;
            }
            while j < bytes.len() && bytes[j] != b']' {
                j += 1;
            }
            if j >= bytes.len() {
                return Err(PathProblem::UnclosedBracket);
            }
            i = j;
        }
        i += 1;
    }
    Ok(())
}

/// Whether a path the run reported for a returned file is one it could have meant
/// (the host keeps only those).
pub(crate) fn plausible_output_path(path: &str) -> bool {
    check_path(path, false).is_ok()
}

#[cfg(test)]
mod tests;

//! Loading a policy from TOML text: strict keys and types, errors located by file and line.
//!
//! The text is parsed into a small tree that keeps each value's byte span, so that every
//! error (including validation errors found after parsing) can name the line of its key.

use crate::validate::{
    check_range, MAX_OUTPUT_KB_RANGE, MEMORY_LIMIT_MB_RANGE, TIMEOUT_SECONDS_RANGE,
};
use crate::value::{DATETIME_UNSUPPORTED, TOML_DATETIME_KEY};
use crate::{
    Mode, PolicyError, RunnerPolicy, SandboxPolicy, Value, MAX_FILE_SIZE_MB_RANGE,
    MAX_OPEN_FILES_RANGE, MAX_PROCESSES_RANGE, SANDBOX_KEYS,
};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::Path;

/// The keys a policy table may hold, in the order they are documented and rendered.
pub const POLICY_KEYS: &[&str] = &[
    "mode",
    "timeout_seconds",
    "memory_limit_mb",
    "max_output_kb",
    "allowed_imports",
    "blocked_imports",
    "allowed_builtins",
    "blocked_builtins",
    "allowed_globals",
    "blocked_globals",
    "extra_globals",
    "sandbox",
];

pub(crate) fn from_toml_str(
    text: &str,
    origin: Option<&Path>,
) -> Result<RunnerPolicy, PolicyError> {
    let root = toml::from_str::<Located>(text).map_err(|e| syntax_error(text, origin, &e))?;
    let mut lines = LineMap::new(text);
    let result = parse_root(root, &mut lines).and_then(|p| {
        p.validate()?;
        Ok(p)
    });
    result.map_err(|e| e.locate(origin, |key| lines.line_of(key)))
}

fn syntax_error(text: &str, origin: Option<&Path>, e: &toml::de::Error) -> PolicyError {
    let offset = e.span().map_or(0, |s| s.start).min(text.len());
    let (line, column) = line_column(text, offset);
    // toml's messages span several lines ("invalid table header\nexpected `.`, `]`");
    // one line keeps the error greppable and fits the `path: line: ...` shape.
    let message = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    PolicyError::Syntax {
        path: origin.map(Path::to_path_buf),
        line,
        column,
        message,
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    // Spans are byte offsets; step back to a char boundary before slicing.
    let mut offset = offset;
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn parse_root(root: Located, lines: &mut LineMap) -> Result<RunnerPolicy, PolicyError> {
    let Node::Table(entries) = root.node else {
        return Err(PolicyError::invalid("policy", "expected a table"));
    };
    let Some(idx) = entries.iter().position(|(k, _)| k == "policy") else {
        return parse_policy(entries, lines);
    };
    for (key, value) in &entries {
        if key != "policy" {
            let suggestion = if POLICY_KEYS.contains(&key.as_str()) {
                Some(format!("policy.{key}"))
            } else {
                suggest(key, &["policy"])
            };
            return Err(PolicyError::UnknownKey {
                path: None,
                line: lines.line_at(value.span.as_ref()),
                key: key_path("", key),
                suggestion,
            });
        }
    }
    let (_, policy) = entries.into_iter().nth(idx).expect("index found above");
    match policy.node {
        Node::Table(entries) => parse_policy(entries, lines),
        other => {
            lines.record("policy", policy.span.as_ref());
            Err(PolicyError::invalid(
                "policy",
                format!("expected a table, got {}", other.type_name()),
            ))
        }
    }
}

fn parse_policy(
    entries: Vec<(String, Located)>,
    lines: &mut LineMap,
) -> Result<RunnerPolicy, PolicyError> {
    let mut p = RunnerPolicy::default();
    for (key, value) in entries {
        lines.record_tree(&key_path("", &key), &value);
        match key.as_str() {
            "mode" => p.mode = parse_mode(value.node)?,
            "timeout_seconds" => {
                p.timeout_seconds = parse_int(&key, value.node, TIMEOUT_SECONDS_RANGE)?
            }
            "memory_limit_mb" => {
                p.memory_limit_mb = parse_int(&key, value.node, MEMORY_LIMIT_MB_RANGE)?
            }
            "max_output_kb" => p.max_output_kb = parse_int(&key, value.node, MAX_OUTPUT_KB_RANGE)?,
            "allowed_imports" => p.allowed_imports = parse_strings(&key, value.node)?,
            "blocked_imports" => p.blocked_imports = parse_strings(&key, value.node)?,
            "allowed_builtins" => p.allowed_builtins = parse_strings(&key, value.node)?,
            "blocked_builtins" => p.blocked_builtins = parse_strings(&key, value.node)?,
            "allowed_globals" => p.allowed_globals = parse_strings(&key, value.node)?,
            "blocked_globals" => p.blocked_globals = parse_strings(&key, value.node)?,
            "extra_globals" => match value.node {
                Node::Table(entries) => {
                    for (name, v) in entries {
                        let path = key_path("extra_globals", &name);
                        let v = to_value(&path, v.node)?;
                        p.extra_globals.insert(name, v);
                    }
                }
                other => {
                    return Err(PolicyError::invalid(
                        key,
                        format!("expected a table, got {}", other.type_name()),
                    ))
                }
            },
            "sandbox" => match value.node {
                Node::Table(entries) => p.sandbox = parse_sandbox(entries)?,
                other => {
                    return Err(PolicyError::invalid(
                        key,
                        format!("expected a table, got {}", other.type_name()),
                    ))
                }
            },
            // A file that points at another file would make `resolve` ambiguous.
            "config_path" => {
                return Err(PolicyError::invalid(
                    key,
                    "cannot be set inside a policy file (it is where the file was loaded from)",
                ))
            }
            _ => {
                return Err(PolicyError::UnknownKey {
                    path: None,
                    line: None,
                    suggestion: suggest(&key, POLICY_KEYS),
                    key: key_path("", &key),
                })
            }
        }
    }
    Ok(p)
}

fn parse_sandbox(entries: Vec<(String, Located)>) -> Result<SandboxPolicy, PolicyError> {
    let mut s = SandboxPolicy::default();
    let range = |lo: u64, hi: u64| (lo, hi);
    for (key, value) in entries {
        let path = key_path("sandbox", &key);
        match key.as_str() {
            "network" => match value.node {
                Node::Bool(b) => s.network = b,
                other => {
                    return Err(PolicyError::invalid(
                        path,
                        format!("expected a boolean, got {}", other.type_name()),
                    ))
                }
            },
            "extra_read_paths" => s.extra_read_paths = parse_strings(&path, value.node)?,
            "extra_write_paths" => s.extra_write_paths = parse_strings(&path, value.node)?,
            "require" => s.require = parse_strings(&path, value.node)?,
            "max_processes" => {
                let (lo, hi) = MAX_PROCESSES_RANGE;
                s.max_processes = parse_int(&path, value.node, range(lo, hi))?
            }
            "max_file_size_mb" => {
                let (lo, hi) = MAX_FILE_SIZE_MB_RANGE;
                s.max_file_size_mb = parse_int(&path, value.node, range(lo, hi))?
            }
            "max_open_files" => {
                let (lo, hi) = MAX_OPEN_FILES_RANGE;
                s.max_open_files = parse_int(&path, value.node, range(lo, hi))?
            }
            _ => {
                return Err(PolicyError::UnknownKey {
                    path: None,
                    line: None,
                    suggestion: suggest(&key, SANDBOX_KEYS).map(|k| format!("sandbox.{k}")),
                    key: path,
                })
            }
        }
    }
    Ok(s)
}

fn parse_mode(node: Node) -> Result<Mode, PolicyError> {
    match node {
        Node::Str(s) if s == "restrict" => Ok(Mode::Restrict),
        Node::Str(s) if s == "allow" => Ok(Mode::Allow),
        Node::Str(s) => Err(PolicyError::invalid(
            "mode",
            format!("must be 'allow' or 'restrict', got '{s}'"),
        )),
        other => Err(PolicyError::invalid(
            "mode",
            format!(
                "expected a string ('allow' or 'restrict'), got {}",
                other.type_name()
            ),
        )),
    }
}

fn parse_int(key: &str, node: Node, range: (u64, u64)) -> Result<u64, PolicyError> {
    match node {
        Node::Int(i) => {
            check_range(key, i.into(), range)?;
            Ok(u64::try_from(i).expect("range check rejects negatives"))
        }
        // The original truncated 1.9 to 1; a limit that is not what was written is a bug.
        Node::Float(x) => Err(PolicyError::invalid(
            key,
            format!("expected an integer, got a float ({x})"),
        )),
        other => Err(PolicyError::invalid(
            key,
            format!("expected an integer, got {}", other.type_name()),
        )),
    }
}

fn parse_strings(key: &str, node: Node) -> Result<Vec<String>, PolicyError> {
    let Node::Array(items) = node else {
        return Err(PolicyError::invalid(
            key,
            format!("expected an array of strings, got {}", node.type_name()),
        ));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item.node {
            Node::Str(s) => Ok(s),
            other => Err(PolicyError::invalid(
                format!("{key}[{i}]"),
                format!("expected a string, got {}", other.type_name()),
            )),
        })
        .collect()
}

fn to_value(path: &str, node: Node) -> Result<Value, PolicyError> {
    Ok(match node {
        Node::Bool(b) => Value::Bool(b),
        Node::Int(i) => Value::Int(i),
        Node::Float(x) => Value::Float(x),
        Node::Str(s) => Value::String(s),
        Node::Datetime(_) => return Err(PolicyError::invalid(path, DATETIME_UNSUPPORTED)),
        Node::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| to_value(&format!("{path}[{i}]"), item.node))
                .collect::<Result<_, _>>()?,
        ),
        Node::Table(entries) => Value::Table(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let value = to_value(&key_path(path, &k), v.node)?;
                    Ok((k, value))
                })
                .collect::<Result<BTreeMap<_, _>, PolicyError>>()?,
        ),
    })
}

/// Appends `key` to a dotted path, quoting it when it is not a bare TOML key.
pub(crate) fn key_path(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// The closest known key, if it is close enough to be a plausible typo.
fn suggest(unknown: &str, known: &[&str]) -> Option<String> {
    let lower = unknown.to_ascii_lowercase();
    let best = known
        .iter()
        .map(|k| (edit_distance(&lower, k), *k))
        .min()
        .filter(|(d, _)| *d <= 3.max(unknown.len() / 4))
        .map(|(_, k)| k);
    // `timeout` for `timeout_seconds` is far in edits but obviously meant.
    let prefixed = || {
        known
            .iter()
            .find(|k| lower.len() >= 4 && k.starts_with(&lower))
            .copied()
    };
    best.or_else(prefixed).map(str::to_string)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Lines of the keys seen so far, by dotted path relative to the policy table.
struct LineMap<'a> {
    text: &'a str,
    lines: HashMap<String, usize>,
}

impl<'a> LineMap<'a> {
    fn new(text: &'a str) -> Self {
        LineMap {
            text,
            lines: HashMap::new(),
        }
    }

    fn line_at(&self, span: Option<&Range<usize>>) -> Option<usize> {
        span.map(|s| line_column(self.text, s.start.min(self.text.len())).0)
    }

    fn record(&mut self, path: &str, span: Option<&Range<usize>>) {
        if let Some(line) = self.line_at(span) {
            self.lines.insert(path.to_string(), line);
        }
    }

    fn record_tree(&mut self, path: &str, value: &Located) {
        self.record(path, value.span.as_ref());
        match &value.node {
            Node::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.record_tree(&format!("{path}[{i}]"), item);
                }
            }
            Node::Table(entries) => {
                for (k, v) in entries {
                    self.record_tree(&key_path(path, k), v);
                }
            }
            _ => {}
        }
    }

    /// The line of `key`, or of its closest recorded ancestor (dotted-key tables have no
    /// span of their own).
    fn line_of(&self, key: &str) -> Option<usize> {
        let mut key = key;
        loop {
            if let Some(line) = self.lines.get(key) {
                return Some(*line);
            }
            let cut = key.rfind(['.', '['])?;
            key = &key[..cut];
        }
    }
}

/// A parsed TOML value with its byte span, when the parser knows it.
#[derive(Debug)]
struct Located {
    span: Option<Range<usize>>,
    node: Node,
}

#[derive(Debug)]
enum Node {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Datetime(#[allow(dead_code)] String),
    Array(Vec<Located>),
    Table(Vec<(String, Located)>),
}

impl Node {
    fn type_name(&self) -> &'static str {
        match self {
            Node::Bool(_) => "a boolean",
            Node::Int(_) => "an integer",
            Node::Float(_) => "a float",
            Node::Str(_) => "a string",
            Node::Datetime(_) => "a datetime",
            Node::Array(_) => "an array",
            Node::Table(_) => "a table",
        }
    }
}

// The protocol by which toml hands out spans (what `toml::Spanned` uses). `toml::Spanned`
// itself cannot be used: it fails outright on tables that have no span, which is what
// dotted keys such as `policy.timeout_seconds = 5` produce. Tests pin these names.
const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";

impl<'de> Deserialize<'de> for Located {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(
            SPANNED_NAME,
            &[SPANNED_START, SPANNED_END, SPANNED_VALUE],
            LocatedVisitor,
        )
    }
}

/// The value inside a span envelope: deserialized plainly.
struct Unspanned(Located);

impl<'de> Deserialize<'de> for Unspanned {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LocatedVisitor).map(Unspanned)
    }
}

struct LocatedVisitor;

fn plain(node: Node) -> Located {
    Located { span: None, node }
}

impl<'de> Visitor<'de> for LocatedVisitor {
    type Value = Located;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Located, E> {
        Ok(plain(Node::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Located, E> {
        Ok(plain(Node::Int(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Located, E> {
        i64::try_from(v)
            .map(|i| plain(Node::Int(i)))
            .map_err(|_| E::custom(format!("integer {v} is too large")))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Located, E> {
        Ok(plain(Node::Float(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Located, E> {
        Ok(plain(Node::Str(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Located, E> {
        Ok(plain(Node::Str(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Located, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Located>()? {
            items.push(item);
        }
        Ok(plain(Node::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Located, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Ok(plain(Node::Table(Vec::new())));
        };
        if first == TOML_DATETIME_KEY {
            return Ok(plain(Node::Datetime(map.next_value::<String>()?)));
        }
        if first == SPANNED_START {
            let start: usize = map.next_value()?;
            let end = match map.next_key::<String>()?.as_deref() {
                Some(SPANNED_END) => map.next_value::<usize>()?,
                _ => return Err(de::Error::custom("malformed span from the TOML parser")),
            };
            let inner = match map.next_key::<String>()?.as_deref() {
                Some(SPANNED_VALUE) => map.next_value::<Unspanned>()?.0,
                _ => return Err(de::Error::custom("malformed span from the TOML parser")),
            };
            return Ok(Located {
                span: Some(start..end),
                node: inner.node,
            });
        }
        let mut entries = vec![(first, map.next_value::<Located>()?)];
        while let Some(key) = map.next_key::<String>()? {
            entries.push((key, map.next_value::<Located>()?));
        }
        Ok(plain(Node::Table(entries)))
    }
}

/// Check the keys of a policy that arrives in another format (a JSON object from
/// `spr serve`, say) before it is deserialized, so that a typo gets the same
/// "unknown key ... (did you mean ...?)" error as in a file. `table` is `"policy"` for
/// the policy's own keys or `"sandbox"` for its `sandbox` table.
pub fn check_keys<'a>(
    table: &str,
    keys: impl IntoIterator<Item = &'a str>,
) -> Result<(), PolicyError> {
    let (known, prefix) = match table {
        "sandbox" => (crate::sandbox::SANDBOX_KEYS, "sandbox."),
        _ => (POLICY_KEYS, ""),
    };
    for key in keys {
        // Only a file cannot name another file; an object may (its file is then read).
        let names_a_file = table != "sandbox" && key == "config_path";
        if !known.contains(&key) && !names_a_file {
            return Err(PolicyError::UnknownKey {
                path: None,
                line: None,
                key: format!("{prefix}{key}"),
                suggestion: suggest(key, known).map(|s| format!("{prefix}{s}")),
            });
        }
    }
    Ok(())
}

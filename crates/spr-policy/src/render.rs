//! Rendering a policy as TOML text that `RunnerPolicy::from_toml_str` reads back unchanged.
//!
//! Hand-written rather than `toml::to_string` so that keys keep their documented order and
//! `extra_globals` stays one readable line per entry.

use crate::load::key_path;
use crate::{Mode, RunnerPolicy, Value};
use std::fmt::Write;

pub(crate) fn to_toml(p: &RunnerPolicy) -> String {
    let mut out = String::from("[policy]\n");
    let mode = match p.mode {
        Mode::Restrict => "restrict",
        Mode::Allow => "allow",
    };
    let _ = writeln!(out, "mode = {}", string(mode));
    let _ = writeln!(out, "timeout_seconds = {}", p.timeout_seconds);
    let _ = writeln!(out, "memory_limit_mb = {}", p.memory_limit_mb);
    let _ = writeln!(out, "max_output_kb = {}", p.max_output_kb);
    for (key, list) in [
        ("allowed_imports", &p.allowed_imports),
        ("blocked_imports", &p.blocked_imports),
        ("allowed_builtins", &p.allowed_builtins),
        ("blocked_builtins", &p.blocked_builtins),
        ("allowed_globals", &p.allowed_globals),
        ("blocked_globals", &p.blocked_globals),
    ] {
        let items: Vec<String> = list.iter().map(|s| string(s)).collect();
        let _ = writeln!(out, "{key} = [{}]", items.join(", "));
    }

    out.push_str("\n[policy.extra_globals]\n");
    let mut omitted = Vec::new();
    let mut body = String::new();
    for (name, value) in &p.extra_globals {
        let path = key_path("extra_globals", name);
        if let Some(rendered) = inline(value, &path, &mut omitted) {
            let _ = writeln!(body, "{} = {rendered}", key(name));
        }
    }
    // TOML has no null; saying so beats a silent difference between JSON and TOML.
    for path in &omitted {
        let _ = writeln!(out, "# {path} is null, which TOML cannot express: omitted");
    }
    out.push_str(&body);
    // Only a policy that changes the sandbox says so: default policies render as before.
    if !p.sandbox.is_default() {
        let s = &p.sandbox;
        out.push_str("\n[policy.sandbox]\n");
        let _ = writeln!(out, "network = {}", s.network);
        for (k, list) in [
            ("extra_read_paths", &s.extra_read_paths),
            ("extra_write_paths", &s.extra_write_paths),
        ] {
            let items: Vec<String> = list.iter().map(|s| string(s)).collect();
            let _ = writeln!(out, "{k} = [{}]", items.join(", "));
        }
        let _ = writeln!(out, "max_processes = {}", s.max_processes);
        let _ = writeln!(out, "max_file_size_mb = {}", s.max_file_size_mb);
        let _ = writeln!(out, "max_open_files = {}", s.max_open_files);
        let items: Vec<String> = s.require.iter().map(|s| string(s)).collect();
        let _ = writeln!(out, "require = [{}]", items.join(", "));
    }
    out
}

/// One value as inline TOML, or `None` for a null (recorded in `omitted`).
fn inline(value: &Value, path: &str, omitted: &mut Vec<String>) -> Option<String> {
    Some(match value {
        Value::Null => {
            omitted.push(path.to_string());
            return None;
        }
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(x) => float(*x),
        Value::String(s) => string(s),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| inline(v, &format!("{path}[{i}]"), omitted))
                .collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Table(entries) => {
            let parts: Vec<String> = entries
                .iter()
                .filter_map(|(k, v)| {
                    inline(v, &key_path(path, k), omitted).map(|r| format!("{} = {r}", key(k)))
                })
                .collect();
            if parts.is_empty() {
                "{}".to_string()
            } else {
                format!("{{ {} }}", parts.join(", "))
            }
        }
    })
}

fn float(x: f64) -> String {
    if x.is_nan() {
        "nan".to_string()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        // `{:?}` keeps a `.0` or an exponent, so the value reads back as a float.
        format!("{x:?}")
    }
}

fn key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        k.to_string()
    } else {
        string(k)
    }
}

/// A TOML basic string.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

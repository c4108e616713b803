//! `cargo xtask tidy`: repository invariants that the compiler cannot enforce.
//!
//! Each check is a function returning its violations, so the checks can be unit-tested on small fixtures and
//! the whole set runs on the real repository as an ordinary `#[test]` (part of `cargo test --workspace`).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{self, failed, Error};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub file: String,
    pub what: String,
}

impl Violation {
    fn new(file: impl Into<String>, what: impl Into<String>) -> Self {
        Violation {
            file: file.into(),
            what: what.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tidy: {}: {}", self.file, self.what)
    }
}

pub fn run(root: &Path) -> Result<(), Error> {
    let violations = check_all(root)?;
    for v in &violations {
        println!("{v}");
    }
    if violations.is_empty() {
        eprintln!("tidy: ok");
        Ok(())
    } else {
        Err(failed(format!(
            "tidy found {} violation(s)",
            violations.len()
        )))
    }
}

/// Every check, in a stable order.
pub fn check_all(root: &Path) -> Result<Vec<Violation>, Error> {
    let metadata = cargo_metadata(root)?;
    let mut v = check_layering(root, &metadata);
    v.extend(check_headers(root));
    v.extend(check_no_ignore(root));
    v.extend(check_unsafe_has_safety(root));
    v.extend(check_required_docs(root));
    Ok(v)
}

fn cargo_metadata(root: &Path) -> Result<Value, Error> {
    let text = util::output(
        util::cargo()
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(root),
    )?;
    serde_json::from_str(&text).map_err(|e| failed(format!("cargo metadata: bad JSON: {e}")))
}

// ---------------------------------------------------------------------------------------------------------
// Layering

/// A crate's allowed (normal) dependencies, or the ones it must never have.
struct Rule {
    krate: &'static str,
    /// When set, every normal dependency must be in this list.
    only: Option<&'static [&'static str]>,
    never: &'static [&'static str],
    why: &'static str,
}

/// The layering invariants of DIRECTION.md / ARCHITECTURE.md. Dev-dependencies are exempt: tests may use
/// anything without changing what an embedder of the crate pulls in.
const RULES: &[Rule] = &[
    Rule {
        krate: "spr-policy",
        only: Some(&["serde", "toml", "thiserror"]),
        never: &[],
        why: "the policy crate is embeddable alone",
    },
    Rule {
        krate: "spr-protocol",
        // base64: the files runs take and return cross the wire as base64 text (pure code).
        only: Some(&["spr-policy", "serde", "serde_json", "thiserror", "base64"]),
        never: &["tokio", "nix", "bollard"],
        why: "the protocol crate is sans-IO",
    },
    Rule {
        krate: "spr-engine-local",
        only: None,
        never: &["spr-core", "spr-engine-docker"],
        why: "engines never depend on spr-core or on each other (spr-core depends on them)",
    },
    Rule {
        krate: "spr-engine-docker",
        only: None,
        never: &["spr-core", "spr-engine-local"],
        why: "engines never depend on spr-core or on each other (spr-core depends on them)",
    },
    Rule {
        krate: "spr-python",
        only: Some(&[
            "spr-core",
            "spr-policy",
            "pyo3",
            "serde",
            "serde_json",
            // Names the key of a policy value of the wrong type.
            "serde_path_to_error",
            "tokio",
        ]),
        never: &[],
        why: "the Python package stands on spr-core's API, as any embedder does",
    },
];

/// Only the binary crate owns the terminal: argument parsing and the global tracing subscriber.
const CLI_ONLY: &[&str] = &["clap", "tracing-subscriber"];
const CLI_CRATE: &str = "spr-cli";

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Checks the layering rules against `cargo metadata --no-deps` output.
pub fn check_layering(root: &Path, metadata: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    for rule in RULES {
        if !packages.iter().any(|p| p["name"] == rule.krate) {
            // A renamed crate would otherwise silently escape its rule.
            out.push(Violation::new(
                "Cargo.toml",
                format!(
                    "workspace has no crate `{}` (update xtask tidy's layering rules)",
                    rule.krate
                ),
            ));
        }
    }
    for pkg in &packages {
        let name = pkg["name"].as_str().unwrap_or_default();
        let manifest = relative(
            root,
            Path::new(pkg["manifest_path"].as_str().unwrap_or_default()),
        );
        let deps: Vec<&str> = pkg["dependencies"]
            .as_array()
            .map(|d| d.as_slice())
            .unwrap_or_default()
            .iter()
            // kind is null for normal dependencies, "dev" or "build" otherwise.
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .collect();
        if let Some(rule) = RULES.iter().find(|r| r.krate == name) {
            for dep in &deps {
                if rule.never.contains(dep) {
                    out.push(Violation::new(
                        &manifest,
                        format!("{name} must not depend on {dep}: {}", rule.why),
                    ));
                } else if let Some(only) = rule.only {
                    if !only.contains(dep) {
                        out.push(Violation::new(
                            &manifest,
                            format!(
                                "{name} may depend only on {}, not on {dep}: {}",
                                only.join(", "),
                                rule.why
                            ),
                        ));
                    }
                }
            }
        }
        if name != CLI_CRATE {
            for dep in &deps {
                if CLI_ONLY.contains(dep) {
                    out.push(Violation::new(
                        &manifest,
                        format!("only {CLI_CRATE} may depend on {dep} (libraries never own the terminal)"),
                    ));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// Source files

/// Rust files under `root/<dir>` for each dir, sorted, skipping build output and hidden directories.
fn rust_files(root: &Path, dirs: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    walk(&path, out);
                }
            } else if ft.is_file() && name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    for dir in dirs {
        walk(&root.join(dir), &mut out);
    }
    out
}

/// Directories whose files must open with a `//!` header (what the file is for, before any code).
const HEADER_DIRS: &[&str] = &["crates", "xtask"];
/// Directories searched for ignored tests: every place a test can live.
const TEST_DIRS: &[&str] = &["crates", "xtask", "tests", "examples"];
/// Directories whose `unsafe` must carry a `// SAFETY:` justification.
const UNSAFE_DIRS: &[&str] = &["crates"];

pub fn check_headers(root: &Path) -> Vec<Violation> {
    let mut out = Vec::new();
    for path in rust_files(root, HEADER_DIRS) {
        let text = fs::read_to_string(&path).unwrap_or_default();
        if !text.lines().next().unwrap_or_default().starts_with("//!") {
            out.push(Violation::new(
                relative(root, &path),
                "does not start with a `//!` line saying what the file is for",
            ));
        }
    }
    out
}

/// An ignored test is a test nobody runs; fix it, delete it, or gate it on what it needs at run time.
/// The attribute, spelled in two pieces so that this file does not itself look like it
/// holds an ignored test to a plain text search.
const IGNORE_ATTR: &str = concat!("#[", "ignore");

pub fn check_no_ignore(root: &Path) -> Vec<Violation> {
    let mut out = Vec::new();
    for path in rust_files(root, TEST_DIRS) {
        let text = fs::read_to_string(&path).unwrap_or_default();
        let code = blank_non_code(&text);
        for (i, line) in code.lines().enumerate() {
            let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            if compact.contains(IGNORE_ATTR) {
                out.push(Violation::new(
                    format!("{}:{}", relative(root, &path), i + 1),
                    format!("{IGNORE_ATTR}] test (make it run, or skip at run time with a reason)"),
                ));
            }
        }
    }
    out
}

pub fn check_unsafe_has_safety(root: &Path) -> Vec<Violation> {
    let mut out = Vec::new();
    for path in rust_files(root, UNSAFE_DIRS) {
        let text = fs::read_to_string(&path).unwrap_or_default();
        for line in unsafe_without_safety(&text) {
            out.push(Violation::new(
                format!("{}:{line}", relative(root, &path)),
                "unsafe block or impl without a `// SAFETY:` comment in the 3 lines above",
            ));
        }
    }
    out
}

/// 1-based lines holding an `unsafe {` or `unsafe impl` with no `// SAFETY:` comment on the line or in the
/// 3 lines above it (a SAFETY comment may open a longer comment block that ends within those lines).
pub fn unsafe_without_safety(text: &str) -> Vec<usize> {
    let code: Vec<char> = blank_non_code(text).chars().collect();
    let raw: Vec<&str> = text.lines().collect();
    let mut hits = Vec::new();
    let word: Vec<char> = "unsafe".chars().collect();
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut line = 1;
    let mut i = 0;
    while i < code.len() {
        if code[i] == '\n' {
            line += 1;
            i += 1;
            continue;
        }
        let starts_word = code[i..].starts_with(&word)
            && (i == 0 || !is_ident(code[i - 1]))
            && code.get(i + word.len()).is_none_or(|c| !is_ident(*c));
        if starts_word {
            let mut j = i + word.len();
            while j < code.len() && code[j].is_whitespace() {
                j += 1;
            }
            let rest: String = code[j..code.len().min(j + 5)].iter().collect();
            let is_block_or_impl = rest.starts_with('{')
                || (rest.starts_with("impl") && code.get(j + 4).is_none_or(|c| !is_ident(*c)));
            if is_block_or_impl && !has_safety_comment(&raw, line - 1) && hits.last() != Some(&line)
            {
                hits.push(line);
            }
            i += word.len();
            continue;
        }
        i += 1;
    }
    hits
}

fn has_safety_comment(lines: &[&str], idx: usize) -> bool {
    let is_comment = |l: &str| l.trim_start().starts_with("//");
    let mentions = |l: &str| l.contains("// SAFETY:") || l.contains("//SAFETY:");
    if lines.get(idx).is_some_and(|l| mentions(l)) {
        return true;
    }
    for back in 1..=3 {
        let Some(j) = idx.checked_sub(back) else {
            break;
        };
        if mentions(lines[j]) {
            return true;
        }
        if is_comment(lines[j]) {
            // Walk up the rest of this comment block: a long justification still counts.
            let mut k = j;
            while k > 0 && is_comment(lines[k - 1]) {
                k -= 1;
                if mentions(lines[k]) {
                    return true;
                }
            }
        }
    }
    false
}

/// Replaces comments and the contents of string and char literals with spaces, keeping newlines, so the
/// source checks see only code (a doc comment or a string that mentions `unsafe {` is not a violation).
pub fn blank_non_code(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = c.clone();
    let is_ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for ch in out.iter_mut().take(to.min(c.len())).skip(from) {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
    };
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '/' if c.get(i + 1) == Some(&'/') => {
                let end = c[i..]
                    .iter()
                    .position(|&x| x == '\n')
                    .map_or(c.len(), |p| i + p);
                blank(&mut out, i, end);
                i = end;
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                // Block comments nest in Rust.
                let mut depth = 0;
                let mut j = i;
                while j < c.len() {
                    if c[j] == '/' && c.get(j + 1) == Some(&'*') {
                        depth += 1;
                        j += 2;
                    } else if c[j] == '*' && c.get(j + 1) == Some(&'/') {
                        depth -= 1;
                        j += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        j += 1;
                    }
                }
                blank(&mut out, i, j);
                i = j;
            }
            'r' if {
                // A raw string starts at `r` (optionally after a `b` or `c` prefix) that ends no identifier.
                let prefix_ok = i == 0
                    || !is_ident(c[i - 1])
                    || ((c[i - 1] == 'b' || c[i - 1] == 'c') && (i < 2 || !is_ident(c[i - 2])));
                let mut j = i + 1;
                while c.get(j) == Some(&'#') {
                    j += 1;
                }
                prefix_ok && c.get(j) == Some(&'"')
            } =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while c[j] == '#' {
                    hashes += 1;
                    j += 1;
                }
                j += 1; // opening quote
                let end = loop {
                    if j >= c.len() {
                        break c.len();
                    }
                    if c[j] == '"' && (1..=hashes).all(|h| c.get(j + h) == Some(&'#')) {
                        break j + 1 + hashes;
                    }
                    j += 1;
                };
                blank(&mut out, i + 1, end);
                i = end;
            }
            '"' => {
                let mut j = i + 1;
                while j < c.len() && c[j] != '"' {
                    j += if c[j] == '\\' { 2 } else { 1 };
                }
                let end = (j + 1).min(c.len());
                blank(&mut out, i, end);
                i = end;
            }
            '\'' => {
                // A char literal ('x', '\n', '\u{..}', '"'), or else a lifetime / label, which is code.
                if c.get(i + 1) == Some(&'\\') {
                    let mut j = i + 2;
                    while j < c.len() && c[j] != '\'' && c[j] != '\n' {
                        j += 1;
                    }
                    let end = (j + 1).min(c.len());
                    blank(&mut out, i, end);
                    i = end;
                } else if c.get(i + 2) == Some(&'\'') {
                    blank(&mut out, i, i + 3);
                    i += 3;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------------------
// Documents

pub fn check_required_docs(root: &Path) -> Vec<Violation> {
    let mut out = Vec::new();
    match fs::read_to_string(root.join("CHANGELOG.md")) {
        Err(_) => out.push(Violation::new("CHANGELOG.md", "missing")),
        Ok(text) => {
            if !text.lines().any(|l| l.trim() == "## [Unreleased]") {
                out.push(Violation::new(
                    "CHANGELOG.md",
                    "no `## [Unreleased]` section (changes land there until a release names them)",
                ));
            }
        }
    }
    if !root.join("ARCHITECTURE.md").is_file() {
        out.push(Violation::new("ARCHITECTURE.md", "missing"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::TempDir;
    use serde_json::json;

    fn pkg(name: &str, deps: &[(&str, Option<&str>)]) -> Value {
        json!({
            "name": name,
            "manifest_path": format!("/ws/crates/{name}/Cargo.toml"),
            "dependencies": deps.iter().map(|(d, kind)| json!({"name": d, "kind": kind})).collect::<Vec<_>>(),
        })
    }

    fn good_workspace() -> Vec<Value> {
        vec![
            pkg(
                "spr-policy",
                &[
                    ("serde", None),
                    ("toml", None),
                    ("thiserror", None),
                    ("insta", Some("dev")),
                ],
            ),
            pkg(
                "spr-protocol",
                &[
                    ("spr-policy", None),
                    ("serde", None),
                    ("serde_json", None),
                    ("thiserror", None),
                ],
            ),
            pkg(
                "spr-engine-local",
                &[
                    ("spr-policy", None),
                    ("spr-protocol", None),
                    ("tokio", None),
                    ("nix", None),
                ],
            ),
            pkg(
                "spr-engine-docker",
                &[("spr-protocol", None), ("bollard", None)],
            ),
            pkg(
                "spr-core",
                &[("spr-engine-local", None), ("spr-engine-docker", None)],
            ),
            pkg(
                "spr-cli",
                &[
                    ("spr-core", None),
                    ("clap", None),
                    ("tracing-subscriber", None),
                ],
            ),
            pkg("spr-python", &[("spr-core", None), ("pyo3", None)]),
        ]
    }

    fn layering(pkgs: Vec<Value>) -> Vec<String> {
        check_layering(Path::new("/ws"), &json!({ "packages": pkgs }))
            .into_iter()
            .map(|v| v.to_string())
            .collect()
    }

    #[test]
    fn layering_accepts_the_intended_graph() {
        assert_eq!(layering(good_workspace()), Vec::<String>::new());
    }

    #[test]
    fn layering_flags_each_rule() {
        let mut ws = good_workspace();
        ws[0] = pkg(
            "spr-policy",
            &[("serde", None), ("regex", None), ("tempfile", Some("dev"))],
        );
        ws[1] = pkg("spr-protocol", &[("spr-policy", None), ("tokio", None)]);
        ws[2] = pkg("spr-engine-local", &[("spr-core", None)]);
        ws[3] = pkg(
            "spr-engine-docker",
            &[("spr-engine-local", None), ("clap", None)],
        );
        ws[4] = pkg(
            "spr-core",
            &[("tracing-subscriber", None), ("clap", Some("dev"))],
        );
        let got = layering(ws);
        assert_eq!(
            got,
            vec![
                "tidy: crates/spr-policy/Cargo.toml: spr-policy may depend only on serde, toml, thiserror, not on regex: the policy crate is embeddable alone",
                "tidy: crates/spr-protocol/Cargo.toml: spr-protocol must not depend on tokio: the protocol crate is sans-IO",
                "tidy: crates/spr-engine-local/Cargo.toml: spr-engine-local must not depend on spr-core: engines never depend on spr-core or on each other (spr-core depends on them)",
                "tidy: crates/spr-engine-docker/Cargo.toml: spr-engine-docker must not depend on spr-engine-local: engines never depend on spr-core or on each other (spr-core depends on them)",
                "tidy: crates/spr-engine-docker/Cargo.toml: only spr-cli may depend on clap (libraries never own the terminal)",
                "tidy: crates/spr-core/Cargo.toml: only spr-cli may depend on tracing-subscriber (libraries never own the terminal)",
            ]
        );
    }

    #[test]
    fn layering_flags_a_missing_crate() {
        let mut ws = good_workspace();
        ws.remove(0);
        assert_eq!(
            layering(ws),
            vec!["tidy: Cargo.toml: workspace has no crate `spr-policy` (update xtask tidy's layering rules)"]
        );
    }

    #[test]
    fn headers() {
        let t = TempDir::new("headers");
        t.write("crates/a/src/lib.rs", "//! A crate.\nfn f() {}\n");
        t.write("crates/a/src/bad.rs", "// not a doc header\n");
        t.write("crates/a/target/debug/gen.rs", "fn generated() {}\n");
        t.write("xtask/src/empty.rs", "");
        t.write("tests/free.rs", "fn outside_header_dirs() {}\n");
        let got: Vec<String> = check_headers(t.path())
            .iter()
            .map(|v| v.to_string())
            .collect();
        assert_eq!(
            got,
            vec![
                "tidy: crates/a/src/bad.rs: does not start with a `//!` line saying what the file is for",
                "tidy: xtask/src/empty.rs: does not start with a `//!` line saying what the file is for",
            ]
        );
    }

    #[test]
    fn ignored_tests() {
        let t = TempDir::new("ignore");
        t.write(
            "crates/a/tests/t.rs",
            &format!("//! T.\n#[test]\n{IGNORE_ATTR}]\nfn a() {{}}\n\n#[test]\n#[ ignore = \"slow\" ]\nfn b() {{}}\n"),
        );
        t.write(
            "tests/ok.rs",
            &format!("//! Mentions only.\n// {IGNORE_ATTR}] in a comment\nconst S: &str = \"{IGNORE_ATTR}]\";\n/* {IGNORE_ATTR}] */\n"),
        );
        t.write(
            "examples/e.rs",
            &format!("//! E.\n{IGNORE_ATTR}]\nfn e() {{}}\n"),
        );
        let got: Vec<String> = check_no_ignore(t.path())
            .iter()
            .map(|v| v.file.clone())
            .collect();
        assert_eq!(
            got,
            vec![
                "crates/a/tests/t.rs:3",
                "crates/a/tests/t.rs:7",
                "examples/e.rs:2"
            ]
        );
    }

    #[test]
    fn unsafe_needs_safety_comment() {
        let src = [
            "//! U.",                                                     // 1
            "fn a() {",                                                   // 2
            "    // SAFETY: getpid has no preconditions.",                // 3
            "    let _ = unsafe { libc::getpid() };",                     // 4
            "}",                                                          // 5
            "fn b() {",                                                   // 6
            "    let _ = unsafe { libc::getpid() };",                     // 7: missing
            "}",                                                          // 8
            "// SAFETY: the type holds no thread-bound state.",           // 9
            "#[allow(unsafe_code)]",                                      // 10
            "unsafe impl Send for X {}",                                  // 11
            "fn gap() {}",                                                // 12
            "unsafe impl Sync for X {}",                                  // 13: missing
            "// SAFETY: a long justification",                            // 14
            "// that goes on",                                            // 15
            "// and on",                                                  // 16
            "// and on.",                                                 // 17
            "let _ = unsafe { f() };",                                    // 18
            "unsafe fn declared() {}",                                    // 19: not a block
            "let s = \"unsafe { in a string }\";",                        // 20
            "/// Doc: unsafe { in a comment }",                           // 21
            "let c = '\"'; let _ = unsafe { g() }; // SAFETY: same line", // 22
            "let r = r#\"unsafe { raw \"# ;",                             // 23
            "fn gap2() {}",                                               // 24
            "fn gap3() {}",                                               // 25
            "let _ = unsafe", // 26: missing, brace on next line
            "{ h() };",       // 27
        ]
        .join("\n");
        assert_eq!(unsafe_without_safety(&src), vec![7, 13, 26]);
    }

    #[test]
    fn unsafe_check_reports_paths() {
        let t = TempDir::new("unsafe");
        t.write("crates/a/src/lib.rs", "//! A.\nfn f() { unsafe { g() } }\n");
        t.write(
            "xtask/src/x.rs",
            "//! Not checked here.\nfn f() { unsafe { g() } }\n",
        );
        let got: Vec<String> = check_unsafe_has_safety(t.path())
            .iter()
            .map(|v| v.to_string())
            .collect();
        assert_eq!(
            got,
            vec!["tidy: crates/a/src/lib.rs:2: unsafe block or impl without a `// SAFETY:` comment in the 3 lines above"]
        );
    }

    #[test]
    fn blanking_keeps_lines_and_code() {
        let src = "let a = \"x // y\"; // c\n/* a /* nested */ b */ let b = 'x';\nfn f<'a>(x: &'a str) {}\nlet q = b\"\\\"\";";
        let out = blank_non_code(src);
        assert_eq!(out.lines().count(), src.lines().count());
        assert_eq!(out.chars().count(), src.chars().count());
        assert!(out.contains("let a ="));
        assert!(!out.contains("//"));
        assert!(!out.contains("nested"));
        assert!(out.contains("let b ="));
        assert!(out.contains("fn f<'a>(x: &'a str) {}"));
        assert!(out.contains("let q = b"));
        assert!(!out.contains('"'));
    }

    #[test]
    fn required_docs() {
        let t = TempDir::new("docs");
        let got = |t: &TempDir| -> Vec<String> {
            check_required_docs(t.path())
                .iter()
                .map(|v| v.to_string())
                .collect()
        };
        assert_eq!(
            got(&t),
            vec![
                "tidy: CHANGELOG.md: missing",
                "tidy: ARCHITECTURE.md: missing"
            ]
        );
        t.write("CHANGELOG.md", "# Changelog\n\n## [0.1.0]\n");
        t.write("ARCHITECTURE.md", "# Architecture\n");
        assert_eq!(
            got(&t),
            vec!["tidy: CHANGELOG.md: no `## [Unreleased]` section (changes land there until a release names them)"]
        );
        t.write(
            "CHANGELOG.md",
            "# Changelog\n\n## [Unreleased]\n\n### Added\n",
        );
        assert_eq!(got(&t), Vec::<String>::new());
    }

    /// The real repository is tidy. This is what makes tidy part of `cargo test --workspace`.
    #[test]
    fn repository_is_tidy() {
        let violations = check_all(&util::repo_root()).expect("tidy checks ran");
        let report: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
        assert!(report.is_empty(), "\n{}\n", report.join("\n"));
    }
}

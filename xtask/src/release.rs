//! Release automation: `test`, `set-version`, `metadata`, `commit`, `tag` and `release`.
//!
//! The counterpart of the seed project's make targets. Every function takes the repository root, so the
//! tests run them against temporary directories and temporary git repositories, never the real checkout.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::sandbox_runs::{self, Runs};
use crate::util::{self, failed, refused, Error};

pub const COMMIT_MESSAGE: &str = "commit_message.txt";
pub const METADATA_TEMPLATE: &str = "release_metadata.md";
pub const METADATA_JSON: &str = ".github/release/metadata.json";

// ---------------------------------------------------------------------------------------------------------
// test

/// fmt, clippy, tidy, then the test suite: what CI runs, so a release never tags an untested tree.
/// Then the sandbox tests again as an unprivileged user and inside `unshare --user
/// --map-root-user` (see `sandbox_runs`). A failing suite does not stop the sandbox runs, so one
/// CI log shows every shape that fails.
pub fn test(root: &Path, runs: Runs) -> Result<(), Error> {
    if runs == Runs::SuiteOnly && sandbox_runs::under_ci() {
        return Err(refused(
            "--no-sandbox-runs is refused under CI=true: CI runs the sandbox tests three ways",
        ));
    }
    let mut failures = Vec::new();
    if runs != Runs::SandboxOnly {
        if let Err(e) = suite(root) {
            eprintln!("{e}");
            failures.push(format!("the test suite as uid {}", current_uid()));
        }
        if let Err(e) = crate::python::suite(root) {
            eprintln!("{e}");
            failures.push("the Python package's pytest suite".to_string());
        }
    }
    if runs != Runs::SuiteOnly {
        match sandbox_runs::run(root) {
            Ok(outcome) => failures.extend(outcome.failures),
            Err(e) => {
                eprintln!("{e}");
                failures.push("the sandbox runs (the error above stopped them)".to_string());
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failed(format!(
            "cargo xtask test failed:\n  {}",
            failures.join("\n  ")
        )))
    }
}

fn current_uid() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| sandbox_runs::parse_euid(&s))
        .map_or_else(|| "?".to_string(), |u| u.to_string())
}

/// fmt, clippy and tidy stop at the first failure (their output is short and the tests would
/// run on code that is about to change anyway); the tests run in full.
fn suite(root: &Path) -> Result<(), Error> {
    util::run(
        util::cargo()
            .args(["fmt", "--all", "--", "--check"])
            .current_dir(root),
    )?;
    util::run(
        util::cargo()
            .args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])
            .current_dir(root),
    )?;
    eprintln!("$ cargo xtask tidy");
    crate::tidy::run(root)?;
    let has_nextest = util::cargo()
        .args(["nextest", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_nextest {
        util::run(
            util::cargo()
                .args(["nextest", "run", "--workspace", "--no-fail-fast"])
                .current_dir(root),
        )
    } else {
        util::run(
            util::cargo()
                .args(["test", "--workspace", "--no-fail-fast"])
                .current_dir(root),
        )
    }
}

// ---------------------------------------------------------------------------------------------------------
// Versions

/// Accepts `X.Y.Z` or `X.Y.Z-pre` (SemVer 2.0: no leading zeros in numbers, dot-separated pre-release
/// identifiers of `[0-9A-Za-z-]`, numeric ones without leading zeros). Build metadata (`+...`) is refused:
/// crates.io ignores it for ordering, so two releases could differ only by it.
pub fn validate_version(v: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "invalid version `{v}`: {why} (expected X.Y.Z or X.Y.Z-pre)"
        ))
    };
    if v.contains('+') {
        return bad("build metadata (+...) is not accepted");
    }
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    let nums: Vec<&str> = core.split('.').collect();
    if nums.len() != 3 {
        return bad("need three numbers");
    }
    for n in nums {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return bad("each of X, Y, Z must be a number");
        }
        if n.len() > 1 && n.starts_with('0') {
            return bad("numbers must not have leading zeros");
        }
        if n.parse::<u64>().is_err() {
            return bad("number too large");
        }
    }
    if let Some(pre) = pre {
        for id in pre.split('.') {
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return bad("pre-release identifiers are non-empty [0-9A-Za-z-] separated by dots");
            }
            if id.bytes().all(|b| b.is_ascii_digit()) && id.len() > 1 && id.starts_with('0') {
                return bad("numeric pre-release identifiers must not have leading zeros");
            }
        }
    }
    Ok(())
}

/// `[workspace.package] version` of the root manifest; the crates inherit it with `version.workspace = true`.
pub fn read_version(root: &Path) -> Result<String, Error> {
    let path = root.join("Cargo.toml");
    let text = fs::read_to_string(&path)
        .map_err(|e| refused(format!("cannot read {}: {e}", path.display())))?;
    let doc: toml::Table = text
        .parse()
        .map_err(|e| refused(format!("Cargo.toml does not parse: {e}")))?;
    let version = doc
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .ok_or_else(|| refused("Cargo.toml has no [workspace.package] version"))?;
    validate_version(version).map_err(|e| refused(format!("Cargo.toml: {e}")))?;
    Ok(version.to_string())
}

/// One line of a TOML file and the table header it sits under.
fn section_of(line: &str) -> Option<String> {
    let t = line.trim();
    let t = t.split_once('#').map_or(t, |(h, _)| h.trim_end()); // headers never contain '#'
    if t.starts_with("[[") && t.ends_with("]]") {
        Some(t[2..t.len() - 2].trim().replace(['"', ' '], ""))
    } else if t.starts_with('[') && t.ends_with(']') && !t[1..].contains('[') {
        Some(t[1..t.len() - 1].trim().replace(['"', ' '], ""))
    } else {
        None
    }
}

/// Byte range of the string value of `key` in `text` (a `key = value` line or an inline table), matching the
/// key only outside string literals and as a whole key, so `path = "version"` or `rust-version` never match.
fn string_value_span(text: &str, key: &str) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let mut in_str = false;
    let mut i = 0;
    while i < b.len() {
        if in_str {
            match b[i] {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
        } else if b[i] == b'"' {
            in_str = true;
        } else if b[i] == b'#' {
            return None; // the rest is a comment
        } else if text[i..].starts_with(key) {
            let before_ok = i == 0 || matches!(b[i - 1], b' ' | b'\t' | b'{' | b',');
            let mut j = i + key.len();
            while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
                j += 1;
            }
            if before_ok && b.get(j) == Some(&b'=') {
                j += 1;
                while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
                    j += 1;
                }
                if b.get(j) == Some(&b'"') {
                    let start = j + 1;
                    let end = start + text[start..].find('"')?;
                    return Some((start, end));
                }
                return None;
            }
        }
        i += 1;
    }
    None
}

fn replace_span(line: &str, (start, end): (usize, usize), new: &str) -> String {
    format!("{}{}{}", &line[..start], new, &line[end..])
}

/// Sets the workspace version and the `version` of every path dependency in `[workspace.dependencies]`, by
/// editing the text (reserializing would reorder keys and drop comments). Returns the new text and a line
/// per change. The result is re-parsed and compared with the intended document, so an edit that touched
/// anything else is caught here rather than in review.
pub fn bump_manifest(text: &str, new: &str) -> Result<(String, Vec<String>), String> {
    validate_version(new)?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut sections = Vec::with_capacity(lines.len());
    let mut current = String::new();
    for line in &lines {
        if let Some(s) = section_of(line) {
            current = s;
        }
        sections.push(current.clone());
    }
    // Dependencies written as their own table, `[workspace.dependencies.name]`, are bumped when they have a path.
    let table_deps_with_path: Vec<&String> = lines
        .iter()
        .zip(&sections)
        .filter(|(l, s)| {
            s.starts_with("workspace.dependencies.")
                && section_of(l).is_none()
                && string_value_span(l, "path").is_some()
        })
        .map(|(_, s)| s)
        .collect();

    let mut out = String::with_capacity(text.len() + 64);
    let mut changes = Vec::new();
    let mut saw_package_version = false;
    for (n, (line, section)) in lines.iter().zip(&sections).enumerate() {
        let is_header = section_of(line).is_some();
        let span = if is_header {
            None
        } else if section == "workspace.package" {
            let s = string_value_span(line, "version")
                .filter(|&(st, _)| line[..st].trim_start().starts_with("version"));
            saw_package_version |= s.is_some();
            s
        } else if section == "workspace.dependencies" {
            if string_value_span(line, "path").is_some() {
                string_value_span(line, "version")
            } else {
                None
            }
        } else if table_deps_with_path.contains(&section)
            && line.trim_start().starts_with("version")
        {
            string_value_span(line, "version")
        } else {
            None
        };
        match span {
            Some(span) => {
                let old = &line[span.0..span.1];
                let what = if section == "workspace.package" {
                    "[workspace.package] version".to_string()
                } else if section == "workspace.dependencies" {
                    format!(
                        "[workspace.dependencies] {}",
                        line.split('=').next().unwrap_or("").trim()
                    )
                } else {
                    format!("[{section}] version")
                };
                changes.push(format!("Cargo.toml:{}: {what}: {old} -> {new}", n + 1));
                out.push_str(&replace_span(line, span, new));
            }
            None => out.push_str(line),
        }
    }
    if !saw_package_version {
        return Err("Cargo.toml has no `version = \"...\"` under [workspace.package]".into());
    }
    verify_bump(text, &out, new)?;
    Ok((out, changes))
}

/// The edited manifest must equal the original with exactly the intended values replaced.
fn verify_bump(old: &str, new_text: &str, new: &str) -> Result<(), String> {
    let mut expected: toml::Table = old
        .parse()
        .map_err(|e| format!("Cargo.toml does not parse: {e}"))?;
    let got: toml::Table = new_text
        .parse()
        .map_err(|e| format!("internal error: the edited Cargo.toml does not parse: {e}"))?;
    let ws = expected
        .get_mut("workspace")
        .and_then(|w| w.as_table_mut())
        .ok_or("Cargo.toml has no [workspace]")?;
    if let Some(v) = ws.get_mut("package").and_then(|p| p.get_mut("version")) {
        *v = toml::Value::String(new.into());
    }
    if let Some(deps) = ws.get_mut("dependencies").and_then(|d| d.as_table_mut()) {
        for (_, dep) in deps.iter_mut() {
            if let Some(t) = dep.as_table_mut() {
                if t.contains_key("path") && t.contains_key("version") {
                    t.insert("version".into(), toml::Value::String(new.into()));
                }
            }
        }
    }
    if expected != got {
        return Err(
            "internal error: editing Cargo.toml would change more than the version keys; \
                    edit it by hand"
                .into(),
        );
    }
    Ok(())
}

/// Member crates must take their version from the workspace, or `set-version` would leave them behind.
fn check_members_inherit(root: &Path, manifest: &str) -> Result<(), Error> {
    let doc: toml::Table = manifest
        .parse()
        .map_err(|e| refused(format!("Cargo.toml does not parse: {e}")))?;
    let members = doc
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default();
    let mut problems = Vec::new();
    for m in members.iter().filter_map(|m| m.as_str()) {
        let path = root.join(m).join("Cargo.toml");
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let Ok(member) = text.parse::<toml::Table>() else {
            continue;
        };
        let Some(pkg) = member.get("package") else {
            continue;
        };
        let publishable = pkg.get("publish").and_then(|p| p.as_bool()) != Some(false);
        if publishable && pkg.get("version").is_some_and(|v| v.is_str()) {
            problems.push(format!(
                "{m}/Cargo.toml: set `version.workspace = true` instead of a literal version"
            ));
        }
        for kind in ["dependencies", "dev-dependencies", "build-dependencies"] {
            for (name, dep) in member
                .get(kind)
                .and_then(|d| d.as_table())
                .into_iter()
                .flatten()
            {
                if publishable && dep.get("path").is_some() && dep.get("version").is_some() {
                    problems.push(format!(
                        "{m}/Cargo.toml: [{kind}] {name} sets its own version; use `{name}.workspace = true`"
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(refused(format!(
            "set-version would leave crates behind:\n  {}",
            problems.join("\n  ")
        )))
    }
}

/// `set-version`: validates, edits the root manifest (atomically), and changes nothing when refused.
pub fn set_version(root: &Path, new: &str) -> Result<Vec<String>, Error> {
    validate_version(new).map_err(refused)?;
    let path = root.join("Cargo.toml");
    let text = fs::read_to_string(&path)
        .map_err(|e| refused(format!("cannot read {}: {e}", path.display())))?;
    check_members_inherit(root, &text)?;
    let (new_text, changes) = bump_manifest(&text, new).map_err(refused)?;
    write_atomic(&path, &new_text)?;
    Ok(changes)
}

pub fn set_version_cmd(root: &Path, new: &str) -> Result<(), Error> {
    let changes = set_version(root, new)?;
    for c in &changes {
        println!("{c}");
    }
    // Keep Cargo.lock's entries for the workspace crates in step, without touching any other package.
    if root.join("Cargo.lock").exists() {
        if let Err(e) = util::run(
            util::cargo()
                .args(["update", "--workspace", "--offline"])
                .current_dir(root),
        ) {
            eprintln!(
                "warning: Cargo.lock not refreshed ({}); the next build will do it",
                e.message()
            );
        }
    }
    println!("version set to {new}; next: update CHANGELOG.md and release_metadata.md, then `cargo xtask release`");
    Ok(())
}

fn write_atomic(path: &Path, text: &str) -> Result<(), Error> {
    let tmp = path.with_extension("xtask-tmp");
    fs::write(&tmp, text)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| failed(format!("cannot write {}: {e}", path.display())))
}

// ---------------------------------------------------------------------------------------------------------
// metadata

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Metadata {
    pub tag: String,
    pub title: String,
    pub body: String,
}

/// Renders release_metadata.md: `{{tag}}` replaced, the first `# ` heading is the title, the rest the body.
pub fn render_metadata(template: &str, tag: &str) -> Result<Metadata, String> {
    let text = template.replace("{{tag}}", tag);
    if let Some(pos) = text.find("{{") {
        let end = text[pos..].find("}}").map_or(text.len(), |e| pos + e + 2);
        return Err(format!(
            "{METADATA_TEMPLATE}: unknown placeholder `{}` (only {{{{tag}}}} is supported)",
            &text[pos..end]
        ));
    }
    let lines: Vec<&str> = text.lines().collect();
    let idx = lines
        .iter()
        .position(|l| l.starts_with("# "))
        .ok_or_else(|| format!("{METADATA_TEMPLATE}: no `# ` title heading"))?;
    let title = lines[idx][2..].trim().to_string();
    if title.is_empty() {
        return Err(format!(
            "{METADATA_TEMPLATE}: the `# ` title heading is empty"
        ));
    }
    let mut rest: Vec<&str> = lines[..idx].to_vec();
    rest.extend_from_slice(&lines[idx + 1..]);
    let body = rest.join("\n").trim().to_string();
    Ok(Metadata {
        tag: tag.to_string(),
        title,
        body,
    })
}

fn load_metadata(root: &Path) -> Result<Metadata, Error> {
    let version = read_version(root)?;
    let path = root.join(METADATA_TEMPLATE);
    let template = fs::read_to_string(&path)
        .map_err(|e| refused(format!("cannot read {METADATA_TEMPLATE}: {e}")))?;
    if template.trim().is_empty() {
        return Err(refused(format!("{METADATA_TEMPLATE} is empty")));
    }
    render_metadata(&template, &format!("v{version}")).map_err(refused)
}

/// `metadata`: writes .github/release/metadata.json, which the release workflow reads for the GitHub release.
pub fn metadata(root: &Path) -> Result<PathBuf, Error> {
    let md = load_metadata(root)?;
    let out = root.join(METADATA_JSON);
    fs::create_dir_all(out.parent().expect("has a parent")).map_err(|e| {
        failed(format!(
            "cannot create {}: {e}",
            out.parent().unwrap().display()
        ))
    })?;
    let json = serde_json::to_string_pretty(&md).expect("strings serialize") + "\n";
    write_atomic(&out, &json)?;
    println!("wrote {METADATA_JSON} for {} ({})", md.tag, md.title);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------
// commit

fn normalize(msg: &str) -> String {
    msg.replace("\r\n", "\n").trim().to_string()
}

fn head_message(root: &Path) -> Option<String> {
    // No HEAD yet (a fresh repository) means there is nothing to compare against.
    util::output(util::git(root).args(["log", "-1", "--format=%B"])).ok()
}

/// The commit message after the checks that `commit` and `release` refuse on.
fn check_commit_message(root: &Path) -> Result<String, Error> {
    let path = root.join(COMMIT_MESSAGE);
    let msg = fs::read_to_string(&path).map_err(|_| {
        refused(format!(
            "{COMMIT_MESSAGE} not found; write the commit message there"
        ))
    })?;
    let msg = normalize(&msg);
    if msg.is_empty() {
        return Err(refused(format!(
            "{COMMIT_MESSAGE} is empty; write the commit message there"
        )));
    }
    if head_message(root).is_some_and(|h| normalize(&h) == msg) {
        return Err(refused(format!(
            "{COMMIT_MESSAGE} is the same as the last commit's message; update it for this commit"
        )));
    }
    Ok(msg)
}

/// `commit`: `git add -A` then `git commit -F commit_message.txt`, after the message checks.
pub fn commit(root: &Path) -> Result<(), Error> {
    check_commit_message(root)?;
    util::run(util::git(root).args(["add", "-A"]))?;
    util::run(util::git(root).args(["commit", "-F", COMMIT_MESSAGE]))
}

// ---------------------------------------------------------------------------------------------------------
// tag

fn tag_exists(root: &Path, tag: &str) -> Result<bool, Error> {
    let status = util::git(root)
        .args(["rev-parse", "-q", "--verify", &format!("refs/tags/{tag}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| failed(format!("cannot run git: {e}")))?;
    Ok(status.success())
}

/// The checks `tag` refuses on. `check_rendered` also requires metadata.json to be rendered for this tag
/// (the release workflow reads it); `release` skips that before its own metadata step has run.
fn check_tag(root: &Path, check_rendered: bool) -> Result<String, Error> {
    let tag = format!("v{}", read_version(root)?);
    if tag_exists(root, &tag)? {
        return Err(refused(format!(
            "tag {tag} already exists; bump the version first (`cargo xtask set-version X.Y.Z`)"
        )));
    }
    if check_rendered {
        let path = root.join(METADATA_JSON);
        let rendered: Option<serde_json::Value> = fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        match rendered {
            None => {
                return Err(refused(format!(
                    "{METADATA_JSON} is missing or unreadable; run `cargo xtask metadata`"
                )))
            }
            Some(v) if v["tag"] != tag.as_str() => {
                return Err(refused(format!(
                "{METADATA_JSON} is for {} but the version is {tag}; run `cargo xtask metadata`",
                v["tag"]
            )))
            }
            Some(_) => {}
        }
    }
    Ok(tag)
}

/// `tag`: creates the annotated tag `v<version>`. It takes no argument on purpose: the version comes from
/// Cargo.toml only, so a tag can never disagree with the crates it publishes.
pub fn tag(root: &Path, args: &[String]) -> Result<String, Error> {
    if !args.is_empty() {
        return Err(refused(format!(
            "tag takes no argument (got `{}`); it reads the version from Cargo.toml — use `cargo xtask set-version` to change it",
            args.join(" ")
        )));
    }
    let tag = check_tag(root, true)?;
    let title = load_metadata(root)
        .map(|m| m.title)
        .unwrap_or_else(|_| format!("spr {tag}"));
    util::run(util::git(root).args(["tag", "-a", &tag, "-m", &title]))?;
    println!(
        "created tag {tag}; push it with `git push origin {tag}` to start the release workflow"
    );
    Ok(tag)
}

// ---------------------------------------------------------------------------------------------------------
// release

/// `release`: metadata, test, commit, tag, in that order. Every refusal is checked before the first step,
/// so a bad commit message or an existing tag stops the flow before anything is written or committed.
/// `run_tests` is `test` in real use; tests of the flow pass a stand-in.
pub fn release(
    root: &Path,
    dry_run: bool,
    run_tests: &dyn Fn(&Path) -> Result<(), Error>,
) -> Result<(), Error> {
    let version = read_version(root)?;
    let md = load_metadata(root)?;
    check_commit_message(root)?;
    let tag_name = check_tag(root, false)?;
    let steps = [
        format!("metadata: render {METADATA_TEMPLATE} into {METADATA_JSON} for {tag_name} (\"{}\")", md.title),
        "test: cargo fmt --check, cargo clippy -D warnings, cargo xtask tidy, cargo nextest run (or cargo test), \
         the sandbox tests as an unprivileged user and inside unshare --user --map-root-user".to_string(),
        format!("commit: git add -A && git commit -F {COMMIT_MESSAGE}"),
        format!("tag: git tag -a {tag_name}"),
    ];
    if dry_run {
        println!("release {version} (dry run, nothing changed); would run:");
        for (i, s) in steps.iter().enumerate() {
            println!("  {}. {s}", i + 1);
        }
        return Ok(());
    }
    eprintln!("== 1/4 {}", steps[0]);
    metadata(root)?;
    eprintln!("== 2/4 {}", steps[1]);
    run_tests(root)?;
    eprintln!("== 3/4 {}", steps[2]);
    commit(root)?;
    eprintln!("== 4/4 {}", steps[3]);
    tag(root, &[])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::TempDir;
    use std::cell::Cell;

    const MANIFEST: &str = r#"[workspace]
resolver = "2"
members = ["crates/a", "crates/b", "xtask"]

# The version lives here; crates inherit it.
[workspace.package]
version = "0.1.0"   # bumped by cargo xtask set-version
edition = "2021"
rust-version = "1.80"

[workspace.dependencies]
a = { path = "crates/a", version = "0.1.0" }
b = {version="0.1.0",path="crates/b"}
serde = { version = "1", features = ["derive"] }
toml = "0.1.0"
weird = { git = "https://example.com/version", version = "0.1.0" }

[workspace.dependencies.c]
path = "crates/c"
version = "0.1.0"

[workspace.dependencies.d]
version = "0.1.0"

[profile.release]
debug = "line-tables-only"
"#;

    const MEMBER_A: &str =
        "[package]\nname = \"a\"\nversion.workspace = true\n\n[dependencies]\nb.workspace = true\n";
    const XTASK: &str = "[package]\nname = \"xtask\"\nversion = \"0.0.0\"\npublish = false\n";

    fn workspace() -> TempDir {
        let t = TempDir::new("release");
        t.write("Cargo.toml", MANIFEST);
        t.write("crates/a/Cargo.toml", MEMBER_A);
        t.write(
            "crates/b/Cargo.toml",
            MEMBER_A.replace("\"a\"", "\"b\"").as_str(),
        );
        t.write("xtask/Cargo.toml", XTASK);
        t
    }

    #[test]
    fn versions() {
        for ok in [
            "0.1.0",
            "1.2.3",
            "10.20.30",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-rc.1-x",
            "1.0.0-0",
        ] {
            assert_eq!(validate_version(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "v1.2.3",
            "01.2.3",
            "1.02.3",
            "1.2.3-",
            "1.2.3-01",
            "1.2.3-a..b",
            "1.2.3+build",
            "1.2.x",
            " 1.2.3",
            "1.2.3-ä",
            "1.2.99999999999999999999",
        ] {
            assert!(validate_version(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn bump_touches_only_the_version_keys() {
        let (got, changes) = bump_manifest(MANIFEST, "0.2.0-rc.1").unwrap();
        let expected = MANIFEST
            .replace(
                "version = \"0.1.0\"   # bumped",
                "version = \"0.2.0-rc.1\"   # bumped",
            )
            .replace(
                "a = { path = \"crates/a\", version = \"0.1.0\" }",
                "a = { path = \"crates/a\", version = \"0.2.0-rc.1\" }",
            )
            .replace(
                "b = {version=\"0.1.0\",path",
                "b = {version=\"0.2.0-rc.1\",path",
            )
            .replace(
                "path = \"crates/c\"\nversion = \"0.1.0\"",
                "path = \"crates/c\"\nversion = \"0.2.0-rc.1\"",
            );
        assert_ne!(expected, MANIFEST);
        assert_eq!(got, expected);
        assert_eq!(
            changes,
            vec![
                "Cargo.toml:7: [workspace.package] version: 0.1.0 -> 0.2.0-rc.1",
                "Cargo.toml:12: [workspace.dependencies] a: 0.1.0 -> 0.2.0-rc.1",
                "Cargo.toml:13: [workspace.dependencies] b: 0.1.0 -> 0.2.0-rc.1",
                "Cargo.toml:20: [workspace.dependencies.c] version: 0.1.0 -> 0.2.0-rc.1",
            ]
        );
    }

    #[test]
    fn bump_preserves_crlf() {
        let crlf = MANIFEST.replace('\n', "\r\n");
        let (got, _) = bump_manifest(&crlf, "1.0.0").unwrap();
        assert_eq!(
            got,
            bump_manifest(MANIFEST, "1.0.0")
                .unwrap()
                .0
                .replace('\n', "\r\n")
        );
    }

    #[test]
    fn bump_of_the_real_manifest_changes_only_versions() {
        let text = fs::read_to_string(util::repo_root().join("Cargo.toml")).unwrap();
        let (got, changes) = bump_manifest(&text, "9.8.7").unwrap();
        assert!(changes.len() >= 2, "{changes:?}");
        let differing: Vec<(&str, &str)> = text
            .lines()
            .zip(got.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(differing.len(), changes.len());
        for (_, new) in differing {
            assert!(new.contains("version = \"9.8.7\""), "{new}");
        }
    }

    #[test]
    fn set_version_writes_the_file() {
        let t = workspace();
        let changes = set_version(t.path(), "0.3.0").unwrap();
        assert_eq!(changes.len(), 4);
        let text = fs::read_to_string(t.path().join("Cargo.toml")).unwrap();
        assert_eq!(text, bump_manifest(MANIFEST, "0.3.0").unwrap().0);
        assert_eq!(read_version(t.path()).unwrap(), "0.3.0");
        // The members are untouched.
        assert_eq!(
            fs::read_to_string(t.path().join("crates/a/Cargo.toml")).unwrap(),
            MEMBER_A
        );
    }

    #[test]
    fn set_version_refusals_change_nothing() {
        let t = workspace();
        for bad in ["1.2", "v1.0.0", "1.0.0+meta"] {
            let err = set_version(t.path(), bad).unwrap_err();
            assert!(matches!(err, Error::Refused(_)), "{err:?}");
            assert!(err.message().contains("invalid version"), "{err}");
            assert_eq!(err.exit_code(), 2);
        }
        // A publishable member with its own version would be left behind.
        t.write("crates/b/Cargo.toml", "[package]\nname = \"b\"\nversion = \"0.1.0\"\n\n[dependencies]\na = { path = \"../a\", version = \"0.1.0\" }\n");
        let err = set_version(t.path(), "0.3.0").unwrap_err();
        assert_eq!(
            err,
            Error::Refused(
                "set-version would leave crates behind:\n  \
                 crates/b/Cargo.toml: set `version.workspace = true` instead of a literal version\n  \
                 crates/b/Cargo.toml: [dependencies] a sets its own version; use `a.workspace = true`"
                    .into()
            )
        );
        assert_eq!(
            fs::read_to_string(t.path().join("Cargo.toml")).unwrap(),
            MANIFEST
        );
        // No manifest at all.
        let empty = TempDir::new("noversion");
        assert!(matches!(
            set_version(empty.path(), "1.0.0"),
            Err(Error::Refused(_))
        ));
        // A manifest without [workspace.package] version.
        empty.write("Cargo.toml", "[workspace]\nmembers = []\n");
        let err = set_version(empty.path(), "1.0.0").unwrap_err();
        assert!(err.message().contains("no `version"), "{err}");
        assert_eq!(
            fs::read_to_string(empty.path().join("Cargo.toml")).unwrap(),
            "[workspace]\nmembers = []\n"
        );
    }

    #[test]
    fn read_version_refusals() {
        let t = TempDir::new("readversion");
        assert!(matches!(read_version(t.path()), Err(Error::Refused(_))));
        t.write("Cargo.toml", "[workspace.package]\nedition = \"2021\"\n");
        assert_eq!(
            read_version(t.path()),
            Err(Error::Refused(
                "Cargo.toml has no [workspace.package] version".into()
            ))
        );
        t.write("Cargo.toml", "[workspace.package]\nversion = \"1.0\"\n");
        assert!(read_version(t.path())
            .unwrap_err()
            .message()
            .contains("invalid version `1.0`"));
    }

    const TEMPLATE: &str =
        "# spr {{tag}}\n\nRelease notes for {{tag}}.\n\n- Summarize key changes here.\n";

    #[test]
    fn metadata_rendering() {
        assert_eq!(
            render_metadata(TEMPLATE, "v0.2.0").unwrap(),
            Metadata {
                tag: "v0.2.0".into(),
                title: "spr v0.2.0".into(),
                body: "Release notes for v0.2.0.\n\n- Summarize key changes here.".into(),
            }
        );
        assert_eq!(
            render_metadata("no heading\n## sub\n", "v1.0.0").unwrap_err(),
            "release_metadata.md: no `# ` title heading"
        );
        assert_eq!(
            render_metadata("# {{tag}}\n{{version}}\n", "v1.0.0").unwrap_err(),
            "release_metadata.md: unknown placeholder `{{version}}` (only {{tag}} is supported)"
        );
    }

    #[test]
    fn metadata_writes_json() {
        let t = workspace();
        t.write(METADATA_TEMPLATE, TEMPLATE);
        metadata(t.path()).unwrap();
        let json = fs::read_to_string(t.path().join(METADATA_JSON)).unwrap();
        assert_eq!(
            json,
            "{\n  \"tag\": \"v0.1.0\",\n  \"title\": \"spr v0.1.0\",\n  \"body\": \"Release notes for v0.1.0.\\n\\n- Summarize key changes here.\"\n}\n"
        );
    }

    #[test]
    fn metadata_refusals() {
        let t = workspace();
        assert!(metadata(t.path())
            .unwrap_err()
            .message()
            .starts_with("cannot read release_metadata.md"));
        t.write(METADATA_TEMPLATE, "  \n");
        assert_eq!(
            metadata(t.path()),
            Err(Error::Refused("release_metadata.md is empty".into()))
        );
        t.write(
            "Cargo.toml",
            &MANIFEST.replace("version = \"0.1.0\"   #", "version = \"x\"   #"),
        );
        t.write(METADATA_TEMPLATE, TEMPLATE);
        assert!(metadata(t.path())
            .unwrap_err()
            .message()
            .contains("invalid version `x`"));
        assert!(!t.path().join(METADATA_JSON).exists());
    }

    // ---- git flows, on temporary repositories only

    fn git_ok(root: &Path, args: &[&str]) -> String {
        util::output(util::git(root).args(args)).unwrap()
    }

    fn repo() -> TempDir {
        let t = workspace();
        t.write(METADATA_TEMPLATE, TEMPLATE);
        git_ok(t.path(), &["init", "-q", "-b", "main"]);
        git_ok(t.path(), &["config", "user.name", "xtask test"]);
        git_ok(t.path(), &["config", "user.email", "xtask@example.invalid"]);
        git_ok(t.path(), &["config", "commit.gpgsign", "false"]);
        git_ok(t.path(), &["config", "tag.gpgsign", "false"]);
        t
    }

    #[test]
    fn commit_refusals_and_success() {
        let t = repo();
        let err = commit(t.path()).unwrap_err();
        assert_eq!(
            err,
            Error::Refused("commit_message.txt not found; write the commit message there".into())
        );
        t.write(COMMIT_MESSAGE, " \n\n");
        assert_eq!(
            commit(t.path()).unwrap_err(),
            Error::Refused("commit_message.txt is empty; write the commit message there".into())
        );
        t.write(COMMIT_MESSAGE, "First commit\n\nWith a body.\n");
        commit(t.path()).unwrap();
        assert_eq!(
            git_ok(t.path(), &["log", "-1", "--format=%B"]).trim(),
            "First commit\n\nWith a body."
        );
        assert_eq!(git_ok(t.path(), &["status", "--porcelain"]), "");
        // Same message as HEAD, even with different surrounding whitespace.
        t.write("new.txt", "x");
        t.write(COMMIT_MESSAGE, "\nFirst commit\r\n\r\nWith a body.\r\n");
        assert_eq!(
            commit(t.path()).unwrap_err(),
            Error::Refused(
                "commit_message.txt is the same as the last commit's message; update it for this commit".into()
            )
        );
        assert_eq!(
            git_ok(t.path(), &["rev-list", "--count", "HEAD"]).trim(),
            "1"
        );
    }

    #[test]
    fn tag_refusals_and_success() {
        let t = repo();
        t.write(COMMIT_MESSAGE, "Initial\n");
        commit(t.path()).unwrap();
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let err = tag(t.path(), &args(&["v0.1.0"])).unwrap_err();
        assert!(matches!(err, Error::Refused(_)));
        assert!(
            err.message()
                .starts_with("tag takes no argument (got `v0.1.0`)"),
            "{err}"
        );
        // Metadata not rendered yet.
        assert_eq!(
            tag(t.path(), &[]).unwrap_err(),
            Error::Refused(format!(
                "{METADATA_JSON} is missing or unreadable; run `cargo xtask metadata`"
            ))
        );
        metadata(t.path()).unwrap();
        // Stale metadata after a version bump.
        set_version(t.path(), "0.2.0").unwrap();
        assert_eq!(
            tag(t.path(), &[]).unwrap_err(),
            Error::Refused(format!(
                "{METADATA_JSON} is for \"v0.1.0\" but the version is v0.2.0; run `cargo xtask metadata`"
            ))
        );
        metadata(t.path()).unwrap();
        assert_eq!(tag(t.path(), &[]).unwrap(), "v0.2.0");
        assert_eq!(
            git_ok(t.path(), &["tag", "-l", "-n1"]).trim(),
            "v0.2.0          spr v0.2.0"
        );
        assert_eq!(
            git_ok(t.path(), &["cat-file", "-t", "v0.2.0"]).trim(),
            "tag",
            "annotated"
        );
        assert_eq!(
            tag(t.path(), &[]).unwrap_err(),
            Error::Refused("tag v0.2.0 already exists; bump the version first (`cargo xtask set-version X.Y.Z`)".into())
        );
        // Missing and invalid versions.
        t.write("Cargo.toml", "[workspace]\nmembers = []\n");
        assert_eq!(
            tag(t.path(), &[]).unwrap_err(),
            Error::Refused("Cargo.toml has no [workspace.package] version".into())
        );
        t.write("Cargo.toml", "[workspace.package]\nversion = \"2\"\n");
        assert!(tag(t.path(), &[])
            .unwrap_err()
            .message()
            .contains("invalid version `2`"));
    }

    #[test]
    fn release_dry_run_changes_nothing_and_real_run_does_every_step() {
        let t = repo();
        t.write(COMMIT_MESSAGE, "Initial\n");
        commit(t.path()).unwrap();
        set_version(t.path(), "0.2.0").unwrap();
        t.write(COMMIT_MESSAGE, "Release 0.2.0\n");
        let tests_ran = Cell::new(0);
        let fake_tests = |_: &Path| {
            tests_ran.set(tests_ran.get() + 1);
            Ok(())
        };
        let before = git_ok(t.path(), &["status", "--porcelain"]);
        release(t.path(), true, &fake_tests).unwrap();
        assert_eq!(tests_ran.get(), 0);
        assert!(!t.path().join(METADATA_JSON).exists());
        assert_eq!(git_ok(t.path(), &["status", "--porcelain"]), before);
        assert_eq!(git_ok(t.path(), &["tag"]), "");

        release(t.path(), false, &fake_tests).unwrap();
        assert_eq!(tests_ran.get(), 1);
        assert_eq!(
            git_ok(t.path(), &["log", "-1", "--format=%s"]).trim(),
            "Release 0.2.0"
        );
        assert_eq!(git_ok(t.path(), &["tag"]).trim(), "v0.2.0");
        assert_eq!(git_ok(t.path(), &["status", "--porcelain"]), "");
        let committed = git_ok(t.path(), &["show", &format!("HEAD:{METADATA_JSON}")]);
        assert!(committed.contains("\"tag\": \"v0.2.0\""), "{committed}");

        // A second release of the same version is refused before anything runs.
        t.write(COMMIT_MESSAGE, "Another\n");
        let err = release(t.path(), false, &fake_tests).unwrap_err();
        assert!(err.message().contains("tag v0.2.0 already exists"), "{err}");
        assert_eq!(tests_ran.get(), 1);
    }

    #[test]
    fn release_stops_when_tests_fail() {
        let t = repo();
        t.write(COMMIT_MESSAGE, "Initial\n");
        let err = release(t.path(), false, &|_: &Path| Err(failed("tests failed"))).unwrap_err();
        assert_eq!(err, Error::Failed("tests failed".into()));
        assert_eq!(git_ok(t.path(), &["tag"]), "");
        assert!(
            util::output(util::git(t.path()).args(["rev-parse", "HEAD"])).is_err(),
            "nothing committed"
        );
    }
}

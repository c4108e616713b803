//! Text for the model: a run's result as a tool's text content, and the server's
//! instructions (what the chosen profile allows).
//!
//! The text is bounded: a model reads it into its context, where a megabyte of output
//! would crowd out everything else. Each part is cut to a budget of its own, keeping its
//! start and its end (a traceback's last lines say the most), and the cut is said in the
//! text. The whole result is in `structuredContent` for clients that want it.

use spr_core::{Mode, RunnerPolicy, RunnerResult};
use std::fmt::Write;

/// Most characters of each part a result's text repeats.
pub const RESULT_CHARS: usize = 4_000;
pub const STDOUT_CHARS: usize = 12_000;
pub const STDERR_CHARS: usize = 6_000;
pub const ERROR_CHARS: usize = 2_000;

/// A result as a model reads it: a status line, then the error, the result value, the
/// value of a session cell's last expression and the output, each only when there is
/// something to say, then notes on what was cut.
/// `policy` is the one the run had, for the limits the notes name.
pub fn result_text(result: &RunnerResult, policy: &RunnerPolicy) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "status: {}", status(result));
    let mut notes = Vec::new();
    if let Some(error) = &result.error {
        let shown = bounded(error, ERROR_CHARS, "error", &mut notes);
        let _ = writeln!(out, "error: {shown}");
    }
    // In a session a cell usually shows its work through its last expression, not
    // `result`: a null `result` is not worth a line there.
    let in_session = result.value.is_some();
    if (result.ok && !in_session) || !result.result.is_null() {
        let value = result.result.get();
        let shown = bounded(value, RESULT_CHARS, "result", &mut notes);
        if result.ok && result.result.is_null() {
            let _ = writeln!(out, "result: null (the code assigned no `result` variable)");
        } else {
            let _ = writeln!(out, "result: {shown}");
        }
    }
    if let Some(value) = result.value.as_ref().filter(|v| !v.is_null()) {
        let shown = bounded(value.get(), RESULT_CHARS, "value", &mut notes);
        let _ = writeln!(out, "value: {shown}");
    }
    if result.session_lost {
        notes.push(
            "the session was lost: its state is gone and later runs in it are refused; \
             create a new session"
                .into(),
        );
    }
    for (name, text, budget) in [
        ("stdout", &result.stdout, STDOUT_CHARS),
        ("stderr", &result.stderr, STDERR_CHARS),
    ] {
        if !text.is_empty() {
            let shown = bounded(text, budget, name, &mut notes);
            let _ = writeln!(out, "{name}:\n{}", shown.trim_end_matches('\n'));
        }
    }
    if !result.outputs.is_empty() {
        let _ = writeln!(
            out,
            "figures: {} (sent as image content after this text)",
            result.outputs.len()
        );
    }
    for file in &result.files {
        let cut = if file.truncated { ", truncated" } else { "" };
        let _ = writeln!(
            out,
            "file: {} ({} bytes{cut}; in structuredContent)",
            spr_protocol::wire::loggable(&file.path),
            file.size
        );
    }
    for (name, truncated) in [
        ("stdout", result.stdout_truncated),
        ("stderr", result.stderr_truncated),
    ] {
        if truncated {
            notes.push(format!(
                "{name} was truncated at the run's output limit ({} KB); print less",
                policy.max_output_kb
            ));
        }
    }
    for note in notes {
        let _ = writeln!(out, "note: {note}");
    }
    out.truncate(out.trim_end().len());
    out
}

fn status(result: &RunnerResult) -> String {
    if result.ok {
        "ok".to_string()
    } else if result.timed_out {
        format!("timed out (exit code {})", result.exit_code)
    } else if result.resource_exceeded {
        format!("resource limit exceeded (exit code {})", result.exit_code)
    } else if result.exit_code == spr_core::EXIT_INFRASTRUCTURE {
        "not run: the engine failed (exit code 125)".to_string()
    } else if result.exit_code == spr_protocol::wire::EXIT_INVALID_REQUEST {
        "refused: nothing was run (exit code 2)".to_string()
    } else {
        format!("error (exit code {})", result.exit_code)
    }
}

/// `text` cut to `budget` characters: its start and its end with a marker between,
/// and a note saying so.
fn bounded(text: &str, budget: usize, name: &str, notes: &mut Vec<String>) -> String {
    let total = text.chars().count();
    if total <= budget {
        return text.to_string();
    }
    let head = budget * 2 / 3;
    let tail = budget - head;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(total - tail).collect();
    let cut = total - head - tail;
    notes.push(format!(
        "{name} is shown cut to {budget} of its {total} characters; structuredContent has all of it"
    ));
    format!("{start}\n[… {cut} characters cut …]\n{end}")
}

/// The server's instructions: how to use the tool, and what the profile allows, in a
/// few lines. `profile` is the name the operator gave it.
pub fn instructions(profile: &str, policy: &RunnerPolicy) -> String {
    let mut out = String::from(
        "spr runs Python 3 code in a sandbox and returns what it did. Call `run_python` with \
         `code`; assign the value to return to a variable named `result`; print() output comes \
         back as stdout; pass data as `input_data` (an object, read as the dict `input_data`). \
         Every call is a fresh process: nothing persists from one call to the next, unless it \
         runs in a session: `create_session` opens one (an interpreter whose variables, imports \
         and files persist), `run_python` with its `session_id` runs in it and returns the value \
         of the code's last expression as `value`, `close_session` closes it.\n",
    );
    let _ = write!(
        out,
        "The operator's policy (profile {profile:?}) applies to every run: "
    );
    let list = |items: &[String]| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items.join(", ")
        }
    };
    match policy.mode {
        Mode::Restrict => {
            let _ = write!(
                out,
                "blocked imports: {}; blocked builtins: {}",
                list(&policy.blocked_imports),
                list(&policy.blocked_builtins)
            );
        }
        Mode::Allow => {
            let _ = write!(
                out,
                "only these imports: {}; only these builtins: {}",
                list(&policy.allowed_imports),
                list(&policy.allowed_builtins)
            );
        }
    }
    let _ = write!(
        out,
        "; at most {} s a run (timeout_seconds may ask for less), {} MB of memory, {} KB of \
         output per stream; {}.",
        policy.timeout_seconds,
        policy.memory_limit_mb,
        policy.max_output_kb,
        if policy.sandbox.network {
            "network access"
        } else {
            "no network"
        }
    );
    out.push_str(
        " A blocked import or builtin is an error naming it: rewrite the code without it \
         rather than retrying.",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use spr_core::Json;

    fn result(ok: bool) -> RunnerResult {
        RunnerResult {
            ok,
            exit_code: if ok { 0 } else { 1 },
            error: None,
            ..RunnerResult::infrastructure_error("")
        }
    }

    #[test]
    fn results_read_as_text() {
        let policy = RunnerPolicy::default();
        let mut lines = Vec::new();
        let mut ok = result(true);
        ok.result = "[1,2]".parse().unwrap();
        ok.stdout = "hi\n".into();
        lines.push(result_text(&ok, &policy));
        lines.push(result_text(&result(true), &policy));
        let mut failed = result(false);
        failed.error = Some("ZeroDivisionError: division by zero".into());
        failed.stderr = "Traceback (most recent call last):\n  ...\n".into();
        failed.stdout_truncated = true;
        lines.push(result_text(&failed, &policy));
        let timeout = RunnerResult::timeout(&policy, std::time::Duration::from_secs(5));
        lines.push(result_text(&timeout, &policy));
        let refused = RunnerResult::invalid_request(
            "unknown session \"ses_1\": it was never created, was closed, or expired",
        );
        lines.push(result_text(&refused, &policy));
        lines.push(result_text(
            &RunnerResult::infrastructure_error("the engine failed to start: no python"),
            &policy,
        ));
        let mut cell = result(true);
        cell.value = Some("{\"a\":1}".parse().unwrap());
        cell.stdout = "loaded\n".into();
        lines.push(result_text(&cell, &policy));
        let mut statement = result(true);
        statement.value = Some(Json::null());
        lines.push(result_text(&statement, &policy));
        let mut lost = RunnerResult::timeout(&policy, std::time::Duration::from_secs(5));
        lost.value = Some(Json::null());
        lost.session_lost = true;
        lines.push(result_text(&lost, &policy));
        insta::assert_snapshot!(lines.join("\n---\n"));
    }

    #[test]
    fn long_output_keeps_its_start_and_end_within_budget() {
        let mut r = result(true);
        r.stdout = format!("{}{}", "é".repeat(STDOUT_CHARS), "the end");
        let text = result_text(&r, &RunnerPolicy::default());
        assert!(text.contains("the end"), "the tail is kept");
        assert!(text.contains("characters cut"));
        assert!(
            text.contains("stdout is shown cut to 12000 of its 12007 characters"),
            "{text}"
        );
        assert!(text.chars().count() < STDOUT_CHARS + 500);
    }

    #[test]
    fn instructions_name_the_profile_and_its_limits() {
        let text = instructions("default", &RunnerPolicy::default());
        insta::assert_snapshot!(text);
        let allow = RunnerPolicy {
            mode: Mode::Allow,
            allowed_imports: vec!["math".into()],
            ..RunnerPolicy::default()
        };
        let text = instructions("strict", &allow);
        assert!(text.contains("profile \"strict\""));
        assert!(text.contains("only these imports: math; only these builtins: none"));
    }
}

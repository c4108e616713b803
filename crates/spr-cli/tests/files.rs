//! Files in and out and figures through `spr serve --stdio` and `spr run` (`--file`,
//! `--collect`, `--out-dir`), with real Python on the shared test venv and, for figures,
//! the pinned data stack (`.ci/datastack-setup.sh`).

mod common;

use common::{code, render, responses, run, spr, stdout};
use std::path::PathBuf;

fn spr_local(args: &[&str]) -> std::process::Command {
    let mut cmd = spr();
    cmd.args(args)
        .args(["--venv-manager", "python", "--venv-dir", common::cli_venv()]);
    cmd
}

/// The data-stack venv, or None (skipped; a failure under CI).
fn datastack() -> Option<PathBuf> {
    let venv = std::env::var_os("SPR_DATASTACK_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/spr-datastack"));
    let ok = std::fs::read_dir(venv.join("lib"))
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .is_some_and(|py| py.path().join("site-packages/matplotlib").is_dir());
    common::require(
        ok,
        "the data-stack venv with matplotlib (.ci/datastack-setup.sh)",
    )
    .then_some(venv)
}

fn b64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[test]
fn stdio_requests_bring_files_and_collect_globs() {
    let policy = r#"{"blocked_builtins": ["eval", "exec", "compile", "breakpoint"]}"#;
    let input = format!(
        "{}\n{}\n{}\n{}\n",
        format_args!(
            r#"{{"id": 1, "code": "t = open('data/in.txt').read()\nopen('out/r.txt', 'w').write(t[::-1])\nresult = t", "policy": {policy}, "files": [{{"path": "data/in.txt", "content": "abc"}}, {{"path": "out/seed.bin", "content": "AP8=", "encoding": "base64"}}], "collect": ["out/**"]}}"#
        ),
        r#"{"id": 2, "code": "result = 1", "files": [{"path": "../escape", "content": "x"}]}"#,
        r#"{"id": 3, "code": "result = 1", "collect": ["/etc/*"]}"#,
        r#"{"id": 4, "code": "result = 1", "files": [{"path": "a", "content": "", "encoding": "hex"}]}"#,
    );
    let out = run(
        &mut spr_local(&["serve", "--stdio"]),
        Some(input.as_bytes()),
    );
    assert_eq!(code(&out), 0, "{}", render(&out, &[]));
    let mut lines = responses(&out);
    lines.sort_by_key(|l| l["id"].as_u64());
    let ok = &lines[0];
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["result"], "abc");
    let files = ok["files"].as_array().unwrap();
    let got: Vec<(&str, Vec<u8>)> = files
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap(),
                b64(f["content"].as_str().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("out/r.txt", b"cba".to_vec()),
            ("out/seed.bin", vec![0, 255])
        ]
    );
    assert_eq!(files[0]["size"], 3);
    assert_eq!(files[0]["truncated"], false);
    for (line, says) in [
        (
            &lines[1],
            r#"files[0] \"../escape\": '..' segments are refused"#,
        ),
        (
            &lines[2],
            r#"collect[0] \"/etc/*\": absolute paths are refused"#,
        ),
        (
            &lines[3],
            r#""files[0].encoding\" must be \"utf-8\" or \"base64\", got \"hex\""#,
        ),
    ] {
        assert_eq!(line["exit_code"], 2, "{line}");
        let error = serde_json::to_string(&line["error"]).unwrap();
        assert!(error.contains(says), "{error}");
    }
}

#[test]
fn run_takes_files_and_saves_what_comes_back_in_out_dir() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("in.csv");
    std::fs::write(&local, "a\n1\n2\n").unwrap();
    let blob = dir.path().join("b.bin");
    std::fs::write(&blob, [0u8, 200, 255]).unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        "[policy]\nblocked_builtins = [\"eval\", \"exec\"]\n",
    )
    .unwrap();
    let saved = dir.path().join("saved");
    let code_text = "rows = open('data/in.csv').read().split()\n\
                     open('out.txt', 'w').write(str(len(rows)))\n\
                     open('copy.bin', 'wb').write(open('b.bin', 'rb').read())\n\
                     result = rows";
    let out = run(
        &mut spr_local(&[
            "run",
            "-c",
            code_text,
            "--policy",
            policy.to_str().unwrap(),
            "--file",
            &format!("data/in.csv={}", local.display()),
            "--file",
            &format!("b.bin={}", blob.display()),
            "--collect",
            "*.txt",
            "--collect",
            "copy.bin",
            "--out-dir",
            saved.to_str().unwrap(),
        ]),
        None,
    );
    assert_eq!(code(&out), 0, "{}", render(&out, &[]));
    assert_eq!(std::fs::read_to_string(saved.join("out.txt")).unwrap(), "3");
    assert_eq!(
        std::fs::read(saved.join("copy.bin")).unwrap(),
        [0, 200, 255]
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("saved: "),
        "{}",
        render(&out, &[])
    );

    // --json prints them in the result; a bad --file is a usage error before any run.
    let out = run(
        &mut spr_local(&[
            "run",
            "--json",
            "-c",
            "result = 1",
            "--file",
            &format!("x/y.csv={}", local.display()),
            "--collect",
            "**",
        ]),
        None,
    );
    assert_eq!(code(&out), 0, "{}", render(&out, &[]));
    let result: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(result["files"][0]["path"], "x/y.csv");
    for bad in [
        format!("../x={}", local.display()),
        "nodest".to_string(),
        "a=/no/such/file".to_string(),
    ] {
        let out = run(
            &mut spr_local(&["run", "-c", "result = 1", "--file", &bad]),
            None,
        );
        assert_eq!(code(&out), 2, "{bad}: {}", render(&out, &[]));
    }
}

#[test]
fn run_saves_figures_as_png_files() {
    let Some(venv) = datastack() else { return };
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        "[policy]\ntimeout_seconds = 60\nmemory_limit_mb = 1024\nblocked_imports = [\"socket\", \"ctypes\", \"importlib\"]\n",
    )
    .unwrap();
    let saved = dir.path().join("figs");
    let out = run(
        spr().args([
            "run",
            "-c",
            "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nplt.plot([1, 2], [2, 1])\nplt.figure()\nplt.bar([1], [1])",
            "--venv-dir",
            venv.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--out-dir",
            saved.to_str().unwrap(),
        ]),
        None,
    );
    assert_eq!(code(&out), 0, "{}", render(&out, &[]));
    for name in ["output-1.png", "output-2.png"] {
        let png = std::fs::read(saved.join(name)).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}");
    }
}

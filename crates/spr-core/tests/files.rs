//! Files in and out of a run, and figures, through the local engine with the sandbox on:
//! request files land in scratch before the code, `collect` globs come back after, paths
//! never leave scratch (refused before the run, or not followed in it), caps are reported,
//! and a matplotlib figure comes back as a real PNG (the pinned data stack of
//! `.ci/datastack-setup.sh`).

mod common;

use spr_core::{
    local_sandbox_probe, run_code_with, Attachments, FileIn, LocalEngine, LocalEngineConfig,
    PolicySource, RunError, RunnerPolicy, RunnerResult, SandboxMode, VenvManager, MAX_FILES_OUT,
    MAX_FILES_OUT_BYTES,
};
use std::path::PathBuf;

fn engine_for(venv: PathBuf, mode: SandboxMode) -> LocalEngine {
    let mut config = LocalEngineConfig::new(venv);
    config.venv_manager = VenvManager::Python;
    config.pool_size = Some(1);
    config.sandbox = mode;
    LocalEngine::new(config).expect("the venv can be prepared")
}

/// The sandboxed engine of these tests, or None (skipped; a failure under CI) when this
/// machine cannot give the full local sandbox.
fn engine() -> Option<LocalEngine> {
    let s = local_sandbox_probe();
    let full = [
        "user_namespace",
        "mount_namespace",
        "pid_namespace",
        "landlock",
        "seccomp",
    ]
    .iter()
    .all(|n| s.available(n));
    common::require(
        full,
        "the full local sandbox (namespaces, Landlock, seccomp)",
    )
    .then(|| engine_for(common::shared_venv(), SandboxMode::Auto))
}

/// The pinned data stack (`.ci/datastack-setup.sh`): `SPR_DATASTACK_VENV`, else
/// /opt/spr-datastack.
fn datastack() -> Option<PathBuf> {
    let venv = std::env::var_os("SPR_DATASTACK_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/spr-datastack"));
    let ok = venv.join("bin/python").exists()
        && std::fs::read_dir(venv.join("lib"))
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

/// The default policy with `open` allowed (so the code can read what it was given).
fn with_open() -> RunnerPolicy {
    let mut policy = RunnerPolicy::default();
    policy.blocked_builtins.retain(|b| b != "open");
    policy
}

/// Nothing blocked but the kernel layer: only the sandbox and the harness's own rules
/// keep the code's files in scratch.
fn permissive() -> RunnerPolicy {
    RunnerPolicy {
        blocked_imports: vec![],
        blocked_builtins: vec![],
        ..RunnerPolicy::default()
    }
}

async fn run(
    engine: &LocalEngine,
    code: &str,
    policy: RunnerPolicy,
    files: Vec<FileIn>,
    collect: &[&str],
) -> Result<RunnerResult, RunError> {
    let attachments = Attachments {
        files,
        collect: collect.iter().map(|g| g.to_string()).collect(),
    };
    run_code_with(
        code,
        engine,
        None,
        PolicySource::Policy(policy),
        &attachments,
    )
    .await
}

fn paths(result: &RunnerResult) -> Vec<&str> {
    result.files.iter().map(|f| f.path.as_str()).collect()
}

#[tokio::test]
async fn text_and_binary_files_round_trip_through_nested_directories() {
    let Some(engine) = engine() else { return };
    let blob: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let files = vec![
        FileIn::text("data/in.csv", "a,b\n1,2\n3,\u{e9}\n"),
        FileIn::bytes("data/raw/blob.bin", &blob),
        FileIn::text("empty.txt", ""),
    ];
    // The default policy (no `open`, no `os`): the files still go in and come back.
    let r = run(
        &engine,
        "result = 1",
        RunnerPolicy::default(),
        files.clone(),
        &["**"],
    )
    .await
    .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(paths(&r), ["data/in.csv", "data/raw/blob.bin", "empty.txt"]);
    assert_eq!(
        r.files[0].decode().unwrap(),
        "a,b\n1,2\n3,\u{e9}\n".as_bytes()
    );
    assert_eq!(r.files[1].decode().unwrap(), blob);
    assert_eq!((r.files[1].size, r.files[1].truncated), (70_000, false));
    let sandbox = r.sandbox.as_ref().expect("a receipt");
    assert!(
        sandbox.landlock_abi.is_some() && sandbox.seccomp.is_some(),
        "{sandbox:?}"
    );

    // The code reads them and writes its own; globs pick what comes back.
    let code = "import csv\n\
                rows = list(csv.reader(open('data/in.csv', encoding='utf-8')))\n\
                blob = open('data/raw/blob.bin', 'rb').read()\n\
                open('out.csv', 'w').write('n\\n%d\\n' % len(rows))\n\
                open('out.bin', 'wb').write(blob[::-1])\n\
                open('notes.txt', 'w').write('not collected')\n\
                result = [len(rows), len(blob)]";
    let r = run(
        &engine,
        code,
        with_open(),
        files,
        &["out.*", "data/**/*.bin"],
    )
    .await
    .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.result, serde_json::json!([3, 70_000]));
    assert_eq!(paths(&r), ["data/raw/blob.bin", "out.bin", "out.csv"]);
    let reversed: Vec<u8> = blob.iter().rev().copied().collect();
    assert_eq!(r.files[1].decode().unwrap(), reversed);
    assert_eq!(r.files[2].decode().unwrap(), b"n\n3\n");
    engine.shutdown().await;
}

#[tokio::test]
async fn files_of_one_run_are_not_in_the_next() {
    let Some(engine) = engine() else { return };
    let r = run(
        &engine,
        "result = 1",
        RunnerPolicy::default(),
        vec![FileIn::text("secret.txt", "s3cr3t")],
        &[],
    )
    .await
    .unwrap();
    assert!(r.ok && r.files.is_empty(), "{r:?}");
    let r = run(
        &engine,
        "import os\nresult = os.listdir('.')",
        permissive(),
        vec![],
        &["**"],
    )
    .await
    .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.result, serde_json::json!([]));
    assert!(r.files.is_empty(), "{r:?}");
    engine.shutdown().await;
}

#[tokio::test]
async fn traversal_is_refused_before_the_run_naming_the_file() {
    let Some(engine) = engine() else { return };
    for (path, why) in [
        ("/etc/cron.d/x", "absolute paths are refused"),
        ("../x", "'..' segments are refused"),
        ("a/../../x", "'..' segments are refused"),
        ("a\\..\\x", "backslashes are refused"),
    ] {
        let err = run(
            &engine,
            "result = 1",
            with_open(),
            vec![FileIn::text("ok", ""), FileIn::text(path, "x")],
            &[],
        )
        .await
        .unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("files[1] \""), "{message}");
        assert!(message.contains(why), "{message}");
    }
    for glob in ["/etc/*", "../**", "x/../../*"] {
        let err = run(&engine, "result = 1", with_open(), vec![], &[glob])
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("collect[0] \""), "{err}");
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn symlinks_the_code_plants_are_not_followed_out_of_scratch() {
    let Some(engine) = engine() else { return };
    let code = "import os\n\
                os.makedirs('out/sub')\n\
                open('out/real.txt', 'w').write('mine')\n\
                os.symlink('/etc/passwd', 'out/passwd.txt')\n\
                os.symlink('/etc', 'out/etc')\n\
                os.symlink('/proc/self/environ', 'out/sub/env.txt')\n\
                os.symlink('real.txt', 'out/alias.txt')\n\
                result = sorted(os.listdir('out'))";
    let r = run(
        &engine,
        code,
        permissive(),
        vec![],
        &["out/**", "**/*.txt", "out/etc/*"],
    )
    .await
    .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(paths(&r), ["out/real.txt"]);
    assert_eq!(r.files[0].decode().unwrap(), b"mine");
    assert!(
        r.stderr
            .contains("spr: collect: out/passwd.txt is a symlink: not collected"),
        "{}",
        r.stderr
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_scratch_the_code_swaps_for_another_directory_is_not_collected() {
    let Some(engine) = engine() else { return };
    // The run's scratch is its working directory under its own /tmp: replace it with a
    // directory (a symlink to /etc would do the same) and nothing is read from it.
    let code = "import os\n\
                here = os.getcwd()\n\
                os.rename(here, here + '.old')\n\
                os.mkdir(here)\n\
                open(os.path.join(here, 'planted.txt'), 'w').write('x')\n\
                result = 1";
    let r = run(
        &engine,
        code,
        permissive(),
        vec![FileIn::text("mine.txt", "m")],
        &["*.txt"],
    )
    .await
    .unwrap();
    assert!(r.ok, "{r:?}");
    assert!(r.files.is_empty(), "{:?}", paths(&r));
    assert!(
        r.stderr.contains("the scratch directory was replaced"),
        "{}",
        r.stderr
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_file_the_code_deletes_or_turns_into_a_directory_is_not_returned() {
    let Some(engine) = engine() else { return };
    let code = "import os\n\
                os.remove('gone.txt')\n\
                os.remove('dir.txt')\n\
                os.mkdir('dir.txt')\n\
                open('dir.txt/inner', 'w').write('x')\n\
                result = 1";
    let files = vec![FileIn::text("gone.txt", "1"), FileIn::text("dir.txt", "2")];
    let r = run(&engine, code, permissive(), files, &["*.txt"])
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    assert!(r.files.is_empty(), "{:?}", paths(&r));
    engine.shutdown().await;
}

#[tokio::test]
async fn caps_on_returned_files_are_reported() {
    let Some(engine) = engine() else { return };
    // One file over the byte cap: cut, with its real size.
    let big = MAX_FILES_OUT_BYTES as usize + 1_000_000;
    let code = format!("open('big.bin', 'wb').write(b'z' * {big})\nresult = 1");
    let r = run(&engine, &code, with_open(), vec![], &["big.bin"])
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.files.len(), 1);
    assert_eq!((r.files[0].size, r.files[0].truncated), (big as u64, true));
    assert_eq!(
        r.files[0].decode().unwrap().len() as u64,
        MAX_FILES_OUT_BYTES
    );
    // More files than the count cap: the first ones, and a note.
    let code = format!(
        "for i in range({}):\n    open('f%04d.txt' % i, 'w').write(str(i))\nresult = 1",
        MAX_FILES_OUT + 10
    );
    let r = run(&engine, &code, with_open(), vec![], &["*.txt"])
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.files.len(), MAX_FILES_OUT);
    assert_eq!(r.files[0].path, "f0000.txt");
    assert!(r.stderr.contains("spr: collect: stopped"), "{}", r.stderr);
    // A request file larger than the policy lets a run write is refused before it.
    let mut small = with_open();
    small.sandbox.max_file_size_mb = 1;
    let err = run(
        &engine,
        "result = 1",
        small,
        vec![FileIn::bytes("x.bin", &vec![1u8; 2 << 20])],
        &[],
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("sandbox.max_file_size_mb (1 MiB)"),
        "{err}"
    );
    engine.shutdown().await;
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// A policy under which matplotlib imports today (`subprocess` not blocked), with Agg
/// forced by the code itself.
fn plotting() -> RunnerPolicy {
    let mut policy = with_open();
    policy.blocked_imports.retain(|m| m != "subprocess");
    policy.timeout_seconds = 60;
    policy.memory_limit_mb = 1024;
    policy
}

const PLOT: &str = "import matplotlib\n\
                    matplotlib.use('Agg')\n\
                    import matplotlib.pyplot as plt\n\
                    import numpy as np\n\
                    x = np.linspace(0, 6.28, 100)\n\
                    plt.plot(x, np.sin(x))\n\
                    fig = plt.figure(figsize=(3, 2))\n\
                    fig.gca().bar([1, 2], [3, 4])\n\
                    result = len(plt.get_fignums())";

#[tokio::test]
async fn open_figures_come_back_as_png_outputs() {
    let Some(venv) = datastack() else { return };
    let engine = engine_for(venv, SandboxMode::Auto);
    let r = run(&engine, PLOT, plotting(), vec![], &[]).await.unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.result, serde_json::json!(2));
    assert_eq!(r.outputs.len(), 2, "{}", r.stderr);
    assert!(r.outputs.iter().all(|o| o.mime_type == "image/png"));
    // Default figure 6.4 x 4.8 inches and 3 x 2, at 100 dpi.
    assert_eq!(png_size(&r.outputs[0].decode().unwrap()), (640, 480));
    assert_eq!(png_size(&r.outputs[1].decode().unwrap()), (300, 200));
    // Figures the code closed, or a run that never imported pyplot: none.
    let closed = format!("{PLOT}\nplt.close('all')");
    let r = run(&engine, &closed, plotting(), vec![], &[])
        .await
        .unwrap();
    assert!(r.ok && r.outputs.is_empty(), "{r:?}");
    // A figure that cannot render is a note; the report and the others survive.
    let hostile = format!(
        "{PLOT}\nclass Bad(matplotlib.artist.Artist):\n    def draw(self, renderer):\n        raise RuntimeError('boom')\nplt.figure(1).gca().add_artist(Bad())"
    );
    let r = run(&engine, &hostile, plotting(), vec![], &[])
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.outputs.len(), 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("spr: figures: figure 1 could not be rendered: RuntimeError: boom"),
        "{}",
        r.stderr
    );
    // A figure that never finishes drawing is stopped before the run's deadline.
    let endless = format!(
        "{PLOT}\nclass Slow(matplotlib.artist.Artist):\n    def draw(self, renderer):\n        while True:\n            pass\nplt.figure(1).gca().add_artist(Slow())"
    );
    let mut short = plotting();
    short.timeout_seconds = 8;
    let r = run(&engine, &endless, short, vec![], &[]).await.unwrap();
    assert!(r.ok, "{r:?}");
    assert!(!r.timed_out);
    assert!(
        r.stderr.contains("spr: figures: rendering took more than"),
        "{}",
        r.stderr
    );
    engine.shutdown().await;
}

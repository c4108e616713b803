//! The harness's own unit tests (python/test_spr_harness.py), run with a real Python.

use std::path::Path;
use std::process::Command;

/// The interpreter to test with: Debian's when there is one (quick to start), else
/// `python3` on PATH.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

#[test]
fn the_harness_unit_tests_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("python");
    let out = Command::new(python())
        .args(["-B", "-m", "unittest", "-v", "test_spr_harness"])
        .current_dir(&dir)
        .env_remove("PYTHONPATH")
        .output()
        .expect("python3 runs (the harness needs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "harness unit tests failed:\n{stderr}");
    assert!(stderr.contains("OK"), "{stderr}");
}

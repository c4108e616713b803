//! `from_file` and `resolve`: file errors, `config_path`, and the file winning on every run.

mod common;

use common::temp_dir;
use spr_policy::{PolicyError, RunnerPolicy};
use std::error::Error;

#[test]
fn from_file_sets_config_path() {
    let dir = temp_dir();
    let path = dir.join("p.toml");
    std::fs::write(&path, "[policy]\ntimeout_seconds = 3\n").unwrap();
    let p = RunnerPolicy::from_file(&path).unwrap();
    assert_eq!(p.timeout_seconds, 3);
    assert_eq!(p.config_path.as_deref(), Some(path.as_path()));
}

#[test]
fn a_missing_file_is_an_error_with_the_io_error_as_source() {
    let e = RunnerPolicy::from_file("/nonexistent/spr/p.toml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "/nonexistent/spr/p.toml: cannot read policy file: No such file or directory (os error 2)"
    );
    let source = e.source().expect("io error kept as source");
    let io = source.downcast_ref::<std::io::Error>().unwrap();
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    assert!(matches!(e, PolicyError::Read { .. }));
}

#[test]
fn errors_from_a_file_name_the_file() {
    let dir = temp_dir();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[policy]\nmode = \"allow\"\nmax_output_kb = -1\n").unwrap();
    let e = RunnerPolicy::from_file(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: line 3: max_output_kb: must be between 0 and 1048576, got -1",
            path.display()
        )
    );
}

#[test]
fn resolve_rereads_the_file_and_ignores_the_objects_fields() {
    let dir = temp_dir();
    let path = dir.join("p.toml");
    std::fs::write(&path, "timeout_seconds = 3\n").unwrap();
    let mut p = RunnerPolicy::from_file(&path).unwrap();
    p.timeout_seconds = 60;
    p.blocked_imports.clear();
    let resolved = p.resolve().unwrap();
    assert_eq!(resolved.timeout_seconds, 3);
    assert!(resolved.blocked_imports.iter().any(|m| m == "os"));
}

#[test]
fn resolve_sees_edits_made_to_the_file_after_loading() {
    let dir = temp_dir();
    let path = dir.join("p.toml");
    std::fs::write(&path, "timeout_seconds = 3\n").unwrap();
    let p = RunnerPolicy::from_file(&path).unwrap();
    std::fs::write(&path, "timeout_seconds = 4\n").unwrap();
    assert_eq!(p.resolve().unwrap().timeout_seconds, 4);
}

#[test]
fn resolve_fails_when_the_file_has_gone() {
    let dir = temp_dir();
    let path = dir.join("p.toml");
    std::fs::write(&path, "").unwrap();
    let p = RunnerPolicy::from_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(p.resolve(), Err(PolicyError::Read { .. })));
}

#[test]
fn resolve_without_a_file_validates_and_returns_a_clone() {
    let p = RunnerPolicy {
        timeout_seconds: 9,
        ..RunnerPolicy::default()
    };
    assert_eq!(p.resolve().unwrap(), p);
}

#[test]
fn resolve_without_a_file_refuses_an_invalid_policy() {
    let p = RunnerPolicy {
        timeout_seconds: 0,
        ..RunnerPolicy::default()
    };
    assert_eq!(
        p.resolve().unwrap_err().to_string(),
        "timeout_seconds: must be between 1 and 86400, got 0"
    );
}

#[test]
fn from_file_refuses_what_is_not_a_regular_file() {
    let dir = temp_dir();
    let cases = [
        ("/dev/zero".into(), "a character device"),
        (dir.join(""), "a directory"),
    ];
    for (path, kind) in cases {
        let e = RunnerPolicy::from_file(&path).unwrap_err();
        assert!(matches!(e, PolicyError::NotRegularFile { .. }), "{e:?}");
        assert_eq!(e.path(), Some(path.as_path()));
        assert_eq!(
            e.to_string(),
            format!(
                "{}: cannot read policy file: it is {kind}, not a regular file",
                path.display()
            )
        );
    }
}

#[test]
fn from_file_refuses_a_file_over_the_cap() {
    let dir = temp_dir();
    let path = dir.join("big.toml");
    let size = usize::try_from(spr_policy::MAX_POLICY_FILE_BYTES).unwrap() + 1;
    std::fs::write(&path, "#".repeat(size)).unwrap();
    let e = RunnerPolicy::from_file(&path).unwrap_err();
    assert!(matches!(e, PolicyError::TooLarge { .. }), "{e:?}");
}

/// `resolve` re-reads through the same capped, regular-files-only reader, so a file
/// replaced by a FIFO after loading is refused at once rather than blocking the run.
#[test]
fn resolve_refuses_a_file_replaced_by_a_fifo() {
    let dir = temp_dir();
    let path = dir.join("p.toml");
    std::fs::write(&path, "").unwrap();
    let p = RunnerPolicy::from_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let e = p.resolve().unwrap_err();
    assert!(
        matches!(
            e,
            PolicyError::NotRegularFile {
                kind: spr_policy::FileKind::Fifo,
                ..
            }
        ),
        "{e:?}"
    );
}

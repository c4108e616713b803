//! `spr run`'s files: `--file DEST=LOCALPATH` read into the request, and `--out-dir DIR`
//! where the returned files and figures are saved, never outside DIR.

use crate::error::CliError;
use spr_core::{Attachments, FileIn, RunnerResult};
use std::path::{Path, PathBuf};

/// The attachments `--file` and `--collect` ask for.
pub fn read(files: &[String], collect: &[String]) -> Result<Attachments, CliError> {
    let mut out = Vec::with_capacity(files.len());
    for spec in files {
        let Some((dest, local)) = spec.split_once('=') else {
            return Err(CliError::usage(format!(
                "--file {spec:?}: expected DEST=LOCALPATH (DEST relative to the run's directory)"
            )));
        };
        let bytes = crate::local_file::read(
            Path::new(local),
            crate::local_file::MAX_REQUEST_FILE_BYTES,
            &format!("--file {dest}: cannot read '{local}'"),
        )?;
        // Text goes as text (a third smaller on the wire); anything else as base64.
        out.push(match String::from_utf8(bytes) {
            Ok(text) => FileIn::text(dest, text),
            Err(e) => FileIn::bytes(dest, e.as_bytes()),
        });
    }
    Ok(Attachments {
        files: out,
        collect: collect.to_vec(),
    })
}

/// Make DIR (before the run, so that a bad one never waits for the run).
pub fn prepare(dir: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        CliError::usage(format!("--out-dir: cannot create '{}'", dir.display())).caused_by(e)
    })
}

/// Save the returned files under DIR at their paths, and each figure as
/// `output-N.png`; return what was written. A path that would leave DIR (a `..`, an
/// absolute path, a symlink already in DIR) is refused.
pub fn save(result: &RunnerResult, dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let mut written = Vec::new();
    for file in &result.files {
        let bytes = file.decode().ok_or_else(|| {
            CliError::infrastructure(format!("returned file '{}' is not base64", file.path))
        })?;
        written.push(write_inside(dir, &file.path, &bytes)?);
    }
    for (i, output) in result.outputs.iter().enumerate() {
        let bytes = output
            .decode()
            .ok_or_else(|| CliError::infrastructure(format!("output {} is not base64", i + 1)))?;
        let ext = match output.mime_type.as_str() {
            "image/png" => "png",
            _ => "bin",
        };
        written.push(write_inside(
            dir,
            &format!("output-{}.{ext}", i + 1),
            &bytes,
        )?);
    }
    Ok(written)
}

fn write_inside(dir: &Path, rel: &str, bytes: &[u8]) -> Result<PathBuf, CliError> {
    let refuse = |why: &str| {
        CliError::infrastructure(format!(
            "--out-dir: not writing '{}': {why}",
            spr_protocol::wire::loggable(rel)
        ))
    };
    let segments: Vec<&str> = rel.split('/').collect();
    if rel.starts_with('/')
        || segments
            .iter()
            .any(|s| s.is_empty() || *s == "." || *s == ".." || s.contains('\0'))
    {
        return Err(refuse("the path would leave the directory"));
    }
    let mut path = dir.to_path_buf();
    for (i, segment) in segments.iter().enumerate() {
        path.push(segment);
        let last = i + 1 == segments.len();
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(refuse("a symlink is in the way (it is not followed)"))
            }
            Ok(meta) if last && !meta.is_file() => return Err(refuse("something else is there")),
            Ok(meta) if !last && !meta.is_dir() => return Err(refuse("a file is in the way")),
            Ok(_) => {}
            Err(_) if !last => std::fs::create_dir(&path)
                .map_err(|e| refuse("cannot create its directory").caused_by(e))?,
            Err(_) => {}
        }
    }
    std::fs::write(&path, bytes).map_err(|e| refuse("cannot write it").caused_by(e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spr_core::{FileOut, Output};

    fn result(paths: &[&str]) -> RunnerResult {
        let mut r = RunnerResult::infrastructure_error("");
        r.files = paths
            .iter()
            .map(|p| FileOut {
                path: p.to_string(),
                content: "aGk=".into(),
                size: 2,
                truncated: false,
            })
            .collect();
        r
    }

    #[test]
    fn files_and_figures_land_inside_the_directory_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = result(&["a.txt", "out/deep/b.txt"]);
        r.outputs = vec![Output {
            mime_type: "image/png".into(),
            data: "iVBORw0KGgo=".into(),
        }];
        let written = save(&r, dir.path()).unwrap();
        assert_eq!(written.len(), 3);
        assert_eq!(
            std::fs::read(dir.path().join("out/deep/b.txt")).unwrap(),
            b"hi"
        );
        assert_eq!(
            &std::fs::read(dir.path().join("output-1.png")).unwrap()[..4],
            b"\x89PNG"
        );
        for bad in ["../x", "/etc/x", "a//b", "./a"] {
            let err = save(&result(&[bad]), dir.path()).unwrap_err();
            assert!(
                err.one_line().contains("would leave"),
                "{bad}: {}",
                err.one_line()
            );
        }
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("f"), dir.path().join("f")).unwrap();
        for bad in ["link/x", "f"] {
            let err = save(&result(&[bad]), dir.path()).unwrap_err();
            assert!(
                err.one_line().contains("symlink"),
                "{bad}: {}",
                err.one_line()
            );
        }
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn file_flags_are_read_as_text_or_bytes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.csv"), "a,b\n").unwrap();
        std::fs::write(dir.path().join("b.bin"), [0xff, 0]).unwrap();
        let specs = [
            format!("data/t.csv={}", dir.path().join("t.csv").display()),
            format!("b.bin={}", dir.path().join("b.bin").display()),
        ];
        let a = read(&specs, &["*.png".into()]).unwrap();
        assert_eq!(a.files[0], FileIn::text("data/t.csv", "a,b\n"));
        assert_eq!(a.files[1], FileIn::bytes("b.bin", &[0xff, 0]));
        assert!(read(&["nodest".into()], &[]).is_err());
        assert!(read(&["x=/does/not/exist".into()], &[]).is_err());
    }
}

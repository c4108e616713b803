//! Files named on the command line (code, input, `--file` uploads, `--token-file`): regular
//! files only, size-capped, never blocking, with errors naming the option and the path.

use crate::error::CliError;
use std::path::Path;

/// Code, input and each upload must fit the host's frame to the worker anyway.
pub const MAX_REQUEST_FILE_BYTES: u64 = spr_protocol::MAX_FRAME_LEN as u64;

/// The bytes of the regular file at `path`, or a usage error saying `message` (which names
/// the option and the path) caused by what was wrong.
pub fn read(path: &Path, cap: u64, message: &str) -> Result<Vec<u8>, CliError> {
    spr_policy::read_regular_file(path, cap).map_err(|e| CliError::usage(message).caused_by(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(path: &str) -> String {
        let err = read(Path::new(path), 8, "--input-file x: cannot read it").unwrap_err();
        err.chain().join(": ")
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_without_reading_them() {
        assert!(
            message("/dev/zero").contains("character device"),
            "{}",
            message("/dev/zero")
        );
        assert!(message("/").contains("a directory"));
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        // Opening a FIFO nobody writes to would block; it is refused before.
        assert!(message(fifo.to_str().unwrap()).contains("a FIFO"));
    }

    #[test]
    fn a_file_over_the_cap_is_refused_naming_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, b"0123456789").unwrap();
        let m = message(big.to_str().unwrap());
        assert!(
            m.contains("--input-file x: cannot read it") && m.contains("8 bytes"),
            "{m}"
        );
        std::fs::write(&big, b"01234567").unwrap();
        assert_eq!(read(&big, 8, "x").unwrap(), b"01234567");
    }
}

//! Reading a policy file: regular files only, at most [`MAX_POLICY_FILE_BYTES`], never blocking.
//!
//! A path can name anything: `/dev/zero` never ends, a FIFO blocks `open` until someone writes,
//! `/dev/tty` would become a controlling terminal, and opening some devices has side effects.
//! Every policy file load goes through [`read_policy_file`], so none of these can exhaust
//! memory or hang the caller (a `spr serve` input loop, say).

use crate::PolicyError;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

/// The largest policy file accepted, in bytes (1 MiB). Real policies are a few hundred bytes;
/// the cap only bounds what a wrong path can make a process read.
pub const MAX_POLICY_FILE_BYTES: u64 = 1 << 20;

/// What a path that is not a regular file turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    Directory,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    /// Anything else the platform reports (a symlink cannot occur: `open` follows them).
    Other,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a FIFO",
            FileKind::Socket => "a socket",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Other => "a special file",
        })
    }
}

/// Flags added to the `open` of a policy file. `O_NONBLOCK` makes opening a FIFO return at
/// once instead of waiting for a writer (and makes reads of odd files fail instead of wait);
/// `O_NOCTTY` keeps a terminal from becoming our controlling terminal. They are spelled here
/// because spr-policy may not depend on libc; a unit test checks them against libc.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod flags {
    #[cfg(any(
        target_arch = "mips",
        target_arch = "mips32r6",
        target_arch = "mips64",
        target_arch = "mips64r6"
    ))]
    pub const O_NONBLOCK: i32 = 0o200;
    #[cfg(any(
        target_arch = "mips",
        target_arch = "mips32r6",
        target_arch = "mips64",
        target_arch = "mips64r6"
    ))]
    pub const O_NOCTTY: i32 = 0o4000;

    #[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
    pub const O_NONBLOCK: i32 = 0x4000;
    #[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
    pub const O_NOCTTY: i32 = 0x8000;

    // The generic values: x86, x86_64, arm, aarch64, powerpc, riscv, s390x, loongarch...
    #[cfg(not(any(
        target_arch = "mips",
        target_arch = "mips32r6",
        target_arch = "mips64",
        target_arch = "mips64r6",
        target_arch = "sparc",
        target_arch = "sparc64"
    )))]
    pub const O_NONBLOCK: i32 = 0o4000;
    #[cfg(not(any(
        target_arch = "mips",
        target_arch = "mips32r6",
        target_arch = "mips64",
        target_arch = "mips64r6",
        target_arch = "sparc",
        target_arch = "sparc64"
    )))]
    pub const O_NOCTTY: i32 = 0o400;

    pub const OPEN_FLAGS: i32 = O_NONBLOCK | O_NOCTTY;
}

/// Why a local file could not be read by [`read_regular_file`]; the caller names the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalFileError {
    /// Missing, unreadable, or failed while read.
    #[error("{0}")]
    Io(#[source] io::Error),
    /// A directory, FIFO, socket or device: never opened for reading.
    #[error("it is {0}, not a regular file")]
    NotRegularFile(FileKind),
    /// More than the caller's cap.
    #[error("larger than the limit of {max_bytes} bytes")]
    TooLarge { max_bytes: u64 },
}

/// Reads the regular file at `path`, at most `cap` bytes, without ever blocking on it: what a
/// path names is looked at before it is opened (opening a device can have effects of its own:
/// a watchdog arms, a tape rewinds), opened with `O_NONBLOCK | O_NOCTTY`, and looked at again
/// (the path may have been swapped in between). Used for every file a caller names (policy
/// files here; code, input, token and upload files in the CLI).
pub fn read_regular_file(path: &Path, cap: u64) -> Result<Vec<u8>, LocalFileError> {
    check_kind(&std::fs::metadata(path).map_err(LocalFileError::Io)?)?;
    let file = open_nonblocking(path).map_err(LocalFileError::Io)?;
    let metadata = file.metadata().map_err(LocalFileError::Io)?;
    check_kind(&metadata)?;
    if metadata.len() > cap {
        return Err(LocalFileError::TooLarge { max_bytes: cap });
    }
    read_capped(file, cap)
}

/// At most `cap` bytes of `file`: it reads `cap + 1` at most, so a file that grows while it
/// is read, or whose size the metadata misreports (`/proc`, `/sys`), cannot make us hold more.
fn read_capped(file: File, cap: u64) -> Result<Vec<u8>, LocalFileError> {
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(LocalFileError::Io)?;
    if bytes.len() as u64 > cap {
        return Err(LocalFileError::TooLarge { max_bytes: cap });
    }
    Ok(bytes)
}

/// Reads the policy file at `path` as UTF-8 text.
///
/// Refuses, with [`PolicyError::NotRegularFile`], anything but a regular file (after following
/// symlinks), and with [`PolicyError::TooLarge`] one over [`MAX_POLICY_FILE_BYTES`]; see
/// [`read_regular_file`].
pub fn read_policy_file(path: &Path) -> Result<String, PolicyError> {
    let bytes = read_regular_file(path, MAX_POLICY_FILE_BYTES).map_err(|e| match e {
        LocalFileError::Io(source) => PolicyError::Read {
            path: path.to_path_buf(),
            source,
        },
        LocalFileError::NotRegularFile(kind) => PolicyError::NotRegularFile {
            path: path.to_path_buf(),
            kind,
        },
        LocalFileError::TooLarge { max_bytes } => PolicyError::TooLarge {
            path: path.to_path_buf(),
            max_bytes,
        },
    })?;
    // The same error `std::fs::read_to_string` gives, with the position as its cause.
    String::from_utf8(bytes).map_err(|e| PolicyError::Read {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()),
    })
}

fn open_nonblocking(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(flags::OPEN_FLAGS);
    }
    options.open(path)
}

fn check_kind(metadata: &std::fs::Metadata) -> Result<(), LocalFileError> {
    let file_type = metadata.file_type();
    if file_type.is_file() {
        return Ok(());
    }
    Err(LocalFileError::NotRegularFile(if file_type.is_dir() {
        FileKind::Directory
    } else {
        unix_kind(&file_type)
    }))
}

#[cfg(unix)]
fn unix_kind(file_type: &std::fs::FileType) -> FileKind {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_fifo() {
        FileKind::Fifo
    } else if file_type.is_socket() {
        FileKind::Socket
    } else if file_type.is_char_device() {
        FileKind::CharDevice
    } else if file_type.is_block_device() {
        FileKind::BlockDevice
    } else {
        FileKind::Other
    }
}

#[cfg(not(unix))]
fn unix_kind(_: &std::fs::FileType) -> FileKind {
    FileKind::Other
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    /// A fresh directory, removed on drop (unit tests run in parallel).
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let dir =
                std::env::temp_dir().join(format!("spr-policy-file-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn a_regular_file_is_read() {
        let dir = Dir::new("regular");
        let path = dir.0.join("p.toml");
        std::fs::write(&path, "timeout_seconds = 3\n").unwrap();
        assert_eq!(read_policy_file(&path).unwrap(), "timeout_seconds = 3\n");
    }

    #[test]
    fn a_file_of_exactly_the_cap_is_read_and_one_byte_more_is_refused() {
        let dir = Dir::new("cap");
        let path = dir.0.join("p.toml");
        let cap = MAX_POLICY_FILE_BYTES as usize;
        std::fs::write(&path, "#".repeat(cap)).unwrap();
        assert_eq!(read_policy_file(&path).unwrap().len(), cap);
        std::fs::write(&path, "#".repeat(cap + 1)).unwrap();
        let err = read_policy_file(&path).unwrap_err();
        assert!(
            matches!(err, PolicyError::TooLarge { max_bytes, .. } if max_bytes == MAX_POLICY_FILE_BYTES),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{}: cannot read policy file: larger than the limit of 1048576 bytes",
                path.display()
            )
        );
    }

    #[test]
    fn the_cap_holds_whatever_the_metadata_says() {
        // /dev/zero through the inner reader: the open and kind checks are skipped, so
        // only the cap stands between it and unbounded memory.
        let file = File::open("/dev/zero").unwrap();
        let err = read_capped(file, 4096).unwrap_err();
        assert!(
            matches!(err, LocalFileError::TooLarge { max_bytes: 4096 }),
            "{err:?}"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = Dir::new("fifo");
        let path = dir.0.join("fifo");
        mkfifo(&path);
        let started = Instant::now();
        let err = read_policy_file(&path).unwrap_err();
        assert!(
            matches!(
                err,
                PolicyError::NotRegularFile {
                    kind: FileKind::Fifo,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{}: cannot read policy file: it is a FIFO, not a regular file",
                path.display()
            )
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// The second line of defence, for a path swapped to a FIFO after it was looked at:
    /// opening it does not wait for a writer, and the opened descriptor is refused.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn opening_a_fifo_does_not_block_and_the_descriptor_is_refused() {
        let dir = Dir::new("fifo-open");
        let path = dir.0.join("fifo");
        mkfifo(&path);
        let file = open_nonblocking(&path).unwrap();
        let err = check_kind(&file.metadata().unwrap()).unwrap_err();
        assert!(
            matches!(err, LocalFileError::NotRegularFile(FileKind::Fifo)),
            "{err:?}"
        );
    }

    #[test]
    fn a_directory_and_devices_are_refused() {
        let dir = Dir::new("dir");
        let err = read_policy_file(&dir.0).unwrap_err();
        assert!(
            matches!(
                err,
                PolicyError::NotRegularFile {
                    kind: FileKind::Directory,
                    ..
                }
            ),
            "{err:?}"
        );
        for device in ["/dev/zero", "/dev/null"] {
            let err = read_policy_file(Path::new(device)).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{device}: cannot read policy file: it is a character device, not a regular file")
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_to_a_regular_file_is_followed() {
        let dir = Dir::new("symlink");
        let target = dir.0.join("p.toml");
        std::fs::write(&target, "mode = \"allow\"\n").unwrap();
        let link = dir.0.join("link.toml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(read_policy_file(&link).unwrap(), "mode = \"allow\"\n");
    }

    #[test]
    fn a_missing_file_and_bad_utf8_are_read_errors_with_an_io_source() {
        let dir = Dir::new("read-errors");
        let missing = dir.0.join("missing.toml");
        match read_policy_file(&missing).unwrap_err() {
            PolicyError::Read { source, .. } => assert_eq!(source.kind(), io::ErrorKind::NotFound),
            other => panic!("{other:?}"),
        }
        let latin1 = dir.0.join("latin1.toml");
        std::fs::write(&latin1, b"# caf\xe9\n").unwrap();
        match read_policy_file(&latin1).unwrap_err() {
            PolicyError::Read { source, .. } => {
                assert_eq!(source.kind(), io::ErrorKind::InvalidData)
            }
            other => panic!("{other:?}"),
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn the_open_flags_are_the_platforms() {
        assert_eq!(flags::O_NONBLOCK, libc::O_NONBLOCK);
        assert_eq!(flags::O_NOCTTY, libc::O_NOCTTY);
    }
}

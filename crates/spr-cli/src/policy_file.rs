//! A `config_path` named by a `spr serve` request: a file on the server's host, chosen by a client.
//!
//! The client may be less trusted than the host, so reading the file must neither stall the
//! server nor tell the client anything about the host's files. The read itself is capped and
//! refuses what is not a regular file (`spr_policy::read_policy_file`); this module runs it off
//! the async threads, bounds how long it may take, and hides why it failed.

use spr_core::{PolicyError, RunnerPolicy};
use std::time::Duration;
use tokio::task::JoinError;

/// How long reading a request's `config_path` may take. A regular file of at most
/// `MAX_POLICY_FILE_BYTES` is read in microseconds; the bound is for a file on a hung network
/// or FUSE filesystem, whose read then goes on in an abandoned blocking thread while the
/// request is answered and its worker slot freed.
pub const CONFIG_PATH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request's `config_path` could not be used.
///
/// Every variant displays the same text, naming only the key: whether the file exists, what
/// it is, its size and where it fails to parse stay on the host. The cause is kept as the
/// `source` for the server's own code; never render the chain (`CliError::one_line`) into a
/// response.
#[derive(Debug, thiserror::Error)]
pub enum ConfigPathError {
    /// Missing, not a regular file, too large, unreadable, not TOML, or not a valid policy.
    #[error("config_path cannot be used")]
    Unusable(#[source] PolicyError),
    /// The read did not finish within [`CONFIG_PATH_TIMEOUT`].
    #[error("config_path cannot be used")]
    TimedOut,
    /// The blocking task that read the file panicked or was cancelled.
    #[error("config_path cannot be used")]
    Task(#[source] JoinError),
}

/// The policy a request with `config_path` runs under: the file, read now on the blocking
/// pool, validated, and with `config_path` cleared so that the run does not read it again
/// (on an async thread, and possibly changed).
pub async fn resolve_requested(policy: RunnerPolicy) -> Result<RunnerPolicy, ConfigPathError> {
    blocking_within(CONFIG_PATH_TIMEOUT, move || policy.resolve()).await
}

/// Run `resolve` on the blocking pool for at most `limit`.
async fn blocking_within(
    limit: Duration,
    resolve: impl FnOnce() -> Result<RunnerPolicy, PolicyError> + Send + 'static,
) -> Result<RunnerPolicy, ConfigPathError> {
    let read = tokio::task::spawn_blocking(resolve);
    let mut resolved = tokio::time::timeout(limit, read)
        .await
        .map_err(|_| ConfigPathError::TimedOut)?
        .map_err(ConfigPathError::Task)?
        .map_err(ConfigPathError::Unusable)?;
    resolved.config_path = None;
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    fn requesting(path: &std::path::Path) -> RunnerPolicy {
        RunnerPolicy {
            timeout_seconds: 60,
            config_path: Some(path.to_path_buf()),
            ..RunnerPolicy::default()
        }
    }

    #[tokio::test]
    async fn the_file_wins_and_config_path_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "timeout_seconds = 3\n").unwrap();
        let policy = resolve_requested(requesting(&path)).await.unwrap();
        assert_eq!(policy.timeout_seconds, 3);
        assert_eq!(policy.config_path, None);
    }

    #[tokio::test]
    async fn every_failure_reads_the_same_and_keeps_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[policy\n").unwrap();
        for path in [
            dir.path().join("missing.toml"),
            bad,
            dir.path().to_path_buf(),
            "/dev/zero".into(),
        ] {
            let err = resolve_requested(requesting(&path)).await.unwrap_err();
            assert_eq!(err.to_string(), "config_path cannot be used");
            let cause = err.source().expect("the cause is kept").to_string();
            assert!(cause.contains(&path.display().to_string()), "{cause}");
        }
    }

    #[tokio::test]
    async fn a_read_that_does_not_finish_in_time_is_abandoned() {
        // A sleeping read stands in for a file on a hung filesystem.
        let started = std::time::Instant::now();
        let err = blocking_within(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_millis(600));
            Ok(RunnerPolicy::default())
        })
        .await
        .unwrap_err();
        assert!(matches!(err, ConfigPathError::TimedOut), "{err:?}");
        assert_eq!(err.to_string(), "config_path cannot be used");
        assert!(started.elapsed() < Duration::from_millis(500));
    }
}

//! Validation and defaults of `DockerEngineConfig`, and the pure helpers the original
//! exposed (`default_pool_settings`, `should_rotate`, `env_hash`).

use crate::{DockerEngineConfig, DockerEngineError};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

pub(crate) const DEFAULT_MAX_RUNS: u32 = 25;
pub(crate) const DEFAULT_TTL_SECONDS: u64 = 600;
pub(crate) const DEFAULT_CPUS: f64 = 1.0;
/// A container lives at most a year, and a run waits at most a day for one (larger
/// values overflow the clock's arithmetic long before they mean anything).
const MAX_TTL_SECONDS: u64 = 365 * 86_400;
const MAX_ACQUIRE_TIMEOUT_SECONDS: u64 = 86_400;

/// Pool settings after defaults were applied (the original's `DockerPoolSettings`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolSettings {
    pub pool_size: usize,
    pub max_runs: u32,
    pub ttl: Duration,
    /// `None`: derived from each run's timeout (`max(1, timeout) + 2` seconds).
    pub acquire_timeout: Option<Duration>,
}

impl PoolSettings {
    /// The settings of a configuration [`validate`] accepted: `None` is the default
    /// (`Some(0)` was refused there).
    pub(crate) fn from_config(config: &DockerEngineConfig) -> Self {
        PoolSettings {
            pool_size: config
                .pool_size
                .unwrap_or_else(spr_protocol::default_pool_size),
            max_runs: config.max_runs.unwrap_or(DEFAULT_MAX_RUNS),
            ttl: Duration::from_secs(config.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS)),
            acquire_timeout: config.acquire_timeout_seconds.map(Duration::from_secs),
        }
    }

    /// How long a run waits for a container (the original's `max(1, timeout) + 2`).
    pub fn acquire_timeout_for(&self, timeout_seconds: u64) -> Duration {
        self.acquire_timeout
            .unwrap_or_else(|| Duration::from_secs(timeout_seconds.max(1) + 2))
    }
}

/// True when a container has served its share: `max_runs` runs, or `ttl` since it was
/// created (not since it was last used, as in the original).
pub fn should_rotate(created: Instant, runs: u32, settings: &PoolSettings, now: Instant) -> bool {
    runs >= settings.max_runs || now.saturating_duration_since(created) >= settings.ttl
}

/// The original's `env_hash`: the first 16 hex digits of
/// `sha256("{python_version}|{namespace}|{packages joined by |}")`.
pub fn env_hash(python_version: &str, packages: &[String], namespace: Option<&str>) -> String {
    let text = format!(
        "{python_version}|{}|{}",
        namespace.unwrap_or(""),
        packages.join("|")
    );
    sha256_hex(text.as_bytes())[..16].to_string()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Validate pinned `name==version` specs (strip, drop empties, dedupe, sort) with
/// spr-policy's validator, so the engine and `spr policy` agree on what is pinned.
pub fn validate_pinned_packages(specs: &[String]) -> Result<Vec<String>, String> {
    spr_policy::validate_pinned_packages(specs).map_err(|e| e.to_string())
}

/// Docker's rule for names (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`), leaving room for the suffix.
fn check_container_prefix(prefix: &str) -> Result<(), DockerEngineError> {
    let mut chars = prefix.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if first_ok && rest_ok && prefix.len() <= 32 {
        return Ok(());
    }
    Err(DockerEngineError::Invalid(format!(
        "container_prefix must be 1 to 32 letters, digits, '_', '.' or '-', beginning with a letter or digit, got {prefix:?}"
    )))
}

/// Check the options for conflicts, in the original's order. No IO.
pub(crate) fn validate(config: &DockerEngineConfig) -> Result<Vec<String>, DockerEngineError> {
    let set = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.trim().is_empty());
    if set(&config.docker_context) && (set(&config.docker_host) || set(&config.ssh_host)) {
        return Err(DockerEngineError::ContextConflict);
    }
    if !set(&config.ssh_host) {
        if set(&config.ssh_user) {
            return Err(DockerEngineError::RequiresSshHost("ssh_user"));
        }
        if config.ssh_port.is_some() {
            return Err(DockerEngineError::RequiresSshHost("ssh_port"));
        }
        if config.ssh_key_path.is_some() {
            return Err(DockerEngineError::RequiresSshHost("ssh_key_path"));
        }
    }
    // The original let ssh_host silently override docker_host; two endpoints for one
    // engine is a mistake worth refusing rather than guessing which one was meant.
    if set(&config.docker_host) && set(&config.ssh_host) {
        return Err(DockerEngineError::Invalid(
            "Use either docker_host or ssh_host settings, not both (ssh_host would replace docker_host)"
                .into(),
        ));
    }
    // `None` is the default; 0 is refused rather than read as the default (the
    // original's `value or default`), as in the local engine's configuration.
    let zero = [
        (
            config.pool_size == Some(0),
            "pool_size",
            "min(cores, 4)".to_string(),
        ),
        (
            config.max_sessions == Some(0),
            "max_sessions",
            spr_protocol::DEFAULT_MAX_SESSIONS.to_string(),
        ),
        (
            config.max_runs == Some(0),
            "max_runs",
            DEFAULT_MAX_RUNS.to_string(),
        ),
        (
            config.ttl_seconds == Some(0),
            "ttl_seconds",
            DEFAULT_TTL_SECONDS.to_string(),
        ),
        (
            config.acquire_timeout_seconds == Some(0),
            "acquire_timeout_seconds",
            "the run's timeout + 2".to_string(),
        ),
    ];
    if let Some((_, field, default)) = zero.iter().find(|(is_zero, _, _)| *is_zero) {
        return Err(DockerEngineError::Invalid(format!(
            "{field} must be at least 1 (omit it for the default, {default})"
        )));
    }
    let limits: [(&str, Option<u64>, u64); 4] = [
        (
            "pool_size",
            config.pool_size.map(|n| n as u64),
            spr_protocol::MAX_POOL_SIZE as u64,
        ),
        (
            "max_sessions",
            config.max_sessions.map(|n| n as u64),
            spr_protocol::MAX_SESSIONS as u64,
        ),
        ("ttl_seconds", config.ttl_seconds, MAX_TTL_SECONDS),
        (
            "acquire_timeout_seconds",
            config.acquire_timeout_seconds,
            MAX_ACQUIRE_TIMEOUT_SECONDS,
        ),
    ];
    for (field, value, max) in limits {
        if let Some(got) = value.filter(|n| *n > max) {
            return Err(DockerEngineError::Invalid(format!(
                "{field} must be at most {max}, got {got}"
            )));
        }
    }
    if let Some(prefix) = &config.container_prefix {
        check_container_prefix(prefix)?;
    }
    for (field, value) in [
        ("ssh_host", &config.ssh_host),
        ("ssh_user", &config.ssh_user),
    ] {
        // ssh would read a leading '-' as an option (`-oProxyCommand=...`).
        if let Some(v) = value.as_deref().filter(|v| {
            v.starts_with('-') || v.chars().any(|c| c.is_whitespace() || c.is_control())
        }) {
            return Err(DockerEngineError::Invalid(format!(
                "{field} must not begin with '-' or hold spaces or control characters, got {v:?}"
            )));
        }
    }
    if config.ssh_port == Some(0) {
        return Err(DockerEngineError::Invalid(
            "ssh_port must be between 1 and 65535".into(),
        ));
    }
    if let Some(cpus) = config.cpus {
        if !cpus.is_finite() || cpus <= 0.0 || cpus > 1024.0 {
            return Err(DockerEngineError::Invalid(format!(
                "cpus must be a positive number of cores, got {cpus}"
            )));
        }
    }
    if let Some(runtime) = &config.runtime {
        if runtime.trim().is_empty() || runtime.chars().any(char::is_whitespace) {
            return Err(DockerEngineError::Invalid(format!(
                "runtime must be the name of an OCI runtime known to the daemon, got '{runtime}'"
            )));
        }
    }
    if let Some(image) = &config.image {
        if image.trim().is_empty() {
            return Err(DockerEngineError::Invalid("image must not be empty".into()));
        }
    }
    spr_protocol::validate_preload(&config.preload)
        .map_err(|e| DockerEngineError::Invalid(e.to_string()))?;
    spr_protocol::validate_warmup(config.warmup.as_deref())
        .map_err(|e| DockerEngineError::Invalid(e.to_string()))?;
    validate_pinned_packages(&config.packages).map_err(DockerEngineError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn cfg() -> DockerEngineConfig {
        DockerEngineConfig::default()
    }

    #[test]
    fn preload_names_are_checked() {
        let with = |names: &[&str]| DockerEngineConfig {
            preload: names.iter().map(|s| s.to_string()).collect(),
            ..cfg()
        };
        assert!(validate(&with(&["pandas", "matplotlib.pyplot"])).is_ok());
        let err = validate(&with(&["os; import sys"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "preload: 'os; import sys' is not a module name (dotted Python identifiers, e.g. 'pandas' or 'matplotlib.pyplot')"
        );
        let err = validate(&with(&["numpy", "numpy"])).unwrap_err();
        assert_eq!(err.to_string(), "preload: 'numpy' is listed twice");
    }

    #[test]
    fn env_hash_matches_the_originals_test_vectors() {
        assert_eq!(env_hash("3.11", &[], None), "e4c854fa572ecf94");
        assert_eq!(
            env_hash("3.11", &["packaging==24.1".into()], Some("itest")),
            "97062ee1ea27327e"
        );
    }

    #[test]
    fn pinned_packages_follow_the_original() {
        for bad in [
            "pandas",
            "pandas>=2",
            "pandas == 2.2.2",
            "pandas===2",
            "pandas==2; python_version>'3'",
        ] {
            let err = validate_pinned_packages(&[bad.into()]).unwrap_err();
            assert!(err.ends_with(&format!("Invalid package: {bad}")), "{err}");
        }
        assert_eq!(
            validate_pinned_packages(&["pandas==2.2.2 ".into()]).unwrap(),
            vec!["pandas==2.2.2"]
        );
        let got =
            validate_pinned_packages(&["b==1".into(), " a==2".into(), "".into(), "a==2".into()])
                .unwrap();
        assert_eq!(got, vec!["a==2", "b==1"]);
    }

    #[test]
    fn connection_conflicts_are_refused_in_the_originals_order() {
        let mut c = cfg();
        c.docker_context = Some("remote".into());
        c.docker_host = Some("tcp://127.0.0.1:2375".into());
        c.ssh_user = Some("alice".into());
        assert!(matches!(
            validate(&c),
            Err(DockerEngineError::ContextConflict)
        ));
        assert_eq!(
            validate(&c).unwrap_err().to_string(),
            "Use either docker_context or docker_host/ssh settings, not both"
        );

        let mut c = cfg();
        c.ssh_user = Some("alice".into());
        assert_eq!(
            validate(&c).unwrap_err().to_string(),
            "ssh_user requires ssh_host"
        );
        let mut c = cfg();
        c.ssh_port = Some(2222);
        assert_eq!(
            validate(&c).unwrap_err().to_string(),
            "ssh_port requires ssh_host"
        );
        let mut c = cfg();
        c.ssh_key_path = Some(PathBuf::from("/k"));
        assert_eq!(
            validate(&c).unwrap_err().to_string(),
            "ssh_key_path requires ssh_host"
        );

        let mut c = cfg();
        c.docker_host = Some("unix:///var/run/docker.sock".into());
        c.ssh_host = Some("example.com".into());
        assert!(validate(&c).unwrap_err().to_string().contains("not both"));

        let mut c = cfg();
        c.ssh_host = Some("example.com".into());
        c.ssh_user = Some("alice".into());
        c.ssh_port = Some(2222);
        c.ssh_key_path = Some(PathBuf::from("/k"));
        assert!(validate(&c).is_ok());
    }

    #[test]
    fn numeric_options_are_checked() {
        let mut c = cfg();
        c.cpus = Some(0.0);
        assert!(validate(&c).is_err());
        c.cpus = Some(f64::NAN);
        assert!(validate(&c).is_err());
        c.cpus = Some(0.5);
        assert!(validate(&c).is_ok());
        c.runtime = Some("run sc".into());
        assert!(validate(&c).is_err());
        let mut c = cfg();
        c.packages = vec!["numpy".into()];
        assert!(validate(&c)
            .unwrap_err()
            .to_string()
            .contains("Invalid package: numpy"));
    }

    #[test]
    fn zero_is_refused_and_none_is_the_default() {
        for (field, set) in [
            (
                "pool_size",
                (|c| c.pool_size = Some(0)) as fn(&mut DockerEngineConfig),
            ),
            ("max_sessions", |c| c.max_sessions = Some(0)),
            ("max_runs", |c| c.max_runs = Some(0)),
            ("ttl_seconds", |c| c.ttl_seconds = Some(0)),
            ("acquire_timeout_seconds", |c| {
                c.acquire_timeout_seconds = Some(0)
            }),
        ] {
            let mut c = cfg();
            set(&mut c);
            let err = validate(&c).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "{field} must be at least 1 (omit it for the default, "
                )),
                "{err}"
            );
        }
        assert_eq!(
            validate(&DockerEngineConfig {
                pool_size: Some(0),
                ..cfg()
            })
            .unwrap_err()
            .to_string(),
            "pool_size must be at least 1 (omit it for the default, min(cores, 4))"
        );

        let s = PoolSettings::from_config(&cfg());
        assert_eq!(s.pool_size, spr_protocol::default_pool_size());
        assert_eq!(s.max_runs, 25);
        assert_eq!(s.ttl, Duration::from_secs(600));
        assert_eq!(s.acquire_timeout_for(0), Duration::from_secs(3));
        assert_eq!(s.acquire_timeout_for(5), Duration::from_secs(7));
        let c = DockerEngineConfig {
            acquire_timeout_seconds: Some(9),
            ..cfg()
        };
        assert_eq!(
            PoolSettings::from_config(&c).acquire_timeout_for(5),
            Duration::from_secs(9)
        );
    }

    #[test]
    fn rotation_counts_runs_and_age_from_creation() {
        let s = PoolSettings {
            pool_size: 1,
            max_runs: 3,
            ttl: Duration::from_secs(10),
            acquire_timeout: None,
        };
        let t0 = Instant::now();
        assert!(!should_rotate(t0, 2, &s, t0));
        assert!(should_rotate(t0, 3, &s, t0));
        assert!(!should_rotate(t0, 0, &s, t0 + Duration::from_secs(9)));
        assert!(should_rotate(t0, 0, &s, t0 + Duration::from_secs(10)));
    }

    #[test]
    fn container_prefixes_follow_dockers_rule_for_names() {
        for good in ["spr", "safe-py-runner", "a", "x_1.2"] {
            assert!(check_container_prefix(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "a b", "a/b", "é", &"x".repeat(33)] {
            let err = check_container_prefix(bad).unwrap_err().to_string();
            assert!(err.starts_with("container_prefix must be"), "{bad}: {err}");
        }
    }
}

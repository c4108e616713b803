//! Where the Docker daemon is: `docker_host`, a Docker context, or SSH, and the live
//! connection to it (including the SSH tunnel the engine owns).
//!
//! SSH is a tunnel run with the system `ssh` client (`-L local.sock:/var/run/docker.sock`)
//! rather than bollard's `ssh` feature, so that `ssh_port` and `ssh_key_path` are plain
//! `ssh` flags that verifiably take effect (the original's were silently ignored), and
//! host-key checking stays whatever the user's ssh configuration says.

use crate::config::sha256_hex;
use crate::DockerEngineConfig;
use bollard::Docker;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub(crate) const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// Seconds bollard waits for one API request.
const REQUEST_TIMEOUT_SECONDS: u64 = 120;
const TUNNEL_START_TIMEOUT: Duration = Duration::from_secs(15);

/// A resolved daemon address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port` of a plain-TCP daemon.
    Tcp(String),
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
        key: Option<PathBuf>,
        /// The daemon's socket on the remote machine.
        remote_socket: String,
    },
}

impl Endpoint {
    /// A canonical name, used in pool keys, owner labels and messages.
    pub fn display(&self) -> String {
        match self {
            Endpoint::Unix(p) => format!("unix://{}", p.display()),
            Endpoint::Tcp(a) => format!("tcp://{a}"),
            Endpoint::Ssh {
                user, host, port, ..
            } => {
                let user = user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                format!("ssh://{user}{host}{port}")
            }
        }
    }

    /// Parse a `DOCKER_HOST`-style address.
    pub fn parse(host: &str) -> Result<Endpoint, String> {
        let host = host.trim();
        if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(format!("'{host}' has no socket path"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
        {
            let addr = addr.trim_end_matches('/');
            if addr.is_empty() {
                return Err(format!("'{host}' has no address"));
            }
            // 2375 is the daemon's plain-TCP port by convention.
            let addr = if addr
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                addr.to_string()
            } else {
                format!("{addr}:2375")
            };
            return Ok(Endpoint::Tcp(addr));
        }
        if host.starts_with("https://") {
            return Err(format!(
                "'{host}': TLS daemons are not supported by this build; reach the daemon over ssh:// or a unix socket"
            ));
        }
        if let Some(rest) = host.strip_prefix("ssh://") {
            let (authority, path) = match rest.split_once('/') {
                Some((a, p)) => (a, Some(format!("/{p}"))),
                None => (rest, None),
            };
            let (user, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u.to_string()), h),
                None => (None, authority),
            };
            let (hostname, port) = match hostport.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.starts_with('[') => (
                    h.trim_matches(['[', ']']).to_string(),
                    Some(
                        p.parse::<u16>()
                            .map_err(|_| format!("'{host}' has an invalid port '{p}'"))?,
                    ),
                ),
                _ => (hostport.to_string(), None),
            };
            if hostname.is_empty() {
                return Err(format!("'{host}' has no host name"));
            }
            return Ok(Endpoint::Ssh {
                user,
                host: hostname,
                port,
                key: None,
                remote_socket: path
                    .filter(|p| p.len() > 1)
                    .unwrap_or_else(|| DEFAULT_SOCKET.to_string()),
            });
        }
        if host.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(host)));
        }
        Err(format!(
            "unsupported Docker host '{host}': use unix:///path, tcp://host:port or ssh://[user@]host[:port]"
        ))
    }
}

/// Resolve the engine's options to one endpoint. Reads the Docker context store when
/// `docker_context` is set (or `DOCKER_CONTEXT` is, with nothing else configured).
pub(crate) fn resolve(config: &DockerEngineConfig) -> Result<Endpoint, String> {
    if let Some(host) = config.ssh_host.as_deref().filter(|s| !s.trim().is_empty()) {
        let mut ep = Endpoint::parse(&format!("ssh://{}", host.trim()))?;
        if let Endpoint::Ssh {
            user, port, key, ..
        } = &mut ep
        {
            if config.ssh_user.is_some() {
                user.clone_from(&config.ssh_user);
            }
            if config.ssh_port.is_some() {
                *port = config.ssh_port;
            }
            key.clone_from(&config.ssh_key_path);
        }
        return Ok(ep);
    }
    if let Some(host) = config
        .docker_host
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        return Endpoint::parse(host);
    }
    let context = config
        .docker_context
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            std::env::var("DOCKER_HOST")
                .is_err()
                .then(|| std::env::var("DOCKER_CONTEXT").ok())
                .flatten()
        });
    if let Some(name) = context {
        return context_endpoint(&docker_config_dir(), name.trim());
    }
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.trim().is_empty() => Endpoint::parse(&h),
        _ => Ok(Endpoint::Unix(PathBuf::from(DEFAULT_SOCKET))),
    }
}

/// `$DOCKER_CONFIG`, else `~/.docker`.
pub(crate) fn docker_config_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker")
}

/// The endpoint of a Docker context, read from the CLI's context store:
/// `<config>/contexts/meta/<sha256(name)>/meta.json`, key `Endpoints.docker.Host`.
pub fn context_endpoint(config_dir: &Path, name: &str) -> Result<Endpoint, String> {
    if name == "default" {
        return match std::env::var("DOCKER_HOST") {
            Ok(h) if !h.trim().is_empty() => Endpoint::parse(&h),
            _ => Ok(Endpoint::Unix(PathBuf::from(DEFAULT_SOCKET))),
        };
    }
    let meta = config_dir
        .join("contexts")
        .join("meta")
        .join(sha256_hex(name.as_bytes()))
        .join("meta.json");
    let text = std::fs::read_to_string(&meta).map_err(|e| {
        format!(
            "Docker context '{name}' was not found ({}: {e}); create it with `docker context create {name} --docker host=...`",
            meta.display()
        )
    })?;
    parse_context_meta(&text, name)
}

/// Parse one `meta.json` of the context store.
pub fn parse_context_meta(text: &str, name: &str) -> Result<Endpoint, String> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("Docker context '{name}' has an unreadable meta.json: {e}"))?;
    if let Some(found) = v.get("Name").and_then(|n| n.as_str()) {
        if found != name {
            return Err(format!(
                "Docker context store entry for '{name}' names '{found}'"
            ));
        }
    }
    let host = v
        .pointer("/Endpoints/docker/Host")
        .and_then(|h| h.as_str())
        .ok_or_else(|| {
            format!("Docker context '{name}' has no docker endpoint (Endpoints.docker.Host)")
        })?;
    Endpoint::parse(host)
}

/// A live connection: the bollard client, plus the SSH tunnel behind it if any.
#[derive(Debug)]
pub(crate) struct Connection {
    pub docker: Docker,
    pub endpoint: Endpoint,
    tunnel: Option<Tunnel>,
}

impl Connection {
    /// Connect (starting a tunnel for SSH) and check that the daemon answers.
    pub async fn open(endpoint: Endpoint) -> Result<Connection, String> {
        let (docker, tunnel) = match &endpoint {
            Endpoint::Unix(path) => {
                if !path.exists() {
                    return Err(format!("no Docker socket at {}", path.display()));
                }
                let docker = Docker::connect_with_unix(
                    &path.to_string_lossy(),
                    REQUEST_TIMEOUT_SECONDS,
                    bollard::API_DEFAULT_VERSION,
                )
                .map_err(|e| e.to_string())?;
                (docker, None)
            }
            Endpoint::Tcp(addr) => {
                let docker = Docker::connect_with_http(
                    &format!("http://{addr}"),
                    REQUEST_TIMEOUT_SECONDS,
                    bollard::API_DEFAULT_VERSION,
                )
                .map_err(|e| e.to_string())?;
                (docker, None)
            }
            Endpoint::Ssh { .. } => {
                let tunnel = Tunnel::start(&endpoint).await?;
                let docker = Docker::connect_with_unix(
                    &tunnel.socket.to_string_lossy(),
                    REQUEST_TIMEOUT_SECONDS,
                    bollard::API_DEFAULT_VERSION,
                )
                .map_err(|e| e.to_string())?;
                (docker, Some(tunnel))
            }
        };
        // The daemon here may speak an older API than bollard's default (Debian 12 ships
        // 1.41): negotiate so requests are not refused as "client version too new".
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| "the daemon did not answer within 10 s".to_string())?
            .map_err(|e| e.to_string())?;
        Ok(Connection {
            docker,
            endpoint,
            tunnel,
        })
    }

    /// False once the tunnel (if any) has died; the connection must then be reopened.
    pub fn usable(&mut self) -> bool {
        match &mut self.tunnel {
            Some(t) => t.alive(),
            None => true,
        }
    }

    pub async fn close(&mut self) {
        if let Some(t) = self.tunnel.as_mut() {
            t.stop().await;
        }
    }
}

/// `ssh -nNT -L <local socket>:<remote socket>`, owned by the engine and killed with it.
#[derive(Debug)]
struct Tunnel {
    child: tokio::process::Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Tunnel {
    async fn start(endpoint: &Endpoint) -> Result<Tunnel, String> {
        let Endpoint::Ssh {
            user,
            host,
            port,
            key,
            remote_socket,
        } = endpoint
        else {
            return Err("not an ssh endpoint".into());
        };
        let dir = std::env::temp_dir().join(format!(
            "spr-ssh-{}-{}",
            std::process::id(),
            crate::unique_suffix()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let socket = dir.join("docker.sock");
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args(ssh_args(
            user.as_deref(),
            host,
            *port,
            key.as_deref(),
            &socket,
            remote_socket,
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run ssh ({e}); install openssh-client"))?;
        let started = Instant::now();
        loop {
            if socket.exists() {
                return Ok(Tunnel { child, dir, socket });
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut s) = child.stderr.take() {
                    use tokio::io::AsyncReadExt;
                    let _ = s.read_to_string(&mut err).await;
                }
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!(
                    "ssh to {} failed ({status}): {}",
                    endpoint.display(),
                    err.trim()
                ));
            }
            if started.elapsed() > TUNNEL_START_TIMEOUT {
                let _ = child.kill().await;
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!(
                    "ssh tunnel to {} did not come up within {} s",
                    endpoint.display(),
                    TUNNEL_START_TIMEOUT.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    async fn stop(&mut self) {
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The ssh command line of a tunnel (separate so tests can check the flags).
pub(crate) fn ssh_args(
    user: Option<&str>,
    host: &str,
    port: Option<u16>,
    key: Option<&Path>,
    local: &Path,
    remote: &str,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-nNT".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "ExitOnForwardFailure=yes".into(),
        "-o".into(),
        "ServerAliveInterval=15".into(),
        "-o".into(),
        "StreamLocalBindUnlink=yes".into(),
    ];
    if let Some(port) = port {
        args.extend(["-p".into(), port.to_string()]);
    }
    if let Some(key) = key {
        args.extend([
            "-i".into(),
            key.display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
        ]);
    }
    args.extend(["-L".into(), format!("{}:{remote}", local.display())]);
    // The destination is never an option, whatever a host name from a URL or a context
    // begins with.
    args.push("--".into());
    args.push(match user {
        Some(u) => format!("{u}@{host}"),
        None => host.to_string(),
    });
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse() {
        assert_eq!(
            Endpoint::parse("unix:///run/d.sock").unwrap(),
            Endpoint::Unix("/run/d.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:2376").unwrap(),
            Endpoint::Tcp("127.0.0.1:2376".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://localhost").unwrap(),
            Endpoint::Tcp("localhost:2375".into())
        );
        let ssh = Endpoint::parse("ssh://alice@example.com:2222").unwrap();
        assert_eq!(ssh.display(), "ssh://alice@example.com:2222");
        match ssh {
            Endpoint::Ssh {
                remote_socket,
                port,
                ..
            } => {
                assert_eq!(remote_socket, DEFAULT_SOCKET);
                assert_eq!(port, Some(2222));
            }
            other => panic!("{other:?}"),
        }
        assert!(Endpoint::parse("https://x:2376")
            .unwrap_err()
            .contains("TLS"));
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("ssh://a@h:notaport").is_err());
    }

    #[test]
    fn ssh_options_really_reach_the_ssh_command() {
        let c = DockerEngineConfig {
            ssh_host: Some("127.0.0.1".into()),
            ssh_user: Some("root".into()),
            ssh_port: Some(2222),
            ssh_key_path: Some("/keys/id".into()),
            ..Default::default()
        };
        let ep = resolve(&c).unwrap();
        assert_eq!(ep.display(), "ssh://root@127.0.0.1:2222");
        let Endpoint::Ssh {
            user,
            host,
            port,
            key,
            remote_socket,
        } = ep
        else {
            panic!()
        };
        let args = ssh_args(
            user.as_deref(),
            &host,
            port,
            key.as_deref(),
            Path::new("/tmp/x.sock"),
            &remote_socket,
        );
        let line = args.join(" ");
        assert!(line.contains("-p 2222"), "{line}");
        assert!(line.contains("-i /keys/id"), "{line}");
        assert!(
            line.contains("-L /tmp/x.sock:/var/run/docker.sock"),
            "{line}"
        );
        assert!(line.ends_with("root@127.0.0.1"), "{line}");
        assert!(line.contains("BatchMode=yes"));
    }

    #[test]
    fn context_store_is_read_by_the_sha256_of_the_name() {
        let dir = std::env::temp_dir().join(format!("spr-ctx-test-{}", std::process::id()));
        let name = "spr-remote";
        // `docker context create` names the directory sha256(name) in hex.
        let hashed = sha256_hex(name.as_bytes());
        assert_eq!(hashed.len(), 64);
        let meta_dir = dir.join("contexts/meta").join(&hashed);
        std::fs::create_dir_all(&meta_dir).unwrap();
        std::fs::write(
            meta_dir.join("meta.json"),
            r#"{"Name":"spr-remote","Metadata":{"Description":""},"Endpoints":{"docker":{"Host":"unix:///run/spr-docker2.sock","SkipTLSVerify":false}}}"#,
        )
        .unwrap();
        assert_eq!(
            context_endpoint(&dir, name).unwrap(),
            Endpoint::Unix("/run/spr-docker2.sock".into())
        );
        let missing = context_endpoint(&dir, "nope").unwrap_err();
        assert!(missing.contains("not found"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn known_sha256_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn context_meta_without_a_docker_endpoint_is_an_error() {
        assert!(parse_context_meta(r#"{"Name":"x","Endpoints":{}}"#, "x").is_err());
        assert!(parse_context_meta("not json", "x").is_err());
        assert_eq!(
            parse_context_meta(
                r#"{"Name":"x","Endpoints":{"docker":{"Host":"tcp://127.0.0.1:2375"}}}"#,
                "x"
            )
            .unwrap(),
            Endpoint::Tcp("127.0.0.1:2375".into())
        );
    }
}

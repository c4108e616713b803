//! The attack corpus (tests/attacks/): adversarial programs run through the local
//! engine in its default configuration, each followed by host-side checks that prove
//! nothing happened: the file outside scratch does not exist, the listening socket got
//! no connection, no process is left, no secret reached the output, and the engine
//! still runs the next program.

mod common;

use spr_core::{run_code, Mode, PolicySource, RunnerPolicy, RunnerResult};
use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Attack {
    name: String,
    file: String,
    policy: String,
    timeout_seconds: u64,
    checks: Vec<String>,
    description: String,
}

fn corpus_dir() -> PathBuf {
    common::repo_root().join("tests/attacks")
}

fn manifest() -> Vec<Attack> {
    let text = std::fs::read_to_string(corpus_dir().join("manifest.json")).expect("manifest.json");
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&text).expect("manifest.json is a list");
    list.into_iter()
        .map(|a| {
            let s = |k: &str| {
                a[k].as_str()
                    .unwrap_or_else(|| panic!("{k} in {a}"))
                    .to_string()
            };
            Attack {
                name: s("name"),
                file: s("file"),
                policy: s("policy"),
                timeout_seconds: a["timeout_seconds"].as_u64().expect("timeout_seconds"),
                checks: a["checks"]
                    .as_array()
                    .expect("checks")
                    .iter()
                    .map(|c| c.as_str().expect("check name").to_string())
                    .collect(),
                description: s("description"),
            }
        })
        .collect()
}

fn policy(name: &str, timeout: u64) -> RunnerPolicy {
    let base = RunnerPolicy {
        timeout_seconds: timeout,
        ..RunnerPolicy::default()
    };
    match name {
        "default" => base,
        "permissive" => RunnerPolicy {
            blocked_imports: vec![],
            blocked_builtins: vec![],
            ..base
        },
        "allow_nothing" => RunnerPolicy {
            mode: Mode::Allow,
            allowed_globals: vec!["target".into()],
            ..base
        },
        other => panic!("unknown policy {other} in the manifest"),
    }
}

/// Everything an attack may want to hit, and what the checks look for.
struct Bait {
    target: PathBuf,
    secret_path: PathBuf,
    secrets: Vec<String>,
    tcp: TcpListener,
    udp: Option<UdpSocket>,
    port: u16,
    marker: String,
}

impl Bait {
    fn new(dir: &Path, name: &str) -> Bait {
        let pid = std::process::id();
        let secret_path = dir.join("secret.txt");
        let file_secret = format!("TOPSECRET-{pid}-file");
        std::fs::write(&secret_path, &file_secret).unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let port = tcp.local_addr().unwrap().port();
        let udp = UdpSocket::bind(("127.0.0.1", port)).ok();
        if let Some(u) = &udp {
            u.set_nonblocking(true).unwrap();
        }
        Bait {
            target: dir.join(format!("{name}.written")),
            secret_path,
            secrets: vec![file_secret, env_secret()],
            tcp,
            udp,
            port,
            marker: format!("spr-attack-marker-{pid}-{name}"),
        }
    }

    fn input(&self) -> serde_json::Value {
        serde_json::json!({
            "target": self.target,
            "secret_path": self.secret_path,
            "port": self.port,
            "marker": self.marker,
            "host_pid": std::process::id(),
        })
    }
}

fn env_secret() -> String {
    format!("TOPSECRET-{}-env", std::process::id())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default()
}

/// One failed check: "<attack>: <what happened>".
fn check(attack: &Attack, bait: &Bait, r: &RunnerResult, host_name: &str) -> Vec<String> {
    let mut failures = Vec::new();
    let text = serde_json::to_string(r).unwrap();
    for c in &attack.checks {
        let failed = match c.as_str() {
            "contained" => None, // checked after the run, with a follow-up run
            "file_absent" => bait
                .target
                .exists()
                .then(|| format!("{} was written outside scratch", bait.target.display())),
            "no_leak" => bait
                .secrets
                .iter()
                .find(|s| text.contains(s.as_str()))
                .map(|s| format!("the secret {s} reached the result")),
            "no_home_entries" => {
                let home = std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or("/root".into());
                std::fs::read_dir(&home)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.len() >= 4 && n != ".pyenv")
                    .find(|n| r.stdout.contains(&format!("'{n}'")))
                    .map(|n| format!("the host home entry {n} was listed"))
            }
            "no_process" => {
                std::thread::sleep(Duration::from_millis(300));
                common::process_alive_with(&bait.marker)
                    .then(|| "a process the run started is still alive".to_string())
            }
            "no_connection" => {
                let tcp = match bait.tcp.accept() {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => None,
                    Ok(_) => Some("the host listener got a TCP connection".to_string()),
                    Err(e) => Some(format!("accept failed: {e}")),
                };
                let mut buf = [0u8; 64];
                let udp = bait.udp.as_ref().and_then(|u| match u.recv(&mut buf) {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => None,
                    _ => Some("the host socket received a UDP datagram".to_string()),
                });
                tcp.or(udp)
            }
            "usr_marker_absent" => ["/usr/spr_attack_marker", "/usr/lib/spr_attack_marker"]
                .iter()
                .find(|p| Path::new(p).exists())
                .map(|p| format!("{p} was written")),
            "venv_marker_absent" => {
                let p = common::shared_venv().join("spr_attack_marker");
                p.exists().then(|| format!("{} was written", p.display()))
            }
            "host_hostname_unchanged" => {
                (hostname() != host_name).then(|| "the host's hostname changed".to_string())
            }
            "timed_out" => (!r.timed_out).then(|| "the run was not reported as timed out".into()),
            "not_ok" => (r.ok || r.result == serde_json::json!("SPOOF")).then(|| {
                format!(
                    "a forged result was believed: ok={} result={}",
                    r.ok, r.result
                )
            }),
            "truncated" => (!(r.stdout_truncated || r.stderr_truncated))
                .then(|| "the flood was not reported as truncated".into()),
            other => match other.strip_prefix("error:") {
                // The run failed the way the check names, not any way at all.
                Some(want) => (!r.error.as_deref().unwrap_or("").contains(want))
                    .then(|| format!("the error is {:?}, not {want:?}", r.error)),
                None => Some(format!("unknown check {other}")),
            },
        };
        if let Some(f) = failed {
            failures.push(format!("{} ({}): {f}", attack.name, attack.description));
        }
    }
    failures
}

#[test]
fn the_manifest_lists_every_program_and_at_least_forty() {
    let attacks = manifest();
    assert!(attacks.len() >= 40, "only {} attacks", attacks.len());
    let mut listed: Vec<&str> = attacks.iter().map(|a| a.file.as_str()).collect();
    listed.sort();
    let mut on_disk: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".py"))
        .collect();
    on_disk.sort();
    assert_eq!(listed, on_disk);
    for a in &attacks {
        assert!(!a.checks.is_empty(), "{} has no host-side check", a.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_is_contained() {
    let support = spr_core::local_sandbox_probe();
    if !common::require(
        support.available("user_namespace")
            && support.available("landlock")
            && support.available("seccomp"),
        "the local sandbox (user namespaces, Landlock, seccomp)",
    ) {
        return;
    }
    std::env::set_var("SPR_ATTACK_SECRET", env_secret());
    let dir = std::env::temp_dir().join(format!("spr-attacks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let engine = common::engine();
    let host_name = hostname();
    let mut failures = Vec::new();
    let only = std::env::var("SPR_ATTACK").ok();
    for attack in manifest() {
        if only.as_deref().is_some_and(|o| !attack.name.contains(o)) {
            continue;
        }
        let code = std::fs::read_to_string(corpus_dir().join(&attack.file)).unwrap();
        let bait = Bait::new(&dir, &attack.name);
        let started = Instant::now();
        let r = run_code(
            &code,
            &engine,
            Some(bait.input()),
            PolicySource::Policy(policy(&attack.policy, attack.timeout_seconds)),
        )
        .await
        .expect("the run is accepted");
        let took = started.elapsed();
        if std::env::var_os("SPR_ATTACK_VERBOSE").is_some() {
            eprintln!(
                "{}: ok={} error={:?} stdout={:.300}",
                attack.name, r.ok, r.error, r.stdout
            );
        }
        if took > Duration::from_secs(attack.timeout_seconds + 10) {
            failures.push(format!("{}: the run took {took:?}", attack.name));
        }
        failures.extend(check(&attack, &bait, &r, &host_name));
        let after = run_code("result = 2 + 2", &engine, None, PolicySource::Default)
            .await
            .expect("accepted");
        if after.result != serde_json::json!(4) {
            failures.push(format!(
                "{}: the engine is not healthy afterwards: {after:?}",
                attack.name
            ));
        }
        let _ = std::fs::remove_file(&bait.target);
    }
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "attacks not contained:\n{}",
        failures.join("\n")
    );
}

//! Who a sandboxed worker is, outside its user namespace: the uid and gid that root
//! inside maps to, and how the maps get written.
//!
//! Three ways, in order of preference:
//! - **distinct**: the host process may map any id of a range (root, or root of a user
//!   namespace with a full range): the worker becomes an unused unprivileged id, so
//!   nothing of the worker is owned by the caller or by another worker;
//! - **subordinate**: `newuidmap`/`newgidmap` and a range in `/etc/subuid` and
//!   `/etc/subgid` (the usual rootless set-up): the worker becomes one id of that range;
//! - **own**: neither, as for an ordinary user on a bare machine or inside a container
//!   or CI runner where only one uid is mapped: root inside is the caller's own uid,
//!   and `setgroups` is denied, as the kernel requires for an unprivileged map.
//!
//! In every case root inside holds no capability outside the namespace, and the
//! namespaces, mounts, Landlock and seccomp are the same.

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// The ids of one worker and how they are mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdMapping {
    Distinct {
        uid: u32,
        gid: u32,
    },
    Subordinate {
        uid: u32,
        gid: u32,
        newuidmap: PathBuf,
        newgidmap: PathBuf,
    },
    Own {
        uid: u32,
        gid: u32,
    },
}

/// What decides the mapping, read from the host (or made up in tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HostIds {
    pub euid: u32,
    pub egid: u32,
    /// The name of `euid` in /etc/passwd, for /etc/subuid lookups.
    pub user: Option<String>,
    /// This process's own maps (`inside outside count` triples).
    pub uid_map: Vec<(u32, u32, u32)>,
    pub gid_map: Vec<(u32, u32, u32)>,
    /// CAP_SETUID and CAP_SETGID are effective.
    pub can_set_ids: bool,
    pub subuid: Vec<(String, u32, u32)>,
    pub subgid: Vec<(String, u32, u32)>,
    pub newuidmap: Option<PathBuf>,
    pub newgidmap: Option<PathBuf>,
}

impl HostIds {
    /// This process's ids, maps, capabilities and subordinate ranges.
    pub(crate) fn read() -> HostIds {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .unwrap_or("")
                .to_string()
        };
        // "Uid:\treal\teffective\tsaved\tfs"
        let effective = |line: String| {
            line.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(u32::MAX)
        };
        let euid = effective(field("Uid:"));
        let egid = effective(field("Gid:"));
        let cap_eff = u64::from_str_radix(&field("CapEff:"), 16).unwrap_or(0);
        const CAP_SETGID: u64 = 1 << 6;
        const CAP_SETUID: u64 = 1 << 7;
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let user = read("/etc/passwd").lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?;
            (uid.parse() == Ok(euid)).then(|| name.to_string())
        });
        let tool = |name: &str| {
            ["/usr/bin", "/bin", "/usr/sbin", "/usr/local/bin"]
                .iter()
                .map(|d| Path::new(d).join(name))
                .find(|p| p.is_file())
        };
        HostIds {
            euid,
            egid,
            user,
            uid_map: parse_id_map(&read("/proc/self/uid_map")),
            gid_map: parse_id_map(&read("/proc/self/gid_map")),
            can_set_ids: cap_eff & (CAP_SETUID | CAP_SETGID) == CAP_SETUID | CAP_SETGID,
            subuid: parse_subids(&read("/etc/subuid")),
            subgid: parse_subids(&read("/etc/subgid")),
            newuidmap: tool("newuidmap"),
            newgidmap: tool("newgidmap"),
        }
    }
}

/// Ids a distinct-id worker may take: far above real accounts and container ranges.
const DISTINCT_BASE: u32 = 1_000_000_000;
const DISTINCT_SPAN: u32 = 100_000_000;

impl IdMapping {
    /// The mapping for worker number `n` of this host process.
    pub(crate) fn choose(host: &HostIds, n: u32) -> IdMapping {
        if host.euid == 0 && host.can_set_ids {
            if let (Some(uid), Some(gid)) =
                (distinct_id(&host.uid_map, n), distinct_id(&host.gid_map, n))
            {
                return IdMapping::Distinct { uid, gid };
            }
        }
        if let (Some(newuidmap), Some(newgidmap)) = (&host.newuidmap, &host.newgidmap) {
            let owner = |list: &[(String, u32, u32)]| {
                list.iter()
                    .find(|(who, _, count)| {
                        *count > 0
                            && (host.user.as_deref() == Some(who.as_str())
                                || *who == host.euid.to_string())
                    })
                    .map(|(_, start, count)| start + n % count)
            };
            if let (Some(uid), Some(gid)) = (owner(&host.subuid), owner(&host.subgid)) {
                return IdMapping::Subordinate {
                    uid,
                    gid,
                    newuidmap: newuidmap.clone(),
                    newgidmap: newgidmap.clone(),
                };
            }
        }
        IdMapping::Own {
            uid: host.euid,
            gid: host.egid,
        }
    }

    /// "distinct", "subordinate" or "own", for receipts.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            IdMapping::Distinct { .. } => "distinct",
            IdMapping::Subordinate { .. } => "subordinate",
            IdMapping::Own { .. } => "own",
        }
    }

    #[cfg(test)]
    pub(crate) fn uid(&self) -> u32 {
        match self {
            IdMapping::Distinct { uid, .. }
            | IdMapping::Subordinate { uid, .. }
            | IdMapping::Own { uid, .. } => *uid,
        }
    }

    /// What the mapper process (still in the host's user namespace) does.
    pub(crate) fn writer(&self) -> MapWriter {
        let line = |id: u32| CString::new(format!("0 {id} 1\n")).expect("digits");
        match self {
            IdMapping::Distinct { uid, gid } => MapWriter::Files {
                uid_map: line(*uid),
                gid_map: line(*gid),
                deny_setgroups: false,
            },
            IdMapping::Own { uid, gid } => MapWriter::Files {
                uid_map: line(*uid),
                gid_map: line(*gid),
                deny_setgroups: true,
            },
            IdMapping::Subordinate {
                uid,
                gid,
                newuidmap,
                newgidmap,
            } => {
                let argv = |tool: &Path, id: u32| {
                    vec![
                        CString::new(tool.as_os_str().as_encoded_bytes()).expect("no NUL"),
                        // The target pid is filled in by the mapper, which knows it.
                        CString::default(),
                        c"0".to_owned(),
                        CString::new(id.to_string()).expect("digits"),
                        c"1".to_owned(),
                    ]
                };
                MapWriter::Tools {
                    newuidmap: argv(newuidmap, *uid),
                    newgidmap: argv(newgidmap, *gid),
                }
            }
        }
    }
}

/// How the maps of the worker's new user namespace are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MapWriter {
    /// Write `/proc/<pid>/{setgroups,uid_map,gid_map}` directly.
    Files {
        uid_map: CString,
        gid_map: CString,
        deny_setgroups: bool,
    },
    /// Run the setuid helpers (argv[1] is replaced by the pid).
    Tools {
        newuidmap: Vec<CString>,
        newgidmap: Vec<CString>,
    },
}

/// An id inside the largest mapped range, for worker `n`, that is neither 0 nor near the
/// start of the range (where real accounts live).
fn distinct_id(map: &[(u32, u32, u32)], n: u32) -> Option<u32> {
    let (inside, _outside, count) = map.iter().copied().max_by_key(|(_, _, c)| *c)?;
    if count as u64 >= u32::MAX as u64 {
        // The whole id space (the initial namespace): the usual high range.
        let salt = std::process::id() % 50_000;
        return Some(DISTINCT_BASE + ((salt * 1000 + n % 1000) % DISTINCT_SPAN));
    }
    if count < 2048 {
        return None;
    }
    // The top quarter of the range, one id per worker.
    let quarter = count / 4;
    Some(inside + count - 1 - (n % quarter))
}

/// `inside outside count` lines of /proc/<pid>/{uid,gid}_map.
pub(crate) fn parse_id_map(text: &str) -> Vec<(u32, u32, u32)> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace().map(|w| w.parse::<u32>());
            match (f.next(), f.next(), f.next()) {
                (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => Some((a, b, c)),
                _ => None,
            }
        })
        .collect()
}

/// `owner:start:count` lines of /etc/subuid and /etc/subgid.
pub(crate) fn parse_subids(text: &str) -> Vec<(String, u32, u32)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let mut f = line.split(':');
            let owner = f.next()?.to_string();
            let start = f.next()?.parse().ok()?;
            let count = f.next()?.parse().ok()?;
            Some((owner, start, count))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> HostIds {
        HostIds {
            euid: 0,
            egid: 0,
            user: Some("root".into()),
            uid_map: vec![(0, 0, u32::MAX)],
            gid_map: vec![(0, 0, u32::MAX)],
            can_set_ids: true,
            ..HostIds::default()
        }
    }

    fn user() -> HostIds {
        HostIds {
            euid: 1000,
            egid: 1000,
            user: Some("ci".into()),
            uid_map: vec![(0, 0, u32::MAX)],
            gid_map: vec![(0, 0, u32::MAX)],
            ..HostIds::default()
        }
    }

    #[test]
    fn root_on_the_host_maps_a_distinct_high_id_per_worker() {
        let a = IdMapping::choose(&root(), 0);
        let b = IdMapping::choose(&root(), 1);
        assert_eq!(a.kind(), "distinct");
        assert!(a.uid() >= DISTINCT_BASE);
        assert_ne!(a.uid(), b.uid());
        assert!(matches!(
            a.writer(),
            MapWriter::Files {
                deny_setgroups: false,
                ..
            }
        ));
    }

    #[test]
    fn root_of_a_container_with_a_range_maps_inside_its_range() {
        let host = HostIds {
            uid_map: vec![(0, 100_000, 65_536)],
            gid_map: vec![(0, 100_000, 65_536)],
            ..root()
        };
        let m = IdMapping::choose(&host, 3);
        assert_eq!(m.kind(), "distinct");
        assert!(m.uid() > 65_536 * 3 / 4 && m.uid() < 65_536);
    }

    #[test]
    fn root_with_one_mapped_id_maps_its_own() {
        let host = HostIds {
            uid_map: vec![(0, 1000, 1)],
            gid_map: vec![(0, 1000, 1)],
            ..root()
        };
        let m = IdMapping::choose(&host, 0);
        assert_eq!(m, IdMapping::Own { uid: 0, gid: 0 });
        assert!(matches!(
            m.writer(),
            MapWriter::Files {
                deny_setgroups: true,
                ..
            }
        ));
    }

    #[test]
    fn an_ordinary_user_uses_a_subordinate_range_when_one_is_configured() {
        let mut host = user();
        host.newuidmap = Some("/usr/bin/newuidmap".into());
        host.newgidmap = Some("/usr/bin/newgidmap".into());
        host.subuid = parse_subids("# ids\nother:200000:65536\nci:300000:65536\n");
        host.subgid = parse_subids("1000:400000:10\n");
        let m = IdMapping::choose(&host, 12);
        assert_eq!(m.kind(), "subordinate");
        assert_eq!(m.uid(), 300_012);
        match m.writer() {
            MapWriter::Tools {
                newuidmap,
                newgidmap,
            } => {
                assert_eq!(newuidmap[0], c"/usr/bin/newuidmap".to_owned());
                assert_eq!(newuidmap[3], c"300012".to_owned());
                assert_eq!(newgidmap[3], c"400002".to_owned());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_ordinary_user_without_tools_or_ranges_maps_its_own_ids() {
        let mut host = user();
        host.subuid = parse_subids("ci:300000:65536\n");
        host.subgid = host.subuid.clone();
        assert_eq!(
            IdMapping::choose(&host, 0),
            IdMapping::Own {
                uid: 1000,
                gid: 1000
            }
        );
        host.newuidmap = Some("/usr/bin/newuidmap".into());
        host.newgidmap = Some("/usr/bin/newgidmap".into());
        host.subgid = vec![];
        assert_eq!(IdMapping::choose(&host, 0).kind(), "own");
    }

    #[test]
    fn maps_and_subid_files_parse_and_skip_junk() {
        assert_eq!(
            parse_id_map("         0          0 4294967295\n"),
            vec![(0, 0, u32::MAX)]
        );
        assert_eq!(parse_id_map("0 1000 1\nbad line\n"), vec![(0, 1000, 1)]);
        assert_eq!(
            parse_subids("a:1:2\nnot-a-line\nb:x:3\n"),
            vec![("a".into(), 1, 2)]
        );
    }
}

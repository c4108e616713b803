//! Who owns a managed container: the owner label an engine writes on every container it
//! creates (`pid:starttime@hostname`), and whether the owner a label names is provably
//! gone, so that what a dead spr left behind can be removed without ever touching a
//! live spr's containers or another machine's.
//!
//! A pid alone is not an identity: pids are reused, and a container whose owner died
//! would then look owned by whatever process got the pid. The start time (field 22 of
//! /proc/<pid>/stat, in clock ticks since boot) tells the two apart. Labels of older
//! builds (`pid@hostname`) are still read, with the weaker check they always had.

use std::io::ErrorKind;

/// The owner label of containers this process creates.
pub(crate) fn label_for_this_process(hostname: &str) -> String {
    let pid = std::process::id();
    match start_time(pid) {
        Some(start) => format!("{pid}:{start}@{hostname}"),
        // No /proc to read (it is always there on Linux): the old, weaker form.
        None => format!("{pid}@{hostname}"),
    }
}

/// Field 22 of /proc/<pid>/stat, or None when the process is not there.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// Field 2 (the command name) is in parentheses and may itself hold spaces and ')':
/// the fields after the last ')' are fields 3 onwards.
fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Is the owner named by `label` a process of this host that no longer exists? False
/// whenever that cannot be proven: another host's owner, an unreadable label, a /proc
/// that hides other users' processes, an answer other than "no such process".
pub(crate) fn gone(label: &str, this_host: &str) -> bool {
    let Some((process, host)) = label.split_once('@') else {
        return false;
    };
    if host != this_host || !proc_shows_every_process() {
        return false;
    }
    let (pid, start) = match process.split_once(':') {
        Some((pid, start)) => match start.parse::<u64>() {
            Ok(start) => (pid, Some(start)),
            Err(_) => return false,
        },
        None => (process, None),
    };
    let pid = match pid.parse::<u32>() {
        Ok(pid) if pid > 0 => pid,
        _ => return false,
    };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(e) => e.kind() == ErrorKind::NotFound,
        // The pid exists: it is the owner unless its start time says it was reused.
        Ok(stat) => match (start, parse_start_time(&stat)) {
            (Some(want), Some(have)) => want != have,
            _ => false,
        },
    }
}

/// False when /proc is mounted with `hidepid` and this process might not see other
/// users' processes: there, a missing /proc/<pid> proves nothing.
fn proc_shows_every_process() -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let hidden = mounts.lines().any(|line| {
        let mut halves = line.splitn(2, " - ");
        let (Some(mount), Some(fs)) = (halves.next(), halves.next()) else {
            return false;
        };
        let at_proc = mount.split(' ').nth(4) == Some("/proc");
        let mut fs = fs.split(' ');
        let is_proc = fs.next() == Some("proc");
        let options = fs.nth(1).unwrap_or_default();
        at_proc
            && is_proc
            && options.split(',').any(|o| {
                o.strip_prefix("hidepid=")
                    .is_some_and(|v| v != "0" && v != "off")
            })
    });
    !hidden || effective_uid() == Some(0)
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_field_22_even_with_parentheses_in_the_name() {
        let stat = "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("42 (x"), None);
        let mine = start_time(std::process::id()).expect("our own stat");
        assert!(mine > 0);
    }

    #[test]
    fn only_a_provably_gone_owner_of_this_host_is_gone() {
        let pid = std::process::id();
        let start = start_time(pid).unwrap();
        let host = "host-a";
        assert_eq!(
            label_for_this_process(host),
            format!("{pid}:{start}@{host}")
        );
        // Alive, in both formats.
        assert!(!gone(&format!("{pid}:{start}@{host}"), host));
        assert!(!gone(&format!("{pid}@{host}"), host));
        // The pid exists but is another process (it was reused).
        assert!(gone(&format!("{pid}:{}@{host}", start + 1), host));
        // PIDs above pid_max never exist, in both formats.
        assert!(gone("4194305:12@host-a", host));
        assert!(gone("4194305@host-a", host));
        // Another machine's owner, or a label that names nothing: never touched.
        assert!(!gone("4194305:12@host-b", host));
        assert!(!gone("garbage", host));
        assert!(!gone("x:1@host-a", host));
        assert!(!gone("4194305:x@host-a", host));
        assert!(!gone("0:1@host-a", host));
        assert!(!gone("", host));
    }
}

//! The order of the set-up steps, replayed against the recorder.

use super::*;
use crate::sandbox::idmap::IdMapping;
use crate::sandbox::syscall::{Call, Recorder};

const SUPERVISOR: i32 = 40;
const WORKER: i32 = 41;
const MAPPER: i32 = 39;

fn plan(namespaces: bool, mapping: IdMapping) -> ChildPlan {
    ChildPlan {
        report_fd: 5,
        lifeline_fd: 6,
        cgroup_procs: vec![c"/sys/fs/cgroup/pids/spr/1/cgroup.procs".to_owned()],
        namespaces: namespaces.then(|| NamespacePlan {
            unshare_net: true,
            ids: mapping.writer(),
            bind_sources: vec![(c"/usr".to_owned(), 1000)],
            mounts: vec![Step::MakeRootPrivate, Step::Chdir(c"/tmp".to_owned())],
        }),
        seccomp: Some(vec![
            Instruction {
                code: 6,
                jt: 0,
                jf: 0,
                k: 0x7fff_0000,
            };
            3
        ]),
        drop_caps: !namespaces,
    }
}

fn recorder(forks: &[Forked]) -> Recorder {
    Recorder {
        forks: forks.iter().copied().collect(),
        pid: SUPERVISOR,
        ppid: SUPERVISOR,
        ..Recorder::default()
    }
}

fn distinct() -> IdMapping {
    IdMapping::Distinct {
        uid: 1_000_000_007,
        gid: 1_000_000_007,
    }
}

#[test]
fn the_worker_enters_every_namespace_then_locks_itself_down_before_exec() {
    let mut rec = recorder(&[Forked::Parent(MAPPER), Forked::Child]);
    let role = run(&plan(true, distinct()), &mut rec).unwrap();
    assert_eq!(role, Role::Exec);
    let at = |call: Call| rec.position(&call);
    let cloexec = at(Call::CloexecFrom(3));
    let unshare = at(Call::Unshare(
        CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET,
    ));
    let binds = at(Call::OpenPathAt("/usr".into(), 1000));
    let release = at(Call::WriteByte(101));
    let mapped = at(Call::Wait(MAPPER));
    let root = at(Call::BecomeRoot { clear_groups: true });
    let pid_ns = at(Call::Unshare(CLONE_NEWPID));
    let pdeath = at(Call::SetPdeathsig);
    let mounts = at(Call::Mount {
        source: None,
        target: "/".into(),
        fstype: None,
        flags: plan::MS_REC | plan::MS_PRIVATE,
        data: None,
    });
    let nnp = at(Call::NoNewPrivs);
    let caps = at(Call::LimitCapabilities(ZYGOTE_CAPS));
    let seccomp = at(Call::Seccomp(3));
    let order = [
        cloexec, unshare, binds, release, mapped, root, pid_ns, pdeath, mounts, nnp, caps, seccomp,
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{:#?}", rec.calls);
    // Bind sources are opened before the maps exist (still the host's user).
    assert!(binds < mapped);
    assert_eq!(
        rec.calls.last(),
        Some(&Call::Record(
            RECORD_APPLIED,
            APPLIED_CGROUP
                | APPLIED_NAMESPACES
                | APPLIED_NETWORK_NS
                | APPLIED_FILESYSTEM
                | APPLIED_CAPS_LIMITED
                | APPLIED_SECCOMP,
            0
        ))
    );
}

#[test]
fn the_mapper_writes_the_maps_of_its_parent_once_released() {
    // The first fork is the mapper's: follow the child side.
    let mut rec = recorder(&[Forked::Child]);
    let role = run(&plan(true, distinct()), &mut rec).unwrap();
    assert_eq!(role, Role::Exit(0));
    assert_eq!(
        &rec.calls[rec.calls.len() - 4..],
        &[
            Call::Close(101),
            Call::ReadByte(100),
            Call::WriteProcFile(SUPERVISOR, "uid_map".into(), "0 1000000007 1\n".into()),
            Call::WriteProcFile(SUPERVISOR, "gid_map".into(), "0 1000000007 1\n".into()),
        ]
    );
}

#[test]
fn an_own_id_map_denies_setgroups_first_and_keeps_the_groups() {
    let own = IdMapping::Own {
        uid: 1000,
        gid: 1000,
    };
    let mut rec = recorder(&[Forked::Child]);
    run(&plan(true, own.clone()), &mut rec).unwrap();
    let setgroups = rec.position(&Call::WriteProcFile(
        SUPERVISOR,
        "setgroups".into(),
        "deny".into(),
    ));
    let gid_map = rec.position(&Call::WriteProcFile(
        SUPERVISOR,
        "gid_map".into(),
        "0 1000 1\n".into(),
    ));
    assert!(setgroups < gid_map);
    let mut rec = recorder(&[Forked::Parent(MAPPER), Forked::Child]);
    run(&plan(true, own), &mut rec).unwrap();
    rec.position(&Call::BecomeRoot {
        clear_groups: false,
    });
}

#[test]
fn a_subordinate_map_runs_newuidmap_and_newgidmap_on_the_supervisor() {
    let sub = IdMapping::Subordinate {
        uid: 300_001,
        gid: 400_001,
        newuidmap: "/usr/bin/newuidmap".into(),
        newgidmap: "/usr/bin/newgidmap".into(),
    };
    let mut rec = recorder(&[Forked::Child]);
    assert_eq!(run(&plan(true, sub), &mut rec).unwrap(), Role::Exit(0));
    rec.position(&Call::RunTool(vec![
        "/usr/bin/newuidmap".into(),
        SUPERVISOR.to_string(),
        "0".into(),
        "300001".into(),
        "1".into(),
    ]));
    rec.position(&Call::RunTool(vec![
        "/usr/bin/newgidmap".into(),
        SUPERVISOR.to_string(),
        "0".into(),
        "400001".into(),
        "1".into(),
    ]));
}

#[test]
fn the_supervisor_holds_only_the_lifeline_and_kills_the_worker_when_it_closes() {
    let mut rec = recorder(&[Forked::Parent(MAPPER), Forked::Parent(WORKER)]);
    rec.events.push_back(Event::Lifeline);
    let role = run(&plan(true, distinct()), &mut rec).unwrap();
    assert_eq!(role, Role::Exit(137));
    let close = rec.position(&Call::CloseAllBut(6));
    let kill = rec.position(&Call::Kill(WORKER, 9));
    assert!(close < kill);
    let worker_fork = rec.calls.iter().rposition(|c| *c == Call::Fork).unwrap();
    assert!(rec.position(&Call::SetSubreaper) < worker_fork);
    assert_eq!(rec.calls.last(), Some(&Call::KillChildren));
}

#[test]
fn the_supervisor_mirrors_the_workers_end_and_sweeps_its_orphans() {
    let mut rec = recorder(&[Forked::Parent(WORKER)]);
    rec.events.push_back(Event::Exited(Exit::Signal(9)));
    assert_eq!(
        run(&plan(false, distinct()), &mut rec).unwrap(),
        Role::Exit(137)
    );
    assert_eq!(rec.calls.last(), Some(&Call::KillChildren));
}

#[test]
fn without_namespaces_capabilities_are_still_dropped_and_locked() {
    let mut rec = recorder(&[Forked::Child]);
    assert_eq!(run(&plan(false, distinct()), &mut rec).unwrap(), Role::Exec);
    let lock = rec.position(&Call::LockSecurebits);
    let caps = rec.position(&Call::LimitCapabilities(0));
    let seccomp = rec.position(&Call::Seccomp(3));
    assert!(lock < caps && caps < seccomp);
    assert!(!rec.calls.iter().any(|c| matches!(c, Call::Unshare(_))));
}

#[test]
fn a_failing_step_is_recorded_with_its_errno_and_stops_the_set_up() {
    let mut rec = recorder(&[Forked::Parent(MAPPER), Forked::Child]);
    rec.fail_on = Some(("NoNewPrivs".into(), 22));
    let err = run(&plan(true, distinct()), &mut rec).unwrap_err();
    assert_eq!(err.step, Stage::NoNewPrivs as u32);
    assert_eq!(err.errno, 22);
    assert_eq!(
        rec.calls.last(),
        Some(&Call::Record(RECORD_FAILED, Stage::NoNewPrivs as u32, 22))
    );
    assert!(!rec.calls.iter().any(|c| matches!(c, Call::Seccomp(_))));
}

#[test]
fn a_worker_whose_supervisor_died_before_pdeathsig_gives_up() {
    let mut rec = recorder(&[Forked::Child]);
    rec.ppid = 1;
    let err = run(&plan(false, distinct()), &mut rec).unwrap_err();
    assert_eq!(err.step, Stage::Parent as u32);
}

#[test]
fn an_unshare_refusal_releases_the_mapper_and_names_the_step() {
    let mut rec = recorder(&[Forked::Parent(MAPPER)]);
    rec.fail_on = Some(("Unshare(1543634944)".into(), 1));
    let err = run(&plan(true, distinct()), &mut rec).unwrap_err();
    assert_eq!(err.step, Stage::UnshareUser as u32);
    let close = rec.position(&Call::Close(101));
    let wait = rec.position(&Call::Wait(MAPPER));
    assert!(close < wait);
}

#[test]
fn every_stage_has_a_description_and_round_trips_its_number() {
    for stage in STAGES {
        assert_eq!(Stage::from_u32(stage as u32), Some(stage));
        assert!(!stage.describe().is_empty());
    }
}

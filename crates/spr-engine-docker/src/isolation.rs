//! What every run in a container gets before its request exists: the `--plan` each
//! container's harness starts with, the check of what the harness's greeting says it
//! applies, and the receipt facts built from that greeting.
//!
//! Runs in one container share its scratch tmpfs, its IPC namespace and its PID
//! namespace with the harness's monitor (PID 1) and zygote, so each run isolates itself
//! inside the container: Landlock scoping (no signals to the harness, no abstract unix
//! sockets outside the run), no capabilities, and a seccomp filter that refuses every
//! socket family but AF_UNIX and every SysV IPC object or message queue (they would
//! outlive the run in the container's IPC namespace). Docker's own seccomp profile
//! stays underneath: the run's filter only narrows it.

use spr_policy::RunnerPolicy;
use spr_protocol::seccomp::{Arch, Options, Profile, Program, SeccompError};
use spr_protocol::{
    DevShm, Freshness, HarnessPlan, LandlockPlan, MissingProtection, RunIsolation,
    LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET, LANDLOCK_SCOPE_SIGNAL,
};

/// The OOM killer takes a run's process before the harness's own (whose death would
/// cost every later run its container).
pub(crate) const RUN_OOM_SCORE_ADJ: i32 = 1000;

/// Why a container cannot be given, or did not get, the isolation every run needs.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IsolationError {
    #[error(
        "Docker image '{image}' is built for '{arch}'; spr's seccomp filter for runs supports \
         amd64 (x86_64) and arm64 (aarch64) only"
    )]
    UnsupportedArch { image: String, arch: String },
    #[error("cannot build the runs' seccomp filter: {0}")]
    Seccomp(#[from] SeccompError),
    #[error("the container's harness does not isolate its runs as planned: {0}")]
    NotApplied(&'static str),
}

/// The architecture of an image, from Docker's name for it (`amd64`, `arm64`).
pub(crate) fn image_arch(image: &str, arch: Option<&str>) -> Result<Arch, IsolationError> {
    let name = arch.unwrap_or_default();
    Arch::from_name(name).ok_or_else(|| IsolationError::UnsupportedArch {
        image: image.to_string(),
        arch: if name.is_empty() {
            "an unknown architecture".into()
        } else {
            name.to_string()
        },
    })
}

/// The seccomp filter every run installs: no network families (the container has no
/// network anyway; AF_VSOCK, which Docker's profile allows, would reach the host),
/// no SysV IPC or message queues (no private IPC namespace per run).
pub(crate) fn run_filter(arch: Arch) -> Result<Program, IsolationError> {
    Ok(Program::build(
        arch,
        Options {
            profile: Profile::Run,
            network: false,
            private_ipc: false,
        },
    )?)
}

/// The harness plan of a container whose image is built for `arch`, with `scratch` its
/// scratch tmpfs and `dev_shm` its /dev/shm tmpfs.
pub(crate) fn harness_plan(
    arch: Arch,
    scratch: &str,
    dev_shm: &str,
) -> Result<HarnessPlan, IsolationError> {
    Ok(HarnessPlan {
        // No per-run namespaces in a container (no capability to make them): the
        // runs share the scratch tmpfs, which the zygote empties and checks after each.
        fresh: Freshness::Scrub,
        scratch: Some(scratch.to_string()),
        own_scratch: true,
        // The container's scratch tmpfs is its own: a clean run is seen without a wipe.
        private_scratch_fs: true,
        landlock: Some(LandlockPlan {
            // The container's kernel may be another machine's: the harness probes it.
            abi: None,
            fs: 0,
            net: 0,
            scoped: LANDLOCK_SCOPE_SIGNAL | LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET,
            rules: vec![],
            fresh_rights: 0,
        }),
        seccomp: Some(run_filter(arch)?.to_quads()),
        // Libraries may import _posixsubprocess (its fork_exec raises no audit event):
        // a run whose policy denies processes has the kernel refuse exec and fork.
        process_seccomp: Some(Program::no_processes(arch)?.to_quads()),
        // POSIX semaphores and shared memory (multiprocessing) live in /dev/shm: the
        // runs share the container's, which the zygote empties and checks after each.
        scrubbed_dirs: vec![dev_shm.to_string()],
        caps: true,
        oom_score_adj: Some(RUN_OOM_SCORE_ADJ),
        // Runs under the default policy find it prepared before any request.
        policies: vec![RunnerPolicy::default()],
        ..HarnessPlan::default()
    })
}

/// Refuse a container whose harness does not apply what every run must get. Landlock
/// may be absent (an old kernel): the receipt says so instead.
pub(crate) fn check(isolation: &RunIsolation) -> Result<(), IsolationError> {
    if !isolation.seccomp {
        return Err(IsolationError::NotApplied("runs get no seccomp filter"));
    }
    if !isolation.capabilities_dropped {
        return Err(IsolationError::NotApplied("runs keep their capabilities"));
    }
    if isolation.scratch != "scrubbed" {
        return Err(IsolationError::NotApplied(
            "the scratch tmpfs is not emptied and checked after every run",
        ));
    }
    if !isolation.process_filter {
        return Err(IsolationError::NotApplied(
            "runs whose policy denies processes get no process filter",
        ));
    }
    if isolation.dev_shm != Some(DevShm::Scrubbed) {
        return Err(IsolationError::NotApplied(
            "/dev/shm is not emptied and checked after every run",
        ));
    }
    Ok(())
}

/// What the harness could not apply to the runs of a container, with the reason.
pub(crate) fn missing(isolation: &RunIsolation) -> Vec<MissingProtection> {
    let mut missing = Vec::new();
    if isolation.landlock_abi.is_none() || !isolation.landlock_scoped {
        missing.push(MissingProtection {
            name: "landlock".into(),
            reason: "the container's kernel offers no Landlock scoping (ABI 6, Linux 6.12): a run \
                     can signal the harness's monitor and zygote (breaking the container, not \
                     reaching another run's data) and connect to abstract unix sockets"
                .into(),
        });
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_isolates_every_run_and_names_no_tenant_data() {
        let plan = harness_plan(Arch::X86_64, "/tmp/spr", "/dev/shm").unwrap();
        assert_eq!(plan.fresh, Freshness::Scrub);
        assert_eq!(plan.scratch.as_deref(), Some("/tmp/spr"));
        assert!(plan.own_scratch && plan.caps && !plan.nproc);
        let ll = plan.landlock.as_ref().unwrap();
        assert_eq!(ll.abi, None);
        assert_eq!(ll.fs, 0);
        assert_eq!(
            ll.scoped,
            LANDLOCK_SCOPE_SIGNAL | LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
        );
        assert_eq!(plan.oom_score_adj, Some(1000));
        assert_eq!(plan.policies, vec![RunnerPolicy::default()]);
        let quads = plan.seccomp.as_ref().unwrap();
        assert_eq!(
            quads.len(),
            run_filter(Arch::X86_64).unwrap().instructions.len()
        );
        // The plan is one argument: it must survive a JSON round trip unchanged.
        let back: HarnessPlan = serde_json::from_str(&plan.to_arg()).unwrap();
        assert_eq!(back, plan);
        let arm = harness_plan(Arch::Aarch64, "/tmp/spr", "/dev/shm").unwrap();
        assert_ne!(
            arm.seccomp, plan.seccomp,
            "the filter follows the image's architecture"
        );
        assert_eq!(
            plan.process_seccomp.as_ref().unwrap().len(),
            Program::no_processes(Arch::X86_64)
                .unwrap()
                .instructions
                .len()
        );
        assert_ne!(arm.process_seccomp, plan.process_seccomp);
        assert_eq!(plan.scrubbed_dirs, vec!["/dev/shm".to_string()]);
    }

    #[test]
    fn architectures_come_from_the_image_and_unknown_ones_are_refused() {
        assert_eq!(image_arch("i", Some("amd64")).unwrap(), Arch::X86_64);
        assert_eq!(image_arch("i", Some("arm64")).unwrap(), Arch::Aarch64);
        let err = image_arch("img:1", Some("s390x")).unwrap_err();
        assert!(matches!(err, IsolationError::UnsupportedArch { .. }));
        assert!(
            err.to_string().contains("'img:1' is built for 's390x'"),
            "{err}"
        );
        assert!(image_arch("img:1", None).is_err());
    }

    #[test]
    fn a_greeting_without_seccomp_or_dropped_capabilities_is_refused() {
        let good = RunIsolation {
            scratch: "scrubbed".into(),
            landlock_abi: Some(7),
            landlock_scoped: true,
            seccomp: true,
            capabilities_dropped: true,
            process_filter: true,
            dev_shm: Some(DevShm::Scrubbed),
            ..RunIsolation::default()
        };
        assert!(check(&good).is_ok());
        assert!(missing(&good).is_empty());
        for bad in [
            RunIsolation {
                seccomp: false,
                ..good.clone()
            },
            RunIsolation {
                capabilities_dropped: false,
                ..good.clone()
            },
            RunIsolation {
                scratch: "tmpfs".into(),
                ..good.clone()
            },
            RunIsolation {
                process_filter: false,
                ..good.clone()
            },
            RunIsolation {
                dev_shm: None,
                ..good.clone()
            },
        ] {
            assert!(
                matches!(check(&bad), Err(IsolationError::NotApplied(_))),
                "{bad:?}"
            );
        }
        let old_kernel = RunIsolation {
            landlock_abi: None,
            landlock_scoped: false,
            ..good
        };
        assert!(check(&old_kernel).is_ok(), "Landlock may be missing");
        assert_eq!(missing(&old_kernel)[0].name, "landlock");
    }
}

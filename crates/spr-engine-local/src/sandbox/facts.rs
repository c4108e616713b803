//! What a worker's set-up reported on its report pipe: the protections applied, or the
//! step that failed and its errno, turned into words.

use super::plan::{self, Step};
use super::steps::{self, Stage};
use std::io::Read;

/// What the child reported after set-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    pub applied: u32,
    /// The step that failed and its errno, when set-up failed.
    pub failure: Option<(u32, i32)>,
}

impl Facts {
    pub(crate) fn read(pipe: &mut std::fs::File) -> Facts {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        Facts::parse(&buf)
    }

    pub(crate) fn parse(buf: &[u8]) -> Facts {
        let mut facts = Facts::default();
        for rec in buf.chunks_exact(12) {
            let kind = u32::from_le_bytes(rec[..4].try_into().expect("4 bytes"));
            let a = u32::from_le_bytes(rec[4..8].try_into().expect("4 bytes"));
            let b = i32::from_le_bytes(rec[8..].try_into().expect("4 bytes"));
            match kind {
                steps::RECORD_APPLIED => facts.applied |= a,
                steps::RECORD_FAILED => facts.failure = Some((a, b)),
                _ => {}
            }
        }
        facts
    }

    pub(crate) fn has(&self, bit: u32) -> bool {
        self.applied & bit != 0
    }
}

/// "sandbox set-up failed: could not <step>: <errno>" for a failure record.
pub(crate) fn describe_failure(step: u32, errno: i32, mounts: &[Step]) -> String {
    let what = if step >= steps::STEP_MOUNT_BASE {
        let i = (step - steps::STEP_MOUNT_BASE) as usize;
        mounts
            .get(i)
            .map(plan::describe)
            .unwrap_or_else(|| format!("complete mount step {i}"))
    } else {
        Stage::from_u32(step)
            .map(|s| s.describe().to_string())
            .unwrap_or_else(|| format!("complete step {step}"))
    };
    format!(
        "sandbox set-up failed: could not {what}: {}",
        std::io::Error::from_raw_os_error(errno)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u32, a: u32, b: i32) -> Vec<u8> {
        [kind.to_le_bytes(), a.to_le_bytes(), b.to_le_bytes()].concat()
    }

    #[test]
    fn records_are_decoded_and_a_torn_tail_ignored() {
        let mut buf = record(steps::RECORD_APPLIED, 5, 0);
        buf.extend(record(steps::RECORD_FAILED, Stage::Seccomp as u32, 22));
        buf.extend([1, 2, 3]);
        let f = Facts::parse(&buf);
        assert_eq!(f.applied, 5);
        assert_eq!(f.failure, Some((Stage::Seccomp as u32, 22)));
        assert_eq!(
            describe_failure(Stage::Seccomp as u32, 22, &[]),
            "sandbox set-up failed: could not install the seccomp filter: Invalid argument (os error 22)"
        );
    }

    #[test]
    fn a_mount_step_failure_names_the_mount() {
        let mounts = vec![Step::PivotRoot(c"/tmp".to_owned())];
        assert!(describe_failure(steps::STEP_MOUNT_BASE, 1, &mounts).contains("pivot_root"));
    }
}

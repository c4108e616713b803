//! The Python harness, embedded so that a host never runs a harness of another version.

/// Source of the harness that every worker (local or in a container) runs.
pub const HARNESS_SOURCE: &str = include_str!("../python/spr_harness.py");

/// File name used when the harness is written to disk (container images, caches).
pub const HARNESS_FILE_NAME: &str = "spr_harness.py";

/// A stable fingerprint of [`HARNESS_SOURCE`] (FNV-1a, 64 bit, hex), carried in the
/// worker's greeting and in image labels so stale copies are detected.
pub fn harness_hash() -> String {
    format!("{:016x}", fnv1a64(HARNESS_SOURCE.as_bytes()))
}

const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_hex_of_sixteen_digits() {
        let h = harness_hash();
        assert_eq!(h.len(), 16);
        assert_eq!(h, harness_hash());
        assert_eq!(format!("{:016x}", fnv1a64(b"")), "cbf29ce484222325");
    }
}

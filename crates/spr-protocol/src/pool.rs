//! The default size of an engine's warm pool, shared by every engine and the CLI.

/// The largest pool an engine makes when its configuration says nothing.
pub const MAX_DEFAULT_POOL_SIZE: usize = 4;

/// The most workers (or containers) an engine's pool may have.
pub const MAX_POOL_SIZE: usize = 256;
/// The most sessions an engine may hold open at once.
pub const MAX_SESSIONS: usize = 4096;

/// `min(cores, 4)`, as the original: the pool of an engine whose `pool_size` is `None`.
pub fn default_pool_size() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(MAX_DEFAULT_POOL_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pool_is_between_one_and_four() {
        let n = default_pool_size();
        assert!((1..=MAX_DEFAULT_POOL_SIZE).contains(&n), "{n}");
    }
}

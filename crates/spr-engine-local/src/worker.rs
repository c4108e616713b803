//! worker (in progress).

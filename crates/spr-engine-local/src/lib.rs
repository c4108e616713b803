//! Local engine placeholder.

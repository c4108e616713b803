//! The `spr` command-line interface.
fn main() {}

//! `cargo xtask`: project automation (tidy checks, benchmarks, images, release).

fn main() {
    eprintln!("xtask: not implemented yet");
    std::process::exit(2);
}

//! `cargo xtask`: project automation (tidy checks, benchmarks, the runtime image, release).
//!
//! Arguments are parsed by hand: the commands are few and flat, and keeping xtask's dependency list short
//! keeps `cargo xtask` quick to build from a clean checkout.

mod bench;
mod bench_http;
mod bench_pandas;
mod bench_python;
mod image;
mod python;
mod release;
mod sandbox_runs;
mod tidy;
mod util;

use util::{refused, repo_root, Error};

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  tidy                          check layering, file headers, ignored tests, SAFETY comments, required docs
  test [--no-sandbox-runs | --sandbox-runs-only]
                                fmt --check, clippy -D warnings, tidy, then nextest (or cargo test);
                                then the sandbox tests (SANDBOX_TESTS in xtask/src/sandbox_runs.rs)
                                again as the unprivileged user spr-ci (SPR_CI_USER names another;
                                made by .ci/users-setup.sh; needs root) and inside
                                `unshare --user --map-root-user`. Under CI=true both runs are
                                mandatory; elsewhere a run this machine cannot do is skipped loudly.
                                the Python package is installed with pip into a venv and its
                                pytest suite (crates/spr-python/tests) runs after the Rust suite
                                --no-sandbox-runs: the suite only (refused under CI=true)
                                --sandbox-runs-only: the two sandbox runs only
  bench [--engine local|docker] [--runs N] [--pool-size N] [--seconds S] [--write]
        [--http [--clients N]] [--pandas] [--python]
                                latency and throughput of `spr serve --stdio`; with --http,
                                of `spr serve --http` (one kept-alive connection, N clients,
                                and the server's memory through a flood of 1 MiB requests);
                                with --pandas, a pandas snippet with and without --preload;
                                with --python, `run_code` from the Python package
  image [args]                  build the Docker runtime image
  set-version X.Y.Z[-pre]       set the workspace version and the inter-crate dependency versions
  metadata                      render release_metadata.md into .github/release/metadata.json
  commit                        git add -A and commit with commit_message.txt (validated)
  tag                           create the annotated tag v<version> (takes no argument)
  release [--dry-run]           metadata, test, commit, tag, in that order
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(e.exit_code());
        }
    }
}

fn no_args(cmd: &str, rest: &[String]) -> Result<(), Error> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(refused(format!(
            "`{cmd}` takes no arguments (got: {})",
            rest.join(" ")
        )))
    }
}

fn dispatch(args: &[String]) -> Result<(), Error> {
    let root = repo_root();
    let Some((cmd, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return Err(refused("no command given"));
    };
    match cmd.as_str() {
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        "tidy" => {
            no_args(cmd, rest)?;
            tidy::run(&root)
        }
        "test" => {
            let runs = sandbox_runs::parse_test_args(rest).map_err(refused)?;
            release::test(&root, runs)
        }
        "bench" => bench::run(&root, rest),
        "image" => image::run(rest).map_err(|e| util::failed(format!("image: {e}"))),
        "set-version" => match rest {
            [version] => release::set_version_cmd(&root, version),
            [] => Err(refused(
                "set-version needs a version, e.g. `cargo xtask set-version 0.2.0`",
            )),
            _ => Err(refused(format!(
                "set-version takes exactly one version (got: {})",
                rest.join(" ")
            ))),
        },
        "metadata" => {
            no_args(cmd, rest)?;
            release::metadata(&root).map(|_| ())
        }
        "commit" => {
            no_args(cmd, rest)?;
            release::commit(&root)
        }
        "tag" => release::tag(&root, rest).map(|_| ()),
        "release" => {
            let dry_run = match rest {
                [] => false,
                [flag] if flag == "--dry-run" => true,
                _ => {
                    return Err(refused(format!(
                        "release takes only --dry-run (got: {})",
                        rest.join(" ")
                    )))
                }
            };
            release::release(&root, dry_run, &|r| {
                release::test(r, sandbox_runs::Runs::All)
            })
        }
        other => {
            eprint!("{USAGE}");
            Err(refused(format!("unknown command `{other}`")))
        }
    }
}

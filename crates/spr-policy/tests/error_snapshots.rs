//! Snapshots of the Display of every error kind, so message changes are deliberate.

mod common;

use common::error;
use spr_policy::{validate_pinned_packages, RunnerPolicy};

#[test]
fn read_error() {
    insta::assert_snapshot!(RunnerPolicy::from_file("/x/p.toml")
        .unwrap_err()
        .to_string());
}

#[test]
fn syntax_error() {
    insta::assert_snapshot!(error("[policy]\nmode = \"allow\"\n[policy.extra_globals\n"));
}

#[test]
fn unknown_key_error() {
    insta::assert_snapshot!(error(
        "[policy]\nmode = \"allow\"\nallowed_import = [\"math\"]\n"
    ));
}

#[test]
fn unknown_top_level_key_error() {
    insta::assert_snapshot!(error(
        "memory_limit_mb = 64\n\n[policy]\nmode = \"allow\"\n"
    ));
}

#[test]
fn range_error() {
    insta::assert_snapshot!(error(
        "[policy]\nmode = \"restrict\"\ntimeout_seconds = 0\n"
    ));
}

#[test]
fn type_error() {
    insta::assert_snapshot!(error("[policy]\nmemory_limit_mb = \"256\"\n"));
}

#[test]
fn float_type_error() {
    insta::assert_snapshot!(error("[policy]\ntimeout_seconds = 1.9\n"));
}

#[test]
fn mode_error() {
    insta::assert_snapshot!(error("[policy]\nmode = \"deny\"\n"));
}

#[test]
fn policy_not_a_table_error() {
    insta::assert_snapshot!(error("policy = [\"os\"]\n"));
}

#[test]
fn list_item_type_error() {
    insta::assert_snapshot!(error("[policy]\nblocked_builtins = [\"eval\", 3]\n"));
}

#[test]
fn module_name_error() {
    insta::assert_snapshot!(error(
        "[policy]\nblocked_imports = [\"os\", \"os..path\"]\n"
    ));
}

#[test]
fn identifier_error() {
    insta::assert_snapshot!(error("[policy]\nallowed_globals = [\"x-y\"]\n"));
}

#[test]
fn reserved_extra_global_error() {
    insta::assert_snapshot!(error("[policy.extra_globals]\ninput_data = 1\n"));
}

#[test]
fn datetime_error() {
    insta::assert_snapshot!(error(
        "[policy.extra_globals]\nwhen = 1979-05-27T07:32:00Z\n"
    ));
}

#[test]
fn validate_error_without_location() {
    let p = RunnerPolicy {
        memory_limit_mb: 8,
        ..RunnerPolicy::default()
    };
    insta::assert_snapshot!(p.validate().unwrap_err().to_string());
}

#[test]
fn unpinned_package_error() {
    insta::assert_snapshot!(validate_pinned_packages(&["pandas>=2"])
        .unwrap_err()
        .to_string());
}

#[test]
fn unsafe_package_version_error() {
    insta::assert_snapshot!(validate_pinned_packages(&["x==1.0;rm"])
        .unwrap_err()
        .to_string());
}

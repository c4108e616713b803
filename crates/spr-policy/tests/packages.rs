//! Pinned package specs: normalised like the original, stricter where it was unsafe.

use spr_policy::{validate_pinned_packages, PackageSpecError};

fn refused(spec: &str) -> PackageSpecError {
    validate_pinned_packages(&[spec]).unwrap_err()
}

#[test]
fn specs_are_stripped_deduplicated_and_sorted_with_empties_dropped() {
    assert_eq!(
        validate_pinned_packages(&["b==1", " a==2", "", "a==2"]).unwrap(),
        ["a==2", "b==1"]
    );
}

#[test]
fn an_empty_list_is_valid() {
    assert!(validate_pinned_packages::<&str>(&[]).unwrap().is_empty());
}

#[test]
fn a_trailing_space_is_stripped() {
    assert_eq!(
        validate_pinned_packages(&["pandas==2.2.2 "]).unwrap(),
        ["pandas==2.2.2"]
    );
}

#[test]
fn owned_strings_are_accepted() {
    let specs = vec![String::from("numpy==1.26.4")];
    assert_eq!(validate_pinned_packages(&specs).unwrap(), ["numpy==1.26.4"]);
}

#[test]
fn an_unpinned_spec_gets_the_originals_message() {
    assert_eq!(
        refused("pandas").to_string(),
        "Package specs must be pinned as 'name==version'. Invalid package: pandas"
    );
}

#[test]
fn specs_the_original_rejected_are_rejected_as_unpinned() {
    for spec in [
        "pandas",
        "pandas>=2",
        "pandas == 2.2.2",
        "pandas===2",
        "pandas==2.2.2; python_version>'3'",
        "==1.0",
        "pandas==",
    ] {
        assert!(
            matches!(refused(spec), PackageSpecError::Unpinned { .. }),
            "{spec:?}"
        );
    }
}

#[test]
fn extras_are_allowed() {
    assert_eq!(
        validate_pinned_packages(&["pandas[sql,excel]==2.2.2"]).unwrap(),
        ["pandas[sql,excel]==2.2.2"]
    );
}

#[test]
fn malformed_extras_are_refused() {
    for spec in [
        "pandas[]==1",
        "pandas[sql==1",
        "pandas[a b]==1",
        "pandas[a,]==1",
    ] {
        assert!(
            matches!(refused(spec), PackageSpecError::Unpinned { .. }),
            "{spec:?}"
        );
    }
}

#[test]
fn a_name_must_start_with_a_letter_or_digit_so_it_cannot_be_an_installer_option() {
    for spec in ["-e==1", "--index-url==x", "_x==1", ".x==1"] {
        assert!(
            matches!(refused(spec), PackageSpecError::Unpinned { .. }),
            "{spec:?}"
        );
    }
}

#[test]
fn names_with_dots_dashes_and_underscores_are_valid() {
    validate_pinned_packages(&["zope.interface==6.0", "typing-extensions==4.9.0", "a_b==1"])
        .unwrap();
}

#[test]
fn shell_metacharacters_in_the_version_are_refused() {
    assert_eq!(
        refused("x==1.0;rm").to_string(),
        "Invalid version in package spec 'x==1.0;rm': character ';' is not allowed (versions may use letters, digits and . ! + - _ *)"
    );
    for spec in [
        "x==1|sh", "x==$(id)", "x==1&", "x==`id`", "x==1>f", "x==1,<2",
    ] {
        assert!(
            matches!(refused(spec), PackageSpecError::InvalidVersion { .. }),
            "{spec:?}"
        );
    }
}

#[test]
fn pep_440_versions_are_valid() {
    validate_pinned_packages(&["a==1!2.0.post1", "b==1.0+local.7", "c==2.0rc1", "d==1.*"]).unwrap();
}

#[test]
fn the_first_invalid_spec_in_sorted_order_is_reported() {
    assert_eq!(
        validate_pinned_packages(&["zz", "aa"]).unwrap_err(),
        PackageSpecError::Unpinned { spec: "aa".into() }
    );
}

//! Validation of the pinned package specs (`name==version`) both engines install.

/// Why a package spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackageSpecError {
    /// Not of the form `name==version` (the original's message, word for word).
    #[error("Package specs must be pinned as 'name==version'. Invalid package: {spec}")]
    Unpinned { spec: String },
    /// Pinned, but the version holds a character no version needs and a shell or an
    /// installer might interpret (the original let `x==1.0;rm` through).
    #[error("Invalid version in package spec '{spec}': character {character:?} is not allowed (versions may use letters, digits and . ! + - _ *)")]
    InvalidVersion { spec: String, character: char },
}

/// Normalises and checks pinned package specs: each is stripped, empty ones are dropped,
/// the rest deduplicated and sorted (so equal lists give equal venvs), then each must be
/// `name==version` or `name[extra,...]==version`.
///
/// ```
/// use spr_policy::validate_pinned_packages;
/// let specs = validate_pinned_packages(&["b==1", " a==2", "", "a==2"]).unwrap();
/// assert_eq!(specs, ["a==2", "b==1"]);
/// assert!(validate_pinned_packages(&["pandas>=2"]).is_err());
/// ```
pub fn validate_pinned_packages<S: AsRef<str>>(
    specs: &[S],
) -> Result<Vec<String>, PackageSpecError> {
    let mut out: Vec<String> = specs
        .iter()
        .map(|s| s.as_ref().trim())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    for spec in &out {
        check_spec(spec)?;
    }
    Ok(out)
}

fn check_spec(spec: &str) -> Result<(), PackageSpecError> {
    let unpinned = || PackageSpecError::Unpinned {
        spec: spec.to_string(),
    };
    let (requirement, version) = spec.split_once("==").ok_or_else(unpinned)?;
    // Whitespace and '=' were the original's only version rules; keep its message for them.
    if version.is_empty() || version.contains(|c: char| c == '=' || c.is_whitespace()) {
        return Err(unpinned());
    }
    let (name, extras) = match requirement.split_once('[') {
        Some((name, rest)) => (name, Some(rest.strip_suffix(']').ok_or_else(unpinned)?)),
        None => (requirement, None),
    };
    if !is_name(name) {
        return Err(unpinned());
    }
    if let Some(extras) = extras {
        if !extras.split(',').all(is_name) {
            return Err(unpinned());
        }
    }
    if let Some(character) = version
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ".!+-_*".contains(*c)))
    {
        return Err(PackageSpecError::InvalidVersion {
            spec: spec.to_string(),
            character,
        });
    }
    Ok(())
}

/// `[A-Za-z0-9][A-Za-z0-9_.-]*`: a leading alphanumeric also keeps a spec from being read
/// as an installer option such as `-e` or `--index-url`.
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

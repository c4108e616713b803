//! What the front doors for untrusted clients (`spr serve --http`, `spr mcp`) share: the
//! operator's profiles and how a client's request may narrow them (here), their command
//! line options ([`args`]), the bearer token and where a server may listen ([`token`]),
//! escaping client text for logs ([`loggable`]), the HTTP plumbing ([`http`]), reading a
//! body under its cap ([`body`]) and serving connections ([`connections`]).
//!
//! Clients are not trusted with the policy. The operator names policies (`--policy FILE`
//! is the default profile, `--profile NAME=FILE` adds named ones); a request picks one
//! and may only lower its `timeout_seconds`, `memory_limit_mb` and `max_output_kb`.

mod args;
pub mod body;
mod connections;
mod http;
mod loggable;
mod token;

pub use args::{parse_addr, parse_profile, FrontOpts};
pub use body::BodyError;
pub use connections::serve_until;
pub use http::{bind, error_response, require_token, TokenLayerState};
pub use token::Token;

use crate::error::CliError;
use crate::policy;
use serde_json::{Map, Value};
use spr_core::RunnerPolicy;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The keys a request's `policy` may set, each only to a value at most its profile's.
pub const NARROWABLE: &[&str] = &["timeout_seconds", "memory_limit_mb", "max_output_kb"];

/// The operator's policies.
#[derive(Debug, Clone)]
pub struct Profiles {
    default: RunnerPolicy,
    named: BTreeMap<String, RunnerPolicy>,
}

/// Why a request's profile or policy is refused. The messages name what is wrong and
/// only echo what the client sent quoted, escaped and cut ([`loggable`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyRefusal {
    /// 400: the client named a profile the operator did not configure.
    #[error("unknown profile \"{}\" (configured: {})", loggable(.0), .1)]
    UnknownProfile(String, String),
    /// 403: a key a client may not set, or a value above its profile's.
    #[error("policy key \"{}\" may not be set by a client: {why}", loggable(.key))]
    Forbidden { key: String, why: String },
    /// 400: not a policy object at all, or a value of the wrong type.
    #[error("invalid policy: {0}")]
    Invalid(String),
}

impl PolicyRefusal {
    /// The HTTP status of the refusal.
    #[allow(dead_code)] // `spr serve --http` answers with it; MCP refusals are tool errors
    pub fn status(&self) -> u16 {
        match self {
            PolicyRefusal::Forbidden { .. } => 403,
            PolicyRefusal::UnknownProfile(..) | PolicyRefusal::Invalid(_) => 400,
        }
    }
}

impl Profiles {
    /// The default profile from `--policy` (built-in default without one) and the named
    /// ones from `--profile NAME=FILE`. A bad file is the server's usage error.
    pub fn load(default: Option<&Path>, named: &[(String, PathBuf)]) -> Result<Profiles, CliError> {
        let default = match default {
            Some(path) => policy::load(path)?,
            None => RunnerPolicy::default(),
        };
        let mut map = BTreeMap::new();
        for (name, path) in named {
            if map.insert(name.clone(), policy::load(path)?).is_some() {
                return Err(CliError::usage(format!("--profile {name} is given twice")));
            }
        }
        Ok(Profiles {
            default,
            named: map,
        })
    }

    /// Profiles made in code.
    #[cfg(test)]
    pub fn new(default: RunnerPolicy, named: BTreeMap<String, RunnerPolicy>) -> Profiles {
        Profiles { default, named }
    }

    /// The policy of the default profile (`--policy`, else the built-in default).
    pub fn default_policy(&self) -> &RunnerPolicy {
        &self.default
    }

    /// The names a request may pick ("default" is always one).
    pub fn names(&self) -> Vec<String> {
        std::iter::once("default".to_string())
            .chain(self.named.keys().cloned())
            .collect()
    }

    /// The policy of one request: its profile (`None`: the default) narrowed by its
    /// `policy` object, if it has one.
    pub fn resolve(
        &self,
        profile: Option<&str>,
        overrides: Option<&Map<String, Value>>,
    ) -> Result<RunnerPolicy, PolicyRefusal> {
        let base = match profile {
            None | Some("default") => &self.default,
            Some(name) => self.named.get(name).ok_or_else(|| {
                PolicyRefusal::UnknownProfile(name.to_string(), self.names().join(", "))
            })?,
        };
        match overrides {
            None => Ok(base.clone()),
            Some(map) => narrow(base, map),
        }
    }
}

/// `base` with the limits `overrides` lowers; anything else is refused.
pub fn narrow(
    base: &RunnerPolicy,
    overrides: &Map<String, Value>,
) -> Result<RunnerPolicy, PolicyRefusal> {
    let mut policy = base.clone();
    for (key, value) in overrides {
        let current = match key.as_str() {
            "timeout_seconds" => policy.timeout_seconds,
            "memory_limit_mb" => policy.memory_limit_mb,
            "max_output_kb" => policy.max_output_kb,
            _ => {
                return Err(PolicyRefusal::Forbidden {
                    key: key.clone(),
                    why: format!(
                        "only {} can be lowered by a request; the operator's profile sets the rest",
                        NARROWABLE.join(", ")
                    ),
                })
            }
        };
        let Some(wanted) = value.as_u64() else {
            return Err(PolicyRefusal::Invalid(format!(
                "{key}: expected a non-negative integer, got {}",
                crate::run::json_type(value)
            )));
        };
        if wanted > current {
            return Err(PolicyRefusal::Forbidden {
                key: key.clone(),
                why: format!("{wanted} is above the profile's {current}"),
            });
        }
        match key.as_str() {
            "timeout_seconds" => policy.timeout_seconds = wanted,
            "memory_limit_mb" => policy.memory_limit_mb = wanted,
            _ => policy.max_output_kb = wanted,
        }
    }
    // Lower is not always valid (a timeout of 0, 8 MB of memory): the same checks as a
    // policy file's.
    policy
        .validate()
        .map_err(|e| PolicyRefusal::Invalid(e.to_string()))?;
    Ok(policy)
}

pub use loggable::loggable;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    fn profiles() -> Profiles {
        let strict = RunnerPolicy {
            timeout_seconds: 2,
            ..RunnerPolicy::default()
        };
        Profiles::new(
            RunnerPolicy::default(),
            BTreeMap::from([("strict".to_string(), strict)]),
        )
    }

    #[test]
    fn a_request_may_lower_the_three_limits_of_its_profile() {
        let p = profiles()
            .resolve(
                Some("default"),
                Some(&map(
                    json!({"timeout_seconds": 1, "memory_limit_mb": 64, "max_output_kb": 0}),
                )),
            )
            .unwrap();
        assert_eq!(
            (p.timeout_seconds, p.memory_limit_mb, p.max_output_kb),
            (1, 64, 0)
        );
        assert_eq!(
            profiles()
                .resolve(Some("strict"), None)
                .unwrap()
                .timeout_seconds,
            2
        );
    }

    #[test]
    fn raising_a_limit_or_any_other_key_is_forbidden_and_named() {
        let err = profiles()
            .resolve(Some("strict"), Some(&map(json!({"timeout_seconds": 3}))))
            .unwrap_err();
        assert_eq!(err.status(), 403);
        assert_eq!(
            err.to_string(),
            "policy key \"timeout_seconds\" may not be set by a client: 3 is above the profile's 2"
        );
        for key in [
            "blocked_imports",
            "mode",
            "sandbox",
            "config_path",
            "extra_globals",
        ] {
            let err = profiles()
                .resolve(None, Some(&map(json!({key: []}))))
                .unwrap_err();
            assert!(
                matches!(err, PolicyRefusal::Forbidden { ref key, .. } if key == key),
                "{err}"
            );
            assert_eq!(err.status(), 403);
        }
    }

    #[test]
    fn refusals_cut_what_they_repeat() {
        let long = "x\n".repeat(1 << 19);
        let unknown = profiles().resolve(Some(&long), None).unwrap_err();
        let forbidden = profiles()
            .resolve(None, Some(&map(json!({long.clone(): 1}))))
            .unwrap_err();
        for err in [unknown, forbidden] {
            let message = err.to_string();
            assert!(message.len() < 400, "{} bytes", message.len());
            assert!(message.contains("x\\nx\\n"), "{message}");
        }
    }

    #[test]
    fn odd_input_is_a_bad_request_and_quoted() {
        let err = profiles()
            .resolve(Some("nope\n\u{1b}[31m"), None)
            .unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("\"nope\\n\\u{1b}[31m\""), "{err}");
        let err = profiles()
            .resolve(None, Some(&map(json!({"timeout_seconds": "1"}))))
            .unwrap_err();
        assert_eq!(err.status(), 400);
        let err = profiles()
            .resolve(None, Some(&map(json!({"timeout_seconds": 0}))))
            .unwrap_err();
        assert_eq!(err.status(), 400, "{err}");
    }
}

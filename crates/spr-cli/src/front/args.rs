//! The options every front door for untrusted clients takes: the operator's profiles
//! (`--policy`, `--profile NAME=FILE`) and the bearer token (`--token-file`, else
//! `SPR_TOKEN`).

use super::{Profiles, Token};
use crate::error::CliError;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Longest profile name: it travels in URLs and log lines.
pub const MAX_PROFILE_NAME: usize = 64;

#[derive(Debug, Clone, Args)]
pub struct FrontOpts {
    /// TOML policy file of the default profile (default: the built-in default policy).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// A named profile, a policy file clients may pick by NAME; repeatable.
    #[arg(long = "profile", value_name = "NAME=FILE", value_parser = parse_profile)]
    pub profiles: Vec<(String, PathBuf)>,
    /// File holding the bearer token clients must send [default: $SPR_TOKEN].
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl FrontOpts {
    /// Load every profile now: a bad file is the server's usage error, not a client's.
    pub fn profiles(&self) -> Result<Profiles, CliError> {
        Profiles::load(self.policy.as_deref(), &self.profiles)
    }

    /// The token, if one is configured.
    pub fn token(&self) -> Result<Option<Token>, CliError> {
        Token::load(self.token_file.as_deref())
    }
}

/// `NAME=FILE`. Names are what a client writes to pick a profile (in a URL, a header, a
/// request), so they are short and plain: letters, digits, `-`, `_` and `.`.
pub fn parse_profile(arg: &str) -> Result<(String, PathBuf), String> {
    let Some((name, file)) = arg.split_once('=') else {
        return Err("expected NAME=FILE, such as strict=policies/strict.toml".to_string());
    };
    if name.is_empty() || name.len() > MAX_PROFILE_NAME {
        return Err(format!(
            "a profile name has 1 to {MAX_PROFILE_NAME} characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "profile name {name:?}: use only letters, digits, '-', '_' and '.'"
        ));
    }
    if name == "default" {
        return Err("\"default\" is the --policy profile; give this one another name".to_string());
    }
    if file.is_empty() {
        return Err(format!("profile {name}: the policy FILE is missing"));
    }
    Ok((name.to_string(), PathBuf::from(file)))
}

/// `ADDR` of `--http`: an IP address and port (`127.0.0.1:8080`, `[::1]:0`), or
/// `localhost:PORT` for 127.0.0.1.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    if let Some(port) = text.strip_prefix("localhost:") {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{port:?} is not a port number"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse().map_err(|_| {
        "expected IP:PORT, such as 127.0.0.1:8080 or [::1]:8080 (port 0 picks a free one)"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            parse_addr("localhost:8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(parse_addr("[::1]:0").unwrap(), "[::1]:0".parse().unwrap());
        assert!(parse_addr("example.com:80").is_err());
        assert!(parse_addr("127.0.0.1").is_err());
    }

    #[test]
    fn profile_arguments_are_name_equals_file() {
        assert_eq!(
            parse_profile("strict=a=b.toml").unwrap(),
            ("strict".to_string(), PathBuf::from("a=b.toml"))
        );
        for bad in [
            "strict",
            "=x.toml",
            "s t=x.toml",
            "default=x.toml",
            "x=",
            "a/b=x",
        ] {
            assert!(parse_profile(bad).is_err(), "{bad}");
        }
    }
}

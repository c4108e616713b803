//! The bearer token an HTTP front door requires, and the refusal to listen beyond
//! loopback without one.

use crate::error::CliError;
use std::net::SocketAddr;
use std::path::Path;

/// The bearer token a server requires, from `--token-file` or `SPR_TOKEN`.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A token file is one line; anything larger is the wrong file.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// Shortest token accepted: a guessable one would be no protection.
pub const MIN_TOKEN_LEN: usize = 16;

impl Token {
    /// `--token-file` wins over `SPR_TOKEN`; neither means no token.
    pub fn load(file: Option<&Path>) -> Result<Option<Token>, CliError> {
        let text = match file {
            Some(path) => {
                let what = format!("--token-file {}", path.display());
                let bytes = crate::local_file::read(
                    path,
                    MAX_TOKEN_FILE_BYTES,
                    &format!("{what}: cannot read it"),
                )?;
                Some(String::from_utf8(bytes).map_err(|e| {
                    CliError::usage(format!("{what}: not valid UTF-8")).caused_by(e)
                })?)
            }
            // Set but empty is unset: `SPR_TOKEN= spr serve ...` must not read as a token.
            None => std::env::var("SPR_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty()),
        };
        let Some(text) = text else {
            return Ok(None);
        };
        let token = text.trim().to_string();
        if token.len() < MIN_TOKEN_LEN || token.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(CliError::usage(format!(
                "the token must be at least {MIN_TOKEN_LEN} printable ASCII characters without spaces"
            )));
        }
        Ok(Some(Token(token)))
    }

    #[cfg(test)]
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }

    /// Whether an `Authorization` header value carries this token
    /// (`Bearer <token>`), compared in constant time.
    pub fn accepts(&self, authorization: Option<&str>) -> bool {
        // The scheme name is case-insensitive (RFC 9110, section 11.1).
        let Some(given) = authorization
            .and_then(|h| h.split_at_checked(7))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer "))
            .map(|(_, token)| token)
        else {
            return false;
        };
        let (a, b) = (given.trim().as_bytes(), self.0.as_bytes());
        let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
        for (i, byte) in b.iter().enumerate() {
            diff |= byte ^ a.get(i).copied().unwrap_or(0);
        }
        diff == 0
    }
}

/// Refuse to listen beyond loopback without a token: anyone who can reach the port could
/// run code under the operator's profiles.
pub fn check_bind(addr: &SocketAddr, token: Option<&Token>) -> Result<(), CliError> {
    if addr.ip().is_loopback() || token.is_some() {
        return Ok(());
    }
    Err(CliError::usage(format!(
        "refusing to listen on {addr} without a token: set --token-file FILE or SPR_TOKEN, or bind a loopback address such as 127.0.0.1"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_a_bearer_token_compared_whole() {
        let t = Token::new("0123456789abcdef");
        assert!(t.accepts(Some("Bearer 0123456789abcdef")));
        assert!(t.accepts(Some("bearer 0123456789abcdef")));
        assert!(t.accepts(Some("BEARER 0123456789abcdef")));
        for wrong in [
            None,
            Some("0123456789abcdef"),
            Some("Bearer 0123456789abcdeg"),
            Some("Bearer 0123456789abcde"),
            Some("Bearer 0123456789abcdef0"),
            Some("Basic 0123456789abcdef"),
        ] {
            assert!(!t.accepts(wrong), "{wrong:?}");
        }
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
    }

    #[test]
    fn only_loopback_is_served_without_a_token() {
        let t = Token::new("0123456789abcdef");
        assert!(check_bind(&"127.0.0.1:8080".parse().unwrap(), None).is_ok());
        assert!(check_bind(&"[::1]:8080".parse().unwrap(), None).is_ok());
        assert!(check_bind(&"0.0.0.0:8080".parse().unwrap(), None).is_err());
        assert!(check_bind(&"0.0.0.0:8080".parse().unwrap(), Some(&t)).is_ok());
    }
}

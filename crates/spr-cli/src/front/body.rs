//! Reading a request body under the size cap, counted while it streams: never more than
//! the cap is held, and a body that declares more is refused before any of it is read.
//! Both HTTP front doors read their bodies here (`POST /v1/runs`, `POST /mcp`).
//!
//! A refused body is read on and dropped for a little while ("lingering", as web servers
//! do) instead of closing the connection on it: a socket closed with unread data in it
//! resets, and the reset can destroy the 413 the client was about to read.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use http_body_util::BodyExt;
use std::time::Duration;

/// Whole bodies must arrive within this time; a client that trickles its body would
/// otherwise hold its queue place for ever.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long, and how much, a refused body is read and dropped before its connection is
/// given up.
const LINGER_TIME: Duration = Duration::from_secs(5);
const LINGER_BYTES: u64 = 256 << 20;

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is larger than the server's limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request body did not arrive within {} s", BODY_TIMEOUT.as_secs())]
    Timeout,
    #[error("the request body could not be read")]
    Read(#[source] axum::Error),
}

/// The body's length as declared by `Content-Length`, if it is declared and valid.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Whether the client waits for `100 Continue` before it sends its body: a refused body
/// is then never sent, and must not be asked for.
pub fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

/// The whole body, at most `limit` bytes of it.
pub async fn read(body: Body, headers: &HeaderMap, limit: usize) -> Result<Vec<u8>, BodyError> {
    let declared = declared_length(headers);
    if declared.is_some_and(|n| n > limit as u64) {
        if !expects_continue(headers) {
            linger(body);
        }
        return Err(BodyError::TooLarge { limit });
    }
    match tokio::time::timeout(BODY_TIMEOUT, collect(body, declared, limit)).await {
        Ok(read) => read,
        Err(_elapsed) => Err(BodyError::Timeout),
    }
}

async fn collect(
    mut body: Body,
    declared: Option<u64>,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    // One allocation when the length is declared (and within the limit, checked above).
    let mut buf = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: nothing a run request uses
        };
        if buf.len() + data.len() > limit {
            linger(body);
            return Err(BodyError::TooLarge { limit });
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf)
}

/// Read and drop what is left of a refused body, in the background and within bounds.
fn linger(mut body: Body) {
    tokio::spawn(async move {
        let drain = async {
            let mut seen: u64 = 0;
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    seen += data.len() as u64;
                    if seen > LINGER_BYTES {
                        break;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[tokio::test]
    async fn bodies_are_read_up_to_the_limit() {
        let got = read(Body::from("12345"), &headers(&[]), 5).await.unwrap();
        assert_eq!(got, b"12345");
        let err = read(Body::from("123456"), &headers(&[]), 5)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit: 5 }), "{err}");
    }

    #[tokio::test]
    async fn a_declared_length_above_the_limit_is_refused_unread() {
        let h = headers(&[("content-length", "6"), ("expect", "100-Continue")]);
        assert!(expects_continue(&h));
        assert_eq!(declared_length(&h), Some(6));
        let err = read(Body::from("123456"), &h, 5).await.unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { .. }), "{err}");
    }
}

//! `spr mcp --http`: how many requests are read and answered at once.
//!
//! The SDK reads a body whole (up to [`super::http::MAX_BODY_BYTES`]) before anything
//! can refuse it, and parses it into `serde_json::Value`, several times the text's size.
//! So every `POST /mcp` takes a place before its body is read, holds it until its answer
//! has been written (a call's answer streams while its code runs), and finds none free:
//! 429 with `Retry-After` at once. The body must arrive within `front::body`'s deadline
//! (408). What a flood of requests holds is then bounded by the places, whatever the
//! number of connections.
//!
//! There are twice as many places as calls the server takes (`server::MAX_WAITING_CALLS`
//! beyond its workers): the rest of the protocol (`initialize`, lists, notifications) and
//! a call beyond the server's queue still get an answer, the latter the "busy" tool error
//! a model can read.

use crate::front::{body, error_response, BodyError};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Seconds a refused client is told to wait: calls take milliseconds to seconds.
const RETRY_SECONDS: &str = "1";

/// The places of `POST /mcp` requests.
#[derive(Debug)]
pub struct Places {
    free: Arc<Semaphore>,
    count: usize,
}

impl Places {
    /// Places for a server that takes `calls` calls at once (running or waiting).
    pub fn for_calls(calls: usize) -> Arc<Places> {
        let count = calls * 2;
        Arc::new(Places {
            free: Arc::new(Semaphore::new(count)),
            count,
        })
    }
}

/// Middleware: a `POST` takes a place (or gets 429), its body is read under the cap and
/// the deadline (or 413, 408), and the place is held until its answer is written.
pub async fn bounded(State(places): State<Arc<Places>>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        // GET (a stream of server messages) and DELETE (the end of a session) carry no
        // body; their number is bounded by the connections.
        return next.run(request).await;
    }
    let Ok(place) = places.free.clone().try_acquire_owned() else {
        let mut response = error_response(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "spr is busy: {} requests are being read or answered; retry later",
                places.count
            ),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_SECONDS));
        return response;
    };
    let (parts, body) = request.into_parts();
    let bytes = match body::read(body, &parts.headers, super::http::MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(err) => {
            let status = match err {
                BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
                BodyError::Read(_) => StatusCode::BAD_REQUEST,
            };
            return error_response(status, err.to_string());
        }
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    // The place goes with the answer's body: it is dropped once the body has been written
    // (or its connection is gone).
    let (parts, body) = response.into_parts();
    let body = body.map_frame(move |frame| {
        let _held = &place;
        frame
    });
    Response::from_parts(parts, Body::new(body))
}

//! The HTTP responses the listener builds: JSON-RPC errors with a status, and SSE
//! bodies fed by a session stream (with keep-alive comments, which also reveal dead
//! connections so their streams can be let go).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};

use super::session::Listener;
use crate::wire::jsonrpc::{self, ErrorObject, Message, RawId};
use crate::wire::mcp_http::{EVENT_STREAM, JSON, SSE_KEEP_ALIVE};

/// How often an idle SSE stream gets a comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A JSON-RPC error response with an HTTP status.
pub fn rpc_error(
    status: StatusCode,
    id: Option<RawId>,
    code: i64,
    message: impl Into<String>,
) -> Response {
    let error = ErrorObject::new(code, message);
    let body = Message::error_response(id.unwrap_or_else(jsonrpc::null_id), &error).to_json();
    json(status, body)
}

/// A request refused before it reached a session: the status and the JSON-RPC error
/// the client gets.
#[derive(Debug)]
pub struct Rejection {
    pub status: StatusCode,
    pub id: Option<RawId>,
    pub error: ErrorObject,
}

impl Rejection {
    pub fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Rejection {
            status,
            id: None,
            error: ErrorObject::new(code, message),
        }
    }

    pub fn with_id(mut self, id: Option<RawId>) -> Self {
        self.id = id;
        self
    }

    pub fn with_data(mut self, data: impl serde::Serialize) -> Self {
        self.error = self.error.with_data(data);
        self
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let id = self.id.unwrap_or_else(jsonrpc::null_id);
        json(
            self.status,
            Message::error_response(id, &self.error).to_json(),
        )
    }
}

/// A JSON body with a status.
pub fn json(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

/// An empty response with a status (202 Accepted, 200 after DELETE, ...).
pub fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

/// An SSE response that carries `first` (if any) and then the listener's events, and
/// ends when the stream does.
pub fn event_stream(first: Option<Bytes>, listener: Listener) -> Response {
    let body = futures::stream::iter(first.map(Ok::<_, Infallible>)).chain(events(listener));
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Asks reverse proxies (nginx) not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn events(listener: Listener) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    futures::stream::unfold(
        (listener, keep_alive),
        |(mut listener, mut keep_alive)| async move {
            let next = tokio::select! {
                event = listener.live.recv() => event?,
                _ = keep_alive.tick() => Bytes::from_static(SSE_KEEP_ALIVE),
            };
            Some((Ok(next), (listener, keep_alive)))
        },
    )
}

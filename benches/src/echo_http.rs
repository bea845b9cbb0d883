//! `echo-backend --http 127.0.0.1:PORT`: the same echo server over Streamable HTTP,
//! the baseline http-bench measures the proxies against. Every POST is answered with
//! plain JSON (no SSE), so the baseline pays only for HTTP itself.
//!
//! A module of echo-backend rather than its own binary so both modes share one
//! `answer`: the two baselines differ in transport only.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::serve::ListenerExt;
use serde_json::Value;

const SESSION_ID: &str = "mcp-session-id";

#[derive(Default)]
struct Sessions {
    open: Mutex<HashSet<String>>,
    next: AtomicU64,
}

/// Serves `/mcp` on `addr` until killed.
pub fn serve(addr: &str) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // No Nagle: a response that leaves in two writes would otherwise wait for the
        // client's delayed ACK (40 ms). axum does not set TCP_NODELAY by itself.
        let listener = tokio::net::TcpListener::bind(addr).await?.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let app = Router::new()
            .route("/mcp", post(handle).delete(end))
            .with_state(Arc::new(Sessions::default()));
        axum::serve(listener, app).await
    })
}

async fn handle(
    State(sessions): State<Arc<Sessions>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let message: Value = match serde_json::from_slice(&body) {
        Ok(message @ Value::Object(_)) => message,
        // Batches are gone from the protocol since 2025-06-18; nothing here sends them.
        Ok(_) => {
            return json(
                StatusCode::BAD_REQUEST,
                &super::error_reply(Value::Null, -32600, "one JSON object per POST"),
            );
        }
        Err(e) => {
            return json(
                StatusCode::BAD_REQUEST,
                &super::error_reply(Value::Null, -32700, &format!("parse error: {e}")),
            );
        }
    };
    let session = headers.get(SESSION_ID).and_then(|v| v.to_str().ok());
    let mut created = None;
    match session {
        Some(id) if sessions.open.lock().unwrap().contains(id) => {}
        Some(_) => return empty(StatusCode::NOT_FOUND),
        None if message.get("method").and_then(Value::as_str) == Some("initialize") => {
            let id = format!(
                "echo-{:016x}",
                sessions.next.fetch_add(1, Ordering::Relaxed)
            );
            sessions.open.lock().unwrap().insert(id.clone());
            created = Some(id);
        }
        None => {
            return json(
                StatusCode::BAD_REQUEST,
                &super::error_reply(Value::Null, -32600, "Mcp-Session-Id required"),
            );
        }
    }
    // Notifications and client responses get 202 with no body, as the spec says.
    let Some(reply) = super::answer(&message) else {
        return empty(StatusCode::ACCEPTED);
    };
    let mut response = json(StatusCode::OK, &reply);
    if let Some(id) = created.and_then(|id| HeaderValue::from_str(&id).ok()) {
        response.headers_mut().insert(SESSION_ID, id);
    }
    response
}

async fn end(State(sessions): State<Arc<Sessions>>, headers: HeaderMap) -> StatusCode {
    let id = headers.get(SESSION_ID).and_then(|v| v.to_str().ok());
    match id {
        Some(id) if sessions.open.lock().unwrap().remove(id) => StatusCode::OK,
        _ => StatusCode::NOT_FOUND,
    }
}

fn json(status: StatusCode, value: &Value) -> Response {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

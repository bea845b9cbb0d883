//! The legacy HTTP+SSE endpoints (2024-11-05), for clients that predate Streamable
//! HTTP: `GET /sse` opens a session and its one stream, whose first event names the
//! URL to POST messages to (`/messages?sessionId=...`). Everything the server sends
//! goes on that stream; the session ends when the client closes it.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;

use super::body::PostBody;
use super::replicas::IdKind;
use super::reply::{empty, event_stream, rpc_error};
use super::session::SessionKind;
use super::streamable::{parse_messages, session_elsewhere};
use super::{ServerState, connect_context};
use crate::downstream::auth::Principal;
use crate::wire::jsonrpc::{BACKEND_UNAVAILABLE, INVALID_REQUEST};
use crate::wire::mcp_http::sse_event;

/// Where clients POST their messages.
pub const MESSAGES_PATH: &str = "/messages";

pub async fn open(
    State(state): State<Arc<ServerState>>,
    headers: http::HeaderMap,
    principal: Option<Extension<Arc<Principal>>>,
) -> Response {
    let context = connect_context(&state, &headers, principal.map(|p| p.0));
    let session = match state
        .sessions
        .start(&state, SessionKind::LegacySse, &context)
    {
        Ok(session) => session,
        Err(e) => {
            tracing::error!("{e}");
            return rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                BACKEND_UNAVAILABLE,
                e.to_string(),
            );
        }
    };
    let Some(listener) = session.listen() else {
        return rpc_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            BACKEND_UNAVAILABLE,
            "the session has no stream",
        );
    };
    let endpoint = format!("{MESSAGES_PATH}?sessionId={}", session.id);
    event_stream(Some(sse_event(None, Some("endpoint"), &endpoint)), listener)
}

#[derive(Deserialize)]
pub struct SessionQuery {
    #[serde(rename = "sessionId", default)]
    session_id: Option<String>,
}

pub async fn post(
    State(state): State<Arc<ServerState>>,
    Query(query): Query<SessionQuery>,
    PostBody(body, _held_until_handled): PostBody,
) -> Response {
    let Some(session_id) = query.session_id else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            INVALID_REQUEST,
            "missing sessionId",
        );
    };
    let Some(session) = state.sessions.get(&session_id, SessionKind::LegacySse) else {
        if let Some(replicas) = &state.config.replicas
            && let IdKind::Sticky(owner) = replicas.classify(&session_id)
            && owner != replicas.name()
        {
            return session_elsewhere(owner);
        }
        return rpc_error(
            StatusCode::NOT_FOUND,
            None,
            INVALID_REQUEST,
            "session not found",
        );
    };
    let messages = match parse_messages(&body, state.backend.max_message_bytes()) {
        Ok(messages) => messages,
        Err(rejection) => return rejection.into_response(),
    };
    session.touch();
    for message in messages {
        if session.send(message, None).await.is_err() {
            return rpc_error(
                StatusCode::NOT_FOUND,
                None,
                INVALID_REQUEST,
                "session not found",
            );
        }
    }
    empty(StatusCode::ACCEPTED)
}

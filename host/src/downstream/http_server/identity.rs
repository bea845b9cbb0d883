//! The listener's OAuth side (`[auth]`): the middleware that lets in only requests
//! with a valid access token, and the protected resource metadata document.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};

use super::ServerState;
use super::reply::rpc_error;
use super::session::SessionKind;
use crate::downstream::auth::{AuthError, Principal};
use crate::wire::jsonrpc::{BACKEND_UNAVAILABLE, INVALID_REQUEST};
use crate::wire::mcp_http::SESSION_ID;

/// Lets a request in when its token is valid, with its [`Principal`] in the request's
/// extensions and its `Authorization` header removed (the token is for us, not for a
/// backend). A session id must belong to a session the same party opened.
pub async fn authenticate(
    State(state): State<Arc<ServerState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(server) = state.config.oauth.clone() else {
        return next.run(request).await;
    };
    let principal = match server.authenticate(request.headers()).await {
        Ok(principal) => principal,
        Err(error) => {
            match &error {
                AuthError::Unavailable(why) => tracing::warn!(
                    "refused a request: the identity provider's keys are unavailable: {why}"
                ),
                AuthError::Missing => tracing::debug!("refused a request without a token"),
                other => tracing::info!("refused a request: {}", other.message()),
            }
            let code = match error {
                AuthError::Unavailable(_) => BACKEND_UNAVAILABLE,
                _ => INVALID_REQUEST,
            };
            let mut response = rpc_error(error.status(), None, code, error.message());
            if error.status() != StatusCode::SERVICE_UNAVAILABLE {
                response
                    .headers_mut()
                    .insert(WWW_AUTHENTICATE, server.challenge(&error));
            }
            return response;
        }
    };
    if let Some(owner) = session_owner(&state, &request)
        && !owner.same_party(&principal)
    {
        // As if there were no such session: its id tells the caller nothing.
        tracing::warn!(
            "refused `{}` of {}: it names a session another party opened",
            principal.subject,
            principal.issuer
        );
        return rpc_error(
            StatusCode::NOT_FOUND,
            None,
            INVALID_REQUEST,
            "session not found; start a new one with initialize",
        );
    }
    request.headers_mut().remove(AUTHORIZATION);
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// Who opened the session a request names (`Mcp-Session-Id`, or a legacy
/// `sessionId`), when it names one that an authenticated party opened.
fn session_owner(state: &ServerState, request: &Request) -> Option<Arc<Principal>> {
    let session = match request.headers().get(SESSION_ID) {
        Some(id) => state
            .sessions
            .get(id.to_str().ok()?, SessionKind::Streamable),
        None => {
            let query = request.uri().query()?;
            let (_, id) = url::form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == "sessionId")?;
            state.sessions.get(&id, SessionKind::LegacySse)
        }
    };
    session?.principal.clone()
}

/// `GET /.well-known/oauth-protected-resource[/mcp]`: the metadata document.
pub async fn metadata(State(state): State<Arc<ServerState>>) -> Response {
    match &state.config.oauth {
        Some(server) => (
            [(CONTENT_TYPE, "application/json")],
            server.metadata().to_owned(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

//! The Streamable HTTP endpoint, `/mcp`.
//!
//! - POST `initialize` without a session id opens a session (its id comes back in
//!   `Mcp-Session-Id`); later POSTs name it. A POST with requests is answered with an
//!   SSE stream that carries what belongs to those requests and closes after their
//!   answers; a POST with only notifications or responses gets 202.
//! - POST without a session id and not `initialize` (2026-07-28: `server/discover` and
//!   requests carrying their own `_meta`) goes to the shared stateless session.
//! - GET opens the standalone stream, or resumes any stream with `Last-Event-ID`.
//! - DELETE ends the session.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::ACCEPT;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::value::RawValue;

use super::body::PostBody;
use super::events::{event_id, parse_event_id};
use super::replicas::{IdKind, STICKY_SEPARATOR};
use super::reply::{Rejection, empty, event_stream, json, rpc_error};
use super::session::{Listener, Session, SessionKind};
use super::table::{SessionTable, StartError};
use super::{ServerState, connect_context};
use crate::downstream::auth::Principal;
use crate::wire::framing::Frame;
use crate::wire::jsonrpc::{
    BACKEND_UNAVAILABLE, ErrorObject, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, Message,
    PARSE_ERROR, RawId,
};
use crate::wire::link::Sessionless;
use crate::wire::mcp_http::{
    self, EVENT_STREAM, LAST_EVENT_ID, MCP_METHOD, MCP_NAME, PROTOCOL_VERSION, SESSION_ID,
};

const CANCELLED: &str = "notifications/cancelled";
/// The 2026-07-28 error for headers that disagree with the body.
const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28 `MissingRequiredClientCapabilityError`.
const MISSING_CAPABILITY: i64 = -32021;
/// 2026-07-28 `UnsupportedProtocolVersionError`.
const UNSUPPORTED_VERSION: i64 = -32022;
/// What the SDKs' 2025 servers answer a request without its session id.
const SESSION_REQUIRED: i64 = -32000;

pub async fn post(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    principal: Option<Extension<Arc<Principal>>>,
    PostBody(body, _held_until_handled): PostBody,
) -> Response {
    // Parsed first, so that every refusal names the request it refuses.
    let checked = parse_messages(&body, state.backend.max_message_bytes()).and_then(|messages| {
        check_version_header(&headers)
            .map_err(|rejection| rejection.with_id(first_request_id(&messages)))
            .and_then(|()| check_mirrored_headers(&headers, &messages))
            .map(|()| messages)
    });
    let messages = match checked {
        Ok(messages) => messages,
        Err(rejection) => return rejection.into_response(),
    };
    let principal = principal.map(|p| p.0);
    let mut created = false;
    let session = match headers.get(SESSION_ID) {
        Some(id) => match session_for(&state, id, &headers, principal.as_ref()) {
            Ok(session) => session,
            Err(refusal) => return refusal.into_response(),
        },
        // A 2026-07-28 `initialize` is a removed method, not a handshake: no session.
        None if is_initialize(&messages) && !claims_stateless_era(&headers, &messages) => {
            let context = connect_context(&state, &headers, principal.clone());
            match state
                .sessions
                .start(&state, SessionKind::Streamable, &context)
            {
                Ok(session) => {
                    created = true;
                    session
                }
                Err(e) => return start_failed(&e, first_request_id(&messages)),
            }
        }
        None if messages.iter().any(is_answer) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                INVALID_REQUEST,
                "a response needs the Mcp-Session-Id of the session it belongs to",
            );
        }
        None => {
            if let Err(rejection) = check_shared_backend_request(&state, &headers, &messages) {
                return rejection.into_response();
            }
            let session = match state.sessions.stateless(&state) {
                Ok(session) => session,
                Err(e) => return start_failed(&e, first_request_id(&messages)),
            };
            if !state.backend.backend_judges_each_request()
                && let Err(rejection) = check_param_headers(&session, &headers, &messages)
            {
                return rejection.into_response();
            }
            session
        }
    };
    session.touch();
    // Sessionless requests reach an HTTP backend with the client's own protocol
    // headers, and its plugins with the client's own principal.
    let sessionless = (session.kind == SessionKind::Stateless).then(|| Sessionless {
        headers: Arc::new(mcp_http::protocol_headers(&headers)),
        principal,
    });
    let opened_by = created.then_some(&state.sessions);
    let mut response = relay_post(&session, messages, sessionless, opened_by).await;
    if created && !session.is_ended() {
        // The handshake is answered: what another replica needs is known now.
        state.sessions.seal(&state, &session);
        if let Ok(value) = HeaderValue::from_str(session.client_id()) {
            response.headers_mut().insert(SESSION_ID, value);
        }
    }
    response
}

/// Hands the messages of one POST to the session; requests get a stream back.
pub async fn relay_post(
    session: &Arc<Session>,
    mut messages: Vec<Message>,
    sessionless: Option<Sessionless>,
    opened_by: Option<&SessionTable>,
) -> Response {
    let stateless = session.kind == SessionKind::Stateless;
    if stateless {
        // A sessionless client has no identity: nothing ties a `requestId` to the
        // requests it sent, and in the shared backend session it would name another
        // client's request. 2026-07-28 cancels by closing the response stream (which
        // the session turns into a cancellation it knows the owner of), so the
        // notification is not expected; it is ignored, as unknown ids may be.
        messages.retain(|m| {
            let cancel = m.method() == Some(CANCELLED) && m.id().is_none();
            if cancel {
                tracing::debug!(
                    "ignored notifications/cancelled without a session: close the response stream to cancel"
                );
            }
            !cancel
        });
    }
    let mut requests = Vec::new();
    let refuse = |why: String| rpc_error(StatusCode::BAD_REQUEST, None, INVALID_REQUEST, why);
    for message in &mut messages {
        match session.isolate(message) {
            Ok(Some(request)) => requests.push(request),
            Ok(None) => {}
            Err(e) => return refuse(e.to_string()),
        }
    }
    let listener = if requests.is_empty() {
        None
    } else {
        match session.open_request_stream(&requests) {
            Ok(listener) => Some(listener),
            Err(e) => return refuse(e.to_string()),
        }
    };
    for message in messages {
        if session.send(message, sessionless.clone()).await.is_err() {
            return session_not_found();
        }
    }
    match listener {
        Some(listener) if stateless && requests.len() == 1 => answer_or_stream(listener).await,
        // 2026-07-28 streams cannot be resumed: no ids, no priming event.
        Some(listener) if stateless => event_stream(None, listener),
        Some(listener) => match opened_by {
            Some(table) => handshake_answer(table, session, listener).await,
            None => {
                let first = priming_event(&listener);
                event_stream(Some(first), listener)
            }
        },
        None => empty(StatusCode::ACCEPTED),
    }
}

/// The answer to the `initialize` that opened `session`. A session exists only when
/// the backend created one: if it refuses the handshake, the session ends at once (its
/// id is never given out, its backend does not live on) and the error comes as JSON.
async fn handshake_answer(
    table: &SessionTable,
    session: &Arc<Session>,
    mut listener: Listener,
) -> Response {
    let priming = priming_event(&listener);
    let Some(first) = listener.live.recv().await else {
        return event_stream(Some(priming), listener);
    };
    if let Some(error) = sse_data(&first).filter(|data| is_error_answer(data)) {
        table.end(
            &session.id,
            "the backend refused initialize; session closed",
        );
        let status = answer_status(&error).unwrap_or(StatusCode::OK);
        return json(status, error);
    }
    let mut opening = bytes::BytesMut::from(&priming[..]);
    opening.extend_from_slice(&first);
    event_stream(Some(opening.freeze()), listener)
}

fn is_error_answer(data: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(data)
        .is_ok_and(|v| v.get("error").is_some() && v.get("method").is_none())
}

/// How long a client should wait before resuming a broken stream, in the priming event.
const RETRY_MS: u64 = 1000;

/// The priming event of a new (resumable, 2025-era) stream: `{stream}-0`, from which a
/// client that loses the connection resumes and gets everything.
fn priming_event(listener: &Listener) -> Bytes {
    mcp_http::sse_priming_event(&event_id(listener.stream(), 0), RETRY_MS)
}

/// How long a sessionless request's response head waits for its answer, to send it
/// as JSON; after that the client gets the SSE stream (and its keep-alives) at once.
const JSON_PATIENCE: Duration = Duration::from_secs(2);

/// A sessionless (2026-07-28) request whose first item is its answer gets it as the
/// backend sent it: an HTTP backend's status and content type when the answer passed
/// the plugins unchanged; otherwise (a stdio backend, an answer a plugin or the proxy
/// made) as the SDK's `responseMode: 'auto'` does, JSON with the status the spec gives
/// that answer. When a notification comes first, or nothing within [`JSON_PATIENCE`],
/// the response is an SSE stream.
async fn answer_or_stream(mut listener: Listener) -> Response {
    let first = match tokio::time::timeout(JSON_PATIENCE, listener.live.recv()).await {
        Ok(Some(first)) => first,
        Ok(None) | Err(_) => return event_stream(None, listener),
    };
    let Some((answer, status)) =
        sse_data(&first).and_then(|data| answer_status(&data).map(|status| (data, status)))
    else {
        return event_stream(Some(first), listener);
    };
    match listener.live.answer_head() {
        Some(head) if head.json => json(head.status, answer),
        Some(head) => {
            let mut stream = event_stream(Some(first), listener);
            *stream.status_mut() = head.status;
            stream
        }
        None => json(status, answer),
    }
}

/// The data of one SSE event as written by `mcp_http::sse_event`.
fn sse_data(event: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(event).ok()?;
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// For an answer (result or error), its HTTP status: what the spec (and the SDK's
/// `httpStatusForErrorCode`) gives an error code that is about the request itself,
/// 200 for results and for errors a handler gave in-band. `None` for anything else.
fn answer_status(data: &str) -> Option<StatusCode> {
    #[derive(serde::Deserialize)]
    struct Answer {
        id: Option<serde::de::IgnoredAny>,
        method: Option<serde::de::IgnoredAny>,
        result: Option<serde::de::IgnoredAny>,
        error: Option<Code>,
    }
    #[derive(serde::Deserialize)]
    struct Code {
        code: i64,
    }
    let answer: Answer = serde_json::from_str(data).ok()?;
    if answer.id.is_none() || answer.method.is_some() {
        return None;
    }
    match answer.error {
        Some(Code { code }) => Some(status_for_error(code)),
        None => answer.result.map(|_| StatusCode::OK),
    }
}

fn status_for_error(code: i64) -> StatusCode {
    match code {
        METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        PARSE_ERROR | INVALID_REQUEST | HEADER_MISMATCH | MISSING_CAPABILITY
        | UNSUPPORTED_VERSION => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

pub async fn get(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    principal: Option<Extension<Arc<Principal>>>,
) -> Response {
    if let Err(rejection) = check_version_header(&headers) {
        return rejection.into_response();
    }
    let accepts_events = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.contains(EVENT_STREAM) || v.contains("*/*"));
    if !accepts_events {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            INVALID_REQUEST,
            "the stream is text/event-stream",
        );
    }
    let Some(id) = headers.get(SESSION_ID) else {
        // 2026-07-28 clients have no standalone stream; older ones open it after
        // `initialize`, with their session id.
        return rpc_error(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            INVALID_REQUEST,
            "GET needs the Mcp-Session-Id of a session",
        );
    };
    let session = match session_for(&state, id, &headers, principal.map(|p| p.0).as_ref()) {
        Ok(session) => session,
        Err(refusal) => return refusal.into_response(),
    };
    session.touch();
    let resume = headers
        .get(LAST_EVENT_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_event_id);
    // A resumed stream continues from the client's cursor: no new priming event.
    let listener = match resume {
        Some((stream, seq)) => session.resume(stream, seq).map(|l| (l, None)),
        None => session.listen().map(|l| {
            let first = priming_event(&l);
            (l, Some(first))
        }),
    };
    match listener {
        Some((listener, first)) => event_stream(first, listener),
        None => rpc_error(
            StatusCode::NOT_FOUND,
            None,
            INVALID_REQUEST,
            "that event stream is no longer available",
        ),
    }
}

pub async fn delete(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    principal: Option<Extension<Arc<Principal>>>,
) -> Response {
    let Some(id) = headers.get(SESSION_ID) else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            INVALID_REQUEST,
            "DELETE needs the Mcp-Session-Id of the session to end",
        );
    };
    // A session opened on another replica is continued here to be ended: its backend
    // sessions end with it.
    let session = match session_for(&state, id, &headers, principal.map(|p| p.0).as_ref()) {
        Ok(session) => session,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(handoff) = &session.handoff {
        handoff.end_by_client();
    }
    if state
        .sessions
        .end(&session.id, "the client ended the session (DELETE)")
    {
        empty(StatusCode::OK)
    } else {
        session_not_found()
    }
}

/// Why a request's session id names no session this replica can serve.
enum NoSession {
    /// Unknown, ended, or refused (tampered with, another key, another party): the
    /// spec's 404, which tells the caller nothing more.
    NotFound,
    /// It lives on the replica of this name.
    Elsewhere(String),
    /// It could be continued here, but its backends could not be opened.
    NotContinued(StartError),
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            NoSession::NotFound => session_not_found(),
            NoSession::Elsewhere(owner) => session_elsewhere(&owner),
            NoSession::NotContinued(e) => start_failed(&e, None),
        }
    }
}

/// The live session `id` names: one of ours, or (`[replicas]`) one another replica
/// opened whose sealed id opens with our key for this party, continued here. Any
/// other id gets 404, as the spec says of unknown sessions; one that names another
/// replica says so, since only a load balancer that routes by it can help.
fn session_for(
    state: &Arc<ServerState>,
    id: &HeaderValue,
    headers: &HeaderMap,
    principal: Option<&Arc<Principal>>,
) -> Result<Arc<Session>, NoSession> {
    let id = id.to_str().map_err(|_| NoSession::NotFound)?;
    if let Some(session) = state.sessions.get(id, SessionKind::Streamable) {
        return Ok(session);
    }
    let Some(replicas) = &state.config.replicas else {
        return Err(NoSession::NotFound);
    };
    match replicas.classify(id) {
        IdKind::Portable if state.sessions.has_ended(id) => return Err(NoSession::NotFound),
        IdKind::Portable => {}
        IdKind::Sticky(owner) if owner != replicas.name() => {
            return Err(NoSession::Elsewhere(owner.to_owned()));
        }
        IdKind::Sticky(_) | IdKind::Other => return Err(NoSession::NotFound),
    }
    let (handoff, age) = replicas
        .open(id, principal.map(Arc::as_ref))
        .map_err(|refused| {
            tracing::warn!("refused a session id from another replica: {refused}");
            NoSession::NotFound
        })?;
    let context = connect_context(state, headers, principal.cloned());
    state
        .sessions
        .resume(state, id, handoff, age, &context)
        .map_err(NoSession::NotContinued)
}

/// A session id names another replica, where the session lives: only a load
/// balancer that routes by that name can help, so the answer says so.
pub(super) fn session_elsewhere(owner: &str) -> Response {
    tracing::warn!(
        "a request names a session of replica `{owner}`; the load balancer must route by the replica name in the session id (docs/deploy.md)"
    );
    rpc_error(
        StatusCode::NOT_FOUND,
        None,
        INVALID_REQUEST,
        format!(
            "session belongs to replica `{owner}` (its backends run there); route requests to the replica named before '{STICKY_SEPARATOR}' in the session id, or start a new session with initialize"
        ),
    )
}

fn session_not_found() -> Response {
    rpc_error(
        StatusCode::NOT_FOUND,
        None,
        INVALID_REQUEST,
        "session not found; start a new one with initialize",
    )
}

fn start_failed(error: &StartError, id: Option<RawId>) -> Response {
    tracing::error!("{error}");
    match (error, id) {
        (StartError::Full(_), id) => rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            id,
            BACKEND_UNAVAILABLE,
            error.to_string(),
        ),
        // The request gets its answer: the backend could not be reached.
        (StartError::Backend(_), Some(id)) => {
            let error = ErrorObject::new(BACKEND_UNAVAILABLE, error.to_string());
            json(
                StatusCode::OK,
                Message::error_response(id, &error).to_json(),
            )
        }
        (StartError::Backend(_), None) => rpc_error(
            StatusCode::BAD_GATEWAY,
            None,
            BACKEND_UNAVAILABLE,
            error.to_string(),
        ),
    }
}

/// The messages of a POST body, or why the body is not any.
pub fn parse_messages(body: &[u8], max_message_bytes: usize) -> Result<Vec<Message>, Rejection> {
    let mut messages = Vec::new();
    for frame in mcp_http::frames_from_body(body, max_message_bytes) {
        match frame {
            Frame::Message(message) => messages.push(message),
            Frame::Malformed { error, id } => {
                let id = error.answer_id(id);
                return Err(Rejection::new(
                    StatusCode::BAD_REQUEST,
                    error.code(),
                    error.to_string(),
                )
                .with_id(id));
            }
            Frame::TooLong { len, limit, id } => {
                return Err(Rejection::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    INVALID_REQUEST,
                    format!("message of {len} bytes exceeds the limit of {limit} bytes"),
                )
                .with_id(id)
                .with_data(serde_json::json!({ "size": len, "limit": limit })));
            }
        }
    }
    if messages.is_empty() {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "the body holds no JSON-RPC message",
        ));
    }
    Ok(messages)
}

fn is_initialize(messages: &[Message]) -> bool {
    messages
        .iter()
        .any(|m| matches!(m, Message::Request { method, .. } if method == "initialize"))
}

fn is_answer(message: &Message) -> bool {
    matches!(message, Message::Response { .. } | Message::Error { .. })
}

fn first_request_id(messages: &[Message]) -> Option<RawId> {
    messages.iter().find_map(|m| match m {
        Message::Request { id, .. } => Some(id.clone()),
        _ => None,
    })
}

/// A backend that is one connection (stdio, in-process) and shared by every client
/// without a session keeps the protocol era of the first request it sees (the SDKs pin
/// it), so one claim-less or malformed request would turn it into a 2025 server for
/// everyone. Only complete 2026-07-28 messages reach it: a message that claims no
/// stateless era (neither `MCP-Protocol-Version` nor `_meta` says 2026-07-28 or later)
/// needs a session, and a request that claims it must carry the whole `_meta` envelope.
/// HTTP backends judge each request themselves.
fn check_shared_backend_request(
    state: &ServerState,
    headers: &HeaderMap,
    messages: &[Message],
) -> Result<(), Rejection> {
    let per_request = state.backend.backend_judges_each_request();
    let header_version = headers.get(PROTOCOL_VERSION).and_then(|v| v.to_str().ok());
    for message in messages {
        let (id, method, params) = match message {
            Message::Request { id, method, params } => (Some(id), method, params.as_deref()),
            // Ignored without a session (see `relay_post`), so it pins nothing.
            Message::Notification { method, .. } if method == CANCELLED => continue,
            Message::Notification { method, params } => (None, method, params.as_deref()),
            _ => continue,
        };
        let meta_version = mcp_http::meta_protocol_version(params);
        let claims_stateless = claims_stateless(header_version, params);
        if per_request {
            // The backend judges the rest, but its status does not come back to us:
            // a malformed envelope is refused here, with the 400 the spec asks for.
            if claims_stateless {
                check_envelope(id, params)?;
            }
            continue;
        }
        if id.is_some() && method == "initialize" {
            // What a stdio server pinned to 2026-07-28 answers, said before the
            // request could reach it first.
            return Err(Rejection::new(
                StatusCode::NOT_FOUND,
                METHOD_NOT_FOUND,
                "Method not found: initialize (2026-07-28 has no handshake; use server/discover)",
            )
            .with_id(id.cloned()));
        }
        if !claims_stateless {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                SESSION_REQUIRED,
                "Bad Request: Mcp-Session-Id required; start a session with initialize, or send a 2026-07-28 request (MCP-Protocol-Version and _meta)",
            )
            .with_id(id.cloned()));
        }
        // Nothing behind a stdio backend reads headers, so the spec's Server
        // Validation of the required ones is ours: absent ones are refused like
        // mismatched ones (present ones were compared with the body already).
        let name_required = matches!(
            method.as_str(),
            "tools/call" | "resources/read" | "prompts/get"
        );
        // They describe one message; a batch (not part of 2026-07-28) has none to check.
        let single = messages.len() == 1;
        let missing = [
            (header_version.is_none(), "MCP-Protocol-Version"),
            (single && !headers.contains_key(MCP_METHOD), "Mcp-Method"),
            (
                single && id.is_some() && name_required && !headers.contains_key(MCP_NAME),
                "Mcp-Name",
            ),
        ]
        .into_iter()
        .find_map(|(absent, name)| absent.then_some(name));
        if let Some(name) = missing {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                HEADER_MISMATCH,
                format!("Header mismatch: the required {name} header is absent"),
            )
            .with_id(id.cloned()));
        }
        check_envelope(id, params)?;
        // A stdio server does not judge the version of each request (its connection
        // has one era), so the HTTP server of record, interpose, does: the revisions
        // without sessions that it serves.
        if let Some(requested) = header_version
            .or(meta_version.as_deref())
            .filter(|v| !mcp_http::STATELESS_VERSIONS.contains(v))
        {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                UNSUPPORTED_VERSION,
                format!("Unsupported protocol version: {requested}"),
            )
            .with_data(serde_json::json!({
                "supported": mcp_http::STATELESS_VERSIONS,
                "requested": requested,
            }))
            .with_id(id.cloned()));
        }
    }
    Ok(())
}

/// For a stdio backend, which reads no headers, the `Mcp-Param-*` headers of a
/// `tools/call` are checked here against the tool's `x-mcp-header` declarations.
fn check_param_headers(
    session: &Session,
    headers: &HeaderMap,
    messages: &[Message],
) -> Result<(), Rejection> {
    for message in messages {
        if let Message::Request { id, method, params } = message
            && let Err(why) = session.check_param_headers(headers, method, params.as_deref())
        {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                HEADER_MISMATCH,
                format!("Header mismatch: {why}"),
            )
            .with_id(Some(id.clone())));
        }
    }
    Ok(())
}

/// Whether a message says it is 2026-07-28 or later (header or `_meta`).
fn claims_stateless(header_version: Option<&str>, params: Option<&RawValue>) -> bool {
    header_version
        .map(str::to_owned)
        .or_else(|| mcp_http::meta_protocol_version(params))
        .is_some_and(|v| !mcp_http::has_sessions(&v))
}

/// Whether any request of a POST claims a sessionless revision.
fn claims_stateless_era(headers: &HeaderMap, messages: &[Message]) -> bool {
    let header_version = headers.get(PROTOCOL_VERSION).and_then(|v| v.to_str().ok());
    messages.iter().any(|m| match m {
        Message::Request { params, .. } => claims_stateless(header_version, params.as_deref()),
        _ => false,
    })
}

/// A 2026-07-28 request (`id` is `None` for notifications) must carry the whole `_meta`
/// envelope: 400 -32602 otherwise.
fn check_envelope(id: Option<&RawId>, params: Option<&RawValue>) -> Result<(), Rejection> {
    match id.and(mcp_http::envelope_problem(params)) {
        Some(problem) => Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            INVALID_PARAMS,
            format!("Invalid params: {problem}"),
        )
        .with_id(id.cloned())),
        None => Ok(()),
    }
}

/// An `MCP-Protocol-Version` that cannot be forwarded (not visible ASCII) is refused as
/// a malformed required header (-32020). Which versions are supported is the backend's
/// verdict (its -32022 names them), so the proxy does not narrow it.
fn check_version_header(headers: &HeaderMap) -> Result<(), Rejection> {
    match headers.get(PROTOCOL_VERSION).map(|v| v.to_str()) {
        None | Some(Ok(_)) => Ok(()),
        Some(Err(_)) => Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            HEADER_MISMATCH,
            "Header mismatch: MCP-Protocol-Version is not visible ASCII",
        )),
    }
}

/// 2026-07-28: headers that mirror the body must agree with it, so that what an
/// intermediary routes on is what the backend executes.
fn check_mirrored_headers(headers: &HeaderMap, messages: &[Message]) -> Result<(), Rejection> {
    let [Message::Request { id, method, params }] = messages else {
        return Ok(());
    };
    let mismatch = |what: &str| {
        Rejection::new(
            StatusCode::BAD_REQUEST,
            HEADER_MISMATCH,
            format!("Header mismatch: {what} does not match the request body"),
        )
        .with_id(Some(id.clone()))
    };
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let (Some(in_header), Some(in_body)) = (
        header(PROTOCOL_VERSION),
        mcp_http::meta_protocol_version(params.as_deref()),
    ) && in_header != in_body
    {
        return Err(mismatch("MCP-Protocol-Version"));
    }
    if let Some(in_header) = header(MCP_METHOD)
        && in_header != method
    {
        return Err(mismatch("Mcp-Method"));
    }
    if let Some(in_header) = header(MCP_NAME)
        && mcp_http::decode_header_value(in_header)
            != mcp_http::request_name(method, params.as_deref())
    {
        return Err(mismatch("Mcp-Name"));
    }
    Ok(())
}

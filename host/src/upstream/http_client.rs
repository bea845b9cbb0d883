//! Upstream to a backend over Streamable HTTP (2025-03-26 and later, 2026-07-28 too).
//!
//! Each message the relay sends becomes one POST. A request's answer comes back as
//! JSON or as an SSE stream; everything on that stream is reported with the request's
//! id as `related`, so the relay can route it to the client request it belongs to. The
//! session id from `initialize` goes on every later request, a standalone GET stream
//! carries server messages that belong to no request, broken streams are resumed with
//! `Last-Event-ID`, and the session is ended with DELETE when the relay is done.
//!
//! Ordering: `initialize` is awaited in full (its answer carries the session id and the
//! version every later request must name), notifications and responses are awaited
//! until the server accepts them (so `notifications/initialized` is in before the next
//! request), and requests run concurrently (a long tool call must not hold up the
//! answer to a sampling request the backend is waiting for).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use url::Url;

use super::credentials::ClientCredentials;
use super::error_text::error_chain;
use crate::wire::framing::Frame;
use crate::wire::handoff::{BackendSession, BackendSessionState};
use crate::wire::jsonrpc::{
    self, BACKEND_UNAVAILABLE, ErrorObject, INTERNAL_ERROR, Message, Parsed, RawId,
};
use crate::wire::link::{
    AnswerHead, CHANNEL_CAPACITY, ConnectContext, Inbound, Link, Outbound, ProtocolHeaders,
};
use crate::wire::mcp_http::{
    self, EVENT_STREAM, LAST_EVENT_ID, MCP_METHOD, MCP_NAME, PROTOCOL_VERSION, SESSION_ID,
    SseReadError, read_events,
};

/// How many times a broken response stream is resumed before its request fails.
const MAX_RESUMES: u32 = 5;
/// How many GET stream attempts in a row may fail before the stream is given up.
const MAX_LISTEN_FAILURES: u32 = 5;
/// Bytes of an error body kept for the error message.
const ERROR_BODY_BYTES: usize = 64 * 1024;
/// Once the relay is done, how long requests still running may take to finish.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// `initialize` holds up every later message (they need its session id), so it may
/// not take forever.
const INITIALIZE_LIMIT: Duration = Duration::from_secs(60);

/// Where the backend is and what every request to it carries.
#[derive(Debug, Clone)]
pub struct HttpUpstreamConfig {
    pub url: Url,
    /// Sent on every request: the operator's `--header`s and bearer token.
    pub headers: HeaderMap,
    pub client: reqwest::Client,
    /// OAuth client credentials: an access token sent as `Authorization` (`oauth`).
    pub credentials: Option<Arc<ClientCredentials>>,
}

/// Why an HTTP upstream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpUpstreamError {
    #[error("the backend URL must be http:// or https://, got `{0}`")]
    Scheme(String),
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl HttpUpstreamConfig {
    pub fn new(url: Url, headers: HeaderMap) -> Result<Self, HttpUpstreamError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpUpstreamError::Scheme(url.to_string()));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(same_origin_redirects())
            .build()?;
        Ok(HttpUpstreamConfig {
            url,
            headers,
            client,
            credentials: None,
        })
    }

    /// `request` with the backend's access token, when it takes OAuth client
    /// credentials; without one (logged) when none can be had, so the backend's own
    /// refusal reaches the client.
    pub async fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.access_token().await {
            Ok(Some(value)) => request.header(AUTHORIZATION, value),
            Ok(None) => request,
            Err(why) => {
                tracing::warn!("no access token for the backend at {}: {why}", self.url);
                request
            }
        }
    }

    /// The `Authorization` value from the OAuth client credentials, if any.
    pub async fn access_token(&self) -> Result<Option<HeaderValue>, String> {
        match &self.credentials {
            Some(credentials) => credentials.authorization().await.map(Some),
            None => Ok(None),
        }
    }

    /// This config for one session: with the client's own `Authorization` when the
    /// operator asked for it to be passed on.
    pub fn for_session(self: &Arc<Self>, context: &ConnectContext) -> Arc<Self> {
        match &context.client_authorization {
            Some(value) => {
                let mut config = (**self).clone();
                config.headers.insert(AUTHORIZATION, value.clone());
                Arc::new(config)
            }
            None => self.clone(),
        }
    }
}

/// Why a POST did not reach the backend.
enum PostError {
    Send(reqwest::Error),
    /// No access token could be had (OAuth client credentials).
    Credentials(String),
}

/// Follows a few redirects, only within the backend's origin: the operator's headers
/// and token are for that server, not for wherever it points.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if attempt.previous().len() > 5 || !same_origin {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

/// Opens a link to a Streamable HTTP backend. Nothing is sent until the relay sends.
/// `session` is where the link records the backend session (for a handoff to another
/// replica); when it holds a negotiated version already, the link continues that
/// session instead of waiting for an `initialize`.
pub fn connect(
    config: Arc<HttpUpstreamConfig>,
    max_message_bytes: usize,
    session: Option<Arc<BackendSession>>,
) -> Link {
    let (in_tx, inbound) = mpsc::channel(CHANNEL_CAPACITY);
    let (outbound, out_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let shared = Arc::new(Shared {
        config,
        max_message_bytes,
        in_tx,
        closed: AtomicBool::new(false),
        session: session.unwrap_or_default(),
    });
    let writer = tokio::spawn(write_loop(shared, out_rx));
    Link {
        inbound,
        outbound,
        writer,
    }
}

struct Shared {
    config: Arc<HttpUpstreamConfig>,
    max_message_bytes: usize,
    in_tx: mpsc::Sender<Inbound>,
    closed: AtomicBool,
    session: Arc<BackendSession>,
}

async fn write_loop(shared: Arc<Shared>, mut out_rx: mpsc::Receiver<Outbound>) {
    let mut requests: JoinSet<Box<str>> = JoinSet::new();
    let mut in_flight: HashMap<Box<str>, AbortHandle> = HashMap::new();
    // A continued session is past its handshake: its standalone stream opens now.
    let continued = shared.lock_session().version.is_some() && shared.has_session();
    let mut listener = continued.then(|| tokio::spawn(shared.clone().listen()));
    while let Some(Outbound {
        message, headers, ..
    }) = out_rx.recv().await
    {
        while let Some(done) = requests.try_join_next() {
            if let Ok(id) = done {
                in_flight.remove(&id);
            }
        }
        if shared.is_closed() {
            continue;
        }
        match message {
            Message::Request {
                ref id, ref method, ..
            } if method == "initialize" => {
                let id = id.clone();
                let handshake = shared
                    .clone()
                    .post_request(id.clone(), message, headers, true);
                if tokio::time::timeout(INITIALIZE_LIMIT, handshake)
                    .await
                    .is_err()
                {
                    let error = ErrorObject::new(
                        BACKEND_UNAVAILABLE,
                        format!(
                            "the backend did not answer `initialize` within {INITIALIZE_LIMIT:?}"
                        ),
                    );
                    shared.answer_error(&id, error).await;
                }
            }
            Message::Request { ref id, .. } => {
                let key: Box<str> = id.get().into();
                let done_key = key.clone();
                let task = shared
                    .clone()
                    .post_request(id.clone(), message, headers, false);
                let handle = requests.spawn(async move {
                    task.await;
                    done_key
                });
                in_flight.insert(key, handle);
            }
            Message::Notification {
                ref method,
                ref params,
            } if method == "notifications/cancelled" && shared.is_sessionless_era() => {
                // Without a session (2026-07-28), closing the response stream is the
                // cancellation; there is no notification to send.
                if let Some(handle) = jsonrpc::cancelled_request_id(params.as_deref())
                    .and_then(|id| in_flight.remove(id.get()))
                {
                    handle.abort();
                }
            }
            Message::Notification { ref method, .. } => {
                let initialized = method == "notifications/initialized";
                shared.post_one_way(message, headers).await;
                if initialized && listener.is_none() && shared.has_session() {
                    listener = Some(tokio::spawn(shared.clone().listen()));
                }
            }
            answer => shared.post_one_way(answer, None).await,
        }
    }
    // The relay is done with the backend: let answers in flight arrive, then end the session.
    let drained = tokio::time::timeout(DRAIN_LIMIT, async {
        while requests.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        requests.abort_all();
    }
    if let Some(listener) = listener {
        listener.abort();
    }
    // A session other replicas may continue ends only when its client ends it.
    if shared.session.ends_with_link() {
        shared.delete_session().await;
    }
    shared
        .close("the session with the backend ended".to_owned())
        .await;
}

impl Shared {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn has_session(&self) -> bool {
        self.lock_session().id.is_some()
    }

    /// 2026-07-28 and later: no `initialize` happened, so there is neither a session
    /// nor a negotiated version, and each request stands alone.
    fn is_sessionless_era(&self) -> bool {
        let session = self.lock_session();
        session.id.is_none() && session.version.is_none()
    }

    fn lock_session(&self) -> std::sync::MutexGuard<'_, BackendSessionState> {
        self.session.lock()
    }

    /// Reports the link as closed, once; the relay then fails what is in flight.
    async fn close(&self, why: String) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.in_tx.send(Inbound::Closed(why)).await.ok();
        }
    }

    async fn deliver(&self, frame: Frame, related: Option<&RawId>) {
        self.deliver_with_head(frame, related, None).await;
    }

    /// Delivers a frame; `head` tells, for the answer to a request, how the backend
    /// sent it.
    async fn deliver_with_head(
        &self,
        frame: Frame,
        related: Option<&RawId>,
        head: Option<AnswerHead>,
    ) {
        let inbound = Inbound::Frame {
            frame,
            related: related.cloned(),
            sessionless: None,
            head,
        };
        self.in_tx.send(inbound).await.ok();
    }

    /// Answers request `id` with an error the proxy made, as if the backend sent it.
    async fn answer_error(&self, id: &RawId, error: ErrorObject) {
        let message = Message::error_response(id.clone(), &error);
        self.deliver(Frame::Message(message), Some(id)).await;
    }

    /// The headers of a POST: the operator's, then either the client's own protocol
    /// headers (a sessionless HTTP client's request: sent exactly, none invented) or,
    /// for everyone else, the ones derived from the session and the body.
    fn headers_for(
        &self,
        message: &Message,
        client_headers: Option<&ProtocolHeaders>,
    ) -> HeaderMap {
        let mut headers = self.config.headers.clone();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(mcp_http::JSON));
        if let Some(client_headers) = client_headers {
            for (name, value) in client_headers.iter() {
                headers.insert(name.clone(), value.clone());
            }
            return headers;
        }
        let meta_version = match message {
            Message::Request { params, .. } | Message::Notification { params, .. } => {
                mcp_http::meta_protocol_version(params.as_deref())
            }
            _ => None,
        };
        let session = self.lock_session();
        if let Some(id) = &session.id {
            headers.insert(SESSION_ID, id.clone());
        }
        let version = meta_version.as_ref().or(session.version.as_ref());
        if let Some(value) = version.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(PROTOCOL_VERSION, value);
        }
        let stateless = meta_version.is_some_and(|v| !mcp_http::has_sessions(&v));
        if stateless && let Message::Request { method, params, .. } = message {
            if let Ok(value) = HeaderValue::from_str(method) {
                headers.insert(MCP_METHOD, value);
            }
            let name = mcp_http::request_name(method, params.as_deref())
                .map(|name| mcp_http::encode_header_value(&name))
                .and_then(|name| HeaderValue::from_str(&name).ok());
            if let Some(name) = name {
                headers.insert(MCP_NAME, name);
            }
        }
        headers
    }

    /// Headers for a GET or DELETE on the session.
    fn session_headers(&self) -> HeaderMap {
        let mut headers = self.config.headers.clone();
        let session = self.lock_session();
        if let Some(id) = &session.id {
            headers.insert(SESSION_ID, id.clone());
        }
        if let Some(value) = session
            .version
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            headers.insert(PROTOCOL_VERSION, value);
        }
        headers
    }

    async fn post(
        &self,
        message: &Message,
        client_headers: Option<&ProtocolHeaders>,
    ) -> Result<reqwest::Response, PostError> {
        let mut request = self
            .config
            .client
            .post(self.config.url.clone())
            .headers(self.headers_for(message, client_headers))
            .body(message.to_json());
        if let Some(token) = self
            .config
            .access_token()
            .await
            .map_err(PostError::Credentials)?
        {
            request = request.header(AUTHORIZATION, token);
        }
        request.send().await.map_err(PostError::Send)
    }

    /// A request failed to reach the backend: when the backend cannot be reached at
    /// all the whole link is closed, so every request in flight fails at once.
    async fn send_failed(&self, id: Option<&RawId>, error: reqwest::Error) {
        let url = &self.config.url;
        if error.is_connect() || error.is_timeout() {
            self.close(format!(
                "cannot reach the backend at {url}: {}",
                error_chain(&error)
            ))
            .await;
        } else if let Some(id) = id {
            let error = ErrorObject::new(
                BACKEND_UNAVAILABLE,
                format!("the request to {url} failed: {}", error_chain(&error)),
            );
            self.answer_error(id, error).await;
        } else {
            tracing::warn!("sending to {url} failed: {}", error_chain(&error));
        }
    }

    /// A 404 on a request that named our session: the backend forgot it.
    async fn session_gone(&self, status: StatusCode) -> bool {
        if status == StatusCode::NOT_FOUND && self.has_session() {
            self.close(format!(
                "the backend at {} ended the session (HTTP 404)",
                self.config.url
            ))
            .await;
            return true;
        }
        false
    }

    async fn post_request(
        self: Arc<Self>,
        id: RawId,
        message: Message,
        client_headers: Option<ProtocolHeaders>,
        initialize: bool,
    ) {
        let response = match self.post(&message, client_headers.as_ref()).await {
            Ok(response) => response,
            Err(PostError::Send(e)) => return self.send_failed(Some(&id), e).await,
            Err(PostError::Credentials(why)) => {
                tracing::warn!(
                    "no access token for the backend at {}: {why}",
                    self.config.url
                );
                let error = ErrorObject::new(
                    BACKEND_UNAVAILABLE,
                    format!(
                        "no access token for the backend at {}: {why}",
                        self.config.url
                    ),
                );
                return self.answer_error(&id, error).await;
            }
        };
        let status = response.status();
        if initialize && status.is_success() {
            let session_id = response.headers().get(SESSION_ID).cloned();
            self.lock_session().id = session_id;
        } else if self.session_gone(status).await {
            return;
        }
        if !status.is_success() {
            return self.http_error(&id, status, response).await;
        }
        if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            tracing::debug!("the backend accepted a request without answering it on its POST");
            return;
        }
        let is_stream = content_type(&response).starts_with(EVENT_STREAM);
        if is_stream {
            if !self.read_response_stream(&id, response, initialize).await {
                let error = ErrorObject::new(
                    BACKEND_UNAVAILABLE,
                    "the backend closed the response stream without answering",
                );
                self.answer_error(&id, error).await;
            }
        } else {
            self.read_json_response(&id, response, initialize).await;
        }
    }

    /// Delivers a JSON answer; when the body does not answer `id` (HTML from a
    /// gateway, say), answers it with an error that shows what came instead.
    async fn read_json_response(&self, id: &RawId, response: reqwest::Response, initialize: bool) {
        let status = response.status();
        let content_type = content_type(&response).to_owned();
        let body = match read_limited(response, self.max_message_bytes).await {
            Ok(body) => body,
            Err(problem) => {
                self.answer_error(id, ErrorObject::new(INTERNAL_ERROR, problem))
                    .await;
                return;
            }
        };
        let mut answered = false;
        for frame in mcp_http::frames_from_body(&body, self.max_message_bytes) {
            let answers = self.note_answer(&frame, id, initialize);
            answered |= answers;
            let head = answers.then_some(AnswerHead { status, json: true });
            self.deliver_with_head(frame, Some(id), head).await;
        }
        if !answered {
            let error = not_an_answer(
                INTERNAL_ERROR,
                &self.config.url,
                status,
                &content_type,
                &body,
            );
            self.answer_error(id, error).await;
        }
    }

    /// Whether `frame` answers request `id`; for `initialize`, also remembers the
    /// version it settled on.
    fn note_answer(&self, frame: &Frame, id: &RawId, initialize: bool) -> bool {
        let (answer_id, result) = match frame {
            Frame::Message(Message::Response { id, result }) => (Some(id), Some(result)),
            Frame::Message(Message::Error { id, .. }) => (Some(id), None),
            Frame::Malformed { id, .. } | Frame::TooLong { id, .. } => (id.as_ref(), None),
            _ => (None, None),
        };
        let answers = answer_id.is_some_and(|a| a.get() == id.get());
        if answers
            && initialize
            && let Some(version) = result.and_then(|r| mcp_http::negotiated_version(r))
        {
            self.lock_session().version = Some(version);
        }
        answers
    }

    /// Delivers what arrives on a request's SSE stream, resuming it with
    /// `Last-Event-ID` when it breaks before the answer. Returns whether `id` was answered.
    async fn read_response_stream(
        &self,
        id: &RawId,
        response: reqwest::Response,
        initialize: bool,
    ) -> bool {
        let mut cursor = StreamCursor::default();
        let head = AnswerHead {
            status: response.status(),
            json: false,
        };
        let mut response = response;
        let mut resumes = 0;
        loop {
            let request = Some((id, head));
            match self.pump(&mut cursor, response, request, initialize).await {
                Pump::Answered => return true,
                Pump::Failed(problem) => {
                    self.answer_error(id, ErrorObject::new(INTERNAL_ERROR, problem))
                        .await;
                    return true;
                }
                Pump::Ended => {}
            }
            let Some(last) = cursor.last_event_id.clone() else {
                return false;
            };
            resumes += 1;
            if resumes > MAX_RESUMES || self.is_closed() {
                return false;
            }
            tokio::time::sleep(cursor.retry_delay(resumes)).await;
            response = match self.resume(&last).await {
                Ok(response) => response,
                Err(problem) => {
                    tracing::debug!("resuming a response stream failed: {problem}");
                    return false;
                }
            };
        }
    }

    /// GET with `Last-Event-ID`, to pick up a stream where it broke.
    async fn resume(&self, last_event_id: &str) -> Result<reqwest::Response, String> {
        let mut headers = self.session_headers();
        headers.insert(ACCEPT, HeaderValue::from_static(EVENT_STREAM));
        if let Ok(value) = HeaderValue::from_str(last_event_id) {
            headers.insert(LAST_EVENT_ID, value);
        }
        let request = self
            .config
            .client
            .get(self.config.url.clone())
            .headers(headers);
        let response = self
            .config
            .authorize(request)
            .await
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        if self.session_gone(response.status()).await {
            return Err("the session ended".into());
        }
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        Ok(response)
    }

    /// Delivers events from one SSE response until it ends, fails, or answers the
    /// request it belongs to (its id, and how its POST was answered), if any.
    async fn pump(
        &self,
        cursor: &mut StreamCursor,
        response: reqwest::Response,
        request: Option<(&RawId, AnswerHead)>,
        initialize: bool,
    ) -> Pump {
        let id = request.map(|(id, _)| id);
        let mut events = Box::pin(read_events(response.bytes_stream(), self.max_message_bytes));
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(SseReadError::TooLarge(limit)) => {
                    return Pump::Failed(format!(
                        "the backend sent an event larger than the {limit}-byte limit"
                    ));
                }
                Err(SseReadError::Stream(problem)) => {
                    tracing::debug!("a stream from the backend broke: {problem}");
                    return Pump::Ended;
                }
            };
            cursor.seen(&event);
            let is_message = matches!(event.event.as_deref(), None | Some("message"));
            let Some(data) = event.data.filter(|d| is_message && !d.trim().is_empty()) else {
                continue;
            };
            let mut answered = false;
            for frame in mcp_http::frames_from_body(data.as_bytes(), self.max_message_bytes) {
                let head = request
                    .filter(|(id, _)| self.note_answer(&frame, id, initialize))
                    .map(|(_, head)| head);
                answered |= head.is_some();
                self.deliver_with_head(frame, id, head).await;
            }
            if answered {
                return Pump::Answered;
            }
        }
        Pump::Ended
    }

    /// POSTs a notification or a response, waiting until the backend has taken it.
    async fn post_one_way(&self, message: Message, client_headers: Option<ProtocolHeaders>) {
        let response = match self.post(&message, client_headers.as_ref()).await {
            Ok(response) => response,
            Err(PostError::Send(e)) => return self.send_failed(None, e).await,
            Err(PostError::Credentials(why)) => {
                return tracing::warn!(
                    "cannot send a {} to {}: no access token: {why}",
                    message.kind().as_str(),
                    self.config.url
                );
            }
        };
        let status = response.status();
        if self.session_gone(status).await {
            return;
        }
        if !status.is_success() {
            let body = read_limited(response, ERROR_BODY_BYTES)
                .await
                .unwrap_or_default();
            tracing::warn!(
                "the backend refused a {} with HTTP {status}: {}",
                message.kind().as_str(),
                String::from_utf8_lossy(&body)
            );
        }
    }

    /// Answers request `id` after an HTTP error: with the backend's own JSON-RPC error
    /// when the body has one, otherwise with one that names the status.
    async fn http_error(&self, id: &RawId, status: StatusCode, response: reqwest::Response) {
        if status == StatusCode::UNAUTHORIZED {
            return self.unauthorized(id, &response).await;
        }
        let content_type = content_type(&response).to_owned();
        let body = read_limited(response, ERROR_BODY_BYTES)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        if let Ok(Parsed::One(Message::Error { error, .. })) = Message::parse(text.trim()) {
            let message = Message::Error {
                id: id.clone(),
                error,
            };
            let head = AnswerHead {
                status,
                json: content_type.starts_with(mcp_http::JSON),
            };
            return self
                .deliver_with_head(Frame::Message(message), Some(id), Some(head))
                .await;
        }
        let code = if status.is_server_error() {
            BACKEND_UNAVAILABLE
        } else {
            INTERNAL_ERROR
        };
        let error = not_an_answer(code, &self.config.url, status, &content_type, &body);
        self.answer_error(id, error).await;
    }

    /// The backend refused our credentials: the client gets an error that carries the
    /// backend's challenge (`WWW-Authenticate`), and the cached token is dropped so the
    /// next request gets a new one.
    async fn unauthorized(&self, id: &RawId, response: &reqwest::Response) {
        let challenge = response
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let url = &self.config.url;
        tracing::warn!(
            "the backend at {url} refused interpose's credentials (HTTP 401): {challenge}"
        );
        if let Some(credentials) = &self.config.credentials {
            credentials.forget().await;
        }
        let error = ErrorObject::new(
            BACKEND_UNAVAILABLE,
            format!("the backend at {url} refused interpose's credentials (HTTP 401): {challenge}"),
        )
        .with_data(serde_json::json!({
            "httpStatus": 401,
            "backend": url.as_str(),
            "wwwAuthenticate": challenge,
        }));
        self.answer_error(id, error).await;
    }

    /// The standalone GET stream: server messages that belong to no request.
    async fn listen(self: Arc<Self>) {
        let mut cursor = StreamCursor::default();
        let mut failures = 0u32;
        while !self.is_closed() {
            let mut headers = self.session_headers();
            headers.insert(ACCEPT, HeaderValue::from_static(EVENT_STREAM));
            if let Some(value) = cursor
                .last_event_id
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                headers.insert(LAST_EVENT_ID, value);
            }
            let request = self
                .config
                .client
                .get(self.config.url.clone())
                .headers(headers);
            let request = self.config.authorize(request).await;
            let events_before = cursor.events;
            match request.send().await {
                Ok(response) if response.status() == StatusCode::METHOD_NOT_ALLOWED => {
                    tracing::debug!("the backend offers no standalone stream");
                    return;
                }
                Ok(response) if self.session_gone(response.status()).await => return,
                Ok(response) if !response.status().is_success() => {
                    tracing::warn!(
                        "the backend refused the standalone stream: HTTP {}",
                        response.status()
                    );
                    return;
                }
                Ok(response) => {
                    if let Pump::Failed(problem) =
                        self.pump(&mut cursor, response, None, false).await
                    {
                        tracing::warn!("{problem}");
                    }
                }
                Err(e) => tracing::debug!("the standalone stream failed: {}", error_chain(&e)),
            }
            failures = if cursor.events > events_before {
                0
            } else {
                failures + 1
            };
            if failures > MAX_LISTEN_FAILURES {
                tracing::warn!(
                    "giving up on the backend's standalone stream after {failures} attempts"
                );
                return;
            }
            tokio::time::sleep(cursor.retry_delay(failures)).await;
        }
    }

    /// Ends the backend session, when there is one.
    async fn delete_session(&self) {
        if !self.has_session() {
            return;
        }
        let request = self
            .config
            .client
            .delete(self.config.url.clone())
            .headers(self.session_headers())
            .timeout(Duration::from_secs(2));
        match self.config.authorize(request).await.send().await {
            Ok(response) => tracing::debug!("DELETE session: HTTP {}", response.status()),
            Err(e) => tracing::debug!("DELETE session failed: {}", error_chain(&e)),
        }
    }
}

/// Where a stream was, so it can be resumed.
#[derive(Default)]
struct StreamCursor {
    last_event_id: Option<String>,
    /// The server's `retry` advice, in milliseconds.
    retry_ms: Option<u64>,
    events: u64,
}

impl StreamCursor {
    fn seen(&mut self, event: &sse_stream::Sse) {
        self.events += 1;
        if let Some(id) = &event.id {
            self.last_event_id = Some(id.clone());
        }
        if let Some(retry) = event.retry {
            self.retry_ms = Some(retry);
        }
    }

    /// The server's advice if it gave one, else a backoff that grows with `attempt`.
    fn retry_delay(&self, attempt: u32) -> Duration {
        let base = self.retry_ms.unwrap_or(250).clamp(50, 30_000);
        let factor = 1u64 << attempt.min(6);
        Duration::from_millis((base * factor).min(30_000))
    }
}

enum Pump {
    /// The request this stream belongs to got its answer.
    Answered,
    /// The stream cannot go on; the text says why.
    Failed(String),
    /// The stream ended or broke.
    Ended,
}

fn content_type(response: &reqwest::Response) -> &str {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// How much of a body that is not an answer is quoted in the error.
const SNIPPET_CHARS: usize = 200;

/// The error for a response whose body holds no answer to the request: its status,
/// content type and the start of the body, escaped so it stays one line.
fn not_an_answer(
    code: i64,
    url: &Url,
    status: StatusCode,
    content_type: &str,
    body: &[u8],
) -> ErrorObject {
    let text = String::from_utf8_lossy(body);
    let start: String = text.chars().take(SNIPPET_CHARS).collect();
    let more = if start.len() < text.len() { "..." } else { "" };
    let snippet = format!("{}{more}", start.escape_debug());
    let content_type = if content_type.is_empty() {
        "no content type"
    } else {
        content_type
    };
    ErrorObject::new(
        code,
        format!(
            "the backend at {url} answered HTTP {status} ({content_type}, {} bytes) without a JSON-RPC answer to the request: {snippet}",
            body.len()
        ),
    )
    .with_data(serde_json::json!({
        "httpStatus": status.as_u16(),
        "contentType": content_type,
        "body": snippet,
    }))
}

/// Reads a body of at most `limit` bytes.
async fn read_limited(response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| format!("reading the backend's answer failed: {e}"))?;
        if body.len() + chunk.len() > limit {
            return Err(format!(
                "the backend's answer exceeds the {limit}-byte limit"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_an_answer_is_quoted_escaped_and_short() {
        let url = Url::parse("http://127.0.0.1:9/mcp").unwrap();
        let body = format!(
            "<html>\n<h1>502 Bad Gateway</h1>\u{1b}[31m{}",
            "x".repeat(5000)
        );
        let error = not_an_answer(
            INTERNAL_ERROR,
            &url,
            StatusCode::OK,
            "text/html",
            body.as_bytes(),
        );
        assert!(
            error.message.starts_with(
                "the backend at http://127.0.0.1:9/mcp answered HTTP 200 OK (text/html, 5036 bytes) \
                 without a JSON-RPC answer to the request: <html>\\n<h1>502 Bad Gateway</h1>\\u{1b}[31mxx"
            ),
            "{}",
            error.message
        );
        assert!(error.message.ends_with("x..."), "{}", error.message);
        assert!(!error.message.contains('\n'));
        assert!(error.message.len() < 500);
    }
}

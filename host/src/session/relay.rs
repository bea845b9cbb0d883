//! The session relay: one client session on one side, one backend session on the other,
//! and every message between them carried across in order, through the interceptor.
//!
//! It owns the id remapping (see [`pending`]), answers what it must answer itself
//! (malformed input, requests whose backend went away), rewrites the `requestId` of
//! `notifications/cancelled`, and tags messages with the request they belong to so a
//! transport with several streams can route them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::pending::{Pending, PendingTable};
use crate::session::intercept::{Direction, Intercepted, SharedInterceptor, Verdict};
use crate::wire::framing::Frame;
use crate::wire::jsonrpc::{
    self, BACKEND_UNAVAILABLE, ErrorObject, INTERNAL_ERROR, INVALID_REQUEST, Kind, Message, RawId,
};
use crate::wire::link::{AnswerHead, Inbound, Link, Outbound, ProtocolHeaders};
use crate::wire::mcp_http;

const CANCELLED: &str = "notifications/cancelled";
const PROGRESS: &str = "notifications/progress";

/// How long to wait for the client to read what is left once the relay ends.
const CLIENT_FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// Who a relay serves, and how.
#[derive(Clone)]
pub struct RelayConfig {
    /// The downstream session id, shown to interceptors and in logs.
    pub session: String,
    /// Unrelated clients share this session (requests without a session id).
    pub shared_session: bool,
    /// The backend's name, shown to interceptors and in logs.
    pub server: String,
    pub interceptor: SharedInterceptor,
    /// After the client leaves, how long the backend gets to finish and exit.
    pub shutdown_grace: Duration,
}

/// Why a relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEnd {
    /// The client closed its side; the backend was given its grace period.
    ClientClosed,
    /// The proxy was asked to stop (a signal).
    Shutdown,
    /// The backend went away; requests in flight were answered with errors.
    BackendClosed(String),
}

/// One session: a client link, a backend link and the state between them.
pub struct SessionRelay {
    config: RelayConfig,
    keep_request_params: bool,
    client_rx: mpsc::Receiver<Inbound>,
    client_tx: mpsc::Sender<Outbound>,
    client_writer: tokio::task::JoinHandle<()>,
    backend_rx: mpsc::Receiver<Inbound>,
    /// `None` once the backend's input is closed.
    backend_tx: Option<mpsc::Sender<Outbound>>,
    /// Client requests forwarded to the backend.
    to_backend: PendingTable,
    /// Backend requests forwarded to the client.
    to_client: PendingTable,
    /// Progress token (JSON text) to the client's id of the request that carries it.
    progress_routes: HashMap<Box<str>, RawId>,
    /// The backend's `x-mcp-header` declarations, from its `tools/list` results, to
    /// keep `Mcp-Param-*` headers true to a request a plugin rewrote.
    param_headers: mcp_http::ParamHeaders,
}

impl SessionRelay {
    pub fn new(config: RelayConfig, client: Link, backend: Link) -> Self {
        SessionRelay {
            keep_request_params: config.interceptor.wants_request_payload(),
            config,
            client_rx: client.inbound,
            client_tx: client.outbound,
            client_writer: client.writer,
            backend_rx: backend.inbound,
            backend_tx: Some(backend.outbound),
            to_backend: PendingTable::default(),
            to_client: PendingTable::default(),
            progress_routes: HashMap::new(),
            param_headers: mcp_http::ParamHeaders::new(),
        }
    }

    /// Relays until one side ends or `shutdown` completes.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> RelayEnd {
        tokio::pin!(shutdown);
        let end = loop {
            // Each side is read only when the side its messages mostly go to has room.
            // Otherwise a full queue towards the backend would stop us from draining
            // the backend's output while it is blocked writing it: a deadlock.
            let backend_tx = self.backend_tx.as_ref().expect("open until the loop ends");
            tokio::select! {
                inbound = recv_when_room(&mut self.client_rx, backend_tx) => match inbound {
                    Some(Inbound::Frame { frame, headers, .. }) => self.on_client_frame(frame, headers).await,
                    Some(Inbound::Closed(why)) => {
                        tracing::debug!(session = %self.config.session, "{why}");
                        break RelayEnd::ClientClosed;
                    }
                    None => break RelayEnd::ClientClosed,
                },
                inbound = recv_when_room(&mut self.backend_rx, &self.client_tx) => match inbound {
                    Some(Inbound::Frame { frame, related, head, .. }) => self.on_backend_frame(frame, related, head).await,
                    Some(Inbound::Closed(why)) => break RelayEnd::BackendClosed(why),
                    None => break RelayEnd::BackendClosed("the backend connection closed".into()),
                },
                () = &mut shutdown => break RelayEnd::Shutdown,
            }
        };
        match &end {
            RelayEnd::BackendClosed(why) => self.fail_in_flight(why).await,
            RelayEnd::ClientClosed => self.let_backend_finish("the client left").await,
            RelayEnd::Shutdown => self.let_backend_finish("the proxy is shutting down").await,
        }
        self.close_client().await;
        end
    }

    // ---- client -> backend ----

    async fn on_client_frame(&mut self, frame: Frame, headers: Option<ProtocolHeaders>) {
        match frame {
            Frame::Message(message) => self.client_message(message, headers).await,
            Frame::Malformed { error, id } => {
                tracing::warn!(session = %self.config.session, "malformed message from the client: {error}");
                let reply = ErrorObject::new(error.code(), error.to_string());
                self.send_client(
                    Message::error_response(
                        error.answer_id(id).unwrap_or_else(jsonrpc::null_id),
                        &reply,
                    ),
                    None,
                )
                .await;
            }
            Frame::TooLong { len, limit, id } => {
                tracing::warn!(session = %self.config.session, "message of {len} bytes from the client exceeds the {limit}-byte limit");
                let reply = too_long_error(len, limit);
                self.send_client(
                    Message::error_response(id.unwrap_or_else(jsonrpc::null_id), &reply),
                    None,
                )
                .await;
            }
        }
    }

    async fn client_message(&mut self, message: Message, headers: Option<ProtocolHeaders>) {
        match message {
            Message::Request { id, method, params } => {
                let verdict = self
                    .judge(
                        Direction::ToServer,
                        Kind::Request,
                        &method,
                        Some(&id),
                        params.as_deref(),
                        None,
                        None,
                    )
                    .await;
                match verdict {
                    Verdict::Pass => {
                        self.forward_client_request(id, method, params, headers)
                            .await
                    }
                    Verdict::Rewrite(params) => {
                        // The headers that describe the request must describe it as
                        // rewritten, or the backend would refuse the mismatch.
                        let headers = headers.map(|h| {
                            Arc::new(mcp_http::rederive_headers(
                                &h,
                                &method,
                                Some(&params),
                                &self.param_headers,
                            ))
                        });
                        self.forward_client_request(id, method, Some(params), headers)
                            .await
                    }
                    Verdict::Respond(result) => {
                        self.send_client(Message::Response { id, result }, None)
                            .await
                    }
                    Verdict::Reject(error) => {
                        self.send_client(Message::error_response(id, &error), None)
                            .await
                    }
                }
            }
            Message::Notification { method, params } => {
                let verdict = self
                    .judge(
                        Direction::ToServer,
                        Kind::Notification,
                        &method,
                        None,
                        params.as_deref(),
                        None,
                        None,
                    )
                    .await;
                let Some(mut params) = notification_params(verdict, params, &method) else {
                    return;
                };
                if method == CANCELLED {
                    // The backend knows the request by the id we gave it.
                    match remap_cancelled(params.as_deref(), &self.to_backend) {
                        Some(remapped) => params = Some(remapped),
                        None => {
                            tracing::debug!(
                                "client cancelled a request that is not in flight; dropped"
                            );
                            return;
                        }
                    }
                }
                self.send_backend(Message::Notification { method, params })
                    .await;
            }
            Message::Response { id, .. } | Message::Error { id, .. }
                if self.to_client.get(&id).is_none() =>
            {
                tracing::warn!(session = %self.config.session, id = id.get(), "the client answered a request that is not in flight; dropped");
            }
            answer => {
                let pending = self
                    .to_client
                    .take(answer.id().expect("answers have ids"))
                    .expect("checked above");
                let (answer, _) = self
                    .judge_answer(Direction::ToServer, answer, &pending)
                    .await;
                self.send_backend(answer).await;
            }
        }
    }

    async fn forward_client_request(
        &mut self,
        id: RawId,
        method: String,
        params: Option<Box<RawValue>>,
        headers: Option<ProtocolHeaders>,
    ) {
        let progress_token = jsonrpc::ParamsMeta::progress_token(params.as_deref());
        if let Some(token) = &progress_token {
            self.progress_routes.insert(token.get().into(), id.clone());
        }
        let forwarded_id = self.to_backend.insert(Pending {
            original_id: id,
            method: method.clone(),
            params: if self.keep_request_params {
                params.clone()
            } else {
                None
            },
            progress_token: progress_token.map(|t| t.get().into()),
            started: Instant::now(),
        });
        self.send_backend_with(
            Message::Request {
                id: forwarded_id,
                method,
                params,
            },
            headers,
        )
        .await;
    }

    // ---- backend -> client ----

    async fn on_backend_frame(
        &mut self,
        frame: Frame,
        related: Option<RawId>,
        head: Option<AnswerHead>,
    ) {
        let server = &self.config.server;
        let (problem, id) = match frame {
            Frame::Message(message) => return self.backend_message(message, related, head).await,
            Frame::Malformed { error, id } => (
                format!("backend `{server}` sent a message that cannot be read: {error}"),
                id,
            ),
            Frame::TooLong { len, limit, id } => (
                format!(
                    "backend `{server}` sent a message of {len} bytes, over the {limit}-byte limit"
                ),
                id,
            ),
        };
        // If it was the answer to a request, that request still gets exactly one answer.
        match id.and_then(|id| self.to_backend.take(&id)) {
            Some(pending) => {
                tracing::warn!(session = %self.config.session, method = %pending.method, "{problem}; the request fails");
                let error = ErrorObject::new(INTERNAL_ERROR, problem)
                    .with_data(serde_json::json!({ "method": pending.method }));
                self.fail_request(pending, &error).await;
            }
            None => tracing::warn!(session = %self.config.session, "{problem}; dropped"),
        }
    }

    async fn backend_message(
        &mut self,
        message: Message,
        related: Option<RawId>,
        head: Option<AnswerHead>,
    ) {
        match message {
            Message::Request { id, method, params } => {
                let verdict = self
                    .judge(
                        Direction::ToClient,
                        Kind::Request,
                        &method,
                        Some(&id),
                        params.as_deref(),
                        None,
                        None,
                    )
                    .await;
                let params = match verdict {
                    Verdict::Pass => params,
                    Verdict::Rewrite(params) => Some(params),
                    Verdict::Respond(result) => {
                        return self.send_backend(Message::Response { id, result }).await;
                    }
                    Verdict::Reject(error) => {
                        return self.send_backend(Message::error_response(id, &error)).await;
                    }
                };
                let route = self.client_request_for(related.as_deref());
                let forwarded_id = self.to_client.insert(Pending {
                    original_id: id,
                    method: method.clone(),
                    params: if self.keep_request_params {
                        params.clone()
                    } else {
                        None
                    },
                    progress_token: None,
                    started: Instant::now(),
                });
                self.send_client(
                    Message::Request {
                        id: forwarded_id,
                        method,
                        params,
                    },
                    route,
                )
                .await;
            }
            Message::Notification { method, params } => {
                let verdict = self
                    .judge(
                        Direction::ToClient,
                        Kind::Notification,
                        &method,
                        None,
                        params.as_deref(),
                        None,
                        None,
                    )
                    .await;
                let Some(mut params) = notification_params(verdict, params, &method) else {
                    return;
                };
                let mut route = self.client_request_for(related.as_deref());
                if method == CANCELLED {
                    // The backend withdrew one of its own requests: the client knows it by our id.
                    match remap_cancelled(params.as_deref(), &self.to_client) {
                        Some(remapped) => params = Some(remapped),
                        None => return,
                    }
                } else if method == PROGRESS {
                    let token = jsonrpc::notification_progress_token(params.as_deref());
                    route = token
                        .and_then(|t| self.progress_routes.get(t.get()).cloned())
                        .or(route);
                } else if let Some((listen, renamed)) = self.subscription_for(params.as_deref()) {
                    // A subscription's notifications belong to its `subscriptions/listen`
                    // request (on stdio nothing else ties them to it) and name it by id:
                    // the id the client gave it.
                    route = Some(listen);
                    params = Some(renamed);
                }
                self.send_client(Message::Notification { method, params }, route)
                    .await;
            }
            answer => {
                let id = answer.id().expect("answers have ids");
                let Some(pending) = self.to_backend.take(id) else {
                    tracing::warn!(session = %self.config.session, id = id.get(), "the backend answered a request that is not in flight; dropped");
                    return;
                };
                self.forget_progress(&pending);
                tracing::trace!(method = %pending.method, elapsed = ?pending.started.elapsed(), "answered");
                if let (Message::Response { result, .. }, "tools/list") =
                    (&answer, pending.method.as_str())
                {
                    mcp_http::record_param_headers(&mut self.param_headers, result);
                }
                let (answer, unchanged) = self
                    .judge_answer(Direction::ToClient, answer, &pending)
                    .await;
                // How the backend sent the answer describes it only as it sent it.
                let head = head.filter(|_| unchanged);
                self.send_client_answer(answer, pending.original_id, head)
                    .await;
            }
        }
    }

    /// The client's id of the request that a backend message belongs to, given the
    /// backend-side id the transport reported.
    fn client_request_for(&self, backend_side_id: Option<&RawValue>) -> Option<RawId> {
        backend_side_id
            .and_then(|id| self.to_backend.get(id))
            .map(|pending| pending.original_id.clone())
    }

    /// For a notification naming a subscription in flight: the client's id of its
    /// `subscriptions/listen` request, and the params naming it by that id.
    fn subscription_for(&self, params: Option<&RawValue>) -> Option<(RawId, Box<RawValue>)> {
        let params = params?;
        let backend_side_id = jsonrpc::ParamsMeta::subscription_id(Some(params))?;
        let listen = self.client_request_for(Some(&backend_side_id))?;
        let renamed =
            jsonrpc::replace_meta_member(params, jsonrpc::SUBSCRIPTION_ID, listen.clone())?;
        Some((listen, renamed))
    }

    fn forget_progress(&mut self, pending: &Pending) {
        if let Some(token) = &pending.progress_token {
            self.progress_routes.remove(token);
        }
    }

    // ---- verdicts ----

    /// Asks the interceptor about one message; `answering` is, for an answer, the
    /// request it answers.
    #[allow(clippy::too_many_arguments)]
    async fn judge(
        &self,
        direction: Direction,
        kind: Kind,
        method: &str,
        id: Option<&RawValue>,
        payload: Option<&RawValue>,
        error: Option<&ErrorObject>,
        answering: Option<&Pending>,
    ) -> Verdict {
        let message = Intercepted {
            direction,
            kind,
            method,
            id,
            payload,
            error,
            request_payload: answering.and_then(|p| p.params.as_deref()),
            elapsed: answering.map(|p| p.started.elapsed()),
            session: &self.config.session,
            shared_session: self.config.shared_session,
            server: &self.config.server,
        };
        let interceptor = &self.config.interceptor;
        let verdict = interceptor.intercept(message).await;
        interceptor.observe(&message, &verdict);
        verdict
    }

    /// Runs an answer (response or error) to `pending` through the interceptor and
    /// returns it with the id its receiver knows, and whether it passed unchanged.
    async fn judge_answer(
        &self,
        direction: Direction,
        answer: Message,
        pending: &Pending,
    ) -> (Message, bool) {
        let id = pending.original_id.clone();
        let (kind, payload, error) = match &answer {
            Message::Response { result, .. } => (Kind::Response, Some(&**result), None),
            Message::Error { error, .. } => (Kind::Error, None, ErrorObject::from_raw(error)),
            _ => unreachable!("only answers are judged here"),
        };
        let verdict = self
            .judge(
                direction,
                kind,
                &pending.method,
                Some(&id),
                payload,
                error.as_ref(),
                Some(pending),
            )
            .await;
        match (verdict, answer) {
            (Verdict::Pass, Message::Response { result, .. }) => {
                (Message::Response { id, result }, true)
            }
            (Verdict::Pass, Message::Error { error, .. }) => (Message::Error { id, error }, true),
            // A rewritten answer is a result; on an error, this recovers from it.
            (Verdict::Rewrite(result) | Verdict::Respond(result), _) => {
                (Message::Response { id, result }, false)
            }
            (Verdict::Reject(error), _) => (Message::error_response(id, &error), false),
            (Verdict::Pass, _) => unreachable!("only answers are judged here"),
        }
    }

    // ---- sending and ending ----

    async fn send_client(&self, message: Message, related: Option<RawId>) {
        self.send_client_outbound(Outbound {
            related,
            ..Outbound::new(message)
        })
        .await;
    }

    /// Sends the backend's answer to the client request `id`, with how the backend
    /// sent it when it passed unchanged.
    async fn send_client_answer(&self, answer: Message, id: RawId, head: Option<AnswerHead>) {
        self.send_client_outbound(Outbound {
            related: Some(id),
            head,
            ..Outbound::new(answer)
        })
        .await;
    }

    async fn send_client_outbound(&self, outbound: Outbound) {
        if self.client_tx.send(outbound).await.is_err() {
            tracing::debug!(session = %self.config.session, "the client is gone; message dropped");
        }
    }

    /// Sends to the backend; a request that cannot be sent is answered with an error.
    async fn send_backend(&mut self, message: Message) {
        self.send_backend_with(message, None).await;
    }

    /// Sends to the backend with the client's protocol headers, when it sent some.
    async fn send_backend_with(&mut self, message: Message, headers: Option<ProtocolHeaders>) {
        let outbound = Outbound {
            headers,
            ..Outbound::new(message)
        };
        let sent = match &self.backend_tx {
            Some(tx) => tx.send(outbound).await.map_err(|e| e.0.message),
            None => Err(outbound.message),
        };
        if let Err(Message::Request { id, .. }) = sent
            && let Some(pending) = self.to_backend.take(&id)
        {
            let error =
                ErrorObject::new(BACKEND_UNAVAILABLE, "the backend is not accepting messages");
            self.fail_request(pending, &error).await;
        }
    }

    /// Answers a client request taken from the table with `error`, instead of the
    /// backend's answer it will not get.
    async fn fail_request(&mut self, pending: Pending, error: &ErrorObject) {
        self.forget_progress(&pending);
        let id = pending.original_id;
        self.send_client(Message::error_response(id.clone(), error), Some(id))
            .await;
    }

    /// The backend is gone: every request still waiting for it gets an error now.
    async fn fail_in_flight(&mut self, why: &str) {
        tracing::error!(session = %self.config.session, in_flight = self.to_backend.len(), "{why}");
        for pending in self.to_backend.drain() {
            let error = ErrorObject::new(
                BACKEND_UNAVAILABLE,
                format!("{why} before answering `{}`", pending.method),
            )
            .with_data(serde_json::json!({ "method": pending.method }));
            self.fail_request(pending, &error).await;
        }
    }

    /// The client left (or we are stopping): cancel what the client still waits for,
    /// close the backend's input and keep relaying what it still sends until it closes
    /// or the grace period ends.
    async fn let_backend_finish(&mut self, why: &str) {
        self.cancel_in_flight(why);
        self.backend_tx = None;
        let deadline = tokio::time::Instant::now() + self.config.shutdown_grace;
        loop {
            match tokio::time::timeout_at(deadline, self.backend_rx.recv()).await {
                Ok(Some(Inbound::Frame {
                    frame,
                    related,
                    head,
                    ..
                })) => self.on_backend_frame(frame, related, head).await,
                Ok(Some(Inbound::Closed(_)) | None) => break,
                Err(_) => {
                    tracing::debug!(
                        "the backend did not close within {:?}",
                        self.config.shutdown_grace
                    );
                    break;
                }
            }
        }
        if !self.to_backend.is_empty() {
            self.fail_in_flight("the proxy is shutting down").await;
        }
    }

    /// Tells the backend that nobody waits for its requests in flight any more, so it
    /// can stop working on them. Best effort: a full queue towards the backend is not
    /// waited for, as the backend may itself be blocked writing to us.
    fn cancel_in_flight(&self, why: &str) {
        let Some(tx) = &self.backend_tx else { return };
        let reason = serde_json::to_string(why).expect("a string serializes");
        for id in self.to_backend.forwarded_ids() {
            let params = format!(r#"{{"requestId":{},"reason":{reason}}}"#, id.get());
            let cancel = Message::Notification {
                method: CANCELLED.into(),
                params: Some(jsonrpc::raw(params)),
            };
            if tx.try_send(Outbound::new(cancel)).is_err() {
                tracing::debug!(session = %self.config.session, "no room to cancel the backend's requests in flight");
                return;
            }
        }
    }

    /// Lets the client's writer flush what is queued, then closes it.
    async fn close_client(self) {
        let SessionRelay {
            client_tx,
            client_writer,
            ..
        } = self;
        drop(client_tx);
        if tokio::time::timeout(CLIENT_FLUSH_LIMIT, client_writer)
            .await
            .is_err()
        {
            tracing::warn!(
                "the client did not read the last messages within {CLIENT_FLUSH_LIMIT:?}"
            );
        }
    }
}

/// Waits until `destination` has room for a message, then receives from `source`.
/// The room stays free when we send right after: the relay is its only sender.
async fn recv_when_room(
    source: &mut mpsc::Receiver<Inbound>,
    destination: &mpsc::Sender<Outbound>,
) -> Option<Inbound> {
    // A closed destination is handled where the message is sent.
    drop(destination.reserve().await);
    source.recv().await
}

/// The params a notification goes on with, or `None` when the verdict drops it.
fn notification_params(
    verdict: Verdict,
    params: Option<Box<RawValue>>,
    method: &str,
) -> Option<Option<Box<RawValue>>> {
    match verdict {
        Verdict::Pass => Some(params),
        // A notification is never answered: `respond` carries new params, as the WIT
        // says, rather than being ignored.
        Verdict::Rewrite(params) | Verdict::Respond(params) => Some(Some(params)),
        Verdict::Reject(_) => {
            tracing::debug!(method, "notification dropped by a plugin");
            None
        }
    }
}

/// `notifications/cancelled` params with `requestId` swapped for the id its receiver
/// knows, or `None` when the request is not in flight (nothing to cancel).
fn remap_cancelled(params: Option<&RawValue>, table: &PendingTable) -> Option<Box<RawValue>> {
    let original = jsonrpc::cancelled_request_id(params)?;
    let forwarded = table.forwarded_id(&original)?;
    jsonrpc::replace_member(params?, "requestId", forwarded)
}

fn too_long_error(len: usize, limit: usize) -> ErrorObject {
    ErrorObject::new(
        INVALID_REQUEST,
        format!("message of {len} bytes exceeds the limit of {limit} bytes"),
    )
    .with_data(serde_json::json!({ "size": len, "limit": limit }))
}

#[cfg(test)]
mod tests;

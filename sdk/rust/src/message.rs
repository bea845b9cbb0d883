//! The message a plugin sees, and the JSON-RPC error type.

use std::cell::OnceCell;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::__private::{WitDirection, WitKind, WitMessage, WitPrincipal, WitRpcError};

use crate::mcp::{
    CallToolResult, GetPromptResult, ReadResourceResult, ToolCallParams, ToolsListResult,
};

/// Which way a message travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client towards the backend server.
    ToServer,
    /// From the backend server towards the client.
    ToClient,
}

impl Direction {
    pub(crate) fn from_wit(direction: WitDirection) -> Self {
        match direction {
            WitDirection::ToServer => Direction::ToServer,
            WitDirection::ToClient => Direction::ToClient,
        }
    }

    /// The WIT spelling: `to-server` or `to-client`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ToServer => "to-server",
            Direction::ToClient => "to-client",
        }
    }

    /// The other direction: the one the answer to a request travels in.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        }
    }
}

pub use interpose_core::Kind;

impl From<WitKind> for Kind {
    fn from(kind: WitKind) -> Self {
        match kind {
            WitKind::Request => Kind::Request,
            WitKind::Response => Kind::Response,
            WitKind::Error => Kind::Error,
            WitKind::Notification => Kind::Notification,
        }
    }
}

/// A JSON-RPC error object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcError {
    /// The JSON-RPC error code.
    pub code: i64,
    /// A short human-readable description.
    pub message: String,
    /// Optional extra data, as JSON text.
    pub data: Option<String>,
}

impl RpcError {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON sent is not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist or is not available.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameters; MCP also uses it for an unknown tool.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal error.
    pub const INTERNAL_ERROR: i64 = -32603;

    fn from_wit(error: WitRpcError) -> Self {
        RpcError {
            code: error.code,
            message: error.message,
            data: error.data,
        }
    }

    /// An error with no `data`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }
}

/// Who the client session is authenticated as, as the access token the proxy's
/// OAuth resource server (`[auth]`) validated says. See [`Message::principal`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// `sub`, or for a token without one, `client_id`.
    pub subject: String,
    /// `iss`: the authorization server that issued the token.
    pub issuer: String,
    /// The scopes the token grants.
    pub scopes: Vec<String>,
    /// Every claim of the token, as JSON text (an object); parse it with
    /// [`Principal::claims_as`].
    pub claims: String,
}

impl Principal {
    /// A principal with no scopes and no claims (`{}`); handy in tests with
    /// [`Principal::with_scopes`] and [`Message::with_principal`].
    pub fn new(issuer: impl Into<String>, subject: impl Into<String>) -> Self {
        Principal {
            subject: subject.into(),
            issuer: issuer.into(),
            scopes: Vec::new(),
            claims: "{}".to_owned(),
        }
    }

    /// Sets the scopes.
    pub fn with_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the claims (JSON text of an object).
    pub fn with_claims(mut self, claims: impl Into<String>) -> Self {
        self.claims = claims.into();
        self
    }

    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Parses the claims (see [`Message::payload_as`]).
    pub fn claims_as<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(&self.claims)
    }

    fn from_wit(principal: WitPrincipal) -> Self {
        Principal {
            subject: principal.subject,
            issuer: principal.issuer,
            scopes: principal.scopes,
            claims: principal.claims,
        }
    }
}

/// One message on its way through the proxy.
///
/// The direction, kind and method arrive with the call; every other part is
/// fetched from the host the first time you ask for it (and kept), so a plugin
/// pays only for what it reads: deciding on `method()` never copies a large
/// payload into the plugin. Parts a kind never has (an error's payload, a
/// request's error) are `None` without asking the host. Payloads are JSON text exactly as they
/// arrived; parse them only when you need to (see [`Message::payload_as`] and
/// the typed views in [`crate::mcp`]).
///
/// The host lends the message for one `intercept` call; the borrow checker
/// keeps a plugin from holding on to it. In unit tests, build one with
/// [`Message::new`], [`Message::request`] or [`Message::response`] and the
/// `with_*` setters.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    /// The host's message; `None` for one built in a test, whose parts are all set.
    /// The cells below are filled on first use.
    lent: Option<&'a WitMessage>,
    direction: Direction,
    kind: Kind,
    method: String,
    id: OnceCell<Option<String>>,
    payload: OnceCell<Option<String>>,
    error: OnceCell<Option<RpcError>>,
    request_payload: OnceCell<Option<String>>,
    elapsed_us: OnceCell<Option<u64>>,
    subject: OnceCell<Option<String>>,
    session: OnceCell<String>,
    server: OnceCell<String>,
    /// From the envelope of a lent message; a test's is measured on its payload.
    payload_size: OnceCell<u64>,
    principal: OnceCell<Option<Principal>>,
}

impl<'a> Message<'a> {
    /// The message the host lent for this call, with the parts that came as
    /// arguments.
    pub(crate) fn lent(
        direction: Direction,
        kind: Kind,
        method: String,
        msg: &'a WitMessage,
    ) -> Self {
        Message {
            lent: Some(msg),
            direction,
            kind,
            method,
            id: OnceCell::new(),
            payload: OnceCell::new(),
            error: OnceCell::new(),
            request_payload: OnceCell::new(),
            elapsed_us: OnceCell::new(),
            subject: OnceCell::new(),
            session: OnceCell::new(),
            server: OnceCell::new(),
            payload_size: OnceCell::new(),
            principal: OnceCell::new(),
        }
    }

    /// A part of the envelope (id, session, server, payload size, elapsed time): the
    /// first one asked for fetches them all in one host call, since each call costs
    /// more than the few bytes of the others.
    fn enveloped<'s, T>(&'s self, cell: &'s OnceCell<T>) -> &'s T {
        if cell.get().is_none() {
            // `Message::new` sets every part but the size, which is never asked here.
            let msg = self
                .lent
                .expect("a message built in a test has every part set");
            let envelope = msg.envelope();
            let _ = self.id.set(envelope.id);
            let _ = self.session.set(envelope.session);
            let _ = self.server.set(envelope.server);
            let _ = self.payload_size.set(envelope.payload_size);
            let _ = self.elapsed_us.set(envelope.elapsed_us);
        }
        cell.get().expect("the envelope holds this part")
    }

    /// The part in `cell`, fetched from the host on first use.
    fn part<'s, T>(&'s self, cell: &'s OnceCell<T>, fetch: impl FnOnce(&WitMessage) -> T) -> &'s T {
        cell.get_or_init(|| match self.lent {
            Some(msg) => fetch(msg),
            // `Message::new` sets every part.
            None => unreachable!("a message built in a test has every part set"),
        })
    }

    /// Which way the message travels.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Request, response, error or notification.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The JSON-RPC method; for responses and errors, the method of the request
    /// they answer.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The JSON-RPC id as JSON text (`7`, `"abc"`); `None` for notifications.
    pub fn id(&self) -> Option<&str> {
        if self.kind == Kind::Notification {
            return None;
        }
        self.enveloped(&self.id).as_deref()
    }

    /// `params` of a request or notification, `result` of a response, as JSON
    /// text (after any rewrite by an earlier plugin); `None` when the message
    /// has none (and for errors).
    pub fn payload(&self) -> Option<&str> {
        if self.kind == Kind::Error {
            return None;
        }
        self.part(&self.payload, WitMessage::payload).as_deref()
    }

    /// The error of an error answer.
    pub fn error(&self) -> Option<&RpcError> {
        if self.kind != Kind::Error {
            return None;
        }
        self.part(&self.error, |m| m.error().map(RpcError::from_wit))
            .as_ref()
    }

    /// For responses and errors, when the manifest set `wants_request`: the
    /// `params` of the request being answered.
    pub fn request_payload(&self) -> Option<&str> {
        if !matches!(self.kind, Kind::Response | Kind::Error) {
            return None;
        }
        self.part(&self.request_payload, WitMessage::request_payload)
            .as_deref()
    }

    /// The size of the payload in bytes (0 when there is none), without copying
    /// the payload into the plugin unless it was read already.
    pub fn payload_len(&self) -> usize {
        if let Some(payload) = self.payload.get() {
            return payload.as_deref().map_or(0, str::len);
        }
        match self.lent {
            Some(_) if self.kind != Kind::Error => {
                usize::try_from(*self.enveloped(&self.payload_size)).unwrap_or(usize::MAX)
            }
            _ => 0,
        }
    }

    /// For responses and errors: the time from when the proxy forwarded the
    /// request to when this answer arrived. `None` for requests and notifications.
    pub fn elapsed(&self) -> Option<Duration> {
        if !matches!(self.kind, Kind::Response | Kind::Error) {
            return None;
        }
        self.enveloped(&self.elapsed_us).map(Duration::from_micros)
    }

    /// What the message acts on: the tool's name (`tools/call`), the prompt's
    /// name (`prompts/get`) or the resource URI (`resources/read`, `subscribe`,
    /// `unsubscribe`, `notifications/resources/updated`); `None` for other
    /// methods. An answer's is its request's, when the manifest set
    /// `wants_request`. The host reads it from the params, so a plugin that needs
    /// only the name neither copies nor parses the payload.
    pub fn subject(&self) -> Option<&str> {
        self.subject
            .get_or_init(|| match self.lent {
                Some(msg) => msg.subject(),
                // Built in a test: read as the host reads it.
                None => {
                    let params = match self.kind {
                        Kind::Request | Kind::Notification => self.payload(),
                        Kind::Response | Kind::Error => self.request_payload(),
                    };
                    params.and_then(|p| crate::mcp::subject(&self.method, p))
                }
            })
            .as_deref()
    }

    /// The downstream (client) session this message belongs to.
    pub fn session(&self) -> &str {
        self.enveloped(&self.session).as_str()
    }

    /// The name of the server the message belongs to (the one a request goes to or
    /// a message comes from); in a gateway, `gateway` in the global chain for what
    /// concerns every server (a fan-out such as `tools/list`).
    pub fn server(&self) -> &str {
        self.enveloped(&self.server).as_str()
    }

    /// Who the client session is authenticated as, by the proxy's OAuth resource
    /// server (`[auth]`); `None` for stdio, for the static bearer token and for
    /// unauthenticated sessions. Fetched from the host on first use.
    pub fn principal(&self) -> Option<&Principal> {
        self.part(&self.principal, |m| m.principal().map(Principal::from_wit))
            .as_ref()
    }
}

impl Message<'static> {
    /// A message with the given direction, kind and method and everything else
    /// empty; handy in tests together with the `with_*` setters.
    pub fn new(direction: Direction, kind: Kind, method: impl Into<String>) -> Self {
        Message {
            lent: None,
            direction,
            kind,
            method: method.into(),
            id: OnceCell::from(None),
            payload: OnceCell::from(None),
            error: OnceCell::from(None),
            request_payload: OnceCell::from(None),
            elapsed_us: OnceCell::from(None),
            subject: OnceCell::new(),
            session: OnceCell::from(String::new()),
            server: OnceCell::from(String::new()),
            payload_size: OnceCell::new(),
            principal: OnceCell::from(None),
        }
    }

    /// A client request (`to-server`), with id `1`.
    pub fn request(method: impl Into<String>, params: impl Into<String>) -> Self {
        Message::new(Direction::ToServer, Kind::Request, method)
            .with_id("1")
            .with_payload(params)
    }

    /// A server response (`to-client`) to a client request, with id `1`.
    pub fn response(method: impl Into<String>, result: impl Into<String>) -> Self {
        Message::new(Direction::ToClient, Kind::Response, method)
            .with_id("1")
            .with_payload(result)
    }

    /// Sets `id` (JSON text).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = OnceCell::from(Some(id.into()));
        self
    }

    /// Sets `payload` (JSON text).
    pub fn with_payload(mut self, payload: impl Into<String>) -> Self {
        self.payload = OnceCell::from(Some(payload.into()));
        self.subject = OnceCell::new();
        self
    }

    /// Sets `request_payload` (JSON text).
    pub fn with_request_payload(mut self, payload: impl Into<String>) -> Self {
        self.request_payload = OnceCell::from(Some(payload.into()));
        self.subject = OnceCell::new();
        self
    }

    /// Sets `error`.
    pub fn with_error(mut self, error: RpcError) -> Self {
        self.error = OnceCell::from(Some(error));
        self
    }

    /// Sets `elapsed`.
    pub fn with_elapsed(mut self, elapsed: Duration) -> Self {
        self.elapsed_us =
            OnceCell::from(Some(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)));
        self
    }

    /// Sets `session`.
    pub fn with_session(mut self, session: impl Into<String>) -> Self {
        self.session = OnceCell::from(session.into());
        self
    }

    /// Sets `server`.
    pub fn with_server(mut self, server: impl Into<String>) -> Self {
        self.server = OnceCell::from(server.into());
        self
    }

    /// Sets `principal`: the message belongs to a session authenticated as it.
    pub fn with_principal(mut self, principal: Principal) -> Self {
        self.principal = OnceCell::from(Some(principal));
        self
    }
}

impl Message<'_> {
    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        self.kind() == Kind::Request
    }

    /// Whether this answers a request (a response or an error).
    pub fn is_answer(&self) -> bool {
        matches!(self.kind(), Kind::Response | Kind::Error)
    }

    /// Whether this is a notification.
    pub fn is_notification(&self) -> bool {
        self.kind() == Kind::Notification
    }

    /// Whether this is a request from the client with this method.
    pub fn is_client_request(&self, method: &str) -> bool {
        self.direction() == Direction::ToServer
            && self.kind() == Kind::Request
            && self.method() == method
    }

    /// Whether this is a successful answer from the server to a client request
    /// with this method.
    pub fn is_server_response(&self, method: &str) -> bool {
        self.direction() == Direction::ToClient
            && self.kind() == Kind::Response
            && self.method() == method
    }

    /// The payload text; `""` when there is none.
    pub fn payload_text(&self) -> &str {
        self.payload().unwrap_or("")
    }

    /// Parses the payload. A missing payload parses as JSON `null`, so ask for an
    /// `Option<T>` when the payload may be absent. Errors are serde's, e.g. for
    /// a missing field or a duplicate key: a policy plugin should fail closed on
    /// them rather than guess what the backend will read.
    pub fn payload_as<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.payload().unwrap_or("null"))
    }

    /// Parses the request payload (see [`Message::payload_as`]).
    pub fn request_payload_as<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.request_payload().unwrap_or("null"))
    }

    /// For a `tools/call` request, its params; for an answer to one, the params
    /// of the request when the manifest set `wants_request`. `None` for other
    /// messages or when the params do not parse.
    pub fn tool_call(&self) -> Option<ToolCallParams> {
        if self.method() != "tools/call" {
            return None;
        }
        match self.kind() {
            Kind::Request => self.payload_as().ok(),
            Kind::Response | Kind::Error => self.request_payload_as().ok(),
            Kind::Notification => None,
        }
    }

    /// The result of a successful `tools/call` answer.
    pub fn call_tool_result(&self) -> Option<CallToolResult> {
        self.result_of("tools/call")
    }

    /// The result of a successful `tools/list` answer.
    pub fn tools_list(&self) -> Option<ToolsListResult> {
        self.result_of("tools/list")
    }

    /// The result of a successful `resources/read` answer.
    pub fn resource_contents(&self) -> Option<ReadResourceResult> {
        self.result_of("resources/read")
    }

    /// The result of a successful `prompts/get` answer.
    pub fn prompt(&self) -> Option<GetPromptResult> {
        self.result_of("prompts/get")
    }

    fn result_of<T: DeserializeOwned>(&self, method: &str) -> Option<T> {
        if self.kind() == Kind::Response && self.method() == method {
            self.payload_as().ok()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn typed_views_follow_method_and_kind() {
        let call = Message::request("tools/call", r#"{"name":"echo","arguments":{"x":1}}"#);
        assert_eq!(call.tool_call().unwrap().name, "echo");
        assert!(call.call_tool_result().is_none(), "a request has no result");

        let answer =
            Message::response("tools/call", r#"{"content":[{"type":"text","text":"hi"}]}"#)
                .with_request_payload(r#"{"name":"echo"}"#);
        assert_eq!(
            answer.tool_call().unwrap().name,
            "echo",
            "from the request payload"
        );
        assert_eq!(answer.call_tool_result().unwrap().joined_text(), "hi");
        assert!(answer.tools_list().is_none(), "other method");

        let list = Message::response("tools/list", r#"{"tools":[{"name":"a"}]}"#);
        assert_eq!(
            list.tools_list().unwrap().names().collect::<Vec<_>>(),
            ["a"]
        );
        let read = Message::response("resources/read", r#"{"contents":[{"uri":"u","text":"t"}]}"#);
        assert_eq!(
            read.resource_contents()
                .unwrap()
                .texts()
                .collect::<Vec<_>>(),
            ["t"]
        );
        let prompt = Message::response("prompts/get", r#"{"messages":[]}"#);
        assert!(prompt.prompt().unwrap().messages.is_empty());
        let bad = Message::request("tools/call", r#"{"arguments":{}}"#);
        assert!(bad.tool_call().is_none(), "no name");
    }

    #[test]
    fn the_subject_of_a_test_message_is_read_as_the_host_reads_it() {
        let call = Message::request("tools/call", r#"{"arguments":{"name":"x"},"name":"echo"}"#);
        assert_eq!(call.subject(), Some("echo"));
        let answer = Message::response("tools/call", "{}");
        assert_eq!(answer.subject(), None, "no request payload");
        let answer = answer.with_request_payload(r#"{"name":"echo"}"#);
        assert_eq!(answer.subject(), Some("echo"));
        let read = Message::request("resources/read", r#"{"uri":"file:///a"}"#);
        assert_eq!(read.subject(), Some("file:///a"));
        assert_eq!(Message::request("tools/list", "{}").subject(), None);
    }

    #[test]
    fn a_test_message_has_no_principal_unless_given_one() {
        let call = Message::request("tools/call", r#"{"name":"echo"}"#);
        assert_eq!(call.principal(), None);
        let alice = Principal::new("https://idp.test", "alice")
            .with_scopes(["mcp:tools", "admin"])
            .with_claims(r#"{"sub":"alice","email":"a@example.com"}"#);
        let call = call.with_principal(alice.clone());
        let principal = call.principal().expect("given");
        assert_eq!(principal, &alice);
        assert_eq!(
            (principal.subject.as_str(), principal.issuer.as_str()),
            ("alice", "https://idp.test")
        );
        assert!(principal.has_scope("admin") && !principal.has_scope("root"));
        let claims: Value = principal.claims_as().unwrap();
        assert_eq!(claims["email"], "a@example.com");
        assert_eq!(
            Principal::new("i", "s").claims_as::<Value>().unwrap(),
            json!({})
        );
    }

    #[test]
    fn payload_as_treats_a_missing_payload_as_null() {
        let msg = Message::new(
            Direction::ToServer,
            Kind::Notification,
            "notifications/initialized",
        );
        assert_eq!(msg.payload_as::<Option<Value>>().unwrap(), None);
        assert!(msg.payload_as::<Value>().unwrap().is_null());
        assert_eq!(msg.payload_len(), 0);
        assert_eq!(msg.payload_text(), "");
        let msg = msg.with_payload(r#"{"a":1}"#);
        assert_eq!(msg.payload_as::<Value>().unwrap(), json!({"a": 1}));
        assert_eq!(msg.payload_len(), 7);
    }

    #[test]
    fn kind_and_direction_predicates() {
        let request = Message::request("tools/call", "{}");
        assert!(request.is_request() && request.is_client_request("tools/call"));
        assert!(!request.is_client_request("tools/list") && !request.is_answer());
        let response = Message::response("tools/list", "{}");
        assert!(response.is_answer() && response.is_server_response("tools/list"));
        let error =
            Message::new(Direction::ToClient, Kind::Error, "x").with_error(RpcError::new(-1, "no"));
        assert!(error.is_answer() && !error.is_server_response("x"));
        assert!(Message::new(Direction::ToClient, Kind::Notification, "n").is_notification());
        assert_eq!(Direction::ToServer.reverse(), Direction::ToClient);
        assert_eq!(
            (Direction::ToClient.as_str(), Kind::Notification.as_str()),
            ("to-client", "notification")
        );
    }
}

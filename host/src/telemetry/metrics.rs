//! The process's Prometheus metrics: one registry for the process, written in the
//! Prometheus text format when scraped (see `docs/operations.md` for each metric).
//!
//! Label sets stay bounded whatever the peers send: a method outside MCP's own is
//! `_OTHER`, a tool is named only when a backend listed it, an error code only in
//! JSON-RPC's reserved range; sessions and users are never labels. The hot path
//! resolves label handles ahead where it can (per message kind, per plugin) and
//! allocates nothing per message.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{
    EncodeLabel, EncodeLabelSet, EncodeLabelValue, LabelSetEncoder, LabelValueEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::wire::jsonrpc::Direction;
use crate::wire::jsonrpc::{ErrorObject, Kind, Message};

/// The `Content-Type` of a scrape: the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The label value of whatever a bounded label does not name itself (the OpenTelemetry
/// conventions' spelling).
pub const OTHER: &str = "_OTHER";

/// Most tool names kept as label values; tools listed after that are `_OTHER`.
pub const MAX_TOOL_NAMES: usize = 1000;

/// The methods named as themselves in `mcp_method_name`: MCP's own, across revisions.
const MCP_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "subscriptions/listen",
    "completion/complete",
    "logging/setLevel",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/message",
    "notifications/roots/list_changed",
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/resources/list_changed",
    "notifications/resources/updated",
    "notifications/elicitation/complete",
    "notifications/tasks/status",
];

/// `method` as a label value: itself when MCP defines it, else [`OTHER`].
pub fn method_label(method: &str) -> &'static str {
    MCP_METHODS
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or(OTHER)
}

/// A name used as a label value (a server's, a plugin's, a listed tool's), shared so
/// that a label set is copied without allocating.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(Arc<str>);

impl Name {
    pub fn new(name: &str) -> Self {
        Name(name.into())
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        encoder.write_str(&self.0)
    }
}

/// The `error_type` of a failed operation, as the OpenTelemetry MCP conventions spell
/// it: the JSON-RPC error code, `tool_error` for a tool result with `isError: true`,
/// and [`OTHER`] for a code outside JSON-RPC's reserved range (any number could come
/// from a backend; the label must stay bounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    Code(i64),
    ToolError,
    Other,
}

/// The codes JSON-RPC reserves (-32768 to -32000), named as themselves.
const RESERVED_CODES: std::ops::RangeInclusive<i64> = -32768..=-32000;

impl ErrorType {
    pub fn of_code(code: i64) -> Self {
        if RESERVED_CODES.contains(&code) {
            ErrorType::Code(code)
        } else {
            ErrorType::Other
        }
    }

    /// How an answer to `method` failed, if it did.
    pub fn of_answer(method: &str, answer: &Message) -> Option<Self> {
        match answer {
            Message::Error { error, .. } => Some(
                ErrorObject::from_raw(error).map_or(ErrorType::Other, |e| Self::of_code(e.code)),
            ),
            Message::Response { result, .. } if method == "tools/call" => {
                is_tool_error(result).then_some(ErrorType::ToolError)
            }
            _ => None,
        }
    }
}

impl EncodeLabelValue for ErrorType {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        match self {
            ErrorType::Code(code) => write!(encoder, "{code}"),
            ErrorType::ToolError => encoder.write_str("tool_error"),
            ErrorType::Other => encoder.write_str(OTHER),
        }
    }
}

/// Whether a `tools/call` result says `isError: true`. Most results say nothing or
/// `false`: a scan of the text tells, and only a `true` is confirmed by parsing
/// (it may belong to a nested object).
pub(crate) fn is_tool_error(result: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct ToolResult {
        #[serde(rename = "isError", default)]
        is_error: bool,
    }
    const KEY: &[u8] = b"\"isError\"";
    // Built once: building a finder (choosing the bytes to look for first) costs more
    // than searching a short result with it.
    static FINDER: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(KEY));
    let text = result.get().as_bytes();
    let says_true = FINDER.find_iter(text).any(|at| {
        let after_key = text[at + KEY.len()..].trim_ascii_start();
        after_key
            .strip_prefix(b":")
            .is_some_and(|value| value.trim_ascii_start().starts_with(b"true"))
    });
    says_true && serde_json::from_str::<ToolResult>(result.get()).is_ok_and(|r| r.is_error)
}

/// Where a client session came in. (The discriminants index the handles resolved
/// ahead, as in the enums below.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Stdio = 0,
    StreamableHttp = 1,
    /// The legacy HTTP+SSE transport.
    Sse = 2,
    /// Streamable HTTP requests sent without a session.
    Sessionless = 3,
}

impl Transport {
    const ALL: [Transport; 4] = [
        Transport::Stdio,
        Transport::StreamableHttp,
        Transport::Sse,
        Transport::Sessionless,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Stdio => "stdio",
            Transport::StreamableHttp => "streamable-http",
            Transport::Sse => "sse",
            Transport::Sessionless => "sessionless",
        }
    }
}

/// Why a plugin gave no verdict (`cause` of `interpose_plugin_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    Deadline = 0,
    Memory = 1,
    /// A trap, a stack overflow included.
    Trap = 2,
    /// A verdict that was not valid JSON, or over the output limit.
    BadOutput = 3,
    /// No instance could be started for the call.
    Instantiate = 4,
    /// Not called: the message was over the plugin's input limit.
    Oversized = 5,
    /// Not called: the session's breaker was open.
    Paused = 6,
}

impl FailureCause {
    const ALL: [FailureCause; 7] = [
        FailureCause::Deadline,
        FailureCause::Memory,
        FailureCause::Trap,
        FailureCause::BadOutput,
        FailureCause::Instantiate,
        FailureCause::Oversized,
        FailureCause::Paused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureCause::Deadline => "deadline",
            FailureCause::Memory => "memory",
            FailureCause::Trap => "trap",
            FailureCause::BadOutput => "bad_output",
            FailureCause::Instantiate => "instantiate",
            FailureCause::Oversized => "oversized",
            FailureCause::Paused => "paused",
        }
    }
}

/// A plugin's verdict (`verdict` of `interpose_plugin_verdicts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictLabel {
    Pass = 0,
    Rewrite = 1,
    Respond = 2,
    Reject = 3,
}

impl VerdictLabel {
    const ALL: [VerdictLabel; 4] = [
        VerdictLabel::Pass,
        VerdictLabel::Rewrite,
        VerdictLabel::Respond,
        VerdictLabel::Reject,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VerdictLabel::Pass => "pass",
            VerdictLabel::Rewrite => "rewrite",
            VerdictLabel::Respond => "respond",
            VerdictLabel::Reject => "reject",
        }
    }
}

const KINDS: [Kind; 4] = [
    Kind::Request,
    Kind::Response,
    Kind::Error,
    Kind::Notification,
];

fn kind_index(kind: Kind) -> usize {
    match kind {
        Kind::Request => 0,
        Kind::Response => 1,
        Kind::Error => 2,
        Kind::Notification => 3,
    }
}

fn direction_index(direction: Direction) -> usize {
    match direction {
        Direction::ToServer => 0,
        Direction::ToClient => 1,
    }
}

// ---- label sets ----

/// Labels of static text only, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Fixed<const N: usize>([(&'static str, &'static str); N]);

impl<const N: usize> EncodeLabelSet for Fixed<N> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        self.0.encode(encoder)
    }
}

/// One name label (`server` or `plugin`), with a static one after it when `N` is 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Named<const N: usize> {
    key: &'static str,
    name: Name,
    fixed: [(&'static str, &'static str); N],
}

impl<const N: usize> EncodeLabelSet for Named<N> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        (self.key, self.name.clone()).encode(encoder.encode_label())?;
        self.fixed.encode(encoder)
    }
}

fn named(key: &'static str, name: &Name) -> Named<0> {
    Named {
        key,
        name: name.clone(),
        fixed: [],
    }
}

/// `mcp_server_operation_duration_seconds`'s labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServerOperation {
    method: &'static str,
    tool: Option<Name>,
    error: Option<ErrorType>,
}

impl EncodeLabelSet for ServerOperation {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        ("mcp_method_name", self.method).encode(encoder.encode_label())?;
        if let Some(tool) = &self.tool {
            ("gen_ai_tool_name", tool.clone()).encode(encoder.encode_label())?;
        }
        if let Some(error) = self.error {
            ("error_type", error).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// `mcp_client_operation_duration_seconds`'s labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientOperation {
    server: Name,
    method: &'static str,
    error: Option<ErrorType>,
}

impl EncodeLabelSet for ClientOperation {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        ("server", self.server.clone()).encode(encoder.encode_label())?;
        ("mcp_method_name", self.method).encode(encoder.encode_label())?;
        if let Some(error) = self.error {
            ("error_type", error).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The OpenTelemetry conventions' buckets for MCP operations, in seconds, with finer
/// ones below 10 ms: a plugin's answer or a local backend's takes less.
fn operation_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
        60.0, 120.0, 300.0,
    ])
}

/// Plugin calls take microseconds (Rust) to tens of milliseconds (JS on large input).
fn plugin_call_histogram() -> Histogram {
    Histogram::new([
        1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01,
        0.025, 0.05, 0.1, 0.25, 1.0,
    ])
}

/// What can say how many instances each of its plugins has alive (a plugin chain).
pub trait PluginCensus: Send + Sync {
    /// Calls `count` with each plugin's name and its live instances.
    fn census(&self, count: &mut dyn FnMut(&str, usize));
}

/// The process's metrics. See [`metrics`].
pub struct Metrics {
    registry: Registry,
    /// By direction, then kind.
    messages: [[Counter; 4]; 2],
    /// By direction.
    bytes: [Counter; 2],
    server_operations: HistogramFamily<ServerOperation>,
    client_operations: HistogramFamily<ClientOperation>,
    /// By [`Transport`].
    sessions: [Gauge; 4],
    backends_up: Family<Named<0>, Gauge>,
    backend_restarts: Family<Named<0>, Counter>,
    plugin_calls: HistogramFamily<Named<1>>,
    plugin_verdicts: Family<Named<1>, Counter>,
    plugin_failures: Family<Named<1>, Counter>,
    plugin_breaker_opens: Family<Named<0>, Counter>,
    plugin_instances: Family<Named<0>, Gauge>,
    plugin_reloads: Family<Named<0>, Counter>,
    /// Tool names the backends listed: the only ones named in `gen_ai_tool_name`.
    listed_tools: RwLock<HashSet<Name>>,
    other_tool: Name,
    censuses: Mutex<Vec<Weak<dyn PluginCensus>>>,
}

/// The process's metrics, made on first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let messages_family = Family::<Fixed<2>, Counter>::default();
        let messages = [Direction::ToServer, Direction::ToClient].map(|direction| {
            KINDS.map(|kind| {
                messages_family
                    .get_or_create(&Fixed([
                        ("direction", direction.as_str()),
                        ("kind", kind.as_str()),
                    ]))
                    .clone()
            })
        });
        registry.register(
            "interpose_messages",
            "Messages the relay judged, by the way they travel and their kind",
            messages_family,
        );
        let bytes_family = Family::<Fixed<1>, Counter>::default();
        let bytes = [Direction::ToServer, Direction::ToClient].map(|direction| {
            bytes_family
                .get_or_create(&Fixed([("direction", direction.as_str())]))
                .clone()
        });
        registry.register_with_unit(
            "interpose_message",
            "Bytes of message payloads (params, result) as received, by the way they travel",
            Unit::Bytes,
            bytes_family,
        );
        let server_operations: HistogramFamily<ServerOperation> =
            Family::new_with_constructor(operation_histogram);
        registry.register_with_unit(
            "mcp_server_operation_duration",
            "Time from a client's request reaching the proxy to its answer leaving it",
            Unit::Seconds,
            server_operations.clone(),
        );
        let client_operations: HistogramFamily<ClientOperation> =
            Family::new_with_constructor(operation_histogram);
        registry.register_with_unit(
            "mcp_client_operation_duration",
            "Time from a request forwarded to a server to its answer",
            Unit::Seconds,
            client_operations.clone(),
        );
        let sessions_family = Family::<Fixed<1>, Gauge>::default();
        let sessions = Transport::ALL.map(|transport| {
            sessions_family
                .get_or_create(&Fixed([("transport", transport.as_str())]))
                .clone()
        });
        registry.register(
            "interpose_sessions_open",
            "Client sessions open, by transport",
            sessions_family,
        );
        let backends_up = Family::default();
        registry.register(
            "interpose_backend_up",
            "Open connections to a server (its process or HTTP session), one per client session; 0: none is up",
            backends_up.clone(),
        );
        let backend_restarts = Family::default();
        registry.register(
            "interpose_backend_restarts",
            "Times a server was started again after it ended",
            backend_restarts.clone(),
        );
        let plugin_calls: HistogramFamily<Named<1>> =
            Family::new_with_constructor(plugin_call_histogram);
        registry.register_with_unit(
            "interpose_plugin_call_duration",
            "Time in one plugin call, by plugin and the kind of message it was called for",
            Unit::Seconds,
            plugin_calls.clone(),
        );
        let plugin_verdicts = Family::default();
        registry.register(
            "interpose_plugin_verdicts",
            "Verdicts given, by plugin and verdict",
            plugin_verdicts.clone(),
        );
        let plugin_failures = Family::default();
        registry.register(
            "interpose_plugin_failures",
            "Messages a plugin gave no verdict on, by plugin and cause",
            plugin_failures.clone(),
        );
        let plugin_breaker_opens = Family::default();
        registry.register(
            "interpose_plugin_breaker_opens",
            "Times a plugin's breaker opened for a session (the plugin is disabled for that session during its cooldown)",
            plugin_breaker_opens.clone(),
        );
        let plugin_instances = Family::default();
        registry.register(
            "interpose_plugin_instances",
            "Live instances of a plugin (idle in its pool or serving a call)",
            plugin_instances.clone(),
        );
        let plugin_reloads = Family::default();
        registry.register(
            "interpose_plugin_reloads",
            "Times a plugin's file changed and its new version was loaded",
            plugin_reloads.clone(),
        );
        Metrics {
            registry,
            messages,
            bytes,
            server_operations,
            client_operations,
            sessions,
            backends_up,
            backend_restarts,
            plugin_calls,
            plugin_verdicts,
            plugin_failures,
            plugin_breaker_opens,
            plugin_instances,
            plugin_reloads,
            listed_tools: RwLock::new(HashSet::new()),
            other_tool: Name::new(OTHER),
            censuses: Mutex::new(Vec::new()),
        }
    }

    /// The registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        self.count_instances();
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }

    // ---- messages and operations ----

    /// Counts one message the relay judged; `payload_bytes` is the length of its
    /// `params` or `result`.
    #[inline]
    pub fn message(&self, direction: Direction, kind: Kind, payload_bytes: usize) {
        let direction = direction_index(direction);
        self.messages[direction][kind_index(kind)].inc();
        if payload_bytes > 0 {
            self.bytes[direction].inc_by(payload_bytes as u64);
        }
    }

    /// Starts the clock on a client's request to `method`, reading the tool's name
    /// from a `tools/call`'s `params`.
    pub fn operation(&self, method: &str, params: Option<&RawValue>) -> Operation {
        let tool = (method == "tools/call").then(|| self.tool_label(params));
        Operation {
            started: Instant::now(),
            tool,
        }
    }

    /// The `gen_ai_tool_name` of a `tools/call` with these params.
    fn tool_label(&self, params: Option<&RawValue>) -> Name {
        #[derive(Deserialize)]
        struct Call<'a> {
            #[serde(borrow)]
            name: std::borrow::Cow<'a, str>,
        }
        let name = params.and_then(|p| serde_json::from_str::<Call>(p.get()).ok());
        let listed = self.listed_tools.read().unwrap_or_else(|e| e.into_inner());
        name.and_then(|call| listed.get(&*call.name).cloned())
            .unwrap_or_else(|| self.other_tool.clone())
    }

    /// Remembers the tool names of a `tools/list` result, up to [`MAX_TOOL_NAMES`].
    pub fn learn_tools(&self, result: &RawValue) {
        #[derive(Deserialize)]
        struct Tool<'a> {
            #[serde(borrow)]
            name: std::borrow::Cow<'a, str>,
        }
        #[derive(Deserialize)]
        struct ToolList<'a> {
            #[serde(borrow)]
            tools: Vec<Tool<'a>>,
        }
        let Ok(list) = serde_json::from_str::<ToolList>(result.get()) else {
            return;
        };
        self.learn_tool_names(list.tools.iter().map(|t| &*t.name));
    }

    /// Remembers tool names a list gave, up to [`MAX_TOOL_NAMES`] (the gateway's
    /// merge hands over the names it read, so the list is not read again).
    pub fn learn_tool_names<'a>(&self, names: impl Iterator<Item = &'a str> + Clone) {
        {
            let listed = self.listed_tools.read().unwrap_or_else(|e| e.into_inner());
            if names.clone().all(|name| listed.contains(name)) {
                return;
            }
        }
        let mut listed = self.listed_tools.write().unwrap_or_else(|e| e.into_inner());
        for name in names {
            if listed.len() >= MAX_TOOL_NAMES {
                tracing::debug!(
                    "more than {MAX_TOOL_NAMES} tool names listed: the rest are `{OTHER}` in metrics"
                );
                return;
            }
            if !listed.contains(name) {
                listed.insert(Name::new(name));
            }
        }
    }

    /// A client's request to `method` got `answer` (from a server, a plugin, or the
    /// proxy).
    pub fn operation_answered(&self, operation: &Operation, method: &str, answer: &Message) {
        self.operation_done(operation, method, ErrorType::of_answer(method, answer));
    }

    /// A client's request to `method` failed with an error of `code` that the relay
    /// or a plugin made.
    pub fn operation_failed(&self, operation: &Operation, method: &str, code: i64) {
        self.operation_done(operation, method, Some(ErrorType::of_code(code)));
    }

    /// A client's request was answered (by a server, a plugin, or the proxy).
    pub fn operation_done(&self, operation: &Operation, method: &str, error: Option<ErrorType>) {
        let labels = ServerOperation {
            method: method_label(method),
            tool: operation.tool.clone(),
            error,
        };
        self.server_operations
            .get_or_create(&labels)
            .observe(operation.started.elapsed().as_secs_f64());
    }

    /// A server answered (or failed) a request forwarded to it after `elapsed`.
    pub fn upstream_done(
        &self,
        server: &Name,
        method: &str,
        elapsed: Duration,
        error: Option<ErrorType>,
    ) {
        let labels = ClientOperation {
            server: server.clone(),
            method: method_label(method),
            error,
        };
        self.client_operations
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    // ---- sessions and backends ----

    /// Counts a client session open until the returned guard is dropped.
    pub fn session_opened(&self, transport: Transport) -> GaugeGuard {
        GaugeGuard::up(self.sessions[transport as usize].clone())
    }

    /// Counts a connection to `server` open until the returned guard is dropped.
    pub fn backend_connected(&self, server: &Name) -> GaugeGuard {
        GaugeGuard::up(
            self.backends_up
                .get_or_create(&named("server", server))
                .clone(),
        )
    }

    /// Counts a restart of `server` (called where a backend is started again).
    pub fn backend_restarted(&self, server: &Name) {
        self.backend_restarts
            .get_or_create(&named("server", server))
            .inc();
    }

    // ---- plugins ----

    /// The handles of one plugin's metrics, resolved once (when it is loaded).
    pub fn plugin(&self, plugin: &str) -> PluginMetrics {
        let name = Name::new(plugin);
        let with = |key: &'static str, value: &'static str| Named {
            key: "plugin",
            name: name.clone(),
            fixed: [(key, value)],
        };
        PluginMetrics {
            calls: KINDS.map(|kind| {
                self.plugin_calls
                    .get_or_create(&with("hook", kind.as_str()))
                    .clone()
            }),
            verdicts: VerdictLabel::ALL.map(|verdict| {
                self.plugin_verdicts
                    .get_or_create(&with("verdict", verdict.as_str()))
                    .clone()
            }),
            failures: FailureCause::ALL.map(|cause| {
                self.plugin_failures
                    .get_or_create(&with("cause", cause.as_str()))
                    .clone()
            }),
            breaker_opens: self
                .plugin_breaker_opens
                .get_or_create(&named("plugin", &name))
                .clone(),
            reloads: self
                .plugin_reloads
                .get_or_create(&named("plugin", &name))
                .clone(),
        }
    }

    /// Asks `census` for its plugins' live instances at every scrape, while it lives.
    pub fn count_instances_of(&self, census: Weak<dyn PluginCensus>) {
        self.censuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(census);
    }

    fn count_instances(&self) {
        let mut censuses = self.censuses.lock().unwrap_or_else(|e| e.into_inner());
        censuses.retain(|census| census.strong_count() > 0);
        // Rebuilt from what lives now: a plugin whose chain is gone leaves the scrape.
        self.plugin_instances.clear();
        for census in censuses.iter().filter_map(Weak::upgrade) {
            census.census(&mut |plugin, live| {
                self.plugin_instances
                    .get_or_create(&named("plugin", &Name::new(plugin)))
                    .inc_by(i64::try_from(live).unwrap_or(i64::MAX));
            });
        }
    }
}

/// A client request's clock and tool, from its arrival to its answer.
#[derive(Debug, Clone)]
pub struct Operation {
    started: Instant,
    tool: Option<Name>,
}

/// One plugin's metric handles.
#[derive(Debug)]
pub struct PluginMetrics {
    /// By the kind of message called for.
    calls: [Histogram; 4],
    verdicts: [Counter; 4],
    failures: [Counter; 7],
    breaker_opens: Counter,
    reloads: Counter,
}

impl PluginMetrics {
    /// One call that gave `verdict` (`None`: it failed) after `elapsed`.
    pub fn call(&self, kind: Kind, verdict: Option<VerdictLabel>, elapsed: Duration) {
        self.calls[kind_index(kind)].observe(elapsed.as_secs_f64());
        if let Some(verdict) = verdict {
            self.verdicts[verdict as usize].inc();
        }
    }

    pub fn failure(&self, cause: FailureCause) {
        self.failures[cause as usize].inc();
    }

    pub fn breaker_opened(&self) {
        self.breaker_opens.inc();
    }

    pub fn reloaded(&self) {
        self.reloads.inc();
    }
}

/// Holds a gauge one higher until dropped.
#[derive(Debug)]
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn up(gauge: Gauge) -> Self {
        gauge.inc();
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::jsonrpc::raw;

    #[test]
    fn a_tool_error_is_the_result_s_own_is_error_true() {
        for (result, error) in [
            (r#"{"content":[],"isError":true}"#, true),
            (r#"{"isError" :  true ,"content":[]}"#, true),
            (r#"{"content":[],"isError":false}"#, false),
            (r#"{"content":[]}"#, false),
            (
                r#"{"structuredContent":{"isError":true},"isError":false}"#,
                false,
            ),
            (
                r#"{"content":[{"type":"text","text":"\"isError\": true"}]}"#,
                false,
            ),
        ] {
            assert_eq!(is_tool_error(&raw(result)), error, "{result}");
        }
    }

    #[test]
    fn methods_outside_mcp_are_other() {
        assert_eq!(method_label("tools/call"), "tools/call");
        assert_eq!(
            method_label("notifications/progress"),
            "notifications/progress"
        );
        assert_eq!(method_label("tools/call/"), OTHER);
        assert_eq!(method_label("x-vendor/anything"), OTHER);
    }

    #[test]
    fn error_codes_outside_the_reserved_range_are_other() {
        assert_eq!(ErrorType::of_code(-32601), ErrorType::Code(-32601));
        assert_eq!(ErrorType::of_code(-32000), ErrorType::Code(-32000));
        assert_eq!(ErrorType::of_code(-32768), ErrorType::Code(-32768));
        assert_eq!(ErrorType::of_code(-31999), ErrorType::Other);
        assert_eq!(ErrorType::of_code(404), ErrorType::Other);
        assert_eq!(ErrorType::of_code(i64::MIN), ErrorType::Other);
        let error = Message::error_response(raw("1"), &ErrorObject::new(-32001, "denied"));
        assert_eq!(
            ErrorType::of_answer("tools/call", &error),
            Some(ErrorType::Code(-32001))
        );
        let tool_error = Message::Response {
            id: raw("1"),
            result: raw(r#"{"content":[],"isError": true}"#).into(),
        };
        assert_eq!(
            ErrorType::of_answer("tools/call", &tool_error),
            Some(ErrorType::ToolError)
        );
        let fine = Message::Response {
            id: raw("1"),
            result: raw(r#"{"content":[],"isError":false}"#).into(),
        };
        assert_eq!(ErrorType::of_answer("tools/call", &fine), None);
        let nested = Message::Response {
            id: raw("1"),
            result: raw(r#"{"structuredContent":{"isError":true},"isError":false}"#).into(),
        };
        assert_eq!(ErrorType::of_answer("tools/call", &nested), None);
        // Only a tool result's `isError` means a failed operation.
        assert_eq!(ErrorType::of_answer("prompts/get", &tool_error), None);
    }

    #[test]
    fn only_listed_tools_are_named_and_their_number_is_capped() {
        let metrics = Metrics::new();
        let call = |name: &str| {
            let params = raw(format!(r#"{{"name":"{name}","arguments":{{}}}}"#));
            metrics.operation("tools/call", Some(&params)).tool
        };
        assert_eq!(call("echo"), Some(Name::new(OTHER)));
        metrics.learn_tools(&raw(r#"{"tools":[{"name":"echo","inputSchema":{}}]}"#));
        assert_eq!(call("echo"), Some(Name::new("echo")));
        assert_eq!(call("not-listed"), Some(Name::new(OTHER)));
        assert_eq!(metrics.operation("tools/list", None).tool, None);
        let many: Vec<String> = (0..MAX_TOOL_NAMES + 10)
            .map(|i| format!(r#"{{"name":"t{i}"}}"#))
            .collect();
        metrics.learn_tools(&raw(format!(r#"{{"tools":[{}]}}"#, many.join(","))));
        assert_eq!(metrics.listed_tools.read().unwrap().len(), MAX_TOOL_NAMES);
        assert_eq!(
            call(&format!("t{}", MAX_TOOL_NAMES + 5)),
            Some(Name::new(OTHER))
        );
    }

    #[test]
    fn a_scrape_names_no_unbounded_values() {
        let metrics = Metrics::new();
        let operation = metrics.operation("x-vendor/secret-session-abc", None);
        metrics.operation_done(
            &operation,
            "x-vendor/secret-session-abc",
            Some(ErrorType::of_code(12345)),
        );
        metrics.message(Direction::ToServer, Kind::Request, 10);
        let text = metrics.encode();
        assert!(!text.contains("secret-session-abc"), "{text}");
        assert!(!text.contains("12345"), "{text}");
        assert!(
            text.contains(r#"mcp_server_operation_duration_seconds_count{mcp_method_name="_OTHER",error_type="_OTHER"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"interpose_messages_total{direction="to-server",kind="request"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"interpose_message_bytes_total{direction="to-server"} 10"#),
            "{text}"
        );
    }

    #[test]
    fn handles_are_resolved_in_discriminant_order() {
        assert!(
            Transport::ALL
                .iter()
                .enumerate()
                .all(|(i, t)| *t as usize == i)
        );
        assert!(
            FailureCause::ALL
                .iter()
                .enumerate()
                .all(|(i, c)| *c as usize == i)
        );
        assert!(
            VerdictLabel::ALL
                .iter()
                .enumerate()
                .all(|(i, v)| *v as usize == i)
        );
        let metrics = Metrics::new();
        let plugin = metrics.plugin("p");
        plugin.call(
            Kind::Response,
            Some(VerdictLabel::Respond),
            Duration::from_micros(3),
        );
        plugin.failure(FailureCause::BadOutput);
        let text = metrics.encode();
        for line in [
            r#"interpose_plugin_verdicts_total{plugin="p",verdict="respond"} 1"#,
            r#"interpose_plugin_verdicts_total{plugin="p",verdict="pass"} 0"#,
            r#"interpose_plugin_failures_total{plugin="p",cause="bad_output"} 1"#,
            r#"interpose_plugin_call_duration_seconds_count{plugin="p",hook="response"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
    }

    #[test]
    fn guards_hold_gauges_up_while_they_live() {
        let metrics = Metrics::new();
        let server = Name::new("files");
        let first = metrics.backend_connected(&server);
        let second = metrics.backend_connected(&server);
        let session = metrics.session_opened(Transport::Sse);
        assert!(
            metrics
                .encode()
                .contains(r#"interpose_backend_up{server="files"} 2"#)
        );
        assert!(
            metrics
                .encode()
                .contains(r#"interpose_sessions_open{transport="sse"} 1"#)
        );
        drop((first, second, session));
        let text = metrics.encode();
        assert!(
            text.contains(r#"interpose_backend_up{server="files"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"interpose_sessions_open{transport="sse"} 0"#),
            "{text}"
        );
    }
}

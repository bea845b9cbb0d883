//! OpenTelemetry traces, exported over OTLP (HTTP) when the standard
//! `OTEL_EXPORTER_OTLP_*` variables or `--otlp-endpoint` ask for them, and off
//! otherwise: then [`tracer`] is `None` and no span, clock read or parse happens.
//!
//! Spans follow the OpenTelemetry semantic conventions for MCP: a server span per
//! client request ([`ServerSpan`], from its arrival to its answer), a client span per
//! request forwarded to a server ([`ClientSpan`]), and a span per plugin call, a child
//! of the client request's span, carrying the plugin's verdict. Context comes in and
//! goes on in `params._meta` (`traceparent`, `tracestate`), as the conventions say:
//! the client request's context is the parent of the server span, and a forwarded
//! request carries its client span's context to the server.
//!
//! Spans are batched and exported by the SDK's own thread (with a blocking HTTP
//! client), never on the message path; a full queue drops spans rather than waiting.

use std::borrow::Cow;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use indexmap::IndexMap;
pub use opentelemetry::trace::SpanContext;
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::Protocol;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, Span};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::metrics::Transport;
use crate::wire::jsonrpc::{ErrorObject, Kind, Message, Payload};

/// The `_meta` keys W3C Trace Context travels under (SEP-414: unprefixed).
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The process's tracer, once [`init`] turned tracing on.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// The tracer, when traces are exported; `None` (one load) when they are not.
#[inline]
pub fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// Exports what is left when dropped, so that the last spans are not lost at exit.
pub struct TracingGuard(SdkTracerProvider);

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Err(e) = self.0.shutdown_with_timeout(Duration::from_secs(5)) {
            tracing::warn!("traces: the last spans could not be exported: {e}");
        }
    }
}

/// Where and how traces are exported.
#[derive(Debug, PartialEq, Eq)]
struct Export {
    /// The full URL spans are posted to; `None`: the exporter reads the environment.
    endpoint: Option<String>,
    protocol: Protocol,
}

/// Where the OTLP settings say traces go: `endpoint` (`--otlp-endpoint`, a base URL
/// as `OTEL_EXPORTER_OTLP_ENDPOINT` is) or the environment, read through `var`.
/// `None`: tracing stays off.
fn export_settings(
    endpoint: Option<&str>,
    var: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<Export>> {
    let env = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
    {
        return Ok(None);
    }
    let protocol =
        env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"));
    let protocol = match protocol.as_deref() {
        None | Some("http/protobuf") => Protocol::HttpBinary,
        Some("http/json") => Protocol::HttpJson,
        Some(other) => bail!(
            "OTLP protocol `{other}` is not supported: interpose exports traces over HTTP \
             (`http/protobuf` or `http/json`, the collector's port 4318)"
        ),
    };
    let endpoint = match endpoint {
        Some(base) => {
            let url = url::Url::parse(base)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https"))
                .with_context(|| format!("--otlp-endpoint `{base}` is not an http(s) URL"))?;
            Some(format!("{}/v1/traces", url.as_str().trim_end_matches('/')))
        }
        // The exporter reads them itself (appending `/v1/traces` to the base).
        None if env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
            || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() =>
        {
            None
        }
        None => return Ok(None),
    };
    Ok(Some(Export { endpoint, protocol }))
}

/// Turns tracing on if the settings ask for it. Keep the guard until the end.
pub fn init(endpoint: Option<&str>) -> anyhow::Result<Option<TracingGuard>> {
    use opentelemetry_otlp::WithExportConfig as _;
    let Some(export) = export_settings(endpoint, |name| std::env::var(name).ok())? else {
        return Ok(None);
    };
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(export.protocol);
    if let Some(endpoint) = &export.endpoint {
        exporter = exporter.with_endpoint(endpoint);
    }
    let exporter = exporter
        .build()
        .context("cannot set up the OTLP trace exporter")?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("interpose");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            resource
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        )
        .build();
    let tracer = provider.tracer("interpose");
    if TRACER.set(tracer).is_err() {
        bail!("tracing was set up twice");
    }
    tracing::info!(
        endpoint = export
            .endpoint
            .as_deref()
            .unwrap_or("from OTEL_EXPORTER_OTLP_*"),
        "traces are exported over OTLP"
    );
    Ok(Some(TracingGuard(provider)))
}

/// What a request's `params` say that its span names: the tool, prompt or resource
/// it acts on, and the trace context it carries.
#[derive(Deserialize, Default)]
struct Described<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "_meta")]
    meta: Option<TraceMeta<'a>>,
}

#[derive(Deserialize, Default)]
struct TraceMeta<'a> {
    #[serde(borrow, default)]
    traceparent: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tracestate: Option<Cow<'a, str>>,
}

impl opentelemetry::propagation::Extractor for TraceMeta<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent.as_deref(),
            TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

impl<'a> Described<'a> {
    fn of(params: Option<&'a RawValue>) -> Self {
        params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default()
    }

    /// The span's name and the attributes that say what the request acts on.
    fn name_and_attributes(&self, method: &str, attributes: &mut Vec<KeyValue>) -> String {
        name_and_attributes(
            method,
            self.name.as_deref(),
            self.uri.as_deref(),
            attributes,
        )
    }
}

/// The name of the span of a request to `method` acting on `name` or `uri`, and the
/// attributes that say what it acts on.
fn name_and_attributes(
    method: &str,
    name: Option<&str>,
    uri: Option<&str>,
    attributes: &mut Vec<KeyValue>,
) -> String {
    attributes.push(KeyValue::new("mcp.method.name", method.to_owned()));
    let target = match (method, name) {
        ("tools/call", Some(tool)) => {
            attributes.push(KeyValue::new("gen_ai.tool.name", tool.to_string()));
            attributes.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
            Some(tool)
        }
        ("prompts/get", Some(prompt)) => {
            attributes.push(KeyValue::new("gen_ai.prompt.name", prompt.to_string()));
            Some(prompt)
        }
        _ => None,
    };
    if let Some(uri) = uri
        && method.starts_with("resources/")
    {
        attributes.push(KeyValue::new("mcp.resource.uri", uri.to_string()));
    }
    match target {
        Some(target) => format!("{method} {target}"),
        None => method.to_owned(),
    }
}

/// A JSON-RPC id as the conventions record it: a string id without its quotes.
fn request_id(id: &RawValue) -> KeyValue {
    let text = id.get();
    let text = serde_json::from_str::<Cow<'_, str>>(text).unwrap_or(Cow::Borrowed(text));
    KeyValue::new("jsonrpc.request.id", text.into_owned())
}

/// `network.transport` of a client session: `pipe` for stdio, `tcp` for HTTP.
fn network_transport(transport: Transport) -> &'static str {
    match transport {
        Transport::Stdio => "pipe",
        Transport::StreamableHttp | Transport::Sse | Transport::Sessionless => "tcp",
    }
}

/// How an operation ended, as its span records it.
fn record_end(span: &mut Span, method: &str, answer: Result<&Message, &ErrorObject>) {
    let error = match answer {
        Err(error) => Some(Cow::Borrowed(error)),
        Ok(Message::Error { error, .. }) => Some(match ErrorObject::from_raw(error) {
            Some(error) => Cow::Owned(error),
            None => Cow::Owned(ErrorObject::new(
                0,
                "an error that is not a JSON-RPC error object",
            )),
        }),
        Ok(Message::Response { result, .. }) => {
            if method == "tools/call" && super::metrics::is_tool_error(result) {
                span.set_attribute(KeyValue::new("error.type", "tool_error"));
                span.set_status(Status::error("the tool reported an error"));
            }
            None
        }
        Ok(_) => None,
    };
    if let Some(error) = error {
        let code = error.code.to_string();
        span.set_attribute(KeyValue::new("error.type", code.clone()));
        span.set_attribute(KeyValue::new("rpc.response.status_code", code));
        span.set_status(Status::error(error.message.clone()));
    }
}

/// The span of a client's request, from its arrival to its answer (kind `SERVER`).
pub struct ServerSpan {
    span: Mutex<Span>,
    context: SpanContext,
}

impl std::fmt::Debug for ServerSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ServerSpan").field(&self.context).finish()
    }
}

impl ServerSpan {
    /// Starts the span of a client's request, a child of the context its `_meta`
    /// carries. `session`: the session's id, unless unrelated clients share it.
    pub fn start(
        tracer: &SdkTracer,
        method: &str,
        id: &RawValue,
        params: Option<&RawValue>,
        session: Option<&str>,
        transport: Transport,
    ) -> Self {
        let described = Described::of(params);
        let parent = described.meta.as_ref().map_or_else(Context::new, |meta| {
            use opentelemetry::propagation::TextMapPropagator as _;
            TraceContextPropagator::new().extract(meta)
        });
        let mut attributes = Vec::with_capacity(8);
        let name = described.name_and_attributes(method, &mut attributes);
        attributes.push(request_id(id));
        attributes.push(KeyValue::new(
            "network.transport",
            network_transport(transport),
        ));
        if let Some(session) = session {
            attributes.push(KeyValue::new("mcp.session.id", session.to_owned()));
        }
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        let context = span.span_context().clone();
        ServerSpan {
            span: Mutex::new(span),
            context,
        }
    }

    /// The context its children (plugin calls, forwarded requests) name as parent.
    pub fn context(&self) -> &SpanContext {
        &self.context
    }

    /// The request was answered with `answer` (an error: `Err`).
    pub fn end(&self, method: &str, answer: Result<&Message, &ErrorObject>) {
        let mut span = self.span.lock().unwrap_or_else(PoisonError::into_inner);
        record_end(&mut span, method, answer);
        span.end();
    }
}

/// The span of a request forwarded to a server, until its answer (kind `CLIENT`).
#[derive(Debug)]
pub struct ClientSpan(Span);

impl ClientSpan {
    /// Starts the span of a request to `server`, a child of `parent`, and writes its
    /// context into the request's `params._meta` for the server to continue.
    pub fn start(
        tracer: &SdkTracer,
        parent: &SpanContext,
        server: &str,
        method: &str,
        id: &RawValue,
        params: &mut Option<Payload>,
    ) -> Self {
        // Read once: for the span's name, then to carry the span's context.
        let members = Members::of(params.as_deref());
        let text = |key| members.as_ref().and_then(|m| m.text(key));
        let mut attributes = Vec::with_capacity(6);
        let name = name_and_attributes(
            method,
            text("name").as_deref(),
            text("uri").as_deref(),
            &mut attributes,
        );
        attributes.push(request_id(id));
        attributes.push(KeyValue::new("interpose.server.name", server.to_owned()));
        let parent = Context::new().with_remote_span_context(parent.clone());
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        if let Some(with_context) = members.and_then(|m| m.with_context(span.span_context())) {
            *params = Some(with_context.into());
        }
        ClientSpan(span)
    }

    /// The server answered with `answer` (`Err`: the request failed without one).
    pub fn end(mut self, method: &str, answer: Result<&Message, &ErrorObject>) {
        record_end(&mut self.0, method, answer);
        self.0.end();
    }
}

/// A request's params as their members, in order, each value as it was written: what
/// interpose adds to `_meta` leaves everything else as the sender wrote it.
struct Members(IndexMap<String, Box<RawValue>>);

impl Members {
    /// The members of `params` (none: no members); `None` when they are not an object.
    fn of(params: Option<&RawValue>) -> Option<Self> {
        match params {
            None => Some(Members(IndexMap::new())),
            Some(raw) => serde_json::from_str(raw.get()).ok().map(Members),
        }
    }

    /// The string member `key`, if it is one.
    fn text(&self, key: &str) -> Option<String> {
        serde_json::from_str(self.0.get(key)?.get()).ok()
    }

    /// The params with `context` in `_meta` as `traceparent` (and `tracestate`), the
    /// rest of `_meta` kept; `None` when `_meta` is not an object.
    fn with_context(mut self, context: &SpanContext) -> Option<Box<RawValue>> {
        use opentelemetry::propagation::TextMapPropagator as _;
        let mut carrier = std::collections::HashMap::new();
        let cx = Context::new().with_remote_span_context(context.clone());
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        let mut meta: IndexMap<String, Box<RawValue>> = match self.0.get("_meta") {
            None => IndexMap::new(),
            Some(meta) => serde_json::from_str(meta.get()).ok()?,
        };
        for (key, value) in carrier {
            meta.insert(key, serde_json::value::to_raw_value(&value).ok()?);
        }
        self.0.insert(
            "_meta".to_owned(),
            serde_json::value::to_raw_value(&meta).ok()?,
        );
        serde_json::value::to_raw_value(&self.0).ok()
    }
}

/// One plugin call, recorded once it is over (a child of `parent`, kind
/// `INTERNAL`): which plugin, on which message, with which verdict or failure.
pub struct PluginCall<'a> {
    pub plugin: &'a str,
    pub method: &'a str,
    pub kind: Kind,
    /// `pass`, `rewrite`, `respond`, `reject` or `failure`.
    pub verdict: &'static str,
    /// A failure's cause (`error.type`) and what happened.
    pub failure: Option<(&'static str, String)>,
    pub elapsed: Duration,
}

impl PluginCall<'_> {
    pub fn record(self, tracer: &SdkTracer, parent: &SpanContext) {
        let end = SystemTime::now();
        let mut attributes = vec![
            KeyValue::new("interpose.plugin.name", self.plugin.to_owned()),
            KeyValue::new("interpose.plugin.verdict", self.verdict),
            KeyValue::new("interpose.message.kind", self.kind.as_str()),
            KeyValue::new("mcp.method.name", self.method.to_owned()),
        ];
        if let Some((cause, _)) = &self.failure {
            attributes.push(KeyValue::new("error.type", *cause));
        }
        let parent = Context::new().with_remote_span_context(parent.clone());
        let mut span = tracer
            .span_builder(format!("plugin {}", self.plugin))
            .with_kind(SpanKind::Internal)
            .with_start_time(end.checked_sub(self.elapsed).unwrap_or(end))
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        if let Some((_, what)) = self.failure {
            span.set_status(Status::error(what));
        }
        span.end_with_timestamp(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    fn context() -> SpanContext {
        SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::from_key_value([("rojo", "00f067aa0ba902b7")]).unwrap(),
        )
    }

    fn endpoint(flag: Option<&str>, vars: &[(&str, &str)]) -> anyhow::Result<Option<Export>> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        export_settings(flag, |name| vars.get(name).cloned())
    }

    fn binary_to(endpoint: Option<&str>) -> Option<Export> {
        Some(Export {
            endpoint: endpoint.map(str::to_owned),
            protocol: Protocol::HttpBinary,
        })
    }

    #[test]
    fn traces_are_on_only_when_an_endpoint_is_given_and_not_disabled() {
        assert_eq!(endpoint(None, &[]).unwrap(), None);
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert_eq!(endpoint(None, &[base]).unwrap(), binary_to(None));
        let full = (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces",
        );
        assert_eq!(endpoint(None, &[full]).unwrap(), binary_to(None));
        assert_eq!(
            endpoint(Some("http://127.0.0.1:4318/"), &[]).unwrap(),
            binary_to(Some("http://127.0.0.1:4318/v1/traces"))
        );
        assert_eq!(
            endpoint(None, &[base, ("OTEL_SDK_DISABLED", "true")]).unwrap(),
            None
        );
        assert_eq!(
            endpoint(None, &[base, ("OTEL_TRACES_EXPORTER", "none")]).unwrap(),
            None
        );
    }

    #[test]
    fn grpc_and_bad_urls_are_refused_with_what_to_do() {
        let grpc = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ];
        let error = endpoint(None, &grpc).unwrap_err().to_string();
        assert!(
            error.contains("`grpc` is not supported") && error.contains("4318"),
            "{error}"
        );
        let error = endpoint(Some("collector:4318"), &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not an http(s) URL"), "{error}");
        // JSON over HTTP is served.
        let json = [("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")];
        let export = endpoint(Some("http://c:4318"), &json).unwrap().unwrap();
        assert_eq!(export.protocol, Protocol::HttpJson);
    }

    #[test]
    fn context_is_written_into_meta_keeping_what_was_there() {
        let params = Some(
            serde_json::value::to_raw_value(&serde_json::json!({
                "name": "echo", "_meta": {"progressToken": 7}
            }))
            .unwrap(),
        );
        let params = Members::of(params.as_deref())
            .unwrap()
            .with_context(&context());
        let params: serde_json::Value = serde_json::from_str(params.unwrap().get()).unwrap();
        assert_eq!(params["name"], "echo");
        assert_eq!(params["_meta"]["progressToken"], 7);
        assert_eq!(
            params["_meta"]["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(params["_meta"]["tracestate"], "rojo=00f067aa0ba902b7");
    }

    #[test]
    fn absent_params_get_a_meta_and_non_objects_are_left_alone() {
        let params = Members::of(None).unwrap().with_context(&context());
        let params: serde_json::Value = serde_json::from_str(params.unwrap().get()).unwrap();
        assert!(params["_meta"]["traceparent"].is_string());

        let list = RawValue::from_string("[1]".into()).unwrap();
        assert!(
            Members::of(Some(&list)).is_none(),
            "not an object: left as it is"
        );
        let meta = RawValue::from_string(r#"{"_meta":[1]}"#.into()).unwrap();
        let members = Members::of(Some(&meta)).unwrap();
        assert!(
            members.with_context(&context()).is_none(),
            "a `_meta` that is not an object"
        );
    }

    #[test]
    fn what_interpose_does_not_touch_goes_on_as_written() {
        let params = r#"{"z":1,"name":"echo","arguments":{"b": 2, "a": 1.50}}"#;
        let params = RawValue::from_string(params.into()).unwrap();
        let members = Members::of(Some(&params)).unwrap();
        assert_eq!(members.text("name").as_deref(), Some("echo"));
        assert_eq!(members.text("z"), None, "not a string");
        let written = members.with_context(&context()).unwrap();
        assert!(
            written
                .get()
                .starts_with(r#"{"z":1,"name":"echo","arguments":{"b": 2, "a": 1.50},"_meta":{"#),
            "{}",
            written.get()
        );
    }

    #[test]
    fn spans_are_named_by_method_and_tool_or_prompt() {
        let mut attributes = Vec::new();
        let params = RawValue::from_string(r#"{"name":"echo","arguments":{}}"#.into()).unwrap();
        let name = Described::of(Some(&params)).name_and_attributes("tools/call", &mut attributes);
        assert_eq!(name, "tools/call echo");
        assert!(attributes.contains(&KeyValue::new("gen_ai.tool.name", "echo")));

        let params = RawValue::from_string(r#"{"uri":"file:///a"}"#.into()).unwrap();
        let mut attributes = Vec::new();
        let name =
            Described::of(Some(&params)).name_and_attributes("resources/read", &mut attributes);
        assert_eq!(name, "resources/read");
        assert!(attributes.contains(&KeyValue::new("mcp.resource.uri", "file:///a")));
    }

    #[test]
    fn string_ids_are_recorded_without_quotes() {
        let id = RawValue::from_string(r#""req-7""#.into()).unwrap();
        assert_eq!(
            request_id(&id),
            KeyValue::new("jsonrpc.request.id", "req-7")
        );
        let id = RawValue::from_string("10".into()).unwrap();
        assert_eq!(request_id(&id), KeyValue::new("jsonrpc.request.id", "10"));
    }
}

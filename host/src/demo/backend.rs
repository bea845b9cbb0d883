//! The built-in demo MCP backend.
//!
//! `interpose demo` and the tests need a backend that exercises every server
//! feature a plugin might want to look at (tools with structured output,
//! progress, logging, resources and templates, prompts, completion), plus a few
//! tools whose output exists only to be caught by plugins: fake secrets for a
//! redaction plugin and a destructive-sounding tool for a policy plugin.
//!
//! The backend speaks the session-based protocol (`initialize`, at most
//! 2025-11-25) because that is what the proxy relays.

// MCP logging is deprecated by SEP-2577 in rmcp, but it is still part of the
// 2025-11-25 protocol this backend speaks, and plugins must be able to see it.
#![allow(deprecated)]

use std::{
    borrow::Cow,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use rmcp::{
    ErrorData as McpError, Peer, RoleServer, ServerHandler, ServiceExt as _,
    handler::server::{
        router::{prompt::PromptRouter, tool::ToolRouter},
        tool::schema_for_output,
        wrapper::Parameters,
    },
    model::{
        CallToolResult, CompleteRequestParams, CompleteResult, CompletionInfo, ContentBlock,
        GetPromptResult, Implementation, ListResourceTemplatesResult, ListResourcesResult,
        LoggingLevel, LoggingMessageNotificationParam, PaginatedRequestParams,
        ProgressNotificationParam, PromptMessage, ProtocolVersion, ReadResourceRequestParams,
        ReadResourceResponse, ReadResourceResult, Reference, Resource, ResourceContents,
        ResourceTemplate, Role, ServerCapabilities, ServerConfig, SetLevelRequestParams,
        SubscribeRequestParams, UnsubscribeRequestParams,
    },
    prompt, prompt_handler, prompt_router,
    schemars::{self, JsonSchema},
    service::RequestContext,
    tool, tool_handler, tool_router,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Server name reported by `initialize`.
pub const SERVER_NAME: &str = "interpose-demo";

/// The name of the tool whose output contains [`FAKE_SECRETS`].
pub const SECRETS_TOOL: &str = "fetch_config";

/// Every fake secret the [`SECRETS_TOOL`] returns, so that tests of a
/// redaction plugin can assert none of them gets through.
pub const FAKE_SECRETS: &[&str] = &[
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "sk-demo-4f8a2c9e1b7d3f6a0c5e",
    "alice@example.com",
    "4111 1111 1111 1111",
    "-----BEGIN PRIVATE KEY-----",
];

/// Text of the [`SECRETS_TOOL`]: a config file that leaks credentials, as
/// real tools do. All values are fake (the AWS key is AWS's documented example).
const FAKE_CONFIG: &str = "\
# deployment configuration (demo data: every credential below is fake)
region = \"eu-west-1\"
aws_access_key_id = \"AKIAIOSFODNN7EXAMPLE\"
aws_secret_access_key = \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"
upstream_headers = [\"Authorization: Bearer sk-demo-4f8a2c9e1b7d3f6a0c5e\"]
admin_email = \"alice@example.com\"
billing_card = \"4111 1111 1111 1111\"
tls_key = \"\"\"
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDdemoDEMOdemo0
ZmFrZS1rZXktZm9yLWludGVycG9zZS1yZWRhY3Rpb24tZGVtby1vbmx5LW5vdC1h
-----END PRIVATE KEY-----
\"\"\"
";

const README_URI: &str = "demo://readme";
const CONFIG_URI: &str = "demo://config.json";
const USER_TEMPLATE: &str = "demo://users/{id}";
const USER_PREFIX: &str = "demo://users/";

/// Values offered by `completion/complete` for the `summarize` prompt's `style`.
const STYLES: &[&str] = &["brief", "detailed", "bullet-points"];

/// Upper bound on `long_task` steps, so a caller cannot keep a task busy forever.
const MAX_STEPS: u32 = 100;

/// Pause between `long_task` steps, long enough for progress to interleave
/// with other traffic but short enough for tests.
const STEP_DELAY: Duration = Duration::from_millis(20);

/// Serves the demo backend over `io` (newline-delimited JSON-RPC) until the peer closes it.
pub async fn serve<T>(io: T) -> anyhow::Result<()>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let running = DemoBackend::new()
        .serve(io)
        .await
        .context("demo backend: MCP initialization failed")?;
    running
        .waiting()
        .await
        .context("demo backend: session task failed")?;
    Ok(())
}

/// The demo MCP server; see the module documentation.
#[derive(Debug)]
pub struct DemoBackend {
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
    /// Minimum severity (see [`severity`]) of the log notifications to send.
    /// Shared because every request runs in its own task.
    min_log_severity: Arc<AtomicU8>,
}

impl Default for DemoBackend {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    text: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct AddArgs {
    /// First addend.
    a: i64,
    /// Second addend.
    b: i64,
}

/// Structured result of `add`; also the source of its output schema.
#[derive(Debug, Serialize, JsonSchema)]
struct AddOutput {
    /// `a + b`.
    sum: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct WeatherArgs {
    /// City name, e.g. "Lisbon".
    city: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct LongTaskArgs {
    /// How many steps to run; each takes about 20 ms and reports progress.
    #[schemars(range(min = 1, max = MAX_STEPS))]
    steps: u32,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct SummarizeArgs {
    /// The text to summarize.
    text: String,
    /// Summary style: "brief", "detailed" or "bullet-points".
    style: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct CodeReviewArgs {
    /// The code to review.
    code: String,
}

fn text_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

fn tool_error(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// Orders MCP log levels, which rmcp does not, from debug (0) to emergency (7).
fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// The fake profile behind `demo://users/{id}`, if there is one.
fn user_profile(id: &str) -> Option<serde_json::Value> {
    let (name, email, role) = match id {
        "1" => ("Alice", "alice@example.com", "admin"),
        "2" => ("Bob", "bob@example.com", "developer"),
        "3" => ("Carol", "carol@example.com", "viewer"),
        _ => return None,
    };
    Some(json!({ "id": id, "name": name, "email": email, "role": role }))
}

/// The values of `candidates` that start with `prefix`, as a completion.
fn complete_from(candidates: &[&str], prefix: &str) -> Result<CompleteResult, McpError> {
    let values = candidates
        .iter()
        .filter(|value| value.starts_with(prefix))
        .map(|value| (*value).to_owned())
        .collect();
    let completion =
        CompletionInfo::with_all_values(values).map_err(|e| McpError::internal_error(e, None))?;
    Ok(CompleteResult::new(completion))
}

impl DemoBackend {
    /// A backend with the default log level (info).
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
            prompt_router: Self::prompt_router(),
            min_log_severity: Arc::new(AtomicU8::new(severity(LoggingLevel::Info))),
        }
    }

    /// Sends a `notifications/message` if `level` passes the client's
    /// `logging/setLevel` threshold. Best effort: a closed peer is not an error
    /// for the tool that logs.
    async fn log(&self, peer: &Peer<RoleServer>, level: LoggingLevel, message: String) {
        if severity(level) < self.min_log_severity.load(Ordering::Relaxed) {
            return;
        }
        let param =
            LoggingMessageNotificationParam::new(level, json!(message)).with_logger(SERVER_NAME);
        if let Err(error) = peer.notify_logging_message(param).await {
            tracing::debug!(%error, "demo backend: could not send a log notification");
        }
    }

    /// Accepts URIs this backend can read, for `resources/subscribe`.
    fn check_known_uri(uri: &str) -> Result<(), McpError> {
        let known = uri == README_URI
            || uri == CONFIG_URI
            || uri
                .strip_prefix(USER_PREFIX)
                .is_some_and(|id| user_profile(id).is_some());
        if known {
            Ok(())
        } else {
            Err(McpError::resource_not_found(
                format!("no such resource: {uri}"),
                None,
            ))
        }
    }
}

#[tool_router]
impl DemoBackend {
    #[tool(description = "Returns the given text unchanged.")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> CallToolResult {
        text_result(args.text)
    }

    #[tool(
        description = "Adds two integers; the result comes as text and as structured content.",
        output_schema = schema_for_output::<AddOutput>()
    )]
    async fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> CallToolResult {
        let Some(sum) = a.checked_add(b) else {
            return tool_error(format!("{a} + {b} overflows a 64-bit integer"));
        };
        let mut result = text_result(sum.to_string());
        result.structured_content = Some(json!(AddOutput { sum }));
        result
    }

    #[tool(
        description = "Reports the (made-up) current weather for a city.",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn get_weather(&self, Parameters(args): Parameters<WeatherArgs>) -> CallToolResult {
        // Deterministic, so tests and demos are reproducible.
        let seed = args
            .city
            .bytes()
            .fold(0u32, |sum, byte| sum.wrapping_add(u32::from(byte)));
        let conditions = ["sunny", "partly cloudy", "overcast", "light rain"];
        let report = json!({
            "city": args.city,
            "temperature_c": 8 + seed % 20,
            "conditions": conditions[seed as usize % conditions.len()],
            "humidity_pct": 40 + seed % 50,
        });
        text_result(report.to_string())
    }

    #[tool(
        description = "Returns the deployment configuration file.",
        annotations(read_only_hint = true)
    )]
    async fn fetch_config(&self) -> CallToolResult {
        text_result(FAKE_CONFIG)
    }

    #[tool(
        description = "Runs a task in steps, sending progress notifications (when the request \
                       has a progress token) and info-level log messages."
    )]
    async fn long_task(
        &self,
        Parameters(LongTaskArgs { steps }): Parameters<LongTaskArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        if !(1..=MAX_STEPS).contains(&steps) {
            return tool_error(format!(
                "steps must be between 1 and {MAX_STEPS}, got {steps}"
            ));
        }
        let token = context.meta.get_progress_token();
        let peer = &context.peer;
        self.log(
            peer,
            LoggingLevel::Debug,
            format!("long_task: starting {steps} steps"),
        )
        .await;
        for step in 1..=steps {
            if context.ct.is_cancelled() {
                return tool_error(format!("cancelled after {} of {steps} steps", step - 1));
            }
            tokio::time::sleep(STEP_DELAY).await;
            if let Some(token) = &token {
                let progress = ProgressNotificationParam::new(token.clone(), f64::from(step))
                    .with_total(f64::from(steps))
                    .with_message(format!("step {step} of {steps}"));
                // Best effort, like logging: the response will report the outcome.
                if let Err(error) = peer.notify_progress(progress).await {
                    tracing::debug!(%error, "demo backend: could not send progress");
                }
            }
            self.log(
                peer,
                LoggingLevel::Info,
                format!("long_task: finished step {step} of {steps}"),
            )
            .await;
        }
        text_result(format!("completed {steps} steps"))
    }

    #[tool(
        description = "Deletes everything. (It only pretends to; a policy plugin should stop it anyway.)",
        annotations(destructive_hint = true, read_only_hint = false)
    )]
    async fn delete_everything(&self) -> CallToolResult {
        text_result("pretended to delete everything")
    }

    #[tool(description = "Always fails with a tool error (isError: true).")]
    async fn fail(&self) -> CallToolResult {
        tool_error("this tool always fails")
    }
}

#[prompt_router]
impl DemoBackend {
    #[prompt(description = "Asks the model to summarize a text.")]
    async fn summarize(
        &self,
        Parameters(SummarizeArgs { text, style }): Parameters<SummarizeArgs>,
    ) -> GetPromptResult {
        let style = style.as_deref().unwrap_or("brief");
        GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            format!("Summarize the following text in a {style} style:\n\n{text}"),
        )])
        .with_description(format!("A {style} summary"))
    }

    #[prompt(description = "Asks the model to review a piece of code.")]
    async fn code_review(
        &self,
        Parameters(CodeReviewArgs { code }): Parameters<CodeReviewArgs>,
    ) -> Vec<PromptMessage> {
        vec![
            PromptMessage::new_text(
                Role::User,
                format!("Please review this code for bugs and style:\n\n```\n{code}\n```"),
            ),
            PromptMessage::new_text(
                Role::Assistant,
                "I'll look for correctness problems first, then style.",
            ),
        ]
    }
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for DemoBackend {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_completions()
            .enable_logging()
            .build();
        ServerConfig::new(capabilities)
            .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
            .with_server_info(Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Demo backend for interpose. Tools: echo, add (structured output), get_weather, \
                 long_task (progress and logging), fetch_config (returns fake secrets for a \
                 redaction plugin), delete_everything (for a policy plugin to deny) and fail \
                 (a tool error). Resources live under demo://.",
            )
    }

    /// Only session-based versions: the proxy relays an `initialize` handshake.
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(
            &ProtocolVersion::LATEST_WITH_INITIALIZE,
        ))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(README_URI, "readme")
                .with_description("What this demo backend offers")
                .with_mime_type("text/markdown"),
            Resource::new(CONFIG_URI, "config")
                .with_description("Non-secret demo settings")
                .with_mime_type("application/json"),
        ]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(USER_TEMPLATE, "user")
                .with_description("A user profile; ids 1 to 3 exist")
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri.as_str();
        let contents = match uri {
            README_URI => ResourceContents::text(
                "# interpose demo backend\n\n\
                 A built-in MCP server that exercises tools, resources, prompts, \
                 completion, progress and logging, so plugins have traffic to inspect.\n",
                uri,
            )
            .with_mime_type("text/markdown"),
            CONFIG_URI => ResourceContents::text(
                json!({ "theme": "dark", "max_results": 20, "features": ["search", "export"] })
                    .to_string(),
                uri,
            )
            .with_mime_type("application/json"),
            _ => {
                let profile = uri
                    .strip_prefix(USER_PREFIX)
                    .and_then(user_profile)
                    .ok_or_else(|| {
                        McpError::resource_not_found(format!("no such resource: {uri}"), None)
                    })?;
                ResourceContents::text(profile.to_string(), uri).with_mime_type("application/json")
            }
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    /// Accepted for known URIs; the demo resources never change, so no update
    /// notification ever follows.
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Self::check_known_uri(&request.uri)
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Self::check_known_uri(&request.uri)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let argument = &request.argument;
        match (&request.r#ref, argument.name.as_str()) {
            (Reference::Prompt(prompt), "style") if prompt.name == "summarize" => {
                complete_from(STYLES, &argument.value)
            }
            (Reference::Resource(resource), "id") if resource.uri == USER_TEMPLATE => {
                complete_from(&["1", "2", "3"], &argument.value)
            }
            _ => complete_from(&[], ""),
        }
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.min_log_severity
            .store(severity(request.level), Ordering::Relaxed);
        Ok(())
    }
}

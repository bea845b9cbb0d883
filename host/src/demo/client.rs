//! A scripted MCP client session, used by `interpose demo` and by tests.
//!
//! The script touches every feature of the demo backend (see
//! [`super::backend`]) once. It runs through a proxy whose plugins may reject
//! or rewrite messages, so a failing step is recorded, not fatal: the summary
//! then shows what the plugins did.

// MCP logging is deprecated by SEP-2577 in rmcp, but it is still part of the
// 2025-11-25 protocol this client speaks.
#![allow(deprecated)]

use std::{
    fmt,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, bail, ensure};
use rmcp::{
    ClientHandler, RoleClient, ServiceError, ServiceExt as _,
    model::{
        CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig,
        GetPromptRequestParams, Implementation, JsonObject, LoggingLevel,
        LoggingMessageNotificationParam, ProgressNotificationParam, ProtocolVersion,
        ReadResourceRequestParams, ResourceContents, SetLevelRequestParams, SubscribeRequestParams,
    },
    object,
    service::{NotificationContext, Peer, RunningService},
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::backend::{FAKE_SECRETS, SECRETS_TOOL};

/// Longest a single step may take, so a proxy that swallows a message shows
/// up as a failed step instead of a hung demo.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Steps `long_task` is asked to run; each should produce one progress
/// notification and one info-level log message.
pub const LONG_TASK_STEPS: u32 = 3;

/// What one step of the script did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// The MCP method and its subject, e.g. `tools/call echo`.
    pub name: String,
    /// A short description of the result, or the error text.
    pub outcome: Result<String, String>,
}

/// What the scripted session did, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptSummary {
    /// Every step, `initialize` first.
    pub steps: Vec<StepOutcome>,
    /// `notifications/progress` received from the server.
    pub progress_notifications: usize,
    /// `notifications/message` (log messages) received from the server.
    pub log_notifications: usize,
}

impl ScriptSummary {
    /// Whether no step failed.
    pub fn all_succeeded(&self) -> bool {
        self.steps.iter().all(|step| step.outcome.is_ok())
    }

    /// Prints the summary to stdout, one line per step.
    pub fn print(&self) {
        println!("{self}");
    }
}

/// One line per step (`ok` or `FAILED`, name, description), then the
/// notification counts.
impl fmt::Display for ScriptSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Scripted client session:")?;
        let width = self
            .steps
            .iter()
            .map(|step| step.name.len())
            .max()
            .unwrap_or(0);
        for step in &self.steps {
            let (status, text) = match &step.outcome {
                Ok(description) => ("ok", description),
                Err(error) => ("FAILED", error),
            };
            writeln!(f, "  {status:<6} {:<width$}  {text}", step.name)?;
        }
        write!(
            f,
            "Notifications received: {} progress, {} log",
            self.progress_notifications, self.log_notifications
        )
    }
}

/// Client handler that counts the notifications the script cares about.
/// The counters are shared because rmcp runs each notification in its own task.
#[derive(Debug, Clone, Default)]
struct Recorder {
    progress: Arc<AtomicUsize>,
    logs: Arc<AtomicUsize>,
}

impl ClientHandler for Recorder {
    async fn on_progress(
        &self,
        _params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.fetch_add(1, Ordering::Relaxed);
    }

    async fn on_logging_message(
        &self,
        _params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.logs.fetch_add(1, Ordering::Relaxed);
    }

    fn get_info(&self) -> ClientConfig {
        client_config()
    }
}

/// The demo client's: it asks for the newest session-based protocol, as the proxy
/// relays an `initialize` handshake.
pub(super) fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("interpose-demo-client", env!("CARGO_PKG_VERSION")),
    )
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
}

/// Opens a client session over `io` with `handler`: the running client, and the
/// `initialize` step naming the server that answered.
pub(super) async fn connect<H, T>(
    handler: H,
    io: T,
) -> anyhow::Result<(RunningService<RoleClient, H>, StepOutcome)>
where
    H: ClientHandler,
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let client = handler
        .serve(io)
        .await
        .context("demo client: MCP initialization failed")?;
    let server = client
        .peer()
        .peer_info()
        .and_then(|info| info.server_info.clone())
        .map_or_else(
            || "unnamed server".to_owned(),
            |server| format!("{} {}", server.name, server.version),
        );
    let initialize = StepOutcome {
        name: "initialize".to_owned(),
        outcome: Ok(server),
    };
    Ok((client, initialize))
}

/// Runs a short scripted MCP client session over `io` and returns a summary of what it did.
///
/// Fails only if the session cannot start (the `initialize` handshake fails)
/// or cannot be shut down; every other failure is recorded in its step.
pub async fn run_script<T>(io: T) -> anyhow::Result<ScriptSummary>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let recorder = Recorder::default();
    let (client, initialize) = connect(recorder.clone(), io).await?;
    let peer = client.peer().clone();
    let mut steps = vec![initialize];

    steps.push(step("tools/list", list_tools(&peer)).await);
    steps.push(step("tools/call echo", echo(&peer)).await);
    steps.push(step("tools/call add", add(&peer)).await);
    steps.push(step("logging/setLevel info", set_level(&peer)).await);
    steps.push(step("tools/call long_task", long_task(&peer)).await);
    steps.push(step("resources/list", list_resources(&peer)).await);
    steps.push(step("resources/templates/list", list_templates(&peer)).await);
    steps.push(step("resources/read demo://readme", read(&peer, "demo://readme")).await);
    steps.push(
        step(
            "resources/read demo://users/1",
            read(&peer, "demo://users/1"),
        )
        .await,
    );
    steps.push(step("resources/subscribe demo://readme", subscribe(&peer)).await);
    steps.push(step("prompts/list", list_prompts(&peer)).await);
    steps.push(step("prompts/get summarize", get_prompt(&peer)).await);
    steps.push(step("completion/complete style", complete(&peer)).await);
    steps.push(step("tools/call fetch_config", fetch_config(&peer)).await);
    steps.push(step("tools/call delete_everything", delete_everything(&peer)).await);
    steps.push(step("tools/call fail", fail(&peer)).await);

    client
        .cancel()
        .await
        .context("demo client: session task failed during shutdown")?;

    Ok(ScriptSummary {
        steps,
        progress_notifications: recorder.progress.load(Ordering::Relaxed),
        log_notifications: recorder.logs.load(Ordering::Relaxed),
    })
}

/// Runs one step with a timeout and records its outcome.
pub(super) async fn step(
    name: &str,
    body: impl Future<Output = anyhow::Result<String>>,
) -> StepOutcome {
    let outcome = match tokio::time::timeout(STEP_TIMEOUT, body).await {
        Ok(Ok(description)) => Ok(description),
        Ok(Err(error)) => Err(describe_error(&error)),
        Err(_elapsed) => Err(format!("no answer within {STEP_TIMEOUT:?}")),
    };
    StepOutcome {
        name: name.to_owned(),
        outcome,
    }
}

/// Error text for the summary; JSON-RPC errors (what a plugin that rejects a
/// request produces) show their code, message and data without rmcp's prefix.
fn describe_error(error: &anyhow::Error) -> String {
    match error.downcast_ref::<ServiceError>() {
        Some(ServiceError::McpError(error)) => {
            let mut text = format!("JSON-RPC error {}: {}", error.code.0, error.message);
            if let Some(data) = &error.data {
                text.push_str(&format!(" ({data})"));
            }
            text
        }
        _ => format!("{error:#}"),
    }
}

/// Shortens `text` to one line of at most `max` characters for the summary.
fn abbreviate(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
}

/// The text content of a tool result, concatenated.
fn tool_text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text())
        .map(|text| text.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn call_tool(
    peer: &Peer<RoleClient>,
    name: &'static str,
    arguments: Option<JsonObject>,
) -> anyhow::Result<CallToolResult> {
    let mut params = CallToolRequestParams::new(name);
    params.arguments = arguments;
    Ok(peer.call_tool(params).await?)
}

/// Calls a tool that should succeed and describes its text output.
pub(super) async fn call_ok(
    peer: &Peer<RoleClient>,
    name: &'static str,
    arguments: Option<JsonObject>,
) -> anyhow::Result<String> {
    let result = call_tool(peer, name, arguments).await?;
    let text = tool_text(&result);
    if result.is_error == Some(true) {
        bail!("tool error: {}", abbreviate(&text, 80));
    }
    Ok(abbreviate(&text, 80))
}

pub(super) async fn list_tools(peer: &Peer<RoleClient>) -> anyhow::Result<String> {
    let tools = peer.list_tools(None).await?.tools;
    let names: Vec<_> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    Ok(format!("{} tool(s): {}", names.len(), names.join(", ")))
}

async fn echo(peer: &Peer<RoleClient>) -> anyhow::Result<String> {
    let text = call_ok(
        peer,
        "echo",
        Some(object!({ "text": "hello from interpose" })),
    )
    .await?;
    Ok(format!("echoed {text:?}"))
}

/// Also checks the structured result, which plugins must keep consistent
/// with the text.
async fn add(peer: &Peer<RoleClient>) -> anyhow::Result<String> {
    let result = call_tool(peer, "add", Some(object!({ "a": 2, "b": 3 }))).await?;
    let sum = result
        .structured_content
        .as_ref()
        .and_then(|structured| structured.get("sum"))
        .and_then(serde_json::Value::as_i64)
        .context("no structured `sum` in the result")?;
    ensure!(sum == 5, "2 + 3 came back as {sum}");
    Ok(format!(
        "2 + 3 = {} (structured sum: {sum})",
        tool_text(&result)
    ))
}

async fn set_level(peer: &Peer<RoleClient>) -> anyhow::Result<String> {
    peer.set_level(SetLevelRequestParams::new(LoggingLevel::Info))
        .await?;
    Ok("accepted".to_owned())
}

/// rmcp gives every request a progress token, so the backend reports progress.
async fn long_task(peer: &Peer<RoleClient>) -> anyhow::Result<String> {
    call_ok(
        peer,
        "long_task",
        Some(object!({ "steps": LONG_TASK_STEPS })),
    )
    .await
}

async fn list_resources(peer: &Peer<RoleClient>) -> anyhow::Result<String> {
    let resources = peer.list_resources(None).await?.resources;
    let uris: Vec<_> = resources
        .iter()
        .map(|resource| resource.uri.as_str())
        .collect();
    Ok(format!("{} resource(s): {}", uris.len(), uris.join(", ")))
}

async fn list_templates(peer: &Peer<RoleClient>) -> anyhow::Result<String> {
    let templates = peer.list_resource_templates(None).await?.resource_templates;
    let uris: Vec<_> = templates
        .iter()
        .map(|template| template.uri_template.as_str())
        .collect();
    Ok(format!("{} template(s): {}", uris.len(), uris.join(", ")))
}

async fn read(peer: &Peer<RoleClient>, uri: &str) -> anyhow::Result<String> {
    let contents = peer
        .read_resource(ReadResourceRequestParams::new(uri))
        .await?
        .contents;
    let Some(first) = contents.first() else {
        bail!("no contents");
    };
    Ok(match first {
        ResourceContents::TextResourceContents {
            mime_type, text, ..
        } => format!(
            "{}: {}",
            mime_type.as_deref().unwrap_or("no mime type"),
            abbreviate(text, 60)
        ),
        _ => "non-text contents".to_owned(),
    })
}

async fn subscribe(peer: &Peer<RoleClient>) -> anyhow::Result<String> {
    peer.subscribe(SubscribeRequestParams::new("demo://readme"))
        .await?;
    Ok("subscribed".to_owned())
}

async fn list_prompts(peer: &Peer<RoleClient>) -> anyhow::Result<String> {
    let prompts = peer.list_prompts(None).await?.prompts;
    let names: Vec<_> = prompts.iter().map(|prompt| prompt.name.as_str()).collect();
    Ok(format!("{} prompt(s): {}", names.len(), names.join(", ")))
}

async fn get_prompt(peer: &Peer<RoleClient>) -> anyhow::Result<String> {
    let params = GetPromptRequestParams::new("summarize").with_arguments(object!({
        "text": "MCP lets models call tools.",
        "style": "brief"
    }));
    let prompt = peer.get_prompt(params).await?;
    Ok(format!("{} message(s)", prompt.messages.len()))
}

async fn complete(peer: &Peer<RoleClient>) -> anyhow::Result<String> {
    let values = peer
        .complete_prompt_simple("summarize", "style", "b")
        .await?;
    Ok(format!("\"b\" -> {}", values.join(", ")))
}

/// Reports how many of the backend's fake secrets got through, which is what
/// a redaction plugin changes.
async fn fetch_config(peer: &Peer<RoleClient>) -> anyhow::Result<String> {
    let result = call_tool(peer, SECRETS_TOOL, None).await?;
    let text = tool_text(&result);
    let visible = FAKE_SECRETS
        .iter()
        .filter(|secret| text.contains(*secret))
        .count();
    Ok(format!(
        "{visible} of {} fake secrets visible",
        FAKE_SECRETS.len()
    ))
}

/// A policy plugin is expected to turn this into an error.
async fn delete_everything(peer: &Peer<RoleClient>) -> anyhow::Result<String> {
    call_ok(peer, "delete_everything", None).await
}

/// The backend reports a tool error; the step succeeds if it arrives as one.
async fn fail(peer: &Peer<RoleClient>) -> anyhow::Result<String> {
    let result = call_tool(peer, "fail", None).await?;
    ensure!(
        result.is_error == Some(true),
        "expected isError: true, got {:?}",
        result.is_error
    );
    Ok(format!("isError: {}", abbreviate(&tool_text(&result), 60)))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::demo::backend;

    #[tokio::test]
    async fn script_runs_cleanly_against_demo_backend() -> anyhow::Result<()> {
        let started = Instant::now();
        let (client_io, backend_io) = tokio::io::duplex(64 * 1024);
        let backend = tokio::spawn(backend::serve(backend_io));

        let summary = run_script(client_io).await?;

        assert!(summary.all_succeeded(), "{summary}");
        let expected_steps = LONG_TASK_STEPS as usize;
        assert_eq!(summary.progress_notifications, expected_steps);
        // Info-level messages only: the backend's debug message is filtered out.
        assert_eq!(summary.log_notifications, expected_steps);
        let outcome = |name: &str| {
            summary
                .steps
                .iter()
                .find(|step| step.name == name)
                .and_then(|step| step.outcome.clone().ok())
        };
        assert_eq!(
            outcome("tools/call fetch_config").as_deref(),
            Some("6 of 6 fake secrets visible")
        );
        assert_eq!(
            outcome("completion/complete style").as_deref(),
            Some("\"b\" -> brief, bullet-points")
        );

        // Closing the client ends the backend's session cleanly.
        tokio::time::timeout(Duration::from_secs(5), backend).await???;
        eprintln!("scripted session took {:?}", started.elapsed());
        Ok(())
    }

    #[tokio::test]
    async fn rejected_step_records_the_json_rpc_error() {
        let outcome = step("tools/call delete_everything", async {
            let denied = rmcp::ErrorData::invalid_request("denied by policy", None);
            Err(ServiceError::McpError(denied)).context("calling the tool")
        })
        .await;
        assert_eq!(
            outcome.outcome,
            Err("JSON-RPC error -32600: denied by policy".to_owned())
        );
    }

    #[test]
    fn display_lists_steps_and_counts() {
        let summary = ScriptSummary {
            steps: vec![
                StepOutcome {
                    name: "initialize".to_owned(),
                    outcome: Ok("interpose-demo 0.1.0".to_owned()),
                },
                StepOutcome {
                    name: "tools/call fail".to_owned(),
                    outcome: Err("JSON-RPC error -32600: denied".to_owned()),
                },
            ],
            progress_notifications: 3,
            log_notifications: 2,
        };
        assert!(!summary.all_succeeded());
        assert_eq!(
            summary.to_string(),
            "Scripted client session:\n  \
             ok     initialize       interpose-demo 0.1.0\n  \
             FAILED tools/call fail  JSON-RPC error -32600: denied\n\
             Notifications received: 3 progress, 2 log"
        );
    }

    #[test]
    fn abbreviate_joins_lines_and_cuts_on_char_boundaries() {
        assert_eq!(abbreviate("a\n  b", 10), "a b");
        assert_eq!(abbreviate("héllo wörld", 3), "hél...");
    }
}

//! `interpose demo --gateway`: two built-in servers behind one endpoint. A scripted
//! client calls each through the gateway, then brings one down: its call in flight
//! fails naming it, the other keeps answering, and the gateway restarts it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use rmcp::model::ClientConfig;
use rmcp::service::{NotificationContext, Peer};
use rmcp::{ClientHandler, RoleClient, object};
use tokio::io::{AsyncRead, AsyncWrite};

use super::client::{ScriptSummary, call_ok, client_config, connect, list_tools, step};
use super::notes::CRASH_TOOL;

/// How long the script waits for the crashed server to be back.
const COMEBACK_LIMIT: Duration = Duration::from_secs(8);

/// Counts `notifications/tools/list_changed`, which the gateway sends when a server
/// leaves and when it comes back.
#[derive(Debug, Clone, Default)]
struct ListWatcher {
    tools_changed: Arc<AtomicUsize>,
}

impl ClientHandler for ListWatcher {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.fetch_add(1, Ordering::Relaxed);
    }

    fn get_info(&self) -> ClientConfig {
        client_config()
    }
}

/// Runs the gateway script over `io`: `demo` and `notes` are the servers' names.
pub async fn run_script<T>(io: T) -> anyhow::Result<ScriptSummary>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let watcher = ListWatcher::default();
    let (client, initialize) = connect(watcher.clone(), io).await?;
    let peer = client.peer().clone();
    let mut steps = vec![initialize];

    steps.push(step("tools/list", list_tools(&peer)).await);
    let echo = Some(object!({ "text": "hello through the gateway" }));
    steps.push(step("tools/call demo_echo", call_ok(&peer, "demo_echo", echo)).await);
    let note = Some(object!({ "text": "water the plants" }));
    steps.push(
        step(
            "tools/call notes_add_note",
            call_ok(&peer, "notes_add_note", note),
        )
        .await,
    );
    steps.push(step("tools/call notes_crash", fails(&peer, "notes_crash")).await);
    steps.push(
        step(
            "tools/call notes_list_notes",
            fails(&peer, "notes_list_notes"),
        )
        .await,
    );
    let add = Some(object!({ "a": 2, "b": 3 }));
    steps.push(step("tools/call demo_add", call_ok(&peer, "demo_add", add)).await);
    steps.push(step("notes comes back", comeback(&peer, &watcher)).await);
    steps.push(
        step(
            "tools/call notes_list_notes",
            call_ok(&peer, "notes_list_notes", None),
        )
        .await,
    );

    client
        .cancel()
        .await
        .context("demo client: session task failed during shutdown")?;
    Ok(ScriptSummary {
        steps,
        progress_notifications: 0,
        log_notifications: 0,
    })
}

/// A call that must fail: its error is the step's description.
async fn fails(peer: &Peer<RoleClient>, tool: &'static str) -> anyhow::Result<String> {
    match call_ok(peer, tool, None).await {
        Ok(text) => anyhow::bail!("answered {text:?}, but the server should be down"),
        Err(error) => Ok(format!("failed, as it should: {error:#}")),
    }
}

/// Waits until the gateway lists the notes server's tools again.
async fn comeback(peer: &Peer<RoleClient>, watcher: &ListWatcher) -> anyhow::Result<String> {
    let started = tokio::time::Instant::now();
    let deadline = started + COMEBACK_LIMIT;
    loop {
        let tools = peer.list_tools(None).await?.tools;
        if tools.iter().any(|t| t.name.ends_with(CRASH_TOOL)) {
            return Ok(format!(
                "listed again after {:.1} s; {} tools/list_changed received",
                started.elapsed().as_secs_f64(),
                watcher.tools_changed.load(Ordering::Relaxed)
            ));
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "not back within {COMEBACK_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

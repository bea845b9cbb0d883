//! The gateway demo's second built-in backend: a small note store with a tool that
//! brings the server down, so the demo can show one server failing and coming back
//! while the other serves on.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use rmcp::{
    ServerHandler, ServiceExt as _,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig},
    schemars::{self, JsonSchema},
    tool, tool_handler, tool_router,
};
use serde::Deserialize;
use tokio::sync::Notify;

/// The server's name in its `initialize` answer.
pub const NOTES_SERVER_NAME: &str = "interpose-demo-notes";

/// The tool that makes the server exit while its own call is in flight.
pub const CRASH_TOOL: &str = "crash";

/// Serves the note store over `io` until the peer closes it or `crash` is called.
/// A fresh store each time: what a restarted server forgot is part of the demo.
pub async fn serve<T>(mut io: T) -> anyhow::Result<()>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    // The server speaks through an inner pipe, so a crash closes `io` at once, as a
    // process's exit closes its stdio (rmcp alone would take its time to wind down).
    let (mut ours, theirs) = tokio::io::duplex(PIPE_BYTES);
    let crashed = Arc::new(Notify::new());
    let server = async {
        let running = NotesBackend::new(crashed.clone())
            .serve(theirs)
            .await
            .context("notes backend: MCP initialization failed")?;
        running
            .waiting()
            .await
            .context("notes backend: session task failed")?;
        anyhow::Ok(())
    };
    tokio::select! {
        ended = server => ended,
        _ = tokio::io::copy_bidirectional(&mut io, &mut ours) => Ok(()),
        () = crashed.notified() => anyhow::bail!("the notes server crashed on purpose"),
    }
}

/// Bytes buffered in the inner pipe each way.
const PIPE_BYTES: usize = 64 * 1024;

#[derive(Debug)]
struct NotesBackend {
    tool_router: ToolRouter<Self>,
    notes: Mutex<Vec<String>>,
    crashed: Arc<Notify>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct AddNoteArgs {
    /// The note's text.
    text: String,
}

impl NotesBackend {
    fn new(crashed: Arc<Notify>) -> Self {
        NotesBackend {
            tool_router: Self::tool_router(),
            notes: Mutex::new(Vec::new()),
            crashed,
        }
    }

    fn notes(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.notes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[tool_router]
impl NotesBackend {
    #[tool(description = "Stores a note.")]
    async fn add_note(&self, Parameters(args): Parameters<AddNoteArgs>) -> CallToolResult {
        let mut notes = self.notes();
        notes.push(args.text);
        CallToolResult::success(vec![ContentBlock::text(format!(
            "{} note(s) stored",
            notes.len()
        ))])
    }

    #[tool(description = "Lists the stored notes.")]
    async fn list_notes(&self) -> CallToolResult {
        let notes = self.notes();
        let text = if notes.is_empty() {
            "no notes".to_owned()
        } else {
            notes.join("; ")
        };
        CallToolResult::success(vec![ContentBlock::text(text)])
    }

    #[tool(description = "Makes the server exit without answering (for the demo).")]
    async fn crash(&self) -> CallToolResult {
        self.crashed.notify_one();
        // The server is gone before this returns: nobody reads the answer.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        CallToolResult::error(vec![ContentBlock::text("crashed")])
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for NotesBackend {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                NOTES_SERVER_NAME,
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("A note store: add_note, list_notes, and crash (for the demo).")
    }
}

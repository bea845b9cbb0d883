//! `interpose demo`: the proxy at work with no set-up. A built-in backend runs in this
//! process, a scripted client talks to it through the relay, and every message that
//! crosses is printed with its direction, method, size and time.

pub mod backend;
pub mod client;
mod gateway;
mod notes;
pub(crate) mod plugins;
pub(crate) mod trace;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::BufReader;

use crate::downstream::http_server::{HttpServer, HttpServerConfig};
use crate::downstream::stdio;
use crate::run::shutdown_signal;
use crate::session::gateway::GatewayOptions;
use crate::session::intercept::{PassAll, SharedInterceptor};
use crate::session::lifecycle::RestartPolicy;
use crate::session::relay::RelayEnd;
use crate::session::{BackendSettings, SessionSettings};
use crate::telemetry::metrics::Transport;
use crate::upstream::{InProcessServer, UpstreamSpec};
use crate::wire::framing::DEFAULT_MAX_MESSAGE_BYTES;
use crate::wire::link::{ConnectContext, line_link};
use trace::Tracer;

/// The demo backend's name, as plugins and logs see it.
pub const SERVER_NAME: &str = "demo";

/// Sessions with the built-in backend, in this process, through `interceptor`.
fn demo_sessions(interceptor: SharedInterceptor) -> SessionSettings {
    let serve: InProcessServer = Arc::new(|io| Box::pin(backend::serve(io)));
    let upstream = UpstreamSpec::InProcess {
        name: SERVER_NAME.into(),
        serve,
    };
    SessionSettings {
        backends: vec![BackendSettings::new(SERVER_NAME, upstream)],
        interceptor,
        max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        backend_shutdown_grace: Duration::from_secs(1),
        gateway: GatewayOptions::default(),
    }
}

/// Runs the scripted session through the proxy and prints what crossed it. With
/// `with_plugins`, the session runs through the demo's plugin chain and each plugin's
/// verdict is printed too.
pub async fn run_scripted(with_plugins: bool) -> anyhow::Result<()> {
    let steps = Arc::new(std::sync::Mutex::new(Vec::new()));
    let interceptor: SharedInterceptor = if with_plugins {
        let dir = plugins::plugin_dir()?;
        plugins::load(&dir, steps.clone()).await?
    } else {
        Arc::new(PassAll)
    };
    let tracer = Arc::new(Tracer::new(interceptor, steps));
    println!(
        "interpose demo: a scripted MCP client talks to the built-in backend through the proxy."
    );
    if with_plugins {
        println!("Plugins, in chain order: audit-log, tool-policy (denies delete_*), redact.");
    }
    println!("Every message that crosses the proxy, with each plugin's verdict:\n");
    let settings = demo_sessions(tracer.clone());
    traced(settings, &tracer, client::run_script).await?;
    if with_plugins {
        println!(
            "audit-log wrote one JSON line per message to the log; see them with \
             RUST_LOG=interpose::plugin=info interpose demo"
        );
    }
    Ok(())
}

/// Runs the gateway script: the demo backend and the notes server behind one endpoint,
/// the notes server brought down and restarted by the gateway on the way.
pub async fn run_gateway() -> anyhow::Result<()> {
    let tracer = Arc::new(Tracer::new(Arc::new(PassAll), Default::default()));
    println!(
        "interpose demo --gateway: two built-in servers, `demo` and `notes`, behind one \
         endpoint. A scripted client calls each, then brings `notes` down; the gateway \
         restarts it.\n"
    );
    let mut settings = demo_sessions(tracer.clone());
    let serve_notes: InProcessServer = Arc::new(|io| Box::pin(notes::serve(io)));
    let notes = UpstreamSpec::InProcess {
        name: "notes".into(),
        serve: serve_notes,
    };
    settings.backends.push(BackendSettings {
        restart: RestartPolicy::OnFailure,
        ..BackendSettings::new("notes", notes)
    });
    traced(settings, &tracer, gateway::run_script).await
}

/// Runs `script` as the client of one session opened with `settings`, printing every
/// message that crosses, then the script's summary and the totals.
async fn traced<F, Fut>(settings: SessionSettings, tracer: &Tracer, script: F) -> anyhow::Result<()>
where
    F: FnOnce(tokio::io::DuplexStream) -> Fut,
    Fut: Future<Output = anyhow::Result<client::ScriptSummary>>,
{
    let (client_end, proxy_end) = tokio::io::duplex(256 * 1024);
    let (read, write) = tokio::io::split(proxy_end);
    let client = line_link(
        BufReader::new(read),
        write,
        DEFAULT_MAX_MESSAGE_BYTES,
        "client",
        async { "the demo client finished".to_owned() },
    );
    Tracer::print_header();
    let session = settings.open(
        client,
        "demo-session",
        Transport::Stdio,
        &ConnectContext::default(),
    )?;
    let relay = tokio::spawn(session.run(std::future::pending()));
    let summary = script(client_end).await;
    let end = relay.await?;

    println!();
    summary?.print();
    tracer.print_totals();
    match end {
        RelayEnd::BackendClosed(why) => anyhow::bail!("the demo backend ended early: {why}"),
        RelayEnd::ClientClosed | RelayEnd::Shutdown => Ok(()),
    }
}

/// Serves the demo backend through the proxy on stdio, for a real client to use.
pub async fn serve_stdio() -> anyhow::Result<()> {
    tracing::info!("serving the demo backend on stdio through interpose; waiting for a client");
    let client = stdio::client_link(DEFAULT_MAX_MESSAGE_BYTES);
    let session = demo_sessions(Arc::new(PassAll)).open(
        client,
        "stdio",
        Transport::Stdio,
        &ConnectContext::default(),
    )?;
    match session.run(shutdown_signal()).await {
        RelayEnd::BackendClosed(why) => anyhow::bail!("the demo backend ended: {why}"),
        RelayEnd::ClientClosed | RelayEnd::Shutdown => Ok(()),
    }
}

/// Serves the demo backend through the proxy over HTTP (Streamable HTTP at /mcp, legacy
/// SSE at /sse), one in-process demo backend per client session, and prints how to
/// connect a client.
pub async fn serve_http(config: HttpServerConfig) -> anyhow::Result<()> {
    let server = HttpServer::bind(config, Arc::new(demo_sessions(Arc::new(PassAll)))).await?;
    let addr = server.local_addr()?;
    println!(
        "interpose demo: serving the demo backend through the proxy; listening on http://{addr}/mcp"
    );
    println!();
    println!("  Streamable HTTP: http://{addr}/mcp");
    println!("  Legacy SSE:      http://{addr}/sse");
    println!();
    println!("Connect a client, for example:");
    println!(
        "  npx @modelcontextprotocol/inspector --cli http://{addr}/mcp --transport http --method tools/list"
    );
    println!(
        "  or, in a desktop client's config: {{\"mcpServers\": {{\"demo\": {{\"url\": \"http://{addr}/mcp\"}}}}}}"
    );
    println!("Press Ctrl-C to stop.");
    server.serve(shutdown_signal()).await
}

//! rmcp's own Streamable HTTP client (3.11) through the proxy. Its default `serve`
//! asks for 2026-07-28 in `initialize` and takes what the backend settles on; its
//! `Discover` and `Auto` lifecycles start with `server/discover` and, against a modern
//! backend, go on without a session.
// Sampling is deprecated by the 2026-07-28 revision, and still what the proxy must relay.
#![allow(deprecated)]

use crate::http_support;

use http_support::*;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, CreateMessageRequestParams,
    CreateMessageResult, ErrorData, Implementation, ProtocolVersion, SamplingMessage,
};
use rmcp::service::{RequestContext, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, ServiceExt};

/// A client that can be sampled.
#[derive(Clone)]
struct Sampler;

impl ClientHandler for Sampler {
    async fn create_message(
        &self,
        _params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text("sampled by rmcp"),
            "rmcp-model".into(),
        ))
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_sampling().build(),
            Implementation::new("interpose-rmcp-test", "0.0.1"),
        )
    }
}

fn stdio_backend_args(backend: &[String]) -> Vec<&str> {
    let mut args = vec!["--"];
    args.extend(backend.iter().map(String::as_str));
    args
}

async fn echo(
    client: &RunningService<RoleClient, impl rmcp::Service<RoleClient>>,
    key: &str,
) -> String {
    let arguments = serde_json::json!({ key: "hi from rmcp" });
    let result = client
        .call_tool(
            CallToolRequestParams::new("echo")
                .with_arguments(arguments.as_object().expect("an object").clone()),
        )
        .await
        .expect("tools/call echo");
    let text = result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone());
    text.expect("a text result")
}

#[tokio::test]
async fn default_rmcp_client_gets_the_backends_version_and_sampling_works() {
    let backend = full_server();
    let (_proxy, base) = proxy(&stdio_backend_args(&backend));
    let transport = StreamableHttpClientTransport::from_uri(format!("{base}/mcp"));
    let client = Sampler
        .serve(transport)
        .await
        .expect("initialize through the proxy");
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.protocol_version,
        ProtocolVersion::V_2025_11_25,
        "the backend settled the version, the proxy passed it through"
    );
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == "sample"));
    assert_eq!(echo(&client, "text").await, "hi from rmcp");
    let sampled = client
        .call_tool(
            CallToolRequestParams::new("sample").with_arguments(
                serde_json::json!({"prompt": "p"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .expect("tools/call sample");
    let text = sampled.content[0].as_text().expect("text").text.clone();
    assert!(text.contains("sampled by rmcp"), "{text}");
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn discover_lifecycle_goes_stateless_through_the_proxy() {
    let backend = full_server();
    let (_proxy, base) = proxy(&stdio_backend_args(&backend));
    let transport = StreamableHttpClientTransport::from_uri(format!("{base}/mcp"));
    let client = ()
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("server/discover through the proxy");
    assert_eq!(
        client.peer_info().expect("info").protocol_version,
        ProtocolVersion::V_2026_07_28
    );
    assert_eq!(echo(&client, "text").await, "hi from rmcp");
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn auto_lifecycle_falls_back_to_initialize_for_a_legacy_backend() {
    let everything = vec![
        "node".to_owned(),
        everything().display().to_string(),
        "stdio".to_owned(),
    ];
    let (_proxy, base) = proxy(&stdio_backend_args(&everything));
    let transport = StreamableHttpClientTransport::from_uri(format!("{base}/mcp"));
    let client = ()
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Auto {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                legacy_version: Some(ProtocolVersion::V_2025_11_25),
            },
        )
        .await
        .expect("discover, then initialize");
    assert!(
        client
            .peer_info()
            .expect("info")
            .protocol_version
            .has_initialize()
    );
    assert_eq!(echo(&client, "message").await, "Echo: hi from rmcp");
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn rmcp_client_to_an_http_backend() {
    let (_backend, backend) = python_http_backend(&[]);
    let (_proxy, base) = proxy(&["--", &format!("{backend}/mcp")]);
    let transport = StreamableHttpClientTransport::from_uri(format!("{base}/mcp"));
    let client = Sampler.serve(transport).await.expect("initialize");
    assert_eq!(echo(&client, "text").await, "hi from rmcp");
    client.cancel().await.expect("close");
}

/// `interpose demo --serve --listen http://...`: the in-process rmcp demo backend behind
/// the HTTP listener, one per session.
#[tokio::test]
async fn demo_serves_over_http() {
    let port = free_port();
    let mut command = std::process::Command::new(interpose_bin());
    command.args([
        "demo",
        "--serve",
        "--listen",
        &format!("http://127.0.0.1:{port}"),
    ]);
    let url = format!("http://127.0.0.1:{port}/mcp");
    // The log line "listening on ..." can come before the printed instructions; wait
    // for the instructions themselves.
    let demo = Proc::start(
        "interpose demo",
        command,
        &format!("Streamable HTTP: {url}"),
    );
    assert!(demo.output().contains(&format!("listening on {url}")));
    for _ in 0..2 {
        let client =
            ().serve(StreamableHttpClientTransport::from_uri(url.clone()))
                .await
                .expect("initialize");
        assert_eq!(echo(&client, "text").await, "hi from rmcp");
        client.cancel().await.expect("close");
    }
}

//! The real `interpose` binary between an rmcp client and real backends over stdio:
//! every answer through the proxy must equal the answer from the backend directly.

use rmcp::model::{
    ArgumentInfo, CallToolRequestParams, CompleteRequestParams, GetPromptRequestParams,
    ReadResourceRequestParams, Reference,
};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::http_support::full_server;
use crate::support::INTERPOSE;

type Client = RunningService<RoleClient, ()>;

/// A backend as a command line.
fn demo_backend() -> Vec<String> {
    vec![INTERPOSE.into(), "demo".into(), "--serve".into()]
}

fn through_proxy(backend: &[String]) -> Vec<String> {
    let mut cmd = vec![INTERPOSE.to_owned(), "run".into(), "--".into()];
    cmd.extend_from_slice(backend);
    cmd
}

async fn connect(cmdline: &[String]) -> Client {
    let mut cmd = Command::new(&cmdline[0]);
    cmd.args(&cmdline[1..]);
    let transport = TokioChildProcess::new(cmd).expect("spawn");
    ().serve(transport).await.expect("initialize")
}

fn json<T: serde::Serialize>(value: T) -> Value {
    serde_json::to_value(value).expect("serializable")
}

/// Everything a client can list or fetch without side effects, as JSON.
async fn survey(client: &Client) -> Value {
    let info = client.peer_info().map(|i| json(&*i));
    let tools = json(client.list_all_tools().await.expect("tools/list"));
    let resources = json(client.list_all_resources().await.expect("resources/list"));
    let templates = json(
        client
            .list_all_resource_templates()
            .await
            .expect("templates/list"),
    );
    let prompts = json(client.list_all_prompts().await.expect("prompts/list"));
    json!({ "info": info, "tools": tools, "resources": resources, "templates": templates, "prompts": prompts })
}

fn call(name: &str, args: Value) -> CallToolRequestParams {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    CallToolRequestParams::new(name.to_owned()).with_arguments(args)
}

#[tokio::test]
async fn demo_backend_answers_identically_through_the_proxy() {
    let direct = connect(&demo_backend()).await;
    let proxied = connect(&through_proxy(&demo_backend())).await;

    assert_eq!(survey(&direct).await, survey(&proxied).await);
    for (name, args) in [
        ("echo", json!({"text": "héllo \u{1F600} \"quoted\""})),
        ("add", json!({"a": 2, "b": 40})),
        ("fail", json!({})),
        ("get_weather", json!({"city": "Lisbon"})),
    ] {
        let a = direct
            .call_tool(call(name, args.clone()))
            .await
            .expect("direct call");
        let b = proxied
            .call_tool(call(name, args))
            .await
            .expect("proxied call");
        assert_eq!(json(a), json(b), "tools/call {name}");
    }
    let read = |uri: &str| ReadResourceRequestParams::new(uri.to_owned());
    for uri in ["demo://readme", "demo://users/2"] {
        let a = direct.read_resource(read(uri)).await.expect("direct read");
        let b = proxied
            .read_resource(read(uri))
            .await
            .expect("proxied read");
        assert_eq!(json(a), json(b), "resources/read {uri}");
    }
    let missing_a = direct
        .read_resource(read("demo://users/999"))
        .await
        .unwrap_err();
    let missing_b = proxied
        .read_resource(read("demo://users/999"))
        .await
        .unwrap_err();
    assert_eq!(
        missing_a.to_string(),
        missing_b.to_string(),
        "errors are relayed unchanged"
    );

    let prompt = || {
        let Value::Object(args) = json!({"text": "a b c", "style": "brief"}) else {
            unreachable!()
        };
        GetPromptRequestParams::new("summarize").with_arguments(args)
    };
    assert_eq!(
        json(direct.get_prompt(prompt()).await.unwrap()),
        json(proxied.get_prompt(prompt()).await.unwrap())
    );

    let complete = || {
        CompleteRequestParams::new(
            Reference::for_prompt("summarize"),
            ArgumentInfo::new("style", "b"),
        )
    };
    assert_eq!(
        json(direct.complete(complete()).await.unwrap()),
        json(proxied.complete(complete()).await.unwrap())
    );

    direct.cancel().await.expect("close direct");
    proxied.cancel().await.expect("close proxied");
}

#[tokio::test]
async fn sixty_four_concurrent_calls_each_get_their_own_answer() {
    let proxied = connect(&through_proxy(&demo_backend())).await;
    let calls = (0..64).map(|i| {
        let proxied = &proxied;
        async move {
            let result = proxied
                .call_tool(call("echo", json!({"text": format!("call {i}")})))
                .await
                .expect("call");
            (i, json(result))
        }
    });
    for (i, result) in futures::future::join_all(calls).await {
        let text = result["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            text,
            format!("call {i}"),
            "answer {i} went to the right caller"
        );
    }
    proxied.cancel().await.expect("close");
}

#[tokio::test]
async fn python_backend_answers_identically_through_the_proxy() {
    let direct = connect(&full_server()).await;
    let proxied = connect(&through_proxy(&full_server())).await;
    assert_eq!(survey(&direct).await, survey(&proxied).await);
    let a = direct
        .call_tool(call("echo", json!({"text": "hi"})))
        .await
        .expect("direct call");
    let b = proxied
        .call_tool(call("echo", json!({"text": "hi"})))
        .await
        .expect("proxied call");
    assert_eq!(json(a), json(b));
    direct.cancel().await.expect("close direct");
    proxied.cancel().await.expect("close proxied");
}

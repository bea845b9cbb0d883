//! The shipped `moderation` plugin against a real moderation endpoint
//! (`tests/servers/http_target.py`, `POST /v1/moderate`: flags text that mentions
//! "forbidden") and a real backend (`catalog_backend.py`, whose tool results are the
//! call's params as text): flagged results are rejected or annotated, clean ones
//! pass, flagged arguments never reach the server, and an endpoint the grant does not
//! cover fails closed.

use crate::plugin_http::Target;
use crate::support;

use serde_json::{Value, json};
use support::{Proxy, config_file, error, fixture, result, scratch};

/// A proxy running `moderation` against `target`'s endpoint, with `config` (TOML
/// lines of its `[plugins.config]`) and the endpoint's grant `grant`.
fn moderated(target: &Target, grant: &str, config: &str) -> Proxy {
    let dir = scratch();
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, "{}").unwrap();
    let config = config_file(
        dir.path(),
        &format!(
            "[[plugins]]\npath = \"{}\"\ntimeout_ms = 10000\nhttp = [\"{grant}\"]\n\
             [plugins.config]\nendpoint = \"{}\"\ntimeout_ms = 5000\n{config}\n",
            fixture("moderation").display(),
            target.url("/v1/moderate")
        ),
    );
    Proxy::start_with_catalog(&config, &catalog, 1).holding(dir)
}

fn texts(answer: &Value) -> Vec<String> {
    result(answer)["content"]
        .as_array()
        .unwrap_or_else(|| panic!("no content in {answer}"))
        .iter()
        .map(|c| c["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn flagged_tool_results_are_rejected_and_clean_ones_pass() {
    let target = Target::start();
    let mut proxy = moderated(&target, &target.url("/v1/*"), "");
    let clean = proxy.call_tool(1, "search", json!({"q": "weather"}));
    assert_eq!(texts(&clean).len(), 1);
    assert!(texts(&clean)[0].contains("weather"), "{clean}");
    let flagged = proxy.call_tool(2, "search", json!({"q": "something forbidden"}));
    let err = error(&flagged);
    assert_eq!(err["code"], -32001, "{flagged}");
    assert_eq!(
        err["message"],
        "moderation: the tool result of `search` was flagged: mentions something forbidden"
    );
    assert_eq!(err["data"]["plugin"], "moderation");
    assert_eq!(target.requested(), ["/v1/moderate", "/v1/moderate"]);
}

#[test]
fn flagged_tool_results_can_be_annotated_instead() {
    let target = Target::start();
    let mut proxy = moderated(&target, &target.url("/v1/*"), "on_flag = \"annotate\"");
    let answer = proxy.call_tool(1, "search", json!({"q": "something forbidden"}));
    let texts = texts(&answer);
    assert_eq!(
        texts[0],
        "[moderation] flagged: mentions something forbidden"
    );
    assert!(texts[1].contains("something forbidden"), "{answer}");
    assert_eq!(
        result(&answer)["_meta"]["moderation"],
        json!({"flagged": true, "reason": "mentions something forbidden"})
    );
}

#[test]
fn flagged_arguments_never_reach_the_server() {
    let target = Target::start();
    let mut proxy = moderated(&target, &target.url("/v1/*"), "check_arguments = true");
    let flagged = proxy.call_tool(1, "search", json!({"q": "something forbidden"}));
    assert_eq!(
        error(&flagged)["message"],
        "moderation: the tool arguments of `search` were flagged: mentions something forbidden"
    );
    let clean = proxy.call_tool(2, "search", json!({"q": "weather"}));
    // The server's count of calls: the flagged one was not forwarded.
    assert_eq!(result(&clean)["structuredContent"], json!({"call": 1}));
}

#[test]
fn an_endpoint_outside_the_grant_fails_closed() {
    let target = Target::start();
    let mut proxy = moderated(&target, &target.url("/v2/*"), "");
    let answer = proxy.call_tool(1, "search", json!({"q": "weather"}));
    assert_eq!(
        error(&answer)["message"],
        "moderation: the tool result of `search` could not be checked: HTTP request failed: HttpRequestDenied"
    );
    assert!(target.requested().is_empty());
}

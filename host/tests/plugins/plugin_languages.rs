//! `redact` and `tool-policy` behave the same in every language: each case runs
//! through the real binary, in front of a real MCP server (`catalog_backend.py`),
//! with the Rust, the Python and the JavaScript plugin of that name and the same
//! configuration, and the Python and JavaScript answers must be the Rust one byte for
//! byte. A few answers are also pinned, so that three languages equally wrong fail
//! too.
//!
//! The plugins are built from source (`scripts/build-plugins.sh`,
//! `scripts/build-python-plugin.sh`, `scripts/build-js-plugin.sh`) on first use.

use crate::support;

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use support::{GUEST_LIMITS, Proxy, fixture, guest_plugin, scratch};

/// The languages a plugin comes in, by the suffix of its source folder.
const LANGUAGES: [(&str, &str); 3] = [("Rust", ""), ("Python", "-py"), ("JavaScript", "-js")];

fn plugin_in(plugin: &str, suffix: &str) -> PathBuf {
    if suffix.is_empty() {
        fixture(plugin)
    } else {
        guest_plugin(&format!("{plugin}{suffix}"))
    }
}

/// One request and what must come of it.
struct Case {
    /// The behaviour it checks.
    what: &'static str,
    method: &'static str,
    /// The request's params, as JSON text sent byte for byte.
    params: &'static str,
    /// What the backend answers (JSON text), keyed by the `name` (tools, prompts) or
    /// `uri` (resources) in `params`. None: the backend's default, see
    /// `catalog_backend.py`.
    backend: Option<&'static str>,
    expect: Expect,
}

/// What every language must answer, besides answering the same.
enum Expect {
    /// Nothing pinned beyond agreement.
    Agreement,
    /// The backend's `result`, byte for byte.
    Untouched,
    /// This `result` (compared as JSON).
    Result(Value),
    /// This `error` (compared as JSON).
    Error(Value),
    /// A result whose text says the backend received these params (as JSON).
    Received(Value),
    /// A result whose text says the backend received the params byte for byte as sent.
    Forwarded,
}

/// A plugin, its configuration and the cases to run with it.
struct Group {
    plugin: &'static str,
    /// The `[plugins.config]` table's body, in TOML.
    config: &'static str,
    /// The backend's `tools/list` result.
    tools: &'static str,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    error: Option<Value>,
}

/// Runs every case of `group` with each language's plugin, then checks that the
/// languages agree (answers, and what the plugin logged) and that the pinned answers
/// hold; fails with every problem found.
fn run(group: Group) {
    let dir = scratch();
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, catalog_of(&group).to_string()).expect("write the catalog");
    let mut answers: Vec<(&str, Vec<String>, Vec<String>)> = Vec::new();
    for (language, suffix) in LANGUAGES {
        let path = plugin_in(group.plugin, suffix);
        let config = dir.path().join(format!("interpose{suffix}.toml"));
        let text = format!(
            "[[plugins]]\npath = {path:?}\n{GUEST_LIMITS}\n[plugins.config]\n{}\n",
            group.config
        );
        std::fs::write(&config, text).expect("write config");
        let mut proxy = Proxy::start_with_catalog(&config, &catalog, 1);
        let lines = group
            .cases
            .iter()
            .zip(1..)
            .map(|(case, id)| {
                let request = format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"{}","params":{}}}"#,
                    case.method, case.params
                );
                proxy.request_raw(id, &request)
            })
            .collect();
        let (status, log) = proxy.finish();
        assert!(status.success(), "{language}: interpose failed:\n{log}");
        answers.push((language, lines, plugin_log(&log)));
    }

    let mut problems = String::new();
    let (_, reference, reference_log) = &answers[0];
    for (language, lines, log) in &answers[1..] {
        if log != reference_log {
            let _ = write!(
                problems,
                "\n{}: {language} logged differently from Rust\n  Rust:   {reference_log:?}\n  {language}: {log:?}",
                group.plugin
            );
        }
        for ((case, ours), rust) in group.cases.iter().zip(lines).zip(reference) {
            if ours != rust {
                let _ = write!(
                    problems,
                    "\n{} `{}`: {language} differs from Rust\n  Rust:   {rust}\n  {language}: {ours}",
                    group.plugin, case.what
                );
            }
        }
    }
    for (case, line) in group.cases.iter().zip(reference) {
        let backend = case
            .backend
            .or((case.method == "tools/list").then_some(group.tools));
        if let Err(why) = check(case, backend, line) {
            let _ = write!(
                problems,
                "\n{} `{}`: {why}\n  answer: {line}",
                group.plugin, case.what
            );
        }
    }
    assert!(problems.is_empty(), "{problems}");
}

/// The lines the plugin logged itself (the `log` host call), without timestamps:
/// tagged with the plugin's name and nothing else, unlike the host's own lines about
/// it (loading, statistics) or the guest's stdout and stderr.
fn plugin_log(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| {
            line.split_once(" interpose::plugin: ")
                .map(|(_, rest)| rest)
        })
        .filter(|rest| {
            rest.rsplit_once(" plugin=\"")
                .is_some_and(|(_, name)| !name.contains(' '))
        })
        .map(str::to_owned)
        .collect()
}

/// The backend's catalog for `group`.
fn catalog_of(group: &Group) -> Value {
    let mut catalog = json!({"tools": group.tools, "results": {}, "resources": {}, "prompts": {}});
    for case in &group.cases {
        let Some(answer) = case.backend else { continue };
        let params: Value = serde_json::from_str(case.params).expect("case params are JSON");
        let (section, key) = match case.method {
            "tools/call" => ("results", &params["name"]),
            "resources/read" => ("resources", &params["uri"]),
            "prompts/get" => ("prompts", &params["name"]),
            other => panic!("no backend answer for {other}"),
        };
        let key = key.as_str().expect("a name or uri");
        catalog[section][key] = answer.into();
    }
    catalog
}

/// Whether `line`, the answer to `case`, is what the case pins.
fn check(case: &Case, backend: Option<&str>, line: &str) -> Result<(), String> {
    let answer: Answer = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let result = || -> Result<Value, String> {
        let raw = answer.result.ok_or("expected a result")?;
        serde_json::from_str(raw.get()).map_err(|e| e.to_string())
    };
    match &case.expect {
        Expect::Agreement => Ok(()),
        Expect::Untouched => {
            let raw = answer.result.ok_or("expected a result")?;
            let backend = backend.expect("an untouched case has a backend answer");
            if raw.get() == backend {
                Ok(())
            } else {
                Err(format!("expected the backend's bytes: {backend}"))
            }
        }
        Expect::Result(want) => {
            let got = result()?;
            if &got == want {
                Ok(())
            } else {
                Err(format!("expected the result {want}"))
            }
        }
        Expect::Error(want) => match &answer.error {
            Some(got) if got == want => Ok(()),
            _ => Err(format!("expected the error {want}")),
        },
        Expect::Received(want) => {
            let received: Value =
                serde_json::from_str(&received_text(&result()?)?).map_err(|e| e.to_string())?;
            if &received == want {
                Ok(())
            } else {
                Err(format!("expected the backend to receive {want}"))
            }
        }
        Expect::Forwarded => {
            if received_text(&result()?)? == case.params {
                Ok(())
            } else {
                Err(format!("expected the backend to receive {}", case.params))
            }
        }
    }
}

/// What the backend says it received, from its default `tools/call` answer.
fn received_text(result: &Value) -> Result<String, String> {
    result["content"][0]["text"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "expected the backend's text".to_owned())
}

fn case(what: &'static str, method: &'static str, params: &'static str) -> Case {
    Case {
        what,
        method,
        params,
        backend: None,
        expect: Expect::Agreement,
    }
}

impl Case {
    fn backend(mut self, answer: &'static str) -> Self {
        self.backend = Some(answer);
        self
    }

    fn expect(mut self, expect: Expect) -> Self {
        self.expect = expect;
        self
    }
}

/// The backend's tools for the `redact` groups: an e-mail address in a description
/// must survive (`tools/list` is not redacted).
const REDACT_TOOLS: &str = r#"{"tools":[{"name":"leak","description":"Mails alice@example.com","inputSchema":{"type":"object"}}]}"#;

#[test]
fn redact_default_rules_agree_across_languages() {
    run(Group {
        plugin: "redact",
        config: "",
        tools: REDACT_TOOLS,
        cases: vec![
            case("every built-in rule in a tool result's text", "tools/call", r#"{"name":"all_rules","arguments":{}}"#)
                .backend(r#"{"content":[{"type":"text","text":"aws AKIAIOSFODNN7EXAMPLE, mail alice@example.com, auth Bearer eyJhbGciOiJIUzI1NiJ9.abcdefghijklmnop, key sk-proj-abcdefghijklmnopqrstuvwx, gh ghp_0123456789abcdefghijABCDEFGHIJ012345, card 4111 1111 1111 1111\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\nend"}],"isError":false}"#)
                .expect(Expect::Result(json!({"content": [{"type": "text", "text": "aws [REDACTED:aws-access-key], mail [REDACTED:email], auth [REDACTED:bearer-token], key [REDACTED:api-key], gh [REDACTED:api-key], card [REDACTED:card-number]\n[REDACTED:private-key]\nend"}], "isError": false}))),
            case("embedded resource text and structuredContent values; keys, uris, data and _meta kept", "tools/call", r#"{"name":"structured","arguments":{}}"#)
                .backend(r#"{"content":[{"type":"resource","resource":{"uri":"file:///alice@example.com.txt","mimeType":"text/plain","text":"owner alice@example.com"}},{"type":"image","data":"AKIAIOSFODNN7EXAMPLE","mimeType":"image/png"}],"structuredContent":{"alice@example.com":"contact bob@example.org","nested":[{"key":"AKIAIOSFODNN7EXAMPLE"},42,true,null]},"_meta":{"note":"carol@example.net"}}"#)
                .expect(Expect::Result(json!({
                    "content": [
                        {"type": "resource", "resource": {"uri": "file:///alice@example.com.txt", "mimeType": "text/plain", "text": "owner [REDACTED:email]"}},
                        {"type": "image", "data": "AKIAIOSFODNN7EXAMPLE", "mimeType": "image/png"}
                    ],
                    "structuredContent": {"alice@example.com": "contact [REDACTED:email]", "nested": [{"key": "[REDACTED:aws-access-key]"}, 42, true, null]},
                    "_meta": {"note": "carol@example.net"}
                }))),
            case("resource contents: text redacted, uri and blob kept", "resources/read", r#"{"uri":"test://config/alice@example.com"}"#)
                .backend(r#"{"contents":[{"uri":"test://config/alice@example.com","mimeType":"text/plain","text":"AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nADMIN=alice@example.com"},{"uri":"test://config/blob","blob":"QUtJQUlPU0ZPRE5ON0VYQU1QTEU="}]}"#)
                .expect(Expect::Result(json!({"contents": [
                    {"uri": "test://config/alice@example.com", "mimeType": "text/plain", "text": "AWS_ACCESS_KEY_ID=[REDACTED:aws-access-key]\nADMIN=[REDACTED:email]"},
                    {"uri": "test://config/blob", "blob": "QUtJQUlPU0ZPRE5ON0VYQU1QTEU="}
                ]}))),
            case("prompt messages: text and embedded resource text; description kept", "prompts/get", r#"{"name":"review","arguments":{"who":"alice@example.com"}}"#)
                .backend(r#"{"description":"Review for alice@example.com","messages":[{"role":"user","content":{"type":"text","text":"Please review the key sk-proj-abcdefghijklmnopqrstuvwx"}},{"role":"assistant","content":{"type":"resource","resource":{"uri":"test://r","text":"card 4111-1111-1111-1111"}}}]}"#)
                .expect(Expect::Result(json!({"description": "Review for alice@example.com", "messages": [
                    {"role": "user", "content": {"type": "text", "text": "Please review the key [REDACTED:api-key]"}},
                    {"role": "assistant", "content": {"type": "resource", "resource": {"uri": "test://r", "text": "card [REDACTED:card-number]"}}}
                ]}))),
            case("a clean tool result passes byte for byte, spacing and escapes included", "tools/call", r#"{"name":"clean","arguments":{}}"#)
                .backend(r#"{ "content" : [ {"type": "text", "text": "build 1700000000000 at 2024-01-15 12:30:45.123456789; not a card: 4111 1111 1111 1112; see docs\/README \u00e9" } ],  "isError": false }"#)
                .expect(Expect::Untouched),
            case("a clean resource passes byte for byte", "resources/read", r#"{"uri":"test://clean"}"#)
                .backend(r#"{"contents":[{"uri":"test://clean","mimeType":"text/plain","text":"nothing to see: user at example dot com"}]}"#)
                .expect(Expect::Untouched),
            case("a clean prompt passes byte for byte", "prompts/get", r#"{"name":"clean"}"#)
                .backend(r#"{"messages":[{"role":"user","content":{"type":"text","text":"Summarize the release notes."}}]}"#)
                .expect(Expect::Untouched),
            case("escaped text is decoded before matching", "tools/call", r#"{"name":"escaped","arguments":{}}"#)
                .backend(r#"{"content": [{"type": "text", "text": "key \u0041KIAIOSFODNN7EXAMPLE for caf\u00e9 owner alice\u0040example.com \"quoted\" \ud83d\ude00"}]}"#)
                .expect(Expect::Result(json!({"content": [{"type": "text", "text": "key [REDACTED:aws-access-key] for café owner [REDACTED:email] \"quoted\" 😀"}]}))),
            case("other methods are not redacted", "tools/list", "{}").expect(Expect::Untouched),
            case("a result that does not decode is withheld", "tools/call", r#"{"name":"undecodable","arguments":{}}"#)
                .backend(r#"{"content":[{"type":"text","text":"AKIAIOSFODNN7EXAMPLE \ud800"}]}"#)
                .expect(Expect::Error(json!({"code": -32603, "message": "redact: the tools/call result was withheld: a string at byte 34 does not decode"}))),
        ],
    });
}

#[test]
fn redact_custom_rules_agree_across_languages() {
    run(Group {
        plugin: "redact",
        config: r#"
defaults = ["private-key", "aws-access-key", "api-key"]
rules = [
  { name = "employee-id", pattern = "EMP-[0-9]{6}" },
  { name = "password", pattern = '(?i)(password\s*[:=]\s*)\S+', replacement = "${1}********" },
  { name = "ticket", pattern = 'TICKET-(\d+)', replacement = "TICKET-#$1" },
]
"#,
        tools: REDACT_TOOLS,
        cases: vec![
            case("custom rules first, then only the chosen built-ins", "tools/call", r#"{"name":"mixed","arguments":{}}"#)
                .backend(r#"{"content":[{"type":"text","text":"EMP-123456 Password: hunter2 TICKET-42 mail alice@example.com key AKIAIOSFODNN7EXAMPLE card 4111 1111 1111 1111"}]}"#)
                .expect(Expect::Result(json!({"content": [{"type": "text", "text": "[REDACTED:employee-id] Password: ******** TICKET-#42 mail alice@example.com key [REDACTED:aws-access-key] card 4111 1111 1111 1111"}]}))),
            case("custom rules in resource contents, across lines", "resources/read", r#"{"uri":"test://env"}"#)
                .backend(r#"{"contents":[{"uri":"test://env","text":"user=EMP-000042\npassword=abc$1\nPASSWORD : x\nEMP-12345 is too short"}]}"#)
                .expect(Expect::Result(json!({"contents": [{"uri": "test://env", "text": "user=[REDACTED:employee-id]\npassword=********\nPASSWORD : ********\nEMP-12345 is too short"}]}))),
            case("custom rules in prompt messages", "prompts/get", r#"{"name":"ticket"}"#)
                .backend(r#"{"messages":[{"role":"user","content":{"type":"text","text":"Close TICKET-7 and TICKET-1234 for EMP-654321"}}]}"#)
                .expect(Expect::Result(json!({"messages": [{"role": "user", "content": {"type": "text", "text": "Close TICKET-#7 and TICKET-#1234 for [REDACTED:employee-id]"}}]}))),
            case("what the chosen rules do not cover passes byte for byte", "tools/call", r#"{"name":"uncovered","arguments":{}}"#)
                .backend(r#"{"content":[{"type":"text","text":"mail alice@example.com, card 4111 1111 1111 1111"}]}"#)
                .expect(Expect::Untouched),
        ],
    });
}

/// The backend's tools for the `tool-policy` groups.
const POLICY_TOOLS: &str = r#"{"tools":[{"name":"repo_list","description":"List repositories","inputSchema":{"type":"object","properties":{"org":{"type":"string"},"page":{"type":"integer"},"debug":{"type":"boolean"}},"required":["org"]}},{"name":"repo_delete","description":"Delete a repository","inputSchema":{"type":"object","properties":{"org":{"type":"string"},"name":{"type":"string"}},"required":["org","name"]}},{"name":"debug_dump","description":"Dump state","inputSchema":{"type":"object"}},{"name":"brave_web_search","title":"Web search","description":"Search the web","inputSchema":{"type":"object","properties":{"q":{"type":"string"},"safe_search":{"type":"string","enum":["off","strict"]},"debug":{"type":"boolean"}},"required":["q","safe_search"]},"annotations":{"readOnlyHint":true}},{"name":"search","description":"The backend's own search","inputSchema":{"type":"object"}},{"name":"echo","description":"Echo","inputSchema":{"type":"object","properties":{"text":{"type":"string"}}},"_meta":{"x":1}},{"name":"shell","description":"Run a command","inputSchema":{"type":"object"}}],"nextCursor":"page-2"}"#;

#[test]
fn tool_policy_agrees_across_languages() {
    run(Group {
        plugin: "tool-policy",
        config: r#"
allow = ["repo_*", "search", "echo"]
deny = ["repo_delete*"]
hide = ["debug_*"]
rename = { search = "brave_web_search" }
pin_arguments = { search = { safe_search = "strict" }, "repo_*" = { org = "acme" } }
strip_arguments = { "*" = ["debug"] }
"#,
        tools: POLICY_TOOLS,
        cases: vec![
            case("tools/list: denied, hidden, not allowed and shadowed tools go; renamed, pinned and stripped in schemas", "tools/list", "{}")
                .expect(Expect::Result(json!({"tools": [
                    {"name": "repo_list", "description": "List repositories", "inputSchema": {"type": "object", "properties": {"page": {"type": "integer"}}, "required": []}},
                    {"name": "search", "title": "Web search", "description": "Search the web", "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}, "annotations": {"readOnlyHint": true}},
                    {"name": "echo", "description": "Echo", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}, "_meta": {"x": 1}}
                ], "nextCursor": "page-2"}))),
            case("pinned argument overrides the client's, stripped one goes", "tools/call", r#"{"name":"repo_list","arguments":{"page":2,"org":"evil","debug":true}}"#)
                .expect(Expect::Received(json!({"name": "repo_list", "arguments": {"org": "acme", "page": 2}}))),
            case("a renamed tool is called by its backend name, with its pins", "tools/call", r#"{"name":"search","arguments":{"safe_search":"off","q":"rust wasm","debug":1}}"#)
                .expect(Expect::Received(json!({"name": "brave_web_search", "arguments": {"q": "rust wasm", "safe_search": "strict"}}))),
            case("a duplicate argument cannot smuggle a second value past a pin", "tools/call", r#"{"name":"search","arguments":{"q":"a","safe_search":"strict","safe_search":"off"}}"#)
                .expect(Expect::Received(json!({"name": "brave_web_search", "arguments": {"q": "a", "safe_search": "strict"}}))),
            case("the backend name of a renamed tool is unknown", "tools/call", r#"{"name":"brave_web_search","arguments":{"q":"x"}}"#)
                .expect(Expect::Error(json!({"code": -32602, "message": "Unknown tool: brave_web_search"}))),
            case("a denied tool gets the reject error", "tools/call", r#"{"name":"repo_delete","arguments":{"org":"acme","name":"x"}}"#)
                .expect(Expect::Error(json!({"code": -32001, "message": "tool `repo_delete` is denied by tool-policy: it matches deny pattern `repo_delete*`", "data": {"plugin": "tool-policy", "tool": "repo_delete"}}))),
            case("a tool matching no allow pattern gets the reject error", "tools/call", r#"{"name":"shell","arguments":{"cmd":"rm -rf /"}}"#)
                .expect(Expect::Error(json!({"code": -32001, "message": "tool `shell` is denied by tool-policy: it matches no allow pattern", "data": {"plugin": "tool-policy", "tool": "shell"}}))),
            case("a hidden tool is unknown", "tools/call", r#"{"name":"debug_dump","arguments":{}}"#)
                .expect(Expect::Error(json!({"code": -32602, "message": "Unknown tool: debug_dump"}))),
            case("an allowed call keeps its other fields", "tools/call", r#"{ "name": "echo", "arguments": { "text": "hi" } , "_meta": {"progressToken": 7} }"#)
                .expect(Expect::Received(json!({"name": "echo", "arguments": {"text": "hi"}, "_meta": {"progressToken": 7}}))),
            case("params without a name are refused", "tools/call", r#"{"arguments":{}}"#),
            case("params with two names are refused", "tools/call", r#"{"name":"echo","name":"shell","arguments":{}}"#),
            case("other methods pass", "resources/read", r#"{"uri":"test://plain"}"#)
                .backend(r#"{"contents":[{"uri":"test://plain","text":"call shell and debug_dump"}]}"#)
                .expect(Expect::Untouched),
        ],
    });
}

#[test]
fn tool_policy_showing_denied_tools_agrees_across_languages() {
    run(Group {
        plugin: "tool-policy",
        config: "deny = [\"repo_delete*\", \"shell\"]\nhide_denied = false\n",
        tools: POLICY_TOOLS,
        cases: vec![
            case("denied tools stay listed", "tools/list", "{}").expect(Expect::Untouched),
            case("a denied tool is still refused", "tools/call", r#"{"name":"shell","arguments":{}}"#)
                .expect(Expect::Error(json!({"code": -32001, "message": "tool `shell` is denied by tool-policy: it matches deny pattern `shell`", "data": {"plugin": "tool-policy", "tool": "shell"}}))),
            case("a call the policy does not touch is forwarded as sent", "tools/call", r#"{"name": "repo_list", "arguments": {"org": "x", "debug": true}}"#)
                .expect(Expect::Forwarded),
        ],
    });
}

/// Over stdio a session has no principal: `require` rules deny what they cover, alike
/// in every language (with a principal: `tests/e2e/test_policy_principal.py`).
#[test]
fn tool_policy_require_rules_without_a_principal_agree_across_languages() {
    run(Group {
        plugin: "tool-policy",
        config: r#"require = [{ tools = ["repo_*"], scopes = ["admin"] }, { tools = ["shell"], subjects = ["alice"] }]"#,
        tools: POLICY_TOOLS,
        cases: vec![
            case("tools/list: what a rule covers goes", "tools/list", "{}")
                .expect(Expect::Result(json!({"tools": [
                    {"name": "debug_dump", "description": "Dump state", "inputSchema": {"type": "object"}},
                    {"name": "brave_web_search", "title": "Web search", "description": "Search the web", "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}, "safe_search": {"type": "string", "enum": ["off", "strict"]}, "debug": {"type": "boolean"}}, "required": ["q", "safe_search"]}, "annotations": {"readOnlyHint": true}},
                    {"name": "search", "description": "The backend's own search", "inputSchema": {"type": "object"}},
                    {"name": "echo", "description": "Echo", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}, "_meta": {"x": 1}}
                ], "nextCursor": "page-2"}))),
            case("a scope rule refuses a session without a principal", "tools/call", r#"{"name":"repo_delete","arguments":{}}"#)
                .expect(Expect::Error(json!({"code": -32001, "message": "tool `repo_delete` is denied by tool-policy: it requires an authenticated principal", "data": {"plugin": "tool-policy", "required": {"scopes": ["admin"]}, "tool": "repo_delete"}}))),
            case("a subject rule too", "tools/call", r#"{"name":"shell","arguments":{}}"#)
                .expect(Expect::Error(json!({"code": -32001, "message": "tool `shell` is denied by tool-policy: it requires an authenticated principal", "data": {"plugin": "tool-policy", "required": {"subjects": ["alice"]}, "tool": "shell"}}))),
            case("a tool no rule covers is forwarded as sent", "tools/call", r#"{"name": "echo", "arguments": {"text": "hi"}}"#)
                .expect(Expect::Forwarded),
        ],
    });
}

#[test]
fn tool_policy_without_configuration_changes_nothing() {
    run(Group {
        plugin: "tool-policy",
        config: "",
        tools: POLICY_TOOLS,
        cases: vec![
            case("tools/list", "tools/list", "{}").expect(Expect::Untouched),
            case(
                "any call",
                "tools/call",
                r#"{"name": "shell", "arguments": {"cmd": "ls", "debug": true}}"#,
            )
            .expect(Expect::Forwarded),
        ],
    });
}

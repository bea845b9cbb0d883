//! interpose plugin: decides which tools a client may see and call, under which
//! names, and with which arguments. See the README for the configuration.

mod policy;

use interpose_plugin::mcp::{ToolCallParams, ToolsListResult};
use interpose_plugin::{
    Direction, Kind, Manifest, Message, Plugin, RpcError, Verdict, export_plugin, manifest,
    parse_config,
};
use serde_json::json;

use crate::policy::{Access, Config, Denial, Policy};

/// The JSON-RPC error code of a call the policy denies.
pub const DENIED: i64 = -32001;

/// The tool-policy plugin.
pub struct ToolPolicy {
    policy: Policy,
}

impl Plugin for ToolPolicy {
    fn init(config: &str) -> Result<(Self, Manifest), String> {
        let config: Config = parse_config(config)?;
        let policy = Policy::new(config)?;
        // Checks calls on their way to the server and rewrites lists on their way
        // back; never called for call results or list requests.
        let manifest = manifest!()
            .wants([Kind::Request], ["tools/call"])
            .wants([Kind::Response], ["tools/list"]);
        Ok((ToolPolicy { policy }, manifest))
    }

    fn intercept(&self, msg: &Message) -> Verdict {
        if self.policy.is_noop() {
            return Verdict::Pass;
        }
        match (msg.direction(), msg.kind(), msg.method()) {
            (Direction::ToServer, Kind::Request, "tools/call") => self.call(msg),
            (Direction::ToClient, Kind::Response, "tools/list") => self.list(msg),
            _ => Verdict::Pass,
        }
    }
}

impl ToolPolicy {
    fn call(&self, msg: &Message) -> Verdict {
        // The host names the tool (no name for params with a duplicate or missing
        // `name`, which the strict parse below rejects). A tool the policy allows
        // and neither renames nor edits passes without its params being copied
        // into the plugin or parsed; checking the arguments is the backend's job.
        if let Some(exposed) = msg.subject()
            && self.passes_untouched(exposed, msg)
        {
            return Verdict::Pass;
        }
        // Strict parsing: a duplicate `name` is an error here rather than a
        // guess at which one the backend would read.
        let mut params: ToolCallParams = match msg.payload_as() {
            Ok(params) => params,
            Err(err) => {
                return Verdict::reject(
                    RpcError::INVALID_PARAMS,
                    format!("invalid tools/call params: {err}"),
                );
            }
        };
        let exposed = params.name.clone();
        let Some(backend) = self.policy.backend_name(&exposed) else {
            return unknown_tool(&exposed);
        };
        match self.policy.access(&exposed, backend, || msg.principal()) {
            Access::Allowed => {}
            Access::Hidden => return unknown_tool(&exposed),
            Access::Denied(Denial { why, required }) => {
                let mut data = json!({ "tool": exposed, "plugin": "tool-policy" });
                if let Some(required) = required {
                    data["required"] = required;
                }
                return Verdict::reject_with_data(
                    DENIED,
                    format!("tool `{exposed}` is denied by tool-policy: it {why}"),
                    &data,
                );
            }
        }

        let stripped: Vec<&String> = self.policy.stripped(&exposed, backend).collect();
        let pinned: Vec<_> = self.policy.pinned(&exposed, backend).collect();
        // Arguments the policy touches are always re-serialized, even when
        // unchanged, so a duplicate key cannot smuggle a second value past it.
        let mut rewrite = backend != exposed || !stripped.is_empty() || !pinned.is_empty();
        if !stripped.is_empty() || !pinned.is_empty() {
            let arguments = params.arguments_mut();
            for name in stripped {
                arguments.remove(name);
            }
            for (name, value) in pinned {
                arguments.insert(name.clone(), value.clone());
            }
        }
        if backend != exposed {
            params.name = backend.to_owned();
            rewrite = true;
        }
        if rewrite {
            Verdict::rewrite_json(&params)
        } else {
            Verdict::Pass
        }
    }

    fn list(&self, msg: &Message) -> Verdict {
        let mut list: ToolsListResult = match msg.payload_as() {
            Ok(list) => list,
            // Fail closed: a list we cannot read could show hidden tools.
            Err(err) => {
                return Verdict::reject(
                    RpcError::INTERNAL_ERROR,
                    format!("tool-policy could not read the tools/list result: {err}"),
                );
            }
        };
        let mut changed = false;
        list.tools.retain_mut(|tool| {
            let backend = tool.name.clone();
            let Some(exposed) = self.policy.exposed_name(&backend) else {
                changed = true;
                return false;
            };
            let access = self.policy.access(exposed, &backend, || msg.principal());
            if !self.policy.listed(&access) {
                changed = true;
                return false;
            }
            let mut removed = false;
            for name in self.policy.stripped(exposed, &backend) {
                removed |= tool.remove_argument(name);
            }
            for (name, _) in self.policy.pinned(exposed, &backend) {
                removed |= tool.remove_argument(name);
            }
            if exposed != backend {
                tool.name = exposed.to_owned();
                removed = true;
            }
            changed |= removed;
            true
        });
        if changed {
            Verdict::rewrite_json(&list)
        } else {
            Verdict::Pass
        }
    }

    /// Whether a call to `exposed` passes as it is: allowed, not renamed, no
    /// arguments pinned or stripped.
    fn passes_untouched(&self, exposed: &str, msg: &Message) -> bool {
        self.policy.backend_name(exposed) == Some(exposed)
            && matches!(
                self.policy.access(exposed, exposed, || msg.principal()),
                Access::Allowed
            )
            && self.policy.stripped(exposed, exposed).next().is_none()
            && self.policy.pinned(exposed, exposed).next().is_none()
    }
}

fn unknown_tool(name: &str) -> Verdict {
    Verdict::reject(RpcError::INVALID_PARAMS, format!("Unknown tool: {name}"))
}

export_plugin!(ToolPolicy);

#[cfg(test)]
mod tests {
    use interpose_plugin::{Interest, Principal};
    use serde_json::{Value, json};

    use super::*;

    fn plugin(config: Value) -> ToolPolicy {
        ToolPolicy::init(&config.to_string()).unwrap().0
    }

    fn call(plugin: &ToolPolicy, params: Value) -> Verdict {
        plugin.intercept(&Message::request("tools/call", params.to_string()))
    }

    fn list(plugin: &ToolPolicy, tools: &[Value]) -> Verdict {
        plugin.intercept(&Message::response(
            "tools/list",
            json!({ "tools": tools }).to_string(),
        ))
    }

    fn tool(name: &str) -> Value {
        json!({"name": name, "inputSchema": {"type": "object"}})
    }

    fn listed_names(verdict: &Verdict) -> Vec<String> {
        let list = verdict.json().expect("a rewrite");
        list["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }

    fn rejection(verdict: Verdict) -> RpcError {
        match verdict {
            Verdict::Reject(err) => err,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn manifest_asks_for_tool_calls_and_lists() {
        let (_, manifest) = ToolPolicy::init("{}").unwrap();
        assert_eq!(manifest.name, "tool-policy");
        assert_eq!(
            manifest.interests,
            [
                Interest::new([Kind::Request], ["tools/call"]),
                Interest::new([Kind::Response], ["tools/list"])
            ]
        );
    }

    #[test]
    fn empty_policy_passes_everything() {
        let policy = plugin(json!({}));
        assert_eq!(call(&policy, json!({"name": "anything"})), Verdict::Pass);
        assert_eq!(list(&policy, &[tool("a")]), Verdict::Pass);
    }

    #[test]
    fn deny_wins_over_allow_and_names_the_rule() {
        let policy = plugin(json!({"allow": ["repo_*"], "deny": ["repo_delete*"]}));
        assert_eq!(
            call(&policy, json!({"name": "repo_list", "arguments": {}})),
            Verdict::Pass
        );

        let err = rejection(call(
            &policy,
            json!({"name": "repo_delete", "arguments": {}}),
        ));
        assert_eq!(err.code, DENIED);
        assert_eq!(
            err.message,
            "tool `repo_delete` is denied by tool-policy: it matches deny pattern `repo_delete*`"
        );
        assert_eq!(
            err.data.as_deref(),
            Some(r#"{"plugin":"tool-policy","tool":"repo_delete"}"#)
        );

        let err = rejection(call(&policy, json!({"name": "shell"})));
        assert_eq!(
            err.message,
            "tool `shell` is denied by tool-policy: it matches no allow pattern"
        );
    }

    #[test]
    fn denied_tools_are_hidden_from_the_list_unless_configured() {
        let tools = [tool("repo_list"), tool("repo_delete"), tool("shell")];
        let policy = plugin(json!({"allow": ["repo_*"], "deny": ["*delete*"]}));
        assert_eq!(listed_names(&list(&policy, &tools)), ["repo_list"]);

        let policy = plugin(json!({"deny": ["*delete*"], "hide_denied": false}));
        assert_eq!(list(&policy, &tools), Verdict::Pass);
        assert_eq!(
            rejection(call(&policy, json!({"name": "repo_delete"}))).code,
            DENIED
        );
    }

    #[test]
    fn hidden_tools_vanish_and_calls_to_them_are_unknown() {
        let policy = plugin(json!({"hide": ["debug_*"], "hide_denied": false}));
        assert_eq!(
            listed_names(&list(&policy, &[tool("debug_dump"), tool("echo")])),
            ["echo"]
        );
        let err = rejection(call(&policy, json!({"name": "debug_dump"})));
        assert_eq!(
            (err.code, err.message.as_str()),
            (-32602, "Unknown tool: debug_dump")
        );
    }

    #[test]
    fn rename_shows_the_new_name_and_calls_the_backend_name() {
        let policy = plugin(json!({"rename": {"search": "brave_web_search"}}));
        let verdict = list(
            &policy,
            &[tool("brave_web_search"), tool("search"), tool("echo")],
        );
        assert_eq!(
            listed_names(&verdict),
            ["search", "echo"],
            "the backend's own `search` is shadowed"
        );

        let verdict = call(
            &policy,
            json!({"name": "search", "arguments": {"q": "x"}, "_meta": {"progressToken": 7}}),
        );
        assert_eq!(
            verdict.json().unwrap(),
            json!({"name": "brave_web_search", "arguments": {"q": "x"}, "_meta": {"progressToken": 7}})
        );
        let err = rejection(call(&policy, json!({"name": "brave_web_search"})));
        assert_eq!(
            err.message, "Unknown tool: brave_web_search",
            "backend names of renamed tools are not exposed"
        );
    }

    #[test]
    fn policies_match_exposed_or_backend_names() {
        let policy = plugin(json!({"rename": {"search": "web_search"}, "deny": ["web_*"]}));
        assert_eq!(
            rejection(call(&policy, json!({"name": "search"}))).code,
            DENIED
        );
        assert_eq!(
            list(&policy, &[tool("web_search")]).json().unwrap(),
            json!({"tools": []})
        );
    }

    #[test]
    fn an_allowed_untouched_tool_passes_on_its_name_alone() {
        let policy = plugin(json!({"deny": ["rm"], "rename": {"search": "web_search"}}));
        // Arguments are the backend's to check: the name decides.
        assert_eq!(
            call(&policy, json!({"name": "ls", "arguments": 5})),
            Verdict::Pass
        );
        // Any other tool gets the strict parse first: denied, renamed alike.
        for name in ["rm", "search"] {
            let err = rejection(call(&policy, json!({"name": name, "arguments": 5})));
            assert!(
                err.message.starts_with("invalid tools/call params"),
                "{}",
                err.message
            );
        }
        let err = rejection(call(&policy, json!({"name": "rm"})));
        assert!(err.message.contains("denied"), "{}", err.message);
    }

    #[test]
    fn pinned_arguments_override_and_stripped_ones_go() {
        let policy = plugin(json!({
            "pin_arguments": {"search": {"safe": true, "limit": 10}},
            "strip_arguments": {"*": ["debug"]}
        }));
        let verdict = call(
            &policy,
            json!({"name": "search", "arguments": {"q": "x", "safe": false, "debug": 1}}),
        );
        assert_eq!(
            verdict.json().unwrap(),
            json!({"name": "search", "arguments": {"q": "x", "safe": true, "limit": 10}})
        );
        let verdict = call(&policy, json!({"name": "other"}));
        assert_eq!(
            verdict.json().unwrap(),
            json!({"name": "other", "arguments": {}})
        );
    }

    #[test]
    fn duplicate_argument_keys_are_collapsed_when_the_policy_touches_arguments() {
        let policy = plugin(json!({"pin_arguments": {"read": {"path": "/safe"}}}));
        let raw = r#"{"name":"read","arguments":{"path":"/etc/passwd","path":"/safe"}}"#;
        let verdict = policy.intercept(&Message::request("tools/call", raw));
        assert_eq!(
            verdict,
            Verdict::Rewrite(r#"{"name":"read","arguments":{"path":"/safe"}}"#.into())
        );
    }

    #[test]
    fn duplicate_or_missing_name_is_invalid_params() {
        let policy = plugin(json!({"deny": ["rm"]}));
        let raw = r#"{"name":"ls","name":"rm"}"#;
        let err = rejection(policy.intercept(&Message::request("tools/call", raw)));
        assert_eq!(err.code, -32602);
        assert!(
            err.message
                .starts_with("invalid tools/call params: duplicate field `name`"),
            "{}",
            err.message
        );
        let err = rejection(call(&policy, json!({"arguments": {}})));
        assert!(
            err.message
                .starts_with("invalid tools/call params: missing field `name`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn list_schema_loses_pinned_and_stripped_arguments_and_keeps_the_rest() {
        let policy = plugin(
            json!({"pin_arguments": {"search": {"safe": true}}, "strip_arguments": {"search": ["debug"]}}),
        );
        let search = json!({
            "name": "search",
            "title": "Search",
            "inputSchema": {
                "type": "object",
                "properties": {"q": {"type": "string"}, "safe": {"type": "boolean"}, "debug": {"type": "integer"}},
                "required": ["q", "safe"]
            },
            "annotations": {"readOnlyHint": true}
        });
        let verdict = plugin_list_with_cursor(&policy, search);
        assert_eq!(
            verdict.json().unwrap(),
            json!({"tools": [{
                "name": "search",
                "title": "Search",
                "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
                "annotations": {"readOnlyHint": true}
            }], "nextCursor": "2"})
        );
    }

    fn plugin_list_with_cursor(policy: &ToolPolicy, tool: Value) -> Verdict {
        let result = json!({"tools": [tool], "nextCursor": "2"});
        policy.intercept(&Message::response("tools/list", result.to_string()))
    }

    #[test]
    fn unreadable_list_fails_closed_and_other_messages_pass() {
        let policy = plugin(json!({"hide": ["x"]}));
        let err = rejection(policy.intercept(&Message::response("tools/list", r#"{"tools": 5}"#)));
        assert_eq!(err.code, RpcError::INTERNAL_ERROR);
        assert_eq!(
            policy.intercept(&Message::request("tools/list", "{}")),
            Verdict::Pass
        );
        assert_eq!(
            policy.intercept(&Message::response("tools/call", r#"{"content": []}"#)),
            Verdict::Pass
        );
    }

    fn as_user(message: Message<'static>, subject: &str, scopes: &[&str]) -> Message<'static> {
        let claims = json!({"sub": subject, "secret_claim": "never shown"}).to_string();
        message.with_principal(
            Principal::new("https://idp.test", subject)
                .with_scopes(scopes.iter().copied())
                .with_claims(claims),
        )
    }

    fn call_as(plugin: &ToolPolicy, name: &str, subject: &str, scopes: &[&str]) -> Verdict {
        let params = json!({"name": name, "arguments": {}}).to_string();
        plugin.intercept(&as_user(
            Message::request("tools/call", params),
            subject,
            scopes,
        ))
    }

    #[test]
    fn a_scope_rule_allows_only_principals_with_every_scope() {
        let policy = plugin(json!({"require": [
            {"tools": ["delete_*"], "scopes": ["admin", "write"]}
        ]}));
        assert_eq!(
            call_as(&policy, "delete_repo", "alice", &["write", "admin"]),
            Verdict::Pass
        );
        assert_eq!(
            call_as(&policy, "list_repos", "bob", &[]),
            Verdict::Pass,
            "no rule covers it"
        );
        let err = rejection(call_as(&policy, "delete_repo", "bob", &["write"]));
        assert_eq!(err.code, DENIED);
        assert_eq!(
            err.message,
            "tool `delete_repo` is denied by tool-policy: it requires scope `admin`"
        );
        assert_eq!(
            err.data.as_deref(),
            Some(
                r#"{"plugin":"tool-policy","required":{"scopes":["admin"]},"tool":"delete_repo"}"#
            )
        );
        let err = rejection(call_as(&policy, "delete_repo", "bob", &[]));
        assert_eq!(
            err.message,
            "tool `delete_repo` is denied by tool-policy: it requires scopes `admin`, `write`"
        );
        assert!(!err.data.unwrap_or_default().contains("never shown"));
    }

    #[test]
    fn a_subject_rule_allows_only_those_subjects_and_every_matching_rule_must_hold() {
        let policy = plugin(json!({"require": [
            {"tools": ["deploy"], "subjects": ["alice", "carol"]},
            {"tools": ["*"], "scopes": ["mcp:tools"]}
        ]}));
        assert_eq!(
            call_as(&policy, "deploy", "alice", &["mcp:tools"]),
            Verdict::Pass
        );
        let err = rejection(call_as(&policy, "deploy", "bob", &["mcp:tools"]));
        assert_eq!(
            err.message,
            "tool `deploy` is denied by tool-policy: it is reserved for subjects `alice`, `carol`"
        );
        assert_eq!(
            err.data.as_deref(),
            Some(
                r#"{"plugin":"tool-policy","required":{"subjects":["alice","carol"]},"tool":"deploy"}"#
            )
        );
        let err = rejection(call_as(&policy, "deploy", "alice", &[]));
        assert_eq!(
            err.message,
            "tool `deploy` is denied by tool-policy: it requires scope `mcp:tools`"
        );
    }

    #[test]
    fn a_session_without_a_principal_is_denied_by_require_rules() {
        let policy = plugin(json!({"require": [{"tools": ["delete_*"], "scopes": ["admin"]}]}));
        let err = rejection(call(&policy, json!({"name": "delete_repo"})));
        assert_eq!(
            err.message,
            "tool `delete_repo` is denied by tool-policy: it requires an authenticated principal"
        );
        assert_eq!(
            err.data.as_deref(),
            Some(
                r#"{"plugin":"tool-policy","required":{"scopes":["admin"]},"tool":"delete_repo"}"#
            )
        );
        assert_eq!(call(&policy, json!({"name": "echo"})), Verdict::Pass);
        let anyone = plugin(json!({"require": [{"tools": ["*"]}]}));
        assert_eq!(call_as(&anyone, "echo", "bob", &[]), Verdict::Pass);
        assert_eq!(
            rejection(call(&anyone, json!({"name": "echo"}))).message,
            "tool `echo` is denied by tool-policy: it requires an authenticated principal"
        );
    }

    #[test]
    fn the_list_shows_each_principal_only_the_tools_it_may_call() {
        let policy = plugin(json!({"require": [
            {"tools": ["delete_*"], "scopes": ["admin"]},
            {"tools": ["deploy"], "subjects": ["alice"]}
        ]}));
        let tools = [tool("echo"), tool("delete_repo"), tool("deploy")];
        let list_as = |subject: Option<(&str, &[&str])>| {
            let message = Message::response("tools/list", json!({ "tools": tools }).to_string());
            let message = match subject {
                Some((subject, scopes)) => as_user(message, subject, scopes),
                None => message,
            };
            policy.intercept(&message)
        };
        assert_eq!(list_as(Some(("alice", &["admin"]))), Verdict::Pass);
        assert_eq!(
            listed_names(&list_as(Some(("bob", &["admin"])))),
            ["echo", "delete_repo"]
        );
        assert_eq!(
            listed_names(&list_as(Some(("alice", &[])))),
            ["echo", "deploy"]
        );
        assert_eq!(listed_names(&list_as(None)), ["echo"]);
        let shown = plugin(json!({
            "require": [{"tools": ["delete_*"], "scopes": ["admin"]}],
            "hide_denied": false
        }));
        assert_eq!(list(&shown, &tools), Verdict::Pass);
    }

    #[test]
    fn config_errors() {
        let err = |config: Value| ToolPolicy::init(&config.to_string()).err().unwrap();
        assert_eq!(
            err(json!({"rename": {"a": "x", "b": "x"}})),
            "invalid config: `rename` maps both `a` and `b` to the backend tool `x`"
        );
        assert_eq!(
            err(json!({"deny": [""]})),
            "invalid config: an empty tool pattern"
        );
        assert!(err(json!({"denied": []})).starts_with("invalid config: unknown field `denied`"));
        assert!(
            err(json!({"pin_arguments": {"a": 1}}))
                .starts_with("invalid config: invalid type: integer `1`, expected a map")
        );
        assert_eq!(
            err(json!({"require": [{"tools": [], "scopes": ["a"]}]})),
            "invalid config: a `require` rule names no tools"
        );
        assert_eq!(
            err(json!({"require": [{"tools": [""]}]})),
            "invalid config: an empty tool pattern"
        );
        assert!(
            err(json!({"require": [{"tools": ["a"], "scope": ["x"]}]}))
                .starts_with("invalid config: unknown field `scope`, expected one of `tools`, `scopes`, `subjects`"),
        );
        assert!(
            err(json!({"require": [{"scopes": ["x"]}]}))
                .starts_with("invalid config: missing field `tools`"),
        );
    }
}

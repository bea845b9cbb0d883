//! What a session with several backends does with a client's request: which backend
//! it goes to (by the name or URI it acts on), or which ones it fans out to and how
//! their answers become one; and how a backend's answers and notifications are shown
//! to the client (its names and URIs exposed as [`Names`] says).
//!
//! A session with one backend and no prefixes is a plain proxy: [`Gateway::plan`] is
//! not asked, and every message passes as it came.

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::lists::{self, ListKind, MergedCursor, MergedLists, Page};
use super::names::{Collision, NameKind, Names, PrefixMode};
use crate::wire::jsonrpc::{
    self, ErrorObject, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, Payload,
};

/// What to do with one client request.
#[derive(Debug)]
pub enum Plan {
    /// To one backend, with these params (naming what the backend knows).
    One {
        backend: usize,
        params: Option<Box<RawValue>>,
    },
    /// To each of these backends with these params; their answers become one.
    Fanout {
        parts: Vec<(usize, Option<Box<RawValue>>)>,
        merge: Merge,
    },
    /// Answered by the gateway itself.
    Answer(Result<Box<RawValue>, ErrorObject>),
    /// For a backend that cannot take requests now: the relay says why.
    Unavailable { backend: usize },
}

/// How the answers of a fan-out become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// `initialize`: the gateway's own, with what the servers can do.
    Initialize,
    /// `server/discover` (2026-07-28): the versions every server supports, with what
    /// the servers can do.
    Discover,
    /// A list method: one list, one cursor.
    List(ListKind),
    /// Nothing to merge (`logging/setLevel`): an empty result once all have answered.
    Empty,
    /// `subscriptions/listen` (2026-07-28): one stream for the client, fed by each
    /// server's; it ends (with an empty result) when every server's has ended.
    Listen,
}

/// In a `subscriptions/listen` filter: the resources whose updates are wanted.
const RESOURCE_SUBSCRIPTIONS: &str = "resourceSubscriptions";

/// One backend's answer to its part of a fan-out.
pub type Part = (usize, Result<Box<RawValue>, ErrorObject>);

/// How the gateway shows itself and its servers' names to clients (`[gateway]` in
/// `interpose.toml`, `--prefix`); the same for every session.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub prefix: PrefixMode,
    /// The gateway's `serverInfo` in its `initialize` result.
    pub server_info: Value,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            prefix: PrefixMode::default(),
            server_info: json!({"name": "interpose", "version": env!("CARGO_PKG_VERSION")}),
        }
    }
}

/// The routing state of one session with several backends.
#[derive(Debug)]
pub struct Gateway {
    names: Names,
    /// The last merged list of each kind, written again while the servers' lists stay
    /// the same.
    lists: MergedLists,
    servers: Vec<String>,
    /// The gateway's own name and version, in its `initialize` result.
    server_info: Value,
    /// One backend, its names as they are: every message passes as it came.
    passthrough: bool,
}

impl Gateway {
    /// `servers`: the backends' names in configuration order.
    pub fn new(servers: Vec<String>, options: &GatewayOptions) -> Self {
        let names = Names::new(servers.clone(), options.prefix);
        let passthrough = servers.len() == 1 && names.expose(NameKind::Tool, 0, "x") == "x";
        Gateway {
            names,
            lists: MergedLists::default(),
            servers,
            server_info: options.server_info.clone(),
            passthrough,
        }
    }

    /// Whether this is a plain proxy: one backend, its names as they are.
    pub fn is_passthrough(&self) -> bool {
        self.passthrough
    }

    /// Where a client's request goes, given which backends are still up.
    pub fn plan(&self, method: &str, params: Option<&RawValue>, live: &[bool]) -> Plan {
        let up: Vec<usize> = (0..self.servers.len()).filter(|i| live[*i]).collect();
        let all = |params: Option<&RawValue>| {
            up.iter()
                .map(|&server| (server, params.map(ToOwned::to_owned)))
                .collect::<Vec<_>>()
        };
        if let Some(kind) = ListKind::of_method(method) {
            return self.plan_list(kind, params, &up);
        }
        match method {
            "initialize" => Plan::Fanout {
                parts: all(params),
                merge: Merge::Initialize,
            },
            "server/discover" => Plan::Fanout {
                parts: all(params),
                merge: Merge::Discover,
            },
            "logging/setLevel" => Plan::Fanout {
                parts: all(params),
                merge: Merge::Empty,
            },
            "subscriptions/listen" => self.plan_listen(params, &up),
            "ping" => Plan::Answer(Ok(jsonrpc::raw("{}"))),
            "tools/call" => self.plan_named(NameKind::Tool, "name", params, live),
            "prompts/get" => self.plan_named(NameKind::Prompt, "name", params, live),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                self.plan_named(NameKind::Resource, "uri", params, live)
            }
            "completion/complete" => self.plan_completion(params, live),
            _ => Plan::Answer(Err(ErrorObject::new(
                METHOD_NOT_FOUND,
                format!("`{method}` cannot be routed to one of several servers"),
            ))),
        }
    }

    fn plan_list(&self, kind: ListKind, params: Option<&RawValue>, up: &[usize]) -> Plan {
        let cursor = params
            .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
            .and_then(|p| p["cursor"].as_str().map(str::to_owned));
        let pages = match cursor {
            None => MergedCursor::start(up.iter().copied()),
            Some(text) => match MergedCursor::decode(&text, self.servers.len()) {
                Ok(cursor) => cursor,
                Err(e) => {
                    return Plan::Answer(Err(ErrorObject::new(INVALID_PARAMS, e.to_string())));
                }
            },
        };
        let parts = pages
            .pages
            .into_iter()
            .filter(|(server, _)| up.contains(server))
            .map(|(server, cursor)| {
                let mut own: Map<String, Value> = params
                    .and_then(|p| serde_json::from_str(p.get()).ok())
                    .unwrap_or_default();
                match cursor {
                    Some(cursor) => own.insert("cursor".into(), cursor.into()),
                    None => own.remove("cursor"),
                };
                let params = (!own.is_empty()).then(|| to_raw(&Value::Object(own)));
                (server, params)
            })
            .collect();
        Plan::Fanout {
            parts,
            merge: Merge::List(kind),
        }
    }

    /// `subscriptions/listen` goes to every server, each asked for the list changes
    /// the client wants and for updates of those of its resources the client named
    /// (by the server's own URIs). A URI no server offers is asked of none, so no
    /// acknowledgement honours it.
    fn plan_listen(&self, params: Option<&RawValue>, up: &[usize]) -> Plan {
        let Some(params) = params.and_then(|p| serde_json::from_str::<Value>(p.get()).ok()) else {
            return Plan::Answer(Err(ErrorObject::new(INVALID_PARAMS, "params are missing")));
        };
        let wanted: Vec<&str> = params["notifications"][RESOURCE_SUBSCRIPTIONS]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let origins: Vec<_> = wanted
            .iter()
            .filter_map(|uri| self.names.resolve(NameKind::Resource, uri))
            .collect();
        let parts = up
            .iter()
            .map(|&server| {
                let mut own = params.clone();
                if !wanted.is_empty() {
                    let uris: Vec<Value> = origins
                        .iter()
                        .filter(|origin| origin.server == server)
                        .map(|origin| Value::String(origin.name.clone()))
                        .collect();
                    own["notifications"][RESOURCE_SUBSCRIPTIONS] = Value::Array(uris);
                }
                (server, Some(to_raw(&own)))
            })
            .collect();
        Plan::Fanout {
            parts,
            merge: Merge::Listen,
        }
    }

    /// The one `notifications/subscriptions/acknowledged` the client gets for a
    /// listen fanned out to several servers, from each server's own (`acks`): a list
    /// change is honoured when some server honours it, and the resources honoured
    /// are every server's, named as the client knows them. The subscription id in
    /// `_meta` is the relay's to set.
    pub fn merge_acknowledged(&self, acks: &[(usize, Value)]) -> Value {
        let mut merged = Map::new();
        let mut resources = Vec::new();
        for (server, ack) in acks {
            let Some(honoured) = ack["notifications"].as_object() else {
                continue;
            };
            for (key, value) in honoured {
                if key == RESOURCE_SUBSCRIPTIONS {
                    let uris = value.as_array().into_iter().flatten();
                    resources.extend(uris.filter_map(Value::as_str).map(|uri| {
                        Value::String(self.names.expose(NameKind::Resource, *server, uri))
                    }));
                } else if value == &Value::Bool(true) || !merged.contains_key(key) {
                    merged.insert(key.clone(), value.clone());
                }
            }
        }
        if !resources.is_empty() {
            merged.insert(RESOURCE_SUBSCRIPTIONS.into(), Value::Array(resources));
        }
        json!({ "notifications": merged })
    }

    /// A request that names what it acts on (`params[key]`) goes to the server that
    /// offers it, with the name that server knows.
    fn plan_named(
        &self,
        kind: NameKind,
        key: &str,
        params: Option<&RawValue>,
        live: &[bool],
    ) -> Plan {
        let Some(mut params) = params.and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
        else {
            return Plan::Answer(Err(ErrorObject::new(INVALID_PARAMS, "params are missing")));
        };
        let Some(exposed) = params[key].as_str() else {
            return Plan::Answer(Err(ErrorObject::new(
                INVALID_PARAMS,
                format!("params.{key} is missing"),
            )));
        };
        match self.names.resolve(kind, exposed) {
            Some(origin) if live[origin.server] => {
                params[key] = Value::String(origin.name);
                Plan::One {
                    backend: origin.server,
                    params: Some(to_raw(&params)),
                }
            }
            Some(origin) => Plan::Unavailable {
                backend: origin.server,
            },
            None => Plan::Answer(Err(ErrorObject::new(
                INVALID_PARAMS,
                format!("no server offers `{exposed}`"),
            ))),
        }
    }

    /// `completion/complete` goes where its reference (a prompt or a resource
    /// template) lives.
    fn plan_completion(&self, params: Option<&RawValue>, live: &[bool]) -> Plan {
        let Some(mut params) = params.and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
        else {
            return Plan::Answer(Err(ErrorObject::new(INVALID_PARAMS, "params are missing")));
        };
        let (kind, key) = match params["ref"]["type"].as_str() {
            Some("ref/prompt") => (NameKind::Prompt, "name"),
            Some("ref/resource") => (NameKind::ResourceTemplate, "uri"),
            _ => {
                return Plan::Answer(Err(ErrorObject::new(
                    INVALID_PARAMS,
                    "params.ref is neither a prompt nor a resource reference",
                )));
            }
        };
        let exposed = params["ref"][key].as_str().unwrap_or_default().to_owned();
        let origin = self
            .names
            .resolve(kind, &exposed)
            .or_else(|| self.names.resolve(NameKind::Resource, &exposed));
        match origin {
            Some(origin) if live[origin.server] => {
                params["ref"][key] = Value::String(origin.name);
                Plan::One {
                    backend: origin.server,
                    params: Some(to_raw(&params)),
                }
            }
            _ => Plan::Answer(Err(ErrorObject::new(
                INVALID_PARAMS,
                format!("no available server offers `{exposed}`"),
            ))),
        }
    }

    /// The one answer of a fan-out, from its parts (in any order); collisions found
    /// while merging lists are added to `collisions`.
    pub fn merge(
        &mut self,
        merge: Merge,
        mut parts: Vec<Part>,
        collisions: &mut Vec<Collision>,
    ) -> Result<Payload, ErrorObject> {
        parts.sort_by_key(|(server, _)| *server);
        if parts.iter().all(|(_, part)| part.is_err()) {
            // Every server failed: the client gets the first server's error.
            return Err(parts
                .into_iter()
                .find_map(|(_, part)| part.err())
                .unwrap_or_else(|| ErrorObject::new(METHOD_NOT_FOUND, "no server is available")));
        }
        if let Merge::List(kind) = merge {
            // Merged as the servers wrote them: their items are never built as trees.
            let pages = parts
                .into_iter()
                .filter_map(|(server, part)| {
                    Some(Page {
                        server,
                        result: part.ok()?,
                    })
                })
                .collect();
            return Ok(self.lists.merge(kind, pages, &mut self.names, collisions));
        }
        // The other merges read a few members of small results.
        let values: Vec<(usize, Value)> = parts
            .iter()
            .filter_map(|(server, part)| {
                let result = part.as_ref().ok()?;
                Some((*server, serde_json::from_str(result.get()).ok()?))
            })
            .collect();
        let answered: Vec<(usize, &Value)> = values.iter().map(|(s, v)| (*s, v)).collect();
        Ok(match merge {
            Merge::Empty | Merge::Listen => jsonrpc::raw("{}"),
            Merge::List(_) => unreachable!("merged above"),
            Merge::Initialize => to_raw(&self.merge_initialize(&answered)),
            Merge::Discover => to_raw(&self.merge_discover(&answered)?),
        }
        .into())
    }

    /// The gateway's `server/discover` result: the protocol versions every server
    /// supports (none in common is an error: no version would reach them all), the
    /// capabilities and instructions as for `initialize`, and the strictest cache hints.
    fn merge_discover(&self, answered: &[(usize, &Value)]) -> Result<Value, ErrorObject> {
        let versions_of = |result: &Value| -> Vec<String> {
            result["supportedVersions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        let mut common = versions_of(answered[0].1);
        for (_, result) in &answered[1..] {
            let theirs = versions_of(result);
            common.retain(|v| theirs.contains(v));
        }
        if common.is_empty() {
            return Err(ErrorObject::new(
                INTERNAL_ERROR,
                "the servers have no protocol version in common",
            ));
        }
        let mut result = json!({
            "supportedVersions": common,
            "capabilities": self.merge_capabilities(answered),
            "resultType": "complete",
        });
        if let Some(instructions) = self.merge_instructions(answered) {
            result["instructions"] = instructions.into();
        }
        if let Some(merged) = result.as_object_mut() {
            for (_, theirs) in answered {
                lists::merge_cache_hints(merged, theirs);
            }
        }
        Ok(result)
    }

    /// The gateway's `initialize` result: the protocol version the servers settled on
    /// (the oldest, so every server speaks it), the capabilities any server has (with
    /// `listChanged`, as servers come and go), each server's instructions under its
    /// name, and the gateway's own `serverInfo`.
    fn merge_initialize(&self, answered: &[(usize, &Value)]) -> Value {
        let version = answered
            .iter()
            .filter_map(|(_, r)| r["protocolVersion"].as_str())
            .min()
            .unwrap_or_default();
        let mut result = json!({
            "protocolVersion": version,
            "capabilities": self.merge_capabilities(answered),
            "serverInfo": self.server_info,
        });
        if let Some(instructions) = self.merge_instructions(answered) {
            result["instructions"] = instructions.into();
        }
        result
    }

    /// What any server can do, with `listChanged` on every list: servers come and go.
    fn merge_capabilities(&self, answered: &[(usize, &Value)]) -> Value {
        let mut capabilities = Map::new();
        for (_, result) in answered {
            let Some(theirs) = result["capabilities"].as_object() else {
                continue;
            };
            for (name, value) in theirs {
                let entry = capabilities
                    .entry(name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let (Some(entry), Some(value)) = (entry.as_object_mut(), value.as_object()) {
                    for (key, flag) in value {
                        entry.entry(key.clone()).or_insert_with(|| flag.clone());
                    }
                }
            }
        }
        announce_list_changed(&mut capabilities);
        Value::Object(capabilities)
    }

    /// Each server's instructions under its name.
    fn merge_instructions(&self, answered: &[(usize, &Value)]) -> Option<String> {
        let instructions: Vec<String> = answered
            .iter()
            .filter_map(|(server, r)| {
                let text = r["instructions"].as_str()?;
                Some(format!("{}: {text}", self.servers[*server]))
            })
            .collect();
        (!instructions.is_empty()).then(|| instructions.join("\n\n"))
    }

    /// A backend's result as the client sees it: resource URIs (in `resources/read`
    /// contents, and in `resource_link` and embedded resources of a tool's result)
    /// carry the server's prefix, so the client can read them back through us.
    pub fn expose_result(&self, server: usize, method: &str, result: Payload) -> Payload {
        if self.is_passthrough() || !matches!(method, "resources/read" | "tools/call") {
            return result;
        }
        let Ok(mut value) = serde_json::from_str::<Value>(result.get()) else {
            return result;
        };
        let expose = |uri: &mut Value| {
            if let Some(text) = uri.as_str() {
                *uri = self.names.expose(NameKind::Resource, server, text).into();
            }
        };
        // `get_mut`, not indexing: indexing a missing member would add it as null.
        let items = |value: &mut Value, key: &str| {
            value
                .get_mut(key)
                .and_then(Value::as_array_mut)
                .map(std::mem::take)
                .unwrap_or_default()
        };
        let mut contents = items(&mut value, "contents");
        for item in &mut contents {
            expose(&mut item["uri"]);
        }
        let mut content = items(&mut value, "content");
        for item in &mut content {
            match item["type"].as_str() {
                Some("resource_link") => expose(&mut item["uri"]),
                Some("resource") => expose(&mut item["resource"]["uri"]),
                _ => {}
            }
        }
        for (key, items) in [("contents", contents), ("content", content)] {
            if let Some(slot) = value.get_mut(key) {
                *slot = Value::Array(items);
            }
        }
        to_raw(&value).into()
    }

    /// A backend's notification as the client sees it: a resource's update names the
    /// resource as the client knows it.
    pub fn expose_notification(
        &self,
        server: usize,
        method: &str,
        params: Option<Payload>,
    ) -> Option<Payload> {
        if self.is_passthrough() || method != "notifications/resources/updated" {
            return params;
        }
        let params = params?;
        let Ok(mut value) = serde_json::from_str::<Value>(params.get()) else {
            return Some(params);
        };
        if let Some(uri) = value["uri"].as_str() {
            value["uri"] = self.names.expose(NameKind::Resource, server, uri).into();
        }
        Some(to_raw(&value).into())
    }

    /// A server went away: its names leave.
    pub fn forget(&mut self, server: usize) {
        self.names.forget(server);
    }

    pub fn server_name(&self, server: usize) -> &str {
        &self.servers[server]
    }
}

/// Sets `listChanged` on every list in `capabilities`, for servers that come and go.
pub fn announce_list_changed(capabilities: &mut Map<String, Value>) {
    for list in ["tools", "prompts", "resources"] {
        if let Some(entry) = capabilities.get_mut(list).and_then(Value::as_object_mut) {
            entry.insert("listChanged".into(), true.into());
        }
    }
}

fn to_raw(value: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("a JSON value serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway() -> Gateway {
        Gateway::new(
            vec!["files".into(), "web".into()],
            &GatewayOptions::default(),
        )
    }

    fn raw(value: Value) -> Box<RawValue> {
        to_raw(&value)
    }

    fn prefixed(prefix: PrefixMode) -> GatewayOptions {
        GatewayOptions {
            prefix,
            ..GatewayOptions::default()
        }
    }

    #[test]
    fn never_prefixed_servers_keep_their_names_and_a_configured_server_info() {
        let options = GatewayOptions {
            prefix: PrefixMode::Never,
            server_info: json!({"name": "acme-gateway", "version": "7"}),
        };
        let mut g = Gateway::new(vec!["files".into(), "web".into()], &options);
        let tools = |name: &str| Ok(raw(json!({"tools": [{"name": name}]})));
        let merged = g
            .merge(
                Merge::List(ListKind::Tools),
                vec![(0, tools("read")), (1, tools("fetch"))],
                &mut Vec::new(),
            )
            .unwrap();
        let merged: Value = serde_json::from_str(merged.get()).unwrap();
        assert_eq!(
            merged["tools"],
            json!([{"name": "read"}, {"name": "fetch"}])
        );
        match g.plan(
            "tools/call",
            Some(&raw(json!({"name": "fetch"}))),
            &[true, true],
        ) {
            Plan::One { backend, .. } => assert_eq!(backend, 1),
            other => panic!("{other:?}"),
        }
        let init = json!({"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "f"}});
        let merged = g
            .merge(
                Merge::Initialize,
                vec![(0, Ok(raw(init.clone()))), (1, Ok(raw(init)))],
                &mut Vec::new(),
            )
            .unwrap();
        let merged: Value = serde_json::from_str(merged.get()).unwrap();
        assert_eq!(
            merged["serverInfo"],
            json!({"name": "acme-gateway", "version": "7"})
        );
    }

    #[test]
    fn one_backend_without_prefixes_is_a_plain_proxy() {
        let one = Gateway::new(vec!["files".into()], &GatewayOptions::default());
        assert!(one.is_passthrough());
        assert!(
            !Gateway::new(vec!["files".into()], &prefixed(PrefixMode::Always)).is_passthrough()
        );
        assert!(!gateway().is_passthrough());
    }

    #[test]
    fn calls_go_to_the_server_that_offers_the_name_under_its_own_name() {
        let mut g = gateway();
        let tools = json!({"tools": [{"name": "fetch"}]});
        g.merge(
            Merge::List(ListKind::Tools),
            vec![(1, Ok(raw(tools)))],
            &mut Vec::new(),
        )
        .unwrap();
        let call = raw(json!({"name": "web_fetch", "arguments": {"url": "x"}}));
        match g.plan("tools/call", Some(&call), &[true, true]) {
            Plan::One { backend, params } => {
                assert_eq!(backend, 1);
                let params: Value = serde_json::from_str(params.unwrap().get()).unwrap();
                assert_eq!(params, json!({"name": "fetch", "arguments": {"url": "x"}}));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            g.plan("tools/call", Some(&call), &[true, false]),
            Plan::Unavailable { backend: 1 }
        ));
        let unknown = raw(json!({"name": "nothing"}));
        assert!(matches!(
            g.plan("tools/call", Some(&unknown), &[true, true]),
            Plan::Answer(Err(e)) if e.code == INVALID_PARAMS
        ));
    }

    #[test]
    fn lists_fan_out_to_the_servers_up_and_follow_the_merged_cursor() {
        let g = gateway();
        match g.plan("tools/list", None, &[true, false]) {
            Plan::Fanout { parts, merge } => {
                assert_eq!(merge, Merge::List(ListKind::Tools));
                assert_eq!(parts.len(), 1);
                assert_eq!(parts[0].0, 0);
            }
            other => panic!("{other:?}"),
        }
        let cursor = MergedCursor {
            pages: vec![(1, Some("w-2".into()))],
        }
        .encode();
        let params = raw(json!({"cursor": cursor}));
        match g.plan("tools/list", Some(&params), &[true, true]) {
            Plan::Fanout { parts, .. } => {
                assert_eq!(parts.len(), 1);
                assert_eq!(parts[0].0, 1);
                assert_eq!(parts[0].1.as_ref().unwrap().get(), r#"{"cursor":"w-2"}"#);
            }
            other => panic!("{other:?}"),
        }
        let bad = raw(json!({"cursor": "nope"}));
        assert!(matches!(
            g.plan("tools/list", Some(&bad), &[true, true]),
            Plan::Answer(Err(e)) if e.code == INVALID_PARAMS
        ));
    }

    #[test]
    fn initialize_is_the_gateways_with_what_any_server_can_do() {
        let mut g = gateway();
        let files = json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}, "resources": {"subscribe": true}}, "serverInfo": {"name": "f"}, "instructions": "Reads files."});
        let web = json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {"listChanged": false}, "prompts": {}}, "serverInfo": {"name": "w"}});
        let merged = g
            .merge(
                Merge::Initialize,
                vec![(1, Ok(raw(web))), (0, Ok(raw(files)))],
                &mut Vec::new(),
            )
            .unwrap();
        let merged: Value = serde_json::from_str(merged.get()).unwrap();
        assert_eq!(merged["protocolVersion"], "2025-06-18");
        assert_eq!(merged["serverInfo"]["name"], "interpose");
        assert_eq!(merged["capabilities"]["tools"]["listChanged"], true);
        assert_eq!(merged["capabilities"]["prompts"]["listChanged"], true);
        assert_eq!(merged["capabilities"]["resources"]["subscribe"], true);
        assert_eq!(merged["instructions"], "files: Reads files.");
    }

    #[test]
    fn discover_offers_the_versions_every_server_supports() {
        let mut g = gateway();
        let files = json!({"supportedVersions": ["2026-07-28", "2025-11-25"], "capabilities": {"tools": {}}, "resultType": "complete", "ttlMs": 60000, "cacheScope": "public"});
        let web = json!({"supportedVersions": ["2026-07-28"], "capabilities": {"prompts": {}}, "resultType": "complete", "ttlMs": 1000, "cacheScope": "private"});
        let merged = g
            .merge(
                Merge::Discover,
                vec![(0, Ok(raw(files))), (1, Ok(raw(web.clone())))],
                &mut Vec::new(),
            )
            .unwrap();
        let merged: Value = serde_json::from_str(merged.get()).unwrap();
        assert_eq!(merged["supportedVersions"], json!(["2026-07-28"]));
        assert_eq!(merged["capabilities"]["prompts"]["listChanged"], true);
        assert_eq!(merged["capabilities"]["tools"]["listChanged"], true);
        assert_eq!(
            (merged["ttlMs"].as_u64(), merged["cacheScope"].as_str()),
            (Some(1000), Some("private"))
        );
        let old = json!({"supportedVersions": ["2025-06-18"], "capabilities": {}});
        let none = g.merge(
            Merge::Discover,
            vec![(0, Ok(raw(old))), (1, Ok(raw(web)))],
            &mut Vec::new(),
        );
        assert!(
            none.unwrap_err()
                .message
                .contains("no protocol version in common")
        );
    }

    #[test]
    fn a_failed_server_is_left_out_unless_all_failed() {
        let mut g = gateway();
        let files = json!({"tools": [{"name": "read"}]});
        let down = ErrorObject::new(-32000, "web died");
        let merged = g
            .merge(
                Merge::List(ListKind::Tools),
                vec![(0, Ok(raw(files))), (1, Err(down.clone()))],
                &mut Vec::new(),
            )
            .unwrap();
        assert_eq!(merged.get(), r#"{"tools":[{"name":"files_read"}]}"#);
        let all_down = g.merge(Merge::Empty, vec![(1, Err(down))], &mut Vec::new());
        assert_eq!(all_down.unwrap_err().message, "web died");
    }

    #[test]
    fn resource_uris_in_results_and_updates_carry_their_server() {
        let g = gateway();
        let read = raw(json!({"contents": [{"uri": "file:///a", "text": "x"}]}));
        let exposed = g.expose_result(0, "resources/read", read.into());
        assert_eq!(
            exposed.get(),
            r#"{"contents":[{"text":"x","uri":"files+file:///a"}]}"#
        );
        let call = raw(json!({"content": [
            {"type": "resource_link", "uri": "https://x/1", "name": "one"},
            {"type": "resource", "resource": {"uri": "https://x/2", "text": "t"}},
            {"type": "text", "text": "uri"}
        ]}));
        let exposed: Value =
            serde_json::from_str(g.expose_result(1, "tools/call", call.into()).get()).unwrap();
        assert_eq!(exposed["content"][0]["uri"], "web+https://x/1");
        assert_eq!(exposed["content"][1]["resource"]["uri"], "web+https://x/2");
        let update = g.expose_notification(
            0,
            "notifications/resources/updated",
            Some(raw(json!({"uri": "file:///a"})).into()),
        );
        assert_eq!(update.unwrap().get(), r#"{"uri":"files+file:///a"}"#);
    }
}

//! interpose plugin: caches `tools/call` results in the plugin store and answers
//! a repeated call (same backend, tool and arguments) from it, without reaching
//! the backend; `response-cache-js` in Rust, with the same configuration and
//! behaviour. Tool errors and JSON-RPC errors are never cached; a result's own
//! `ttlMs` and `cacheScope` (2026-07-28) are honoured (a private result is
//! cached for its principal alone), and retries carrying client input never
//! touch the cache. See the README for the configuration.

use std::time::Duration;

use interpose_plugin::host::{self, Level, store};
use interpose_plugin::{
    Kind, Manifest, Message, Plugin, Principal, Verdict, export_plugin, glob, manifest,
    parse_config,
};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The plugin's `config` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// How long a result is kept, in milliseconds.
    #[serde(default = "default_ttl_ms")]
    ttl_ms: u64,
    /// The tools whose results are cached: names or globs (`*`, `?`).
    #[serde(default = "every_tool")]
    tools: Vec<String>,
    /// Results larger than this many bytes of JSON are not cached.
    #[serde(default = "default_max_entry_bytes")]
    max_entry_bytes: usize,
    /// A cache per client session rather than one for all.
    #[serde(default)]
    per_session: bool,
}

fn default_ttl_ms() -> u64 {
    60_000
}

fn every_tool() -> Vec<String> {
    vec!["*".to_owned()]
}

fn default_max_entry_bytes() -> usize {
    65_536
}

/// The response-cache plugin.
pub struct ResponseCache {
    ttl_ms: u64,
    /// `None` when every tool is cached.
    tools: Option<Vec<String>>,
    max_entry_bytes: usize,
    per_session: bool,
}

impl Plugin for ResponseCache {
    fn init(config: &str) -> Result<(Self, Manifest), String> {
        let config: Config = parse_config(config)?;
        if config.ttl_ms == 0 {
            return Err("invalid config: `ttl_ms` must be a whole number of milliseconds, at least 1; got 0".into());
        }
        if config.max_entry_bytes == 0 {
            return Err(
                "invalid config: `max_entry_bytes` must be a whole number, at least 1; got 0"
                    .into(),
            );
        }
        if config.tools.iter().any(String::is_empty) {
            return Err("invalid config: `tools` must be a list of tool names or globs (`*`, `?`); got an empty name".into());
        }
        let every = config.tools.iter().any(|glob| glob == "*");
        let cache = ResponseCache {
            ttl_ms: config.ttl_ms,
            tools: (!every).then_some(config.tools),
            max_entry_bytes: config.max_entry_bytes,
            per_session: config.per_session,
        };
        // With the request's params on the response, the plugin keeps no state of
        // its own between a call and its result.
        let manifest = manifest!()
            .wants([Kind::Request], ["tools/call"])
            .wants([Kind::Response], ["tools/call"])
            .wants_request(true);
        Ok((cache, manifest))
    }

    fn intercept(&self, msg: &Message) -> Verdict {
        // The host names the tool without the params being copied or parsed here.
        let Some(tool) = msg.subject() else {
            return Verdict::Pass;
        };
        if !self.caches(tool) {
            return Verdict::Pass;
        }
        match msg.kind() {
            Kind::Request => self.answer(msg),
            Kind::Response => {
                self.keep(msg);
                Verdict::Pass
            }
            Kind::Error | Kind::Notification => Verdict::Pass,
        }
    }
}

/// What the cache reads of a `tools/call` request's params.
#[derive(Debug, Deserialize)]
struct Call {
    name: String,
    #[serde(default)]
    arguments: Option<Value>,
    /// 2026-07-28: the retry of a call that asked the client for input carries
    /// that input; its answer depends on it.
    #[serde(default, rename = "inputResponses", deserialize_with = "present")]
    input_responses: bool,
    #[serde(default, rename = "requestState", deserialize_with = "present")]
    request_state: bool,
}

impl Call {
    fn is_retry(&self) -> bool {
        self.input_responses || self.request_state
    }
}

/// A field that is there, whatever its value (`null` included).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// What a result says about its own caching, and whether it is a tool error.
#[derive(Debug, Deserialize)]
struct Hints {
    #[serde(default, rename = "isError")]
    is_error: Option<Value>,
    #[serde(default, rename = "ttlMs", deserialize_with = "some")]
    ttl_ms: Option<Value>,
    #[serde(default, rename = "cacheScope")]
    cache_scope: Option<Value>,
}

/// A field's value, `null` included (an absent field is `None`).
fn some<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// How long a result is kept, and whether for its principal alone.
#[derive(Debug, PartialEq, Eq)]
struct Lifetime {
    ttl_ms: u64,
    private: bool,
}

impl ResponseCache {
    fn caches(&self, tool: &str) -> bool {
        self.tools
            .as_ref()
            .is_none_or(|globs| globs.iter().any(|glob| glob::matches(glob, tool)))
    }

    /// A call: its result from the cache, a shared one first, else one private
    /// to the session's principal.
    fn answer(&self, msg: &Message) -> Verdict {
        let Ok(call) = msg.payload_as::<Call>() else {
            return Verdict::Pass;
        };
        if call.is_retry() {
            return Verdict::Pass;
        }
        let found = self
            .cached(&call, msg, None)
            .and_then(|shared| match shared {
                None => match msg.principal() {
                    Some(principal) => self.cached(&call, msg, Some(principal)),
                    None => Ok(None),
                },
                hit => Ok(hit),
            });
        match found {
            Ok(Some(result)) => {
                host::log(
                    Level::Debug,
                    &format!("answered tools/call `{}` from the cache", call.name),
                );
                Verdict::Respond(result)
            }
            Ok(None) => Verdict::Pass,
            // A cache that cannot be read is a miss: the backend answers.
            Err(e) => {
                host::warn(&format!(
                    "cannot look up tools/call `{}` in the cache: {e}",
                    call.name
                ));
                Verdict::Pass
            }
        }
    }

    /// The result stored for this call (and principal), if any.
    fn cached(
        &self,
        call: &Call,
        msg: &Message,
        principal: Option<&Principal>,
    ) -> Result<Option<String>, store::StoreError> {
        let identity = self.identity(call, msg, principal);
        Ok(store::get(&key(&identity))?.and_then(|stored| lookup(stored, &identity)))
    }

    /// A result: store it, unless it is not to be cached.
    fn keep(&self, msg: &Message) {
        let Ok(call) = msg.request_payload_as::<Call>() else {
            return;
        };
        let Some(result) = msg.payload() else {
            return;
        };
        if call.is_retry() {
            return;
        }
        let Some(life) = lifetime(result, self.ttl_ms, self.max_entry_bytes) else {
            return;
        };
        let principal = match (life.private, msg.principal()) {
            (false, _) => None,
            (true, Some(principal)) => Some(principal),
            // Without a principal, a private result has no one to be kept for.
            (true, None) => return,
        };
        let identity = self.identity(&call, msg, principal);
        let key = key(&identity);
        let ttl = Some(Duration::from_millis(life.ttl_ms));
        if let Err(e) = store::set(&key, entry(identity, result).as_bytes(), ttl) {
            host::warn(&format!(
                "cannot store the result of tools/call `{}` in the cache: {e}",
                call.name
            ));
        }
    }

    /// The whole call, in canonical JSON: the backend, the session (with
    /// `per_session`), the tool, its arguments (`{}` when absent) and, for a
    /// private entry, its principal's issuer and subject. Stored with the result
    /// and compared on a hit, so that two calls whose keys collide never share one.
    fn identity(&self, call: &Call, msg: &Message, principal: Option<&Principal>) -> String {
        let mut out = String::from("[");
        push_string(&mut out, msg.server());
        out.push(',');
        match self.per_session {
            true => push_string(&mut out, msg.session()),
            false => out.push_str("null"),
        }
        out.push(',');
        push_string(&mut out, &call.name);
        out.push(',');
        match &call.arguments {
            Some(arguments) => push_canonical(&mut out, arguments),
            None => out.push_str("{}"),
        }
        if let Some(principal) = principal {
            out.push_str(",[");
            push_string(&mut out, &principal.issuer);
            out.push(',');
            push_string(&mut out, &principal.subject);
            out.push(']');
        }
        out.push(']');
        out
    }
}

/// Identities up to this many bytes are their own key; longer ones are hashed.
const SHORT_IDENTITY: usize = 512;

/// The store key of a call's entry.
fn key(identity: &str) -> String {
    if identity.len() <= SHORT_IDENTITY {
        return format!("tools/call:{identity}");
    }
    // A collision costs a miss only: a hit compares the stored identity.
    format!(
        "tools/call#{:016x}",
        xxhash_rust::xxh3::xxh3_64(identity.as_bytes())
    )
}

/// An identity and a result's JSON text in one stored value. The identity is JSON
/// with no raw newline, so the first newline ends it.
fn entry(mut identity: String, result: &str) -> String {
    identity.reserve(result.len() + 1);
    identity.push('\n');
    identity.push_str(result);
    identity
}

/// The result stored for `identity`, or `None` (another call's entry).
fn lookup(stored: Vec<u8>, identity: &str) -> Option<String> {
    let result = stored
        .strip_prefix(identity.as_bytes())?
        .strip_prefix(b"\n")?;
    String::from_utf8(result.to_vec()).ok()
}

/// How a result may be cached, from what it says of itself (2026-07-28): `None`
/// when not at all. Larger than `max_bytes` or a tool error (`isError: true`):
/// not cached. Its `ttlMs` shortens `ttl_ms`, never lengthens it, and anything but
/// a positive whole number keeps it out; `cacheScope: "private"` means it is meant
/// for one client.
fn lifetime(result: &str, ttl_ms: u64, max_bytes: usize) -> Option<Lifetime> {
    if result.len() > max_bytes {
        return None;
    }
    // Most results name none of these: they need no parsing.
    if !["\"isError\"", "\"ttlMs\"", "\"cacheScope\""]
        .iter()
        .any(|field| result.contains(field))
    {
        return Some(Lifetime {
            ttl_ms,
            private: false,
        });
    }
    let hints: Hints = serde_json::from_str(result).ok()?;
    if hints.is_error == Some(Value::Bool(true)) {
        return None;
    }
    let ttl_ms = match &hints.ttl_ms {
        None => ttl_ms,
        Some(own) => whole_ms(own)?.min(ttl_ms),
    };
    let private = hints.cache_scope.as_ref().and_then(Value::as_str) == Some("private");
    Some(Lifetime { ttl_ms, private })
}

/// A positive whole number of milliseconds up to 2^53 - 1 (JSON's safe integers).
fn whole_ms(value: &Value) -> Option<u64> {
    const MAX_SAFE: u64 = (1 << 53) - 1;
    let ms = value.as_u64().or_else(|| {
        let ms = value.as_f64()?;
        (ms.fract() == 0.0 && (0.0..=MAX_SAFE as f64).contains(&ms)).then_some(ms as u64)
    })?;
    (1..=MAX_SAFE).contains(&ms).then_some(ms)
}

fn push_string(out: &mut String, text: &str) {
    out.push_str(&Value::from(text).to_string());
}

/// `value` as JSON with every object's keys sorted: `{"a":1,"b":2}` and
/// `{"b":2,"a":1}` are the same arguments.
fn push_canonical(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (index, (name, value)) in members.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                push_string(out, name);
                out.push(':');
                push_canonical(out, value);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                push_canonical(out, item);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

export_plugin!(ResponseCache);

#[cfg(test)]
mod tests {
    use interpose_plugin::host::testing;
    use interpose_plugin::{Interest, Principal};
    use serde_json::{Value, json};

    use super::*;

    fn plugin(config: Value) -> ResponseCache {
        testing::clear_kv();
        testing::take_logs();
        ResponseCache::init(&config.to_string()).unwrap().0
    }

    /// A call of `name` with `params`' other fields, on backend `b1` in session `s1`.
    fn call_with(name: &str, params: Value) -> Message<'static> {
        let mut params = params;
        params["name"] = json!(name);
        Message::request("tools/call", params.to_string())
            .with_server("b1")
            .with_session("s1")
    }

    fn call(name: &str, arguments: Value) -> Message<'static> {
        call_with(name, json!({"arguments": arguments}))
    }

    fn result_with(name: &str, params: Value, result: &str) -> Message<'static> {
        let mut params = params;
        params["name"] = json!(name);
        Message::response("tools/call", result)
            .with_request_payload(params.to_string())
            .with_server("b1")
            .with_session("s1")
    }

    fn result(name: &str, arguments: Value, result: &str) -> Message<'static> {
        result_with(name, json!({"arguments": arguments}), result)
    }

    fn ok(text: &str) -> String {
        json!({"content": [{"type": "text", "text": text}]}).to_string()
    }

    /// `ok(text)` with more top-level fields.
    fn ok_with(text: &str, fields: Value) -> String {
        let mut result: Value = serde_json::from_str(&ok(text)).unwrap();
        result
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        result.to_string()
    }

    fn answered_text(verdict: Verdict) -> String {
        match verdict {
            Verdict::Respond(result) => {
                let result: Value = serde_json::from_str(&result).unwrap();
                result["content"][0]["text"].as_str().unwrap().to_owned()
            }
            other => panic!("expected an answer from the cache, got {other:?}"),
        }
    }

    fn is_answer(verdict: &Verdict) -> bool {
        matches!(verdict, Verdict::Respond(_))
    }

    fn principal(subject: &str) -> Principal {
        Principal::new("https://idp.test", subject)
    }

    #[test]
    fn manifest_asks_for_tools_call_requests_and_responses_with_the_request() {
        let (_, manifest) = ResponseCache::init("{}").unwrap();
        assert_eq!(
            (manifest.name.as_str(), manifest.wants_request),
            ("response-cache", true)
        );
        assert_eq!(
            manifest.interests,
            [
                Interest::new([Kind::Request], ["tools/call"]),
                Interest::new([Kind::Response], ["tools/call"])
            ]
        );
    }

    #[test]
    fn a_repeated_call_is_answered_from_the_cache_byte_for_byte() {
        let cache = plugin(json!({}));
        let args = json!({"city": "Oslo", "units": "C"});
        assert_eq!(
            cache.intercept(&call("weather", args.clone())),
            Verdict::Pass
        );
        let text =
            r#"{"content":[{"type":"text","text":"rain, 4°C"}],  "structuredContent":{"t":4}}"#;
        assert_eq!(
            cache.intercept(&result("weather", args, text)),
            Verdict::Pass
        );
        // The same arguments in another order: the same call.
        let again = Message::request(
            "tools/call",
            r#"{"name":"weather","arguments":{"units":"C","city":"Oslo"}}"#,
        )
        .with_server("b1")
        .with_session("s1");
        assert_eq!(cache.intercept(&again), Verdict::Respond(text.into()));
        assert_eq!(
            testing::take_logs(),
            [(
                Level::Debug,
                "answered tools/call `weather` from the cache".into()
            )]
        );
        let other = json!({"city": "Bergen", "units": "C"});
        assert_eq!(cache.intercept(&call("weather", other)), Verdict::Pass);
        let other_tool = json!({"city": "Oslo", "units": "C"});
        assert_eq!(
            cache.intercept(&call("forecast", other_tool)),
            Verdict::Pass
        );
    }

    #[test]
    fn entries_expire_after_ttl_ms() {
        let cache = plugin(json!({"ttl_ms": 1}));
        cache.intercept(&result("t", json!({}), &ok("x")));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(cache.intercept(&call("t", json!({}))), Verdict::Pass);
        assert_eq!(testing::kv_len(), 0);
    }

    #[test]
    fn tool_errors_are_never_cached() {
        let cache = plugin(json!({}));
        let error = json!({"content": [{"type": "text", "text": "boom"}], "isError": true});
        cache.intercept(&result("t", json!({"a": 1}), &error.to_string()));
        assert_eq!(testing::kv_len(), 0);
        assert_eq!(cache.intercept(&call("t", json!({"a": 1}))), Verdict::Pass);
        let success = json!({"content": [], "isError": false}).to_string();
        cache.intercept(&result("t", json!({"a": 1}), &success));
        assert!(
            is_answer(&cache.intercept(&call("t", json!({"a": 1})))),
            "isError: false is a success"
        );
        // Only the top-level `isError` counts.
        assert!(
            lifetime(
                r#"{"content":[{"type":"text","text":"\"isError\": true"}]}"#,
                1,
                1000
            )
            .is_some()
        );
        assert!(
            lifetime(
                r#"{"structuredContent":{"isError":true},"content":[]}"#,
                1,
                1000
            )
            .is_some()
        );
        assert!(lifetime(r#"{"content":[], "isError" : true}"#, 1, 1000).is_none());
    }

    #[test]
    fn only_the_configured_tools_are_cached() {
        let cache = plugin(json!({"tools": ["get_*", "search"]}));
        for name in ["get_user", "search", "delete_user", "searches"] {
            cache.intercept(&result(name, json!({}), &ok(name)));
        }
        assert_eq!(testing::kv_len(), 2);
        assert!(is_answer(&cache.intercept(&call("get_user", json!({})))));
        assert_eq!(
            cache.intercept(&call("delete_user", json!({}))),
            Verdict::Pass
        );
    }

    #[test]
    fn results_larger_than_max_entry_bytes_are_not_cached() {
        // ok("0123456789") is 45 bytes.
        let cache = plugin(json!({"max_entry_bytes": 50}));
        cache.intercept(&result("small", json!({}), &ok("0123456789")));
        cache.intercept(&result("big", json!({}), &ok(&"0123456789".repeat(3))));
        // 47 characters, 59 bytes.
        cache.intercept(&result("wide", json!({}), &ok("éééééééééééé")));
        assert!(is_answer(&cache.intercept(&call("small", json!({})))));
        assert_eq!(cache.intercept(&call("big", json!({}))), Verdict::Pass);
        assert_eq!(cache.intercept(&call("wide", json!({}))), Verdict::Pass);
    }

    #[test]
    fn entries_are_per_backend_and_per_session_when_asked() {
        let on = |server: &str, session: &str| {
            Message::request("tools/call", r#"{"name":"t"}"#)
                .with_server(server)
                .with_session(session)
        };
        let cache = plugin(json!({}));
        cache.intercept(&result("t", json!({}), &ok("x")));
        assert_eq!(cache.intercept(&on("b2", "s1")), Verdict::Pass);
        assert!(is_answer(&cache.intercept(&on("b1", "s2"))));

        let cache = plugin(json!({"per_session": true}));
        cache.intercept(&result("t", json!({}), &ok("x")));
        assert_eq!(cache.intercept(&on("b1", "s2")), Verdict::Pass);
        assert!(is_answer(&cache.intercept(&on("b1", "s1"))));
    }

    #[test]
    fn missing_and_empty_arguments_are_the_same_call() {
        let cache = plugin(json!({}));
        cache.intercept(&result_with("t", json!({}), &ok("x")));
        assert!(is_answer(&cache.intercept(&call("t", json!({})))));
    }

    #[test]
    fn long_calls_are_keyed_by_a_hash_and_never_confused() {
        let cache = plugin(json!({}));
        let long = |c: &str| json!({"text": format!("{}{c}{}", "a".repeat(300), "a".repeat(300))});
        cache.intercept(&result("t", long("x"), &ok("for x")));
        assert_eq!(
            answered_text(cache.intercept(&call("t", long("x")))),
            "for x"
        );
        assert_eq!(cache.intercept(&call("t", long("y"))), Verdict::Pass);
        cache.intercept(&result("t", long("y"), &ok("for y")));
        assert_eq!(
            answered_text(cache.intercept(&call("t", long("y")))),
            "for y"
        );
        assert_eq!(
            answered_text(cache.intercept(&call("t", long("x")))),
            "for x"
        );

        // An entry under a colliding key is another call's: not an answer.
        let identity = r#"["b",null,"t",{"a":1}]"#;
        let stored = entry(identity.to_owned(), "{}").into_bytes();
        assert_eq!(lookup(stored.clone(), identity).as_deref(), Some("{}"));
        assert_eq!(lookup(stored, r#"["b",null,"t",{"a":2}]"#), None);
        assert!(key(&"x".repeat(600)).starts_with("tools/call#"));
        assert_eq!(key("[]"), "tools/call:[]");
    }

    #[test]
    fn a_results_own_ttl_ms_shortens_the_configured_one_and_zero_keeps_it_out() {
        let with = |fields: Value| ok_with("x", fields);
        let life = |fields: Value| lifetime(&with(fields), 1000, 65536);
        let public = |ttl_ms| {
            Some(Lifetime {
                ttl_ms,
                private: false,
            })
        };
        assert_eq!(life(json!({"ttlMs": 300})), public(300));
        assert_eq!(life(json!({"ttlMs": 60_000})), public(1000));
        assert_eq!(life(json!({"ttlMs": 300.0})), public(300));
        for never in [json!(0), json!(-5), json!(1.5), json!(null), json!("300")] {
            assert_eq!(life(json!({"ttlMs": never})), None, "{never}");
        }
        assert_eq!(
            life(json!({"cacheScope": "private"})),
            Some(Lifetime {
                ttl_ms: 1000,
                private: true
            })
        );
        assert_eq!(life(json!({"cacheScope": "public"})), public(1000));

        // Through the plugin: gone after the result's own 1 ms, not the configured minute.
        let cache = plugin(json!({"ttl_ms": 60_000}));
        cache.intercept(&result("short", json!({}), &with(json!({"ttlMs": 1}))));
        cache.intercept(&result("never", json!({}), &with(json!({"ttlMs": 0}))));
        assert_eq!(cache.intercept(&call("never", json!({}))), Verdict::Pass);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(cache.intercept(&call("short", json!({}))), Verdict::Pass);
    }

    #[test]
    fn without_a_principal_a_private_result_is_never_cached_a_public_one_is() {
        let cache = plugin(json!({"per_session": true}));
        let private = ok_with("secret", json!({"cacheScope": "private"}));
        let public = ok_with("shared", json!({"cacheScope": "public"}));
        cache.intercept(&result("mine", json!({}), &private));
        cache.intercept(&result("ours", json!({}), &public));
        assert_eq!(cache.intercept(&call("mine", json!({}))), Verdict::Pass);
        assert!(is_answer(&cache.intercept(&call("ours", json!({})))));
        assert_eq!(testing::kv_len(), 1);
    }

    #[test]
    fn a_private_result_is_cached_for_its_principal_alone() {
        let cache = plugin(json!({}));
        let call_as = |name: &str, who: Principal| call(name, json!({})).with_principal(who);
        let alices = ok_with("alice's", json!({"cacheScope": "private", "ttlMs": 60_000}));
        cache.intercept(&result("mine", json!({}), &alices).with_principal(principal("alice")));
        assert_eq!(
            cache.intercept(&call_as("mine", principal("alice"))),
            Verdict::Respond(alices.clone())
        );
        assert_eq!(
            cache.intercept(&call_as("mine", principal("bob"))),
            Verdict::Pass,
            "another subject"
        );
        let other_issuer = Principal::new("https://other.idp", "alice");
        assert_eq!(
            cache.intercept(&call_as("mine", other_issuer)),
            Verdict::Pass,
            "the same subject of another issuer"
        );
        assert_eq!(
            cache.intercept(&call("mine", json!({}))),
            Verdict::Pass,
            "a session without a principal"
        );
        // Bob's own private answer is his, and Alice's stays hers.
        let bobs = ok_with("bob's", json!({"cacheScope": "private"}));
        cache.intercept(&result("mine", json!({}), &bobs).with_principal(principal("bob")));
        assert_eq!(
            answered_text(cache.intercept(&call_as("mine", principal("bob")))),
            "bob's"
        );
        assert_eq!(
            answered_text(cache.intercept(&call_as("mine", principal("alice")))),
            "alice's"
        );
        // A public result stays shared by everyone, principal or not.
        cache.intercept(
            &result("ours", json!({}), &ok("shared")).with_principal(principal("alice")),
        );
        assert!(is_answer(
            &cache.intercept(&call_as("ours", principal("bob")))
        ));
        assert!(is_answer(&cache.intercept(&call("ours", json!({})))));
    }

    #[test]
    fn a_retry_carrying_client_input_is_neither_answered_nor_stored() {
        let cache = plugin(json!({}));
        cache.intercept(&result("t", json!({"a": 1}), &ok("first")));
        for retry in [
            json!({"arguments": {"a": 1}, "inputResponses": {"elicit": {"action": "accept"}}}),
            json!({"arguments": {"a": 1}, "requestState": "opaque"}),
            json!({"arguments": {"a": 1}, "requestState": null}),
        ] {
            assert_eq!(
                cache.intercept(&call_with("t", retry.clone())),
                Verdict::Pass,
                "{retry}"
            );
            cache.intercept(&result_with("t", retry, &ok("after input")));
        }
        assert_eq!(
            answered_text(cache.intercept(&call("t", json!({"a": 1})))),
            "first",
            "the plain call's entry stands"
        );
    }

    #[test]
    fn a_store_error_is_a_miss_and_a_dropped_write_with_a_warning() {
        let cache = plugin(json!({}));
        cache.intercept(&result("t", json!({}), &ok("x")));
        testing::fail_store(Some(store::StoreError::Timeout));
        assert_eq!(cache.intercept(&call("t", json!({}))), Verdict::Pass);
        cache.intercept(&result("u", json!({}), &ok("y")));
        assert_eq!(
            testing::take_logs(),
            [
                (
                    Level::Warn,
                    "cannot look up tools/call `t` in the cache: the store did not answer in time"
                        .into()
                ),
                (
                    Level::Warn,
                    "cannot store the result of tools/call `u` in the cache: the store did not answer in time"
                        .into()
                ),
            ]
        );
        testing::fail_store(None);
        assert!(is_answer(&cache.intercept(&call("t", json!({})))));
        assert_eq!(cache.intercept(&call("u", json!({}))), Verdict::Pass);
    }

    #[test]
    fn bad_configs_are_refused_with_the_key_named() {
        let err = |config: Value| ResponseCache::init(&config.to_string()).err().unwrap();
        assert!(
            err(json!({"ttl": 5})).starts_with(
                "invalid config: unknown field `ttl`, expected one of `ttl_ms`, `tools`, `max_entry_bytes`, `per_session`"
            )
        );
        assert_eq!(
            err(json!({"ttl_ms": 0})),
            "invalid config: `ttl_ms` must be a whole number of milliseconds, at least 1; got 0"
        );
        assert_eq!(
            err(json!({"max_entry_bytes": 0})),
            "invalid config: `max_entry_bytes` must be a whole number, at least 1; got 0"
        );
        assert_eq!(
            err(json!({"tools": [""]})),
            "invalid config: `tools` must be a list of tool names or globs (`*`, `?`); got an empty name"
        );
        assert!(err(json!({"tools": "get_*"})).starts_with("invalid config: invalid type: string"));
        assert!(
            err(json!({"per_session": "yes"})).starts_with("invalid config: invalid type: string")
        );
    }
}

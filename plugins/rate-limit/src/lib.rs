//! interpose plugin: limits `tools/call` requests per tool, per principal, per
//! session or overall, in fixed windows counted with the plugin store's atomic
//! `increment`, so that the limits hold across pooled instances and, with
//! `[store] url`, across replicas. See the README for the configuration.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use interpose_plugin::host::{self, store};
use interpose_plugin::{
    Kind, Manifest, Message, Plugin, Verdict, export_plugin, manifest, parse_config,
};
use serde::Deserialize;
use serde_json::json;

/// The JSON-RPC error code of a call over its limit (429 is HTTP's "Too Many
/// Requests").
pub const RATE_LIMITED: i64 = -32029;

/// The plugin's `config` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    limits: Vec<LimitConfig>,
}

/// One `[[plugins.config.limits]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitConfig {
    /// Tool names: exact, or a prefix ending in `*` (`search*`), or `*`.
    tools: Vec<String>,
    #[serde(default)]
    per: Per,
    max: u64,
    window_s: u64,
}

/// Whose calls one counter counts.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Per {
    /// Each authenticated user (issuer and subject), across their sessions; a
    /// session with no principal (stdio, no `[auth]`) counts on its own.
    Principal,
    /// Each client session.
    #[default]
    Session,
    /// Every caller together.
    All,
}

impl Per {
    fn name(self) -> &'static str {
        match self {
            Per::Principal => "principal",
            Per::Session => "session",
            Per::All => "all",
        }
    }
}

/// A checked limit.
#[derive(Debug)]
struct Limit {
    tools: Vec<String>,
    per: Per,
    max: u64,
    window_ms: u64,
}

impl Limit {
    fn applies_to(&self, tool: &str) -> bool {
        self.tools
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => tool.starts_with(prefix),
                None => pattern == tool,
            })
    }
}

/// The rate-limit plugin.
pub struct RateLimit {
    limits: Vec<Limit>,
}

impl Plugin for RateLimit {
    fn init(config: &str) -> Result<(Self, Manifest), String> {
        let config: Config = parse_config(config)?;
        let limits = config
            .limits
            .into_iter()
            .enumerate()
            .map(|(index, limit)| checked(index + 1, limit))
            .collect::<Result<_, _>>()?;
        let manifest = manifest!().wants([Kind::Request], ["tools/call"]);
        Ok((RateLimit { limits }, manifest))
    }

    fn intercept(&self, msg: &Message) -> Verdict {
        // A call without a tool name is the backend's to refuse.
        let Some(tool) = msg.subject() else {
            return Verdict::Pass;
        };
        match self.admit(tool, msg, now_ms()) {
            Ok(verdict) => verdict,
            Err(e) => {
                // Trapping hands the call to the plugin's failure policy: `reject`
                // refuses it (fail closed), `skip` lets it through (fail open).
                host::warn(&format!("cannot count the call to `{tool}`: {e}"));
                panic!("rate-limit: store error: {e}");
            }
        }
    }
}

fn checked(index: usize, limit: LimitConfig) -> Result<Limit, String> {
    let fail = |what: &str| Err(format!("invalid config: limit {index}: {what}"));
    if limit.tools.is_empty() {
        return fail("`tools` is empty");
    }
    if limit.max == 0 {
        return fail("`max` must be at least 1");
    }
    if limit.window_s == 0 {
        return fail("`window_s` must be at least 1");
    }
    let Some(window_ms) = limit.window_s.checked_mul(1000) else {
        return fail("`window_s` is too large");
    };
    Ok(Limit {
        tools: limit.tools,
        per: limit.per,
        max: limit.max,
        window_ms,
    })
}

/// Milliseconds since the Unix epoch: windows start at multiples of their length,
/// the same instants on every replica (given synchronized clocks).
fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// How long a counter outlives its window, for replicas whose clocks differ a
/// little: the key of a window is never reused, so this only delays its removal.
const KEY_GRACE_MS: u64 = 5_000;

impl RateLimit {
    /// Counts the call against every limit for `tool`; the first limit over its
    /// maximum refuses it.
    fn admit(&self, tool: &str, msg: &Message, now: u64) -> Result<Verdict, store::StoreError> {
        for (index, limit) in self.limits.iter().enumerate() {
            if !limit.applies_to(tool) {
                continue;
            }
            let window = now / limit.window_ms;
            let left_ms = limit.window_ms - now % limit.window_ms;
            // Lengths before the parts that come from outside, so no two callers or
            // tools share a key.
            let caller = match (limit.per, msg.principal()) {
                (Per::Principal, Some(p)) => {
                    format!("p{}:{}{}", p.issuer.len(), p.issuer, p.subject)
                }
                (Per::Principal | Per::Session, _) => format!("s:{}", msg.session()),
                (Per::All, _) => String::new(),
            };
            let key = format!(
                "{index}:{}:{window}:{}:{tool}:{caller}",
                limit.per.name(),
                tool.len()
            );
            let ttl = Duration::from_millis(left_ms + KEY_GRACE_MS);
            let count = store::increment(&key, 1, Some(ttl))?;
            if u64::try_from(count).unwrap_or(0) > limit.max {
                return Ok(over_limit(tool, limit, left_ms));
            }
        }
        Ok(Verdict::Pass)
    }
}

fn over_limit(tool: &str, limit: &Limit, retry_after_ms: u64) -> Verdict {
    let seconds = limit.window_ms / 1000;
    let per = match limit.per {
        Per::All => String::new(),
        per => format!(" per {}", per.name()),
    };
    Verdict::reject_with_data(
        RATE_LIMITED,
        format!(
            "rate limit exceeded for tool `{tool}`: {} calls per {seconds} s{per}; retry in {retry_after_ms} ms",
            limit.max
        ),
        &json!({
            "retryAfterMs": retry_after_ms,
            "limit": limit.max,
            "windowS": seconds,
            "per": limit.per.name(),
            "tool": tool,
        }),
    )
}

export_plugin!(RateLimit);

#[cfg(test)]
mod tests {
    use interpose_plugin::host::testing;
    use interpose_plugin::{Principal, RpcError};
    use serde_json::{Value, json};

    use super::*;

    fn plugin(config: Value) -> RateLimit {
        RateLimit::init(&config.to_string()).unwrap().0
    }

    fn call(plugin: &RateLimit, tool: &str, session: &str, now: u64) -> Verdict {
        let msg =
            Message::request("tools/call", json!({"name": tool}).to_string()).with_session(session);
        plugin.admit(msg.subject().unwrap(), &msg, now).unwrap()
    }

    /// A call of `tool` in `session`, authenticated as `subject`.
    fn call_as(plugin: &RateLimit, tool: &str, session: &str, subject: &str) -> Verdict {
        let principal = Principal {
            subject: subject.into(),
            issuer: "https://idp.example".into(),
            scopes: Vec::new(),
            claims: "{}".into(),
        };
        let msg = Message::request("tools/call", json!({"name": tool}).to_string())
            .with_session(session)
            .with_principal(principal);
        plugin.admit(msg.subject().unwrap(), &msg, 0).unwrap()
    }

    fn rejection(verdict: Verdict) -> RpcError {
        match verdict {
            Verdict::Reject(err) => err,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    fn search_limit(per: &str) -> RateLimit {
        plugin(json!({"limits": [{"tools": ["search*"], "per": per, "max": 2, "window_s": 60}]}))
    }

    #[test]
    fn admits_max_calls_per_window_then_refuses_with_a_retry_hint() {
        testing::clear_kv();
        let limiter = search_limit("session");
        let t0 = 600_000;
        assert_eq!(call(&limiter, "search_web", "s1", t0), Verdict::Pass);
        assert_eq!(call(&limiter, "search_web", "s1", t0 + 1), Verdict::Pass);
        let err = rejection(call(&limiter, "search_web", "s1", t0 + 15_000));
        assert_eq!(err.code, RATE_LIMITED);
        assert_eq!(
            err.message,
            "rate limit exceeded for tool `search_web`: 2 calls per 60 s per session; retry in 45000 ms"
        );
        let data: Value = serde_json::from_str(err.data.as_deref().unwrap()).unwrap();
        assert_eq!(
            data,
            json!({"retryAfterMs": 45000, "limit": 2, "windowS": 60, "per": "session", "tool": "search_web"})
        );
        assert_eq!(
            call(&limiter, "search_web", "s1", t0 + 60_000),
            Verdict::Pass,
            "the next window starts afresh"
        );
    }

    #[test]
    fn counts_apart_per_session_per_tool_and_together_for_all() {
        testing::clear_kv();
        let per_session = search_limit("session");
        let t = 60_000;
        for _ in 0..2 {
            assert_eq!(call(&per_session, "search_web", "a", t), Verdict::Pass);
        }
        assert_eq!(
            call(&per_session, "search_web", "b", t),
            Verdict::Pass,
            "another session"
        );
        assert_eq!(
            call(&per_session, "search_docs", "a", t),
            Verdict::Pass,
            "another tool"
        );
        assert_eq!(
            call(&per_session, "fetch", "a", t),
            Verdict::Pass,
            "no limit applies"
        );
        assert_eq!(
            rejection(call(&per_session, "search_web", "a", t)).code,
            RATE_LIMITED
        );

        testing::clear_kv();
        let all = search_limit("all");
        assert_eq!(call(&all, "search_web", "a", t), Verdict::Pass);
        assert_eq!(call(&all, "search_web", "b", t), Verdict::Pass);
        assert_eq!(
            rejection(call(&all, "search_web", "c", t)).code,
            RATE_LIMITED
        );
    }

    #[test]
    fn principal_limits_count_each_user_across_sessions() {
        testing::clear_kv();
        let limiter = search_limit("principal");
        // alice's two sessions share one counter; bob has his own.
        assert_eq!(call_as(&limiter, "search", "a", "alice"), Verdict::Pass);
        assert_eq!(call_as(&limiter, "search", "b", "alice"), Verdict::Pass);
        assert_eq!(call_as(&limiter, "search", "c", "bob"), Verdict::Pass);
        let err = rejection(call_as(&limiter, "search", "d", "alice"));
        assert!(
            err.message.ends_with("per principal; retry in 60000 ms"),
            "{}",
            err.message
        );
        assert_eq!(call_as(&limiter, "search", "c", "bob"), Verdict::Pass);
        // Sessions without a principal count each on their own.
        for _ in 0..2 {
            assert_eq!(call(&limiter, "search", "x", 0), Verdict::Pass);
        }
        assert_eq!(call(&limiter, "search", "y", 0), Verdict::Pass);
        assert_eq!(
            rejection(call(&limiter, "search", "x", 0)).code,
            RATE_LIMITED
        );
    }

    #[test]
    fn every_matching_limit_counts() {
        testing::clear_kv();
        let limiter = plugin(json!({"limits": [
            {"tools": ["*"], "per": "session", "max": 10, "window_s": 1},
            {"tools": ["write_file", "delete_*"], "per": "all", "max": 1, "window_s": 60},
        ]}));
        assert_eq!(call(&limiter, "delete_repo", "a", 0), Verdict::Pass);
        let err = rejection(call(&limiter, "delete_repo", "b", 0));
        assert!(err.message.contains("1 calls per 60 s;"), "{}", err.message);
        assert_eq!(call(&limiter, "write_file", "a", 0), Verdict::Pass);
        assert_eq!(call(&limiter, "read_file", "a", 0), Verdict::Pass);
    }

    #[test]
    fn a_store_error_is_returned_for_the_failure_policy() {
        testing::clear_kv();
        let limiter = search_limit("session");
        testing::fail_store(Some(store::StoreError::Timeout));
        let msg = Message::request("tools/call", r#"{"name":"search"}"#).with_session("a");
        assert_eq!(
            limiter.admit("search", &msg, 0),
            Err(store::StoreError::Timeout)
        );
        testing::clear_kv();
    }

    #[test]
    fn bad_configs_are_refused_with_the_limit_named() {
        let err = |config: Value| RateLimit::init(&config.to_string()).err().unwrap();
        assert_eq!(
            err(json!({"limits": [{"tools": [], "max": 1, "window_s": 1}]})),
            "invalid config: limit 1: `tools` is empty"
        );
        assert_eq!(
            err(json!({"limits": [{"tools": ["a"], "max": 0, "window_s": 1}]})),
            "invalid config: limit 1: `max` must be at least 1"
        );
        assert_eq!(
            err(json!({"limits": [{"tools": ["a"], "max": 1, "window_s": 0}]})),
            "invalid config: limit 1: `window_s` must be at least 1"
        );
        assert!(
            err(json!({"limits": [{"tools": ["a"], "per": "user", "max": 1, "window_s": 1}]}))
                .contains("unknown variant `user`")
        );
    }
}

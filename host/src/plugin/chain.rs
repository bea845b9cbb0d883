//! The plugin chain the relay asks about every message.
//!
//! Requests and notifications walk the plugins first to last, responses and errors
//! last to first. A plugin whose manifest does not want the message is skipped
//! without entering Wasm. A rewrite feeds the next plugin; `respond` (requests) and
//! `reject` end the walk. A message that a plugin failed on gets the plugin's
//! `failure_policy`; one it was not called for (over its input limit, or in a session
//! whose breaker is open) gets its `unchecked_policy`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use super::bindings::GuestVerdict;
use super::engine::PluginRuntime;
use super::health::{Admission, Transition};
use super::limits::Failure;
use super::message_view::MessageView;
use super::slot::PluginSlot;
use super::stats::Outcome;
use super::version::{LoadError, PluginVersion};
use crate::config::{FailurePolicy, PluginConfig};
use crate::session::intercept::{BoxFuture, Intercepted, Interceptor, Verdict};
use crate::wire::jsonrpc::{ErrorObject, Kind, PLUGIN_ERROR};

/// Wasm plugins in order, implementing [`Interceptor`].
pub struct InterceptorChain {
    pub(super) runtime: Arc<PluginRuntime>,
    pub(super) slots: Vec<PluginSlot>,
    wants_request: AtomicBool,
    step_observer: OnceLock<StepObserver>,
    /// Whether calls are timed: the statistics that show it are logged at debug level.
    timed: bool,
}

/// What one plugin did with one message.
#[derive(Debug, Clone, Copy)]
pub struct PluginStep<'a> {
    pub plugin: &'a str,
    pub outcome: Outcome,
    /// The error message of a reject, or the cause of a failure.
    pub detail: Option<&'a str>,
}

/// Told about every plugin call, in walk order (the demo prints these).
pub type StepObserver = Box<dyn Fn(PluginStep<'_>) + Send + Sync>;

impl InterceptorChain {
    /// Loads every plugin (in chain order). Any plugin that cannot be loaded is an
    /// error: the proxy does not start with part of its chain missing.
    pub async fn load(
        runtime: Arc<PluginRuntime>,
        plugins: Vec<PluginConfig>,
        max_message_bytes: usize,
    ) -> Result<Arc<Self>, LoadError> {
        let mut slots = Vec::with_capacity(plugins.len());
        for config in plugins {
            slots.push(PluginSlot::load(&runtime, config, max_message_bytes).await?);
        }
        let chain = InterceptorChain {
            runtime,
            slots,
            wants_request: AtomicBool::new(false),
            step_observer: OnceLock::new(),
            timed: tracing::enabled!(target: "interpose::plugin", tracing::Level::DEBUG),
        };
        chain.update_wants_request();
        Ok(Arc::new(chain))
    }

    /// The names of the plugins, in chain order.
    pub fn plugin_names(&self) -> Vec<String> {
        self.slots
            .iter()
            .map(|s| s.peek().name.to_string())
            .collect()
    }

    /// Reports every plugin call to `observer`, from now on. Only the first observer
    /// set is kept.
    pub fn observe_steps(&self, observer: impl Fn(PluginStep<'_>) + Send + Sync + 'static) {
        if self.step_observer.set(Box::new(observer)).is_err() {
            tracing::warn!("the plugin chain already has a step observer; the new one is ignored");
        }
    }

    fn report(&self, plugin: &str, outcome: Outcome, detail: Option<&str>) {
        if let Some(observer) = self.step_observer.get() {
            observer(PluginStep {
                plugin,
                outcome,
                detail,
            });
        }
    }

    /// The version of the plugin at `index` serving new messages.
    pub fn version(&self, index: usize) -> Option<Arc<PluginVersion>> {
        self.slots.get(index).map(PluginSlot::current)
    }

    pub(super) fn update_wants_request(&self) {
        let wants = self.slots.iter().any(|s| s.peek().manifest.wants_request);
        self.wants_request.store(wants, Ordering::Relaxed);
    }

    /// The first plugin (in walk order) that wants `msg`, if any.
    fn first_interested(&self, kind: Kind, method: &str) -> Option<usize> {
        let wants = |i: &usize| self.slots[*i].peek().filter.matches(kind, method);
        if walks_backwards(kind) {
            (0..self.slots.len()).rev().find(wants)
        } else {
            (0..self.slots.len()).find(wants)
        }
    }

    async fn walk(&self, msg: Intercepted<'_>, first: usize) -> Verdict {
        let mut state = WalkState {
            kind: msg.kind,
            payload: None,
            view: None,
        };
        let backwards = walks_backwards(msg.kind);
        let steps = if backwards {
            first + 1
        } else {
            self.slots.len() - first
        };
        for step in 0..steps {
            let index = if backwards {
                first - step
            } else {
                first + step
            };
            let slot = &self.slots[index];
            let version = slot.current();
            if !version.filter.matches(state.kind, msg.method) {
                continue;
            }
            if let Some(verdict) = self.ask(slot, &version, &msg, &mut state).await {
                return verdict;
            }
        }
        match state.payload {
            Some(payload) => Verdict::Rewrite(payload),
            None => Verdict::Pass,
        }
    }

    /// Asks one plugin. `Some` ends the walk with that verdict; `None` goes on.
    async fn ask(
        &self,
        slot: &PluginSlot,
        version: &PluginVersion,
        msg: &Intercepted<'_>,
        state: &mut WalkState,
    ) -> Option<Verdict> {
        let view = state
            .view
            .get_or_insert_with(|| MessageView::new(msg))
            .for_plugin(version.manifest.wants_request);
        // Checked before the breaker: an oversized message is refused for what it is,
        // and never takes the one trial call of a half-open breaker.
        let (len, limit) = (view.input_len(), version.limits.max_input_bytes);
        if len > limit {
            return self.not_called(slot, version, msg, Failure::InputTooLarge { len, limit });
        }
        let breaker = (!msg.shared_session).then_some(&version.breaker);
        match breaker.map_or(Admission::Call, |b| b.admit(msg.session)) {
            Admission::Call => {}
            Admission::Refused => return self.not_called(slot, version, msg, Failure::Paused),
            Admission::Trial => tracing::info!(
                target: "interpose::plugin",
                plugin = &*version.name,
                session = msg.session,
                "plugin breaker half-open: its cooldown is over, one message of this session is tried"
            ),
        }
        // Timing costs two clock reads per call; it is only ever shown at debug level.
        let started = self.timed.then(Instant::now);
        let result = version.call(view).await;
        let result = result.and_then(|verdict| checked(verdict, version.limits.max_output_bytes));
        let elapsed = started.map_or(Duration::ZERO, |started| started.elapsed());
        let (outcome, next) = match result {
            Ok(Checked::Pass) => (Outcome::Pass, None),
            Ok(Checked::Payload { payload, respond }) => {
                if respond && state.kind == Kind::Request {
                    (Outcome::Respond, Some(Verdict::Respond(payload)))
                } else {
                    // On an error this recovers it: the answer is now a result.
                    if state.kind == Kind::Error {
                        state.kind = Kind::Response;
                    }
                    if let Some(view) = &mut state.view {
                        view.rewritten(&payload);
                    }
                    state.payload = Some(payload);
                    (Outcome::Rewrite, None)
                }
            }
            Ok(Checked::Reject(error)) => (Outcome::Reject, Some(Verdict::Reject(error))),
            Err(failure) => {
                self.record(slot, version, Outcome::Failure, elapsed);
                self.report(&version.name, Outcome::Failure, Some(&failure.to_string()));
                return self.failed(slot, version, msg, failure);
            }
        };
        if breaker.and_then(|b| b.success(msg.session)) == Some(Transition::Closed) {
            tracing::info!(
                target: "interpose::plugin",
                plugin = &*version.name,
                session = msg.session,
                "plugin breaker closed: the trial call worked, the plugin serves this session again"
            );
        }
        self.record(slot, version, outcome, elapsed);
        let detail = match &next {
            Some(Verdict::Reject(error)) => Some(error.message.as_str()),
            _ => None,
        };
        self.report(&version.name, outcome, detail);
        next
    }

    fn record(
        &self,
        slot: &PluginSlot,
        version: &PluginVersion,
        outcome: Outcome,
        elapsed: std::time::Duration,
    ) {
        if slot.stats.record(outcome, elapsed) {
            slot.stats.log(&version.name);
        }
    }

    /// Applies the failure policy to a message the plugin failed on, and counts the
    /// failure against the session's breaker (a session clients share has none: each
    /// failure there is the one message's).
    fn failed(
        &self,
        slot: &PluginSlot,
        version: &PluginVersion,
        msg: &Intercepted<'_>,
        failure: Failure,
    ) -> Option<Verdict> {
        let name = &*version.name;
        let policy = slot.config.failure_policy;
        tracing::warn!(
            target: "interpose::plugin",
            plugin = name,
            method = msg.method,
            kind = msg.kind.as_str(),
            session = msg.session,
            policy = policy.as_str(),
            "plugin failed: {failure}"
        );
        let unchecked = slot.config.unchecked_policy.as_str();
        let cooldown_ms = version.breaker.cooldown().as_millis();
        let transition = if msg.shared_session {
            None
        } else {
            version.breaker.failure(msg.session)
        };
        match transition {
            Some(Transition::Opened(reason)) => {
                slot.stats.breaker_opened();
                tracing::error!(
                    target: "interpose::plugin",
                    plugin = name,
                    session = msg.session,
                    unchecked_policy = unchecked,
                    "plugin breaker OPEN after {reason} in this session: for {cooldown_ms} ms the plugin is not called for this session's messages, which get its unchecked_policy ({unchecked}); then one is tried again. Other sessions are not affected"
                );
            }
            Some(Transition::Reopened) => {
                slot.stats.breaker_opened();
                tracing::error!(
                    target: "interpose::plugin",
                    plugin = name,
                    session = msg.session,
                    unchecked_policy = unchecked,
                    "plugin breaker OPEN again: the trial call failed; the plugin is not called for this session's messages for another {cooldown_ms} ms"
                );
            }
            Some(Transition::Closed) | None => {}
        }
        outcome_of(policy, name, &failure)
    }

    /// Applies the unchecked policy to a message the plugin was not called for.
    fn not_called(
        &self,
        slot: &PluginSlot,
        version: &PluginVersion,
        msg: &Intercepted<'_>,
        failure: Failure,
    ) -> Option<Verdict> {
        let name = &*version.name;
        let policy = slot.config.unchecked_policy;
        let oversized = matches!(failure, Failure::InputTooLarge { .. });
        slot.stats.not_called(oversized);
        self.report(name, Outcome::Failure, Some(&failure.to_string()));
        // An open breaker was logged once, when it opened; each oversized message is
        // logged, as the client's doing.
        if oversized {
            tracing::warn!(
                target: "interpose::plugin",
                plugin = name,
                method = msg.method,
                kind = msg.kind.as_str(),
                session = msg.session,
                unchecked_policy = policy.as_str(),
                "plugin not called: {failure}"
            );
        } else {
            tracing::debug!(
                target: "interpose::plugin",
                plugin = name,
                method = msg.method,
                kind = msg.kind.as_str(),
                session = msg.session,
                unchecked_policy = policy.as_str(),
                "plugin not called: {failure}"
            );
        }
        outcome_of(policy, name, &failure)
    }
}

/// What `policy` makes of a message `failure` happened to.
fn outcome_of(policy: FailurePolicy, name: &str, failure: &Failure) -> Option<Verdict> {
    match policy {
        FailurePolicy::Reject => Some(Verdict::Reject(plugin_error(name, failure))),
        FailurePolicy::Skip => None,
    }
}

/// Responses and errors walk the chain backwards.
fn walks_backwards(kind: Kind) -> bool {
    matches!(kind, Kind::Response | Kind::Error)
}

/// The message's state as it moves along the chain.
struct WalkState {
    kind: Kind,
    /// The payload as rewritten so far; `None` while unchanged.
    payload: Option<Box<RawValue>>,
    /// The message as plugins see it, made when the first plugin is entered.
    view: Option<MessageView>,
}

/// The error a client sees when a plugin failed under the `reject` policy.
pub fn plugin_error(name: &str, failure: &Failure) -> ErrorObject {
    let message = if failure.not_called() {
        format!("plugin `{name}` was not called: {failure}")
    } else {
        format!("plugin `{name}` failed: {failure}")
    };
    ErrorObject::new(PLUGIN_ERROR, message)
        .with_data(serde_json::json!({ "plugin": name, "cause": failure.to_string() }))
}

/// A guest verdict whose text has been checked.
enum Checked {
    Pass,
    Payload {
        payload: Box<RawValue>,
        respond: bool,
    },
    Reject(ErrorObject),
}

/// Checks what the guest returned: JSON text must be one valid value and within the
/// output cap.
fn checked(verdict: GuestVerdict, limit: usize) -> Result<Checked, Failure> {
    Ok(match verdict {
        GuestVerdict::Pass => Checked::Pass,
        GuestVerdict::Rewrite(text) => Checked::Payload {
            payload: checked_json(text, "rewrite", limit)?,
            respond: false,
        },
        GuestVerdict::Respond(text) => Checked::Payload {
            payload: checked_json(text, "respond", limit)?,
            respond: true,
        },
        GuestVerdict::Reject {
            code,
            message,
            data,
        } => {
            let len = message.len() + data.as_ref().map_or(0, String::len);
            if len > limit {
                return Err(Failure::TooLarge {
                    what: "reject",
                    len,
                    limit,
                });
            }
            let data = data.map(|d| checked_json(d, "reject", limit)).transpose()?;
            Checked::Reject(ErrorObject {
                code,
                message,
                data,
            })
        }
    })
}

fn checked_json(text: String, what: &'static str, limit: usize) -> Result<Box<RawValue>, Failure> {
    if text.len() > limit {
        return Err(Failure::TooLarge {
            what,
            len: text.len(),
            limit,
        });
    }
    RawValue::from_string(text).map_err(|_| Failure::InvalidJson(what))
}

impl Interceptor for InterceptorChain {
    fn intercept<'a>(&'a self, msg: Intercepted<'a>) -> BoxFuture<'a, Verdict> {
        match self.first_interested(msg.kind, msg.method) {
            None => Box::pin(std::future::ready(Verdict::Pass)),
            Some(first) => Box::pin(self.walk(msg, first)),
        }
    }

    fn wants_request_payload(&self) -> bool {
        self.wants_request.load(Ordering::Relaxed)
    }
}

impl Drop for InterceptorChain {
    fn drop(&mut self) {
        for slot in &self.slots {
            slot.stats.log(&slot.peek().name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_must_be_json_within_the_cap() {
        assert!(matches!(
            checked(GuestVerdict::Rewrite("{\"a\":1}".into()), 100),
            Ok(Checked::Payload { respond: false, .. })
        ));
        assert!(matches!(
            checked(GuestVerdict::Rewrite("{\"a\":".into()), 100),
            Err(Failure::InvalidJson("rewrite"))
        ));
        assert!(matches!(
            checked(GuestVerdict::Respond("[1,2,3]".into()), 3),
            Err(Failure::TooLarge {
                what: "respond",
                len: 7,
                limit: 3
            })
        ));
        assert!(matches!(
            checked(
                GuestVerdict::Reject {
                    code: 1,
                    message: "m".into(),
                    data: Some("nope".into())
                },
                100
            ),
            Err(Failure::InvalidJson("reject"))
        ));
    }

    #[test]
    fn plugin_error_names_the_plugin_and_cause() {
        let e = plugin_error(
            "redact",
            &Failure::Deadline(std::time::Duration::from_millis(50)),
        );
        assert_eq!(e.code, PLUGIN_ERROR);
        assert_eq!(
            e.message,
            "plugin `redact` failed: deadline of 50 ms exceeded"
        );
        assert_eq!(
            e.data.unwrap().get(),
            r#"{"cause":"deadline of 50 ms exceeded","plugin":"redact"}"#
        );
        let e = plugin_error("tool-policy", &Failure::InputTooLarge { len: 9, limit: 8 });
        assert_eq!(
            e.message,
            "plugin `tool-policy` was not called: a message of 9 bytes is over the input limit of 8 bytes (`max_input_bytes`)"
        );
        assert_eq!(
            plugin_error("redact", &Failure::Paused).message,
            "plugin `redact` was not called: paused for this session after repeated failures"
        );
    }
}

//! The plugin chain the relay asks about every message.
//!
//! Requests and notifications walk the plugins first to last, responses and errors
//! last to first. A plugin whose manifest does not want the message is skipped
//! without entering Wasm. A rewrite feeds the next plugin. A request's `respond` or
//! `reject` ends its walk, and the answer made walks back through the plugins before
//! the one that made it, as any answer does (Envoy's local replies go back through
//! the earlier filters likewise). A notification's `reject` drops it. An answer's
//! `reject` replaces it with the error, and its walk goes on. A message that a
//! plugin failed on gets the plugin's
//! `failure_policy`; one it was not called for (over its input limit, or in a session
//! whose breaker is open) gets its `unchecked_policy`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::engine::PluginRuntime;
use super::health::{Admission, Transition};
use super::limits::Failure;
use super::message_view::MessageView;
use super::slot::PluginSlot;
use super::stats::{Outcome, cause};
use super::version::{LoadError, PluginVersion};
use crate::config::{FailurePolicy, PluginConfig};
use crate::session::intercept::{Intercepted, Interceptor, Verdict, VerdictFuture};
use crate::telemetry::metrics::{PluginCensus, VerdictLabel};
use crate::telemetry::trace;
use crate::wire::jsonrpc::{ErrorObject, Kind, PLUGIN_ERROR, Payload};

/// Wasm plugins in order, implementing [`Interceptor`].
pub struct InterceptorChain {
    pub(super) runtime: Arc<PluginRuntime>,
    pub(super) slots: Vec<PluginSlot>,
    wants_request: AtomicBool,
    step_observer: OnceLock<StepObserver>,
}

/// What one plugin did with one message.
#[derive(Debug, Clone, Copy)]
pub struct PluginStep<'a> {
    pub plugin: &'a str,
    pub outcome: Outcome,
    /// The error message of a reject, or the cause of a failure.
    pub detail: Option<&'a str>,
    /// Whether the plugin was called with the answer a plugin after it made to the
    /// message (walking back), rather than with the message itself.
    pub on_chain_answer: bool,
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
        };
        chain.update_wants_request();
        let chain = Arc::new(chain);
        let census: Weak<dyn PluginCensus> = Arc::downgrade(&chain) as _;
        crate::telemetry::metrics().count_instances_of(census);
        Ok(chain)
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

    fn report(&self, plugin: &str, outcome: Outcome, detail: Option<&str>, state: &WalkState) {
        if let Some(observer) = self.step_observer.get() {
            observer(PluginStep {
                plugin,
                outcome,
                detail,
                on_chain_answer: state.chain_answer,
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

    /// Requests and notifications: the plugins from `first` on, in order. A request
    /// that a plugin answers (`respond`, `reject`, or a failure under `reject`) goes
    /// no further; its answer walks back through the plugins before that one.
    async fn walk_forward(&self, msg: Intercepted<'_>, first: usize) -> Verdict {
        let started = Instant::now();
        let mut state = WalkState::new(msg.kind, false);
        for index in first..self.slots.len() {
            let slot = &self.slots[index];
            let version = slot.current();
            if !version.filter.matches(msg.kind, msg.method) {
                continue;
            }
            let answer = match self.ask(slot, &version, &msg, &mut state).await {
                Verdict::Pass => continue,
                Verdict::Rewrite(payload) => {
                    state.rewrite(payload);
                    continue;
                }
                // A notification is never answered: `reject` drops it (see `ask` for
                // `respond`, which is a rewrite here).
                Verdict::Reject(error) if msg.kind == Kind::Notification => {
                    return Verdict::Reject(error);
                }
                Verdict::Respond(result) => ChainAnswer::Result(result),
                Verdict::Reject(error) => ChainAnswer::Error(error),
            };
            let request_payload = state.payload.as_ref().or(msg.payload);
            // Boxed: the rare path, which would otherwise grow every walk's future.
            return Box::pin(self.walk_answer_back(&msg, request_payload, answer, index, started))
                .await;
        }
        state.into_verdict()
    }

    /// Walks the answer plugin `at` made to `request` back through the plugins
    /// before it, in reverse, as an answer from the other side walks the chain.
    /// Returns the request's verdict: `Respond` or `Reject` with the answer as they
    /// left it.
    async fn walk_answer_back(
        &self,
        request: &Intercepted<'_>,
        request_payload: Option<&Payload>,
        answer: ChainAnswer,
        at: usize,
        started: Instant,
    ) -> Verdict {
        let (kind, payload, error) = match &answer {
            ChainAnswer::Result(result) => (Kind::Response, Some(result), None),
            ChainAnswer::Error(error) => (Kind::Error, None, Some(error)),
        };
        let msg = Intercepted {
            direction: request.direction.reversed(),
            kind,
            payload,
            error,
            request_payload: request_payload.filter(|_| self.wants_request_payload()),
            elapsed: Some(started.elapsed()),
            ..*request
        };
        match (self.walk_back(msg, at, true).await, answer) {
            (Verdict::Pass, ChainAnswer::Result(result)) => Verdict::Respond(result),
            (Verdict::Pass, ChainAnswer::Error(error)) => Verdict::Reject(error),
            (Verdict::Rewrite(result) | Verdict::Respond(result), _) => Verdict::Respond(result),
            (Verdict::Reject(error), _) => Verdict::Reject(error),
        }
    }

    /// Answers: the plugins before `end`, last to first. Nothing ends this walk: a
    /// `reject` replaces the answer with its error, which the plugins before see.
    async fn walk_back(&self, msg: Intercepted<'_>, end: usize, chain_answer: bool) -> Verdict {
        let mut state = WalkState::new(msg.kind, chain_answer);
        for index in (0..end).rev() {
            let slot = &self.slots[index];
            let version = slot.current();
            if !version.filter.matches(state.kind, msg.method) {
                continue;
            }
            match self.ask(slot, &version, &msg, &mut state).await {
                Verdict::Pass => {}
                Verdict::Rewrite(payload) | Verdict::Respond(payload) => state.rewrite(payload),
                Verdict::Reject(error) => state.reject(error),
            }
        }
        state.into_verdict()
    }

    /// Asks one plugin, and applies its failure or unchecked policy. A `respond` to
    /// anything but a request comes back as the `rewrite` it stands for.
    async fn ask(
        &self,
        slot: &PluginSlot,
        version: &PluginVersion,
        msg: &Intercepted<'_>,
        state: &mut WalkState,
    ) -> Verdict {
        let view = state
            .view
            .get_or_insert_with(|| MessageView::new(msg))
            .for_plugin(version.manifest.wants_request);
        // Checked before the breaker: an oversized message is refused for what it is,
        // and never takes the one trial call of a half-open breaker.
        let (len, limit) = (view.input_len(), version.limits.max_input_bytes);
        if len > limit {
            let failure = Failure::InputTooLarge { len, limit };
            return self.not_called(slot, version, msg, state, failure);
        }
        let breaker = (!msg.shared_session).then_some(&version.breaker);
        match breaker.map_or(Admission::Call, |b| b.admit(msg.session)) {
            Admission::Call => {}
            Admission::Refused => {
                return self.not_called(slot, version, msg, state, Failure::Paused);
            }
            Admission::Trial => tracing::info!(
                target: "interpose::plugin",
                plugin = &*version.name,
                session = msg.session,
                "plugin breaker half-open: its cooldown is over, one message of this session is tried"
            ),
        }
        // Two clock reads per call, for `interpose_plugin_call_duration_seconds`.
        let started = Instant::now();
        let result = version.call(view).await;
        let elapsed = started.elapsed();
        let verdict = match result {
            Ok(Verdict::Respond(payload)) if state.kind != Kind::Request => {
                Verdict::Rewrite(payload)
            }
            Ok(verdict) => verdict,
            Err(failure) => {
                self.record(slot, version, Outcome::Failure, state.kind, elapsed);
                slot.stats.failure(&failure);
                trace_call(msg, &version.name, state.kind, Err(&failure), elapsed);
                self.report(
                    &version.name,
                    Outcome::Failure,
                    Some(&failure.to_string()),
                    state,
                );
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
        let (outcome, detail) = match &verdict {
            Verdict::Pass => (Outcome::Pass, None),
            Verdict::Rewrite(_) => (Outcome::Rewrite, None),
            Verdict::Respond(_) => (Outcome::Respond, None),
            Verdict::Reject(error) => (Outcome::Reject, Some(error.message.as_str())),
        };
        self.record(slot, version, outcome, state.kind, elapsed);
        self.report(&version.name, outcome, detail, state);
        trace_call(msg, &version.name, state.kind, Ok(outcome), elapsed);
        verdict
    }

    fn record(
        &self,
        slot: &PluginSlot,
        version: &PluginVersion,
        outcome: Outcome,
        kind: Kind,
        elapsed: Duration,
    ) {
        if slot.stats.record(outcome, kind, elapsed) {
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
    ) -> Verdict {
        let name = &*version.name;
        let policy = slot.config.failure_policy;
        let unchecked = slot.config.unchecked_policy.as_str();
        let cooldown_ms = version.breaker.cooldown().as_millis();
        let transition = if msg.shared_session {
            None
        } else {
            version.breaker.failure(msg.session)
        };
        // One line per failure: an error when it opens the session's breaker, else a
        // warning.
        let breaker = match transition {
            Some(Transition::Opened(reason)) => format!(
                "plugin breaker OPEN after {reason} in this client session: for {cooldown_ms} ms the plugin is not called for this client session's messages, which get its unchecked_policy ({unchecked}); then one is tried again. Other sessions are not affected"
            ),
            Some(Transition::Reopened) => format!(
                "plugin breaker OPEN again: the trial call failed; the plugin is not called for this client session's messages for another {cooldown_ms} ms"
            ),
            Some(Transition::Closed) | None => {
                tracing::warn!(
                    target: "interpose::plugin",
                    plugin = name,
                    method = msg.method,
                    kind = msg.kind.as_str(),
                    session = msg.session,
                    policy = policy.as_str(),
                    "plugin failed: {failure}"
                );
                return outcome_of(policy, name, &failure);
            }
        };
        slot.stats.breaker_opened();
        tracing::error!(
            target: "interpose::plugin",
            plugin = name,
            method = msg.method,
            kind = msg.kind.as_str(),
            session = msg.session,
            policy = policy.as_str(),
            unchecked_policy = unchecked,
            "plugin failed: {failure}; {breaker}"
        );
        outcome_of(policy, name, &failure)
    }

    /// Applies the unchecked policy to a message the plugin was not called for.
    fn not_called(
        &self,
        slot: &PluginSlot,
        version: &PluginVersion,
        msg: &Intercepted<'_>,
        state: &WalkState,
        failure: Failure,
    ) -> Verdict {
        let name = &*version.name;
        let policy = slot.config.unchecked_policy;
        let oversized = matches!(failure, Failure::InputTooLarge { .. });
        slot.stats.not_called(oversized);
        slot.stats.failure(&failure);
        self.report(name, Outcome::Failure, Some(&failure.to_string()), state);
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

/// Records a plugin call as a span, when `msg`'s request is traced.
fn trace_call(
    msg: &Intercepted<'_>,
    plugin: &str,
    kind: Kind,
    outcome: Result<Outcome, &Failure>,
    elapsed: Duration,
) {
    let (Some(parent), Some(tracer)) = (msg.trace, trace::tracer()) else {
        return;
    };
    let (verdict, failure) = match outcome {
        Ok(outcome) => (
            outcome.verdict().map_or("failure", VerdictLabel::as_str),
            None,
        ),
        Err(failure) => (
            "failure",
            Some((cause(failure).as_str(), failure.to_string())),
        ),
    };
    let call = trace::PluginCall {
        plugin,
        method: msg.method,
        kind,
        verdict,
        failure,
        elapsed,
    };
    call.record(tracer, parent);
}

/// What `policy` makes of a message `failure` happened to.
fn outcome_of(policy: FailurePolicy, name: &str, failure: &Failure) -> Verdict {
    match policy {
        FailurePolicy::Reject => Verdict::Reject(plugin_error(name, failure)),
        FailurePolicy::Skip => Verdict::Pass,
    }
}

/// Responses and errors walk the chain backwards.
fn walks_backwards(kind: Kind) -> bool {
    matches!(kind, Kind::Response | Kind::Error)
}

/// The message's state as it moves along the chain.
struct WalkState {
    kind: Kind,
    /// The payload as rewritten so far; `None` while unchanged. Shared with the
    /// views of the plugins after and with the verdict.
    payload: Option<Payload>,
    /// The error a plugin replaced an answer with; `None` while it has not.
    error: Option<ErrorObject>,
    /// The message as plugins see it, made when the first plugin is entered.
    view: Option<MessageView>,
    /// Whether the message is an answer a plugin made, walking back.
    chain_answer: bool,
}

impl WalkState {
    fn new(kind: Kind, chain_answer: bool) -> Self {
        WalkState {
            kind,
            payload: None,
            error: None,
            view: None,
            chain_answer,
        }
    }

    /// A new payload; on an error this recovers it: the answer is now a result.
    fn rewrite(&mut self, payload: Payload) {
        if self.kind == Kind::Error {
            self.kind = Kind::Response;
            self.error = None;
        }
        if let Some(view) = &mut self.view {
            view.rewritten(&payload);
        }
        self.payload = Some(payload);
    }

    /// An answer replaced by `error`.
    fn reject(&mut self, error: ErrorObject) {
        self.kind = Kind::Error;
        self.payload = None;
        if let Some(view) = &mut self.view {
            view.rejected(&error);
        }
        self.error = Some(error);
    }

    /// What the walk made of the message.
    fn into_verdict(self) -> Verdict {
        match (self.payload, self.error) {
            (Some(payload), _) => Verdict::Rewrite(payload),
            (None, Some(error)) => Verdict::Reject(error),
            (None, None) => Verdict::Pass,
        }
    }
}

/// An answer a plugin made to a request.
enum ChainAnswer {
    Result(Payload),
    Error(ErrorObject),
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

impl Interceptor for InterceptorChain {
    fn intercept<'a>(&'a self, msg: Intercepted<'a>) -> VerdictFuture<'a> {
        // Decided here, before any future is built: a message no plugin wants costs
        // no allocation.
        match self.first_interested(msg.kind, msg.method) {
            None => VerdictFuture::ready(Verdict::Pass),
            Some(first) if walks_backwards(msg.kind) => {
                VerdictFuture::boxed(self.walk_back(msg, first + 1, false))
            }
            Some(first) => VerdictFuture::boxed(self.walk_forward(msg, first)),
        }
    }

    fn wants_request_payload(&self) -> bool {
        self.wants_request.load(Ordering::Relaxed)
    }
}

impl PluginCensus for InterceptorChain {
    fn census(&self, count: &mut dyn FnMut(&str, usize)) {
        for slot in &self.slots {
            count(slot.stats.metrics_name(), slot.peek().live_instances());
        }
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
    fn an_answer_walk_ends_with_what_its_last_change_made() {
        let result = || Payload::from(crate::wire::jsonrpc::raw("{\"a\":1}"));
        let error = || ErrorObject::new(-32001, "denied");
        assert!(matches!(
            WalkState::new(Kind::Error, false).into_verdict(),
            Verdict::Pass
        ));
        // A response rejected, then rewritten by a plugin before: a result again.
        let mut state = WalkState::new(Kind::Response, false);
        state.reject(error());
        assert_eq!(state.kind, Kind::Error);
        state.rewrite(result());
        assert_eq!(state.kind, Kind::Response);
        assert!(matches!(state.into_verdict(), Verdict::Rewrite(p) if p.get() == "{\"a\":1}"));
        // An error rewritten, then rejected by a plugin before: that error.
        let mut state = WalkState::new(Kind::Error, true);
        state.rewrite(result());
        state.reject(error());
        assert!(matches!(state.into_verdict(), Verdict::Reject(e) if e.message == "denied"));
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
            "plugin `redact` was not called: paused for this client session after repeated failures"
        );
    }
}

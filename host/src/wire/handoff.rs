//! What another replica needs to continue a session (docs/deploy.md, "How a session
//! moves between replicas"): the client's handshake as the relay replays it, and each
//! HTTP backend's own session id and protocol version. The relay and the HTTP upstream
//! write it as they learn it; the HTTP listener seals it into the session id once the
//! handshake is answered, and a replica that is given such an id rebuilds the session
//! from it without initializing the backends again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use http::HeaderValue;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One backend session as its HTTP link knows it. Shared between the link, which fills
/// it in (or starts from it, when resumed), and the session's [`Handoff`].
#[derive(Debug, Default)]
pub struct BackendSession {
    state: Mutex<BackendSessionState>,
    /// The session may continue on another replica: ending this replica's copy (idle,
    /// shutdown) must not end the backend session, only the client's DELETE does.
    portable: bool,
    /// The client ended the session (DELETE): the backend session ends with it.
    ended_by_client: AtomicBool,
}

#[derive(Debug, Default, Clone)]
pub struct BackendSessionState {
    /// The backend's `Mcp-Session-Id`, when it gave one.
    pub id: Option<HeaderValue>,
    /// The version `initialize` settled on.
    pub version: Option<String>,
}

impl BackendSession {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, BackendSessionState> {
        // Each field is replaced whole: a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the backend session ends when this replica's link closes.
    pub fn ends_with_link(&self) -> bool {
        !self.portable || self.ended_by_client.load(Ordering::Acquire)
    }
}

/// A session's handoff state, for a session whose backends all speak Streamable HTTP.
#[derive(Debug, Default)]
pub struct Handoff {
    /// Continuing a session another replica opened: its backends are up already.
    resumed: bool,
    state: Mutex<Recorded>,
}

#[derive(Debug, Default)]
struct Recorded {
    initialize: Option<Box<RawValue>>,
    backends: Vec<(String, Arc<BackendSession>)>,
}

/// The handoff state as it travels (sealed) in a session id.
#[derive(Debug, Serialize, Deserialize)]
pub struct HandoffState {
    /// The client's `initialize` params.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub initialize: Option<Box<RawValue>>,
    #[serde(rename = "b")]
    pub backends: Vec<BackendState>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct BackendState {
    #[serde(rename = "n")]
    pub name: String,
    /// Its `Mcp-Session-Id`.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The protocol version it settled on; none: it was not started.
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Handoff {
    /// The handoff of a session being opened here.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// The handoff of a session another replica opened, as its id carried it.
    pub fn resume(state: HandoffState) -> Arc<Self> {
        let backends = state
            .backends
            .into_iter()
            .map(|b| {
                let session = BackendSession {
                    state: Mutex::new(BackendSessionState {
                        id: b.session_id.and_then(|id| HeaderValue::from_str(&id).ok()),
                        version: b.version,
                    }),
                    portable: true,
                    ended_by_client: AtomicBool::new(false),
                };
                (b.name, Arc::new(session))
            })
            .collect();
        Arc::new(Handoff {
            resumed: true,
            state: Mutex::new(Recorded {
                initialize: state.initialize,
                backends,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_resumed(&self) -> bool {
        self.resumed
    }

    /// The session of backend `name`: the recorded one when resumed, else a new one
    /// that its link fills in.
    pub fn backend(&self, name: &str) -> Arc<BackendSession> {
        let mut recorded = self.lock();
        if let Some((_, session)) = recorded.backends.iter().find(|(n, _)| n == name) {
            return session.clone();
        }
        let session = Arc::new(BackendSession {
            portable: true,
            ..BackendSession::default()
        });
        recorded.backends.push((name.to_owned(), session.clone()));
        session
    }

    /// The version backend `name` settled on, when the session was resumed with it up.
    pub fn resumed_version(&self, name: &str) -> Option<String> {
        if !self.resumed {
            return None;
        }
        let recorded = self.lock();
        let (_, session) = recorded.backends.iter().find(|(n, _)| n == name)?;
        session.lock().version.clone()
    }

    pub fn record_initialize(&self, params: Option<&RawValue>) {
        self.lock().initialize = params.map(ToOwned::to_owned);
    }

    pub fn initialize(&self) -> Option<Box<RawValue>> {
        self.lock().initialize.clone()
    }

    /// The client ended the session: its backend sessions end with this replica's copy.
    pub fn end_by_client(&self) {
        for (_, session) in &self.lock().backends {
            session.ended_by_client.store(true, Ordering::Release);
        }
    }

    pub fn is_ended_by_client(&self) -> bool {
        self.lock()
            .backends
            .iter()
            .any(|(_, s)| s.ended_by_client.load(Ordering::Acquire))
    }

    /// What another replica needs, as it stands now.
    pub fn snapshot(&self) -> HandoffState {
        let recorded = self.lock();
        HandoffState {
            initialize: recorded.initialize.clone(),
            backends: recorded
                .backends
                .iter()
                .map(|(name, session)| {
                    let state = session.lock();
                    BackendState {
                        name: name.clone(),
                        session_id: state
                            .id
                            .as_ref()
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned),
                        version: state.version.clone(),
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_handoff_gives_each_backend_its_recorded_session() {
        let opened = Handoff::new();
        opened.record_initialize(Some(&crate::wire::jsonrpc::raw(r#"{"x":1}"#)));
        let backend = opened.backend("one");
        *backend.lock() = BackendSessionState {
            id: Some(HeaderValue::from_static("abc")),
            version: Some("2025-06-18".into()),
        };
        opened.backend("lazy");
        let text = serde_json::to_string(&opened.snapshot()).unwrap();
        let resumed = Handoff::resume(serde_json::from_str(&text).unwrap());
        assert!(resumed.is_resumed());
        assert_eq!(resumed.initialize().unwrap().get(), r#"{"x":1}"#);
        assert_eq!(
            resumed.resumed_version("one").as_deref(),
            Some("2025-06-18")
        );
        assert_eq!(resumed.resumed_version("lazy"), None);
        assert_eq!(resumed.backend("one").lock().id.as_ref().unwrap(), "abc");
        assert!(!resumed.backend("one").ends_with_link());
        resumed.end_by_client();
        assert!(resumed.backend("one").ends_with_link());
        assert!(BackendSession::default().ends_with_link());
    }
}

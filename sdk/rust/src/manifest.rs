//! What a plugin is and which messages it wants.

use crate::Kind;

/// What the plugin is and which messages it wants, returned by
/// [`Plugin::init`](crate::Plugin::init).
///
/// The host calls the plugin only for messages one of its [`Interest`]s takes,
/// and decides that without entering Wasm: a narrow manifest makes the plugin
/// free on the rest of the traffic.
///
/// ```
/// use interpose_plugin::{Interest, Kind, Manifest};
///
/// // One interest: tool calls on their way to the server.
/// let guard = Manifest::new("tool-guard", "1.0.0")
///     .methods(["tools/call"])
///     .kinds([Kind::Request]);
/// assert_eq!(guard.interests, [Interest::new([Kind::Request], ["tools/call"])]);
///
/// // Two: checks calls and rewrites lists, and is never called for call results.
/// let policy = Manifest::new("tool-policy", "1.0.0")
///     .wants([Kind::Request], ["tools/call"])
///     .wants([Kind::Response], ["tools/list"]);
/// assert_eq!(policy.interests.len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The plugin's name, used in logs and in errors sent to clients.
    pub name: String,
    /// The plugin's version, for logs.
    pub version: String,
    /// The messages to intercept: those any interest takes. Empty means every
    /// message.
    pub interests: Vec<Interest>,
    /// Whether responses and errors should carry their request's params in
    /// [`Message::request_payload`](crate::Message::request_payload).
    pub wants_request: bool,
}

/// Messages of these kinds with these methods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interest {
    /// Kinds of message. Empty means every kind.
    pub kinds: Vec<Kind>,
    /// Methods: exact names (`tools/call`), a prefix glob (`resources/*`) or
    /// `*`. Empty means every method. Responses and errors go by the method of
    /// the request they answer.
    pub methods: Vec<String>,
}

impl Interest {
    pub fn new<S: Into<String>>(
        kinds: impl IntoIterator<Item = Kind>,
        methods: impl IntoIterator<Item = S>,
    ) -> Self {
        Interest {
            kinds: kinds.into_iter().collect(),
            methods: methods.into_iter().map(Into::into).collect(),
        }
    }
}

impl Manifest {
    /// A manifest that asks for every message. See also [`manifest!`](crate::manifest!),
    /// which takes the name and version from `Cargo.toml`.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Manifest {
            name: name.into(),
            version: version.into(),
            interests: Vec::new(),
            wants_request: false,
        }
    }

    /// Also these messages: adds an interest.
    pub fn wants<S: Into<String>>(
        mut self,
        kinds: impl IntoIterator<Item = Kind>,
        methods: impl IntoIterator<Item = S>,
    ) -> Self {
        self.interests.push(Interest::new(kinds, methods));
        self
    }

    /// Only these methods: sets the methods of the last interest (of a new one
    /// when there is none). Empty means all.
    pub fn methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.last_interest().methods = methods.into_iter().map(Into::into).collect();
        self
    }

    /// Only these kinds: sets the kinds of the last interest (of a new one when
    /// there is none). Empty means all.
    pub fn kinds(mut self, kinds: impl IntoIterator<Item = Kind>) -> Self {
        self.last_interest().kinds = kinds.into_iter().collect();
        self
    }

    /// Whether answers should carry their request's params.
    pub fn wants_request(mut self, wants_request: bool) -> Self {
        self.wants_request = wants_request;
        self
    }

    fn last_interest(&mut self) -> &mut Interest {
        if self.interests.is_empty() {
            self.interests.push(Interest::default());
        }
        self.interests
            .last_mut()
            .expect("just made sure there is one")
    }
}

/// A [`Manifest`] named after the calling crate, with its version, asking for
/// every message: `manifest!()` is
/// `Manifest::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))`.
#[macro_export]
macro_rules! manifest {
    () => {
        $crate::Manifest::new(
            ::core::env!("CARGO_PKG_NAME"),
            ::core::env!("CARGO_PKG_VERSION"),
        )
    };
}

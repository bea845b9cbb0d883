//! What a plugin is and which messages it wants.

use crate::Kind;

/// What the plugin is and which messages it wants, returned by
/// [`Plugin::init`](crate::Plugin::init).
///
/// ```
/// use interpose_plugin::{Kind, Manifest};
///
/// let manifest = Manifest::new("tool-guard", "1.0.0")
///     .methods(["tools/call"])
///     .kinds([Kind::Request]);
/// assert_eq!(manifest.methods, ["tools/call"]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The plugin's name, used in logs and in errors sent to clients.
    pub name: String,
    /// The plugin's version, for logs.
    pub version: String,
    /// Methods to intercept: exact names (`tools/call`), a prefix glob
    /// (`resources/*`) or `*`. Empty means every method. The host never calls
    /// the plugin for other methods, so a narrow list makes the plugin free on
    /// the rest of the traffic.
    pub methods: Vec<String>,
    /// Kinds of message to intercept. Empty means every kind.
    pub kinds: Vec<Kind>,
    /// Whether responses and errors should carry their request's params in
    /// [`Message::request_payload`](crate::Message::request_payload).
    pub wants_request: bool,
}

impl Manifest {
    /// A manifest that asks for every message. See also [`manifest!`](crate::manifest!),
    /// which takes the name and version from `Cargo.toml`.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Manifest {
            name: name.into(),
            version: version.into(),
            methods: Vec::new(),
            kinds: Vec::new(),
            wants_request: false,
        }
    }

    /// Only these methods (replaces the list; empty means all).
    pub fn methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.methods = methods.into_iter().map(Into::into).collect();
        self
    }

    /// Only these kinds (replaces the list; empty means all).
    pub fn kinds(mut self, kinds: impl IntoIterator<Item = Kind>) -> Self {
        self.kinds = kinds.into_iter().collect();
        self
    }

    /// Whether answers should carry their request's params.
    pub fn wants_request(mut self, wants_request: bool) -> Self {
        self.wants_request = wants_request;
        self
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

#![doc = include_str!("../README.md")]

// The generated bindings name their runtime through this crate's own path, so
// plugins need no direct dependency on wit-bindgen.
extern crate self as interpose_plugin;

pub mod glob;
pub mod host;
#[cfg(feature = "http")]
pub mod http;
mod manifest;
pub mod mcp;
mod message;
mod verdict;

pub use manifest::{Interest, Manifest};
pub use message::{Direction, Kind, Message, Principal, RpcError};
pub use verdict::Verdict;

use serde::de::DeserializeOwned;

/// An interceptor plugin. Implement it and call [`export_plugin!`].
///
/// The host creates several instances of a plugin (a pool) and calls `init` once
/// in each before any message; the value `init` returns lives as long as the
/// instance. Instances share no memory: keep state that must outlive one
/// instance or be seen by the others in the [`host`] key-value store.
pub trait Plugin: Sized + 'static {
    /// Reads the plugin's configuration (JSON text, `{}` when the user gave
    /// none; see [`parse_config`]) and says which messages the plugin wants.
    /// An error refuses to load the plugin; its text is shown to the user.
    fn init(config: &str) -> Result<(Self, Manifest), String>;

    /// Decides what happens to one message. A panic traps the instance; the
    /// host then applies the plugin's failure policy.
    fn intercept(&self, msg: &Message<'_>) -> Verdict;
}

/// Parses a plugin's configuration into `T` (typically a
/// `#[serde(deny_unknown_fields)]` struct). Blank text counts as `{}`. The
/// error text names the problem and where it is, for the user to read.
///
/// ```
/// #[derive(serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Config {
///     #[serde(default)]
///     verbose: bool,
/// }
///
/// let config: Config = interpose_plugin::parse_config("").unwrap();
/// assert!(!config.verbose);
/// let err = interpose_plugin::parse_config::<Config>(r#"{"verbos": true}"#).err().unwrap();
/// assert!(err.starts_with("invalid config: unknown field `verbos`"), "{err}");
/// ```
pub fn parse_config<T: DeserializeOwned>(config: &str) -> Result<T, String> {
    let text = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    serde_json::from_str(text).map_err(|err| format!("invalid config: {err}"))
}

/// Exports a [`Plugin`] as the component's `interceptor` interface. Use it
/// once, in the plugin crate's `lib.rs`, with the type implementing `Plugin`.
///
/// The plugin value lives in a per-instance static set by `init`. The glue
/// compiles on every target, but the component exports are emitted only for
/// `wasm32`, so the same crate builds as a component for `wasm32-wasip2` and as
/// a native library for unit tests (`cargo test`).
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            ::std::thread_local! {
                static __INTERPOSE_PLUGIN: ::core::cell::RefCell<::core::option::Option<$plugin>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            struct __InterposeExport;

            impl $crate::__private::Guest for __InterposeExport {
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<$crate::__private::WitManifest, ::std::string::String> {
                    __INTERPOSE_PLUGIN.with(|state| $crate::__private::init::<$plugin>(state, config))
                }

                fn intercept(
                    direction: $crate::__private::WitDirection,
                    kind: $crate::__private::WitKind,
                    method: ::std::string::String,
                    msg: &$crate::__private::WitMessage,
                ) -> $crate::__private::WitVerdict {
                    let msg = $crate::__private::lent(direction, kind, method, msg);
                    __INTERPOSE_PLUGIN.with(|state| $crate::__private::decide::<$plugin>(state, &msg))
                }
            }

            // Native builds (unit tests) skip the exports: their names are not
            // valid native symbol names, and nothing native would call them.
            #[cfg(target_arch = "wasm32")]
            $crate::__private::bindings::__export_interceptor!(__InterposeExport with_types_in $crate::__private::bindings);
        };
    };
}

/// The generated bindings and the glue behind [`export_plugin!`]; not part of
/// the API.
#[doc(hidden)]
pub mod __private {
    use std::cell::RefCell;

    use crate::{Direction, Kind, Message, Plugin, RpcError, Verdict};

    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "interceptor-plugin",
            pub_export_macro: true,
            export_macro_name: "__export_interceptor",
            runtime_path: "::interpose_plugin::__private::wit_bindgen::rt",
        });
    }

    pub use bindings::exports::interpose::plugin::interceptor::{
        Guest, Interest as WitInterest, Manifest as WitManifest,
    };
    pub use bindings::interpose::plugin::types::{
        Direction as WitDirection, Kind as WitKind, Message as WitMessage,
        Principal as WitPrincipal, RpcError as WitRpcError, Verdict as WitVerdict,
    };
    pub use wit_bindgen;

    pub fn init<P: Plugin>(
        state: &RefCell<Option<P>>,
        config: String,
    ) -> Result<WitManifest, String> {
        let (plugin, manifest) = P::init(&config)?;
        // A second init (the host should not send one) starts afresh.
        *state.borrow_mut() = Some(plugin);
        Ok(WitManifest {
            name: manifest.name,
            version: manifest.version,
            interests: manifest
                .interests
                .into_iter()
                .map(|i| WitInterest {
                    kinds: i.kinds.into_iter().map(kind_to_wit).collect(),
                    methods: i.methods,
                })
                .collect(),
            wants_request: manifest.wants_request,
        })
    }

    /// The message the host lent for this call.
    pub fn lent(
        direction: WitDirection,
        kind: WitKind,
        method: String,
        msg: &WitMessage,
    ) -> Message<'_> {
        Message::lent(
            Direction::from_wit(direction),
            Kind::from(kind),
            method,
            msg,
        )
    }

    /// The plugin's verdict on `msg`, for the WIT.
    pub fn decide<P: Plugin>(state: &RefCell<Option<P>>, msg: &Message<'_>) -> WitVerdict {
        let state = state.borrow();
        let Some(plugin) = state.as_ref() else {
            return WitVerdict::Reject(WitRpcError {
                code: RpcError::INTERNAL_ERROR,
                message: "plugin called before init".into(),
                data: None,
            });
        };
        verdict_to_wit(plugin.intercept(msg))
    }

    fn kind_to_wit(kind: Kind) -> WitKind {
        match kind {
            Kind::Request => WitKind::Request,
            Kind::Response => WitKind::Response,
            Kind::Error => WitKind::Error,
            Kind::Notification => WitKind::Notification,
        }
    }

    fn verdict_to_wit(verdict: Verdict) -> WitVerdict {
        match verdict {
            Verdict::Pass => WitVerdict::Pass,
            Verdict::Rewrite(text) => WitVerdict::Rewrite(text),
            Verdict::Respond(text) => WitVerdict::Respond(text),
            Verdict::Reject(err) => WitVerdict::Reject(WitRpcError {
                code: err.code,
                message: err.message,
                data: err.data,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::__private::{self, WitKind, WitVerdict};
    use super::*;

    /// Echoes the message it sees, so the glue's conversions can be checked.
    struct Echo {
        greeting: String,
    }

    impl Plugin for Echo {
        fn init(config: &str) -> Result<(Self, Manifest), String> {
            #[derive(serde::Deserialize)]
            struct Config {
                greeting: String,
            }
            let config: Config = parse_config(config)?;
            let manifest = Manifest::new("echo", "1.2.3")
                .methods(["tools/*"])
                .kinds([Kind::Request, Kind::Error])
                .wants_request(true);
            Ok((
                Echo {
                    greeting: config.greeting,
                },
                manifest,
            ))
        }

        fn intercept(&self, msg: &Message) -> Verdict {
            match msg.kind() {
                Kind::Request => Verdict::respond_json(&serde_json::json!({
                    "greeting": self.greeting,
                    "direction": msg.direction().as_str(),
                    "method": msg.method(),
                    "id": msg.id(),
                    "payload": msg.payload(),
                    "request_payload": msg.request_payload(),
                    "session": msg.session(),
                    "server": msg.server(),
                })),
                Kind::Error => Verdict::Reject(msg.error().cloned().unwrap()),
                Kind::Response | Kind::Notification => Verdict::Pass,
            }
        }
    }

    fn message(kind: Kind) -> Message<'static> {
        Message::new(Direction::ToClient, kind, "tools/call")
            .with_id("9")
            .with_payload("{}")
            .with_error(RpcError {
                code: -5,
                message: "m".into(),
                data: Some("[1]".into()),
            })
            .with_request_payload(r#"{"name":"x"}"#)
            .with_session("sess")
            .with_server("srv")
    }

    #[test]
    fn glue_converts_manifest_message_and_verdict() {
        let state: RefCell<Option<Echo>> = RefCell::new(None);
        let manifest = __private::init(&state, r#"{"greeting":"hi"}"#.into()).unwrap();
        assert_eq!(
            (manifest.name.as_str(), manifest.version.as_str()),
            ("echo", "1.2.3")
        );
        let [interest] = &manifest.interests[..] else {
            panic!("one interest")
        };
        assert_eq!(interest.methods, ["tools/*"]);
        assert_eq!(interest.kinds, [WitKind::Request, WitKind::Error]);
        assert!(manifest.wants_request);

        let WitVerdict::Respond(text) = __private::decide(&state, &message(Kind::Request)) else {
            panic!("expected respond");
        };
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            serde_json::json!({"greeting": "hi", "direction": "to-client", "method": "tools/call", "id": "9",
                "payload": "{}", "request_payload": null, "session": "sess", "server": "srv"}),
            "a request has no request payload, whatever the message was built with"
        );
        let WitVerdict::Reject(err) = __private::decide(&state, &message(Kind::Error)) else {
            panic!("expected reject");
        };
        assert_eq!(
            (err.code, err.message.as_str(), err.data.as_deref()),
            (-5, "m", Some("[1]"))
        );
        assert!(matches!(
            __private::decide(&state, &message(Kind::Notification)),
            WitVerdict::Pass
        ));
    }

    #[test]
    fn glue_reports_init_errors_and_calls_before_init() {
        let state: RefCell<Option<Echo>> = RefCell::new(None);
        let err = __private::init(&state, "{}".into()).unwrap_err();
        assert_eq!(
            err,
            "invalid config: missing field `greeting` at line 1 column 2"
        );
        let WitVerdict::Reject(err) = __private::decide(&state, &message(Kind::Request)) else {
            panic!("expected reject");
        };
        assert_eq!(
            (err.code, err.message.as_str()),
            (RpcError::INTERNAL_ERROR, "plugin called before init")
        );
    }
}

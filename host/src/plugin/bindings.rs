//! The generated bindings for `wit/interceptor.wit`, kept private: the rest of the
//! runtime sees the small types below and [`intercept_message`] / [`Plugin`] only.

use crate::intercept::{Direction, Intercepted};
use crate::jsonrpc::{ErrorObject, Kind};

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "interceptor-plugin",
        exports: { default: async },
    });
}

pub(super) use generated::InterceptorPlugin as Plugin;
pub(super) use generated::InterceptorPluginPre as PluginPre;
use generated::exports::interpose::plugin::interceptor as wit;
pub(super) use generated::interpose::plugin::host::{Host, Level, add_to_linker};
use generated::interpose::plugin::types as wit_types;

/// The message record as the guest receives it.
pub(super) type WitMessage = wit_types::Message;

/// What a plugin declared about itself in `init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub methods: Vec<String>,
    pub kinds: Vec<Kind>,
    pub wants_request: bool,
}

impl From<wit::Manifest> for Manifest {
    fn from(m: wit::Manifest) -> Self {
        Manifest {
            name: m.name,
            version: m.version,
            methods: m.methods,
            kinds: m.kinds.into_iter().map(kind_from_wit).collect(),
            wants_request: m.wants_request,
        }
    }
}

/// A verdict as the guest returned it: payload text not yet checked.
#[derive(Debug)]
pub enum GuestVerdict {
    Pass,
    Rewrite(String),
    Respond(String),
    Reject {
        code: i64,
        message: String,
        data: Option<String>,
    },
}

impl From<wit_types::Verdict> for GuestVerdict {
    fn from(v: wit_types::Verdict) -> Self {
        match v {
            wit_types::Verdict::Pass => GuestVerdict::Pass,
            wit_types::Verdict::Rewrite(p) => GuestVerdict::Rewrite(p),
            wit_types::Verdict::Respond(p) => GuestVerdict::Respond(p),
            wit_types::Verdict::Reject(e) => GuestVerdict::Reject {
                code: e.code,
                message: e.message,
                data: e.data,
            },
        }
    }
}

fn kind_from_wit(kind: wit_types::Kind) -> Kind {
    match kind {
        wit_types::Kind::Request => Kind::Request,
        wit_types::Kind::Response => Kind::Response,
        wit_types::Kind::Error => Kind::Error,
        wit_types::Kind::Notification => Kind::Notification,
    }
}

fn kind_to_wit(kind: Kind) -> wit_types::Kind {
    match kind {
        Kind::Request => wit_types::Kind::Request,
        Kind::Response => wit_types::Kind::Response,
        Kind::Error => wit_types::Kind::Error,
        Kind::Notification => wit_types::Kind::Notification,
    }
}

/// The message as the guest receives it. `payload` and `kind` are passed separately
/// because a rewrite earlier in the chain replaces them.
pub(super) fn to_wit_message(
    msg: &Intercepted<'_>,
    kind: Kind,
    payload: Option<&str>,
    error: Option<&ErrorObject>,
    wants_request: bool,
) -> wit_types::Message {
    wit_types::Message {
        direction: match msg.direction {
            Direction::ToServer => wit_types::Direction::ToServer,
            Direction::ToClient => wit_types::Direction::ToClient,
        },
        kind: kind_to_wit(kind),
        method: msg.method.to_owned(),
        id: msg.id.map(|id| id.get().to_owned()),
        payload: payload.map(str::to_owned),
        error: error.map(|e| wit_types::RpcError {
            code: e.code,
            message: e.message.clone(),
            data: e.data.as_ref().map(|d| d.get().to_owned()),
        }),
        request_payload: if wants_request {
            msg.request_payload.map(|p| p.get().to_owned())
        } else {
            None
        },
        session: msg.session.to_owned(),
        server: msg.server.to_owned(),
    }
}

/// Calls `init` on a fresh instance.
pub(super) async fn call_init<T: Send>(
    plugin: &Plugin,
    store: &mut wasmtime::Store<T>,
    config: &str,
) -> wasmtime::Result<Result<Manifest, String>> {
    let manifest = plugin
        .interpose_plugin_interceptor()
        .call_init(store, config)
        .await?;
    Ok(manifest.map(Manifest::from))
}

/// Calls `intercept`.
pub(super) async fn call_intercept<T: Send>(
    plugin: &Plugin,
    store: &mut wasmtime::Store<T>,
    message: &wit_types::Message,
) -> wasmtime::Result<GuestVerdict> {
    let verdict = plugin
        .interpose_plugin_interceptor()
        .call_intercept(store, message)
        .await?;
    Ok(verdict.into())
}

//! The generated bindings for `wit/interceptor.wit`, kept private: the rest of the
//! runtime sees the small types below, [`call_init`] / [`call_intercept`] and
//! [`Plugin`] only.

use wasmtime::component::Resource;

use serde_json::value::RawValue;

use super::limits::Failure;
use crate::plugin::{Interest, LentMessage, MessageView};
use crate::session::intercept::{Direction, Verdict};
use crate::wire::jsonrpc::{ErrorObject, Kind};

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "interceptor-plugin",
        exports: { default: async },
        // The message getters trap when called with no message lent (which only
        // a broken guest could do). The store's functions, and the `kv-*` ones
        // that go through it, are async: a Valkey round trip waits without
        // holding a runtime thread.
        imports: {
            "interpose:plugin/types": trappable,
            "interpose:plugin/store": async,
            "interpose:plugin/host.kv-get": async,
            "interpose:plugin/host.kv-set": async,
            "interpose:plugin/host.kv-delete": async,
        },
        with: { "interpose:plugin/types.message": crate::plugin::LentMessage },
    });
}

pub(super) use generated::InterceptorPlugin as Plugin;
pub(super) use generated::InterceptorPluginPre as PluginPre;
use generated::exports::interpose::plugin::interceptor as wit;
pub(super) use generated::interpose::plugin::host::{Host, Level};
pub(super) use generated::interpose::plugin::store::{
    Host as StoreHost, StoreError as WitStoreError,
};
use generated::interpose::plugin::types as wit_types;

/// What a plugin declared about itself in `init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub interests: Vec<Interest>,
    pub wants_request: bool,
}

impl Manifest {
    /// The interests for a log line: `request tools/call; response tools/list`, or
    /// `everything`.
    pub fn wants(&self) -> String {
        if self.interests.is_empty() {
            return "everything".into();
        }
        let interests: Vec<String> = self.interests.iter().map(Interest::to_string).collect();
        interests.join("; ")
    }
}

impl From<wit::Manifest> for Manifest {
    fn from(m: wit::Manifest) -> Self {
        Manifest {
            name: m.name,
            version: m.version,
            interests: m
                .interests
                .into_iter()
                .map(|i| Interest {
                    kinds: i.kinds.into_iter().map(kind_from_wit).collect(),
                    methods: i.methods,
                })
                .collect(),
            wants_request: m.wants_request,
        }
    }
}

/// The one conversion from the guest's verdict to the host's: JSON text must be
/// one valid value, and what the verdict carries must be within `limit` bytes.
fn checked_verdict(verdict: wit_types::Verdict, limit: usize) -> Result<Verdict, Failure> {
    Ok(match verdict {
        wit_types::Verdict::Pass => Verdict::Pass,
        wit_types::Verdict::Rewrite(text) => {
            Verdict::Rewrite(checked_json(text, "rewrite", limit)?.into())
        }
        wit_types::Verdict::Respond(text) => {
            Verdict::Respond(checked_json(text, "respond", limit)?.into())
        }
        wit_types::Verdict::Reject(error) => {
            let len = error.message.len() + error.data.as_ref().map_or(0, String::len);
            if len > limit {
                return Err(Failure::TooLarge {
                    what: "reject",
                    len,
                    limit,
                });
            }
            let data = error
                .data
                .map(|data| checked_json(data, "reject", limit))
                .transpose()?;
            Verdict::Reject(ErrorObject {
                code: error.code,
                message: error.message,
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

/// Calls `intercept`, lending `message` to the guest for the call. The outer error
/// is the call's (a trap: the instance is not to be used again); the inner one, a
/// verdict that failed its checks against `output_limit`.
pub(super) async fn call_intercept<T: Send + LendsMessages>(
    plugin: &Plugin,
    store: &mut wasmtime::Store<T>,
    message: MessageView,
    output_limit: usize,
) -> wasmtime::Result<Result<Verdict, Failure>> {
    let direction = direction_to_wit(message.direction());
    let kind = kind_to_wit(message.kind());
    // The store data holds the lent view; this clone (two reference counts) keeps
    // the method text for the argument.
    let head = message.clone();
    *store.data_mut().lent() = Some(message);
    let verdict = plugin
        .interpose_plugin_interceptor()
        .call_intercept(
            &mut *store,
            direction,
            kind,
            head.method(),
            // The handle's number is not used: the getters read the store's one
            // lent message, and wasmtime ends the borrow when the call returns.
            Resource::new_borrow(0),
        )
        .await;
    // Emptied even after a trap, so the store never holds a message between calls.
    *store.data_mut().lent() = None;
    Ok(checked_verdict(verdict?, output_limit))
}

/// A store whose data holds the message of the call in progress.
pub(super) trait LendsMessages {
    fn lent(&mut self) -> &mut Option<MessageView>;
}

/// The message lent to the call in progress.
fn lent<T: LendsMessages>(data: &mut T) -> wasmtime::Result<&MessageView> {
    data.lent()
        .as_ref()
        .ok_or_else(|| wasmtime::Error::msg("a message was read after its intercept call returned"))
}

fn direction_to_wit(direction: Direction) -> wit_types::Direction {
    match direction {
        Direction::ToServer => wit_types::Direction::ToServer,
        Direction::ToClient => wit_types::Direction::ToClient,
    }
}

/// The getters of the WIT `message` resource, for any store data that lends
/// messages through a [`LendsMessages`].
pub(super) struct Lent<'a, T>(pub &'a mut T);

impl<T: LendsMessages + Send> wit_types::HostMessage for Lent<'_, T> {
    fn id(&mut self, _msg: Resource<LentMessage>) -> wasmtime::Result<Option<String>> {
        Ok(lent(self.0)?.id().map(str::to_owned))
    }

    fn payload(&mut self, _msg: Resource<LentMessage>) -> wasmtime::Result<Option<String>> {
        Ok(lent(self.0)?.payload().map(str::to_owned))
    }

    fn payload_size(&mut self, _msg: Resource<LentMessage>) -> wasmtime::Result<u64> {
        Ok(lent(self.0)?.payload_size())
    }

    fn elapsed_us(&mut self, _msg: Resource<LentMessage>) -> wasmtime::Result<Option<u64>> {
        Ok(lent(self.0)?.elapsed_us())
    }

    fn error(
        &mut self,
        _msg: Resource<LentMessage>,
    ) -> wasmtime::Result<Option<wit_types::RpcError>> {
        Ok(lent(self.0)?.error().map(|e| wit_types::RpcError {
            code: e.code,
            message: e.message.clone(),
            data: e.data.as_ref().map(|d| d.get().to_owned()),
        }))
    }

    fn request_payload(&mut self, _msg: Resource<LentMessage>) -> wasmtime::Result<Option<String>> {
        Ok(lent(self.0)?.request_payload().map(str::to_owned))
    }

    fn envelope(&mut self, _msg: Resource<LentMessage>) -> wasmtime::Result<wit_types::Envelope> {
        let view = lent(self.0)?;
        Ok(wit_types::Envelope {
            id: view.id().map(str::to_owned),
            session: view.session().to_owned(),
            server: view.server().to_owned(),
            payload_size: view.payload_size(),
            elapsed_us: view.elapsed_us(),
        })
    }

    fn subject(&mut self, _msg: Resource<LentMessage>) -> wasmtime::Result<Option<String>> {
        Ok(lent(self.0)?.subject().map(std::borrow::Cow::into_owned))
    }

    fn principal(
        &mut self,
        _msg: Resource<LentMessage>,
    ) -> wasmtime::Result<Option<wit_types::Principal>> {
        Ok(lent(self.0)?.principal().map(|lent| {
            let who = lent.principal();
            wit_types::Principal {
                subject: who.subject.clone(),
                issuer: who.issuer.clone(),
                scopes: who.scopes.clone(),
                claims: lent.claims_json().to_owned(),
            }
        }))
    }

    fn session(&mut self, _msg: Resource<LentMessage>) -> wasmtime::Result<String> {
        Ok(lent(self.0)?.session().to_owned())
    }

    fn server(&mut self, _msg: Resource<LentMessage>) -> wasmtime::Result<String> {
        Ok(lent(self.0)?.server().to_owned())
    }

    /// Guests only ever borrow a message, so there is nothing of theirs to drop.
    fn drop(&mut self, _msg: Resource<LentMessage>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl<T: LendsMessages + Send> wit_types::Host for Lent<'_, T> {}

/// The `host` interface, implemented by the store data itself.
struct HostOf<T>(std::marker::PhantomData<T>);

impl<T: 'static> wasmtime::component::HasData for HostOf<T> {
    type Data<'a> = &'a mut T;
}

/// The `types` interface, implemented through [`Lent`].
struct LentOf<T>(std::marker::PhantomData<T>);

impl<T: 'static> wasmtime::component::HasData for LentOf<T> {
    type Data<'a> = Lent<'a, T>;
}

/// Adds the `types`, `host` and `store` interfaces to `linker`.
pub(super) fn add_to_linker<T>(linker: &mut wasmtime::component::Linker<T>) -> wasmtime::Result<()>
where
    T: LendsMessages + Host + StoreHost + Send + 'static,
{
    wit_types::add_to_linker::<T, LentOf<T>>(linker, |state| Lent(state))?;
    generated::interpose::plugin::host::add_to_linker::<T, HostOf<T>>(linker, |state| state)?;
    generated::interpose::plugin::store::add_to_linker::<T, HostOf<T>>(linker, |state| state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_verdict_must_carry_json_within_the_cap() {
        let rewrite = |text: &str| wit_types::Verdict::Rewrite(text.into());
        assert!(matches!(
            checked_verdict(rewrite("{\"a\":1}"), 100),
            Ok(Verdict::Rewrite(p)) if p.get() == "{\"a\":1}"
        ));
        assert!(matches!(
            checked_verdict(rewrite("{\"a\":"), 100),
            Err(Failure::InvalidJson("rewrite"))
        ));
        assert!(matches!(
            checked_verdict(wit_types::Verdict::Respond("[1,2,3]".into()), 3),
            Err(Failure::TooLarge {
                what: "respond",
                len: 7,
                limit: 3
            })
        ));
        let reject = |data: Option<&str>| {
            wit_types::Verdict::Reject(wit_types::RpcError {
                code: 1,
                message: "m".into(),
                data: data.map(str::to_owned),
            })
        };
        assert!(matches!(
            checked_verdict(reject(Some("nope")), 100),
            Err(Failure::InvalidJson("reject"))
        ));
        assert!(matches!(
            checked_verdict(reject(Some("[1]")), 3),
            Err(Failure::TooLarge {
                what: "reject",
                len: 4,
                limit: 3
            })
        ));
        let Ok(Verdict::Reject(error)) = checked_verdict(reject(Some("[1]")), 100) else {
            panic!("a valid reject");
        };
        assert_eq!((error.code, error.message.as_str()), (1, "m"));
        assert_eq!(error.data.as_deref().map(RawValue::get), Some("[1]"));
        assert!(matches!(
            checked_verdict(wit_types::Verdict::Pass, 0),
            Ok(Verdict::Pass)
        ));
    }
}

//! Test fixture: a plugin built against `interpose:plugin@0.1.0` exactly as it was
//! released, from the copy of the WIT kept in `wit/` beside it (never updated),
//! with wit-bindgen directly rather than the SDK. The host must keep loading it and
//! behaving the same after every later change to the contract (see
//! `wit/README.md`).
//!
//! It asks for `tools/call` requests and, by the tool's name (`message.subject`):
//! - `respond`: answers `{"by": "compat-0.1.0", "count": N}`, N counted in the
//!   host key-value store;
//! - `reject`: rejects with code -32050;
//! - `rewrite`: forwards the call with arguments `{"rewritten": true}`;
//! - anything else: passes.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

// The generated glue is `unsafe` (canonical ABI); the SDK keeps it in its own
// crate, this fixture has none.
#[allow(missing_docs, unsafe_code, clippy::all, clippy::pedantic)]
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "interceptor-plugin",
    });
}

use bindings::exports::interpose::plugin::interceptor::{Guest, Interest, Manifest};
use bindings::interpose::plugin::host::{self, Level};
use bindings::interpose::plugin::types::{Direction, Kind, Message, RpcError, Verdict};

struct Compat;

const NAME: &str = "compat-0.1.0";

impl Guest for Compat {
    fn init(_config: String) -> Result<Manifest, String> {
        host::log(Level::Info, &format!("{NAME} ready"));
        Ok(Manifest {
            name: NAME.into(),
            version: "0.1.0".into(),
            interests: vec![Interest {
                kinds: vec![Kind::Request],
                methods: vec!["tools/call".into()],
            }],
            wants_request: false,
        })
    }

    fn intercept(_direction: Direction, _kind: Kind, _method: String, msg: &Message) -> Verdict {
        match msg.subject().as_deref() {
            Some("respond") => {
                let count = host::kv_get("count")
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .and_then(|text| text.parse::<u64>().ok())
                    .unwrap_or(0)
                    + 1;
                host::kv_set("count", count.to_string().as_bytes(), None);
                Verdict::Respond(format!(r#"{{"by":"{NAME}","count":{count}}}"#))
            }
            Some("reject") => Verdict::Reject(RpcError {
                code: -32050,
                message: format!("rejected by {NAME}"),
                data: None,
            }),
            Some("rewrite") => {
                Verdict::Rewrite(r#"{"name":"rewrite","arguments":{"rewritten":true}}"#.into())
            }
            _ => Verdict::Pass,
        }
    }
}

// Native builds (the workspace's `cargo build`) skip the exports, as the SDK does:
// their names are not valid native symbol names, and nothing native calls them.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod export {
    use super::{Compat, bindings};
    bindings::export!(Compat with_types_in bindings);
}

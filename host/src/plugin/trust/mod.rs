//! Trust in third-party plugins: what a plugin declares it needs (its
//! [capabilities], compared at load with what the configuration grants), who signed
//! it ([signature], checked at load against trusted keys), and `interpose plugin
//! inspect` ([inspect]), which shows both before anything runs.
//!
//! Both checks run once per load of a file (at start and on each hot reload), on
//! the bytes that are then compiled, never per message: see [`admit`], called by
//! `read_checked` in `version.rs`.

pub mod capabilities;
pub mod inspect;
pub mod signature;

use std::time::Instant;

use capabilities::{Capabilities, DeclarationError, Granted};
use signature::SignatureError;
pub use signature::SignedSource;

use crate::config::PluginConfig;

/// Why a plugin file is not trusted enough to load.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Declaration(#[from] DeclarationError),
    /// The capabilities declared and not granted, listed.
    #[error(
        "declares capabilities its configuration does not grant: {0}; grant them in its \
         plugin entry (`dirs`, `env`, `http`, `kv`) or do not load it"
    )]
    NotGranted(String),
}

/// What the checks found about a file that passed them.
#[derive(Debug, Default)]
pub struct Admission {
    /// The ID of the trusted key that signed it, when a signature is required.
    pub signed_by: Option<String>,
    /// Its declaration; `None` when it declares nothing.
    pub declared: Option<Capabilities>,
}

/// Checks `bytes`, the plugin `config` names as read for loading from `source`: its
/// signature when the configuration requires one, then its declared capabilities
/// against the grants. Grants beyond the declaration are logged as warnings; a plugin
/// without a declaration gets its grants as before declarations existed.
pub fn admit(
    config: &PluginConfig,
    source: SignedSource<'_>,
    bytes: &[u8],
) -> Result<Admission, TrustError> {
    let started = Instant::now();
    let signed_by = signature::SignaturePolicy::of(config).admit(source, bytes)?;
    let declared = match capabilities::read_declared(bytes) {
        // Not WebAssembly at all: compiling it says so, as it did before declarations.
        Err(DeclarationError::NotWasm(_)) => None,
        read => read?,
    };
    if let Some(declared) = &declared {
        let comparison = capabilities::compare(declared, &Granted::of(config));
        if !comparison.missing.is_empty() {
            return Err(TrustError::NotGranted(capabilities::list(
                &comparison.missing,
            )));
        }
        if !comparison.unused.is_empty() {
            tracing::warn!(
                target: "interpose::plugin",
                plugin = %config.display_name(),
                "plugin `{}` is granted what it does not declare: {}; remove these grants",
                config.display_name(),
                capabilities::list(&comparison.unused)
            );
        }
    }
    tracing::debug!(
        plugin = %config.display_name(),
        "signature and capabilities checked in {:.1?}",
        started.elapsed()
    );
    Ok(Admission {
        signed_by,
        declared,
    })
}

//! One loaded version of a plugin file: compiled, linked, its manifest read, its pool
//! of instances ready. Hot reload swaps whole versions; a call holds an `Arc` to the
//! version it started on, so it finishes there.

use std::path::PathBuf;
use std::sync::Arc;

use super::bindings::Manifest;
use super::engine::PluginRuntime;
use super::filter::Filter;
use super::health::Breaker;
use super::limits::{Failure, Limits, first_line};
use super::message_view::MessageView;
use super::oci;
use super::pool::{InstanceFactory, InstancePool, StartError};
use super::sandbox::Grants;
use super::store::StateStore;
use super::tag::PluginTag;
use super::trust::SignedSource;
use crate::config::{PluginConfig, Sha256};
use crate::session::intercept::Verdict;

/// A plugin version, ready for calls.
pub struct PluginVersion {
    /// The name in logs and errors: the configured name, else the manifest's.
    pub name: Arc<str>,
    pub manifest: Manifest,
    pub filter: Filter,
    pub sha256: Sha256,
    pub limits: Limits,
    /// One breaker per session (see [`Breaker`]).
    pub breaker: Breaker,
    pool: Arc<InstancePool>,
}

/// Why a plugin (or a new version of it) was not loaded: names the plugin as
/// configured (its `name`, else the file's stem) and its file, so that two plugins
/// loaded from one file are told apart.
#[derive(Debug, thiserror::Error)]
#[error("plugin `{name}` ({path}): {problem}")]
pub struct LoadError {
    pub name: String,
    pub path: PathBuf,
    pub problem: LoadProblem,
}

/// What went wrong loading a plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadProblem {
    #[error("cannot read the file: {0}")]
    Read(std::io::Error),
    /// An `oci://` reference that could not be pulled, or whose cached bytes are not
    /// what they were stored as.
    #[error("{0}")]
    Registry(String),
    #[error("the file has sha256 {actual}, but the configuration pins {expected}")]
    PinMismatch { expected: Sha256, actual: Sha256 },
    #[error("the file is not a usable WebAssembly component: {0}")]
    Compile(String),
    #[error("the component does not fit the interpose plugin interface: {0}")]
    Link(String),
    #[error(transparent)]
    Grant(super::sandbox::GrantError),
    #[error("cannot start the plugin: {0}")]
    Start(StartError),
    /// `init` returned an error: the plugin's own text, on one line.
    #[error("refused its configuration: {0}")]
    InitRefused(String),
    #[error("the plugin's manifest has an empty name; set `name` in the configuration")]
    NoName,
    /// Its signature or its declared capabilities (see [`super::trust`]).
    #[error(transparent)]
    Trust(#[from] super::trust::TrustError),
}

impl LoadError {
    pub(super) fn new(config: &PluginConfig, problem: LoadProblem) -> Self {
        LoadError {
            name: config.display_name(),
            path: config.path.clone(),
            problem,
        }
    }
}

/// The file's bytes and their digest, checked against the digest a pulled plugin is
/// cached under, the pin, the signature policy and the grants
/// ([`super::trust::admit`]). Read and hashed once: the bytes checked are the bytes
/// compiled, and their digest keys the compiled-plugin cache.
pub async fn read_checked(config: &PluginConfig) -> Result<(Arc<[u8]>, Sha256), LoadError> {
    let (bytes, pulled) = match config.reference() {
        Some(reference) => read_pulled(reference)
            .await
            .map(|(bytes, cached)| (bytes, Some(cached))),
        None => tokio::fs::read(&config.path)
            .await
            .map(|bytes| (bytes, None))
            .map_err(LoadProblem::Read),
    }
    .map_err(|problem| LoadError::new(config, problem))?;
    let actual = Sha256::of(&bytes);
    if let Some(cached) = &pulled {
        oci::verify_cached(actual, &cached.digest)
            .map_err(|e| LoadError::new(config, LoadProblem::Registry(format!("{e:#}"))))?;
    }
    if let Some(expected) = config.sha256
        && expected != actual
    {
        return Err(LoadError::new(
            config,
            LoadProblem::PinMismatch { expected, actual },
        ));
    }
    let source = match &pulled {
        Some(cached) => SignedSource::Pulled(&cached.signature),
        None => SignedSource::File(&config.path),
    };
    let admission = super::trust::admit(config, source, &bytes)
        .map_err(|cause| LoadError::new(config, LoadProblem::Trust(cause)))?;
    if let Some(key_id) = admission.signed_by {
        tracing::info!(
            target: "interpose::plugin",
            plugin = %config.display_name(),
            "signature by trusted key {key_id} verified for {}",
            config.path.display()
        );
    }
    Ok((bytes.into(), actual))
}

/// The bytes of a plugin named by registry reference, from the cache, pulled into it
/// first if they are not there; with where the cache keeps them, their digest (which
/// the caller checks them against) and their signature.
async fn read_pulled(reference: &str) -> Result<(Vec<u8>, oci::Cached), LoadProblem> {
    let registry = |e: anyhow::Error| LoadProblem::Registry(format!("{e:#}"));
    let reference = oci::PluginRef::parse(reference).map_err(registry)?;
    let cached = oci::resolve(&reference).await.map_err(registry)?;
    let bytes = tokio::fs::read(&cached.path)
        .await
        .map_err(LoadProblem::Read)?;
    Ok((bytes, cached))
}

/// What a version shares with the versions before and after it.
pub struct Lineage {
    pub tag: Arc<PluginTag>,
    pub store: Arc<dyn StateStore>,
    pub max_message_bytes: usize,
}

impl PluginVersion {
    /// Loads `wasm` as a new version: compile (or map from the cache), link, start
    /// the first instance and read its manifest; the pool fills in the background.
    pub async fn load(
        runtime: &PluginRuntime,
        config: &PluginConfig,
        wasm: Arc<[u8]>,
        sha256: Sha256,
        lineage: &Lineage,
    ) -> Result<Arc<Self>, LoadError> {
        let started = std::time::Instant::now();
        let component = runtime
            .compile(config.display_name(), wasm, sha256)
            .await
            .map_err(|e| LoadError::new(config, LoadProblem::Compile(first_line(&e))))?;
        Self::start(runtime, config, &component, sha256, lineage, started).await
    }

    /// The rest of [`Self::load`], from a compiled component: link, start the first
    /// instance, read its manifest. `started` is when loading began, for the log.
    pub(super) async fn start(
        runtime: &PluginRuntime,
        config: &PluginConfig,
        component: &wasmtime::component::Component,
        sha256: Sha256,
        lineage: &Lineage,
        started: std::time::Instant,
    ) -> Result<Arc<Self>, LoadError> {
        let fail = |problem| LoadError::new(config, problem);
        let pre = runtime
            .link(component)
            .map_err(|e| fail(LoadProblem::Link(first_line(&e))))?;
        let limits = Limits::from_config(config, lineage.max_message_bytes);
        let grants = Grants::from_config(config, limits.max_input_bytes)
            .map_err(|cause| fail(LoadProblem::Grant(cause)))?;
        let factory = InstanceFactory {
            engine: runtime.engine().clone(),
            pre,
            grants,
            tag: lineage.tag.clone(),
            // `kv = false`: no store (see `host_api`).
            store: (config.kv != Some(false)).then(|| lineage.store.clone()),
            limits,
            init_config: config.init_json(),
            live: Default::default(),
        };
        let compiled = started.elapsed();
        let (first, manifest) = factory.create().await.map_err(|e| fail(start_problem(e)))?;
        let first_instance = started.elapsed() - compiled;
        let name: Arc<str> = match &config.name {
            Some(name) => config.qualified(name).into(),
            None if manifest.name.trim().is_empty() => return Err(fail(LoadProblem::NoName)),
            None => config.qualified(&manifest.name).into(),
        };
        lineage.tag.set(&name);
        let pool = InstancePool::new(factory, first, config.pool_size);
        // The rest of the pool is made in the background: the first instance serves
        // the first calls, and start-up does not wait for instances it may not need
        // yet (a call that finds none idle makes its own).
        pool.refill();
        // Not under the `interpose::plugin` target, which carries the plugins' own logs.
        tracing::debug!(
            plugin = &*name,
            "ready in {:.1?}: code {compiled:.1?}, first instance {first_instance:.1?}",
            started.elapsed(),
        );
        Ok(Arc::new(PluginVersion {
            name,
            filter: Filter::new(&manifest.interests),
            manifest,
            sha256,
            limits,
            breaker: Breaker::new(std::time::Duration::from_millis(config.breaker_cooldown_ms)),
            pool,
        }))
    }

    /// Runs one `intercept` call on an instance from the pool, and checks its verdict.
    pub(super) async fn call(&self, message: MessageView) -> Result<Verdict, Failure> {
        let mut instance = self.pool.take().await?;
        match instance.intercept(message, &self.limits).await {
            // A verdict that fails its checks is the plugin's failure, not the
            // instance's: it goes back to the pool.
            Ok(checked) => {
                self.pool.give_back(instance);
                checked
            }
            Err(error) => {
                let failure = instance.failure(&error, &self.limits);
                // A trapped instance is never entered again.
                drop(instance);
                self.pool.refill();
                Err(failure)
            }
        }
    }

    /// Instances idle in the pool (for tests and benchmarks).
    pub fn idle_instances(&self) -> usize {
        self.pool.idle_count()
    }

    /// Instances of this version that exist, idle or in use.
    pub fn live_instances(&self) -> usize {
        self.pool.live()
    }

    /// One call outside the chain: on an instance from the pool, or on a new instance
    /// made for this call alone (benchmarks compare the two).
    #[doc(hidden)]
    pub async fn call_direct(
        &self,
        msg: &crate::session::intercept::Intercepted<'_>,
        fresh: bool,
    ) -> Result<(), Failure> {
        let view = MessageView::new(msg).for_plugin(self.manifest.wants_request);
        if fresh {
            let mut instance = self.pool.fresh().await?;
            let result = instance.intercept(view, &self.limits).await;
            result
                .map_err(|e| instance.failure(&e, &self.limits))?
                .map(drop)
        } else {
            self.call(view).await.map(drop)
        }
    }

    /// Makes `n` new instances and keeps them alive until the result is dropped
    /// (benchmarks measure the memory each instance adds).
    #[doc(hidden)]
    pub async fn spare_instances(&self, n: usize) -> Result<SpareInstances, Failure> {
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            held.push(self.pool.fresh().await?);
        }
        Ok(SpareInstances(held))
    }
}

/// Instances kept alive outside the pool; see [`PluginVersion::spare_instances`].
#[doc(hidden)]
pub struct SpareInstances(#[allow(dead_code)] Vec<super::pool::Instance>);

fn start_problem(error: StartError) -> LoadProblem {
    match error {
        StartError::InitRefused(message) => {
            LoadProblem::InitRefused(crate::log_output::one_line(&message).into_owned())
        }
        cause => LoadProblem::Start(cause),
    }
}

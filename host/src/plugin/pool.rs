//! Ready instances of one plugin version, each in its own `Store`, created ahead and
//! reused. A call takes an instance, runs, and gives it back; an instance whose call
//! trapped is dropped instead, and the pool is topped up in the background so that
//! calls do not wait for an instantiation in steady state.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::{Engine, Store};

use super::bindings::{self, Manifest, Plugin, PluginPre};
use super::host_api::HostState;
use super::limits::{Failure, Limits, first_line};
use super::message_view::MessageView;
use super::sandbox::Grants;
use super::store::StateStore;
use super::tag::PluginTag;
use crate::session::intercept::Verdict;

/// One ready instance.
pub struct Instance {
    store: Store<HostState>,
    plugin: Plugin,
    _live: LiveToken,
}

/// Counts an instance among the live ones of its pool for as long as it exists,
/// however it ends (given back, thrown away after a trap, dropped with a cancelled
/// call).
struct LiveToken(Arc<AtomicUsize>);

impl LiveToken {
    fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::Relaxed);
        LiveToken(live.clone())
    }
}

impl Drop for LiveToken {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why an instance could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Instantiate(String),
    /// `init` returned an error: the plugin's own text.
    #[error("{0}")]
    InitRefused(String),
    #[error("`init` failed: {0}")]
    InitFailed(Failure),
}

/// How often instantiation is tried again when the kernel was busy (see [`is_busy`]).
const SEAL_RETRIES: u32 = 3;

/// One try at making an instance.
enum Attempt {
    /// Worth trying again: the kernel refused, for now, to seal the memory image.
    Busy(wasmtime::Error),
    Failed(StartError),
}

impl From<StartError> for Attempt {
    fn from(e: StartError) -> Self {
        Attempt::Failed(e)
    }
}

/// Whether instantiation failed with `EBUSY`. On a module's first instantiation
/// wasmtime writes its initial memory to a memfd and seals it against writes; Linux
/// refuses that seal with `EBUSY` while a freshly written page still has a transient
/// reference (seen under load, e.g. a page in another CPU's LRU batch). The image is
/// built afresh on the next instantiation, so a retry shortly after succeeds.
fn is_busy(error: &wasmtime::Error) -> bool {
    const EBUSY: i32 = 16;
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(EBUSY))
    })
}

/// Everything needed to make an instance of one plugin version.
pub struct InstanceFactory {
    pub engine: Engine,
    pub pre: PluginPre<HostState>,
    pub grants: Grants,
    pub tag: Arc<PluginTag>,
    /// `None` when the store is not granted (`kv = false`).
    pub store: Option<Arc<dyn StateStore>>,
    pub limits: Limits,
    /// The `config` table as JSON, passed to `init`.
    pub init_config: String,
    /// How many instances of this version exist.
    pub live: Arc<AtomicUsize>,
}

impl InstanceFactory {
    /// Instantiates and calls `init`, returning the instance and its manifest.
    pub async fn create(&self) -> Result<(Instance, Manifest), StartError> {
        let mut attempt = 0;
        loop {
            match self.create_once().await {
                Err(Attempt::Busy(e)) if attempt < SEAL_RETRIES => {
                    attempt += 1;
                    tracing::debug!(
                        "{}: the kernel was busy sealing the memory image ({}); retry {attempt}",
                        self.tag.get(),
                        first_line(&e)
                    );
                    tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
                }
                Err(Attempt::Busy(e)) => return Err(StartError::Instantiate(first_line(&e))),
                Err(Attempt::Failed(e)) => return Err(e),
                Ok(ready) => return Ok(ready),
            }
        }
    }

    async fn create_once(&self) -> Result<(Instance, Manifest), Attempt> {
        let wasi = self
            .grants
            .wasi_ctx(&self.tag)
            .map_err(|e| StartError::Instantiate(e.to_string()))?;
        let state = HostState::new(
            wasi,
            self.limits.memory_bytes,
            self.tag.clone(),
            self.store.clone(),
            self.grants.http(),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.data_mut().start_call(self.limits.init_timeout());
        store.set_epoch_deadline(Limits::deadline_ticks(self.limits.init_timeout()));
        let plugin = match self.pre.instantiate_async(&mut store).await {
            Ok(plugin) => plugin,
            Err(_) if store.data().limiter.was_hit() => {
                return Err(StartError::Instantiate(
                    Failure::Memory(self.limits.memory_bytes).to_string(),
                )
                .into());
            }
            Err(e) if is_busy(&e) => return Err(Attempt::Busy(e)),
            Err(e) => return Err(StartError::Instantiate(first_line(&e)).into()),
        };
        let init_limits = Limits {
            timeout: self.limits.init_timeout(),
            ..self.limits
        };
        let manifest = match bindings::call_init(&plugin, &mut store, &self.init_config).await {
            Ok(Ok(manifest)) => manifest,
            Ok(Err(refusal)) => return Err(StartError::InitRefused(refusal).into()),
            Err(e) => {
                let hit = store.data().limiter.was_hit();
                return Err(StartError::InitFailed(Failure::from_call_error(
                    &e,
                    &init_limits,
                    hit,
                ))
                .into());
            }
        };
        let live = LiveToken::new(&self.live);
        Ok((
            Instance {
                store,
                plugin,
                _live: live,
            },
            manifest,
        ))
    }
}

impl Instance {
    /// Calls `intercept` under the deadline and memory cap, and checks the verdict
    /// against the output cap (see [`bindings::call_intercept`] for the two errors).
    /// Not an `async fn`: one level less of nested futures, each of which would hold
    /// a copy of the next.
    pub fn intercept(
        &mut self,
        message: MessageView,
        limits: &Limits,
    ) -> impl Future<Output = wasmtime::Result<Result<Verdict, Failure>>> + Send + '_ {
        self.store.data_mut().start_call(limits.timeout);
        // Re-armed for every call: the deadline counts from now, not from creation.
        self.store
            .set_epoch_deadline(Limits::deadline_ticks(limits.timeout));
        bindings::call_intercept(
            &self.plugin,
            &mut self.store,
            message,
            limits.max_output_bytes,
        )
    }

    /// What a failed call ran into, given its error.
    pub fn failure(&self, error: &wasmtime::Error, limits: &Limits) -> Failure {
        Failure::from_call_error(error, limits, self.store.data().limiter.was_hit())
    }
}

/// The idle instances of one plugin version.
///
/// In steady state a call takes an idle instance and gives it back, and nothing is
/// instantiated. The pool instantiates in the background when the number of live
/// instances is below its ready size (just after load, which makes only the first;
/// or when one was thrown away after a trap), and
/// grows by one when a call takes the last idle instance (so the next concurrent
/// call finds one), up to a maximum. A call that finds none idle makes its own.
pub struct InstancePool {
    factory: InstanceFactory,
    idle: Mutex<Vec<Instance>>,
    /// Live instances to keep (idle or in use).
    ready: usize,
    /// Most live instances the pool grows to by itself, and most kept idle.
    max: usize,
    refilling: AtomicBool,
}

/// Pause after a failed background instantiation before the pool tries again.
const REFILL_BACKOFF: Duration = Duration::from_millis(500);

impl InstancePool {
    /// A pool holding `first` and ready to hold `ready` instances.
    pub fn new(factory: InstanceFactory, first: Instance, ready: usize) -> Arc<Self> {
        let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(InstancePool {
            factory,
            idle: Mutex::new(vec![first]),
            ready: ready.max(1),
            max: ready.max(parallelism),
            refilling: AtomicBool::new(false),
        })
    }

    /// An instance to run one call: an idle one, or a fresh one when none is idle.
    pub async fn take(self: &Arc<Self>) -> Result<Instance, Failure> {
        let (taken, left) = {
            let mut idle = self.lock();
            let taken = idle.pop();
            (taken, idle.len())
        };
        if left == 0 {
            self.refill();
        }
        match taken {
            Some(instance) => Ok(instance),
            // Boxed: instantiating is a large future, and this rare path would
            // otherwise grow the future of every call that finds an idle instance.
            None => Box::pin(self.fresh()).await,
        }
    }

    /// A new instance that bypasses the idle list.
    pub async fn fresh(&self) -> Result<Instance, Failure> {
        match self.factory.create().await {
            Ok((instance, _)) => Ok(instance),
            Err(e) => Err(Failure::Instantiate(e.to_string())),
        }
    }

    /// Returns an instance after a call that did not trap.
    pub fn give_back(&self, instance: Instance) {
        let mut idle = self.lock();
        if idle.len() < self.max {
            idle.push(instance);
        }
    }

    /// Whether the background task has work: fewer live instances than the ready
    /// size, or none idle and room to grow.
    fn short(&self) -> bool {
        let live = self.live();
        live < self.ready || (self.idle_count() == 0 && live < self.max)
    }

    /// Instantiates in the background while the pool is [`short`](Self::short)
    /// (one task at a time).
    pub fn refill(self: &Arc<Self>) {
        if !self.short() || self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool_ref = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                // Holding only a weak reference between instances: a replaced version's
                // pool is not kept alive by its own refill.
                let Some(pool) = pool_ref.upgrade() else {
                    return;
                };
                if !pool.short() {
                    pool.refilling.store(false, Ordering::Release);
                    return;
                }
                match pool.create_aside().await {
                    Ok((instance, _)) => pool.give_back(instance),
                    Err(e) => {
                        tracing::warn!(target: "interpose::plugin", plugin = &*pool.factory.tag.get(), "cannot start a spare instance: {e}");
                        drop(pool);
                        // Not a hot loop: the next call that finds the pool short asks again.
                        tokio::time::sleep(REFILL_BACKOFF).await;
                        if let Some(pool) = pool_ref.upgrade() {
                            pool.refilling.store(false, Ordering::Release);
                        }
                        return;
                    }
                }
            }
        });
    }

    /// A new instance made on a blocking thread, not on a worker: instantiating and
    /// `init` take a millisecond or more of CPU (several for a Python or JavaScript
    /// plugin), which on a worker would hold up the sessions that share it, and a
    /// stdio session has one worker.
    async fn create_aside(self: &Arc<Self>) -> Result<(Instance, Manifest), StartError> {
        let (pool, runtime) = (Arc::clone(self), tokio::runtime::Handle::current());
        tokio::task::spawn_blocking(move || runtime.block_on(pool.factory.create()))
            .await
            .unwrap_or_else(|e| {
                Err(StartError::Instantiate(format!(
                    "the instantiating thread failed: {e}"
                )))
            })
    }

    pub fn idle_count(&self) -> usize {
        self.lock().len()
    }

    /// Instances of this version that exist, idle or in use.
    pub fn live(&self) -> usize {
        self.factory.live.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Instance>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ebusy_anywhere_in_the_chain_is_worth_a_retry() {
        let busy = wasmtime::Error::new(std::io::Error::from_raw_os_error(16))
            .context("cannot add seals to the memfd");
        assert!(is_busy(&busy));
        let missing = wasmtime::Error::new(std::io::Error::from_raw_os_error(2));
        assert!(!is_busy(&missing));
        assert!(!is_busy(&wasmtime::Error::msg("unknown import")));
    }
}

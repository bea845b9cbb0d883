//! Hot reload: the plugin files are polled (modification time and size); a file that
//! changed and then stayed the same for one more poll is loaded as a new version off
//! the message path. New messages use it; calls in flight finish on the old version.
//! A new version that fails to load leaves the old one serving, and says why.
//! The signature beside a file (`FILE.wasm.minisig`) is watched with it, so a file
//! refused because its new signature was not there yet loads once it is.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use super::chain::InterceptorChain;

/// How often plugin files are checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// What identifies a file's contents cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn file_stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// A plugin file's stamp and its signature's; `None` while the plugin file is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    file: FileStamp,
    signature: Option<FileStamp>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    Some(Stamp {
        file: file_stamp(path)?,
        signature: file_stamp(&super::trust::signature::signature_path(path)),
    })
}

/// What the watcher knows about one plugin file.
#[derive(Debug, Clone, Copy)]
struct Watched {
    /// The stamp of the contents last loaded (or last refused).
    settled: Option<Stamp>,
    /// A new stamp seen on the previous poll, waiting to stay unchanged.
    pending: Option<Stamp>,
}

impl InterceptorChain {
    /// Starts watching the plugin files; stops when the chain is dropped.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let mut watched: Vec<Watched> = self
            .slots
            .iter()
            .map(|slot| Watched {
                settled: stamp(&slot.config.path),
                pending: None,
            })
            .collect();
        let chain = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if !poll_once(&chain, &mut watched).await {
                    return;
                }
            }
        })
    }
}

/// One pass over the files; false once the chain is gone.
async fn poll_once(chain: &Weak<InterceptorChain>, watched: &mut [Watched]) -> bool {
    let Some(chain) = chain.upgrade() else {
        return false;
    };
    for (slot_index, state) in watched.iter_mut().enumerate() {
        let slot = &chain.slots[slot_index];
        let now = stamp(&slot.config.path);
        if now == state.settled {
            state.pending = None;
            continue;
        }
        let Some(now) = now else {
            // Gone (being replaced, perhaps): the loaded version stays; look again later.
            state.pending = None;
            continue;
        };
        if state.pending != Some(now) {
            // Changed since the last poll: wait until it holds still for one more.
            state.pending = Some(now);
            continue;
        }
        state.settled = Some(now);
        state.pending = None;
        reload_slot(&chain, slot_index).await;
    }
    true
}

async fn reload_slot(chain: &InterceptorChain, index: usize) {
    let slot = &chain.slots[index];
    let old = slot.current();
    match slot.reload(&chain.runtime).await {
        Ok(Some(new)) => {
            chain.update_wants_request();
            slot.stats.reloaded();
            tracing::info!(
                target: "interpose::plugin",
                plugin = &*new.name,
                version = %new.manifest.version,
                sha256 = %new.sha256,
                "plugin reloaded from {} (was {} {}); new messages use the new version",
                slot.config.path.display(),
                old.manifest.version,
                old.sha256
            );
        }
        Ok(None) => {
            tracing::debug!(target: "interpose::plugin", plugin = &*old.name, "plugin file touched but unchanged");
        }
        Err(e) => {
            tracing::error!(
                target: "interpose::plugin",
                plugin = &*old.name,
                "new version not loaded, the old one stays in use: {e}"
            );
        }
    }
}

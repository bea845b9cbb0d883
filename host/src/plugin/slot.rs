//! One configured plugin: its settings, the version currently serving it (swapped on
//! reload), and what outlives versions (its store, log tag, statistics).

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::engine::PluginRuntime;
use super::stats::Stats;
use super::tag::PluginTag;
use super::version::{Lineage, LoadError, PluginVersion, read_checked};
use crate::config::PluginConfig;

pub struct PluginSlot {
    pub config: PluginConfig,
    lineage: Lineage,
    current: ArcSwap<PluginVersion>,
    pub stats: Stats,
}

impl PluginSlot {
    /// Loads the plugin's file for the first time.
    pub async fn load(
        runtime: &PluginRuntime,
        config: PluginConfig,
        max_message_bytes: usize,
    ) -> Result<Self, LoadError> {
        let lineage = Lineage {
            tag: PluginTag::new(&config.display_name()),
            store: runtime.stores().open(&config.display_name()),
            max_message_bytes,
        };
        let (wasm, sha256) = read_checked(&config).await?;
        let version = PluginVersion::load(runtime, &config, wasm, sha256, &lineage).await?;
        tracing::info!(
            target: "interpose::plugin",
            plugin = &*version.name,
            version = %version.manifest.version,
            sha256 = %version.sha256,
            wants = %version.manifest.wants(),
            "plugin loaded from {}",
            config.path.display()
        );
        Ok(PluginSlot {
            config,
            lineage,
            stats: Stats::new(&version.name),
            current: ArcSwap::new(version),
        })
    }

    /// The version serving new messages, without taking a reference count.
    #[inline]
    pub fn peek(&self) -> arc_swap::Guard<Arc<PluginVersion>> {
        self.current.load()
    }

    /// The version serving new messages, held for the length of a call.
    pub fn current(&self) -> Arc<PluginVersion> {
        self.current.load_full()
    }

    /// Loads the file again and, if that works, serves new messages with it. On any
    /// failure the version in use stays and the error is returned.
    pub async fn reload(
        &self,
        runtime: &PluginRuntime,
    ) -> Result<Option<Arc<PluginVersion>>, LoadError> {
        let (wasm, sha256) = read_checked(&self.config).await?;
        if sha256 == self.current.load().sha256 {
            return Ok(None);
        }
        let version =
            PluginVersion::load(runtime, &self.config, wasm, sha256, &self.lineage).await?;
        self.current.store(version.clone());
        Ok(Some(version))
    }
}

//! The name a plugin goes by in log lines, shared by its instances and its
//! outbound requests.

use std::sync::{Arc, RwLock};

/// The name a plugin's log lines carry. Shared by its instances; set from the
/// manifest once the first instance has answered `init`.
#[derive(Debug)]
pub struct PluginTag(RwLock<Arc<str>>);

impl PluginTag {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(PluginTag(RwLock::new(name.into())))
    }

    pub fn get(&self) -> Arc<str> {
        self.0
            .read()
            .map(|n| n.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    pub fn set(&self, name: &str) {
        match self.0.write() {
            Ok(mut n) => *n = name.into(),
            Err(e) => *e.into_inner() = name.into(),
        }
    }
}

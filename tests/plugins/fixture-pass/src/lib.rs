//! Test fixture: passes every message; its manifest asks for all of them.

use interpose_plugin::{Manifest, Message, Plugin, Verdict, export_plugin, manifest};

/// Passes everything.
pub struct PassAll;

impl Plugin for PassAll {
    fn init(_config: &str) -> Result<(Self, Manifest), String> {
        Ok((PassAll, manifest!()))
    }

    fn intercept(&self, _msg: &Message) -> Verdict {
        Verdict::Pass
    }
}

export_plugin!(PassAll);

//! The plugins the demo runs its session through: `audit-log`, `tool-policy` (denying
//! `delete_*`) and `redact`, built from `plugins/` by `scripts/build-plugins.sh`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;

use super::trace::TracedStep;
use crate::config::Config;
use crate::plugin::{InterceptorChain, Outcome, load_chain};
use crate::wire::framing::DEFAULT_MAX_MESSAGE_BYTES;

/// The demo's chain, with plugin paths relative to the plugin directory.
const DEMO_CONFIG: &str = include_str!("plugins.toml");

/// Where to find the plugins when `INTERPOSE_PLUGIN_DIR` is not set: where
/// `scripts/build-plugins.sh` puts them, next to the binary's own target directory.
const BUILT_PLUGINS: &str = "wasm/wasm32-wasip2/release";

/// Where an installed binary finds them: the Python wheel ships them as data files,
/// which land under the environment's root, beside its `bin/`.
const INSTALLED_PLUGINS: &str = "share/interpose/plugins";

/// The directory holding the demo's `.wasm` plugins.
pub fn plugin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("INTERPOSE_PLUGIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().context("cannot find the interpose binary's path")?;
    // pipx and `uv tool install` put a link to the venv's binary on PATH: follow it
    // to the venv, where the plugins are.
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    plugin_dir_for(&exe)
}

/// The plugin directory of the binary at `exe`: the installed layout when it is
/// there, else the build tree's.
fn plugin_dir_for(exe: &Path) -> anyhow::Result<PathBuf> {
    // <prefix>/bin/interpose -> <prefix>/share/...;
    // target/{debug,release}/interpose -> target/wasm/...
    let root = exe
        .parent()
        .and_then(Path::parent)
        .context("the binary has no parent directory")?;
    let installed = root.join(INSTALLED_PLUGINS);
    if installed.is_dir() {
        return Ok(installed);
    }
    Ok(root.join(BUILT_PLUGINS))
}

/// Loads the demo chain from `dir`, reporting each plugin's verdict into `steps`.
pub async fn load(
    dir: &Path,
    steps: Arc<Mutex<Vec<TracedStep>>>,
) -> anyhow::Result<Arc<InterceptorChain>> {
    let config = Config::parse(DEMO_CONFIG, Path::new("demo/plugins.toml"), dir)?;
    for plugin in &config.plugins {
        anyhow::ensure!(
            plugin.path.exists(),
            "the demo plugin {} is not built: run ./scripts/demo.sh (or scripts/build-plugins.sh), \
             set INTERPOSE_PLUGIN_DIR to the directory holding the demo's plugins, \
             or run `interpose demo --no-plugins`",
            plugin.path.display()
        );
    }
    let chain = load_chain(config.plugins, DEFAULT_MAX_MESSAGE_BYTES).await?;
    trace_steps(&chain, steps);
    Ok(chain)
}

/// Reports each plugin's verdict into `steps`, as the trace shows it.
pub fn trace_steps(chain: &InterceptorChain, steps: Arc<Mutex<Vec<TracedStep>>>) {
    chain.observe_steps(move |step| {
        let outcome = match step.outcome {
            Outcome::Pass => "pass",
            Outcome::Rewrite => "rewrite",
            Outcome::Respond => "respond",
            Outcome::Reject => "reject",
            Outcome::Failure => "FAILED",
        };
        let line = match step.detail {
            Some(detail) if matches!(step.outcome, Outcome::Failure) => {
                format!("{} {outcome} ({detail})", step.plugin)
            }
            _ => format!("{} {outcome}", step.plugin),
        };
        let step = TracedStep {
            line,
            on_chain_answer: step.on_chain_answer,
        };
        steps.lock().unwrap_or_else(|e| e.into_inner()).push(step);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_installed_binary_finds_the_plugins_its_wheel_installed() {
        let prefix = tempfile::tempdir().expect("temp dir");
        let installed = prefix.path().join("share/interpose/plugins");
        std::fs::create_dir_all(&installed).expect("create share/interpose/plugins");
        let exe = prefix.path().join("bin/interpose");
        assert_eq!(plugin_dir_for(&exe).expect("a plugin dir"), installed);
    }

    #[test]
    fn a_built_binary_finds_the_plugins_in_its_target_directory() {
        let checkout = tempfile::tempdir().expect("temp dir");
        let exe = checkout.path().join("target/debug/interpose");
        assert_eq!(
            plugin_dir_for(&exe).expect("a plugin dir"),
            checkout.path().join("target/wasm/wasm32-wasip2/release")
        );
    }
}

//! `interpose plugin new` and `interpose plugin build`: scaffold a plugin project
//! from a language's template, and build one into a WebAssembly component.
//!
//! Everything a build needs besides the language's own tools ships in the
//! binary: the WIT contract, the three SDKs and the templates ([`sdk`]). They are
//! extracted once per SDK content into the tools directory, which also holds the
//! Python and JavaScript toolchains, installed there on first use ([`toolchain`]).
//! A source checkout can stand in for the embedded SDK (`$INTERPOSE_SDK_DIR`).

mod build;
mod scaffold;
mod sdk;
#[cfg(test)]
mod sdk_files;
mod toolchain;
pub mod trust;

use std::fmt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, anyhow, bail};

pub use build::{BuildOptions, build};
pub use scaffold::{NewOptions, new};

/// The environment variable naming the tools directory.
pub const TOOLS_DIR_ENV: &str = "INTERPOSE_TOOLS_DIR";

/// A language plugins are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        })
    }
}

impl Lang {
    /// The directory of this language's SDK under `sdk/`.
    fn sdk_name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }
}

/// Where the extracted SDK and the toolchains live: `$INTERPOSE_TOOLS_DIR`, else
/// `$XDG_CACHE_HOME/interpose-tools`, else `~/.cache/interpose-tools`.
///
/// Not inside the compiled-plugin cache (`$INTERPOSE_CACHE_DIR`, `~/.cache/interpose`):
/// that one is disposable (it evicts its least recently used entries, and users
/// clear it), while the toolchains take minutes to install again.
pub fn tools_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(TOOLS_DIR_ENV).filter(|dir| !dir.is_empty()) {
        return Ok(std::path::absolute(PathBuf::from(dir))?);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir).join("interpose-tools"));
    }
    match std::env::var_os("HOME").filter(|dir| !dir.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("interpose-tools")),
        None => bail!(
            "no directory for the plugin toolchains: set ${TOOLS_DIR_ENV} (or HOME) to a \
             writable directory"
        ),
    }
}

/// Runs a tool with its output on stderr (stdout carries only the built
/// component's path) and fails when it does.
fn run(command: &mut Command, what: &str) -> Result<()> {
    let program = command.get_program().to_string_lossy().into_owned();
    let status = command
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| spawn_error(&program, e))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Runs a tool and returns its stdout.
fn output(command: &mut Command) -> Result<String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| spawn_error(&program, e))?;
    if !output.status.success() {
        bail!("`{program}` failed ({})", output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn spawn_error(program: &str, error: std::io::Error) -> anyhow::Error {
    if error.kind() == std::io::ErrorKind::NotFound {
        anyhow!("`{program}` is not installed (or not on PATH)")
    } else {
        anyhow!(error).context(format!("cannot run `{program}`"))
    }
}

//! The tools each language's build needs, installed into the tools directory on
//! first use (never globally): componentize-py in a Python venv, the pinned
//! JavaScript toolchain with `npm ci`, and rustup's `wasm32-wasip2` target.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::{output, run};

/// The componentize-py release Python plugins are built with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// The Rust target plugins are built for.
pub const RUST_TARGET: &str = "wasm32-wasip2";

/// Holds `<toolchain>.lock` while checking or installing a toolchain, so two
/// builds starting at once do not install it twice.
fn lock(toolchain: &Path) -> Result<File> {
    let parent = toolchain
        .parent()
        .context("a toolchain has a parent directory")?;
    std::fs::create_dir_all(parent).with_context(|| {
        format!(
            "cannot create {} (set $INTERPOSE_TOOLS_DIR)",
            parent.display()
        )
    })?;
    let path = toolchain.with_extension("lock");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    file.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

/// `componentize-py` from a venv at `tools/toolchains/python`, installed from PyPI
/// when missing or of another version.
pub fn componentize_py(tools: &Path) -> Result<PathBuf> {
    let venv = tools.join("toolchains").join("python");
    let program = venv.join("bin").join("componentize-py");
    let _lock = lock(&venv)?;
    let installed = Command::new(&program)
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned());
    // `componentize-py 0.25.1`
    if installed
        .as_deref()
        .and_then(|text| text.split_whitespace().nth(1))
        == Some(COMPONENTIZE_PY_VERSION)
    {
        return Ok(program);
    }
    eprintln!(
        "installing componentize-py {COMPONENTIZE_PY_VERSION} into {} (first use; about a minute)",
        venv.display()
    );
    let started = Instant::now();
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "creating a Python venv with `python3 -m venv`",
    )
    .context("Python 3 (with its venv module) is needed to build Python plugins")?;
    run(
        Command::new(venv.join("bin").join("pip"))
            .args([
                "install",
                "--disable-pip-version-check",
                "--progress-bar",
                "on",
            ])
            .arg(format!("componentize-py=={COMPONENTIZE_PY_VERSION}")),
        "pip install componentize-py",
    )
    .context("installing componentize-py from PyPI (is the network reachable?)")?;
    eprintln!(
        "installed componentize-py {COMPONENTIZE_PY_VERSION} in {:.0?}",
        started.elapsed()
    );
    Ok(program)
}

/// The JavaScript toolchain (componentize-js, jco, esbuild, pinned by
/// `sdk/js/toolchain`'s package.json and lock file) at `tools/toolchains/js`,
/// installed with `npm ci` once per lock file.
pub fn js(tools: &Path, pinned: &Path) -> Result<PathBuf> {
    check_node()?;
    let dir = tools.join("toolchains").join("js");
    let manifest = std::fs::read(pinned.join("package.json"))
        .with_context(|| format!("reading {}", pinned.join("package.json").display()))?;
    let lockfile = std::fs::read(pinned.join("package-lock.json"))
        .with_context(|| format!("reading {}", pinned.join("package-lock.json").display()))?;
    // The hash of both files, as `cat package.json package-lock.json | sha256sum`.
    let want = hex::encode(
        Sha256::new()
            .chain_update(&manifest)
            .chain_update(&lockfile)
            .finalize(),
    );
    let stamp = dir.join(".installed-sha256");
    let _lock = lock(&dir)?;
    if std::fs::read_to_string(&stamp).is_ok_and(|have| have.trim() == want) {
        return Ok(dir);
    }
    eprintln!(
        "installing the JavaScript plugin toolchain (componentize-js, jco, esbuild; about 400 MB) \
         into {}, once",
        dir.display()
    );
    let started = Instant::now();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("package.json"), &manifest)?;
    std::fs::write(dir.join("package-lock.json"), &lockfile)?;
    // No install scripts: none of these tools need one (esbuild finds its binary
    // in its platform package).
    run(
        Command::new("npm")
            .arg("ci")
            .arg("--prefix")
            .arg(&dir)
            .args(["--ignore-scripts", "--no-audit", "--no-fund"]),
        "npm ci",
    )
    .context("installing the JavaScript toolchain from npm (is the network reachable?)")?;
    std::fs::write(&stamp, format!("{want}\n"))?;
    eprintln!(
        "installed the JavaScript toolchain in {:.0?}",
        started.elapsed()
    );
    Ok(dir)
}

fn check_node() -> Result<()> {
    let version = output(Command::new("node").arg("--version"))
        .context("Node.js 20 or later is needed to build JavaScript plugins")?;
    // `v20.11.1`
    let major = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok());
    match major {
        Some(major) if major >= 20 => Ok(()),
        _ => bail!(
            "Node.js 20 or later is needed to build JavaScript plugins, found {}",
            version.trim()
        ),
    }
}

/// Adds the `wasm32-wasip2` target to the toolchain `dir` builds with, when
/// rustup manages it and the target is missing. Without rustup, cargo's own
/// error says what is missing.
pub fn rust_target(dir: &Path) -> Result<()> {
    let Ok(listed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(dir)
        .output()
    else {
        return Ok(());
    };
    if !listed.status.success()
        || String::from_utf8_lossy(&listed.stdout)
            .lines()
            .any(|line| line.trim() == RUST_TARGET)
    {
        return Ok(());
    }
    eprintln!("installing the {RUST_TARGET} target (rustup target add {RUST_TARGET})");
    run(
        Command::new("rustup")
            .args(["target", "add", RUST_TARGET])
            .current_dir(dir),
        "rustup target add",
    )
    .with_context(|| format!("adding the Rust target {RUST_TARGET}"))
}

//! Which files of an interpose checkout make up the plugin SDK that the binary
//! carries: everything under `wit/` and `sdk/`, except the SDKs' own tests and
//! generated or cached directories. Shared by `host/build.rs` (which embeds them)
//! and the test that checks the embedded copy against the checkout.

use std::io;
use std::path::Path;

/// Top-level directories embedded, relative to the checkout root.
pub const ROOTS: &[&str] = &["wit", "sdk"];

/// Directory names skipped anywhere: caches and installed or built output.
const SKIPPED_DIRS: &[&str] = &["__pycache__", "node_modules", "target", ".pytest_cache"];

/// Whether `relative` (a `/`-separated path under the checkout root) is left out.
fn skipped(relative: &str, is_dir: bool) -> bool {
    let name = relative.rsplit('/').next().unwrap_or(relative);
    if is_dir {
        // `sdk/<lang>/test(s)` are the SDKs' own tests; a template's tests are kept.
        let sdk_tests = matches!(
            relative.split('/').collect::<Vec<_>>()[..],
            ["sdk", _, "test" | "tests"]
        );
        return sdk_tests || SKIPPED_DIRS.contains(&name);
    }
    name.ends_with(".pyc")
}

/// The embedded files under `root`, as sorted `/`-separated relative paths.
pub fn list(root: &Path) -> io::Result<Vec<String>> {
    let mut files = Vec::new();
    for top in ROOTS {
        walk(root, top, &mut files)?;
    }
    files.sort();
    Ok(files)
}

fn walk(root: &Path, relative: &str, files: &mut Vec<String>) -> io::Result<()> {
    for entry in std::fs::read_dir(root.join(relative))? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let path = format!("{relative}/{name}");
        let kind = entry.file_type()?;
        if skipped(&path, kind.is_dir()) {
            continue;
        }
        if kind.is_dir() {
            walk(root, &path, files)?;
        } else if kind.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

//! Where the plugin SDK (`wit/`, `sdk/rust`, `sdk/python`, `sdk/js` and the
//! templates) comes from: the copy embedded in this binary, extracted once per
//! SDK content into the tools directory, or a source checkout named by
//! `$INTERPOSE_SDK_DIR`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/plugin_sdk.rs"));
}

/// Names an interpose checkout whose `wit/` and `sdk/` are used as they are,
/// instead of the embedded copy (the repository's scripts set it).
pub const SDK_DIR_ENV: &str = "INTERPOSE_SDK_DIR";

/// A directory laid out like an interpose checkout: `wit/` and `sdk/<lang>/`.
#[derive(Clone, Debug)]
pub struct Sdk {
    root: PathBuf,
}

impl Sdk {
    /// `$INTERPOSE_SDK_DIR` when set, else the embedded SDK extracted under
    /// `tools_dir/sdk/`.
    pub fn locate(tools_dir: &Path) -> Result<Sdk> {
        if let Some(dir) = std::env::var_os(SDK_DIR_ENV).filter(|dir| !dir.is_empty()) {
            let root = std::path::absolute(PathBuf::from(dir))
                .with_context(|| format!("resolving ${SDK_DIR_ENV}"))?;
            if !root.join("wit").is_dir() || !root.join("sdk").is_dir() {
                bail!(
                    "${SDK_DIR_ENV} is {}, which has no wit/ and sdk/: point it at an interpose \
                     checkout, or unset it to use the SDK built into interpose",
                    root.display()
                );
            }
            return Ok(Sdk { root });
        }
        extract(&tools_dir.join("sdk"))
    }

    /// The root, holding `wit/` and `sdk/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The WIT package directory.
    pub fn wit(&self) -> PathBuf {
        self.root.join("wit")
    }

    /// `sdk/<name>`: `rust`, `python` or `js`.
    pub fn lang_dir(&self, name: &str) -> PathBuf {
        self.root.join("sdk").join(name)
    }
}

/// A short hash of the embedded files: the extracted copy's directory name, so a
/// binary never uses files extracted by another build.
fn content_id() -> String {
    let mut hash = Sha256::new();
    for (path, bytes) in embedded::FILES {
        hash.update((path.len() as u64).to_le_bytes());
        hash.update(path.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    }
    hash.update(embedded::WORKSPACE_MANIFEST.as_bytes());
    format!(
        "{}-{}",
        env!("CARGO_PKG_VERSION"),
        &hex::encode(hash.finalize())[..16]
    )
}

/// Writes the embedded SDK to `parent/<version>-<hash>/` unless it is there
/// already. It is written next to its final place and renamed into it, so a
/// reader never sees half of it and concurrent extractions do not collide.
fn extract(parent: &Path) -> Result<Sdk> {
    let root = parent.join(content_id());
    if root.is_dir() {
        return Ok(Sdk { root });
    }
    let staging = parent.join(format!(".extracting-{}", std::process::id()));
    let written = write_files(&staging);
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e).with_context(|| {
            format!(
                "cannot extract the plugin SDK into {} (set $INTERPOSE_TOOLS_DIR to a writable \
                 directory)",
                parent.display()
            )
        });
    }
    if let Err(e) = std::fs::rename(&staging, &root) {
        let _ = std::fs::remove_dir_all(&staging);
        // Another process extracted the same files first.
        if !root.is_dir() {
            return Err(e).with_context(|| format!("moving the plugin SDK to {}", root.display()));
        }
    }
    Ok(Sdk { root })
}

fn write_files(root: &Path) -> Result<()> {
    if root.exists() {
        std::fs::remove_dir_all(root)?;
    }
    for (path, bytes) in embedded::FILES {
        let target = root.join(path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let bytes = if SDK_CRATES
            .iter()
            .any(|dir| *path == format!("{dir}/Cargo.toml"))
        {
            standalone_manifest(bytes, embedded::WORKSPACE_MANIFEST)?.into_bytes()
        } else {
            bytes.to_vec()
        };
        std::fs::write(&target, bytes).with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(())
}

/// The workspace members embedded as Rust crates: the SDK and the crate it shares with
/// the host. Their manifests are made to stand alone when extracted.
const SDK_CRATES: &[&str] = &["sdk/rust", "sdk/core"];

/// An SDK crate's `Cargo.toml` with every `workspace = true` replaced by the
/// workspace's value, so the crate builds outside the interpose workspace.
fn standalone_manifest(manifest: &[u8], workspace: &str) -> Result<String> {
    let manifest = std::str::from_utf8(manifest).context("an SDK Cargo.toml is not UTF-8")?;
    let mut manifest: toml::Table = manifest.parse().context("parsing an SDK Cargo.toml")?;
    let workspace: toml::Table = workspace
        .parse()
        .context("parsing the workspace Cargo.toml")?;
    let workspace = workspace
        .get("workspace")
        .and_then(toml::Value::as_table)
        .context("the workspace Cargo.toml has no [workspace]")?;
    let section = |name: &str| {
        workspace
            .get(name)
            .and_then(toml::Value::as_table)
            .cloned()
            .unwrap_or_default()
    };
    let package_defaults = section("package");
    let dependency_defaults = section("dependencies");

    if let Some(package) = manifest
        .get_mut("package")
        .and_then(toml::Value::as_table_mut)
    {
        for (key, value) in package.iter_mut() {
            if inherits(value) {
                *value = package_defaults
                    .get(key)
                    .cloned()
                    .with_context(|| format!("[workspace.package] has no `{key}`"))?;
            }
        }
    }
    for kind in ["dependencies", "dev-dependencies", "build-dependencies"] {
        let Some(deps) = manifest.get_mut(kind).and_then(toml::Value::as_table_mut) else {
            continue;
        };
        for (name, value) in deps.iter_mut() {
            if inherits(value) {
                *value = inherited_dependency(name, value, &dependency_defaults)?;
            }
        }
    }
    if manifest.get("lints").is_some_and(inherits) {
        manifest.insert("lints".into(), toml::Value::Table(section("lints")));
    }
    // Its own (empty) workspace: wherever the tools directory is, cargo does not
    // take the crate for a member of a workspace above it.
    manifest.insert("workspace".into(), toml::Value::Table(toml::Table::new()));
    Ok(format!(
        "# The interpose Rust SDK's Cargo.toml, with the workspace's settings filled in.\n{}",
        toml::to_string(&manifest)?
    ))
}

fn inherits(value: &toml::Value) -> bool {
    value
        .as_table()
        .and_then(|table| table.get("workspace"))
        .and_then(toml::Value::as_bool)
        == Some(true)
}

/// `{ workspace = true, features = [...], optional = ... }` merged into the
/// workspace's entry for `name`.
fn inherited_dependency(
    name: &str,
    local: &toml::Value,
    defaults: &toml::Table,
) -> Result<toml::Value> {
    let mut merged = match defaults.get(name) {
        Some(toml::Value::String(version)) => {
            toml::Table::from_iter([("version".to_owned(), toml::Value::String(version.clone()))])
        }
        Some(toml::Value::Table(table)) => table.clone(),
        _ => bail!("[workspace.dependencies] has no `{name}`"),
    };
    if let Some(path) = merged.get("path").and_then(toml::Value::as_str) {
        // Another embedded crate (`sdk/core`) is its sibling wherever the SDK lands.
        let Some(sibling) = path.strip_prefix("sdk/").filter(|p| !p.contains('/')) else {
            bail!(
                "an SDK crate depends on the workspace path dependency `{name}` ({path}), which is not embedded"
            );
        };
        merged.insert("path".into(), toml::Value::String(format!("../{sibling}")));
    }
    let local = local.as_table().cloned().unwrap_or_default();
    for (key, value) in local {
        match key.as_str() {
            "workspace" => {}
            "features" => {
                let features = merged
                    .entry("features")
                    .or_insert_with(|| toml::Value::Array(Vec::new()));
                if let (Some(all), Some(extra)) = (features.as_array_mut(), value.as_array()) {
                    all.extend(extra.iter().cloned());
                }
            }
            _ => {
                merged.insert(key, value);
            }
        }
    }
    Ok(toml::Value::Table(merged))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sdk_matches_the_checkout() {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("host/ has a parent");
        let on_disk = super::super::sdk_files::list(checkout).expect("list the checkout's SDK");
        let embedded: Vec<_> = embedded::FILES.iter().map(|(path, _)| *path).collect();
        assert_eq!(
            embedded, on_disk,
            "the SDK files embedded in interpose differ from the checkout's: `touch host/build.rs` \
             and rebuild"
        );
        for needed in [
            "wit/interceptor.wit",
            "sdk/rust/Cargo.toml",
            "sdk/rust/src/lib.rs",
            "sdk/rust/template/Cargo.toml",
            "sdk/python/interpose_plugin/__init__.py",
            "sdk/python/template/plugin.py",
            "sdk/js/build/build.mjs",
            "sdk/js/toolchain/package-lock.json",
            "sdk/js/template/package.json",
        ] {
            assert!(embedded.contains(&needed), "{needed} is not embedded");
        }
        assert!(
            !embedded
                .iter()
                .any(|path| path.starts_with("sdk/python/tests/")
                    || path.starts_with("sdk/js/test/")
                    || path.contains("__pycache__")),
            "the SDKs' own tests and caches are not embedded: {embedded:?}"
        );
    }

    #[test]
    fn rust_sdk_manifest_stands_alone() {
        let workspace = r#"
            [workspace]
            members = ["sdk/rust"]
            [workspace.package]
            version = "0.3.0"
            edition = "2024"
            [workspace.dependencies]
            serde = { version = "1", features = ["derive"] }
            wit-bindgen = "0.61"
            [workspace.lints.rust]
            unsafe_code = "forbid"
        "#;
        let sdk = br#"
            [package]
            name = "interpose-plugin"
            version.workspace = true
            edition.workspace = true
            [dependencies]
            serde = { workspace = true, features = ["rc"] }
            wit-bindgen.workspace = true
            [lints]
            workspace = true
        "#;
        let manifest: toml::Table = standalone_manifest(sdk, workspace)
            .unwrap()
            .parse()
            .unwrap();
        let expected: toml::Table = r#"
            [package]
            name = "interpose-plugin"
            version = "0.3.0"
            edition = "2024"
            [dependencies]
            serde = { version = "1", features = ["derive", "rc"] }
            wit-bindgen = { version = "0.61" }
            [lints.rust]
            unsafe_code = "forbid"
            [workspace]
        "#
        .parse()
        .unwrap();
        assert_eq!(manifest, expected);
    }

    #[test]
    fn the_embedded_sdk_crates_manifests_stand_alone() {
        for dir in SDK_CRATES {
            let manifest = embedded::FILES
                .iter()
                .find(|(path, _)| *path == format!("{dir}/Cargo.toml"))
                .expect("embedded");
            let text = standalone_manifest(manifest.1, embedded::WORKSPACE_MANIFEST).unwrap();
            assert!(!text.contains("workspace = true"), "{text}");
        }
        let sdk = embedded::FILES
            .iter()
            .find(|(path, _)| *path == "sdk/rust/Cargo.toml")
            .expect("embedded");
        let sdk: toml::Table = standalone_manifest(sdk.1, embedded::WORKSPACE_MANIFEST)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            sdk["dependencies"]["interpose-core"]["path"].as_str(),
            Some("../core"),
            "the shared crate is found beside the SDK"
        );
    }
}

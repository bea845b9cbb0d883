//! `interpose plugin inspect FILE.wasm`: what a plugin is and asks for, before it
//! is configured. The name, version and interests come from its manifest, so the
//! plugin is instantiated once, in the sandbox with nothing granted; the WIT
//! version comes from the component's exports; the declared capabilities from its
//! custom section; the signature from `FILE.wasm.minisig`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::capabilities::{self, Capabilities};
use super::signature::{SignedSource, TrustedKey};
use crate::config::{PluginConfig, Sha256};
use crate::plugin::engine::{PluginRuntime, RuntimeOptions};
use crate::plugin::tag::PluginTag;
use crate::plugin::version::{Lineage, PluginVersion};

/// The package every plugin exports `interceptor` from.
const WIT_PACKAGE: &str = "interpose:plugin";

/// What `inspect` found.
#[derive(Debug, Serialize)]
pub struct Inspection {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    /// `interpose:plugin@X` of the `interceptor` the component exports; `None` when
    /// it exports none (not an interpose plugin).
    pub wit_version: Option<String>,
    /// From `init` with an empty configuration.
    pub manifest: Result<ManifestReport, String>,
    /// `Ok(None)`: nothing declared.
    pub capabilities: Result<Option<Capabilities>, String>,
    pub signature: SignatureReport,
}

/// The manifest's parts.
#[derive(Debug, Serialize)]
pub struct ManifestReport {
    pub name: String,
    pub version: String,
    /// Each interest: kinds and methods (empty lists mean all). No interests means
    /// every message.
    pub interests: Vec<InterestReport>,
    pub wants_request: bool,
}

#[derive(Debug, Serialize)]
pub struct InterestReport {
    pub kinds: Vec<&'static str>,
    pub methods: Vec<String>,
}

/// The signature beside the file.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum SignatureReport {
    Unsigned,
    Signed {
        key_id: String,
        /// Whether one of the given keys is the signer's.
        trusted: bool,
        /// Whether the signature matches the file; `None` when no given key is the
        /// signer's (a minisign signature is checked with its public key).
        valid: Option<bool>,
    },
    /// The signature file exists but cannot be used.
    Unreadable {
        error: String,
    },
}

/// Inspects the plugin at `path`, checking its signature against `keys` (inline
/// keys or `.pub` paths).
pub async fn inspect(
    path: &Path,
    source: SignedSource<'_>,
    keys: &[String],
) -> anyhow::Result<Inspection> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let keys = keys
        .iter()
        .map(|spec| TrustedKey::load(spec))
        .collect::<Result<Vec<_>, _>>()?;
    let sha256 = Sha256::of(&bytes);
    let capabilities = capabilities::read_declared(&bytes).map_err(|e| e.to_string());
    let signature = signature_report(source, &bytes, &keys);
    let runtime = PluginRuntime::new(RuntimeOptions::default())?;
    let mut config = PluginConfig::from_path(path);
    // Generous limits: a Python or JavaScript runtime starts at tens of MiB, and
    // the first start after a build may run on a busy machine.
    config.timeout_ms = 10_000;
    config.memory_mb = 512;
    config.pool_size = 1;
    let size = bytes.len() as u64;
    // A file that does not compile is still reported on: its digest, declaration
    // and signature say what it is and who made it.
    let compiled = runtime
        .compile(config.display_name(), bytes.into(), sha256)
        .await;
    let (wit_version, manifest) = match compiled {
        Ok(component) => {
            let lineage = Lineage {
                tag: PluginTag::new(&config.display_name()),
                store: runtime.stores().open(&config.display_name()),
                max_message_bytes: crate::wire::framing::DEFAULT_MAX_MESSAGE_BYTES,
            };
            let started = std::time::Instant::now();
            let manifest =
                PluginVersion::start(&runtime, &config, &component, sha256, &lineage, started)
                    .await
                    .map(|version| manifest_report(&version.manifest))
                    .map_err(|e| e.problem.to_string());
            (exported_version(runtime.engine(), &component), manifest)
        }
        Err(e) => (
            None,
            Err(format!(
                "the file is not a usable WebAssembly component: {}",
                crate::plugin::limits::first_line(&e)
            )),
        ),
    };
    Ok(Inspection {
        path: path.to_owned(),
        size,
        sha256: sha256.to_string(),
        wit_version,
        manifest,
        capabilities,
        signature,
    })
}

/// The version of the `interpose:plugin/interceptor` the component exports.
fn exported_version(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> Option<String> {
    let prefix = format!("{WIT_PACKAGE}/interceptor@");
    component
        .component_type()
        .exports(engine)
        .find_map(|(name, _)| name.strip_prefix(&prefix).map(str::to_owned))
}

fn manifest_report(manifest: &crate::plugin::Manifest) -> ManifestReport {
    ManifestReport {
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        interests: manifest
            .interests
            .iter()
            .map(|i| InterestReport {
                kinds: i.kinds.iter().map(|k| k.as_str()).collect(),
                methods: i.methods.clone(),
            })
            .collect(),
        wants_request: manifest.wants_request,
    }
}

fn signature_report(
    source: SignedSource<'_>,
    bytes: &[u8],
    keys: &[TrustedKey],
) -> SignatureReport {
    let signature = match source.signature() {
        Ok(None) => return SignatureReport::Unsigned,
        Ok(Some(signature)) => signature,
        Err(e) => {
            return SignatureReport::Unreadable {
                error: e.to_string(),
            };
        }
    };
    let key_id = signature.key_id();
    let trusted = keys.iter().any(|k| k.id() == key_id);
    let valid = trusted.then(|| signature.verify(bytes, keys).is_ok());
    SignatureReport::Signed {
        key_id,
        trusted,
        valid,
    }
}

impl Inspection {
    /// The report as JSON, for machines.
    pub fn to_json(&self) -> serde_json::Value {
        let either = |r: &Result<serde_json::Value, String>| match r {
            Ok(v) => v.clone(),
            Err(e) => serde_json::json!({ "error": e }),
        };
        let manifest = either(
            &self
                .manifest
                .as_ref()
                .map(|m| serde_json::to_value(m).unwrap_or_default())
                .map_err(Clone::clone),
        );
        let capabilities = either(
            &self
                .capabilities
                .as_ref()
                .map(|c| serde_json::to_value(c).unwrap_or_default())
                .map_err(Clone::clone),
        );
        serde_json::json!({
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "wit_version": self.wit_version.as_ref().map(|v| format!("{WIT_PACKAGE}@{v}")),
            "manifest": manifest,
            "capabilities": capabilities,
            "signature": self.signature,
        })
    }
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "file          {}", self.path.display())?;
        match &self.manifest {
            Ok(m) => {
                writeln!(f, "name          {}", m.name)?;
                writeln!(f, "version       {}", m.version)?;
            }
            Err(e) => writeln!(f, "manifest      not available: {e}")?,
        }
        match &self.wit_version {
            Some(v) => writeln!(f, "wit           {WIT_PACKAGE}@{v}")?,
            None => writeln!(
                f,
                "wit           none: exports no {WIT_PACKAGE}/interceptor"
            )?,
        }
        if let Ok(m) = &self.manifest {
            let interests: Vec<String> = m
                .interests
                .iter()
                .map(|i| {
                    let all = |v: Vec<String>| {
                        if v.is_empty() {
                            "*".into()
                        } else {
                            v.join(",")
                        }
                    };
                    format!(
                        "{} {}",
                        all(i.kinds.iter().map(|k| k.to_string()).collect()),
                        all(i.methods.clone())
                    )
                })
                .collect();
            let interests = if interests.is_empty() {
                "everything".to_owned()
            } else {
                interests.join("; ")
            };
            writeln!(f, "interests     {interests}")?;
            writeln!(
                f,
                "wants request {}",
                if m.wants_request { "yes" } else { "no" }
            )?;
        }
        match &self.capabilities {
            Ok(None) => writeln!(
                f,
                "capabilities  none declared (gets what its configuration grants)"
            )?,
            Ok(Some(c)) if *c == Capabilities::default() => {
                writeln!(f, "capabilities  nothing (declared)")?
            }
            Ok(Some(c)) => {
                writeln!(f, "capabilities")?;
                for dir in &c.dirs {
                    let mode = match dir.mode {
                        crate::config::DirMode::ReadOnly => "ro",
                        crate::config::DirMode::ReadWrite => "rw",
                    };
                    writeln!(f, "  dir         {} ({mode})", dir.guest)?;
                }
                for var in &c.env {
                    writeln!(f, "  env         {var}")?;
                }
                for url in &c.http {
                    writeln!(f, "  http        {url}")?;
                }
                if c.kv {
                    writeln!(f, "  kv          yes")?;
                }
            }
            Err(e) => writeln!(f, "capabilities  invalid: {e}")?,
        }
        writeln!(f, "size          {} bytes", self.size)?;
        writeln!(f, "sha256        {}", self.sha256)?;
        let signature = match &self.signature {
            SignatureReport::Unsigned => "unsigned".to_owned(),
            SignatureReport::Unreadable { error } => format!("unreadable: {error}"),
            SignatureReport::Signed {
                key_id,
                trusted: false,
                ..
            } => format!("signed by key {key_id}, not a trusted key (not checked; pass --key)"),
            SignatureReport::Signed {
                key_id,
                valid: Some(true),
                ..
            } => format!("signed by key {key_id}, trusted, valid"),
            SignatureReport::Signed { key_id, .. } => {
                format!("signed by key {key_id}, trusted, INVALID: the file changed after signing")
            }
        };
        write!(f, "signature     {signature}")
    }
}

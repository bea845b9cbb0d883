//! Plugins in OCI registries, in the CNCF Wasm OCI artifact layout that `wkg`, Spin
//! and wasmCloud use: one `application/wasm` layer (the component's bytes) and a
//! config of type `application/vnd.wasm.config.v0+json` naming the layer's digest and
//! the component's imports and exports.
//!
//! `interpose plugin push FILE.wasm REF` and `plugin pull REF`, and `path =
//! "oci://REGISTRY/NAME:TAG"` (or `...@sha256:DIGEST`) in `interpose.toml`. What is
//! pulled is kept in a content-addressed cache (`<cache>/oci/`): the component under
//! its layer's digest, each manifest digest with the layer it names, each tag with
//! the manifest it pointed to when pulled. A plugin named by reference is loaded from
//! the cache when it is there (a tag is resolved once, until `plugin pull` again), so
//! a proxy starts offline; its bytes are hashed again before every load and must
//! match the digest they are stored under. Bytes from a registry are checked against
//! the manifest's digests before they are stored, and a manifest against the digest a
//! reference pins.
//!
//! Registries on a loopback address are spoken to over plain HTTP (a local test or
//! development registry); any other over HTTPS. Credentials, when a registry needs
//! them: `INTERPOSE_OCI_USERNAME` and `INTERPOSE_OCI_PASSWORD`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Serialize;

use super::compile_cache::default_cache_dir;
use super::trust::signature::Signature;
use crate::config::{OCI_SCHEME as SCHEME, Sha256};

/// The layer that holds the component.
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The artifact's config, as the Wasm OCI artifact layout defines it.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The manifest annotation that carries the component's minisign signature, so a
/// plugin and its signature travel as one artifact; the signature covers the layer's
/// bytes, the exact bytes loaded. Its value is the `FILE.wasm.minisig` file in
/// standard base64: the file has newlines and tabs, which oci-client's canonical JSON
/// writes raw, and a registry rejects (`MANIFEST_INVALID`).
pub const SIGNATURE_ANNOTATION: &str = "dev.interpose.plugin.minisign";
/// Longest a registry may take over one pull or push.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(60);

/// A plugin reference: `REGISTRY/NAME[:TAG][@sha256:DIGEST]`, with or without the
/// `oci://` in front.
#[derive(Debug, Clone)]
pub struct PluginRef(Reference);

impl PluginRef {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let bare = text.strip_prefix(SCHEME).unwrap_or(text);
        // Without a registry, `Reference` would pick Docker Hub: a plugin reference
        // names its registry.
        if !bare
            .split('/')
            .next()
            .is_some_and(|first| first.contains(['.', ':']) || first == "localhost")
            || !bare.contains('/')
        {
            bail!(
                "`{text}` is not a plugin reference: expected REGISTRY/NAME:TAG or REGISTRY/NAME@sha256:DIGEST, e.g. ghcr.io/acme/redact:1.0"
            );
        }
        let reference: Reference = bare
            .parse()
            .with_context(|| format!("`{text}` is not a plugin reference"))?;
        Ok(PluginRef(reference))
    }

    fn registry(&self) -> &str {
        self.0.resolve_registry()
    }

    /// `REGISTRY/NAME`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry(), self.0.repository())
    }

    fn tag(&self) -> &str {
        self.0.tag().unwrap_or("latest")
    }

    fn loopback(&self) -> bool {
        let host = self
            .registry()
            .rsplit_once(':')
            .map_or(self.registry(), |(host, _)| host);
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    fn client(&self) -> Client {
        let protocol = if self.loopback() {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        Client::new(ClientConfig {
            protocol,
            ..ClientConfig::default()
        })
    }
}

impl std::fmt::Display for PluginRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.whole())
    }
}

fn auth() -> RegistryAuth {
    match (
        std::env::var("INTERPOSE_OCI_USERNAME"),
        std::env::var("INTERPOSE_OCI_PASSWORD"),
    ) {
        (Ok(user), Ok(password)) => RegistryAuth::Basic(user, password),
        _ => RegistryAuth::Anonymous,
    }
}

/// A `sha256:HEX` digest's hex part.
fn hex_of(digest: &str) -> anyhow::Result<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| anyhow!("`{digest}` is not a sha256 digest"))
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", Sha256::of(bytes))
}

/// The pulled plugins, content-addressed, under `<root>/oci`.
pub struct OciCache {
    root: PathBuf,
}

/// A plugin found in the cache: where its bytes are, their digest (which they
/// match), the digest of the manifest they were pulled by, and where the signature
/// that came with that manifest is kept (no file there when it came unsigned).
pub struct Cached {
    pub path: PathBuf,
    pub digest: String,
    pub manifest: String,
    pub signature: PathBuf,
}

impl OciCache {
    /// The cache under the plugin cache directory (see `compile_cache`).
    pub fn open_default() -> anyhow::Result<Self> {
        let root = default_cache_dir().ok_or_else(|| {
            anyhow!("no cache directory for pulled plugins: set INTERPOSE_CACHE_DIR or HOME")
        })?;
        Ok(OciCache::at(root.join("oci")))
    }

    pub fn at(root: PathBuf) -> Self {
        OciCache { root }
    }

    fn blob(&self, digest: &str) -> anyhow::Result<PathBuf> {
        Ok(self
            .root
            .join("blobs/sha256")
            .join(format!("{}.wasm", hex_of(digest)?)))
    }

    fn manifest_entry(&self, digest: &str) -> anyhow::Result<PathBuf> {
        Ok(self.root.join("manifests/sha256").join(hex_of(digest)?))
    }

    /// A manifest's signature: two manifests may carry the same layer signed by
    /// different keys.
    fn signature_entry(&self, manifest: &str) -> anyhow::Result<PathBuf> {
        Ok(self
            .root
            .join("manifests/sha256")
            .join(format!("{}.minisig", hex_of(manifest)?)))
    }

    fn tag_entry(&self, reference: &PluginRef) -> PathBuf {
        let r = &reference.0;
        self.root
            .join("tags")
            .join(r.resolve_registry().replace(':', "_"))
            .join(r.repository())
            .join(reference.tag())
    }

    /// The manifest and layer digests a reference resolves to in the cache, if it was
    /// pulled.
    fn digests_of(&self, reference: &PluginRef) -> anyhow::Result<Option<(String, String)>> {
        let manifest = match reference.0.digest() {
            Some(digest) => digest.to_owned(),
            None => match std::fs::read_to_string(self.tag_entry(reference)) {
                Ok(digest) => digest.trim().to_owned(),
                Err(_) => return Ok(None),
            },
        };
        match std::fs::read_to_string(self.manifest_entry(&manifest)?) {
            Ok(layer) => Ok(Some((manifest, layer.trim().to_owned()))),
            Err(_) => Ok(None),
        }
    }

    /// The cached plugin `reference` names, if it was pulled; its bytes are not read
    /// here (the loader hashes what it loads, see [`verify_cached`]).
    pub fn find(&self, reference: &PluginRef) -> anyhow::Result<Option<Cached>> {
        let Some((manifest, layer)) = self.digests_of(reference)? else {
            return Ok(None);
        };
        let path = self.blob(&layer)?;
        let signature = self.signature_entry(&manifest)?;
        Ok(path.is_file().then_some(Cached {
            path,
            digest: layer,
            manifest,
            signature,
        }))
    }

    /// Stores a pulled plugin: its bytes under their digest, the manifest digest with
    /// that layer and its signature, the tag with that manifest.
    fn store(
        &self,
        reference: &PluginRef,
        manifest: &str,
        layer: &str,
        bytes: &[u8],
        signature: Option<&str>,
    ) -> anyhow::Result<Cached> {
        let path = self.blob(layer)?;
        write_atomically(&path, bytes)?;
        let signature_path = self.signature_entry(manifest)?;
        // The signature before the manifest entry that makes the pull visible.
        if let Some(signature) = signature {
            write_atomically(&signature_path, signature.as_bytes())?;
        }
        write_atomically(&self.manifest_entry(manifest)?, layer.as_bytes())?;
        if reference.0.digest().is_none() {
            write_atomically(&self.tag_entry(reference), manifest.as_bytes())?;
        }
        Ok(Cached {
            path,
            digest: layer.to_owned(),
            manifest: manifest.to_owned(),
            signature: signature_path,
        })
    }
}

/// Writes `bytes` to `path` through a temporary file, so that a reader never sees a
/// part of them.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().expect("cache entries are in a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Checks that bytes read from the cache are what they are stored as.
/// `actual` is their SHA-256, which the loader computes once for the pin and this.
pub fn verify_cached(actual: Sha256, digest: &str) -> anyhow::Result<()> {
    let actual = format!("sha256:{actual}");
    if actual != digest {
        bail!(
            "the cached plugin does not match its digest {digest} (it is {actual}): the cache was changed; pull it again"
        );
    }
    Ok(())
}

/// Pulls `reference` into `cache`, checking every digest. Returns where it is kept.
pub async fn pull(cache: &OciCache, reference: &PluginRef) -> anyhow::Result<Cached> {
    let client = reference.client();
    let auth = auth();
    let pulled = client.pull(&reference.0, &auth, vec![LAYER_MEDIA_TYPE]);
    let image = within_timeout(pulled)
        .await?
        .with_context(|| format!("cannot pull {reference}"))?;
    let manifest = image
        .manifest
        .as_ref()
        .ok_or_else(|| anyhow!("{reference}: the registry sent no manifest"))?;
    let manifest_digest = image
        .digest
        .clone()
        .ok_or_else(|| anyhow!("{reference}: no manifest digest"))?;
    if let Some(pinned) = reference.0.digest()
        && pinned != manifest_digest
    {
        bail!("{reference}: the registry's manifest is {manifest_digest}, not the pinned {pinned}");
    }
    if manifest.config.media_type != CONFIG_MEDIA_TYPE {
        bail!(
            "{reference} is not a Wasm component artifact: its config is `{}`, not `{CONFIG_MEDIA_TYPE}`",
            manifest.config.media_type
        );
    }
    let [descriptor] = &manifest.layers[..] else {
        bail!(
            "{reference}: a plugin artifact has one layer, this one has {}",
            manifest.layers.len()
        );
    };
    let [layer] = &image.layers[..] else {
        bail!("{reference}: expected one `{LAYER_MEDIA_TYPE}` layer");
    };
    let actual = digest_of(&layer.data);
    if actual != descriptor.digest {
        bail!(
            "{reference}: the layer the registry sent is {actual}, not the {} its manifest names: refused",
            descriptor.digest
        );
    }
    let signature = manifest
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(SIGNATURE_ANNOTATION))
        .map(|encoded| signature_of_annotation(encoded))
        .transpose()
        .with_context(|| format!("{reference}: its `{SIGNATURE_ANNOTATION}` annotation"))?;
    cache.store(
        reference,
        &manifest_digest,
        &descriptor.digest,
        &layer.data,
        signature.as_deref(),
    )
}

/// The `.minisig` file text an annotation carries, checked to be one.
fn signature_of_annotation(encoded: &str) -> anyhow::Result<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .context("not base64")?;
    let text = String::from_utf8(bytes).context("not text")?;
    Signature::parse(&text).map_err(|e| anyhow!("not a minisign signature: {e}"))?;
    Ok(text)
}

/// What the artifact's config says of the component.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig {
    created: String,
    architecture: &'static str,
    os: &'static str,
    layer_digests: Vec<String>,
    component: ComponentWorld,
}

#[derive(Serialize)]
struct ComponentWorld {
    exports: Vec<String>,
    imports: Vec<String>,
}

/// The names a component imports and exports at its top level.
fn world_of(wasm: &[u8]) -> anyhow::Result<ComponentWorld> {
    use wasmparser::{Parser, Payload};
    let mut world = ComponentWorld {
        exports: Vec::new(),
        imports: Vec::new(),
    };
    let mut depth = 0usize;
    let mut component = false;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.context("not a WebAssembly file")? {
            Payload::Version { encoding, .. } if depth == 0 => {
                component = encoding == wasmparser::Encoding::Component;
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(imports) if depth == 0 => {
                for import in imports {
                    world.imports.push(import?.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(exports) if depth == 0 => {
                for export in exports {
                    world.exports.push(export?.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    if !component {
        bail!(
            "not a WebAssembly component (a core module? plugins are components: see docs/plugins.md)"
        );
    }
    Ok(world)
}

/// Pushes the component `wasm` as `reference`, with its minisign `signature` (the
/// text of a `.minisig` file) when there is one; returns the manifest's digest.
pub async fn push(
    wasm: Vec<u8>,
    signature: Option<String>,
    reference: &PluginRef,
) -> anyhow::Result<String> {
    let layer_digest = digest_of(&wasm);
    let config = WasmConfig {
        created: crate::log_output::utc_micros(std::time::SystemTime::now()),
        architecture: "wasm",
        os: "wasip2",
        layer_digests: vec![layer_digest],
        component: world_of(&wasm)?,
    };
    let config = Config::new(
        serde_json::to_vec(&config)?,
        CONFIG_MEDIA_TYPE.to_owned(),
        None,
    );
    let layers = vec![ImageLayer::new(wasm, LAYER_MEDIA_TYPE.to_owned(), None)];
    let annotations = signature.map(|text| {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        std::collections::BTreeMap::from([(SIGNATURE_ANNOTATION.to_owned(), encoded)])
    });
    let manifest = OciImageManifest::build(&layers, &config, annotations);
    let client = reference.client();
    let auth = auth();
    let pushed = async {
        client
            .push(&reference.0, &layers, config, &auth, Some(manifest))
            .await?;
        // The digest of the manifest as the registry stores it.
        client.fetch_manifest_digest(&reference.0, &auth).await
    };
    within_timeout(pushed)
        .await?
        .with_context(|| format!("cannot push to {reference}"))
}

/// What a registry exchange gave, unless it took longer than [`REGISTRY_TIMEOUT`].
async fn within_timeout<T>(exchange: impl Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(REGISTRY_TIMEOUT, exchange)
        .await
        .map_err(|_| {
            anyhow!(
                "the registry did not answer within {} s",
                REGISTRY_TIMEOUT.as_secs()
            )
        })
}

/// The plugin a configuration names by `reference`, from the cache, pulled first if
/// it is not there.
pub async fn resolve(reference: &PluginRef) -> anyhow::Result<Cached> {
    let cache = OciCache::open_default()?;
    if let Some(cached) = cache.find(reference)? {
        return Ok(cached);
    }
    tracing::info!(reference = %reference, "pulling the plugin");
    pull(&cache, reference).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_their_registry() {
        let r = PluginRef::parse("oci://127.0.0.1:5000/plugins/redact:1.0").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.tag(), "1.0");
        assert!(r.loopback());
        let r = PluginRef::parse("ghcr.io/acme/redact@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef").unwrap();
        assert!(!r.loopback());
        assert!(r.0.digest().is_some());
        let error = PluginRef::parse("redact:1.0").unwrap_err().to_string();
        assert!(error.contains("REGISTRY/NAME:TAG"), "{error}");
    }

    #[test]
    fn a_signature_annotation_is_a_base64_minisign_file() {
        use base64::Engine;
        let (_, secret, _) = crate::plugin::trust::signature::generate_keypair().unwrap();
        let (text, _) = crate::plugin::trust::signature::sign(b"bytes", &secret, "p.wasm").unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&text);
        assert_eq!(signature_of_annotation(&encoded).unwrap(), text);
        let raw = format!("{:#}", signature_of_annotation(&text).unwrap_err());
        assert!(raw.contains("not base64"), "{raw}");
        let junk = base64::engine::general_purpose::STANDARD.encode("junk");
        let junk = format!("{:#}", signature_of_annotation(&junk).unwrap_err());
        assert!(junk.contains("not a minisign signature"), "{junk}");
    }

    #[test]
    fn the_cache_finds_what_it_stored_by_tag_and_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = OciCache::at(dir.path().to_owned());
        let bytes = b"\0asm component bytes";
        let layer = digest_of(bytes);
        let manifest = digest_of(b"manifest");
        let tagged = PluginRef::parse("oci://localhost:5000/p/x:1").unwrap();
        assert!(cache.find(&tagged).unwrap().is_none());
        cache
            .store(&tagged, &manifest, &layer, bytes, Some("the signature"))
            .unwrap();
        let found = cache.find(&tagged).unwrap().unwrap();
        assert_eq!(found.digest, layer);
        assert_eq!(std::fs::read(&found.path).unwrap(), bytes);
        assert_eq!(
            std::fs::read_to_string(&found.signature).unwrap(),
            "the signature"
        );
        let pinned = PluginRef::parse(&format!("oci://localhost:5000/p/x@{manifest}")).unwrap();
        assert_eq!(cache.find(&pinned).unwrap().unwrap().digest, layer);
        verify_cached(Sha256::of(bytes), &layer).unwrap();
        // The same layer under another manifest, unsigned: its own signature entry.
        let unsigned = digest_of(b"another manifest");
        let other = PluginRef::parse(&format!("oci://localhost:5000/p/x@{unsigned}")).unwrap();
        cache.store(&other, &unsigned, &layer, bytes, None).unwrap();
        assert!(!cache.find(&other).unwrap().unwrap().signature.exists());
        let error = verify_cached(Sha256::of(b"changed"), &layer)
            .unwrap_err()
            .to_string();
        assert!(error.contains("the cache was changed"), "{error}");
    }
}

//! Plugin signatures in the minisign format (Ed25519 over a BLAKE2b hash of the
//! file): `FILE.wasm.minisig` beside the component, made by `interpose plugin sign`
//! or by the `minisign` tool itself, checked against the configuration's trusted
//! public keys. Public key files are minisign's: the tool's keys are trusted and its
//! signatures accepted as they are (except legacy, not prehashed, ones);
//! `interpose plugin sign` takes the unencrypted secret keys `interpose plugin
//! keygen` writes.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use minisign::{KeyPair, PublicKey, PublicKeyBox, SecretKeyBox, SignatureBox};

use crate::config::{PluginConfig, looks_inline};

/// `FILE.wasm.minisig`: where the signature of `FILE.wasm` is looked for.
pub fn signature_path(wasm: &Path) -> PathBuf {
    let mut path = wasm.as_os_str().to_owned();
    path.push(minisign::SIG_SUFFIX);
    PathBuf::from(path)
}

/// Why a plugin's signature does not do.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("a signature is required (`require_signature`) but no `trusted_keys` are configured")]
    NoTrustedKeys,
    #[error("a signature is required and the plugin is unsigned: there is no {}", .0.display())]
    Unsigned(PathBuf),
    #[error(
        "a signature is required and the plugin was pushed to its registry without one \
         (`interpose plugin push` sends FILE.wasm.minisig along when it is beside FILE.wasm)"
    )]
    UnsignedArtifact,
    #[error("cannot read the signature {}: {cause}", path.display())]
    ReadSignature {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{} is not a minisign signature: {message}", path.display())]
    Malformed { path: PathBuf, message: String },
    #[error("signed by key {key_id}, which is not one of the trusted keys")]
    Untrusted { key_id: String },
    #[error("the signature by key {key_id} does not match the file (changed after signing?)")]
    Invalid { key_id: String },
    #[error("trusted key `{spec}`: {message}")]
    Key { spec: String, message: String },
}

/// A public key signatures are checked against.
#[derive(Clone)]
pub struct TrustedKey {
    key: PublicKey,
}

impl TrustedKey {
    /// A key from `spec`: a minisign public key inline (`RW...`, as the second line
    /// of a `.pub` file), or the path of a `.pub` file.
    pub fn load(spec: &str) -> Result<Self, SignatureError> {
        let fail = |message: String| SignatureError::Key {
            spec: spec.to_owned(),
            message,
        };
        let trimmed = spec.trim();
        let key = if looks_inline(trimmed) {
            PublicKey::from_base64(trimmed).map_err(|e| fail(e.to_string()))?
        } else {
            let text = std::fs::read_to_string(trimmed)
                .map_err(|e| fail(format!("cannot read the key file: {e}")))?;
            public_key_from_text(&text).map_err(fail)?
        };
        Ok(TrustedKey { key })
    }

    /// The key's ID, as minisign prints it (16 hex digits).
    pub fn id(&self) -> String {
        key_id(self.key.keynum())
    }
}

/// The key of a minisign `.pub` file (an `untrusted comment:` line, then the key).
fn public_key_from_text(text: &str) -> Result<PublicKey, String> {
    PublicKeyBox::from_string(text)
        .and_then(PublicKeyBox::into_public_key)
        .map_err(|e| format!("not a minisign public key: {e}"))
}

fn key_id(keynum: &[u8]) -> String {
    let mut bytes = [0u8; 8];
    let n = keynum.len().min(8);
    bytes[..n].copy_from_slice(&keynum[..n]);
    format!("{:016X}", u64::from_le_bytes(bytes))
}

/// A parsed signature file.
pub struct Signature {
    sig: SignatureBox,
}

impl Signature {
    /// The signature of `wasm` beside it, `None` when there is none.
    pub fn read_for(wasm: &Path) -> Result<Option<Signature>, SignatureError> {
        Self::read(&signature_path(wasm))
    }

    /// The signature in the file `path`, `None` when there is no such file.
    pub fn read(path: &Path) -> Result<Option<Signature>, SignatureError> {
        let path = path.to_owned();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(cause) => return Err(SignatureError::ReadSignature { path, cause }),
        };
        Self::parse(&text)
            .map(Some)
            .map_err(|message| SignatureError::Malformed { path, message })
    }

    /// A signature file's text, parsed.
    pub fn parse(text: &str) -> Result<Signature, String> {
        SignatureBox::from_string(text)
            .map(|sig| Signature { sig })
            .map_err(|e| e.to_string())
    }

    /// The ID of the key that made it.
    pub fn key_id(&self) -> String {
        key_id(self.sig.keynum())
    }

    /// Checks that one of `keys` made this signature of exactly `bytes`; returns that
    /// key's ID.
    pub fn verify(&self, bytes: &[u8], keys: &[TrustedKey]) -> Result<String, SignatureError> {
        let key_id = self.key_id();
        let key = keys
            .iter()
            .find(|k| k.key.keynum() == self.sig.keynum())
            .ok_or_else(|| SignatureError::Untrusted {
                key_id: key_id.clone(),
            })?;
        // Legacy (not prehashed) signatures are refused, as minisign itself does.
        minisign::verify(&key.key, &self.sig, Cursor::new(bytes), true, false, false).map_err(
            |_| SignatureError::Invalid {
                key_id: key_id.clone(),
            },
        )?;
        Ok(key_id)
    }
}

/// The signature policy of one plugin, resolved from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignaturePolicy {
    pub required: bool,
    /// `trusted_keys` entries (inline keys or paths).
    pub trusted_keys: Vec<String>,
}

impl SignaturePolicy {
    /// Whether `config`'s plugin needs a signature, and by which keys.
    pub fn of(config: &PluginConfig) -> Self {
        SignaturePolicy {
            required: config.require_signature.unwrap_or(false),
            trusted_keys: config.trusted_keys.clone().unwrap_or_default(),
        }
    }

    /// Checks `bytes`, read from `source`, when a signature is required: returns the
    /// ID of the trusted key that signed them, or why not. `None` when no signature is
    /// required (the signature is not looked at).
    pub fn admit(
        &self,
        source: SignedSource<'_>,
        bytes: &[u8],
    ) -> Result<Option<String>, SignatureError> {
        if !self.required {
            return Ok(None);
        }
        if self.trusted_keys.is_empty() {
            return Err(SignatureError::NoTrustedKeys);
        }
        let keys = self
            .trusted_keys
            .iter()
            .map(|spec| TrustedKey::load(spec))
            .collect::<Result<Vec<_>, _>>()?;
        let signature = source.signature()?.ok_or_else(|| match source {
            SignedSource::File(wasm) => SignatureError::Unsigned(signature_path(wasm)),
            SignedSource::Pulled { .. } => SignatureError::UnsignedArtifact,
        })?;
        signature.verify(bytes, &keys).map(Some)
    }
}

/// Where the bytes being admitted came from, and so where their signature is.
#[derive(Clone, Copy)]
pub enum SignedSource<'a> {
    /// A plugin file: its signature is `FILE.wasm.minisig` beside it.
    File(&'a Path),
    /// A plugin pulled from a registry: its signature came with its manifest and is
    /// kept in the cache, at this path.
    Pulled(&'a Path),
}

impl SignedSource<'_> {
    /// The signature, `None` when there is none.
    pub fn signature(&self) -> Result<Option<Signature>, SignatureError> {
        match self {
            SignedSource::File(wasm) => Signature::read_for(wasm),
            SignedSource::Pulled(signature) => Signature::read(signature),
        }
    }
}

/// A new key pair as minisign files: (public key file, secret key file) text, and
/// the key's ID. The secret key is not password-protected (keep it like an SSH key
/// without a passphrase; for a protected one use the `minisign` tool to sign).
pub fn generate_keypair() -> anyhow::Result<(String, String, String)> {
    let pair = KeyPair::generate_unencrypted_keypair()?;
    let id = key_id(pair.pk.keynum());
    let public = pair.pk.to_box()?.into_string();
    let secret = pair
        .sk
        .to_box(Some(&format!("interpose plugin signing key {id}")))?
        .into_string();
    Ok((public, secret, id))
}

/// The minisign signature of `bytes` with the secret key file text `secret`, and
/// the key's ID. `file_name` goes in the trusted comment, as minisign puts it.
pub fn sign(bytes: &[u8], secret: &str, file_name: &str) -> anyhow::Result<(String, String)> {
    let secret = SecretKeyBox::from_string(secret)
        .and_then(SecretKeyBox::into_unencrypted_secret_key)
        .map_err(|e| {
            anyhow::anyhow!(
                "not a secret key from `interpose plugin keygen` ({e}); sign with the \
                 `minisign` tool (`minisign -S`) for its own keys"
            )
        })?;
    let trusted = format!(
        "timestamp:{}\tfile:{file_name}\thashed",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    let signature = minisign::sign(
        None,
        &secret,
        Cursor::new(bytes),
        Some(&trusted),
        Some("signature from interpose plugin sign"),
    )?;
    let id = key_id(signature.keynum());
    Ok((signature.into_string(), id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (PathBuf, String) {
        let (public, secret, _) = generate_keypair().unwrap();
        let path = dir.join(format!("{name}.pub"));
        std::fs::write(&path, public).unwrap();
        (path, secret)
    }

    #[test]
    fn a_signature_verifies_with_its_key_only_over_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("p.wasm");
        std::fs::write(&wasm, b"component bytes").unwrap();
        let (public, secret) = pair(dir.path(), "ok");
        let (other, _) = pair(dir.path(), "other");
        let (text, id) = sign(b"component bytes", &secret, "p.wasm").unwrap();
        std::fs::write(signature_path(&wasm), text).unwrap();
        let policy = |key: &Path| SignaturePolicy {
            required: true,
            trusted_keys: vec![key.display().to_string()],
        };
        assert_eq!(
            policy(&public)
                .admit(SignedSource::File(&wasm), b"component bytes")
                .unwrap(),
            Some(id.clone())
        );
        let err = policy(&public)
            .admit(SignedSource::File(&wasm), b"component bytez")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("the signature by key {id} does not match the file (changed after signing?)")
        );
        let err = policy(&other)
            .admit(SignedSource::File(&wasm), b"component bytes")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("signed by key {id}, which is not one of the trusted keys")
        );
        // The key inline, as the `.pub` file's second line.
        let inline = std::fs::read_to_string(&public)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .to_owned();
        let inline = SignaturePolicy {
            required: true,
            trusted_keys: vec![inline],
        };
        assert!(
            inline
                .admit(SignedSource::File(&wasm), b"component bytes")
                .is_ok()
        );
    }

    #[test]
    fn unsigned_or_keyless_is_refused_only_when_required() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("p.wasm");
        let (public, _) = pair(dir.path(), "k");
        assert_eq!(
            SignaturePolicy::default()
                .admit(SignedSource::File(&wasm), b"x")
                .unwrap(),
            None
        );
        let keyless = SignaturePolicy {
            required: true,
            trusted_keys: vec![],
        };
        assert!(matches!(
            keyless.admit(SignedSource::File(&wasm), b"x"),
            Err(SignatureError::NoTrustedKeys)
        ));
        let required = SignaturePolicy {
            required: true,
            trusted_keys: vec![public.display().to_string()],
        };
        let err = required
            .admit(SignedSource::File(&wasm), b"x")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "a signature is required and the plugin is unsigned: there is no {}.minisig",
                wasm.display()
            )
        );
        let bad_key = SignaturePolicy {
            required: true,
            trusted_keys: vec!["no/such.pub".into()],
        };
        assert!(
            bad_key
                .admit(SignedSource::File(&wasm), b"x")
                .unwrap_err()
                .to_string()
                .starts_with("trusted key `no/such.pub`: cannot read the key file")
        );
    }
}

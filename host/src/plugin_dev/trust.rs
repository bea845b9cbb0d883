//! `interpose plugin inspect|keygen|sign|verify`: what a plugin asks for and who
//! signed it, on the command line. The checks are the library's
//! ([`interpose::plugin::trust`]), the same the proxy runs at load.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use interpose::config::OCI_SCHEME;
use interpose::plugin::oci;
use interpose::plugin::trust::{capabilities, inspect, signature};

/// Prints what `inspect` finds, as text or JSON.
pub fn inspect(file: &Path, keys: &[String], json: bool) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let inspection = runtime.block_on(async {
        // A registry reference is inspected as the proxy would load it: from the
        // cache (pulled first if need be), with the signature that came with it.
        match file.to_str().filter(|f| f.starts_with(OCI_SCHEME)) {
            Some(reference) => {
                let cached = oci::resolve(&oci::PluginRef::parse(reference)?).await?;
                let source = signature::SignedSource::Pulled(&cached.signature);
                inspect::inspect(&cached.path, source, keys).await
            }
            None => inspect::inspect(file, signature::SignedSource::File(file), keys).await,
        }
    })?;
    if json {
        println!("{:#}", inspection.to_json());
    } else {
        println!("{inspection}");
    }
    Ok(())
}

/// Writes `PREFIX.pub` and `PREFIX.key` (readable by the user alone); refuses to
/// overwrite either.
pub fn keygen(prefix: &Path) -> Result<()> {
    let (public, secret, id) = signature::generate_keypair()?;
    let public_path = with_suffix(prefix, ".pub");
    let secret_path = with_suffix(prefix, ".key");
    for path in [&public_path, &secret_path] {
        if path.exists() {
            bail!("{} exists; not overwriting a key", path.display());
        }
    }
    write_new(&secret_path, &secret, 0o600)?;
    write_new(&public_path, &public, 0o644)?;
    println!("key {id}");
    println!("secret key: {} (keep it private)", secret_path.display());
    println!("public key: {}", public_path.display());
    println!(
        "trust it in interpose.toml: [trust] trusted_keys = [\"{}\"]",
        public.lines().nth(1).unwrap_or_default()
    );
    Ok(())
}

/// Writes `FILE.wasm.minisig`, the signature of the file's bytes by the secret key.
pub fn sign(file: &Path, secret_key: &Path) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let secret = std::fs::read_to_string(secret_key)
        .with_context(|| format!("cannot read the secret key {}", secret_key.display()))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (text, id) = signature::sign(&bytes, &secret, &name)
        .with_context(|| format!("{}", secret_key.display()))?;
    let out = signature::signature_path(file);
    std::fs::write(&out, text).with_context(|| format!("cannot write {}", out.display()))?;
    println!("{}: signed by key {id}", out.display());
    Ok(())
}

/// The signature `interpose plugin push` sends with `file`: `FILE.wasm.minisig`, when
/// it is there. One that does not parse stops the push rather than travel to a
/// registry and fail every load. (Whether it matches the bytes takes the public key:
/// the proxy checks that at load, `plugin verify` before.)
pub fn signature_to_push(file: &Path) -> Result<Option<String>> {
    let path = signature::signature_path(file);
    let Some(parsed) = signature::Signature::read(&path)? else {
        eprintln!("{}: unsigned (no {})", file.display(), path.display());
        return Ok(None);
    };
    eprintln!(
        "{}: pushing its signature by key {}",
        file.display(),
        parsed.key_id()
    );
    Ok(Some(std::fs::read_to_string(&path)?))
}

/// Says on stderr whether a pulled plugin came signed, and by which key: whether that
/// key is trusted is the configuration's to say, at load.
pub fn report_pulled_signature(path: &Path) -> Result<()> {
    match signature::Signature::read(path)? {
        Some(signature) => eprintln!("signed by key {}", signature.key_id()),
        None => eprintln!("unsigned"),
    }
    Ok(())
}

/// Checks the signature of `file` against `keys` as the proxy does at load, and its
/// declaration; fails with the reason. Prints how long the checks took.
pub fn verify(file: &Path, keys: &[String]) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let started = Instant::now();
    let policy = signature::SignaturePolicy {
        required: true,
        trusted_keys: keys.to_vec(),
    };
    let key_id = policy
        .admit(signature::SignedSource::File(file), &bytes)
        .with_context(|| format!("{}", file.display()))?
        .unwrap_or_default();
    let signature_time = started.elapsed();
    let declared =
        capabilities::read_declared(&bytes).with_context(|| format!("{}", file.display()))?;
    let declaration_time = started.elapsed() - signature_time;
    println!(
        "{}: signature by trusted key {key_id} verified; capabilities {} ({} bytes: \
         signature checked in {signature_time:.2?}, declaration read in {declaration_time:.2?})",
        file.display(),
        if declared.is_some() {
            "declared"
        } else {
            "not declared"
        },
        bytes.len(),
    );
    Ok(())
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut path = prefix.as_os_str().to_owned();
    path.push(suffix);
    PathBuf::from(path)
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

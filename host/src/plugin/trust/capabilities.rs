//! Declared capabilities: what a plugin says it needs, in a custom section of its
//! component (`interpose-capabilities`, JSON), compared at load with what the
//! operator's configuration grants.
//!
//! A custom section rather than a field of the WIT manifest: it is read without
//! instantiating the component (so `interpose plugin inspect` and the load check run
//! no guest code), and adding it changes nothing in `wit/`, so components built
//! against `interpose:plugin@0.1.0` stay valid, with or without a declaration.

use std::fmt;

use serde::{Deserialize, Serialize};
use wasm_encoder::Encode;
use wasmparser::{Chunk, Parser, Payload};

use crate::config::{DirMode, PluginConfig, check_http_prefix};

/// The name of the custom section holding the declaration.
pub const SECTION_NAME: &str = "interpose-capabilities";

/// What a plugin declares it needs. Unknown keys are refused: a host that does not
/// know a kind of capability cannot grant it, so it must not load the plugin as if
/// it had not been asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Directories, by the path the plugin opens them at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<DeclaredDir>,
    /// Environment variables the plugin reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Outbound HTTP URL prefixes (`https://api.example.com/v1/`), requested over
    /// `wasi:http` (see `plugin::outbound_http`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<String>,
    /// Whether the plugin uses the key-value store (`kv-get`, `kv-set`, `kv-delete`).
    #[serde(default)]
    pub kv: bool,
}

/// A directory a plugin declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredDir {
    /// The path the plugin opens (`/data`).
    pub guest: String,
    /// `ro` (the default) or `rw`.
    #[serde(default)]
    pub mode: DirMode,
}

/// Why a declaration cannot be read or embedded.
#[derive(Debug, thiserror::Error)]
pub enum DeclarationError {
    #[error("the file is not a WebAssembly component: {0}")]
    NotWasm(String),
    #[error("its `{SECTION_NAME}` section is not a valid declaration: {0}")]
    Invalid(String),
    #[error("it has more than one `{SECTION_NAME}` section")]
    Duplicate,
}

impl Capabilities {
    /// Checks what serde cannot: paths absolute, names and URLs well formed.
    pub fn check(&self) -> Result<(), String> {
        for dir in &self.dirs {
            if !dir.guest.starts_with('/') {
                return Err(format!("directory `{}` is not an absolute path", dir.guest));
            }
        }
        for var in &self.env {
            check_env_name(var)?;
        }
        for url in &self.http {
            check_http_prefix(url)?;
        }
        Ok(())
    }
}

/// An environment variable's name as a grant or a declaration gives it.
pub fn check_env_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('=') {
        return Err(format!("`{name}` is not an environment variable name"));
    }
    Ok(())
}

/// The declaration in `wasm`, `None` when it has none (a plugin that declares
/// nothing is loaded as before declarations existed). Reads the component's
/// top-level sections only; no guest code runs.
pub fn read_declared(wasm: &[u8]) -> Result<Option<Capabilities>, DeclarationError> {
    let mut found = None;
    for section in top_level_sections(wasm)? {
        if let TopLevel::Declaration(data) = section {
            if found.is_some() {
                return Err(DeclarationError::Duplicate);
            }
            let declared: Capabilities = serde_json::from_slice(data)
                .map_err(|e| DeclarationError::Invalid(e.to_string()))?;
            declared.check().map_err(DeclarationError::Invalid)?;
            found = Some(declared);
        }
    }
    Ok(found)
}

/// `wasm` with `declared` as its declaration, replacing any it had.
pub fn embed(wasm: &[u8], declared: &Capabilities) -> Result<Vec<u8>, DeclarationError> {
    declared.check().map_err(DeclarationError::Invalid)?;
    let mut out = Vec::with_capacity(wasm.len() + 256);
    for section in top_level_sections(wasm)? {
        match section {
            TopLevel::Header(bytes) => out.extend_from_slice(bytes),
            TopLevel::Other { id, data } => {
                // `Encode` writes a section's size and contents; its id goes first.
                out.push(id);
                wasm_encoder::RawSection { id, data }.encode(&mut out);
            }
            TopLevel::Declaration(_) => {}
        }
    }
    let json =
        serde_json::to_vec(declared).map_err(|e| DeclarationError::Invalid(e.to_string()))?;
    push_declaration(&mut out, &json);
    Ok(out)
}

/// Appends an `interpose-capabilities` custom section holding `data`.
fn push_declaration(out: &mut Vec<u8>, data: &[u8]) {
    let section = wasm_encoder::CustomSection {
        name: SECTION_NAME.into(),
        data: data.into(),
    };
    out.push(wasm_encoder::Section::id(&section));
    section.encode(out);
}

enum TopLevel<'a> {
    /// The magic number and version.
    Header(&'a [u8]),
    /// The data of an `interpose-capabilities` custom section.
    Declaration(&'a [u8]),
    /// Any other section, nested modules and components whole.
    Other { id: u8, data: &'a [u8] },
}

/// The sections of the outermost component (or module), in order. Nested modules
/// and components (nearly all the bytes of a Python or JavaScript component) are
/// taken whole, not parsed: this runs at every load.
fn top_level_sections(wasm: &[u8]) -> Result<Vec<TopLevel<'_>>, DeclarationError> {
    let not_wasm = |e: wasmparser::BinaryReaderError| DeclarationError::NotWasm(e.to_string());
    let mut sections = Vec::new();
    let mut parser = Parser::new(0);
    let mut at = 0;
    loop {
        let (consumed, payload) = match parser.parse(&wasm[at..], true).map_err(not_wasm)? {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            // Not with `eof = true`: the parser reports a truncated file as an error.
            Chunk::NeedMoreData(_) => {
                return Err(DeclarationError::NotWasm("truncated".into()));
            }
        };
        at += consumed;
        match &payload {
            Payload::Version { range, .. } => sections.push(TopLevel::Header(&wasm[range.clone()])),
            Payload::CustomSection(custom) if custom.name() == SECTION_NAME => {
                sections.push(TopLevel::Declaration(custom.data()))
            }
            Payload::End(_) => return Ok(sections),
            other => {
                if let Some((id, range)) = other.as_section() {
                    sections.push(TopLevel::Other {
                        id,
                        data: wasm.get(range).ok_or_else(|| {
                            DeclarationError::NotWasm("a section runs past the end".into())
                        })?,
                    });
                }
            }
        }
        // The parser moved past these; its input must too.
        match payload {
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => at = unchecked_range.end,
            Payload::CodeSectionStart { range, .. } => {
                parser.skip_section();
                at = range.end;
            }
            _ => {}
        }
    }
}

/// What the configuration grants, as comparable with a declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted<'a> {
    pub dirs: Vec<(String, DirMode)>,
    pub env: &'a [String],
    pub http: &'a [String],
    /// `None`: not set (the store is available, as it always was).
    pub kv: Option<bool>,
}

impl<'a> Granted<'a> {
    pub fn of(config: &'a PluginConfig) -> Self {
        Granted {
            dirs: config
                .dirs
                .iter()
                .map(|d| (d.guest_path(), d.mode))
                .collect(),
            env: &config.env,
            http: &config.http,
            kv: config.kv,
        }
    }
}

/// One capability, as errors and warnings name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    Dir { guest: String, mode: DirMode },
    Env(String),
    Http(String),
    Kv,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capability::Dir { guest, mode } => {
                write!(f, "directory `{guest}` ({})", mode_name(*mode))
            }
            Capability::Env(name) => write!(f, "environment variable `{name}`"),
            Capability::Http(url) => write!(f, "outbound HTTP `{url}`"),
            Capability::Kv => f.write_str("the key-value store"),
        }
    }
}

fn mode_name(mode: DirMode) -> &'static str {
    match mode {
        DirMode::ReadOnly => "ro",
        DirMode::ReadWrite => "rw",
    }
}

/// The difference between a declaration and the grants.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Declared and not granted: the plugin is refused.
    pub missing: Vec<Capability>,
    /// Granted and not declared: a warning.
    pub unused: Vec<Capability>,
}

/// Compares what `declared` asks with what `granted` gives.
pub fn compare(declared: &Capabilities, granted: &Granted<'_>) -> Comparison {
    let mut out = Comparison::default();
    for dir in &declared.dirs {
        let grant = granted.dirs.iter().find(|(guest, _)| *guest == dir.guest);
        let enough = match grant {
            Some((_, granted_mode)) => {
                *granted_mode == DirMode::ReadWrite || dir.mode == DirMode::ReadOnly
            }
            None => false,
        };
        if !enough {
            out.missing.push(Capability::Dir {
                guest: dir.guest.clone(),
                mode: dir.mode,
            });
        }
    }
    for (guest, mode) in &granted.dirs {
        let wanted = declared.dirs.iter().find(|d| d.guest == *guest);
        // A read-write grant for a directory declared read-only gives more than asked.
        let over = match wanted {
            None => true,
            Some(d) => *mode == DirMode::ReadWrite && d.mode == DirMode::ReadOnly,
        };
        if over {
            out.unused.push(Capability::Dir {
                guest: guest.clone(),
                mode: *mode,
            });
        }
    }
    for var in &declared.env {
        if !granted.env.contains(var) {
            out.missing.push(Capability::Env(var.clone()));
        }
    }
    for var in granted.env {
        if !declared.env.contains(var) {
            out.unused.push(Capability::Env(var.clone()));
        }
    }
    for url in &declared.http {
        if !granted.http.iter().any(|g| covers(g, url)) {
            out.missing.push(Capability::Http(url.clone()));
        }
    }
    for grant in granted.http {
        if !declared.http.iter().any(|url| covers(grant, url)) {
            out.unused.push(Capability::Http(grant.clone()));
        }
    }
    match (declared.kv, granted.kv) {
        (true, Some(false)) => out.missing.push(Capability::Kv),
        // Only an explicit `kv = true` is a grant to warn about: the store is there
        // by default.
        (false, Some(true)) => out.unused.push(Capability::Kv),
        _ => {}
    }
    out
}

/// Whether the URL prefix `grant` (a trailing `*` is optional) takes in every URL
/// the prefix `declared` does. The grant ends at a path boundary, so that
/// `https://api.example.com` does not take in `https://api.example.com.evil.net/`.
fn covers(grant: &str, declared: &str) -> bool {
    let grant = grant.trim_end_matches('*');
    let declared = declared.trim_end_matches('*');
    match declared.strip_prefix(grant) {
        Some("") => true,
        Some(rest) => grant.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

/// The refusal's text: every capability declared and not granted.
pub fn list(capabilities: &[Capability]) -> String {
    capabilities
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: its header (the wasm magic, component layer 1).
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    fn declared(json: serde_json::Value) -> Capabilities {
        serde_json::from_value(json).unwrap()
    }

    fn granted<'a>(
        dirs: &[(&str, DirMode)],
        env: &'a [String],
        http: &'a [String],
        kv: Option<bool>,
    ) -> Granted<'a> {
        Granted {
            dirs: dirs.iter().map(|(g, m)| (g.to_string(), *m)).collect(),
            env,
            http,
            kv,
        }
    }

    #[test]
    fn a_declaration_is_embedded_read_back_and_replaced() {
        assert_eq!(read_declared(EMPTY_COMPONENT).unwrap(), None);
        let first = declared(serde_json::json!({"env": ["A"], "kv": true}));
        let once = embed(EMPTY_COMPONENT, &first).unwrap();
        assert_eq!(read_declared(&once).unwrap(), Some(first));
        let second = declared(serde_json::json!({"dirs": [{"guest": "/data", "mode": "rw"}]}));
        let twice = embed(&once, &second).unwrap();
        assert_eq!(read_declared(&twice).unwrap(), Some(second.clone()));
        assert_eq!(
            twice,
            embed(EMPTY_COMPONENT, &second).unwrap(),
            "the old section is gone"
        );
    }

    #[test]
    fn nested_modules_are_kept_whole_and_their_custom_sections_are_not_the_components() {
        let mut inner = wasm_encoder::Module::new();
        inner.section(&wasm_encoder::CustomSection {
            name: SECTION_NAME.into(),
            data: br#"{"kv": true}"#.as_slice().into(),
        });
        let mut component = wasm_encoder::Component::new();
        component.section(&wasm_encoder::ModuleSection(&inner));
        let wasm = component.finish();
        assert_eq!(
            read_declared(&wasm).unwrap(),
            None,
            "the nested module's section is its own"
        );
        let declared = declared(serde_json::json!({"env": ["A"]}));
        let embedded = embed(&wasm, &declared).unwrap();
        assert_eq!(read_declared(&embedded).unwrap(), Some(declared));
        assert_eq!(embedded[..wasm.len()], wasm[..], "the rest is unchanged");
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&embedded)
            .expect("still a valid component");
    }

    #[test]
    fn an_unknown_capability_or_a_second_section_is_refused() {
        let mut wasm = EMPTY_COMPONENT.to_vec();
        let section = |data: &[u8], out: &mut Vec<u8>| push_declaration(out, data);
        section(br#"{"sockets": true}"#, &mut wasm);
        let err = read_declared(&wasm).unwrap_err().to_string();
        assert!(err.starts_with("its `interpose-capabilities` section is not a valid declaration: unknown field `sockets`"), "{err}");
        let mut two = EMPTY_COMPONENT.to_vec();
        section(b"{}", &mut two);
        section(b"{}", &mut two);
        assert!(matches!(
            read_declared(&two),
            Err(DeclarationError::Duplicate)
        ));
        let relative = declared(serde_json::json!({"dirs": [{"guest": "data"}]}));
        assert!(embed(EMPTY_COMPONENT, &relative).is_err());
    }

    #[test]
    fn everything_declared_and_granted_is_neither_missing_nor_unused() {
        let d = declared(serde_json::json!({
            "dirs": [{"guest": "/data"}], "env": ["KEY"], "http": ["https://api.example.com/v1/"], "kv": true
        }));
        let env = ["KEY".to_string()];
        let http = ["https://api.example.com/*".to_string()];
        let cmp = compare(
            &d,
            &granted(&[("/data", DirMode::ReadOnly)], &env, &http, None),
        );
        assert_eq!(cmp, Comparison::default());
    }

    #[test]
    fn each_kind_declared_and_not_granted_is_missing() {
        let d = declared(serde_json::json!({
            "dirs": [{"guest": "/data", "mode": "rw"}, {"guest": "/cache"}],
            "env": ["KEY"], "http": ["https://api.example.com/v1/"], "kv": true
        }));
        let http = ["https://api.example.com/v2/".to_string()];
        let cmp = compare(
            &d,
            &granted(&[("/data", DirMode::ReadOnly)], &[], &http, Some(false)),
        );
        assert_eq!(
            list(&cmp.missing),
            "directory `/data` (rw), directory `/cache` (ro), environment variable `KEY`, \
             outbound HTTP `https://api.example.com/v1/`, the key-value store"
        );
        assert_eq!(
            list(&cmp.unused),
            "outbound HTTP `https://api.example.com/v2/`"
        );
    }

    #[test]
    fn grants_beyond_the_declaration_are_unused() {
        let d = declared(serde_json::json!({"dirs": [{"guest": "/data"}]}));
        let env = ["KEY".to_string()];
        let cmp = compare(
            &d,
            &granted(
                &[("/data", DirMode::ReadWrite), ("/tmp", DirMode::ReadOnly)],
                &env,
                &[],
                Some(true),
            ),
        );
        assert!(cmp.missing.is_empty());
        assert_eq!(
            list(&cmp.unused),
            "directory `/data` (rw), directory `/tmp` (ro), environment variable `KEY`, the key-value store"
        );
    }

    #[test]
    fn an_http_grant_covers_its_prefix_up_to_a_path_boundary() {
        assert!(covers("https://a.example", "https://a.example/x"));
        assert!(covers("https://a.example/*", "https://a.example/x/y"));
        assert!(covers("https://a.example/x", "https://a.example/x"));
        assert!(!covers("https://a.example", "https://a.example.evil.net/"));
        assert!(!covers("https://a.example/x/", "https://a.example/"));
        assert!(!covers("http://a.example/", "https://a.example/"));
        assert!(check_http_prefix("ftp://a.example/").is_err());
        assert!(check_http_prefix("https://a.example/*").is_ok());
    }
}

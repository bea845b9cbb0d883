//! `interpose.toml`: the configuration file (`--config FILE`).
//!
//! Every section and key is documented in `docs/config.md`. Unknown keys are errors,
//! so a typo never silently turns a setting off. Relative paths are resolved against
//! the directory of the file that names them.

use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize};

use crate::session::gateway::GatewayOptions;
use crate::session::names::PrefixMode;

/// How a plugin `path` names a plugin in an OCI registry instead of a file.
pub const OCI_SCHEME: &str = "oci://";

/// The default deadline for one plugin call.
pub const DEFAULT_TIMEOUT_MS: u64 = 50;
/// The default memory cap of one plugin instance.
pub const DEFAULT_MEMORY_MB: u64 = 64;
/// The largest `pool_size` accepted.
pub const MAX_POOL_SIZE: usize = 64;
/// The largest `memory_mb` accepted: one instance's memory slot holds at most 4 GiB.
pub const MAX_MEMORY_MB: u64 = 4096;
/// `max_input_bytes` defaults to the memory cap divided by this: a plugin that parses
/// a payload holds its text, the parsed tree (several times the text for small
/// values) and often a re-serialized copy at once.
pub const INPUT_SHARE_OF_MEMORY: usize = 8;
/// The default time a session's breaker stays open before one message is tried again.
pub const DEFAULT_BREAKER_COOLDOWN_MS: u64 = 30_000;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The plugins, in chain order: requests walk them first to last, answers last to
    /// first.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// The MCP servers to serve, by name (`[servers.NAME]`). Turned into
    /// [`crate::servers::ServerSpec`]s by [`crate::servers::load`].
    #[serde(default)]
    pub servers: IndexMap<String, ServerConfig>,
    /// How several servers are shown behind one endpoint (`[gateway]`).
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// Signatures every plugin needs (`[trust]`); a plugin's own keys override it.
    #[serde(default)]
    pub trust: TrustConfig,
    /// Accept OAuth access tokens on the HTTP listener (`[auth]`, docs/auth.md).
    #[serde(default)]
    pub auth: Option<crate::downstream::auth::AuthConfig>,
    /// Several replicas behind one address (`[replicas]`, docs/deploy.md).
    #[serde(default)]
    pub replicas: Option<crate::downstream::http_server::ReplicasConfig>,
    /// Where plugins keep their state (`[store]`): in memory, or in Valkey/Redis.
    #[serde(default)]
    pub store: StoreConfig,
}

/// The `[store]` table of the configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `redis://HOST:PORT[/DB]` (or `rediss://`, `redis+unix://`): plugin state in
    /// Valkey or Redis. Unset: in the proxy's memory.
    #[serde(default)]
    pub url: Option<String>,
    /// The deadline of one store call, in milliseconds (Valkey only).
    #[serde(default = "default_store_timeout_ms")]
    pub timeout_ms: u64,
    /// Connections to Valkey, each multiplexing every call in flight on it.
    #[serde(default = "default_store_pool")]
    pub pool: usize,
    /// The first part of every key in Valkey: `PREFIX:PLUGIN:KEY`.
    #[serde(default = "default_store_prefix")]
    pub prefix: String,
    /// The bound on one plugin's store in memory, in bytes (memory only).
    #[serde(default = "default_store_memory_bytes")]
    pub memory_bytes: usize,
}

/// Most connections `pool` may ask for.
pub const MAX_STORE_POOL: usize = 64;

/// The bound on one plugin's store in memory (keys and values, plus 64 bytes per
/// entry), unless `memory_bytes` says otherwise.
pub const DEFAULT_STORE_MEMORY_BYTES: usize = 16 * 1024 * 1024;

fn default_store_timeout_ms() -> u64 {
    100
}

fn default_store_pool() -> usize {
    2
}

fn default_store_prefix() -> String {
    "interpose".into()
}

fn default_store_memory_bytes() -> usize {
    DEFAULT_STORE_MEMORY_BYTES
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            timeout_ms: default_store_timeout_ms(),
            pool: default_store_pool(),
            prefix: default_store_prefix(),
            memory_bytes: default_store_memory_bytes(),
        }
    }
}

impl StoreConfig {
    /// The checks serde cannot make; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        if self.timeout_ms == 0 {
            return Err("`timeout_ms` must be at least 1".into());
        }
        if !(1..=MAX_STORE_POOL).contains(&self.pool) {
            return Err(format!("`pool` must be from 1 to {MAX_STORE_POOL}"));
        }
        if let Some(url) = &self.url {
            redis::Client::open(url.as_str())
                .map_err(|e| format!("`url` is not a Valkey/Redis URL: {e}"))?;
        }
        Ok(())
    }
}

/// The `[trust]` table: the signature policy of every plugin (those of `[[plugins]]`,
/// of each server's own chain and of `--plugin`), unless a plugin sets its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// Refuse a plugin whose file is not signed (`FILE.wasm.minisig`, minisign) by
    /// one of `trusted_keys`; checked at start and on every reload.
    #[serde(default)]
    pub require_signature: bool,
    /// The public keys whose signatures are accepted: minisign public keys inline
    /// (`RW...`) or paths of minisign `.pub` files.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
}

/// The `[gateway]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// When tool and prompt names and resource URIs carry their server's name:
    /// `when-several` (the default), `always` or `never`.
    #[serde(default)]
    pub prefix: Option<PrefixMode>,
    /// The gateway's `serverInfo.name` (default `interpose`).
    #[serde(default)]
    pub name: Option<String>,
    /// The gateway's `serverInfo.version` (default interpose's version).
    #[serde(default)]
    pub version: Option<String>,
}

impl GatewayConfig {
    /// The options sessions are opened with; `prefix` (from `--prefix`) wins over the
    /// file's.
    pub fn options(&self, prefix: Option<PrefixMode>) -> GatewayOptions {
        let mut options = GatewayOptions::default();
        if let Some(prefix) = prefix.or(self.prefix) {
            options.prefix = prefix;
        }
        if let Some(name) = &self.name {
            options.server_info["name"] = name.as_str().into();
        }
        if let Some(version) = &self.version {
            options.server_info["version"] = version.as_str().into();
        }
        options
    }
}

/// One `[servers.NAME]` table: a command or a URL, and how to treat it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The program to run (a local server speaking MCP on its stdio).
    #[serde(default)]
    pub command: Option<String>,
    /// The program's arguments.
    #[serde(default)]
    pub args: Option<Vec<String>>,
    /// Variables added to (or overriding) the environment the program inherits.
    #[serde(default)]
    pub env: Option<IndexMap<String, String>>,
    /// The program's working directory, relative to the config file's directory.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// The endpoint of a remote server (http:// or https://).
    #[serde(default)]
    pub url: Option<String>,
    /// How to talk to `url`; by default legacy SSE when its path ends in `/sse`,
    /// otherwise Streamable HTTP.
    #[serde(default)]
    pub transport: Option<ServerTransport>,
    /// Headers sent to `url` with every request.
    #[serde(default)]
    pub headers: Option<IndexMap<String, String>>,
    /// Send `Authorization: Bearer <token>` to `url`, the token read from this
    /// environment variable at start (like `--bearer-token-env`).
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// Get access tokens for `url` with OAuth client credentials (docs/auth.md).
    #[serde(default)]
    pub oauth: Option<crate::upstream::credentials::OAuthClientConfig>,
    /// Deadline for one request to this server, in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// How long its `initialize` may take before clients are answered without it, in
    /// milliseconds (default: `--start-timeout`, else 10 s).
    #[serde(default)]
    pub start_timeout_ms: Option<u64>,
    /// Whether it is started again when it dies (default: `--restart`, else never).
    #[serde(default)]
    pub restart: Option<ServerRestart>,
    /// Start it on the first request routed to it rather than with each session (a
    /// command, in a gateway).
    #[serde(default)]
    pub lazy: bool,
    /// `false` keeps the server configured but not served.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Plugins for this server alone, in the shape of the global `[[plugins]]`.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
}

/// `restart` of a `[servers.NAME]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerRestart {
    Never,
    OnFailure,
}

impl From<ServerRestart> for crate::session::lifecycle::RestartPolicy {
    fn from(restart: ServerRestart) -> Self {
        match restart {
            ServerRestart::Never => Self::Never,
            ServerRestart::OnFailure => Self::OnFailure,
        }
    }
}

/// The HTTP transport of a `[servers.NAME]` URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerTransport {
    StreamableHttp,
    Sse,
}

fn enabled_by_default() -> bool {
    true
}

/// One `[[plugins]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The plugin's `.wasm` component. Watched: when it changes, the new version is
    /// loaded for new messages.
    pub path: PathBuf,
    /// The name used in logs and in errors sent to clients; defaults to the name in
    /// the plugin's manifest.
    #[serde(default)]
    pub name: Option<String>,
    /// The plugin's own settings, passed to its `init` as JSON text.
    #[serde(default)]
    pub config: toml::Table,
    /// What happens to a message when the plugin fails on it.
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// Deadline for one call into the plugin, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Memory cap of one instance of the plugin, in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    /// Largest payload the plugin may return in a verdict, in bytes; defaults to the
    /// proxy's largest message size.
    #[serde(default)]
    pub max_output_bytes: Option<usize>,
    /// Largest message the plugin is called with, in bytes: its payload, plus the
    /// request's payload when the manifest asks for it, plus an error's message and
    /// data. A larger message is not given to the plugin at all: it gets
    /// `unchecked_policy`. Checked before the call, so that one client's oversized
    /// message is refused cheaply and with a clear error instead of running the
    /// plugin into its memory cap or deadline. Defaults to the memory cap divided by
    /// [`INPUT_SHARE_OF_MEMORY`] (8 MiB at the default 64 MiB).
    #[serde(default)]
    pub max_input_bytes: Option<usize>,
    /// What happens to a message the plugin is not called for: one over
    /// `max_input_bytes`, or one of a session whose breaker is open. `reject` by
    /// default whatever `failure_policy` says: with `skip`, a client could get any
    /// message past a security plugin by sending oversized messages or by making the
    /// plugin fail a few times. Set `skip` for plugins that only observe (audit,
    /// cache), whose absence must never block traffic.
    #[serde(default)]
    pub unchecked_policy: FailurePolicy,
    /// How long a session's breaker stays open, in milliseconds. After 5 failures in
    /// a row, or 20 within a minute, in one session, the plugin is not called for
    /// that session's messages (they get `unchecked_policy`) until the cooldown is
    /// over; then one message is tried, and a success closes the breaker while a
    /// failure opens it for another cooldown. Other sessions are not affected.
    #[serde(default = "default_breaker_cooldown_ms")]
    pub breaker_cooldown_ms: u64,
    /// Instances created ahead and kept ready; more are made on demand when several
    /// messages reach the plugin at once.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// The SHA-256 of the `.wasm` file (64 hex digits). When set, a file with another
    /// hash is refused, at start and on reload.
    #[serde(default)]
    pub sha256: Option<Sha256>,
    /// Directories the plugin may open. Nothing else of the file system is visible.
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
    /// Names of environment variables whose values (from the proxy's environment) the
    /// plugin may read. No other variable is visible.
    #[serde(default)]
    pub env: Vec<String>,
    /// Outbound HTTP URL prefixes the plugin may call (`https://api.example.com/*`).
    /// Compared with what the plugin declares; no HTTP client is linked yet.
    #[serde(default)]
    pub http: Vec<String>,
    /// Whether the plugin may use the key-value store. Unset, it may (as before
    /// grants for it existed); `false` refuses a plugin that declares it uses the
    /// store, and makes the store empty and read-only for one that does not declare.
    #[serde(default)]
    pub kv: Option<bool>,
    /// Requires a signature by a trusted key for this plugin; defaults to
    /// `[trust].require_signature`.
    #[serde(default)]
    pub require_signature: Option<bool>,
    /// The keys accepted for this plugin, instead of `[trust].trusted_keys`.
    #[serde(default)]
    pub trusted_keys: Option<Vec<String>>,
    /// In a gateway, the server whose own chain holds this plugin: its name comes
    /// before the plugin's in logs, statistics and errors (`SERVER/NAME`), since the
    /// same plugin often serves several servers. Set by the host, not configurable.
    #[serde(skip)]
    pub server: Option<String>,
}

/// What happens to a message when a plugin fails on it (traps, runs past its deadline
/// or memory cap, returns invalid JSON or too much of it); as `unchecked_policy`, to a
/// message the plugin is not called for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Fail closed: a request is answered with an error naming the plugin, an answer
    /// is replaced by that error, a notification is dropped.
    #[default]
    Reject,
    /// Fail open: the message goes on as if the plugin had passed it (logged). A
    /// client that can make the plugin fail on its message gets that message past it.
    Skip,
}

impl FailurePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::Reject => "reject",
            FailurePolicy::Skip => "skip",
        }
    }
}

/// A directory made visible to a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the plugin sees it (an absolute guest path such as `/data`); defaults to
    /// the host path.
    #[serde(default)]
    pub guest: Option<String>,
    /// `ro` (read-only, the default) or `rw`.
    #[serde(default)]
    pub mode: DirMode,
}

impl DirGrant {
    /// The path the plugin sees.
    pub fn guest_path(&self) -> String {
        self.guest
            .clone()
            .unwrap_or_else(|| self.host.to_string_lossy().into_owned())
    }
}

/// Access to a granted directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum DirMode {
    /// Read-only.
    #[default]
    #[serde(rename = "ro")]
    ReadOnly,
    /// Read and write.
    #[serde(rename = "rw")]
    ReadWrite,
}

/// A SHA-256 digest written as 64 hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Sha256(sha2::Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

impl std::str::FromStr for Sha256 {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut digest)
            .map_err(|_| format!("expected 64 hexadecimal digits, got `{text}`"))?;
        Ok(Sha256(digest))
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}

fn default_memory_mb() -> u64 {
    DEFAULT_MEMORY_MB
}

fn default_breaker_cooldown_ms() -> u64 {
    DEFAULT_BREAKER_COOLDOWN_MS
}

/// The default number of instances of a plugin kept ready: one per core, since a
/// call runs on a runtime worker thread (at most one per core) from start to end, so
/// no more calls can run at once and none waits for an instantiation. At least two,
/// so a trapped instance is replaced while another serves.
pub fn default_pool_size() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, MAX_POOL_SIZE)
}

/// Why a configuration could not be used. The text is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {cause}", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}:{message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: plugin {index} (`{}`): {message}", path.display(), plugin.display())]
    Invalid {
        path: PathBuf,
        index: usize,
        plugin: PathBuf,
        message: String,
    },
    #[error("{}: server `{server}`: {message}", path.display())]
    Server {
        path: PathBuf,
        server: String,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Servers { path: PathBuf, message: String },
    #[error("{}: [store]: {message}", path.display())]
    Store { path: PathBuf, message: String },
    #[error("server `{name}` is defined twice: in {} and in {}", first.display(), second.display())]
    DuplicateServer {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
}

impl PluginConfig {
    /// A plugin given on the command line (`--plugin FILE.wasm`): every setting at its
    /// default.
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        PluginConfig {
            path: path.into(),
            name: None,
            config: toml::Table::new(),
            failure_policy: FailurePolicy::default(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            memory_mb: DEFAULT_MEMORY_MB,
            max_output_bytes: None,
            max_input_bytes: None,
            unchecked_policy: FailurePolicy::default(),
            breaker_cooldown_ms: DEFAULT_BREAKER_COOLDOWN_MS,
            pool_size: default_pool_size(),
            sha256: None,
            dirs: Vec::new(),
            env: Vec::new(),
            http: Vec::new(),
            kv: None,
            require_signature: None,
            trusted_keys: None,
            server: None,
        }
    }

    /// Takes `[trust]`'s settings where this plugin sets none.
    fn inherit_trust(&mut self, trust: &TrustConfig) {
        self.require_signature
            .get_or_insert(trust.require_signature);
        self.trusted_keys
            .get_or_insert_with(|| trust.trusted_keys.clone());
    }

    /// The `config` table as the JSON text `init` receives.
    pub fn init_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The name to show before the manifest is known: the file's stem, or the last
    /// part of a registry reference's name.
    pub fn display_name(&self) -> String {
        let referenced = self.reference().and_then(|r| {
            let name = r.rsplit('/').next()?;
            name.split(['@', ':']).next().map(str::to_owned)
        });
        let name = match self.name.clone().or(referenced) {
            Some(name) => name,
            None => self
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| self.path.display().to_string()),
        };
        self.qualified(&name)
    }

    /// `name` as logs and errors show it: after its server's name, for a plugin of a
    /// server's own chain in a gateway.
    pub fn qualified(&self, name: &str) -> String {
        match &self.server {
            Some(server) => format!("{server}/{name}"),
            None => name.to_owned(),
        }
    }

    /// Checks the values serde cannot; returns the problem as the user should read it.
    fn check(&self) -> Result<(), String> {
        if self.timeout_ms == 0 {
            return Err("`timeout_ms` must be at least 1".into());
        }
        if self.memory_mb == 0 || self.memory_mb > MAX_MEMORY_MB {
            return Err(format!("`memory_mb` must be between 1 and {MAX_MEMORY_MB}"));
        }
        if self.pool_size == 0 || self.pool_size > MAX_POOL_SIZE {
            return Err(format!("`pool_size` must be between 1 and {MAX_POOL_SIZE}"));
        }
        if self.max_output_bytes == Some(0) {
            return Err("`max_output_bytes` must be at least 1".into());
        }
        if self.max_input_bytes == Some(0) {
            return Err("`max_input_bytes` must be at least 1".into());
        }
        if self.breaker_cooldown_ms == 0 {
            return Err("`breaker_cooldown_ms` must be at least 1".into());
        }
        if let Some(name) = &self.name
            && name.trim().is_empty()
        {
            return Err("`name` must not be empty".into());
        }
        for var in &self.env {
            if var.is_empty() || var.contains('=') {
                return Err(format!("`env` entry `{var}` is not a variable name"));
            }
        }
        for url in &self.http {
            check_http_prefix(url).map_err(|e| format!("`http` entry {e}"))?;
        }
        for dir in &self.dirs {
            if let Some(guest) = &dir.guest
                && guest.is_empty()
            {
                return Err("a `dirs` entry has an empty `guest` path".into());
            }
        }
        Ok(())
    }

    /// The registry reference `path` names (`oci://REGISTRY/NAME:TAG`), if it names
    /// one rather than a file.
    pub fn reference(&self) -> Option<&str> {
        self.path.to_str().filter(|p| p.starts_with(OCI_SCHEME))
    }

    /// Makes relative paths relative to `base` (the directory of the config file).
    fn resolve_paths(&mut self, base: &Path) {
        if self.reference().is_none() {
            self.path = base.join(&self.path);
        }
        for dir in &mut self.dirs {
            dir.host = base.join(&dir.host);
        }
        if let Some(keys) = &mut self.trusted_keys {
            resolve_key_paths(keys, base);
        }
    }
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_owned(),
            cause,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, path, base)
    }

    /// Parses configuration text; `origin` names it in errors, `base` anchors relative
    /// paths.
    pub fn parse(text: &str, origin: &Path, base: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: one_line(&e, text),
        })?;
        resolve_key_paths(&mut config.trust.trusted_keys, base);
        config.store.check().map_err(|message| ConfigError::Store {
            path: origin.to_owned(),
            message,
        })?;
        check_plugins(&mut config.plugins, base).map_err(|(index, plugin, message)| {
            ConfigError::Invalid {
                path: origin.to_owned(),
                index,
                plugin,
                message,
            }
        })?;
        for (name, server) in &mut config.servers {
            check_plugins(&mut server.plugins, base).map_err(|(index, plugin, message)| {
                ConfigError::Server {
                    path: origin.to_owned(),
                    server: name.clone(),
                    message: format!("plugin {index} (`{}`): {message}", plugin.display()),
                }
            })?;
            if let Some(cwd) = &mut server.cwd {
                *cwd = base.join(&*cwd);
            }
        }
        let plugins = config
            .servers
            .values_mut()
            .flat_map(|s| s.plugins.iter_mut());
        for plugin in config.plugins.iter_mut().chain(plugins) {
            plugin.inherit_trust(&config.trust);
        }
        Ok(config)
    }
}

/// Checks each plugin and anchors its relative paths at `base`; a failure is given as
/// (1-based index, the plugin's path, the problem).
fn check_plugins(
    plugins: &mut [PluginConfig],
    base: &Path,
) -> Result<(), (usize, PathBuf, String)> {
    for (index, plugin) in plugins.iter_mut().enumerate() {
        plugin
            .check()
            .map_err(|message| (index + 1, plugin.path.clone(), message))?;
        plugin.resolve_paths(base);
    }
    Ok(())
}

/// Makes key file paths among `keys` relative to `base`; inline keys stay as they are.
fn resolve_key_paths(keys: &mut [String], base: &Path) {
    for key in keys {
        if !looks_inline(key.trim()) {
            *key = base.join(&*key).to_string_lossy().into_owned();
        }
    }
}

/// Whether a `trusted_keys` entry is a key itself rather than a file's path: a
/// minisign public key is 56 base64 characters starting with `RW`.
pub fn looks_inline(spec: &str) -> bool {
    spec.len() == 56
        && spec.starts_with("RW")
        && spec
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

/// An outbound HTTP grant or declaration: an `http` or `https` URL, optionally ending
/// in `*` (a prefix either way).
pub fn check_http_prefix(prefix: &str) -> Result<(), String> {
    let url = url::Url::parse(prefix.trim_end_matches('*'))
        .map_err(|e| format!("`{prefix}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{prefix}` is not an http:// or https:// URL"));
    }
    Ok(())
}

/// A TOML error as one line, `LINE:COLUMN: message`, without the quoted source.
fn one_line(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("{line}:{column}: {message}")
        }
        None => message.to_owned(),
    }
}

/// The `[store]` of the config file, or the default (in memory) without one.
pub fn store_config(config_file: Option<&Path>) -> Result<StoreConfig, ConfigError> {
    Ok(match config_file {
        Some(path) => Config::load(path)?.store,
        None => Default::default(),
    })
}

/// The plugins to run: those of the config file (if any) in its order, then those
/// given with `--plugin`, in flag order.
pub fn plugin_list(
    config_file: Option<&Path>,
    cli_plugins: &[PathBuf],
) -> Result<Vec<PluginConfig>, ConfigError> {
    let (mut plugins, trust) = match config_file {
        Some(path) => {
            let config = Config::load(path)?;
            (config.plugins, config.trust)
        }
        None => (Vec::new(), TrustConfig::default()),
    };
    plugins.extend(cli_plugins.iter().map(|path| {
        let mut plugin = PluginConfig::from_path(path);
        plugin.inherit_trust(&trust);
        plugin
    }));
    Ok(plugins)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("interpose.toml"), Path::new("/etc/ip"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn minimal_plugin_gets_defaults() {
        let config = parse("[[plugins]]\npath = \"p.wasm\"\n").unwrap();
        let plugin = &config.plugins[0];
        assert_eq!(plugin.path, Path::new("/etc/ip/p.wasm"));
        assert_eq!(plugin.failure_policy, FailurePolicy::Reject);
        assert_eq!(plugin.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(plugin.memory_mb, DEFAULT_MEMORY_MB);
        assert_eq!(plugin.pool_size, default_pool_size());
        assert_eq!(plugin.max_input_bytes, None);
        assert_eq!(plugin.unchecked_policy, FailurePolicy::Reject);
        assert_eq!(plugin.breaker_cooldown_ms, DEFAULT_BREAKER_COOLDOWN_MS);
        assert_eq!(plugin.init_json(), "{}");
    }

    #[test]
    fn full_plugin_entry() {
        let config = parse(
            r#"
            [[plugins]]
            path = "/abs/redact.wasm"
            name = "redactor"
            failure_policy = "skip"
            timeout_ms = 20
            memory_mb = 256
            max_output_bytes = 1000
            max_input_bytes = 2000
            unchecked_policy = "skip"
            breaker_cooldown_ms = 500
            pool_size = 4
            sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            dirs = [{ host = "data", guest = "/data", mode = "rw" }, { host = "/ro" }]
            env = ["API_KEY"]
            [plugins.config]
            patterns = ["a", "b"]
            level = 2
            "#,
        )
        .unwrap();
        let p = &config.plugins[0];
        assert_eq!(p.path, Path::new("/abs/redact.wasm"));
        assert_eq!(p.failure_policy, FailurePolicy::Skip);
        assert_eq!(
            (p.max_input_bytes, p.unchecked_policy, p.breaker_cooldown_ms),
            (Some(2000), FailurePolicy::Skip, 500)
        );
        assert_eq!(p.sha256, Some(Sha256::of(b"")));
        assert_eq!(p.dirs[0].host, Path::new("/etc/ip/data"));
        assert_eq!(p.dirs[0].mode, DirMode::ReadWrite);
        assert_eq!(p.dirs[1].mode, DirMode::ReadOnly);
        assert_eq!(p.dirs[1].guest_path(), "/ro");
        assert_eq!(p.init_json(), r#"{"level":2,"patterns":["a","b"]}"#);
    }

    #[test]
    fn unknown_plugin_key_is_named() {
        let err = parse("[[plugins]]\npath = \"p.wasm\"\ntimeout = 5\n").unwrap_err();
        assert_eq!(
            err,
            "interpose.toml:3:1: unknown field `timeout`, expected one of `path`, `name`, `config`, \
             `failure_policy`, `timeout_ms`, `memory_mb`, `max_output_bytes`, `max_input_bytes`, \
             `unchecked_policy`, `breaker_cooldown_ms`, `pool_size`, `sha256`, `dirs`, `env`, `http`, \
             `kv`, `require_signature`, `trusted_keys`"
        );
    }

    #[test]
    fn gateway_table_sets_prefixes_and_server_info_and_the_flag_wins() {
        let config = parse("[gateway]\nprefix = \"never\"\nname = \"acme\"\n").unwrap();
        let options = config.gateway.options(None);
        assert_eq!(options.prefix, PrefixMode::Never);
        assert_eq!(options.server_info["name"], "acme");
        assert_eq!(options.server_info["version"], env!("CARGO_PKG_VERSION"));
        let flagged = config.gateway.options(Some(PrefixMode::Always));
        assert_eq!(flagged.prefix, PrefixMode::Always);
        let err = parse("[gateway]\nprefix = \"sometimes\"\n").unwrap_err();
        assert!(
            err.contains(
                "unknown prefix mode `sometimes`: expected `always`, `when-several` or `never`"
            ),
            "{err}"
        );
    }

    #[test]
    fn unknown_top_level_key_is_named() {
        let err = parse("plugin = []\n").unwrap_err();
        assert_eq!(
            err,
            "interpose.toml:1:1: unknown field `plugin`, expected one of `plugins`, `servers`, `gateway`, `trust`, `auth`, `replicas`, `store`"
        );
    }

    #[test]
    fn replicas_table_is_read_and_its_mistakes_named() {
        let config: Config = toml::from_str(
            "[replicas]\nkey_env = \"INTERPOSE_SESSION_KEY\"\nname_env = \"POD_NAME\"\n",
        )
        .unwrap();
        let replicas = config.replicas.unwrap();
        assert_eq!(replicas.key_env, "INTERPOSE_SESSION_KEY");
        assert_eq!(replicas.name_env.as_deref(), Some("POD_NAME"));
        assert_eq!(replicas.name, None);
        let err = parse("[replicas]\nname = \"a\"\n").unwrap_err();
        assert_eq!(err, "interpose.toml:1:1: missing field `key_env`");
        let err = parse("[replicas]\nkey_env = \"K\"\nkey = \"x\"\n").unwrap_err();
        assert!(
            err.contains("unknown field `key`, expected one of `key_env`, `name`, `name_env`"),
            "{err}"
        );
    }

    #[test]
    fn store_config_defaults_and_checks() {
        let config: StoreConfig = toml::from_str("").unwrap();
        assert_eq!(config, StoreConfig::default());
        assert_eq!((config.timeout_ms, config.pool), (100, 2));
        let bad = |text: &str| {
            let config: StoreConfig = toml::from_str(text).unwrap();
            config.check().unwrap_err()
        };
        assert_eq!(bad("timeout_ms = 0"), "`timeout_ms` must be at least 1");
        assert_eq!(bad("pool = 0"), "`pool` must be from 1 to 64");
        assert!(bad("url = \"http://x\"").starts_with("`url` is not a Valkey/Redis URL"));
        let ok: StoreConfig = toml::from_str("url = \"redis://127.0.0.1:6379\"").unwrap();
        assert_eq!(ok.check(), Ok(()));
    }

    #[test]
    fn store_table_is_read_and_checked() {
        let config = Config::parse(
            "[store]\nurl = \"redis://127.0.0.1:6379\"\ntimeout_ms = 20\n",
            Path::new("interpose.toml"),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(config.store.url.as_deref(), Some("redis://127.0.0.1:6379"));
        assert_eq!((config.store.timeout_ms, config.store.pool), (20, 2));
        assert_eq!(parse("").unwrap().store.url, None);
        assert_eq!(
            parse("[store]\npool = 0\n").unwrap_err(),
            "interpose.toml: [store]: `pool` must be from 1 to 64"
        );
    }

    #[test]
    fn missing_path_is_named() {
        let err = parse("[[plugins]]\nname = \"x\"\n").unwrap_err();
        assert_eq!(err, "interpose.toml:1:1: missing field `path`");
    }

    #[test]
    fn bad_policy_lists_the_choices() {
        let err =
            parse("[[plugins]]\npath = \"p.wasm\"\nfailure_policy = \"ignore\"\n").unwrap_err();
        assert_eq!(
            err,
            "interpose.toml:3:18: unknown variant `ignore`, expected `reject` or `skip`"
        );
    }

    #[test]
    fn bad_dir_mode_lists_the_choices() {
        let err =
            parse("[[plugins]]\npath = \"p.wasm\"\ndirs = [{ host = \"/x\", mode = \"rwx\" }]\n")
                .unwrap_err();
        assert_eq!(
            err,
            "interpose.toml:3:31: unknown variant `rwx`, expected `ro` or `rw`"
        );
    }

    #[test]
    fn bad_pin_text_is_explained() {
        let err = parse("[[plugins]]\npath = \"p.wasm\"\nsha256 = \"abc\"\n").unwrap_err();
        assert_eq!(
            err,
            "interpose.toml:3:10: expected 64 hexadecimal digits, got `abc`"
        );
    }

    #[test]
    fn out_of_range_values_name_the_plugin() {
        let err = parse(
            "[[plugins]]\npath = \"a.wasm\"\n[[plugins]]\npath = \"p.wasm\"\npool_size = 0\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "interpose.toml: plugin 2 (`p.wasm`): `pool_size` must be between 1 and 64"
        );
        let err = parse("[[plugins]]\npath = \"p.wasm\"\ntimeout_ms = 0\n").unwrap_err();
        assert_eq!(
            err,
            "interpose.toml: plugin 1 (`p.wasm`): `timeout_ms` must be at least 1"
        );
        let err = parse("[[plugins]]\npath = \"p.wasm\"\nmax_input_bytes = 0\n").unwrap_err();
        assert_eq!(
            err,
            "interpose.toml: plugin 1 (`p.wasm`): `max_input_bytes` must be at least 1"
        );
        let err = parse("[[plugins]]\npath = \"p.wasm\"\nbreaker_cooldown_ms = 0\n").unwrap_err();
        assert_eq!(
            err,
            "interpose.toml: plugin 1 (`p.wasm`): `breaker_cooldown_ms` must be at least 1"
        );
    }

    #[test]
    fn cli_plugins_follow_config_plugins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("interpose.toml");
        std::fs::write(&file, "[[plugins]]\npath = \"first.wasm\"\n").unwrap();
        let list = plugin_list(Some(&file), &[PathBuf::from("second.wasm")]).unwrap();
        assert_eq!(list[0].path, dir.path().join("first.wasm"));
        assert_eq!(list[1].path, Path::new("second.wasm"));
    }
}

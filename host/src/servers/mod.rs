//! The MCP servers interpose serves, named: `[servers.NAME]` tables of `interpose.toml`
//! and the `mcpServers` file of `--servers` (as desktop clients and FastMCP write it),
//! both turned into one shape, [`ServerSpec`]. Documented in `docs/config.md`
//! ("Servers").
//!
//! `interpose run` serves every enabled server ([`enabled`]): one as a plain proxy,
//! several behind one endpoint as a gateway.

pub mod mcp_json;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use url::Url;

use crate::config::{Config, ConfigError, PluginConfig, ServerConfig, ServerTransport};
use crate::session::lifecycle::RestartPolicy;
use crate::upstream::child::CommandSpec;
use crate::upstream::credentials::{ClientCredentials, OAuthClientConfig};
use crate::upstream::{HttpTransport, UpstreamSpec, header_pair, insert_bearer, secret_in};

/// The longest server name: with a separator and a tool name it must stay within the
/// 64 characters that model APIs accept for a tool name.
pub const MAX_NAME_CHARS: usize = 32;

pub use crate::upstream::EnvLookup;

/// One server, wherever it was configured.
#[derive(Clone)]
pub struct ServerSpec {
    /// The key it was given under; prefixes its tools and prompts once the gateway
    /// routes between servers.
    pub name: String,
    pub upstream: UpstreamSpec,
    /// Deadline for one request to the server (not applied before the gateway's
    /// per-server timeouts land).
    pub timeout: Option<Duration>,
    /// How long its `initialize` may take; `None`: the default for all servers.
    pub start_timeout: Option<Duration>,
    /// Whether it is started again when it dies; `None`: the default for all.
    pub restart: Option<RestartPolicy>,
    /// Started on the first request routed to it (a command, in a gateway).
    pub lazy: bool,
    /// A disabled server stays configured but is not served.
    pub enabled: bool,
    /// Plugins for this server alone, checked, paths resolved.
    pub plugins: Vec<PluginConfig>,
    /// The file that defines it.
    pub origin: PathBuf,
}

/// Checks a server name: 1 to [`MAX_NAME_CHARS`] ASCII letters, digits, `_` and `-`,
/// the characters every client and model API accepts in a tool name (`.` and `/`,
/// allowed by MCP, are refused by some of them).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a server name must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "the name is longer than {MAX_NAME_CHARS} characters (it prefixes tool names)"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(
            "the name may only hold ASCII letters, digits, `_` and `-` (it prefixes tool names)"
                .into(),
        );
    }
    Ok(())
}

/// The servers of `--config` (its `[servers]` tables) then those of `--servers`, each
/// file's in name order, read with the process's environment. A name defined in
/// both is an error naming both files.
pub fn load(
    config_file: Option<&Path>,
    servers_file: Option<&Path>,
) -> Result<Vec<ServerSpec>, ConfigError> {
    load_with_env(config_file, servers_file, &|name| std::env::var(name).ok())
}

/// [`load`] with `env` as the environment.
pub fn load_with_env(
    config_file: Option<&Path>,
    servers_file: Option<&Path>,
    env: EnvLookup,
) -> Result<Vec<ServerSpec>, ConfigError> {
    let mut servers = Vec::new();
    if let Some(path) = config_file {
        for (name, config) in Config::load(path)?.servers {
            servers.extend(from_toml(path, name, config, env)?);
        }
    }
    if let Some(path) = servers_file {
        for server in mcp_json::load(path, env)? {
            if let Some(first) = servers.iter().find(|s| s.name == server.name) {
                return Err(ConfigError::DuplicateServer {
                    name: server.name,
                    first: first.origin.clone(),
                    second: server.origin,
                });
            }
            servers.push(server);
        }
    }
    Ok(servers)
}

/// Why the configured servers cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("no servers are configured")]
    NoServers,
    #[error("every configured server is disabled ({}): nothing to serve", quoted(.0))]
    AllDisabled(Vec<String>),
    #[error(
        "servers `{0}` and `{1}` would share the prefix `{2}` of their resource URIs \
         (a URI scheme holds letters, digits and `-` only): rename one"
    )]
    SamePrefix(String, String, String),
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The enabled servers, in configuration order: what `interpose run` serves.
pub fn enabled(servers: Vec<ServerSpec>) -> Result<Vec<ServerSpec>, SelectError> {
    if servers.is_empty() {
        return Err(SelectError::NoServers);
    }
    let (enabled, disabled): (Vec<_>, Vec<_>) =
        servers.into_iter().partition(|server| server.enabled);
    if enabled.is_empty() {
        return Err(SelectError::AllDisabled(
            disabled.into_iter().map(|s| s.name).collect(),
        ));
    }
    for (i, first) in enabled.iter().enumerate() {
        let prefix = crate::session::names::uri_prefix(&first.name);
        if let Some(second) = enabled[i + 1..]
            .iter()
            .find(|other| crate::session::names::uri_prefix(&other.name) == prefix)
        {
            return Err(SelectError::SamePrefix(
                first.name.clone(),
                second.name.clone(),
                prefix,
            ));
        }
    }
    Ok(enabled)
}

/// A `[servers.NAME]` table as a [`ServerSpec`]; `origin` is the config file. `None`
/// for a disabled server left out by [`unless_disabled`].
fn from_toml(
    origin: &Path,
    name: String,
    config: ServerConfig,
    env: EnvLookup,
) -> Result<Option<ServerSpec>, ConfigError> {
    let invalid = |message: String| ConfigError::Server {
        path: origin.to_owned(),
        server: name.clone(),
        message,
    };
    check_name(&name).map_err(invalid)?;
    if config.timeout_ms == Some(0) {
        return Err(invalid("`timeout_ms` must be at least 1".into()));
    }
    if config.start_timeout_ms == Some(0) {
        return Err(invalid("`start_timeout_ms` must be at least 1".into()));
    }
    let lazy = lazy_command(config.lazy, config.command.is_some()).map_err(invalid)?;
    let entry = Entry {
        command: config.command,
        args: config.args,
        env: config.env.map(|env| env.into_iter().collect()),
        cwd: config.cwd,
        url: config.url,
        transport: config.transport.map(|transport| {
            let transport = match transport {
                ServerTransport::StreamableHttp => HttpTransport::StreamableHttp,
                ServerTransport::Sse => HttpTransport::Sse,
            };
            ("transport", Transport::Http(transport))
        }),
        headers: config.headers.map(|headers| headers.into_iter().collect()),
        bearer: config
            .bearer_token_env
            .map(|var| ("bearer_token_env", Bearer::FromEnv(var))),
        oauth: config.oauth,
    };
    let Some(upstream) = unless_disabled(entry.into_upstream(env), config.enabled, origin, &name)
        .map_err(invalid)?
    else {
        return Ok(None);
    };
    Ok(Some(ServerSpec {
        name,
        upstream,
        timeout: config.timeout_ms.map(Duration::from_millis),
        start_timeout: config.start_timeout_ms.map(Duration::from_millis),
        restart: config.restart.map(Into::into),
        lazy,
        enabled: config.enabled,
        plugins: config.plugins,
        origin: origin.to_owned(),
    }))
}

/// `lazy`, checked: only a command can be started lazily (a remote server costs
/// nothing while idle).
fn lazy_command(lazy: bool, is_command: bool) -> Result<bool, String> {
    match (lazy, is_command) {
        (true, false) => Err("`lazy` applies to a `command` server, not to a `url` one".into()),
        (lazy, _) => Ok(lazy),
    }
}

/// A server's backend; `None` when it cannot be resolved (an unset variable, say) but
/// the server is disabled: it is not served, so it is left out (logged at debug).
fn unless_disabled(
    upstream: Result<UpstreamSpec, String>,
    enabled: bool,
    origin: &Path,
    name: &str,
) -> Result<Option<UpstreamSpec>, String> {
    match upstream {
        Ok(upstream) => Ok(Some(upstream)),
        Err(message) if !enabled => {
            tracing::debug!(file = %origin.display(), server = name, "leaving out the disabled server: {message}");
            Ok(None)
        }
        Err(message) => Err(message),
    }
}

/// The transport an entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Stdio,
    Http(HttpTransport),
}

/// Where a bearer token comes from.
enum Bearer {
    /// The value of this environment variable.
    FromEnv(String),
    /// This token.
    Token(String),
}

/// A server's connection settings as either source gives them, before they are
/// checked against each other: both sources end in [`Entry::into_upstream`].
struct Entry {
    command: Option<String>,
    args: Option<Vec<String>>,
    env: Option<Vec<(String, String)>>,
    cwd: Option<PathBuf>,
    url: Option<String>,
    /// The key that named the transport (`transport`, `type`) and what it named.
    transport: Option<(&'static str, Transport)>,
    headers: Option<Vec<(String, String)>>,
    /// The key that gave a bearer token, and the token.
    bearer: Option<(&'static str, Bearer)>,
    /// OAuth client credentials for a `url` server.
    oauth: Option<OAuthClientConfig>,
}

impl Entry {
    /// The backend these settings describe.
    fn into_upstream(self, env: EnvLookup) -> Result<UpstreamSpec, String> {
        match (self.command, self.url) {
            (Some(_), Some(_)) => Err("give either `command` or `url`, not both".into()),
            (None, None) => Err("needs `command` (a local server) or `url` (a remote one)".into()),
            (Some(program), None) => {
                if let Some((key, Transport::Http(_))) = self.transport {
                    return Err(format!(
                        "`{key}` names an HTTP transport, but the server has a `command` and no `url`"
                    ));
                }
                let url_only = (self.headers.as_ref().map(|_| "headers"))
                    .or(self.bearer.as_ref().map(|(key, _)| *key))
                    .or(self.oauth.as_ref().map(|_| "oauth"));
                if let Some(key) = url_only {
                    return Err(format!(
                        "`{key}` applies to a `url` server, not to a `command` one"
                    ));
                }
                if program.trim().is_empty() {
                    return Err("`command` must not be empty".into());
                }
                Ok(UpstreamSpec::Command(CommandSpec {
                    program,
                    args: self.args.unwrap_or_default(),
                    env: self.env.unwrap_or_default(),
                    cwd: self.cwd,
                }))
            }
            (None, Some(url)) => {
                let command_only = [
                    ("args", self.args.is_some()),
                    ("env", self.env.is_some()),
                    ("cwd", self.cwd.is_some()),
                ]
                .into_iter()
                .find_map(|(key, set)| set.then_some(key));
                if let Some(key) = command_only {
                    return Err(format!(
                        "`{key}` applies to a `command` server, not to a `url` one"
                    ));
                }
                let transport = match self.transport {
                    None => HttpTransport::Auto,
                    Some((_, Transport::Http(transport))) => transport,
                    Some((key, Transport::Stdio)) => {
                        return Err(format!(
                            "`{key}` is \"stdio\", but the server has a `url` and no `command`"
                        ));
                    }
                };
                let parsed = Url::parse(&url)
                    .ok()
                    .filter(|url| matches!(url.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        format!("`url` must be an http:// or https:// URL, got `{url}`")
                    })?;
                let mut headers = HeaderMap::new();
                for (name, value) in self.headers.iter().flatten() {
                    let (name, value) =
                        header_pair(name, value).map_err(|e| format!("`headers`: {e}"))?;
                    headers.append(name, value);
                }
                if self.oauth.is_some() && self.bearer.is_some() {
                    return Err(
                        "`oauth` and a bearer token are exclusive: both would set `Authorization`"
                            .into(),
                    );
                }
                if let Some((key, bearer)) = self.bearer {
                    let token = match bearer {
                        Bearer::Token(token) => token,
                        Bearer::FromEnv(var) => {
                            secret_in(&var, env).map_err(|e| format!("`{key}`: {e}"))?
                        }
                    };
                    insert_bearer(&mut headers, &token).map_err(|e| format!("`{key}`: {e}"))?;
                }
                let spec =
                    UpstreamSpec::http(parsed, transport, headers).map_err(|e| e.to_string())?;
                match self.oauth {
                    Some(oauth) => {
                        Ok(spec.with_credentials(Arc::new(ClientCredentials::new(&oauth, env)?)))
                    }
                    None => Ok(spec),
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::upstream::http_client::HttpUpstreamConfig;

    /// An environment holding only `vars`.
    pub fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    pub fn command_of(server: &ServerSpec) -> &CommandSpec {
        match &server.upstream {
            UpstreamSpec::Command(spec) => spec,
            _ => panic!("server `{}` is not a command", server.name),
        }
    }

    /// The transport (`streamable-http` or `sse`) and settings of a URL server.
    pub fn http_of(server: &ServerSpec) -> (&'static str, &HttpUpstreamConfig) {
        match &server.upstream {
            UpstreamSpec::StreamableHttp(config) => ("streamable-http", config),
            UpstreamSpec::LegacySse(config) => ("sse", config),
            _ => panic!("server `{}` is not a URL", server.name),
        }
    }

    /// `interpose.toml` holding `toml` and, when given, `servers.json` holding `json`,
    /// loaded with `env`; the error as the user reads it.
    fn load_files(
        toml: &str,
        json: Option<&str>,
        env: &[(&str, &str)],
    ) -> (tempfile::TempDir, Result<Vec<ServerSpec>, String>) {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("interpose.toml");
        std::fs::write(&config, toml).unwrap();
        let servers_file = json.map(|json| {
            let path = dir.path().join("servers.json");
            std::fs::write(&path, json).unwrap();
            path
        });
        let loaded =
            load_with_env(Some(&config), servers_file.as_deref(), &env_of(env)).map_err(|e| {
                e.to_string()
                    .replace(&dir.path().display().to_string(), "DIR")
            });
        (dir, loaded)
    }

    fn toml_err(toml: &str) -> String {
        load_files(toml, None, &[]).1.err().expect("an error")
    }

    #[test]
    fn toml_tables_become_server_specs() {
        let (dir, loaded) = load_files(
            r#"
            [servers.files]
            command = "npx"
            args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv"]
            env = { LOG = "debug" }
            cwd = "work"
            timeout_ms = 1500

            [[servers.files.plugins]]
            path = "redact.wasm"
            failure_policy = "skip"

            [servers.search]
            url = "https://search.example/mcp"
            headers = { "X-Team" = "infra" }
            bearer_token_env = "SEARCH_TOKEN"

            [servers.old]
            url = "http://127.0.0.1:9/messages"
            transport = "sse"
            enabled = false
            "#,
            None,
            &[("SEARCH_TOKEN", " s3cret ")],
        );
        let servers = loaded.unwrap();
        // In name order (as TOML and JSON objects are read).
        let names: Vec<_> = servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["files", "old", "search"]);

        let files = command_of(&servers[0]);
        assert_eq!(files.program, "npx");
        assert_eq!(files.args.len(), 3);
        assert_eq!(files.env, [("LOG".to_owned(), "debug".to_owned())]);
        assert_eq!(files.cwd, Some(dir.path().join("work")));
        assert_eq!(servers[0].timeout, Some(Duration::from_millis(1500)));
        assert_eq!(servers[0].plugins.len(), 1);
        assert_eq!(servers[0].plugins[0].path, dir.path().join("redact.wasm"));
        assert_eq!(servers[0].origin, dir.path().join("interpose.toml"));

        let (kind, old) = http_of(&servers[1]);
        assert_eq!(
            (kind, old.url.as_str()),
            ("sse", "http://127.0.0.1:9/messages")
        );
        assert!(!servers[1].enabled);

        let (kind, search) = http_of(&servers[2]);
        assert_eq!(kind, "streamable-http");
        assert_eq!(search.headers["x-team"], "infra");
        assert_eq!(search.headers["authorization"], "Bearer s3cret");
        assert!(search.headers["authorization"].is_sensitive());
        assert!(servers[2].enabled && servers[2].plugins.is_empty());
    }

    #[test]
    fn toml_lifecycle_keys_are_read_and_left_unset_by_default() {
        let (_dir, loaded) = load_files(
            "[servers.files]\ncommand = \"npx\"\nstart_timeout_ms = 2500\n\
             restart = \"on-failure\"\nlazy = true\n[servers.web]\nurl = \"http://h/mcp\"\n",
            None,
            &[],
        );
        let servers = loaded.unwrap();
        assert_eq!(servers[0].start_timeout, Some(Duration::from_millis(2500)));
        assert_eq!(servers[0].restart, Some(RestartPolicy::OnFailure));
        assert!(servers[0].lazy);
        assert_eq!(
            (
                servers[1].start_timeout,
                servers[1].restart,
                servers[1].lazy
            ),
            (None, None, false)
        );
    }

    #[test]
    fn oauth_client_credentials_are_checked() {
        let oauth = "oauth = { token_url = \"http://idp/token\", client_id = \"c\", client_secret_env = \"NO_SUCH\" }\n";
        assert_eq!(
            toml_err(&format!("[servers.web]\nurl = \"http://h/mcp\"\n{oauth}")),
            "DIR/interpose.toml: server `web`: `oauth.client_secret_env`: the environment \
             variable `NO_SUCH` is not set or is empty"
        );
        assert_eq!(
            toml_err(&format!(
                "[servers.web]\nurl = \"http://h/mcp\"\nbearer_token_env = \"T\"\n{oauth}"
            )),
            "DIR/interpose.toml: server `web`: `oauth` and a bearer token are exclusive: both \
             would set `Authorization`"
        );
        assert_eq!(
            toml_err(&format!("[servers.files]\ncommand = \"npx\"\n{oauth}")),
            "DIR/interpose.toml: server `files`: `oauth` applies to a `url` server, not to a \
             `command` one"
        );
    }

    #[test]
    fn toml_errors_name_the_server() {
        assert_eq!(
            toml_err("[servers.files]\ncommand = \"npx\"\ntimeout = 5\n"),
            "DIR/interpose.toml:3:1: unknown field `timeout`, expected one of `command`, `args`, \
             `env`, `cwd`, `url`, `transport`, `headers`, `bearer_token_env`, `oauth`, `timeout_ms`, \
             `start_timeout_ms`, `restart`, `lazy`, `enabled`, `plugins`"
        );
        assert_eq!(
            toml_err("[servers.files]\ncommand = \"npx\"\nstart_timeout_ms = 0\n"),
            "DIR/interpose.toml: server `files`: `start_timeout_ms` must be at least 1"
        );
        assert_eq!(
            toml_err("[servers.files]\ncommand = \"npx\"\nrestart = \"always\"\n"),
            "DIR/interpose.toml:3:11: unknown variant `always`, expected `never` or `on-failure`"
        );
        assert_eq!(
            toml_err("[servers.web]\nurl = \"http://h/mcp\"\nlazy = true\n"),
            "DIR/interpose.toml: server `web`: `lazy` applies to a `command` server, not to a \
             `url` one"
        );
        assert_eq!(
            toml_err("[servers.files]\ncommand = \"npx\"\nargs = \"-y\"\n"),
            "DIR/interpose.toml:3:8: invalid type: string \"-y\", expected a sequence"
        );
        assert_eq!(
            toml_err("[servers.web]\nurl = \"http://h/mcp\"\ntransport = \"http\"\n"),
            "DIR/interpose.toml:3:13: unknown variant `http`, expected `streamable-http` or `sse`"
        );
        assert_eq!(
            toml_err("[servers.web]\nurl = \"http://h/mcp\"\nbearer_token_env = \"NO_SUCH\"\n"),
            "DIR/interpose.toml: server `web`: `bearer_token_env`: the environment variable \
             `NO_SUCH` is not set or is empty"
        );
        assert_eq!(
            toml_err("[servers.files]\ncommand = \"npx\"\nbearer_token_env = \"T\"\n"),
            "DIR/interpose.toml: server `files`: `bearer_token_env` applies to a `url` server, \
             not to a `command` one"
        );
        assert_eq!(
            toml_err("[servers.web]\nurl = \"http://h/mcp\"\ncwd = \"/tmp\"\n"),
            "DIR/interpose.toml: server `web`: `cwd` applies to a `command` server, not to a \
             `url` one"
        );
        assert_eq!(
            toml_err("[servers.files]\ncommand = \"npx\"\ntimeout_ms = 0\n"),
            "DIR/interpose.toml: server `files`: `timeout_ms` must be at least 1"
        );
        assert_eq!(
            toml_err("[servers.\"a.b\"]\ncommand = \"npx\"\n"),
            "DIR/interpose.toml: server `a.b`: the name may only hold ASCII letters, digits, `_` \
             and `-` (it prefixes tool names)"
        );
        assert_eq!(
            toml_err("[servers.files]\nenabled = true\n"),
            "DIR/interpose.toml: server `files`: needs `command` (a local server) or `url` (a \
             remote one)"
        );
        assert_eq!(
            toml_err(
                "[servers.files]\ncommand = \"npx\"\n[[servers.files.plugins]]\npath = \"p.wasm\"\npool_size = 0\n"
            ),
            "DIR/interpose.toml: server `files`: plugin 1 (`p.wasm`): `pool_size` must be \
             between 1 and 64"
        );
    }

    #[test]
    fn a_disabled_toml_server_without_its_token_is_left_out() {
        let (_dir, loaded) = load_files(
            "[servers.web]\nurl = \"http://h/mcp\"\nbearer_token_env = \"NO_SUCH\"\n\
             enabled = false\n[servers.files]\ncommand = \"npx\"\nenabled = false\n",
            None,
            &[],
        );
        let names: Vec<_> = loaded.unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["files"]);
    }

    #[test]
    fn toml_and_file_servers_are_merged_and_duplicates_named() {
        let toml = "[servers.files]\ncommand = \"npx\"\n";
        let (_dir, loaded) = load_files(
            toml,
            Some(r#"{"mcpServers": {"web": {"url": "http://h/mcp"}}}"#),
            &[],
        );
        let names: Vec<_> = loaded.unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["files", "web"]);

        let (_dir, loaded) = load_files(
            toml,
            Some(r#"{"mcpServers": {"files": {"command": "uvx"}}}"#),
            &[],
        );
        assert_eq!(
            loaded.err().unwrap(),
            "server `files` is defined twice: in DIR/interpose.toml and in DIR/servers.json"
        );
    }

    fn spec(name: &str, enabled: bool) -> ServerSpec {
        ServerSpec {
            name: name.to_owned(),
            upstream: UpstreamSpec::Command(CommandSpec {
                program: "true".into(),
                args: vec![],
                env: vec![],
                cwd: None,
            }),
            timeout: None,
            start_timeout: None,
            restart: None,
            lazy: false,
            enabled,
            plugins: Vec::new(),
            origin: PathBuf::from("servers.json"),
        }
    }

    #[test]
    fn every_enabled_server_is_served_in_order() {
        let served = enabled(vec![spec("a", true), spec("b", false), spec("c", true)]).unwrap();
        let names: Vec<&str> = served.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(
            enabled(vec![spec("my_db", true), spec("my-db", true)])
                .err()
                .unwrap()
                .to_string(),
            "servers `my_db` and `my-db` would share the prefix `my-db` of their resource URIs \
             (a URI scheme holds letters, digits and `-` only): rename one"
        );
        assert_eq!(
            enabled(vec![spec("a", false)]).err().unwrap().to_string(),
            "every configured server is disabled (`a`): nothing to serve"
        );
        assert_eq!(
            enabled(vec![]).err().unwrap().to_string(),
            "no servers are configured"
        );
    }
}

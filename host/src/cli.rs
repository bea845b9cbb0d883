//! Command-line flags for the two ends of `interpose run`: where clients connect
//! (`--listen`) and how to reach a backend given as a URL. Kept here, beside the
//! transports they configure, so `main.rs` only flattens them in.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use http::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::downstream::admin::AdminConfig;
use crate::downstream::auth::{AuthConfig, ResourceServer};
use crate::downstream::http_server::{AccessPolicy, HttpServerConfig};
use crate::upstream::child::CommandSpec;
use crate::upstream::credentials::{ClientCredentials, OAuthClientConfig};
use crate::upstream::{HttpTransport, UpstreamSpec, header_pair, insert_bearer, secret_from_env};

/// Which HTTP transport a URL backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpstreamKind {
    /// Legacy SSE when the URL path ends in `/sse`, otherwise Streamable HTTP.
    Auto,
    /// Streamable HTTP (2025-03-26 and later).
    StreamableHttp,
    /// The legacy HTTP+SSE transport (2024-11-05).
    Sse,
}

/// Flags for where clients connect and how to reach an HTTP backend.
#[derive(Debug, Clone, Args)]
pub struct TransportArgs {
    /// Where clients connect: `stdio`, or `http://127.0.0.1:PORT` for Streamable HTTP
    /// at /mcp and legacy SSE at /sse.
    #[arg(long, default_value = "stdio", value_name = "stdio|http://HOST:PORT")]
    pub listen: String,
    /// Listen on an address other than loopback (use with --auth-token-env); applies
    /// to --admin too.
    #[arg(long)]
    pub allow_remote: bool,
    /// Serve /metrics, /healthz and /readyz on this address too (e.g. 127.0.0.1:9090;
    /// port 0 picks one, printed on stderr): the way to reach them in stdio mode.
    /// /metrics takes the --auth-token-env token when one is set.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_admin_addr)]
    pub admin: Option<SocketAddr>,
    /// An Origin allowed besides loopback ones, e.g. https://app.example (repeatable;
    /// `*` allows any). Requests from other origins get 403.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
    /// Require `Authorization: Bearer <token>` from HTTP clients, the token read from
    /// this environment variable.
    #[arg(long, value_name = "NAME")]
    pub auth_token_env: Option<String>,
    /// Sessions served at once over HTTP; more get 503.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_sessions: usize,
    /// End an HTTP session (and stop its backend) after this many idle seconds.
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    pub session_idle_timeout: u64,
    /// Pass the HTTP client's own Authorization header on to an HTTP backend.
    #[arg(long)]
    pub pass_client_authorization: bool,
    /// Close an HTTP connection that has not sent a request's headers within this many
    /// seconds (slow clients; also idle keep-alive connections).
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub header_read_timeout: u64,
    /// Answer 408 to an HTTP request whose body has not arrived within this many seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub body_read_timeout: u64,
    /// MiB of HTTP request bodies read at once, all connections together; a body that
    /// would go over is answered 503.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub body_budget_mib: usize,
    /// HTTP connections served at once; more are answered 503 and closed.
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub max_connections: usize,
    /// MiB of SSE events the HTTP listener holds for all sessions together (for
    /// resumption and slow readers); events already sent are evicted first.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub replay_budget_mib: usize,
    /// Seconds a session waits for an HTTP client that does not read its events; then
    /// the answers it left unread are replaced by errors.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub slow_reader_timeout: u64,
    /// How to talk to a URL backend.
    #[arg(long, value_enum, default_value_t = UpstreamKind::Auto)]
    pub upstream: UpstreamKind,
    /// A header sent to an HTTP backend with every request (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub header: Vec<(HeaderName, HeaderValue)>,
    /// Send `Authorization: Bearer <token>` to an HTTP backend, the token read from
    /// this environment variable.
    #[arg(long, value_name = "NAME")]
    pub bearer_token_env: Option<String>,
    /// Get access tokens for an HTTP backend with OAuth client credentials from this
    /// token endpoint (with --oauth-client-id and --oauth-client-secret-env).
    #[arg(long, value_name = "URL", requires_all = ["oauth_client_id", "oauth_client_secret_env"])]
    pub oauth_token_url: Option<String>,
    /// The OAuth client id (see --oauth-token-url).
    #[arg(long, value_name = "ID", requires = "oauth_token_url")]
    pub oauth_client_id: Option<String>,
    /// The environment variable holding the OAuth client secret (see --oauth-token-url).
    #[arg(long, value_name = "NAME", requires = "oauth_token_url")]
    pub oauth_client_secret_env: Option<String>,
    /// A scope to ask the token endpoint for (repeatable).
    #[arg(
        long = "oauth-scope",
        value_name = "SCOPE",
        requires = "oauth_token_url"
    )]
    pub oauth_scope: Vec<String>,
    /// The backend's resource URI (RFC 8707), the audience of its tokens.
    #[arg(long, value_name = "URI", requires = "oauth_token_url")]
    pub oauth_resource: Option<String>,
}

/// Where clients connect.
// Built once at start: boxing the HTTP settings would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Listen {
    Stdio,
    Http(HttpServerConfig),
}

impl TransportArgs {
    /// The listener the flags describe, requiring OAuth access tokens when `auth`
    /// (the config file's `[auth]`) is given.
    pub fn listen_with_auth(&self, auth: Option<&AuthConfig>) -> anyhow::Result<Listen> {
        let Some(auth) = auth else {
            return self.listen();
        };
        let mut config = match self.listen()? {
            Listen::Stdio => bail!(
                "[auth] applies to an HTTP listener (--listen http://HOST:PORT); a stdio client is the user who started interpose"
            ),
            Listen::Http(config) => config,
        };
        if self.auth_token_env.is_some() {
            bail!(
                "[auth] and --auth-token-env are exclusive: clients present either OAuth access tokens or the one shared token"
            );
        }
        if self.pass_client_authorization {
            bail!(
                "[auth] and --pass-client-authorization are exclusive: the client's access token is for interpose alone (its audience), never for a backend; give a backend its own credentials"
            );
        }
        config.oauth = Some(Arc::new(ResourceServer::new(auth)?));
        Ok(Listen::Http(config))
    }

    /// The listener the flags describe.
    pub fn listen(&self) -> anyhow::Result<Listen> {
        let mut config = match parse_listen(&self.listen)? {
            Listen::Stdio => return Ok(Listen::Stdio),
            Listen::Http(config) => config,
        };
        config.allow_remote = self.allow_remote;
        config.access = self.access_policy()?;
        config.max_sessions = self.max_sessions.max(1);
        config.session_idle_timeout = Duration::from_secs(self.session_idle_timeout.max(1));
        config.pass_client_authorization = self.pass_client_authorization;
        config.header_read_timeout = Duration::from_secs(self.header_read_timeout.max(1));
        config.body_read_timeout = Duration::from_secs(self.body_read_timeout.max(1));
        config.body_budget_bytes = self.body_budget_mib.max(1).saturating_mul(1024 * 1024);
        config.max_connections = self.max_connections.max(1);
        config.replay_budget_bytes = self.replay_budget_mib.max(1).saturating_mul(1024 * 1024);
        config.slow_reader_timeout = Duration::from_secs(self.slow_reader_timeout.max(1));
        Ok(Listen::Http(config))
    }

    /// Who may use the HTTP listener and the admin listener's `/metrics`.
    fn access_policy(&self) -> anyhow::Result<AccessPolicy> {
        Ok(AccessPolicy {
            allowed_origins: self
                .allow_origin
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            loopback_only_host: false,
            token: self
                .auth_token_env
                .as_deref()
                .map(|name| secret_from_env(name).context("--auth-token-env"))
                .transpose()?,
        })
    }

    /// The admin listener the flags ask for, if any.
    pub fn admin(&self) -> anyhow::Result<Option<AdminConfig>> {
        let Some(addr) = self.admin else {
            return Ok(None);
        };
        Ok(Some(AdminConfig {
            addr,
            allow_remote: self.allow_remote,
            access: self.access_policy()?,
        }))
    }

    /// The backend the command line names: a URL, or a command with its arguments.
    pub fn upstream(
        &self,
        backend: Vec<String>,
        env: Vec<(String, String)>,
    ) -> anyhow::Result<UpstreamSpec> {
        let mut words = backend.into_iter();
        let first = words.next().context("no backend given")?;
        let url = Url::parse(&first)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"));
        let Some(url) = url else {
            return Ok(UpstreamSpec::Command(CommandSpec {
                program: first,
                args: words.collect(),
                env,
                cwd: None,
            }));
        };
        if words.next().is_some() {
            bail!("a URL backend takes no arguments after the URL");
        }
        if !env.is_empty() {
            bail!("--env applies to command backends, not to a URL");
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &self.header {
            headers.append(name.clone(), value.clone());
        }
        if let Some(name) = &self.bearer_token_env {
            if self.oauth_token_url.is_some() {
                bail!(
                    "--bearer-token-env and --oauth-token-url are exclusive: both would set `Authorization`"
                );
            }
            let token = secret_from_env(name).context("--bearer-token-env")?;
            insert_bearer(&mut headers, &token)?;
        }
        let spec = UpstreamSpec::http(url, self.upstream.into(), headers)?;
        Ok(match self.oauth_client()? {
            Some(credentials) => spec.with_credentials(Arc::new(credentials)),
            None => spec,
        })
    }

    /// The OAuth client credentials the `--oauth-*` flags describe, if any.
    fn oauth_client(&self) -> anyhow::Result<Option<ClientCredentials>> {
        let (Some(token_url), Some(client_id), Some(secret_env)) = (
            &self.oauth_token_url,
            &self.oauth_client_id,
            &self.oauth_client_secret_env,
        ) else {
            return Ok(None);
        };
        let config = OAuthClientConfig {
            token_url: token_url.clone(),
            client_id: client_id.clone(),
            client_secret_env: secret_env.clone(),
            scopes: self.oauth_scope.clone(),
            resource: self.oauth_resource.clone(),
            audience: None,
        };
        ClientCredentials::new(&config, &|name| std::env::var(name).ok())
            .map(Some)
            .map_err(|e| anyhow::anyhow!("--oauth-*: {e}"))
    }

    /// Whether any flag that only applies to a backend given after `--` was set.
    pub fn names_backend_settings(&self) -> bool {
        self.upstream != UpstreamKind::Auto
            || !self.header.is_empty()
            || self.bearer_token_env.is_some()
            || self.oauth_token_url.is_some()
    }
}

impl From<UpstreamKind> for HttpTransport {
    fn from(kind: UpstreamKind) -> Self {
        match kind {
            UpstreamKind::Auto => HttpTransport::Auto,
            UpstreamKind::StreamableHttp => HttpTransport::StreamableHttp,
            UpstreamKind::Sse => HttpTransport::Sse,
        }
    }
}

/// `--admin`: `HOST:PORT`, an IP address and a port.
fn parse_admin_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!("expected HOST:PORT with an IP address, e.g. 127.0.0.1:9090, got `{text}`")
    })
}

/// `stdio`, or `http://HOST:PORT` (optionally ending in `/mcp`) with default settings.
pub fn parse_listen(text: &str) -> anyhow::Result<Listen> {
    if text == "stdio" {
        return Ok(Listen::Stdio);
    }
    let url = Url::parse(text)
        .ok()
        .filter(|url| url.scheme() == "http" && matches!(url.path(), "" | "/" | "/mcp"))
        .with_context(|| format!("--listen must be `stdio` or `http://HOST:PORT`, got `{text}`"))?;
    Ok(Listen::Http(HttpServerConfig::new(listen_addr(&url)?)))
}

fn listen_addr(url: &Url) -> anyhow::Result<SocketAddr> {
    let host = url.host_str().context("--listen needs a host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url
        .port()
        .context("--listen needs a port, e.g. http://127.0.0.1:8080")?;
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve `{host}`"))?
        .next()
        .with_context(|| format!("`{host}` has no address"))
}

fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("expected `Name: value`, got `{text}`"))?;
    header_pair(name, value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> TransportArgs {
        TransportArgs {
            listen: "stdio".into(),
            allow_remote: false,
            admin: None,
            allow_origin: vec![],
            auth_token_env: None,
            max_sessions: 64,
            session_idle_timeout: 1800,
            pass_client_authorization: false,
            header_read_timeout: 10,
            body_read_timeout: 30,
            body_budget_mib: 256,
            max_connections: 512,
            replay_budget_mib: 256,
            slow_reader_timeout: 60,
            upstream: UpstreamKind::Auto,
            header: vec![],
            bearer_token_env: None,
            oauth_token_url: None,
            oauth_client_id: None,
            oauth_client_secret_env: None,
            oauth_scope: vec![],
            oauth_resource: None,
        }
    }

    #[test]
    fn admin_takes_an_ip_address_and_port() {
        assert_eq!(
            parse_admin_addr("127.0.0.1:9090"),
            Ok("127.0.0.1:9090".parse().unwrap())
        );
        assert!(parse_admin_addr("localhost:9090").is_err());
        assert!(parse_admin_addr("127.0.0.1").is_err());
        let mut a = args();
        assert!(a.admin().unwrap().is_none());
        a.admin = Some("127.0.0.1:0".parse().unwrap());
        a.allow_remote = true;
        let admin = a.admin().unwrap().expect("asked for");
        assert!(admin.allow_remote);
        assert!(admin.access.token.is_none());
    }

    #[test]
    fn url_backends_pick_their_transport() {
        let a = args();
        let pick = |url: &str| a.upstream(vec![url.into()], vec![]).unwrap();
        assert!(matches!(
            pick("http://127.0.0.1:1/mcp"),
            UpstreamSpec::StreamableHttp(_)
        ));
        assert!(matches!(
            pick("http://127.0.0.1:1/sse"),
            UpstreamSpec::LegacySse(_)
        ));
        assert!(matches!(
            a.upstream(vec!["python3".into(), "s.py".into()], vec![])
                .unwrap(),
            UpstreamSpec::Command(_)
        ));
        assert!(
            a.upstream(vec!["http://x/mcp".into(), "extra".into()], vec![])
                .is_err()
        );
    }

    #[test]
    fn auth_needs_an_http_listener_and_excludes_the_shared_token() {
        let auth = AuthConfig {
            issuer: "https://idp.example".into(),
            resource: "http://127.0.0.1:8080/mcp".into(),
            scopes: vec![],
            scopes_supported: None,
            leeway_s: 30,
            jwks_uri: None,
            fetch_timeout_ms: 1000,
            jwks_min_refresh_ms: 1000,
        };
        let mut a = args();
        let error = |a: &TransportArgs| a.listen_with_auth(Some(&auth)).err().unwrap().to_string();
        assert!(error(&a).starts_with("[auth] applies to an HTTP listener"));
        a.listen = "http://127.0.0.1:8080".into();
        a.pass_client_authorization = true;
        assert!(error(&a).starts_with("[auth] and --pass-client-authorization are exclusive"));
        a.pass_client_authorization = false;
        a.auth_token_env = Some("PATH".into());
        assert!(error(&a).starts_with("[auth] and --auth-token-env are exclusive"));
        a.auth_token_env = None;
        match a.listen_with_auth(Some(&auth)).unwrap() {
            Listen::Http(config) => assert!(config.oauth.is_some()),
            Listen::Stdio => panic!("expected http"),
        }
    }

    #[test]
    fn oauth_flags_and_a_bearer_token_are_exclusive() {
        let mut a = args();
        a.bearer_token_env = Some("PATH".into());
        a.oauth_token_url = Some("http://127.0.0.1:1/token".into());
        a.oauth_client_id = Some("c".into());
        a.oauth_client_secret_env = Some("PATH".into());
        let error = a
            .upstream(vec!["http://127.0.0.1:1/mcp".into()], vec![])
            .err()
            .unwrap();
        assert!(error.to_string().contains("are exclusive"), "{error}");
        a.bearer_token_env = None;
        match a
            .upstream(vec!["http://127.0.0.1:1/mcp".into()], vec![])
            .unwrap()
        {
            UpstreamSpec::StreamableHttp(config) => assert!(config.credentials.is_some()),
            _ => panic!("expected Streamable HTTP"),
        }
        assert!(a.names_backend_settings());
    }

    #[test]
    fn header_flag_parses() {
        let (name, value) = parse_header("X-Api-Key:  abc ").unwrap();
        assert_eq!(name.as_str(), "x-api-key");
        assert_eq!(value, "abc");
        assert!(parse_header("no colon").is_err());
    }

    #[test]
    fn listen_accepts_http_and_refuses_nonsense() {
        let mut a = args();
        a.listen = "http://127.0.0.1:8080".into();
        match a.listen().unwrap() {
            Listen::Http(config) => assert_eq!(config.addr.port(), 8080),
            Listen::Stdio => panic!("expected http"),
        }
        a.listen = "tcp://x".into();
        assert!(a.listen().is_err());
    }
}

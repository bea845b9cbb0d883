//! The HTTP listener as an OAuth 2.1 resource server, as the MCP authorization spec
//! asks of a server (`[auth]` in the config file, docs/auth.md): every request carries
//! a JWT access token from the configured issuer, checked here (signature against the
//! issuer's published keys, issuer, audience bound to this endpoint's resource URI per
//! RFC 8707, expiry, required scopes); the protected resource metadata (RFC 9728) tells
//! clients where to get one. The token is for interpose alone: it never reaches a
//! backend. What a valid token says about its bearer becomes the session's
//! [`Principal`].

mod keys;

use std::sync::Arc;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, StatusCode};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{AlgorithmFamily, Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use keys::{KeyCache, KeyLookup};

pub use crate::wire::link::Principal;

/// The well-known path of the protected resource metadata (RFC 9728 section 3).
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The `[auth]` table: accept OAuth access tokens from one issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The authorization server's issuer identifier, exactly as its metadata and its
    /// tokens' `iss` claim spell it (e.g. `https://idp.example`).
    pub issuer: String,
    /// This endpoint's canonical resource URI (RFC 8707), e.g.
    /// `https://mcp.example.com/mcp`: tokens must name it in `aud`, and the metadata
    /// document names it as `resource`.
    pub resource: String,
    /// Scopes every token must carry (in its `scope` or `scp` claim); a token without
    /// them gets 403 `insufficient_scope`. Also what the 401 challenge asks for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `scopes_supported` of the metadata document (default: `scopes`).
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway_s")]
    pub leeway_s: u64,
    /// The issuer's JWKS, instead of the one its metadata names (no discovery then).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Deadline for fetching the issuer's metadata and keys, in milliseconds: no
    /// request waits longer than this for them.
    #[serde(default = "default_fetch_timeout_ms")]
    pub fetch_timeout_ms: u64,
    /// The keys are fetched again when a token names a key id not seen yet (the
    /// issuer rotated its keys), at most once per this many milliseconds.
    #[serde(default = "default_jwks_min_refresh_ms")]
    pub jwks_min_refresh_ms: u64,
}

fn default_leeway_s() -> u64 {
    30
}
fn default_fetch_timeout_ms() -> u64 {
    5_000
}
fn default_jwks_min_refresh_ms() -> u64 {
    10_000
}

/// An `[auth]` table that cannot be used. The text is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("[auth] `{key}` must be an http:// or https:// URL, got `{value}`")]
    NotUrl { key: &'static str, value: String },
    #[error("[auth] `resource` must not have a fragment, got `{0}`")]
    Fragment(String),
    #[error("[auth] `{0}`: a scope cannot contain spaces or quotes")]
    BadScope(String),
    #[error("[auth] could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Why a request is not let in.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No bearer token (RFC 6750: the challenge carries no error code).
    Missing,
    /// 401 `invalid_token`: why.
    InvalidToken(String),
    /// 403 `insufficient_scope`: the scopes missing.
    InsufficientScope(Vec<String>),
    /// The issuer's keys could not be fetched: 503.
    Unavailable(String),
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Missing | AuthError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            AuthError::InsufficientScope(_) => StatusCode::FORBIDDEN,
            AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// What the client is told (the JSON-RPC error's message).
    pub fn message(&self) -> String {
        match self {
            AuthError::Missing => "a bearer token is required".into(),
            AuthError::InvalidToken(why) => format!("invalid token: {why}"),
            AuthError::InsufficientScope(missing) => {
                format!("the token lacks the scope(s) {}", missing.join(" "))
            }
            AuthError::Unavailable(_) => {
                "the identity provider's keys cannot be fetched; try again later".into()
            }
        }
    }
}

/// Checks access tokens and describes the resource; one per listener.
pub struct ResourceServer {
    issuer: String,
    resource: String,
    scopes: Vec<String>,
    leeway_s: u64,
    keys: KeyCache,
    /// How often the keys are fetched again in the background ([`KEYS_REFRESH`]).
    keys_refresh: Duration,
    verified: VerifiedTokens,
    metadata_url: String,
    metadata: String,
}

/// How often the issuer's keys are fetched again even when no token names an unknown
/// key, so that a key the issuer withdrew stops being used within this.
const KEYS_REFRESH: Duration = Duration::from_secs(300);

/// How many verified tokens are remembered.
const VERIFIED_TOKENS: usize = 4096;
/// How long a verified token is remembered at most (also bounded by its expiry), so a
/// key the issuer withdrew stops being honoured within this after the keys are next
/// fetched ([`KEYS_REFRESH`]).
const VERIFIED_FOR_S: u64 = 60;

/// Tokens verified recently, with what they stand for: until they expire, and at most
/// [`VERIFIED_FOR_S`] seconds; at most [`VERIFIED_TOKENS`] of them.
#[derive(Default)]
struct VerifiedTokens {
    entries: std::sync::Mutex<VerifiedMap>,
}

/// Token text to (principal, remembered until, as a Unix time).
type VerifiedMap = std::collections::HashMap<Box<str>, (Arc<Principal>, u64)>;

impl VerifiedTokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, VerifiedMap> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, token: &str, now: u64) -> Option<Arc<Principal>> {
        let mut entries = self.lock();
        match entries.get(token) {
            Some((principal, until)) if now < *until => Some(principal.clone()),
            Some(_) => {
                entries.remove(token);
                None
            }
            None => None,
        }
    }

    fn insert(&self, token: &str, principal: Arc<Principal>, now: u64, expires: u64) {
        let mut entries = self.lock();
        if entries.len() >= VERIFIED_TOKENS {
            entries.retain(|_, (_, until)| now < *until);
            if entries.len() >= VERIFIED_TOKENS {
                entries.clear();
            }
        }
        let until = expires.min(now + VERIFIED_FOR_S);
        entries.insert(token.into(), (principal, until));
    }
}

impl ResourceServer {
    pub fn new(config: &AuthConfig) -> Result<Self, AuthConfigError> {
        let issuer = http_url("issuer", &config.issuer)?;
        let resource = http_url("resource", &config.resource)?;
        if resource.fragment().is_some() {
            return Err(AuthConfigError::Fragment(config.resource.clone()));
        }
        if let Some(jwks_uri) = &config.jwks_uri {
            http_url("jwks_uri", jwks_uri)?;
        }
        let supported = config.scopes_supported.as_ref().unwrap_or(&config.scopes);
        if let Some(bad) = config
            .scopes
            .iter()
            .chain(supported)
            .find(|s| s.is_empty() || s.contains([' ', '"', '\\']))
        {
            return Err(AuthConfigError::BadScope(bad.clone()));
        }
        if issuer.scheme() == "http" && !is_loopback(&issuer) {
            tracing::warn!(
                "[auth] issuer {} is plain http: its keys can be tampered with on the way",
                config.issuer
            );
        }
        let fetch_timeout = Duration::from_millis(config.fetch_timeout_ms.max(1));
        // Redirects are not followed: the metadata names where the keys are.
        let client = reqwest::Client::builder()
            .timeout(fetch_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let metadata_url = metadata_url(&resource);
        let metadata = serde_json::json!({
            "resource": config.resource,
            "authorization_servers": [config.issuer],
            "scopes_supported": supported,
            "bearer_methods_supported": ["header"],
        })
        .to_string();
        Ok(ResourceServer {
            keys: KeyCache::new(
                client,
                config.issuer.clone(),
                config.jwks_uri.clone(),
                fetch_timeout,
                Duration::from_millis(config.jwks_min_refresh_ms),
            ),
            keys_refresh: KEYS_REFRESH,
            verified: VerifiedTokens::default(),
            issuer: config.issuer.clone(),
            resource: config.resource.clone(),
            scopes: config.scopes.clone(),
            leeway_s: config.leeway_s,
            metadata_url,
            metadata,
        })
    }

    /// Fetches the issuer's keys in the background: the listener starts even when the
    /// identity provider is down (requests then get 503 until it answers). Then fetches
    /// them again every `keys_refresh`, until the server is dropped.
    pub fn start(self: &Arc<Self>) {
        let keys_refresh = self.keys_refresh;
        let server = Arc::downgrade(self);
        tokio::spawn(async move {
            if let Some(server) = server.upgrade() {
                server.keys.prefetch().await;
            }
            loop {
                tokio::time::sleep(keys_refresh).await;
                let Some(server) = server.upgrade() else {
                    return;
                };
                server.keys.refresh().await;
            }
        });
    }

    /// The protected resource metadata document (RFC 9728), as JSON text.
    pub fn metadata(&self) -> &str {
        &self.metadata
    }

    /// The path this resource's metadata is served at (the well-known name with the
    /// resource's path appended, RFC 9728 section 3.1).
    pub fn metadata_path(&self) -> String {
        Url::parse(&self.metadata_url)
            .map(|url| url.path().to_owned())
            .unwrap_or_else(|_| METADATA_PATH.to_owned())
    }

    /// The principal a request's bearer token stands for, or why it is refused.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Principal>, AuthError> {
        let token = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_token)
            .ok_or(AuthError::Missing)?;
        self.check_token(token).await
    }

    /// Checks one access token. A client sends the same token with every request
    /// until it expires, so a token verified once is remembered (see
    /// [`VerifiedTokens`]): the signature, the costly part, is checked once per token.
    pub async fn check_token(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(principal) = self.verified.get(token, now) {
            return Ok(principal);
        }
        let principal = Arc::new(self.verify(token).await?);
        let expires = principal
            .claims
            .get("exp")
            .and_then(Value::as_u64)
            .unwrap_or(now)
            .saturating_add(self.leeway_s);
        self.verified.insert(token, principal.clone(), now, expires);
        Ok(principal)
    }

    /// Checks one access token in full, as [`check_token`](Self::check_token) does
    /// for a token it has not seen (public for the benchmark of that cost).
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let invalid = |why: &str| AuthError::InvalidToken(why.to_owned());
        let header = decode_header(token).map_err(|_| invalid("not a JWT"))?;
        if header.alg.family() == AlgorithmFamily::Hmac {
            return Err(invalid("signed with a shared secret, not the issuer's key"));
        }
        let key = match self.keys.key(header.kid.as_deref()).await {
            KeyLookup::Found(key) => key,
            KeyLookup::Unknown => {
                return Err(invalid("signed with a key the issuer does not publish"));
            }
            KeyLookup::Unavailable(why) => return Err(AuthError::Unavailable(why)),
        };
        if key.algorithm.is_some_and(|alg| alg != header.alg) {
            return Err(invalid("its algorithm is not the one its key is for"));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway_s;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.resource]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| AuthError::InvalidToken(token_problem(e.kind())))?
            .claims;
        let subject = ["sub", "client_id"]
            .iter()
            .find_map(|name| claims.get(*name).and_then(Value::as_str))
            .ok_or_else(|| invalid("it names no subject (`sub`)"))?
            .to_owned();
        let scopes = granted_scopes(&claims);
        let missing: Vec<String> = self
            .scopes
            .iter()
            .filter(|needed| !scopes.contains(needed))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(AuthError::InsufficientScope(missing));
        }
        Ok(Principal {
            issuer: self.issuer.clone(),
            subject,
            scopes,
            claims,
        })
    }

    /// The `WWW-Authenticate` value for a refusal (MCP authorization spec, RFC 6750
    /// section 3, RFC 9728 section 5.1).
    pub fn challenge(&self, error: &AuthError) -> HeaderValue {
        let mut value = format!("Bearer resource_metadata=\"{}\"", self.metadata_url);
        if !self.scopes.is_empty() {
            value.push_str(&format!(", scope=\"{}\"", self.scopes.join(" ")));
        }
        let (code, description) = match error {
            AuthError::InvalidToken(why) => ("invalid_token", why.clone()),
            AuthError::InsufficientScope(_) => ("insufficient_scope", error.message()),
            AuthError::Missing | AuthError::Unavailable(_) => ("", String::new()),
        };
        if !code.is_empty() {
            // RFC 6750: the description is printable ASCII without `"` and `\`.
            let description: String = description
                .chars()
                .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
                .collect();
            value.push_str(&format!(
                ", error=\"{code}\", error_description=\"{description}\""
            ));
        }
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }
}

impl std::fmt::Debug for ResourceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceServer")
            .field("issuer", &self.issuer)
            .field("resource", &self.resource)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

fn http_url(key: &'static str, value: &str) -> Result<Url, AuthConfigError> {
    Url::parse(value)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .ok_or_else(|| AuthConfigError::NotUrl {
            key,
            value: value.to_owned(),
        })
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The resource's metadata URL: the well-known name inserted between the host and the
/// resource's path (RFC 9728 section 3.1).
fn metadata_url(resource: &Url) -> String {
    let origin = resource.origin().ascii_serialization();
    let path = resource.path().trim_end_matches('/');
    format!("{origin}{METADATA_PATH}{path}")
}

/// The token of an `Authorization: Bearer ...` value.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// The scopes a token grants: `scope` (RFC 9068, space-separated) or `scp` (a list, or
/// a string, as some providers write it).
fn granted_scopes(claims: &Map<String, Value>) -> Vec<String> {
    match claims.get("scope").or_else(|| claims.get("scp")) {
        Some(Value::String(text)) => text.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// What is wrong with a token, for the client and the log (never the token itself).
fn token_problem(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => "the token is for another resource (aud)".into(),
        ErrorKind::InvalidIssuer => "the token is from another issuer (iss)".into(),
        ErrorKind::InvalidSignature => "the signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        ErrorKind::InvalidAlgorithm => "its algorithm does not fit its key".into(),
        other => format!("the token cannot be read: {other:?}"),
    }
}

#[cfg(test)]
mod tests;

//! Credentials towards an HTTP backend that is itself an OAuth resource server: an
//! access token from the OAuth client credentials grant (RFC 6749 section 4.4),
//! cached and fetched again before it expires (at 80% of its lifetime), one fetch at a
//! time. `oauth = { ... }` of a `[servers.NAME]` table.

use std::time::{Duration, Instant};

use base64::Engine;
use http::HeaderValue;
use serde::Deserialize;
use url::Url;

use super::error_text::error_chain;
use super::fetch::read_json;
use super::{EnvLookup, secret_in};

/// How long a token request may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);
/// A token is fetched again once this share of its lifetime has passed.
const REFRESH_AT_PERCENT: u32 = 80;
/// The lifetime assumed when the token endpoint gives none (`expires_in`).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// `oauth = { ... }` of a `[servers.NAME]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClientConfig {
    /// The authorization server's token endpoint.
    pub token_url: String,
    pub client_id: String,
    /// The environment variable holding the client secret (read at start).
    pub client_secret_env: String,
    /// The scopes asked for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The backend's resource URI (RFC 8707 `resource`), so the token's audience is it.
    #[serde(default)]
    pub resource: Option<String>,
    /// `audience`, for authorization servers that take that instead of `resource`.
    #[serde(default)]
    pub audience: Option<String>,
}

struct Cached {
    authorization: HeaderValue,
    refresh_at: Instant,
    expires_at: Instant,
}

/// One client's tokens for one backend, shared by every session to it.
pub struct ClientCredentials {
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    secret: String,
    form: String,
    /// Held while a token is fetched: one request in flight, the others wait for it.
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// Checks the settings and reads the secret; `env` is the environment.
    pub fn new(config: &OAuthClientConfig, env: EnvLookup) -> Result<Self, String> {
        let token_url = Url::parse(&config.token_url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| {
                format!(
                    "`oauth.token_url` must be an http:// or https:// URL, got `{}`",
                    config.token_url
                )
            })?;
        let secret = secret_in(&config.client_secret_env, env)
            .map_err(|e| format!("`oauth.client_secret_env`: {e}"))?;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if !config.scopes.is_empty() {
            form.append_pair("scope", &config.scopes.join(" "));
        }
        if let Some(resource) = &config.resource {
            form.append_pair("resource", resource);
        }
        if let Some(audience) = &config.audience {
            form.append_pair("audience", audience);
        }
        let http = reqwest::Client::builder()
            .timeout(TOKEN_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("`oauth`: {e}"))?;
        Ok(ClientCredentials {
            http,
            token_url,
            client_id: config.client_id.clone(),
            secret,
            form: form.finish(),
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// The `Authorization` value to send: the cached token, or a new one when it is
    /// due for refresh. A failed refresh keeps using a token that has not expired.
    pub async fn authorization(&self) -> Result<HeaderValue, String> {
        let mut cached = self.cached.lock().await;
        let now = Instant::now();
        if let Some(token) = cached.as_ref().filter(|t| now < t.refresh_at) {
            return Ok(token.authorization.clone());
        }
        match self.fetch().await {
            Ok(fresh) => {
                let authorization = fresh.authorization.clone();
                *cached = Some(fresh);
                Ok(authorization)
            }
            Err(why) => match cached.as_ref().filter(|t| now < t.expires_at) {
                Some(token) => {
                    tracing::warn!(
                        "refreshing the access token from {} failed; using the current one until it expires: {why}",
                        self.token_url
                    );
                    Ok(token.authorization.clone())
                }
                None => Err(why),
            },
        }
    }

    /// Forgets the cached token (the backend refused it), so the next request gets a
    /// new one.
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self) -> Result<Cached, String> {
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let what = format!("the token endpoint {}", self.token_url);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            form_encode(&self.client_id),
            form_encode(&self.secret)
        ));
        let started = Instant::now();
        let response = self
            .http
            .post(self.token_url.clone())
            .header(http::header::AUTHORIZATION, format!("Basic {basic}"))
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(self.form.clone())
            .send()
            .await
            .map_err(|e| format!("cannot reach {what}: {}", error_chain(&e)))?;
        let token: TokenResponse = read_json(response, &what).await?;
        let lifetime = token
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_LIFETIME);
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.access_token))
            .map_err(|_| format!("{what} gave a token that is not a valid header value"))?;
        authorization.set_sensitive(true);
        tracing::debug!(
            "got an access token from {} for {lifetime:?}",
            self.token_url
        );
        Ok(Cached {
            authorization,
            refresh_at: started + lifetime * REFRESH_AT_PERCENT / 100,
            expires_at: started + lifetime,
        })
    }
}

/// RFC 6749 section 2.3.1: the client id and secret are form-encoded before Basic.
fn form_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A token endpoint on loopback that counts its calls and checks the client's
    /// Basic credentials and the form; tokens live `lifetime_s`.
    async fn token_endpoint(lifetime_s: u64) -> (String, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(move |headers: http::HeaderMap, body: String| {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    // "c%3Aid" and "s%26cret", form-encoded, then Basic.
                    assert_eq!(headers["authorization"], "Basic YyUzQWlkOnMlMjZjcmV0");
                    assert_eq!(
                        body,
                        "grant_type=client_credentials&scope=a+b&resource=http%3A%2F%2Fbackend%2Fmcp"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    format!(r#"{{"access_token":"t{n}","token_type":"Bearer","expires_in":{lifetime_s}}}"#)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/token"), calls)
    }

    fn credentials(token_url: String) -> ClientCredentials {
        let config = OAuthClientConfig {
            token_url,
            client_id: "c:id".into(),
            client_secret_env: "SECRET".into(),
            scopes: vec!["a".into(), "b".into()],
            resource: Some("http://backend/mcp".into()),
            audience: None,
        };
        ClientCredentials::new(&config, &|_| Some("s&cret".into())).unwrap()
    }

    #[tokio::test]
    async fn one_token_request_serves_concurrent_callers_and_is_cached() {
        let (url, calls) = token_endpoint(3600).await;
        let credentials = Arc::new(credentials(url));
        let callers: Vec<_> = (0..20)
            .map(|_| {
                let credentials = credentials.clone();
                tokio::spawn(async move { credentials.authorization().await.unwrap() })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap(), "Bearer t1");
        }
        assert_eq!(credentials.authorization().await.unwrap(), "Bearer t1");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Refused by the backend: forgotten, so the next request gets a new one.
        credentials.forget().await;
        assert_eq!(credentials.authorization().await.unwrap(), "Bearer t2");
    }

    #[tokio::test]
    async fn a_token_is_fetched_again_before_it_expires() {
        let (url, calls) = token_endpoint(1).await;
        let credentials = credentials(url);
        assert_eq!(credentials.authorization().await.unwrap(), "Bearer t1");
        // 80% of one second.
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(credentials.authorization().await.unwrap(), "Bearer t2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_missing_secret_is_named() {
        let config = OAuthClientConfig {
            token_url: "http://idp/token".into(),
            client_id: "c".into(),
            client_secret_env: "NOPE".into(),
            scopes: vec![],
            resource: None,
            audience: None,
        };
        assert_eq!(
            ClientCredentials::new(&config, &|_| None).err().unwrap(),
            "`oauth.client_secret_env`: the environment variable `NOPE` is not set or is empty"
        );
    }
}

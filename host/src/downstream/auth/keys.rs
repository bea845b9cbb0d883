//! The issuer's signing keys: found through its metadata (RFC 8414 / OpenID Connect
//! discovery, in the order the MCP authorization spec gives), fetched from its JWKS,
//! cached, and fetched again when a token names a key id we do not know, at most once
//! per `min_refresh_interval`, so a flood of made-up key ids cannot hammer the
//! identity provider.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use url::Url;

use crate::upstream::fetch::get_json;

/// One verification key of the issuer.
pub struct Key {
    pub decoding: DecodingKey,
    /// The algorithm the JWK pins (`alg`), if it does.
    pub algorithm: Option<Algorithm>,
}

/// The keys last fetched.
#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<Key>>,
    /// Keys without a `kid`: usable by a token without one when there is exactly one.
    anonymous: Vec<Arc<Key>>,
    /// A JWKS was fetched at least once.
    loaded: bool,
}

impl KeySet {
    fn find(&self, kid: Option<&str>) -> Option<Arc<Key>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned(),
            None => match (&self.anonymous[..], self.by_kid.len()) {
                ([only], 0) => Some(only.clone()),
                ([], 1) => self.by_kid.values().next().cloned(),
                _ => None,
            },
        }
    }
}

/// What a key lookup found.
pub enum KeyLookup {
    Found(Arc<Key>),
    /// The issuer's current keys do not include it.
    Unknown,
    /// The keys could not be fetched: why.
    Unavailable(String),
}

struct RefreshState {
    last_attempt: Option<Instant>,
    /// Why the last fetch failed, if it did.
    last_error: Option<String>,
    /// Found by discovery (or configured), kept once known.
    jwks_uri: Option<String>,
}

/// The issuer's keys, shared by every request.
pub struct KeyCache {
    client: reqwest::Client,
    issuer: String,
    fetch_timeout: Duration,
    min_refresh_interval: Duration,
    keys: ArcSwap<KeySet>,
    /// Held while fetching: one fetch at a time, the others wait for its result.
    refresh: tokio::sync::Mutex<RefreshState>,
}

#[derive(Deserialize)]
struct ServerMetadata {
    issuer: String,
    jwks_uri: Option<String>,
}

impl KeyCache {
    pub fn new(
        client: reqwest::Client,
        issuer: String,
        jwks_uri: Option<String>,
        fetch_timeout: Duration,
        min_refresh_interval: Duration,
    ) -> Self {
        KeyCache {
            client,
            issuer,
            fetch_timeout,
            min_refresh_interval,
            keys: ArcSwap::from_pointee(KeySet::default()),
            refresh: tokio::sync::Mutex::new(RefreshState {
                last_attempt: None,
                last_error: None,
                jwks_uri,
            }),
        }
    }

    /// The key a token names, fetching the keys again when it is not known (bounded).
    pub async fn key(&self, kid: Option<&str>) -> KeyLookup {
        if let Some(key) = self.keys.load().find(kid) {
            return KeyLookup::Found(key);
        }
        let mut state = self.refresh.lock().await;
        // Fetched while we waited for the lock?
        if let Some(key) = self.keys.load().find(kid) {
            return KeyLookup::Found(key);
        }
        let recently = state
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.min_refresh_interval);
        if !recently {
            self.refresh_locked(&mut state).await;
        }
        let keys = self.keys.load();
        match (keys.find(kid), &state.last_error) {
            (Some(key), _) => KeyLookup::Found(key),
            (None, Some(error)) if !keys.loaded || !recently => {
                KeyLookup::Unavailable(error.clone())
            }
            (None, _) => KeyLookup::Unknown,
        }
    }

    /// Fetches the keys now (at start, so the first request need not wait).
    pub async fn prefetch(&self) {
        let mut state = self.refresh.lock().await;
        self.refresh_locked(&mut state).await;
        if state.last_error.is_none() {
            tracing::info!(
                "fetched {} signing key(s) of {}",
                self.keys.load().by_kid.len() + self.keys.load().anonymous.len(),
                self.issuer
            );
        }
    }

    /// Fetches the keys again now (the periodic refresh). The new set replaces the old
    /// one whole, so keys the issuer withdrew are gone; a failed fetch keeps the old set.
    pub async fn refresh(&self) {
        let mut state = self.refresh.lock().await;
        self.refresh_locked(&mut state).await;
    }

    async fn refresh_locked(&self, state: &mut RefreshState) {
        state.last_attempt = Some(Instant::now());
        let fetched = tokio::time::timeout(self.fetch_timeout, self.fetch(state))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no answer from {} within {:?}",
                    self.issuer, self.fetch_timeout
                ))
            });
        match fetched {
            Ok(keys) => {
                self.keys.store(Arc::new(keys));
                state.last_error = None;
            }
            Err(error) => {
                tracing::warn!(
                    "cannot fetch the signing keys of {} (tokens cannot be checked until it answers; next try in {:?} at the earliest): {error}",
                    self.issuer,
                    self.min_refresh_interval
                );
                state.last_error = Some(error);
            }
        }
    }

    async fn fetch(&self, state: &mut RefreshState) -> Result<KeySet, String> {
        let jwks_uri = match &state.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let uri = self.discover().await?;
                state.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let set: JwkSet =
            get_json(&self.client, &jwks_uri, &format!("the JWKS at {jwks_uri}")).await?;
        Ok(key_set(set))
    }

    /// The `jwks_uri` from the issuer's metadata, tried at each well-known location in
    /// the order the MCP authorization spec gives.
    async fn discover(&self) -> Result<String, String> {
        let mut problems = Vec::new();
        for url in metadata_urls(&self.issuer)? {
            let what = format!("the metadata at {url}");
            match get_json::<ServerMetadata>(&self.client, &url, &what).await {
                Ok(metadata) => {
                    if metadata.issuer.trim_end_matches('/') != self.issuer.trim_end_matches('/') {
                        return Err(format!(
                            "{what} names issuer `{}`, not `{}`",
                            metadata.issuer, self.issuer
                        ));
                    }
                    return metadata
                        .jwks_uri
                        .ok_or_else(|| format!("{what} has no `jwks_uri`"));
                }
                Err(problem) => problems.push(problem),
            }
        }
        Err(problems.join("; "))
    }
}

/// Where an issuer's metadata may be, in the order to try: for an issuer with a path,
/// OAuth metadata and OpenID configuration with the path appended to the well-known
/// name, then OpenID configuration under the path; for one without, the two at the root.
pub fn metadata_urls(issuer: &str) -> Result<Vec<String>, String> {
    let url = Url::parse(issuer).map_err(|e| format!("the issuer `{issuer}` is not a URL: {e}"))?;
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/');
    Ok(if path.is_empty() {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server"),
            format!("{origin}/.well-known/openid-configuration"),
        ]
    } else {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}/.well-known/openid-configuration{path}"),
            format!("{origin}{path}/.well-known/openid-configuration"),
        ]
    })
}

/// The verification keys of a JWKS: public signature keys only (a shared secret has no
/// place in a published key set; an encryption key verifies nothing).
fn key_set(set: JwkSet) -> KeySet {
    let mut keys = KeySet {
        loaded: true,
        ..KeySet::default()
    };
    for jwk in set.keys {
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature)
            || matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_))
        {
            continue;
        }
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
            tracing::debug!("skipping a JWK that cannot verify: {:?}", jwk.common.key_id);
            continue;
        };
        let algorithm = jwk
            .common
            .key_algorithm
            .and_then(|a| Algorithm::try_from(a).ok());
        let key = Arc::new(Key {
            decoding,
            algorithm,
        });
        match jwk.common.key_id {
            Some(kid) => {
                keys.by_kid.insert(kid, key);
            }
            None => keys.anonymous.push(key),
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_looked_for_where_the_spec_says() {
        assert_eq!(
            metadata_urls("https://idp.example").unwrap(),
            [
                "https://idp.example/.well-known/oauth-authorization-server",
                "https://idp.example/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            metadata_urls("https://idp.example/tenant1/").unwrap(),
            [
                "https://idp.example/.well-known/oauth-authorization-server/tenant1",
                "https://idp.example/.well-known/openid-configuration/tenant1",
                "https://idp.example/tenant1/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn secrets_and_encryption_keys_are_not_verification_keys() {
        let set: JwkSet = serde_json::from_value(serde_json::json!({"keys": [
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "enc", "use": "enc", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "kid": "sig", "crv": "P-256", "alg": "ES256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
        ]}))
        .unwrap();
        let keys = key_set(set);
        assert_eq!(keys.by_kid.keys().collect::<Vec<_>>(), ["sig"]);
        assert_eq!(keys.by_kid["sig"].algorithm, Some(Algorithm::ES256));
        // A token without a kid may use the only key there is.
        assert!(keys.find(None).is_some());
        assert!(keys.find(Some("secret")).is_none());
    }
}

#[cfg(test)]
mod refresh_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A JWKS endpoint on loopback that counts its fetches.
    async fn counting_jwks() -> (String, Arc<AtomicUsize>) {
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = fetches.clone();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { r#"{"keys":[{"kty":"EC","kid":"k1","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"# }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/jwks"), fetches)
    }

    #[tokio::test]
    async fn a_flood_of_unknown_key_ids_fetches_the_keys_once() {
        let (jwks_uri, fetches) = counting_jwks().await;
        let cache = Arc::new(KeyCache::new(
            reqwest::Client::new(),
            "http://issuer.invalid".into(),
            Some(jwks_uri),
            Duration::from_secs(10),
            Duration::from_secs(3600),
        ));
        let lookups = (0..50).map(|n| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.key(Some(&format!("made-up-{n}"))).await })
        });
        for lookup in lookups {
            assert!(matches!(lookup.await.unwrap(), KeyLookup::Unknown));
        }
        assert!(matches!(cache.key(Some("k1")).await, KeyLookup::Found(_)));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_unreachable_issuer_is_unavailable_not_unknown() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let cache = KeyCache::new(
            reqwest::Client::new(),
            dead.clone(),
            None,
            Duration::from_secs(10),
            Duration::from_secs(3600),
        );
        match cache.key(Some("k1")).await {
            KeyLookup::Unavailable(why) => assert!(why.contains(&dead), "{why}"),
            _ => panic!("expected the keys to be unavailable"),
        }
        // Within the refresh interval the issuer is not asked again, and still unavailable.
        assert!(matches!(
            cache.key(Some("k1")).await,
            KeyLookup::Unavailable(_)
        ));
    }
}

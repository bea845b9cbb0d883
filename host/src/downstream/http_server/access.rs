//! Who may talk to the HTTP listener. Checked on every request before anything else:
//! the `Origin` (a web page must not drive a local MCP server: DNS rebinding), the
//! `Host` when bound to loopback (the same attack, seen from the other side), and the
//! bearer token when one is configured.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, HOST, ORIGIN, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use subtle::ConstantTimeEq;
use url::Url;

use super::reply::rpc_error;
use crate::wire::jsonrpc::INVALID_REQUEST;

/// The listener's access rules.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    /// Origins allowed besides loopback ones, as `scheme://host[:port]`, lowercase;
    /// `*` allows any.
    pub allowed_origins: Vec<String>,
    /// Check `Host` against loopback names (and the allowed origins' hosts).
    pub loopback_only_host: bool,
    /// The token clients must present as `Authorization: Bearer ...`.
    pub token: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum Denied {
    Origin(String),
    Host(String),
    Token,
}

impl AccessPolicy {
    fn check(&self, headers: &HeaderMap) -> Result<(), Denied> {
        if let Some(origin) = headers.get(ORIGIN) {
            let origin = origin.to_str().unwrap_or("").trim().to_ascii_lowercase();
            if !self.origin_allowed(&origin) {
                return Err(Denied::Origin(origin));
            }
        }
        if self.loopback_only_host
            && let Some(host) = headers.get(HOST)
        {
            let host = host.to_str().unwrap_or("").trim().to_ascii_lowercase();
            if !self.host_allowed(&host) {
                return Err(Denied::Host(host));
            }
        }
        if let Some(token) = &self.token {
            let presented = headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer_token)
                .unwrap_or("");
            // Constant time, so the token cannot be guessed byte by byte from timings.
            if !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
                return Err(Denied::Token);
            }
        }
        Ok(())
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        if self.allowed_origins.iter().any(|a| a == "*" || a == origin) {
            return true;
        }
        Url::parse(origin)
            .ok()
            .and_then(|url| url.host_str().map(is_loopback_host))
            .unwrap_or(false)
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = strip_port(host);
        is_loopback_host(name)
            || self.allowed_origins.iter().any(|origin| {
                origin == "*"
                    || Url::parse(origin)
                        .ok()
                        .and_then(|url| url.host_str().map(|h| h == name))
                        .unwrap_or(false)
            })
    }
}

/// `localhost`, `127.0.0.0/8`, `::1` (bracketed or not).
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `example.com` from `example.com:8080`, `[::1]` from `[::1]:8080`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(name, _)| &host[..name.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The axum middleware applying the policy.
pub async fn enforce(
    State(policy): State<Arc<AccessPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    match policy.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(Denied::Origin(origin)) => {
            tracing::warn!("refused a request from origin `{origin}` (see --allow-origin)");
            rpc_error(
                StatusCode::FORBIDDEN,
                None,
                INVALID_REQUEST,
                "origin not allowed",
            )
        }
        Err(Denied::Host(host)) => {
            tracing::warn!("refused a request for host `{host}` (DNS rebinding protection)");
            rpc_error(
                StatusCode::FORBIDDEN,
                None,
                INVALID_REQUEST,
                "host not allowed",
            )
        }
        Err(Denied::Token) => {
            let mut response = rpc_error(
                StatusCode::UNAUTHORIZED,
                None,
                INVALID_REQUEST,
                "a valid bearer token is required",
            )
            .into_response();
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn loopback_and_missing_origins_pass_foreign_ones_do_not() {
        let policy = AccessPolicy::default();
        assert_eq!(policy.check(&headers(&[])), Ok(()));
        assert_eq!(
            policy.check(&headers(&[("origin", "http://localhost:5173")])),
            Ok(())
        );
        assert_eq!(
            policy.check(&headers(&[("origin", "http://127.0.0.1")])),
            Ok(())
        );
        assert_eq!(
            policy.check(&headers(&[("origin", "http://[::1]:3000")])),
            Ok(())
        );
        assert!(matches!(
            policy.check(&headers(&[("origin", "https://evil.example")])),
            Err(Denied::Origin(_))
        ));
        assert!(matches!(
            policy.check(&headers(&[("origin", "null")])),
            Err(Denied::Origin(_))
        ));
    }

    #[test]
    fn allow_listed_origin_passes() {
        let policy = AccessPolicy {
            allowed_origins: vec!["https://app.example".into()],
            loopback_only_host: true,
            token: None,
        };
        assert_eq!(
            policy.check(&headers(&[
                ("origin", "https://app.example"),
                ("host", "app.example")
            ])),
            Ok(())
        );
    }

    #[test]
    fn rebinding_host_is_refused_on_loopback() {
        let policy = AccessPolicy {
            loopback_only_host: true,
            ..Default::default()
        };
        assert_eq!(
            policy.check(&headers(&[("host", "127.0.0.1:8080")])),
            Ok(())
        );
        assert_eq!(policy.check(&headers(&[("host", "localhost")])), Ok(()));
        assert_eq!(policy.check(&headers(&[("host", "[::1]:9")])), Ok(()));
        assert!(matches!(
            policy.check(&headers(&[("host", "attacker.example:8080")])),
            Err(Denied::Host(_))
        ));
    }

    #[test]
    fn token_must_match_exactly() {
        let policy = AccessPolicy {
            token: Some("s3cret".into()),
            ..Default::default()
        };
        assert_eq!(
            policy.check(&headers(&[("authorization", "Bearer s3cret")])),
            Ok(())
        );
        assert_eq!(
            policy.check(&headers(&[("authorization", "Bearer s3cre")])),
            Err(Denied::Token)
        );
        assert_eq!(policy.check(&headers(&[])), Err(Denied::Token));
    }
}

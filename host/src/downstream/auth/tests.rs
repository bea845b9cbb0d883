use super::*;

fn config() -> AuthConfig {
    AuthConfig {
        issuer: "https://idp.example".into(),
        resource: "https://mcp.example/mcp".into(),
        scopes: vec!["mcp:tools".into(), "mcp:read".into()],
        scopes_supported: None,
        leeway_s: 30,
        jwks_uri: None,
        fetch_timeout_ms: 1000,
        jwks_min_refresh_ms: 1000,
    }
}

#[tokio::test]
async fn metadata_names_the_resource_its_issuer_and_scopes() {
    let server = ResourceServer::new(&config()).unwrap();
    let metadata: Value = serde_json::from_str(server.metadata()).unwrap();
    assert_eq!(
        metadata,
        serde_json::json!({
            "resource": "https://mcp.example/mcp",
            "authorization_servers": ["https://idp.example"],
            "scopes_supported": ["mcp:tools", "mcp:read"],
            "bearer_methods_supported": ["header"],
        })
    );
    assert_eq!(
        server.metadata_path(),
        "/.well-known/oauth-protected-resource/mcp"
    );
}

#[tokio::test]
async fn challenges_say_where_the_metadata_is_and_what_went_wrong() {
    let server = ResourceServer::new(&config()).unwrap();
    let metadata =
        "resource_metadata=\"https://mcp.example/.well-known/oauth-protected-resource/mcp\"";
    assert_eq!(
        server.challenge(&AuthError::Missing),
        format!("Bearer {metadata}, scope=\"mcp:tools mcp:read\"").as_str()
    );
    assert_eq!(
        server.challenge(&AuthError::InvalidToken("the token has expired".into())),
        format!(
            "Bearer {metadata}, scope=\"mcp:tools mcp:read\", error=\"invalid_token\", \
             error_description=\"the token has expired\""
        )
        .as_str()
    );
    assert_eq!(
        server.challenge(&AuthError::InsufficientScope(vec!["mcp:read".into()])),
        format!(
            "Bearer {metadata}, scope=\"mcp:tools mcp:read\", error=\"insufficient_scope\", \
             error_description=\"the token lacks the scope(s) mcp:read\""
        )
        .as_str()
    );
    assert_eq!(AuthError::Missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        AuthError::InsufficientScope(vec![]).status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_request_without_a_bearer_token_is_missing_one() {
    let server = ResourceServer::new(&config()).unwrap();
    let mut headers = HeaderMap::new();
    assert_eq!(server.authenticate(&headers).await, Err(AuthError::Missing));
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_static("Basic dXNlcjpwdw=="),
    );
    assert_eq!(server.authenticate(&headers).await, Err(AuthError::Missing));
    headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer not-a-jwt"));
    assert_eq!(
        server.authenticate(&headers).await,
        Err(AuthError::InvalidToken("not a JWT".into()))
    );
}

#[test]
fn scopes_come_from_scope_or_scp() {
    let claims = |v: Value| v.as_object().unwrap().clone();
    assert_eq!(
        granted_scopes(&claims(serde_json::json!({"scope": "a  b"}))),
        ["a", "b"]
    );
    assert_eq!(
        granted_scopes(&claims(serde_json::json!({"scp": ["a", "b"]}))),
        ["a", "b"]
    );
    assert!(granted_scopes(&claims(serde_json::json!({}))).is_empty());
}

#[test]
fn bad_settings_are_named() {
    let mut bad = config();
    bad.resource = "mcp.example/mcp".into();
    assert_eq!(
        ResourceServer::new(&bad).err().unwrap().to_string(),
        "[auth] `resource` must be an http:// or https:// URL, got `mcp.example/mcp`"
    );
    let mut bad = config();
    bad.scopes = vec!["a b".into()];
    assert_eq!(
        ResourceServer::new(&bad).err().unwrap().to_string(),
        "[auth] `a b`: a scope cannot contain spaces or quotes"
    );
}

#[test]
fn a_verified_token_is_remembered_until_it_expires_and_a_minute_at_most() {
    let verified = VerifiedTokens::default();
    let principal = Arc::new(Principal {
        issuer: "i".into(),
        subject: "s".into(),
        scopes: vec![],
        claims: Map::new(),
    });
    verified.insert("t1", principal.clone(), 1000, 1010);
    assert_eq!(verified.get("t1", 1009).as_deref(), Some(&*principal));
    assert!(verified.get("t1", 1010).is_none(), "expired");
    assert!(
        verified.get("t1", 1000).is_none(),
        "an expired entry is dropped"
    );
    verified.insert("t2", principal.clone(), 1000, 5000);
    assert!(verified.get("t2", 1059).is_some());
    assert!(verified.get("t2", 1060).is_none(), "at most a minute");
    for n in 0..VERIFIED_TOKENS + 1 {
        verified.insert(&format!("n{n}"), principal.clone(), 1000, 2000);
    }
    assert!(verified.lock().len() <= VERIFIED_TOKENS);
}

/// A JWKS on loopback serving one EC key under the key id the test sets.
async fn jwks_serving(kid: Arc<std::sync::Mutex<&'static str>>) -> String {
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let kid = *kid.lock().unwrap();
            async move {
                format!(
                    r#"{{"keys":[{{"kty":"EC","kid":"{kid}","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}}]}}"#
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/jwks")
}

/// Polls `kid` in `server`'s keys every 50 ms until `found` says so, for at most 10 s.
async fn until_key(server: &ResourceServer, kid: &str, found: bool) {
    for _ in 0..200 {
        let lookup = server.keys.key(Some(kid)).await;
        if matches!(lookup, KeyLookup::Found(_)) == found {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "key {kid} not {} within 10 s",
        if found { "found" } else { "gone" }
    );
}

#[tokio::test]
async fn a_key_the_issuer_withdraws_is_dropped_at_the_next_periodic_refresh() {
    let kid = Arc::new(std::sync::Mutex::new("k1"));
    let jwks_uri = jwks_serving(kid.clone()).await;
    let mut server = ResourceServer::new(&AuthConfig {
        jwks_uri: Some(jwks_uri),
        // No refresh on an unknown key id during the test: only the periodic one.
        jwks_min_refresh_ms: 3_600_000,
        ..config()
    })
    .unwrap();
    server.keys_refresh = Duration::from_millis(100);
    let server = Arc::new(server);
    server.start();
    until_key(&server, "k1", true).await;
    // The issuer rotates: k1 withdrawn, k2 published. No token names k2 yet.
    *kid.lock().unwrap() = "k2";
    until_key(&server, "k1", false).await;
    assert!(matches!(
        server.keys.key(Some("k2")).await,
        KeyLookup::Found(_)
    ));
}

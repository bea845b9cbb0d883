//! What checking an OAuth access token costs per request once the issuer's keys are
//! cached (`[auth]`, docs/auth.md): signature, issuer, audience, expiry and scopes of
//! a real RS256 token from a real identity provider (tests/idp/idp.mjs, oidc-provider,
//! started here; needs `node` and tests/node_modules). Baseline in the same run: the
//! RSA signature check alone (jsonwebtoken's `decode` with the same key, no claims
//! checked), so what interpose adds on top is visible. A token is verified in full
//! once (`verify`: the first request with a token) and then remembered (until it
//! expires, a minute at most): `check_token` with the same token measures what every
//! later request of a client costs. Target: under 20 µs.

use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use criterion::{Criterion, criterion_group, criterion_main};

use interpose::downstream::auth::{AuthConfig, ResourceServer};

const RESOURCE: &str = "http://127.0.0.1:9/mcp";

/// The IdP process, stopped when dropped.
struct Idp(Child);

impl Drop for Idp {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

fn start_idp() -> Option<(Idp, String, u16)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/idp/idp.mjs");
    let child = Command::new("node")
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut idp = Idp(child);
    let mut line = String::new();
    BufReader::new(idp.0.stdout.take()?)
        .read_line(&mut line)
        .ok()?;
    let mut words = line.split_whitespace();
    (words.next() == Some("READY")).then_some(())?;
    let port = words.next()?.parse().ok()?;
    let issuer = words.next()?.to_owned();
    Some((idp, issuer, port))
}

async fn token(port: u16) -> String {
    let body = format!(
        "grant_type=client_credentials&scope=mcp%3Atools&resource={}",
        url::form_urlencoded::byte_serialize(RESOURCE.as_bytes()).collect::<String>()
    );
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/token"))
        .basic_auth("interpose-test", Some("interpose-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("the IdP answers")
        .bytes()
        .await
        .expect("a token response");
    let response: serde_json::Value = serde_json::from_slice(&response).expect("JSON");
    response["access_token"]
        .as_str()
        .expect("a token")
        .to_owned()
}

fn check_token(c: &mut Criterion) {
    let Some((_idp, issuer, port)) = start_idp() else {
        eprintln!("jwt bench skipped: cannot start tests/idp/idp.mjs (node, tests/node_modules)");
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let server = ResourceServer::new(&AuthConfig {
        issuer: issuer.clone(),
        resource: RESOURCE.into(),
        scopes: vec!["mcp:tools".into()],
        scopes_supported: None,
        leeway_s: 30,
        jwks_uri: None,
        fetch_timeout_ms: 10_000,
        jwks_min_refresh_ms: 10_000,
    })
    .expect("valid settings");
    let token = runtime.block_on(token(port));
    // The first check fetches the keys; every later one uses the cache.
    let principal = runtime
        .block_on(server.check_token(&token))
        .expect("the IdP's token is valid");
    assert_eq!(principal.subject, "interpose-test");

    let jwks = runtime.block_on(async {
        reqwest::get(format!("http://127.0.0.1:{port}/jwks"))
            .await
            .expect("the JWKS")
            .bytes()
            .await
            .expect("its body")
    });
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&jwks).expect("a JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0]).expect("an RSA key");
    let mut signature_only = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    signature_only.validate_exp = false;
    signature_only.validate_aud = false;
    signature_only.required_spec_claims.clear();

    let mut group = c.benchmark_group("access token check, keys cached");
    group.bench_function("RS256 signature only (jsonwebtoken)", |b| {
        b.iter(|| {
            black_box(
                jsonwebtoken::decode::<serde_json::Value>(&token, &key, &signature_only)
                    .expect("verifies"),
            )
        })
    });
    group.bench_function("ResourceServer::verify, first use of a token", |b| {
        b.iter(|| black_box(runtime.block_on(server.verify(&token)).expect("valid")))
    });
    group.bench_function("ResourceServer::check_token, token seen before", |b| {
        b.iter(|| black_box(runtime.block_on(server.check_token(&token)).expect("valid")))
    });
    group.finish();
}

criterion_group!(benches, check_token);
criterion_main!(benches);

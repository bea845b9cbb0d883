//! Small JSON documents fetched from an identity provider (its metadata, its keys, a
//! token), for the front door's token checks and the backends' credentials alike:
//! bounded in time by the caller and in size here, so a slow or hostile server can
//! neither hold a request nor fill the memory.

use futures::StreamExt;
use serde::de::DeserializeOwned;

use super::error_text::error_chain;

/// The largest document accepted from an identity provider.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Reads a JSON body of at most [`MAX_DOCUMENT_BYTES`]; `what` names it in errors
/// ("the JWKS at https://idp/jwks").
pub async fn read_json<T: DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, String> {
    let status = response.status();
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| format!("reading {what} failed: {}", error_chain(&e)))?;
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("{what} is larger than {MAX_DOCUMENT_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        let snippet: String = text.chars().take(200).collect();
        return Err(format!("{what} answered HTTP {status}: {snippet}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{what} is not the JSON expected: {e}"))
}

/// GETs a JSON document.
pub async fn get_json<T: DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    what: &str,
) -> Result<T, String> {
    let response = client
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("cannot fetch {what}: {}", error_chain(&e)))?;
    read_json(response, what).await
}

//! Upstream to a backend over the legacy HTTP+SSE transport (2024-11-05): one GET
//! stream carries everything the server sends; its first event, `endpoint`, names the
//! URL every client message is POSTed to. The stream is the session: when it ends, the
//! link closes.

use std::sync::Arc;

use futures::StreamExt;
use http::StatusCode;
use http::header::{ACCEPT, CONTENT_TYPE};
use tokio::sync::{mpsc, watch};
use url::Url;

use super::error_text::error_chain;
use super::http_client::HttpUpstreamConfig;
use crate::wire::framing::Frame;
use crate::wire::jsonrpc::{BACKEND_UNAVAILABLE, ErrorObject, Message};
use crate::wire::link::{CHANNEL_CAPACITY, Inbound, Link, Outbound};
use crate::wire::mcp_http::{self, EVENT_STREAM, SseReadError, read_events};

/// Opens the SSE stream to a legacy backend and links the relay to it.
pub fn connect(config: Arc<HttpUpstreamConfig>, max_message_bytes: usize) -> Link {
    let (in_tx, inbound) = mpsc::channel(CHANNEL_CAPACITY);
    let (outbound, out_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (endpoint_tx, endpoint_rx) = watch::channel(None);
    let reader = tokio::spawn(read_stream(
        config.clone(),
        max_message_bytes,
        in_tx.clone(),
        endpoint_tx,
    ));
    let writer = tokio::spawn(async move {
        write_loop(&config, out_rx, endpoint_rx, &in_tx).await;
        reader.abort();
        in_tx
            .send(Inbound::Closed("the session with the backend ended".into()))
            .await
            .ok();
    });
    Link {
        inbound,
        outbound,
        writer,
    }
}

/// What the reader learned about where to POST.
type Endpoint = Option<Result<Url, String>>;

async fn read_stream(
    config: Arc<HttpUpstreamConfig>,
    max_message_bytes: usize,
    in_tx: mpsc::Sender<Inbound>,
    endpoint_tx: watch::Sender<Endpoint>,
) {
    let url = &config.url;
    let why = match open_stream(&config).await {
        Err(why) => why,
        Ok(response) => {
            let mut events = Box::pin(read_events(response.bytes_stream(), max_message_bytes));
            loop {
                let event = match events.next().await {
                    None => break format!("the backend at {url} closed its SSE stream"),
                    Some(Err(SseReadError::TooLarge(limit))) => {
                        break format!("the backend sent an event over the {limit}-byte limit");
                    }
                    Some(Err(SseReadError::Stream(e))) => {
                        break format!("the SSE stream from {url} broke: {e}");
                    }
                    Some(Ok(event)) => event,
                };
                let data = event.data.unwrap_or_default();
                match event.event.as_deref() {
                    Some("endpoint") => {
                        endpoint_tx.send_replace(Some(resolve_endpoint(url, data.trim())));
                    }
                    None | Some("message") if !data.trim().is_empty() => {
                        for frame in mcp_http::frames_from_body(data.as_bytes(), max_message_bytes)
                        {
                            let inbound = Inbound::Frame {
                                frame,
                                related: None,
                                sessionless: None,
                                head: None,
                            };
                            if in_tx.send(inbound).await.is_err() {
                                return;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    };
    endpoint_tx.send_replace(Some(Err(why.clone())));
    in_tx.send(Inbound::Closed(why)).await.ok();
}

async fn open_stream(config: &HttpUpstreamConfig) -> Result<reqwest::Response, String> {
    let url = &config.url;
    let request = config
        .client
        .get(url.clone())
        .headers(config.headers.clone())
        .header(ACCEPT, EVENT_STREAM);
    let response = config
        .authorize(request)
        .await
        .send()
        .await
        .map_err(|e| format!("cannot reach the backend at {url}: {}", error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "the backend at {url} refused the SSE stream: HTTP {status}"
        ));
    }
    Ok(response)
}

/// The POST URL from the `endpoint` event. It must stay on the server we connected to,
/// so a backend cannot point our messages (and credentials) somewhere else.
fn resolve_endpoint(base: &Url, data: &str) -> Result<Url, String> {
    let endpoint = base
        .join(data)
        .map_err(|e| format!("the backend sent an invalid endpoint `{data}`: {e}"))?;
    let loopback_alias = |url: &Url| {
        url.host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .is_some_and(|h| {
                h == "localhost"
                    || h.parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            })
    };
    // `localhost` and `127.0.0.1` name the same server; anything else must match exactly.
    let same_server = endpoint.origin() == base.origin()
        || (loopback_alias(&endpoint)
            && loopback_alias(base)
            && endpoint.scheme() == base.scheme()
            && endpoint.port_or_known_default() == base.port_or_known_default());
    if !same_server {
        return Err(format!(
            "the backend's endpoint `{endpoint}` is not on {}; refused",
            base.origin().ascii_serialization()
        ));
    }
    Ok(endpoint)
}

async fn write_loop(
    config: &HttpUpstreamConfig,
    mut out_rx: mpsc::Receiver<Outbound>,
    mut endpoint_rx: watch::Receiver<Endpoint>,
    in_tx: &mpsc::Sender<Inbound>,
) {
    while let Some(Outbound { message, .. }) = out_rx.recv().await {
        let endpoint = endpoint_rx
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|endpoint| endpoint.clone());
        // Without an endpoint the reader has closed the link, with the reason.
        let Some(Ok(endpoint)) = endpoint else {
            return;
        };
        let request = config
            .client
            .post(endpoint.clone())
            .headers(config.headers.clone())
            .header(CONTENT_TYPE, mcp_http::JSON)
            .body(message.to_json());
        let response = config.authorize(request).await.send().await;
        let problem = match response {
            Ok(response) if response.status().is_success() => continue,
            Ok(response) if response.status() == StatusCode::NOT_FOUND => {
                in_tx
                    .send(Inbound::Closed(format!(
                        "the backend at {} ended the session (HTTP 404)",
                        config.url
                    )))
                    .await
                    .ok();
                return;
            }
            Ok(response) => format!("the backend answered HTTP {}", response.status()),
            Err(e) => format!("sending to {endpoint} failed: {}", error_chain(&e)),
        };
        // A request that could not be delivered is answered, so it does not hang.
        if let Message::Request { id, .. } = message {
            let error = ErrorObject::new(BACKEND_UNAVAILABLE, problem);
            let answer = Message::error_response(id.clone(), &error);
            let inbound = Inbound::Frame {
                frame: Frame::Message(answer),
                related: Some(id),
                sessionless: None,
                head: None,
            };
            in_tx.send(inbound).await.ok();
        } else {
            tracing::warn!("{problem}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_must_stay_on_the_same_origin() {
        let base = Url::parse("http://127.0.0.1:3001/sse").unwrap();
        assert_eq!(
            resolve_endpoint(&base, "/message?sessionId=abc")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:3001/message?sessionId=abc"
        );
        assert!(resolve_endpoint(&base, "http://evil.example/steal").is_err());
        assert!(resolve_endpoint(&base, "http://localhost:3001/message").is_ok());
        assert!(resolve_endpoint(&base, "http://localhost:3002/message").is_err());
    }
}

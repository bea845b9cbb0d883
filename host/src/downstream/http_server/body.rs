//! Reading a POST body, bounded in size and in time. It runs after the access check
//! (the middleware answers before any body byte is read), and a refusal is a JSON-RPC
//! error naming the request when its id can be read from the start of the body.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::StatusCode;
use http::header::CONTENT_LENGTH;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ServerState;
use super::reply::Rejection;
use crate::wire::jsonrpc::{INVALID_REQUEST, sniff_id};

/// How much of an oversized body is read to find its id.
const ID_PREFIX: usize = 64 * 1024;

/// A complete request body, at most `max_message_bytes` long, and its share of the
/// listener's budget for bodies, held while the request is handled.
pub struct PostBody(pub Bytes, pub BodyShare);

/// Bytes of the budget for request bodies being read or handled at once.
pub type BodyShare = Option<OwnedSemaphorePermit>;

/// Why a body was not read.
#[derive(Debug, PartialEq, Eq)]
enum BodyError {
    /// `size` is the declared length, or the bytes seen before giving up.
    TooLarge {
        size: usize,
        limit: usize,
    },
    TooSlow(Duration),
    /// Other bodies being read hold the whole budget.
    Busy(usize),
    /// The client went away or sent a broken chunk; nobody may be left to answer.
    Broken(String),
}

impl FromRequest<Arc<ServerState>> for PostBody {
    type Rejection = Response;

    async fn from_request(request: Request, state: &Arc<ServerState>) -> Result<Self, Response> {
        let limit = state.backend.max_message_bytes();
        let deadline = state.config.body_read_timeout;
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut body = BytesMut::new();
        let mut share = None;
        let chunks = request.into_body().into_data_stream();
        let budget = &state.body_budget;
        let read = read_bounded(chunks, &mut body, declared, limit, |len| {
            take_share(budget, &mut share, len)
        });
        let outcome = match tokio::time::timeout(deadline, read).await {
            Ok(outcome) => outcome,
            Err(_) => Err(BodyError::TooSlow(deadline)),
        };
        match outcome {
            Ok(()) => Ok(PostBody(body.freeze(), share)),
            Err(error) => Err(refusal(&error, &body).into_response()),
        }
    }
}

/// Adds `len` bytes to what `share` holds of the budget, or says the budget is spent.
fn take_share(budget: &Arc<Semaphore>, share: &mut BodyShare, len: usize) -> Result<(), BodyError> {
    let Ok(more) = u32::try_from(len) else {
        return Err(BodyError::Busy(len));
    };
    let more = budget
        .clone()
        .try_acquire_many_owned(more)
        .map_err(|_| BodyError::Busy(budget.available_permits()))?;
    match share {
        Some(held) => held.merge(more),
        None => *share = Some(more),
    }
    Ok(())
}

/// Appends the chunks to `body` until the end, or until it is known to be too large
/// (then `body` holds at least the prefix an id is sniffed from).
async fn read_bounded<S, E>(
    mut chunks: S,
    body: &mut BytesMut,
    declared: Option<usize>,
    limit: usize,
    mut reserve: impl FnMut(usize) -> Result<(), BodyError>,
) -> Result<(), BodyError>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let too_large = |size| BodyError::TooLarge { size, limit };
    let declared_over = declared.filter(|&n| n > limit);
    // Past the limit, only the prefix that holds the id is kept.
    let keep = if declared_over.is_some() {
        ID_PREFIX
    } else {
        limit + 1
    };
    let mut seen = 0usize;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| BodyError::Broken(e.to_string()))?;
        seen += chunk.len();
        let room = keep.saturating_sub(body.len());
        let kept = &chunk[..chunk.len().min(room)];
        reserve(kept.len())?;
        body.extend_from_slice(kept);
        if seen > limit {
            return Err(too_large(declared.unwrap_or(seen)));
        }
        if let Some(size) = declared_over
            && seen >= ID_PREFIX
        {
            return Err(too_large(size));
        }
    }
    match declared_over {
        Some(size) => Err(too_large(size)),
        None => Ok(()),
    }
}

fn refusal(error: &BodyError, read: &[u8]) -> Rejection {
    let id = || sniff_id(&String::from_utf8_lossy(&read[..read.len().min(ID_PREFIX)]));
    match *error {
        BodyError::TooLarge { size, limit } => {
            tracing::warn!("refused a request body of {size} bytes (limit {limit})");
            Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                INVALID_REQUEST,
                format!("message of {size} bytes exceeds the limit of {limit} bytes"),
            )
            .with_id(id())
            .with_data(serde_json::json!({ "size": size, "limit": limit }))
        }
        BodyError::TooSlow(deadline) => {
            tracing::warn!("a client did not send its request body within {deadline:?}");
            Rejection::new(
                StatusCode::REQUEST_TIMEOUT,
                INVALID_REQUEST,
                format!("the request body did not arrive within {deadline:?}"),
            )
            .with_id(id())
        }
        BodyError::Busy(available) => {
            tracing::warn!(
                "refused a request body: the budget for bodies being read is spent ({available} bytes left; see --body-budget-mib)"
            );
            Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                INVALID_REQUEST,
                "the proxy is reading too many request bodies at once; try again later",
            )
            .with_id(id())
        }
        BodyError::Broken(ref why) => {
            tracing::debug!("could not read a request body: {why}");
            Rejection::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                format!("could not read the request body: {why}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(
        chunks: &[&str],
        declared: Option<usize>,
        limit: usize,
    ) -> (Result<(), BodyError>, String) {
        let stream = futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c.as_bytes())))
                .collect::<Vec<_>>(),
        );
        let mut body = BytesMut::new();
        let outcome = read_bounded(stream, &mut body, declared, limit, |_| Ok(())).await;
        (outcome, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let (outcome, body) = read(&["{\"id\":", "1}"], Some(8), 8).await;
        assert_eq!(outcome, Ok(()));
        assert_eq!(body, "{\"id\":1}");
    }

    #[tokio::test]
    async fn an_undeclared_body_over_the_limit_stops_with_its_prefix() {
        let (outcome, body) = read(&[r#"{"id":"a","x":""#, "yyyyyyyyyy", "zzzz"], None, 20).await;
        assert_eq!(
            outcome,
            Err(BodyError::TooLarge {
                size: 25,
                limit: 20
            })
        );
        assert!(body.starts_with(r#"{"id":"a""#));
        let rejection = refusal(&outcome.unwrap_err(), body.as_bytes());
        assert_eq!(rejection.id.unwrap().get(), r#""a""#);
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_after_the_prefix() {
        let (outcome, _) = read(&[r#"{"id":7}"#], Some(1_000_000), 100).await;
        assert_eq!(
            outcome,
            Err(BodyError::TooLarge {
                size: 1_000_000,
                limit: 100
            })
        );
    }
}

//! Links join the session layer to its peers. Whatever the wire (stdio, a child
//! process, an in-process pipe, HTTP), a peer is a [`Link`]: a channel of frames coming
//! in and a channel of messages going out, each served by its own task. The transports
//! on both sides (`downstream`, `upstream`) make links; the session layer joins them.

use std::sync::Arc;

use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use serde::Serialize;
use serde_json::{Map, Value};

use super::framing::{Frame, LineReader};
use super::jsonrpc::{Message, RawId};

/// What the downstream side knows about the client of a session being opened, for the
/// backend side.
#[derive(Debug, Default, Clone)]
pub struct ConnectContext {
    /// The client's `Authorization` header, present only when the operator chose to
    /// pass it on to the backend.
    pub client_authorization: Option<http::HeaderValue>,
    /// Who the client is, as its access token says (`[auth]`); none for stdio and for
    /// listeners without `[auth]`. Kept for the session's whole life.
    pub principal: Option<Arc<Principal>>,
    /// With `[replicas]`, for a session that may continue on another replica: what it
    /// records for the handoff, or (resumed) what another replica recorded.
    pub handoff: Option<Arc<crate::wire::handoff::Handoff>>,
    /// For one HTTP backend of such a session: its backend session, to fill in or to
    /// continue.
    pub backend_session: Option<Arc<crate::wire::handoff::BackendSession>>,
}

/// Who made a request, as its access token says (the front door checked it): kept
/// with the session, to be lent to plugins.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Principal {
    /// `iss`.
    pub issuer: String,
    /// `sub`, or for a token without one, `client_id`.
    pub subject: String,
    /// The scopes granted (`scope`, space-separated, or `scp`).
    pub scopes: Vec<String>,
    /// Every claim of the token.
    pub claims: Map<String, Value>,
}

impl Principal {
    /// Whether both name the same party (a session stays with whoever opened it).
    pub fn same_party(&self, other: &Principal) -> bool {
        self.issuer == other.issuer && self.subject == other.subject
    }
}

/// How many messages may queue towards one peer before the sender waits.
pub(crate) const CHANNEL_CAPACITY: usize = 1024;

/// The 2026-07-28 protocol headers an HTTP client sent with a sessionless request
/// (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`), exactly as sent,
/// so an HTTP backend gets them unchanged (possibly none at all).
pub type ProtocolHeaders = Arc<http::HeaderMap>;

/// What a sessionless (2026-07-28) HTTP client's request brings besides itself.
/// Such clients share one session, so what differs between them travels with each
/// request instead of with the session.
#[derive(Debug, Clone)]
pub struct Sessionless {
    /// Its protocol headers, exactly as sent (see [`ProtocolHeaders`]).
    pub headers: ProtocolHeaders,
    /// Who sent it, when the endpoint authenticates its clients (`[auth]`): plugins
    /// are lent this request's principal, not the shared session's (which has none).
    pub principal: Option<Arc<Principal>>,
}

/// How an HTTP backend answered one request: the status and whether the body was JSON
/// (else an SSE stream), so a sessionless client can get the answer as the backend
/// gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerHead {
    pub status: http::StatusCode,
    pub json: bool,
}

/// Something that arrived from a peer.
#[derive(Debug)]
pub enum Inbound {
    Frame {
        frame: Frame,
        /// For transports that know it (an HTTP response stream): the id, in this
        /// link's id space, of the request this message belongs to.
        related: Option<RawId>,
        /// For a request from a sessionless HTTP client: its headers and principal.
        sessionless: Option<Sessionless>,
        /// For an answer from an HTTP backend: how the backend sent it.
        head: Option<AnswerHead>,
    },
    /// The peer is gone; no more frames will come. The text says why, for errors and logs.
    Closed(String),
}

/// A message to send to a peer.
#[derive(Debug)]
pub struct Outbound {
    pub message: Message,
    /// The id, in the peer's id space, of the request this message belongs to, so a
    /// transport with several streams (HTTP) can pick the right one. `None` for
    /// messages that belong to no request.
    pub related: Option<RawId>,
    /// The headers to send with it instead of deriving them (see [`ProtocolHeaders`]).
    pub headers: Option<ProtocolHeaders>,
    /// For an answer the backend sent as it is: how it was sent (see [`AnswerHead`]).
    pub head: Option<AnswerHead>,
}

impl Outbound {
    pub fn new(message: Message) -> Self {
        Outbound {
            message,
            related: None,
            headers: None,
            head: None,
        }
    }
}

/// One peer of the relay.
pub struct Link {
    pub inbound: mpsc::Receiver<Inbound>,
    pub outbound: mpsc::Sender<Outbound>,
    /// Ends when everything sent has been written (or writing failed).
    pub writer: JoinHandle<()>,
}

/// Serves a newline-delimited JSON byte stream as a [`Link`]. `peer` names it in logs;
/// `closed` describes the end of the stream once the reader hits EOF.
pub fn line_link<R, W, C>(
    reader: R,
    writer: W,
    max_message_bytes: usize,
    peer: &'static str,
    closed: C,
) -> Link
where
    R: AsyncBufRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
    C: Future<Output = String> + Send + 'static,
{
    let (in_tx, inbound) = mpsc::channel(CHANNEL_CAPACITY);
    let (outbound, out_rx) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let mut lines = LineReader::new(reader, max_message_bytes);
        let end = loop {
            match lines.next().await {
                Ok(Some(frames)) => {
                    for frame in frames {
                        if in_tx
                            .send(Inbound::Frame {
                                frame,
                                related: None,
                                sessionless: None,
                                head: None,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
                Ok(None) => break closed.await,
                Err(e) => break format!("reading from {peer} failed: {e}"),
            };
        };
        in_tx.send(Inbound::Closed(end)).await.ok();
    });
    let writer = tokio::spawn(async move {
        if let Err(e) = write_lines(writer, out_rx).await {
            tracing::debug!("writing to {peer} failed: {e}");
        }
    });
    Link {
        inbound,
        outbound,
        writer,
    }
}

/// Writes messages from `rx` to `out`, one line each, flushing whenever the queue is
/// empty so pipelined messages share a write. Returns when `rx` closes or `out` fails.
pub async fn write_lines<W: AsyncWrite + Unpin>(
    mut out: W,
    mut rx: mpsc::Receiver<Outbound>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(8 * 1024);
    while let Some(first) = rx.recv().await {
        buf.clear();
        first.message.write_line(&mut buf);
        while buf.len() < 64 * 1024 {
            match rx.try_recv() {
                Ok(next) => next.message.write_line(&mut buf),
                Err(_) => break,
            }
        }
        out.write_all(&buf).await?;
        out.flush().await?;
    }
    out.shutdown().await.ok();
    Ok(())
}

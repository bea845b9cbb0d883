//! Newline-delimited JSON framing for byte streams (stdio, child processes, in-process
//! pipes), with a cap on line length. A bad or over-long line becomes a [`Frame`] the
//! relay can answer; the stream goes on (rmcp's codec ends it at the first bad line).

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::jsonrpc::{Message, ParseError, Parsed, RawId, sniff_id};
use crate::transport::Outbound;

/// Default cap on one message: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// How much of an over-long line is kept to find its id.
const SNIFF_PREFIX_BYTES: usize = 64 * 1024;

/// One unit read from a peer.
#[derive(Debug)]
pub enum Frame {
    Message(Message),
    /// The line was not a valid JSON-RPC message; `id` is its id when it could be found.
    Malformed {
        error: ParseError,
        id: Option<RawId>,
    },
    /// The line was longer than the cap and was discarded.
    TooLong {
        len: usize,
        limit: usize,
        id: Option<RawId>,
    },
}

/// Reads frames from newline-delimited JSON.
pub struct LineReader<R> {
    inner: R,
    max_len: usize,
    line: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub fn new(inner: R, max_len: usize) -> Self {
        LineReader {
            inner,
            max_len,
            line: Vec::new(),
        }
    }

    /// The next frames (several for a batch), or `None` at end of stream.
    pub async fn next(&mut self) -> std::io::Result<Option<Vec<Frame>>> {
        loop {
            self.line.clear();
            let Some(len) = self.read_line().await? else {
                return Ok(None);
            };
            if len > self.max_len {
                let prefix = String::from_utf8_lossy(&self.line);
                let id = sniff_id(&prefix);
                return Ok(Some(vec![Frame::TooLong {
                    len,
                    limit: self.max_len,
                    id,
                }]));
            }
            let text = match std::str::from_utf8(&self.line) {
                Ok(text) => text.trim_end_matches('\r'),
                Err(_) => {
                    let error = ParseError::Json("message is not valid UTF-8".into());
                    return Ok(Some(vec![Frame::Malformed { error, id: None }]));
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            return Ok(Some(parse_frames(text)));
        }
    }

    /// Reads up to the next newline into `self.line` (keeping at most a sniffing prefix
    /// once the cap is passed) and returns the line's full length, or `None` at EOF.
    async fn read_line(&mut self) -> std::io::Result<Option<usize>> {
        let mut len = 0usize;
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                return Ok((len > 0).then_some(len));
            }
            let (chunk, done) = match memchr::memchr(b'\n', available) {
                Some(pos) => (&available[..pos], Some(pos + 1)),
                None => (available, None),
            };
            let keep_limit = if len + chunk.len() > self.max_len {
                SNIFF_PREFIX_BYTES
            } else {
                usize::MAX
            };
            let room = keep_limit.saturating_sub(self.line.len());
            if room > 0 {
                self.line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            if self.line.len() > keep_limit {
                self.line.truncate(keep_limit);
            }
            len += chunk.len();
            let consumed = done.unwrap_or(available.len());
            self.inner.consume(consumed);
            if done.is_some() {
                return Ok(Some(len));
            }
        }
    }
}

/// Turns one line of text into frames.
pub fn parse_frames(text: &str) -> Vec<Frame> {
    let malformed = |(error, id)| Frame::Malformed { error, id };
    match Message::parse(text) {
        Ok(Parsed::One(message)) => vec![Frame::Message(message)],
        Ok(Parsed::Batch(items)) => items
            .into_iter()
            .map(|item| item.map(Frame::Message).unwrap_or_else(malformed))
            .collect(),
        Err(e) => vec![malformed(e)],
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &str, max: usize) -> Vec<Frame> {
        let mut reader = LineReader::new(input.as_bytes(), max);
        let mut all = Vec::new();
        while let Some(batch) = reader.next().await.unwrap() {
            all.extend(batch);
        }
        all
    }

    #[tokio::test]
    async fn bad_line_does_not_end_the_stream() {
        let input = "{\"jsonrpc\":\"2.0\",\"method\":\"a\"}\nnot json\n\n{\"jsonrpc\":\"2.0\",\"method\":\"b\"}";
        let got = frames(input, 1024).await;
        assert_eq!(got.len(), 3);
        assert!(matches!(&got[0], Frame::Message(m) if m.method() == Some("a")));
        assert!(matches!(&got[1], Frame::Malformed { .. }));
        assert!(matches!(&got[2], Frame::Message(m) if m.method() == Some("b")));
    }

    #[tokio::test]
    async fn over_long_line_is_reported_with_its_id_and_skipped() {
        let big = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"x\",\"params\":{{\"s\":\"{}\"}}}}\n{{\"jsonrpc\":\"2.0\",\"method\":\"after\"}}\n",
            "a".repeat(5000)
        );
        let got = frames(&big, 1000).await;
        assert_eq!(got.len(), 2);
        match &got[0] {
            Frame::TooLong { len, limit, id } => {
                assert!(*len > 5000);
                assert_eq!(*limit, 1000);
                assert_eq!(id.as_ref().unwrap().get(), "42");
            }
            other => panic!("expected TooLong, got {other:?}"),
        }
        assert!(matches!(&got[1], Frame::Message(m) if m.method() == Some("after")));
    }

    #[tokio::test]
    async fn crlf_line_endings_are_accepted() {
        let got = frames("{\"jsonrpc\":\"2.0\",\"method\":\"a\"}\r\n", 1024).await;
        assert!(matches!(&got[0], Frame::Message(_)));
    }
}

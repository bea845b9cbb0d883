//! Newline-delimited JSON framing for byte streams (stdio, child processes, in-process
//! pipes), with a cap on line length. A bad or over-long line becomes a [`Frame`] the
//! relay can answer; the stream goes on (rmcp's codec ends it at the first bad line).

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::jsonrpc::{Message, ParseError, Parsed, RawId, sniff_id};

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

/// Reads newline-terminated lines of bytes while holding at most a bounded part of any
/// one line: a line longer than `max_len` is consumed to its end but only its first
/// `keep_when_over` bytes are kept. Used for JSON-RPC messages and for a backend's stderr.
pub struct BoundedLineReader<R> {
    inner: R,
    max_len: usize,
    keep_when_over: usize,
    line: Vec<u8>,
}

/// One line read by [`BoundedLineReader`], without its newline.
#[derive(Debug)]
pub struct BoundedLine<'a> {
    /// The line, or its first bytes when it was over the limit.
    pub kept: &'a [u8],
    /// The line's full length.
    pub len: usize,
}

impl BoundedLine<'_> {
    /// Whether bytes of the line were dropped.
    pub fn is_cut(&self) -> bool {
        self.kept.len() < self.len
    }
}

impl<R: AsyncBufRead + Unpin> BoundedLineReader<R> {
    pub fn new(inner: R, max_len: usize, keep_when_over: usize) -> Self {
        BoundedLineReader {
            inner,
            max_len,
            keep_when_over,
            line: Vec::new(),
        }
    }

    /// Reads up to the next newline (or the end of the stream), or `None` at EOF.
    pub async fn next_line(&mut self) -> std::io::Result<Option<BoundedLine<'_>>> {
        self.line.clear();
        let mut len = 0usize;
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                if len == 0 {
                    return Ok(None);
                }
                break;
            }
            let (chunk, done) = match memchr::memchr(b'\n', available) {
                Some(pos) => (&available[..pos], Some(pos + 1)),
                None => (available, None),
            };
            let keep_limit = if len + chunk.len() > self.max_len {
                self.keep_when_over
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
                break;
            }
        }
        Ok(Some(BoundedLine {
            kept: &self.line,
            len,
        }))
    }
}

/// Reads frames from newline-delimited JSON.
pub struct LineReader<R> {
    lines: BoundedLineReader<R>,
    max_len: usize,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub fn new(inner: R, max_len: usize) -> Self {
        LineReader {
            lines: BoundedLineReader::new(inner, max_len, SNIFF_PREFIX_BYTES),
            max_len,
        }
    }

    /// The next frames (several for a batch), or `None` at end of stream.
    pub async fn next(&mut self) -> std::io::Result<Option<Vec<Frame>>> {
        loop {
            // A line already whole in the reader's buffer is parsed where it lies: its
            // payload is copied once, into the message, not first into a line buffer.
            let available = self.lines.inner.fill_buf().await?;
            if let Some(end) = memchr::memchr(b'\n', available).filter(|end| *end <= self.max_len) {
                let frames = frames_of_line(&available[..end]);
                self.lines.inner.consume(end + 1);
                match frames {
                    Some(frames) => return Ok(Some(frames)),
                    None => continue,
                }
            }
            let Some(line) = self.lines.next_line().await? else {
                return Ok(None);
            };
            if line.len > self.max_len {
                let prefix = String::from_utf8_lossy(line.kept);
                let id = sniff_id(&prefix);
                return Ok(Some(vec![Frame::TooLong {
                    len: line.len,
                    limit: self.max_len,
                    id,
                }]));
            }
            if let Some(frames) = frames_of_line(line.kept) {
                return Ok(Some(frames));
            }
        }
    }
}

/// The frames of one line within the length cap; `None` for a blank line.
fn frames_of_line(bytes: &[u8]) -> Option<Vec<Frame>> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.trim_end_matches('\r'),
        Err(_) => return Some(vec![not_utf8(bytes)]),
    };
    (!text.trim().is_empty()).then(|| parse_frames(text))
}

/// The frame for a message that is not UTF-8, with its id when one can still be read.
pub fn not_utf8(bytes: &[u8]) -> Frame {
    let error = ParseError::Json("message is not valid UTF-8".into());
    let id = sniff_id(&String::from_utf8_lossy(bytes));
    Frame::Malformed { error, id }
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
    async fn bounded_reader_keeps_only_a_prefix_of_a_line_without_end() {
        use tokio::io::AsyncReadExt;
        // 8 MiB with no newline, then EOF: consumed whole, 100 bytes kept.
        let endless = tokio::io::BufReader::new(tokio::io::repeat(b'x').take(8 << 20));
        let mut lines = BoundedLineReader::new(endless, 1000, 100);
        let line = lines.next_line().await.unwrap().unwrap();
        assert_eq!(line.len, 8 << 20);
        assert_eq!(line.kept.len(), 100);
        assert!(line.is_cut());
        assert!(lines.next_line().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn bounded_reader_passes_bytes_that_are_not_utf8_and_goes_on() {
        let input: &[u8] = b"bad \xff byte\r\nnext\nlast without newline";
        let mut lines = BoundedLineReader::new(input, 1000, 100);
        let mut got = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            assert!(!line.is_cut());
            got.push(line.kept.to_vec());
        }
        assert_eq!(
            got,
            [&b"bad \xff byte\r"[..], b"next", b"last without newline"]
        );
    }

    #[tokio::test]
    async fn message_that_is_not_utf8_keeps_its_id() {
        let got = frames_bytes(b"{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\"\xff\"}\n").await;
        match &got[0] {
            Frame::Malformed { id, .. } => assert_eq!(id.as_ref().unwrap().get(), "7"),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    async fn frames_bytes(input: &[u8]) -> Vec<Frame> {
        let mut reader = LineReader::new(input, 1024);
        let mut all = Vec::new();
        while let Some(batch) = reader.next().await.unwrap() {
            all.extend(batch);
        }
        all
    }

    #[tokio::test]
    async fn crlf_line_endings_are_accepted() {
        let got = frames("{\"jsonrpc\":\"2.0\",\"method\":\"a\"}\r\n", 1024).await;
        assert!(matches!(&got[0], Frame::Message(_)));
    }
}

//! One SSE stream of a downstream session: the events it carried, kept in a bounded
//! buffer so a client that lost its connection can resume with `Last-Event-ID`, and the
//! live connection (if any) they are written to.
//!
//! Event ids are `{stream}-{sequence}`: unique within the session, and they name the
//! stream, so a resuming GET gets only what its own stream missed.

use std::collections::VecDeque;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::transport::mcp_http::sse_event;

/// Events kept for replay per stream, and their total size.
const REPLAY_EVENTS: usize = 256;
const REPLAY_BYTES: usize = 8 * 1024 * 1024;
/// Events that may wait for a slow connection before it is dropped (the client can
/// resume from the replay buffer).
const LIVE_CAPACITY: usize = REPLAY_EVENTS * 2;

/// How a stream labels its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStyle {
    /// Streamable HTTP with sessions: `id:` on every event, resumable.
    Resumable,
    /// Streamable HTTP without a session (2026-07-28): no ids, nothing to resume.
    Plain,
    /// Legacy HTTP+SSE: `event: message`, no ids.
    Legacy,
}

pub struct EventStream {
    id: u64,
    style: EventStyle,
    next_seq: u64,
    buffer: VecDeque<(u64, Bytes)>,
    buffered_bytes: usize,
    live: Option<mpsc::Sender<Bytes>>,
    /// The highest sequence number handed to a live connection.
    delivered: u64,
    /// Requests whose answers are still due on this stream.
    pub open_requests: usize,
    finished: bool,
}

/// The receiving end of a stream, for one HTTP response body.
pub type LiveEvents = mpsc::Receiver<Bytes>;

impl EventStream {
    pub fn new(id: u64, style: EventStyle) -> Self {
        EventStream {
            id,
            style,
            next_seq: 1,
            buffer: VecDeque::new(),
            buffered_bytes: 0,
            live: None,
            delivered: 0,
            open_requests: 0,
            finished: false,
        }
    }

    /// Adds one message (JSON text) to the stream.
    pub fn push(&mut self, data: &str) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let event = match self.style {
            EventStyle::Resumable => sse_event(Some(&event_id(self.id, seq)), None, data),
            EventStyle::Plain => sse_event(None, None, data),
            EventStyle::Legacy => sse_event(None, Some("message"), data),
        };
        if let Some(live) = &self.live {
            match live.try_send(event.clone()) {
                Ok(()) => self.delivered = seq,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(
                        stream = self.id,
                        "a client is not reading its event stream; dropping the connection"
                    );
                    self.live = None;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => self.live = None,
            }
        }
        if self.style == EventStyle::Resumable || self.live.is_none() {
            self.keep(seq, event);
        }
    }

    fn keep(&mut self, seq: u64, event: Bytes) {
        self.buffered_bytes += event.len();
        self.buffer.push_back((seq, event));
        while self.buffer.len() > REPLAY_EVENTS || self.buffered_bytes > REPLAY_BYTES {
            match self.buffer.pop_front() {
                Some((_, dropped)) => self.buffered_bytes -= dropped.len(),
                None => break,
            }
        }
    }

    /// Connects a new listener, replacing any previous one. It first gets the events
    /// after `after` (by default, those no listener has had yet), then live ones; for a
    /// finished stream, only the replay.
    pub fn attach(&mut self, after: Option<u64>) -> LiveEvents {
        let (tx, rx) = mpsc::channel(LIVE_CAPACITY);
        let after = after.unwrap_or(self.delivered);
        if let Some((oldest, _)) = self.buffer.front()
            && *oldest > after + 1
        {
            tracing::warn!(
                stream = self.id,
                "events {}..{} are no longer buffered; resuming after a gap",
                after + 1,
                oldest - 1
            );
        }
        for (seq, event) in &self.buffer {
            if *seq > after && tx.try_send(event.clone()).is_ok() {
                self.delivered = self.delivered.max(*seq);
            }
        }
        if self.style != EventStyle::Resumable {
            self.buffer.clear();
            self.buffered_bytes = 0;
        }
        self.live = (!self.finished).then_some(tx);
        rx
    }

    /// No more events will come: the live connection ends once it has what was sent.
    pub fn finish(&mut self) {
        self.finished = true;
        self.live = None;
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether a client connection is reading this stream now.
    pub fn has_listener(&self) -> bool {
        self.live.as_ref().is_some_and(|live| !live.is_closed())
    }
}

pub fn event_id(stream: u64, seq: u64) -> String {
    format!("{stream}-{seq}")
}

/// `(stream, sequence)` from an event id of ours.
pub fn parse_event_id(text: &str) -> Option<(u64, u64)> {
    let (stream, seq) = text.trim().split_once('-')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &mut LiveEvents) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(event) = rx.try_recv() {
            out.push(String::from_utf8(event.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn resumes_after_the_last_event_seen() {
        let mut stream = EventStream::new(3, EventStyle::Resumable);
        let mut first = stream.attach(None);
        stream.push("{\"a\":1}");
        stream.push("{\"a\":2}");
        assert_eq!(drain(&mut first).len(), 2);
        drop(first);
        stream.push("{\"a\":3}");
        let mut resumed = stream.attach(parse_event_id("3-1").map(|(_, seq)| seq));
        let got = drain(&mut resumed);
        assert_eq!(got.len(), 2);
        assert!(got[0].starts_with("id: 3-2\n"));
        assert!(got[1].starts_with("id: 3-3\n"));
    }

    #[test]
    fn events_sent_with_no_listener_wait_for_one() {
        let mut stream = EventStream::new(0, EventStyle::Legacy);
        stream.push("{}");
        let mut rx = stream.attach(None);
        assert_eq!(
            drain(&mut rx),
            vec!["event: message\ndata: {}\n\n".to_owned()]
        );
    }

    #[test]
    fn replay_buffer_is_bounded() {
        let mut stream = EventStream::new(1, EventStyle::Resumable);
        for _ in 0..(REPLAY_EVENTS + 10) {
            stream.push("{}");
        }
        let mut rx = stream.attach(Some(0));
        assert_eq!(drain(&mut rx).len(), REPLAY_EVENTS);
    }

    #[test]
    fn finished_stream_replays_then_ends() {
        let mut stream = EventStream::new(1, EventStyle::Resumable);
        stream.push("{}");
        stream.finish();
        let mut rx = stream.attach(Some(0));
        assert_eq!(drain(&mut rx).len(), 1);
        assert!(rx.try_recv().is_err());
        assert!(!stream.has_listener());
    }
}

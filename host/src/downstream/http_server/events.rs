//! One SSE stream of a downstream session: its events, kept in a buffer that the
//! connection reading the stream pulls from, so a client that lost its connection can
//! resume with `Last-Event-ID`.
//!
//! Event ids are `{stream}-{sequence}`: unique within the session, and they name the
//! stream, so a resuming GET gets only what its own stream missed.
//!
//! An event no connection has taken yet is never evicted: a slow reader slows its
//! session down instead (see `Session::make_room`), and one that stops reading gets,
//! after a while, an error in place of each answer it did not read, never a silent gap.
//! Events already taken are kept for replay within per-stream bounds and a budget
//! shared by every stream of the listener ([`ReplayBudget`]), oldest evicted first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::sync::Notify;

use crate::wire::jsonrpc::{ErrorObject, INTERNAL_ERROR, Message, RawId};
use crate::wire::link::AnswerHead;
use crate::wire::mcp_http::sse_event;

/// The standalone stream's id; request streams count up from 1.
pub const STANDALONE: u64 = 0;

/// Events already taken that are kept for replay per stream, and their total size:
/// more than the socket buffers of both ends hold, so what a connection took but the
/// client never received (the connection broke) is still there when it resumes.
const REPLAY_EVENTS: usize = 8192;
const REPLAY_BYTES: usize = 16 * 1024 * 1024;
/// Events a stream that cannot be resumed lets wait for a slow connection before it
/// drops the connection (the client sees its stream end).
const LIVE_CAPACITY: usize = 512;
/// Answers dropped unread that a stream remembers, to send an error in their place.
const DROPPED_KEPT: usize = 65_536;

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

/// The bytes of replay buffers across every stream of the listener, and the streams
/// holding them, so that the streams that hold events already taken can be trimmed
/// when the total is over the limit.
pub struct ReplayBudget {
    limit: usize,
    used: AtomicUsize,
    streams: Mutex<Vec<Weak<Shared>>>,
}

impl ReplayBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(ReplayBudget {
            limit,
            used: AtomicUsize::new(0),
            streams: Mutex::default(),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    pub fn is_over(&self) -> bool {
        self.used() > self.limit
    }

    /// Evicts events already taken from every stream, oldest streams first, until the
    /// total is within the limit (or nothing taken is left).
    pub fn evict_taken(&self) {
        let streams: Vec<Arc<Shared>> = {
            let mut all = self.streams.lock().unwrap_or_else(|e| e.into_inner());
            all.retain(|s| s.strong_count() > 0);
            all.iter().filter_map(Weak::upgrade).collect()
        };
        for stream in streams {
            if !self.is_over() {
                return;
            }
            let why = format!(
                "the proxy's replay budget ({} bytes, see --replay-budget-mib) was spent before the client resumed",
                self.limit
            );
            stream.lock().evict_taken(usize::MAX, 0, &why.into());
        }
    }

    fn register(&self, stream: &Arc<Shared>) {
        let mut all = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        // Every request opens a stream, and an ended stream's `Weak` still holds its
        // allocation: forget the ended ones whenever the list is full, so it stays
        // within about twice the live streams instead of growing with each request.
        if all.len() == all.capacity() {
            all.retain(|s| s.strong_count() > 0);
        }
        all.push(Arc::downgrade(stream));
    }
}

pub struct EventStream {
    id: u64,
    style: EventStyle,
    shared: Arc<Shared>,
    /// Requests whose answers are still due on this stream.
    pub open_requests: usize,
}

/// What the stream and the connection reading it share.
pub struct Shared {
    queue: Mutex<Queue>,
    /// Rung when an event arrives, the stream ends or another connection takes over.
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Queue {
    stream: u64,
    style: EventStyle,
    next_seq: u64,
    events: VecDeque<Event>,
    bytes: usize,
    /// Answers dropped before a connection took them, by sequence number.
    dropped: VecDeque<Dropped>,
    /// The highest sequence number a connection has taken (written towards the
    /// client); later events are unread.
    taken: u64,
    /// Bumped when a connection attaches; an older connection then ends.
    listener: u64,
    listening: bool,
    finished: bool,
    budget: Arc<ReplayBudget>,
    /// How the backend sent the last answer on this stream, when it is known.
    answer_head: Option<AnswerHead>,
}

struct Event {
    seq: u64,
    bytes: Bytes,
    /// For an answer, its id: if it must be dropped unread, an error takes its place.
    answers: Option<RawId>,
}

/// An answer no longer buffered: what the client gets instead is an error saying why.
struct Dropped {
    seq: u64,
    id: RawId,
    size: usize,
    why: Arc<str>,
}

/// A connection reading one stream, for one HTTP response body.
pub struct LiveEvents {
    shared: Arc<Shared>,
    listener: u64,
    after: u64,
}

impl EventStream {
    pub fn new(id: u64, style: EventStyle, budget: &Arc<ReplayBudget>) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                stream: id,
                style,
                next_seq: 1,
                events: VecDeque::new(),
                bytes: 0,
                dropped: VecDeque::new(),
                taken: 0,
                listener: 0,
                listening: false,
                finished: false,
                budget: budget.clone(),
                answer_head: None,
            }),
            wake: Notify::new(),
        });
        budget.register(&shared);
        EventStream {
            id,
            style,
            shared,
            open_requests: 0,
        }
    }

    /// Adds one message (JSON text) to the stream; `answers` is the id of the request
    /// it answers, if it is an answer.
    pub fn push(&mut self, data: &str, answers: Option<&RawValue>) {
        let mut queue = self.shared.lock();
        let seq = queue.next_seq;
        queue.next_seq += 1;
        let bytes = queue.frame(seq, data);
        queue.add(Event {
            seq,
            bytes,
            answers: answers.map(ToOwned::to_owned),
        });
        if self.style == EventStyle::Resumable {
            let why = "it left the stream's replay window before the client resumed";
            queue.evict_taken(REPLAY_EVENTS, REPLAY_BYTES, &why.into());
            if self.id == STANDALONE {
                // A client need not open the standalone stream: notifications that wait
                // for it are kept within the replay window, not waited for.
                queue.evict_unread_notifications(REPLAY_EVENTS, REPLAY_BYTES);
            }
        } else if queue.events.len() > LIVE_CAPACITY {
            // Nothing to resume, and one reader must not stall the others of a shared
            // session: its stream ends (for a stateless request, that cancels it).
            tracing::warn!(
                stream = self.id,
                "a client is not reading its event stream; dropping the connection and {} events",
                queue.events.len()
            );
            queue.listener += 1;
            queue.listening = false;
            queue.clear();
        }
        drop(queue);
        self.shared.wake.notify_waiters();
    }

    /// Records how the backend sent the answer pushed next (see [`AnswerHead`]).
    pub fn set_answer_head(&mut self, head: AnswerHead) {
        self.shared.lock().answer_head = Some(head);
    }

    /// Connects a new connection, replacing any previous one. It gets the events after
    /// `after` (by default, those no connection has taken yet), then new ones; for a
    /// finished stream, only what is left.
    pub fn attach(&mut self, after: Option<u64>) -> LiveEvents {
        let mut queue = self.shared.lock();
        let after = after.unwrap_or(queue.taken);
        // What the client did not receive is unread again, whatever was written.
        queue.taken = queue.taken.min(after);
        if let Some(oldest) = queue.events.front().map(|e| e.seq)
            && oldest > after + 1
            && self.style == EventStyle::Resumable
        {
            tracing::warn!(
                stream = self.id,
                "events {}..{} are no longer buffered; resuming after a gap",
                after + 1,
                oldest - 1
            );
        }
        queue.listener += 1;
        queue.listening = true;
        let listener = queue.listener;
        drop(queue);
        self.shared.wake.notify_waiters();
        LiveEvents {
            shared: self.shared.clone(),
            listener,
            after,
        }
    }

    /// No more events will come: the connection ends once it has what was sent.
    pub fn finish(&mut self) {
        self.shared.lock().finished = true;
        self.shared.wake.notify_waiters();
    }

    pub fn is_finished(&self) -> bool {
        self.shared.lock().finished
    }

    /// Whether a client connection is reading this stream now.
    pub fn has_listener(&self) -> bool {
        self.shared.lock().listening
    }

    /// Bytes of events no connection has taken yet, on a resumable stream (the others
    /// drop a connection that lags, see [`EventStream::push`]).
    pub fn unread_bytes(&self) -> usize {
        if self.style != EventStyle::Resumable {
            return 0;
        }
        let queue = self.shared.lock();
        let first_unread = queue.first_after(queue.taken);
        queue
            .events
            .range(first_unread..)
            .map(|e| e.bytes.len())
            .sum()
    }

    /// The client does not read: each unread answer is replaced by an error saying so
    /// (it keeps its place and its event id, so a resuming client gets it), other
    /// unread events are dropped. Returns how many answers and others were dropped.
    pub fn fail_unread(&mut self, why: &str) -> (usize, usize) {
        if self.style != EventStyle::Resumable {
            return (0, 0);
        }
        let mut queue = self.shared.lock();
        let first_unread = queue.first_after(queue.taken);
        let why: Arc<str> = why.into();
        let (mut answers, mut others) = (0, 0);
        while queue.events.len() > first_unread {
            let Some(event) = queue.pop_back() else { break };
            match event.answers {
                Some(_) => answers += 1,
                None => others += 1,
            }
            queue.remember_dropped(event, &why);
        }
        queue.dropped.make_contiguous().sort_by_key(|d| d.seq);
        drop(queue);
        self.shared.wake.notify_waiters();
        (answers, others)
    }
}

impl Queue {
    fn add(&mut self, event: Event) {
        self.bytes += event.bytes.len();
        self.budget
            .used
            .fetch_add(event.bytes.len(), Ordering::AcqRel);
        self.events.push_back(event);
    }

    /// Index of the first event after `seq`.
    fn first_after(&self, seq: u64) -> usize {
        self.events.partition_point(|e| e.seq <= seq)
    }

    fn pop_front(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        self.forget(&event);
        Some(event)
    }

    fn pop_back(&mut self) -> Option<Event> {
        let event = self.events.pop_back()?;
        self.forget(&event);
        Some(event)
    }

    fn forget(&mut self, event: &Event) {
        self.bytes -= event.bytes.len();
        self.budget
            .used
            .fetch_sub(event.bytes.len(), Ordering::AcqRel);
    }

    /// Keeps an evicted answer's id, so an error can take its place.
    fn remember_dropped(&mut self, event: Event, why: &Arc<str>) {
        let Some(id) = event.answers else { return };
        if self.dropped.len() >= DROPPED_KEPT {
            self.dropped.pop_front();
        }
        self.dropped.push_back(Dropped {
            seq: event.seq,
            id,
            size: event.bytes.len(),
            why: why.clone(),
        });
    }

    /// Evicts events already taken, oldest first, while there are more than `events`
    /// of them or `bytes` in the stream.
    fn evict_taken(&mut self, events: usize, bytes: usize, why: &Arc<str>) {
        while self.events.front().is_some_and(|e| e.seq <= self.taken)
            && (self.events.len() > events || self.bytes > bytes)
        {
            if let Some(event) = self.pop_front() {
                self.remember_dropped(event, why);
            }
        }
    }

    /// Evicts notifications and requests at the front, read or not, while over the
    /// bounds; stops at an answer.
    fn evict_unread_notifications(&mut self, events: usize, bytes: usize) {
        while self.events.front().is_some_and(|e| e.answers.is_none())
            && (self.events.len() > events || self.bytes > bytes)
        {
            self.pop_front();
        }
    }

    fn clear(&mut self) {
        while self.pop_front().is_some() {}
    }

    /// One message as an event of this stream.
    fn frame(&self, seq: u64, data: &str) -> Bytes {
        match self.style {
            EventStyle::Resumable => sse_event(Some(&event_id(self.stream, seq)), None, data),
            EventStyle::Plain => sse_event(None, None, data),
            EventStyle::Legacy => sse_event(None, Some("message"), data),
        }
    }

    /// The event after `after`: a buffered one, or the error for a dropped answer.
    fn next_after(&mut self, after: u64) -> Option<(u64, Bytes)> {
        let event = self.events.get(self.first_after(after));
        let dropped_at = self.dropped.partition_point(|d| d.seq <= after);
        let dropped = self.dropped.get(dropped_at);
        match (event, dropped) {
            (Some(event), None) => Some((event.seq, event.bytes.clone())),
            (Some(event), Some(dropped)) if event.seq < dropped.seq => {
                Some((event.seq, event.bytes.clone()))
            }
            (_, Some(dropped)) => {
                let error = ErrorObject::new(
                    INTERNAL_ERROR,
                    format!(
                        "the answer ({} bytes) was dropped: {}",
                        dropped.size, dropped.why
                    ),
                )
                .with_data(serde_json::json!({ "size": dropped.size }));
                let data = Message::error_response(dropped.id.clone(), &error).to_json();
                Some((dropped.seq, self.frame(dropped.seq, &data)))
            }
            (None, None) => None,
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl LiveEvents {
    /// How the backend sent the answer on this stream, when it is known.
    pub fn answer_head(&self) -> Option<AnswerHead> {
        self.shared.lock().answer_head
    }

    /// The next event; `None` once the stream has ended and this connection has had
    /// everything, or another connection has taken over.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let shared = self.shared.clone();
        loop {
            let woken = shared.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(next) = self.next_now() {
                return next;
            }
            woken.await;
        }
    }

    /// `Some(event)`, `Some(None)` at the end, `None` when there is nothing yet.
    pub fn next_now(&mut self) -> Option<Option<Bytes>> {
        let mut queue = self.shared.lock();
        if queue.listener != self.listener {
            return Some(None);
        }
        let Some((seq, bytes)) = queue.next_after(self.after) else {
            return queue.finished.then_some(None);
        };
        self.after = seq;
        queue.taken = queue.taken.max(seq);
        if queue.style != EventStyle::Resumable {
            // Nothing to resume: a taken event is not kept.
            while queue.events.front().is_some_and(|e| e.seq <= seq) {
                queue.pop_front();
            }
            while queue.dropped.front().is_some_and(|d| d.seq <= seq) {
                queue.dropped.pop_front();
            }
        }
        Some(Some(bytes))
    }
}

impl Drop for LiveEvents {
    fn drop(&mut self) {
        let mut queue = self.shared.lock();
        if queue.listener == self.listener {
            queue.listening = false;
        }
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

    fn budget() -> Arc<ReplayBudget> {
        ReplayBudget::new(usize::MAX)
    }

    #[test]
    fn the_budget_forgets_streams_that_ended() {
        let budget = budget();
        let live = EventStream::new(0, EventStyle::Resumable, &budget);
        for id in 1..=10_000 {
            drop(EventStream::new(id, EventStyle::Resumable, &budget));
        }
        let tracked = budget.streams.lock().unwrap().len();
        assert!(tracked <= 4, "{tracked} streams tracked, one of them live");
        drop(live);
    }

    fn drain(rx: &mut LiveEvents) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Some(event)) = rx.next_now() {
            out.push(String::from_utf8(event.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn resumes_after_the_last_event_seen() {
        let mut stream = EventStream::new(3, EventStyle::Resumable, &budget());
        let mut first = stream.attach(None);
        stream.push("{\"a\":1}", None);
        stream.push("{\"a\":2}", None);
        assert_eq!(drain(&mut first).len(), 2);
        drop(first);
        stream.push("{\"a\":3}", None);
        let mut resumed = stream.attach(parse_event_id("3-1").map(|(_, seq)| seq));
        let got = drain(&mut resumed);
        assert_eq!(got.len(), 2);
        assert!(got[0].starts_with("id: 3-2\n"));
        assert!(got[1].starts_with("id: 3-3\n"));
    }

    #[test]
    fn events_sent_with_no_listener_wait_for_one() {
        let mut stream = EventStream::new(0, EventStyle::Legacy, &budget());
        stream.push("{}", None);
        let mut rx = stream.attach(None);
        assert_eq!(
            drain(&mut rx),
            vec!["event: message\ndata: {}\n\n".to_owned()]
        );
    }

    #[test]
    fn replay_of_taken_events_is_bounded() {
        let mut stream = EventStream::new(1, EventStyle::Resumable, &budget());
        let mut rx = stream.attach(None);
        for _ in 0..(REPLAY_EVENTS + 10) {
            stream.push("{}", None);
            drain(&mut rx);
        }
        let mut rx = stream.attach(Some(0));
        assert_eq!(drain(&mut rx).len(), REPLAY_EVENTS);
    }

    #[test]
    fn unread_events_are_never_evicted() {
        let mut stream = EventStream::new(1, EventStyle::Resumable, &budget());
        let mut rx = stream.attach(None);
        assert_eq!(drain(&mut rx).len(), 0);
        for _ in 0..(REPLAY_EVENTS * 4) {
            stream.push("{}", None);
        }
        assert_eq!(drain(&mut rx).len(), REPLAY_EVENTS * 4);
    }

    #[test]
    fn unread_notifications_of_the_standalone_stream_stay_within_the_window() {
        let mut stream = EventStream::new(STANDALONE, EventStyle::Resumable, &budget());
        for _ in 0..(REPLAY_EVENTS + 10) {
            stream.push("{}", None);
        }
        let mut rx = stream.attach(None);
        assert_eq!(drain(&mut rx).len(), REPLAY_EVENTS);
    }

    #[test]
    fn finished_stream_replays_then_ends() {
        let mut stream = EventStream::new(1, EventStyle::Resumable, &budget());
        stream.push("{}", None);
        stream.finish();
        let mut rx = stream.attach(Some(0));
        assert_eq!(drain(&mut rx).len(), 1);
        assert!(matches!(rx.next_now(), Some(None)), "then the end");
    }

    #[test]
    fn a_new_connection_ends_the_old_one() {
        let mut stream = EventStream::new(1, EventStyle::Resumable, &budget());
        let mut old = stream.attach(None);
        let _new = stream.attach(None);
        stream.push("{}", None);
        assert!(matches!(old.next_now(), Some(None)));
    }

    #[test]
    fn the_budget_counts_every_stream_and_evicts_taken_events() {
        let budget = ReplayBudget::new(100);
        let mut a = EventStream::new(1, EventStyle::Resumable, &budget);
        let mut b = EventStream::new(2, EventStyle::Resumable, &budget);
        let mut rx = a.attach(None);
        a.push(&"1".repeat(80), None);
        drain(&mut rx);
        b.push(&"2".repeat(80), None);
        assert!(budget.is_over());
        budget.evict_taken();
        assert!(!budget.is_over(), "a's taken event went: {}", budget.used());
        assert_eq!(b.unread_bytes(), budget.used(), "b's unread event stays");
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn unread_answers_are_replaced_by_errors_that_keep_their_place() {
        let budget = budget();
        let mut stream = EventStream::new(4, EventStyle::Resumable, &budget);
        let id = crate::wire::jsonrpc::raw("7");
        stream.push(
            r#"{"jsonrpc":"2.0","method":"notifications/progress"}"#,
            None,
        );
        let big = format!(
            r#"{{"jsonrpc":"2.0","id":7,"result":{{"t":"{}"}}}}"#,
            "x".repeat(5000)
        );
        stream.push(&big, Some(&id));
        let (answers, others) = stream.fail_unread("the client stopped reading");
        assert_eq!((answers, others), (1, 1));
        assert!(budget.used() < 1000, "{}", budget.used());
        let mut rx = stream.attach(Some(0));
        let got = drain(&mut rx);
        assert_eq!(got.len(), 1);
        assert!(got[0].starts_with("id: 4-2\n"), "{}", got[0]);
        assert!(got[0].contains(r#""id":7,"error""#), "{}", got[0]);
        assert!(
            got[0].contains("was dropped: the client stopped reading"),
            "{}",
            got[0]
        );
    }
}

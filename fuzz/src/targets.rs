//! The fuzz targets. Each takes arbitrary bytes, runs the code under test and panics
//! when a property it promises does not hold.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::path::Path;

use bytes::Bytes;
use futures::StreamExt;
use indexmap::IndexMap;
use serde_json::value::RawValue;

use interpose::config::Config;
use interpose::session::pending::{Peer, Pending, PendingTable};
use interpose::wire::framing::{DEFAULT_MAX_MESSAGE_BYTES, Frame, LineReader, parse_frames};
use interpose::wire::jsonrpc::{
    self, INVALID_REQUEST, Message, PARSE_ERROR, ParseError, Parsed, raw,
};
use interpose::wire::mcp_http::{SseReadError, read_events, sse_event};

use crate::chunks::{ChunkedReader, plans};

/// A small message cap, so short inputs reach the over-long-line and over-large-event
/// paths too.
const SMALL_LIMIT: usize = 64;

/// How much of an over-long line the framer keeps to find its id (its
/// `SNIFF_PREFIX_BYTES`).
const SNIFF_PREFIX_BYTES: usize = 64 * 1024;

/// `jsonrpc::Message::parse`: whatever the text, no panic; the error code is one of the
/// two JSON-RPC parse codes; a message comes from a JSON object, and re-serialised it
/// parses to the same envelope (alone and as a batch).
pub fn jsonrpc(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Message::parse(text) {
        Ok(Parsed::One(message)) => {
            assert_is_object(text);
            assert_round_trips(&message);
        }
        Ok(Parsed::Batch(items)) => {
            let texts: Vec<&RawValue> =
                serde_json::from_str(text).expect("a parsed batch is a JSON array");
            assert_eq!(texts.len(), items.len(), "one result per batch item");
            let mut messages = Vec::new();
            for (item, item_text) in items.iter().zip(&texts) {
                match item {
                    Ok(message) => {
                        assert_is_object(item_text.get());
                        assert_round_trips(message);
                        messages.push(message);
                    }
                    Err((error, _)) => assert_error_code(error),
                }
            }
            if !messages.is_empty() {
                let lines: Vec<String> = messages.iter().map(|m| m.to_json()).collect();
                let batch = format!("[{}]", lines.join(","));
                let Ok(Parsed::Batch(again)) = Message::parse(&batch) else {
                    panic!("re-serialised batch {batch} does not parse as a batch");
                };
                let again: Vec<String> = again
                    .iter()
                    .map(|item| match item {
                        Ok(message) => message.to_json(),
                        Err(e) => panic!("item of re-serialised batch {batch} fails: {e:?}"),
                    })
                    .collect();
                assert_eq!(again, lines, "re-serialised batch changed");
            }
        }
        Err((error, _)) => assert_error_code(&error),
    }
}

fn assert_error_code(error: &ParseError) {
    assert!(
        [PARSE_ERROR, INVALID_REQUEST].contains(&error.code()),
        "unexpected code for {error}"
    );
}

/// JSON-RPC messages are objects; an array or a scalar must not pass as one. (The
/// text is valid JSON, or it would not have parsed, so its first character says.)
fn assert_is_object(text: &str) {
    assert!(
        text.trim_start().starts_with('{'),
        "accepted as a message but not a JSON object: {text}"
    );
}

fn assert_round_trips(message: &Message) {
    let line = message.to_json();
    let again = match Message::parse(&line) {
        Ok(Parsed::One(again)) => again,
        other => panic!("{line} (from {message:?}) does not parse back: {other:?}"),
    };
    assert_eq!(again.to_json(), line, "serialising twice differs");
    assert_eq!(again.kind(), message.kind());
    assert_eq!(again.method(), message.method());
    assert_eq!(
        again.id().map(RawValue::get),
        message.id().map(RawValue::get)
    );
    assert_eq!(
        again.payload().map(RawValue::get),
        message.payload().map(RawValue::get)
    );
}

/// `jsonrpc::sniff_id` on any text: no panic; what it finds is a JSON scalar. On a
/// valid message it agrees with the parser: it never names another id, and when the
/// id is a scalar under a plain `"id"` key it finds it.
pub fn sniff_id(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let sniffed = jsonrpc::sniff_id(&text);
    if let Some(id) = &sniffed {
        let first = id.get().as_bytes().first().copied();
        assert!(
            matches!(first, Some(b'"' | b'-' | b'0'..=b'9' | b'n')),
            "sniffed a non-scalar id {} from {text:?}",
            id.get()
        );
    }
    let Ok(Parsed::One(message)) = Message::parse(&text) else {
        return;
    };
    let parsed = message.id().map(RawValue::get);
    if let Some(id) = &sniffed {
        assert_eq!(
            Some(id.get()),
            parsed,
            "sniff_id and the parser disagree on {text:?}"
        );
    }
    let scalar = parsed.is_some_and(|id| {
        matches!(
            id.as_bytes().first(),
            Some(b'"' | b'-' | b'0'..=b'9' | b'n')
        )
    });
    // Without a backslash anywhere, the key is spelled `"id"` (not `"\u0069d"`).
    if scalar && !text.contains('\\') {
        assert_eq!(
            sniffed.as_deref().map(RawValue::get),
            parsed,
            "sniff_id misses the id of {text:?}"
        );
    }
}

/// `framing::LineReader`: the same frames whatever the chunking of the stream, equal
/// to splitting the whole input at newlines and parsing each line; with a large and a
/// small line cap.
pub fn framing(data: &[u8]) {
    for limit in [DEFAULT_MAX_MESSAGE_BYTES, SMALL_LIMIT] {
        let expected = format!("{:?}", frames_by_line(data, limit));
        for plan in plans(data) {
            let got = format!("{:?}", read_frames(&plan, limit));
            assert_eq!(
                got,
                expected,
                "framing with limit {limit} depends on chunking ({} chunks)",
                plan.len()
            );
        }
    }
}

fn read_frames(chunks: &[&[u8]], limit: usize) -> Vec<Frame> {
    let mut reader = LineReader::new(ChunkedReader::new(chunks), limit);
    futures::executor::block_on(async {
        let mut frames = Vec::new();
        while let Some(batch) = reader.next().await.expect("reading a slice cannot fail") {
            frames.extend(batch);
        }
        frames
    })
}

/// What the framer promises, one line at a time.
fn frames_by_line(data: &[u8], limit: usize) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    for line in lines {
        if line.len() > limit {
            let prefix = String::from_utf8_lossy(&line[..line.len().min(SNIFF_PREFIX_BYTES)]);
            frames.push(Frame::TooLong {
                len: line.len(),
                limit,
                id: jsonrpc::sniff_id(&prefix),
            });
            continue;
        }
        let Ok(text) = std::str::from_utf8(line) else {
            // Refused whole, but its id is still read so a request gets its answer.
            frames.push(Frame::Malformed {
                error: ParseError::Json("message is not valid UTF-8".into()),
                id: jsonrpc::sniff_id(&String::from_utf8_lossy(line)),
            });
            continue;
        };
        let text = text.trim_end_matches('\r');
        if !text.trim().is_empty() {
            frames.extend(parse_frames(text));
        }
    }
    frames
}

/// The SSE reader (`mcp_http::read_events` over `sse-stream`), read as the proxy does:
/// up to the end or the first error. The same events and error whatever the chunking of
/// the body. With a cap: the events before an over-large one are those read without a
/// cap, and on a body that reads without error, whether the cap is hit does not depend
/// on chunking. And what the proxy writes (`sse_event`) reads back as what it wrote.
pub fn sse(data: &[u8]) {
    let unlimited = read_sse(&[data], usize::MAX / 2);
    for plan in plans(data) {
        let got = read_sse(&plan, usize::MAX / 2);
        assert_eq!(got, unlimited, "SSE events depend on chunking");
    }
    let capped = read_sse(&[data], SMALL_LIMIT);
    for plan in plans(data) {
        let got = read_sse(&plan, SMALL_LIMIT);
        assert!(
            unlimited.events.starts_with(&got.events),
            "a cap changed the events before it: {got:?} vs {unlimited:?}"
        );
        if unlimited.error.is_none() {
            assert_eq!(
                got.too_large(),
                capped.too_large(),
                "an over-large event is seen or not depending on chunking"
            );
            if !got.too_large() {
                assert_eq!(got, unlimited, "a cap that is not hit changed the events");
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(Parsed::One(message)) = Message::parse(text)
    {
        assert_sse_round_trips(&message.to_json());
    }
}

#[derive(Debug, PartialEq)]
struct SseOutcome {
    events: Vec<sse_stream::Sse>,
    /// The error the stream stopped at, if any.
    error: Option<String>,
}

impl SseOutcome {
    fn too_large(&self) -> bool {
        self.error.as_deref() == Some(TOO_LARGE)
    }
}

const TOO_LARGE: &str = "too large";

fn read_sse(chunks: &[&[u8]], limit: usize) -> SseOutcome {
    let body = futures::stream::iter(
        chunks
            .iter()
            .map(|c| Ok::<_, Infallible>(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let mut outcome = SseOutcome {
        events: Vec::new(),
        error: None,
    };
    futures::executor::block_on(async {
        let mut events = std::pin::pin!(read_events(body, limit));
        while let Some(item) = events.next().await {
            match item {
                Ok(event) => outcome.events.push(event),
                Err(SseReadError::TooLarge(_)) => {
                    outcome.error = Some(TOO_LARGE.to_owned());
                    break;
                }
                Err(SseReadError::Stream(e)) => {
                    outcome.error = Some(e);
                    break;
                }
            }
        }
    });
    outcome
}

/// SSE data is lines, so line breaks come back as `\n`; JSON only has them as
/// whitespace, so the message is the same.
fn assert_sse_round_trips(json: &str) {
    let written = sse_event(Some("7-1"), None, json);
    let read = read_sse(&[&written], usize::MAX / 2);
    let [event] = read.events.as_slice() else {
        panic!("{json:?} written as SSE reads back as {read:?}");
    };
    let data = event.data.as_deref().unwrap_or_default();
    let expected = json.replace("\r\n", "\n").replace('\r', "\n");
    assert_eq!(data, expected, "{json:?} written as SSE reads back changed");
    assert!(
        matches!(Message::parse(data), Ok(Parsed::One(_))),
        "{json:?} written as SSE does not parse back"
    );
    assert_eq!(event.id.as_deref(), Some("7-1"));
}

/// Original ids a fuzzed client may use: equal-looking ones that differ as text, and
/// one used twice.
const ORIGINAL_IDS: &[&str] = &[
    "1",
    "2",
    "\"1\"",
    "\"a\"",
    "null",
    "1.0",
    "-0",
    "\"\\u0031\"",
    "18446744073709551616",
];

/// Forwarded ids no table issues.
const FOREIGN_IDS: &[&str] = &["0", "-1", "1.5", "\"1\"", "null", "18446744073709551616"];

/// `relay::pending::PendingTable` driven by the input as a list of operations, against
/// a model: forwarded ids are unique numbers, taking one gives back the original id it
/// was issued for (once), the original id leads to its latest forwarded id while that
/// is in flight, and drain returns what is left, oldest first. If the whole input is a
/// JSON object, `jsonrpc::replace_member` on it as `notifications/cancelled` params.
pub fn remap(data: &[u8]) {
    let mut table = PendingTable::default();
    let mut in_flight: BTreeMap<u64, &str> = BTreeMap::new();
    let mut latest: HashMap<&str, u64> = HashMap::new();
    let mut issued: HashSet<u64> = HashSet::new();
    for op in data.chunks(2) {
        let arg = usize::from(op.get(1).copied().unwrap_or(0));
        match op[0] % 5 {
            0 => {
                let original = ORIGINAL_IDS[arg % ORIGINAL_IDS.len()];
                let forwarded = table.insert(pending(original));
                let number: u64 = forwarded.get().parse().expect("a forwarded id is a number");
                assert!(issued.insert(number), "forwarded id {number} issued twice");
                in_flight.insert(number, original);
                latest.insert(original, number);
            }
            1 => {
                let Some(&number) = in_flight.keys().nth(arg % in_flight.len().max(1)) else {
                    continue;
                };
                let original = in_flight.remove(&number).expect("picked from the map");
                let taken = table.take(&raw(number.to_string()));
                let taken = taken.expect("a forwarded id in flight is found");
                assert_eq!(taken.original_id.get(), original, "take gave another id");
                if latest.get(original) == Some(&number) {
                    latest.remove(original);
                }
                assert!(
                    table.take(&raw(number.to_string())).is_none(),
                    "taken twice"
                );
            }
            2 => {
                let foreign = FOREIGN_IDS[arg % FOREIGN_IDS.len()];
                let known = foreign
                    .parse::<u64>()
                    .is_ok_and(|n| in_flight.contains_key(&n));
                assert_eq!(table.get(&raw(foreign)).is_some(), known, "id {foreign}");
            }
            3 => {
                let original = ORIGINAL_IDS[arg % ORIGINAL_IDS.len()];
                let forwarded = table.forwarded_id(Peer::Client, &raw(original));
                let forwarded = forwarded.map(|id| id.get().to_owned());
                let expected = latest.get(original).map(u64::to_string);
                assert_eq!(forwarded, expected, "forwarded id of {original}");
            }
            _ => {
                let drained: Vec<String> = table
                    .drain()
                    .iter()
                    .map(|p| p.original_id.get().to_owned())
                    .collect();
                let expected: Vec<String> = in_flight.values().map(|s| s.to_string()).collect();
                assert_eq!(drained, expected, "drain order or content");
                in_flight.clear();
                latest.clear();
            }
        }
        assert_eq!(table.len(), in_flight.len());
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(params) = serde_json::from_str::<Box<RawValue>>(text)
    {
        assert_replaces_request_id(&params);
    }
}

fn pending(original: &str) -> Pending {
    Pending::new(Peer::Client, raw(original), "tools/call".into())
}

/// `replace_member(params, "requestId", id)`: the id is set, every other member kept
/// with its text and in its order, and `cancelled_request_id` reads the new id back.
fn assert_replaces_request_id(params: &RawValue) {
    let Ok(before) = serde_json::from_str::<IndexMap<String, Box<RawValue>>>(params.get()) else {
        assert!(
            jsonrpc::replace_member(params, "requestId", raw("42")).is_none(),
            "replaced a member of a non-object"
        );
        return;
    };
    let after = jsonrpc::replace_member(params, "requestId", raw("42"))
        .expect("an object's member can be replaced");
    let members: IndexMap<String, Box<RawValue>> =
        serde_json::from_str(after.get()).expect("the result is an object");
    let mut expected_keys: Vec<&String> = before.keys().collect();
    let request_id = "requestId".to_owned();
    if !before.contains_key("requestId") {
        expected_keys.push(&request_id);
    }
    assert_eq!(members.keys().collect::<Vec<_>>(), expected_keys);
    for (key, value) in &before {
        if key != "requestId" {
            assert_eq!(members[key].get(), value.get(), "member {key:?} changed");
        }
    }
    let read_back = jsonrpc::cancelled_request_id(Some(&after));
    assert_eq!(read_back.as_deref().map(RawValue::get), Some("42"));
}

/// `Config::parse`: no panic on any text; relative plugin paths end up under the
/// config file's directory.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let base = Path::new("/etc/interpose");
    match Config::parse(text, &base.join("fuzz.toml"), base) {
        Ok(config) => {
            for plugin in &config.plugins {
                assert!(
                    plugin.path.starts_with(base) || plugin.path.is_absolute(),
                    "plugin path {} not resolved",
                    plugin.path.display()
                );
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

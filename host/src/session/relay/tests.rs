//! In-process tests of the session relay, each driving both peers by hand over
//! in-memory links. The client is a channel pair, as the HTTP listener holds it, so
//! the request a message is routed to is visible; the backend is mostly a byte pipe
//! read and written as newline-delimited JSON, as a stdio or in-process backend is,
//! and a channel pair where a test needs a transport that knows the request a message
//! belongs to (an HTTP response stream).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};

use super::*;
use crate::session::intercept::{Interceptor, PassAll, VerdictFuture};
use crate::wire::framing::DEFAULT_MAX_MESSAGE_BYTES;
use crate::wire::jsonrpc::{ParseError, Parsed};
use crate::wire::link::{CHANNEL_CAPACITY, line_link};

/// How long a peer waits for the relay before the test fails; generous for a loaded
/// machine, reached only when the relay is broken.
const PATIENCE: Duration = Duration::from_secs(20);
/// How the test backend's end of its pipe reads when the backend is gone.
const BACKEND_EXITED: &str = "the test backend exited";
/// Bytes buffered in the backend's pipe: small, so backpressure reaches it soon.
const PIPE_BYTES: usize = 4096;

/// The far end of a channel link: what a transport would do.
struct Peer {
    to_relay: mpsc::Sender<Inbound>,
    from_relay: mpsc::Receiver<Outbound>,
}

impl Peer {
    async fn send(&self, frame: Frame) {
        self.send_related(frame, None).await;
    }

    /// Sends a frame that the transport says belongs to the request `related` (in this
    /// peer's id space), as an HTTP response stream does.
    async fn send_related(&self, frame: Frame, related: Option<RawId>) {
        let inbound = Inbound::Frame {
            frame,
            related,
            sessionless: None,
            head: None,
        };
        self.to_relay.send(inbound).await.expect("relay running");
    }

    async fn send_json(&self, json: &str) {
        match Message::parse(json).expect("valid") {
            Parsed::One(message) => self.send(Frame::Message(message)).await,
            Parsed::Batch(_) => unreachable!("one message"),
        }
    }

    async fn send_value(&self, message: Value) {
        self.send_json(&message.to_string()).await;
    }

    async fn send_value_related(&self, message: Value, related: &Value) {
        let message = match Message::parse(&message.to_string()).expect("valid") {
            Parsed::One(message) => message,
            Parsed::Batch(_) => unreachable!("one message"),
        };
        let related = jsonrpc::raw(related.to_string());
        self.send_related(Frame::Message(message), Some(related))
            .await;
    }

    /// The next message from the relay, and the request (in this peer's id space) it
    /// says the message belongs to, as JSON text.
    async fn recv(&mut self) -> (Value, Option<String>) {
        let out = tokio::time::timeout(PATIENCE, self.from_relay.recv())
            .await
            .expect("the relay sends within the time allowed")
            .expect("the relay's side of the link is open");
        let message = serde_json::from_str(&out.message.to_json()).expect("the relay sends JSON");
        (message, out.related.map(|id| id.get().to_owned()))
    }

    /// Asserts the relay closes this link without sending anything more.
    async fn assert_closed(&mut self) {
        let end = tokio::time::timeout(PATIENCE, self.from_relay.recv())
            .await
            .expect("the relay closes the link within the time allowed");
        assert!(
            end.is_none(),
            "nothing more was expected, got {}",
            end.map(|out| out.message.to_json()).unwrap_or_default()
        );
    }
}

/// A link over channels of `capacity` messages each way, and its far end.
fn link_with_capacity(capacity: usize) -> (Link, Peer) {
    let (to_relay, inbound) = mpsc::channel(capacity);
    let (outbound, from_relay) = mpsc::channel(capacity);
    let link = Link {
        inbound,
        outbound,
        writer: tokio::spawn(async {}),
    };
    (
        link,
        Peer {
            to_relay,
            from_relay,
        },
    )
}

fn link() -> (Link, Peer) {
    link_with_capacity(16)
}

/// The backend's end of an in-memory pipe, speaking newline-delimited JSON.
struct PipePeer {
    lines: tokio::io::Lines<BufReader<ReadHalf<DuplexStream>>>,
    writer: WriteHalf<DuplexStream>,
}

impl PipePeer {
    async fn send(&mut self, message: Value) {
        let line = format!("{message}\n");
        self.writer
            .write_all(line.as_bytes())
            .await
            .expect("the relay reads its pipe");
    }

    /// The next message from the relay, or `None` once it closed the pipe.
    async fn recv(&mut self) -> Option<Value> {
        let line = tokio::time::timeout(PATIENCE, self.lines.next_line())
            .await
            .expect("the relay sends within the time allowed")
            .expect("the pipe reads");
        line.map(|line| serde_json::from_str(&line).expect("the relay writes JSON lines"))
    }

    async fn recv_message(&mut self) -> Value {
        self.recv()
            .await
            .expect("the relay's side of the pipe is open")
    }
}

/// A link to a backend over an in-memory pipe, wired as `transport::in_process` wires
/// one, and the backend's end of it.
fn pipe_link() -> (Link, PipePeer) {
    let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
    let (read, write) = tokio::io::split(ours);
    let link = line_link(
        BufReader::new(read),
        write,
        DEFAULT_MAX_MESSAGE_BYTES,
        "backend",
        async { BACKEND_EXITED.to_owned() },
    );
    let (read, writer) = tokio::io::split(theirs);
    let peer = PipePeer {
        lines: BufReader::new(read).lines(),
        writer,
    };
    (link, peer)
}

/// A running relay between a client and two backends, `first` and `second`.
fn gateway_of_two() -> (Peer, Peer, Peer, tokio::task::JoinHandle<RelayEnd>) {
    let (client_link, client) = link();
    let (first_link, first) = link();
    let (second_link, second) = link();
    let relay = SessionRelay::with_backends(
        config("gateway"),
        client_link,
        vec![backend("first", first_link), backend("second", second_link)],
    );
    (
        client,
        first,
        second,
        tokio::spawn(relay.run(std::future::pending())),
    )
}

/// A backend of a gateway that may take its time.
fn backend(name: &str, link: Link) -> BackendLink {
    BackendLink::new(name, link)
}

fn config(server: &str) -> RelayConfig {
    RelayConfig {
        session: "test".into(),
        transport: Transport::Stdio,
        server: server.into(),
        interceptor: Arc::new(PassAll),
        shutdown_grace: Duration::from_secs(5),
        gateway: GatewayOptions::default(),
        principal: None,
    }
}

/// A running relay between a client on channels and a backend on a pipe.
struct Session {
    client: Peer,
    backend: PipePeer,
    relay: tokio::task::JoinHandle<RelayEnd>,
}

impl Session {
    fn start() -> Self {
        Self::with_client_queue(16)
    }

    /// `client_queue`: how many messages may wait for the client to read them.
    fn with_client_queue(client_queue: usize) -> Self {
        Self::until(client_queue, std::future::pending())
    }

    /// A session that the proxy stops when `shutdown` completes.
    fn until(client_queue: usize, shutdown: impl Future<Output = ()> + Send + 'static) -> Self {
        let (client_link, client) = link_with_capacity(client_queue);
        let (backend_link, backend) = pipe_link();
        let relay = SessionRelay::new(config("backend"), client_link, backend_link);
        Session {
            client,
            backend,
            relay: tokio::spawn(relay.run(shutdown)),
        }
    }
}

/// How the relay ended, once it has.
async fn ended(relay: tokio::task::JoinHandle<RelayEnd>) -> RelayEnd {
    tokio::time::timeout(PATIENCE, relay)
        .await
        .expect("the relay ends within the time allowed")
        .expect("the relay does not panic")
}

fn request(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

fn answer(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A notification sent after something that should have been dropped: the peer's
/// next message must be this one.
fn marker() -> Value {
    notification(
        "notifications/message",
        json!({"level": "info", "data": "marker"}),
    )
}

fn cancelled(request_id: &Value, reason: &str) -> Value {
    notification(
        "notifications/cancelled",
        json!({"requestId": request_id, "reason": reason}),
    )
}

fn progress(token: Value, progress: u32) -> Value {
    notification(
        "notifications/progress",
        json!({"progressToken": token, "progress": progress}),
    )
}

/// Runs the other tasks until `count` stops moving: everything that can make progress
/// has. The runtime is single-threaded and the links are in memory, so a stretch of
/// yields without a change means every task is waiting.
async fn settle(count: &AtomicUsize) -> usize {
    let mut last = count.load(Ordering::SeqCst);
    for _ in 0..10_000 {
        for _ in 0..64 {
            tokio::task::yield_now().await;
        }
        let now = count.load(Ordering::SeqCst);
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("still moving after 10 000 rounds: {last}");
}

#[tokio::test]
async fn ids_from_both_sides_are_remapped_and_restored() {
    let mut session = Session::start();
    let (client, backend) = (&mut session.client, &mut session.backend);
    client
        .send_value(request(json!(1), "tools/call", json!({"name": "a"})))
        .await;
    client
        .send_value(request(json!("1"), "tools/list", json!({})))
        .await;
    let call = backend.recv_message().await;
    let list = backend.recv_message().await;
    assert_eq!(
        (&call["method"], &call["params"]),
        (&json!("tools/call"), &json!({"name": "a"}))
    );
    assert_eq!(list["method"], "tools/list");
    assert!(call["id"].is_u64() && list["id"].is_u64(), "{call} {list}");
    assert_ne!(call["id"], list["id"], "1 and \"1\" are two requests");

    // The backend's own request, with an id the client uses too.
    backend
        .send(request(json!(1), "roots/list", json!({})))
        .await;
    let (roots, route) = client.recv().await;
    assert_eq!(roots["method"], "roots/list");
    assert_eq!(route, None, "it came from no client request");
    client
        .send_value(answer(&roots["id"], json!({"roots": []})))
        .await;
    assert_eq!(
        backend.recv_message().await,
        answer(&json!(1), json!({"roots": []}))
    );

    // Answered out of order, each under the id the client chose.
    backend
        .send(answer(&list["id"], json!({"tools": []})))
        .await;
    backend
        .send(answer(&call["id"], json!({"content": []})))
        .await;
    assert_eq!(
        client.recv().await,
        (
            answer(&json!("1"), json!({"tools": []})),
            Some("\"1\"".into())
        )
    );
    assert_eq!(
        client.recv().await,
        (answer(&json!(1), json!({"content": []})), Some("1".into()))
    );

    // A second answer to a request already answered goes nowhere.
    backend
        .send(answer(&call["id"], json!({"again": true})))
        .await;
    backend.send(marker()).await;
    assert_eq!(client.recv().await, (marker(), None));
}

#[tokio::test]
async fn a_reused_id_gets_one_answer_per_request() {
    let mut session = Session::start();
    let (client, backend) = (&mut session.client, &mut session.backend);
    for n in [1, 2] {
        client
            .send_value(request(json!(7), "tools/call", json!({"n": n})))
            .await;
    }
    let first = backend.recv_message().await;
    let second = backend.recv_message().await;
    assert_eq!(
        (&first["params"], &second["params"]),
        (&json!({"n": 1}), &json!({"n": 2}))
    );
    assert_ne!(first["id"], second["id"]);
    backend.send(answer(&second["id"], json!({"n": 2}))).await;
    backend.send(answer(&first["id"], json!({"n": 1}))).await;
    assert_eq!(client.recv().await.0, answer(&json!(7), json!({"n": 2})));
    assert_eq!(client.recv().await.0, answer(&json!(7), json!({"n": 1})));

    // Once answered, the id is the client's to use again; the backend sees a new one.
    client
        .send_value(request(json!(7), "tools/call", json!({"n": 3})))
        .await;
    let third = backend.recv_message().await;
    assert_eq!(third["params"], json!({"n": 3}));
    assert!(
        third["id"] != first["id"] && third["id"] != second["id"],
        "{third}"
    );
}

#[tokio::test]
async fn the_clients_cancellation_reaches_the_backend_under_the_backends_id() {
    let mut session = Session::start();
    let (client, backend) = (&mut session.client, &mut session.backend);
    client
        .send_value(request(json!("call-1"), "tools/call", json!({})))
        .await;
    let call = backend.recv_message().await;
    client
        .send_value(cancelled(&json!("call-1"), "the user stopped it"))
        .await;
    assert_eq!(
        backend.recv_message().await,
        cancelled(&call["id"], "the user stopped it")
    );

    // Nothing to cancel: a request never sent, or one already answered.
    client
        .send_value(cancelled(&json!("never-sent"), "why not"))
        .await;
    backend.send(answer(&call["id"], json!({}))).await;
    assert_eq!(client.recv().await.0, answer(&json!("call-1"), json!({})));
    client
        .send_value(cancelled(&json!("call-1"), "too late"))
        .await;
    client.send_value(marker()).await;
    assert_eq!(backend.recv_message().await, marker());
}

/// A backend need not answer a cancelled request: the relay forgets it after a grace
/// period, and an answer after that is dropped (the client, which cancelled it, gets
/// nothing for it).
#[tokio::test(start_paused = true)]
async fn a_cancelled_request_left_unanswered_is_forgotten_after_a_grace() {
    let mut session = Session::start();
    let (client, backend) = (&mut session.client, &mut session.backend);
    client
        .send_value(request(json!(1), "tools/call", json!({})))
        .await;
    let call = backend.recv_message().await;
    client.send_value(cancelled(&json!(1), "stop")).await;
    assert_eq!(backend.recv_message().await, cancelled(&call["id"], "stop"));
    tokio::time::sleep(CANCEL_GRACE + Duration::from_secs(1)).await;
    backend.send(answer(&call["id"], json!({}))).await;
    backend.send(marker()).await;
    assert_eq!(
        client.recv().await.0,
        marker(),
        "the late answer was dropped"
    );
}

#[tokio::test]
async fn the_backends_cancellation_reaches_the_client_under_the_clients_id() {
    let mut session = Session::start();
    let (client, backend) = (&mut session.client, &mut session.backend);
    backend
        .send(request(json!("srv-1"), "sampling/createMessage", json!({})))
        .await;
    let (asked, _) = client.recv().await;
    assert_eq!(asked["method"], "sampling/createMessage");
    backend.send(cancelled(&json!("srv-1"), "timed out")).await;
    assert_eq!(
        client.recv().await,
        (cancelled(&asked["id"], "timed out"), None)
    );

    backend
        .send(cancelled(&json!("srv-404"), "never asked"))
        .await;
    backend.send(marker()).await;
    assert_eq!(client.recv().await, (marker(), None));
}

#[tokio::test]
async fn progress_is_routed_by_its_token_to_the_request_that_carries_it() {
    let mut session = Session::start();
    let (client, backend) = (&mut session.client, &mut session.backend);
    for (id, token) in [(json!(1), json!("t1")), (json!("two"), json!(99))] {
        let params = json!({"_meta": {"progressToken": token}});
        client.send_value(request(id, "tools/call", params)).await;
    }
    let first = backend.recv_message().await;
    let second = backend.recv_message().await;
    assert_eq!(
        first["params"]["_meta"]["progressToken"], "t1",
        "the token reaches the backend unchanged"
    );

    backend.send(progress(json!(99), 1)).await;
    backend.send(progress(json!("t1"), 1)).await;
    backend.send(progress(json!("unknown"), 1)).await;
    assert_eq!(
        client.recv().await,
        (progress(json!(99), 1), Some("\"two\"".into()))
    );
    assert_eq!(
        client.recv().await,
        (progress(json!("t1"), 1), Some("1".into()))
    );
    assert_eq!(client.recv().await, (progress(json!("unknown"), 1), None));

    // Once its request is answered, a token routes nowhere.
    backend.send(answer(&second["id"], json!({}))).await;
    assert_eq!(
        client.recv().await,
        (answer(&json!("two"), json!({})), Some("\"two\"".into()))
    );
    backend.send(progress(json!(99), 2)).await;
    assert_eq!(client.recv().await, (progress(json!(99), 2), None));
    backend.send(progress(json!("t1"), 2)).await;
    assert_eq!(
        client.recv().await,
        (progress(json!("t1"), 2), Some("1".into()))
    );
}

#[tokio::test]
async fn a_slow_client_holds_the_backend_back_without_losing_or_reordering() {
    const CLIENT_QUEUE: usize = 4;
    const SENT: usize = 5_000;
    let mut session = Session::with_client_queue(CLIENT_QUEUE);
    let message = |seq: usize| notification("notifications/message", json!({"seq": seq}));
    let written = Arc::new(AtomicUsize::new(0));
    let mut backend = session.backend;
    let writer = tokio::spawn({
        let written = written.clone();
        async move {
            for seq in 0..SENT {
                backend.send(message(seq)).await;
                written.fetch_add(1, Ordering::SeqCst);
            }
            backend
        }
    });

    // The client reads nothing yet: every queue on the way fills, then the backend's
    // writes wait. Bounded: the client's queue, the relay's hand, the backend link's
    // queue, and the bytes the pipe and its reader buffer.
    let held = settle(&written).await;
    let shortest_line = message(0).to_string().len() + 1;
    let bound =
        CLIENT_QUEUE + 1 + CHANNEL_CAPACITY + 1 + (PIPE_BYTES + 8 * 1024) / shortest_line + 1;
    assert!(held < SENT, "the backend was never held back");
    assert!(
        held <= bound,
        "{held} messages queued, over the bound {bound}"
    );

    for seq in 0..SENT {
        assert_eq!(session.client.recv().await, (message(seq), None));
    }
    let backend = writer.await.expect("the backend wrote everything");
    assert_eq!(written.load(Ordering::SeqCst), SENT);
    drop(backend);
    session.client.assert_closed().await;
}

#[tokio::test]
async fn what_the_backend_sends_for_a_client_request_is_routed_to_that_request() {
    let (client_link, mut client) = link();
    let (backend_link, mut backend) = link();
    let relay = SessionRelay::new(config("backend"), client_link, backend_link);
    let _relay = tokio::spawn(relay.run(std::future::pending()));
    client
        .send_value(request(json!("call"), "tools/call", json!({})))
        .await;
    let (call, _) = backend.recv().await;

    // An elicitation and a log message on the call's response stream.
    let ask = request(json!("ask-1"), "elicitation/create", json!({}));
    backend.send_value_related(ask, &call["id"]).await;
    let (asked, route) = client.recv().await;
    assert_eq!(
        (&asked["method"], route.as_deref()),
        (&json!("elicitation/create"), Some("\"call\""))
    );
    let log = notification("notifications/message", json!({"data": "working"}));
    backend.send_value_related(log.clone(), &call["id"]).await;
    assert_eq!(client.recv().await, (log.clone(), Some("\"call\"".into())));

    // Once the call is answered, its id routes nowhere.
    backend.send_value(answer(&call["id"], json!({}))).await;
    assert_eq!(
        client.recv().await,
        (answer(&json!("call"), json!({})), Some("\"call\"".into()))
    );
    backend.send_value_related(log.clone(), &call["id"]).await;
    assert_eq!(client.recv().await, (log, None));
}

#[tokio::test]
async fn a_slow_backend_holds_the_client_back_without_losing_or_reordering() {
    const CLIENT_QUEUE: usize = 4;
    const SENT: usize = 5_000;
    let session = Session::with_client_queue(CLIENT_QUEUE);
    let mut backend = session.backend;
    let message = |seq: usize| notification("notifications/message", json!({"seq": seq}));
    let written = Arc::new(AtomicUsize::new(0));
    let client = session.client;
    let writer = tokio::spawn({
        let written = written.clone();
        async move {
            for seq in 0..SENT {
                client.send_value(message(seq)).await;
                written.fetch_add(1, Ordering::SeqCst);
            }
            client
        }
    });

    // The backend reads nothing yet: bounded by the client's queue, the relay's hand,
    // the backend link's queue, the batch its writer gathers for one write (up to
    // 64 KiB, `framing::write_lines`), and the bytes of the pipe.
    let held = settle(&written).await;
    let shortest_line = message(0).to_string().len() + 1;
    let bound = CLIENT_QUEUE + 1 + CHANNEL_CAPACITY + (64 * 1024 + PIPE_BYTES) / shortest_line + 2;
    assert!(held < SENT, "the client was never held back");
    assert!(
        held <= bound,
        "{held} messages queued, over the bound {bound}"
    );

    for seq in 0..SENT {
        assert_eq!(backend.recv_message().await, message(seq));
    }
    let client = writer.await.expect("the client wrote everything");
    assert_eq!(written.load(Ordering::SeqCst), SENT);
    drop(client);
    assert_eq!(
        backend.recv().await,
        None,
        "the client left: the input closes"
    );
}

#[tokio::test]
async fn a_backend_that_dies_fails_each_request_in_flight_exactly_once() {
    let Session {
        mut client,
        mut backend,
        relay,
    } = Session::start();
    for id in 1..=3 {
        client
            .send_value(request(json!(id), "tools/call", json!({})))
            .await;
    }
    let mut forwarded = Vec::new();
    for _ in 1..=3 {
        forwarded.push(backend.recv_message().await["id"].clone());
    }
    backend.send(answer(&forwarded[1], json!({"ok": 2}))).await;
    drop(backend);

    assert_eq!(
        client.recv().await,
        (answer(&json!(2), json!({"ok": 2})), Some("2".into()))
    );
    for id in [1, 3] {
        let error = json!({"jsonrpc": "2.0", "id": id, "error": {
            "code": BACKEND_UNAVAILABLE,
            "message": format!("{BACKEND_EXITED} before answering `tools/call`"),
            "data": {"method": "tools/call"}}});
        assert_eq!(client.recv().await, (error, Some(id.to_string())));
    }
    client.assert_closed().await;
    assert_eq!(
        ended(relay).await,
        RelayEnd::BackendClosed(BACKEND_EXITED.into())
    );
}

#[tokio::test]
async fn a_client_that_leaves_has_its_requests_cancelled_upstream() {
    let Session {
        client,
        mut backend,
        relay,
    } = Session::start();
    for id in ["a", "b"] {
        client
            .send_value(request(json!(id), "tools/call", json!({})))
            .await;
    }
    let a = backend.recv_message().await;
    let b = backend.recv_message().await;
    drop(client);

    assert_eq!(
        backend.recv_message().await,
        cancelled(&a["id"], "the client left")
    );
    assert_eq!(
        backend.recv_message().await,
        cancelled(&b["id"], "the client left")
    );
    assert_eq!(backend.recv().await, None, "then its input closes");
    drop(backend);
    assert_eq!(ended(relay).await, RelayEnd::ClientClosed);
}

#[tokio::test]
async fn a_proxy_that_stops_cancels_upstream_and_answers_the_client() {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let Session {
        mut client,
        mut backend,
        relay,
    } = Session::until(16, async {
        stopped.await.ok();
    });
    client
        .send_value(request(json!(1), "tools/call", json!({})))
        .await;
    let call = backend.recv_message().await;
    stop.send(()).expect("the relay is running");

    assert_eq!(
        backend.recv_message().await,
        cancelled(&call["id"], "the proxy is shutting down")
    );
    assert_eq!(backend.recv().await, None, "then its input closes");
    drop(backend);
    let error = json!({"jsonrpc": "2.0", "id": 1, "error": {
        "code": BACKEND_UNAVAILABLE,
        "message": "the proxy is shutting down before answering `tools/call`",
        "data": {"method": "tools/call"}}});
    assert_eq!(client.recv().await, (error, Some("1".into())));
    client.assert_closed().await;
    assert_eq!(ended(relay).await, RelayEnd::Shutdown);
}

#[tokio::test]
async fn unreadable_answer_with_a_readable_id_fails_its_request_once() {
    let (client_link, mut client) = link();
    let (backend_link, mut backend) = link();
    let config = RelayConfig {
        shutdown_grace: Duration::from_millis(100),
        gateway: GatewayOptions::default(),
        ..config("faulty")
    };
    let relay = tokio::spawn(
        SessionRelay::new(config, client_link, backend_link).run(std::future::pending()),
    );
    for id in ["\"a\"", "\"b\""] {
        let request = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call"}}"#);
        client.send_json(&request).await;
    }
    let first = backend.from_relay.recv().await.expect("forwarded");
    let second = backend.from_relay.recv().await.expect("forwarded");
    let first_id = first.message.id().expect("a request").to_owned();
    let second_id = second.message.id().expect("a request").to_owned();

    // Unreadable and without an id: nothing to fail, "b" waits on.
    let error = ParseError::Json("expected value at line 1 column 9".into());
    backend.send(Frame::Malformed { error, id: None }).await;
    // Unreadable with the id of "a": "a" fails, and its late real answer is dropped.
    let error = ParseError::Json("expected value at line 1 column 40".into());
    let id = Some(first_id.clone());
    backend.send(Frame::Malformed { error, id }).await;
    let late = format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{}}}}"#,
        first_id.get()
    );
    backend.send_json(&late).await;
    let answer = format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{}}}}"#,
        second_id.get()
    );
    backend.send_json(&answer).await;
    drop(backend.to_relay);
    assert!(matches!(
        relay.await.expect("relay ends"),
        RelayEnd::BackendClosed(_)
    ));

    let mut answers = Vec::new();
    while let Some(out) = client.from_relay.recv().await {
        answers.push(out.message.to_json());
    }
    assert_eq!(
        answers,
        [
            r#"{"jsonrpc":"2.0","id":"a","error":{"code":-32603,"message":"backend `faulty` sent a message that cannot be read: invalid JSON: expected value at line 1 column 40","data":{"method":"tools/call"}}}"#,
            r#"{"jsonrpc":"2.0","id":"b","result":{}}"#,
        ]
    );
}

/// Notes, for each message it observes, its method and whether the relay had
/// already queued anything for the backend then.
struct ObserveTimes {
    backend: mpsc::Sender<Outbound>,
    seen: std::sync::Mutex<Vec<(String, bool)>>,
}

impl Interceptor for ObserveTimes {
    fn intercept<'a>(&'a self, msg: Intercepted<'a>) -> VerdictFuture<'a> {
        PassAll.intercept(msg)
    }

    fn observe(&self, msg: &Intercepted<'_>, _verdict: &Verdict) {
        let queued = self.backend.capacity() < self.backend.max_capacity();
        let mut seen = self.seen.lock().unwrap();
        seen.push((msg.method.to_owned(), queued));
    }
}

#[tokio::test]
async fn observe_is_called_before_the_relay_acts_on_the_verdict() {
    let (client_link, client) = link();
    let (backend_link, mut backend) = link();
    let observer = Arc::new(ObserveTimes {
        backend: backend_link.outbound.clone(),
        seen: Default::default(),
    });
    let config = RelayConfig {
        session: "test".into(),
        transport: Transport::Stdio,
        server: "backend".into(),
        interceptor: observer.clone(),
        shutdown_grace: Duration::from_millis(100),
        gateway: GatewayOptions::default(),
        principal: None,
    };
    let relay = tokio::spawn(
        SessionRelay::new(config, client_link, backend_link).run(std::future::pending()),
    );
    client
        .send_json(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .await;
    let forwarded = backend.from_relay.recv().await.expect("forwarded");
    assert_eq!(
        forwarded.message.to_json(),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
    );
    relay.abort();
    let seen = observer.seen.lock().unwrap().clone();
    assert_eq!(seen, [("notifications/initialized".to_owned(), false)]);
}

/// Notes the principal each message is lent with, by address, and its subject.
#[derive(Default)]
struct ObservePrincipal {
    seen: std::sync::Mutex<Vec<(String, Option<usize>)>>,
    subjects: std::sync::Mutex<Vec<(Kind, Option<String>)>>,
}

impl Interceptor for ObservePrincipal {
    fn intercept<'a>(&'a self, msg: Intercepted<'a>) -> VerdictFuture<'a> {
        let at = msg.principal.map(|p| Arc::as_ptr(p) as usize);
        self.seen.lock().unwrap().push((msg.method.to_owned(), at));
        let subject = msg.principal.map(|p| p.principal().subject.clone());
        self.subjects.lock().unwrap().push((msg.kind, subject));
        PassAll.intercept(msg)
    }
}

fn principal_of(subject: &str) -> Arc<crate::wire::link::Principal> {
    Arc::new(crate::wire::link::Principal {
        issuer: "https://idp.test".into(),
        subject: subject.into(),
        scopes: Vec::new(),
        claims: Default::default(),
    })
}

/// Sessionless (2026-07-28) clients share one session with no principal of its own:
/// each request is lent its own sender's, and so is its answer.
#[tokio::test]
async fn a_sessionless_request_and_its_answer_are_lent_the_requests_own_principal() {
    let (client_link, client) = link();
    let (backend_link, mut backend) = link();
    let observer = Arc::new(ObservePrincipal::default());
    let config = RelayConfig {
        interceptor: observer.clone(),
        ..config("backend")
    };
    let relay = tokio::spawn(
        SessionRelay::new(config, client_link, backend_link).run(std::future::pending()),
    );
    let mut client = client;
    for (id, sender) in [(1, Some("alice")), (2, Some("bob")), (3, None)] {
        let request = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"x"}}}}"#
        );
        let Ok(Parsed::One(message)) = Message::parse(&request) else {
            unreachable!("one message")
        };
        let sessionless = crate::wire::link::Sessionless {
            headers: Arc::new(http::HeaderMap::new()),
            principal: sender.map(principal_of),
        };
        let inbound = Inbound::Frame {
            frame: Frame::Message(message),
            related: None,
            sessionless: Some(sessionless),
            head: None,
        };
        client.to_relay.send(inbound).await.expect("relay running");
    }
    // Answered last to first.
    let mut forwarded = Vec::new();
    for _ in 0..3 {
        let request = backend.from_relay.recv().await.expect("forwarded");
        forwarded.push(request.message.id().expect("a request").get().to_owned());
    }
    for id in forwarded.iter().rev() {
        backend
            .send_json(&format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#))
            .await;
    }
    for _ in 0..3 {
        client.from_relay.recv().await.expect("answered");
    }
    relay.abort();
    let subjects = observer.subjects.lock().unwrap().clone();
    let of = |s: &str| Some(s.to_owned());
    assert_eq!(
        subjects,
        [
            (Kind::Request, of("alice")),
            (Kind::Request, of("bob")),
            (Kind::Request, None),
            (Kind::Response, None),
            (Kind::Response, of("bob")),
            (Kind::Response, of("alice")),
        ]
    );
}

#[tokio::test]
async fn every_message_of_a_session_is_lent_the_sessions_one_principal() {
    let (client_link, mut client) = link();
    let (backend_link, mut backend) = link();
    let observer = Arc::new(ObservePrincipal::default());
    let principal = Arc::new(SessionPrincipal::new(Arc::new(
        crate::wire::link::Principal {
            issuer: "https://idp.test".into(),
            subject: "alice".into(),
            scopes: vec!["admin".into()],
            claims: Default::default(),
        },
    )));
    let config = RelayConfig {
        interceptor: observer.clone(),
        principal: Some(principal.clone()),
        ..config("backend")
    };
    let relay = tokio::spawn(
        SessionRelay::new(config, client_link, backend_link).run(std::future::pending()),
    );
    client
        .send_json(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#)
        .await;
    let forwarded = backend.from_relay.recv().await.expect("forwarded");
    let id = forwarded.message.id().expect("a request").get().to_owned();
    backend
        .send_json(&format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#))
        .await;
    let answer = client.from_relay.recv().await.expect("answered");
    assert_eq!(
        answer.message.to_json(),
        r#"{"jsonrpc":"2.0","id":1,"result":{}}"#
    );
    relay.abort();
    let at = Some(Arc::as_ptr(&principal) as usize);
    let seen = observer.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [("tools/call".to_owned(), at), ("tools/call".to_owned(), at)],
        "the request and its answer, each with the session's principal"
    );
}

#[test]
fn respond_to_a_notification_forwards_it_with_the_new_params() {
    let params = || Some(jsonrpc::raw(r#"{"level":"info"}"#).into());
    let new = jsonrpc::raw(r#"{"level":"debug"}"#).into();
    let forwarded = notification_params(Verdict::Respond(new), params(), "m");
    let forwarded = forwarded.expect("not dropped").expect("with params");
    assert_eq!(forwarded.get(), r#"{"level":"debug"}"#);
    let reject = Verdict::Reject(ErrorObject::new(-32000, "no"));
    assert!(notification_params(reject, params(), "m").is_none());
    let passed = notification_params(Verdict::Pass, params(), "m").expect("not dropped");
    assert_eq!(passed.expect("with params").get(), r#"{"level":"info"}"#);
}

/// The relay is a router with a set of backends (today's proxy is the set of one):
/// equal ids from two backends stay apart, each answer and cancellation reaches the
/// backend it belongs to, what the client announces reaches all, lists are merged
/// with each server's names, calls go to the server that offers the name, and one
/// backend going away fails only its own requests while the other serves on.
#[tokio::test]
async fn two_backends_keep_their_requests_apart_and_one_dying_spares_the_other() {
    let (mut client, mut first, mut second, relay) = gateway_of_two();

    client
        .send_value(notification("notifications/initialized", json!({})))
        .await;
    for backend in [&mut first, &mut second] {
        let (seen, _) = backend.recv().await;
        assert_eq!(seen["method"], "notifications/initialized");
    }

    // Both backends ask the client something under the same id.
    first
        .send_value(request(
            json!(1),
            "sampling/createMessage",
            json!({"from": "first"}),
        ))
        .await;
    second
        .send_value(request(
            json!(1),
            "sampling/createMessage",
            json!({"from": "second"}),
        ))
        .await;
    let (ask_first, _) = client.recv().await;
    let (ask_second, _) = client.recv().await;
    assert_ne!(
        ask_first["id"], ask_second["id"],
        "one id space towards the client"
    );
    assert_eq!(ask_first["params"]["from"], "first");
    assert_eq!(ask_second["params"]["from"], "second");

    // The second withdraws its question: the client hears it under the id it knows.
    second
        .send_value(cancelled(&json!(1), "changed its mind"))
        .await;
    let (withdrawn, _) = client.recv().await;
    assert_eq!(withdrawn["params"]["requestId"], ask_second["id"]);

    // The client's answer goes to the backend that asked, under its own id.
    client
        .send_value(answer(&ask_first["id"], json!({"to": "first"})))
        .await;
    let (answered, _) = first.recv().await;
    assert_eq!(answered, answer(&json!(1), json!({"to": "first"})));

    // A list goes to both; each answers with its own names; the client gets one list.
    client
        .send_value(request(json!("list"), "tools/list", json!({})))
        .await;
    let (first_list, _) = first.recv().await;
    let (second_list, _) = second.recv().await;
    assert_eq!(first_list["method"], "tools/list");
    assert_eq!(second_list["method"], "tools/list");
    second
        .send_value(answer(
            &second_list["id"],
            json!({"tools": [{"name": "read", "inputSchema": {}}]}),
        ))
        .await;
    first
        .send_value(answer(
            &first_list["id"],
            json!({"tools": [{"name": "read", "inputSchema": {}}], "nextCursor": "page-2"}),
        ))
        .await;
    let (merged, route) = client.recv().await;
    assert_eq!(route.as_deref(), Some(r#""list""#));
    assert_eq!(merged["id"], "list");
    let names: Vec<&str> = merged["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first_read", "second_read"]);
    assert!(merged["result"]["nextCursor"].is_string(), "{merged}");

    // A call goes to the server that offers the name, under the name it knows.
    client
        .send_value(request(
            json!("call"),
            "tools/call",
            json!({"name": "first_read"}),
        ))
        .await;
    let (forwarded, _) = first.recv().await;
    assert_eq!(forwarded["params"], json!({"name": "read"}));

    // The first backend dies with that call in flight: it alone fails, and the client
    // hears that the lists changed.
    drop(first);
    let (failed, route) = client.recv().await;
    assert_eq!(failed["id"], "call");
    assert_eq!(failed["error"]["code"], -32000, "{failed}");
    assert_eq!(route.as_deref(), Some(r#""call""#));
    for list in ["tools", "prompts", "resources"] {
        let (changed, _) = client.recv().await;
        assert_eq!(
            changed["method"],
            format!("notifications/{list}/list_changed")
        );
    }

    // A list now goes to the second alone, and the first's names are gone.
    client
        .send_value(request(json!("again"), "tools/list", json!({})))
        .await;
    let (only, _) = second.recv().await;
    second
        .send_value(answer(
            &only["id"],
            json!({"tools": [{"name": "read", "inputSchema": {}}]}),
        ))
        .await;
    let (merged, _) = client.recv().await;
    assert_eq!(
        merged["result"]["tools"][0]["name"], "second_read",
        "{merged}"
    );
    assert_eq!(merged["result"]["tools"].as_array().unwrap().len(), 1);
    client
        .send_value(request(
            json!("gone"),
            "tools/call",
            json!({"name": "first_read"}),
        ))
        .await;
    let (refused, _) = client.recv().await;
    assert_eq!(refused["id"], "gone");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("first"),
        "{refused}"
    );

    // The second still serves: its next question reaches the client.
    second
        .send_value(request(json!(2), "roots/list", json!({})))
        .await;
    let (asked, _) = client.recv().await;
    assert_eq!(asked["method"], "roots/list");
    assert!(
        !relay.is_finished(),
        "one backend left, the session goes on"
    );

    drop(second);
    assert!(matches!(ended(relay).await, RelayEnd::BackendClosed(_)));
}

/// A fanned-out request gets exactly one answer whatever its parts meet: a server that
/// answers its part with something unreadable, or cannot be sent its part, is left out
/// of the merged answer instead of answering the client on its own.
#[tokio::test]
async fn a_fan_out_answers_once_when_one_part_fails() {
    let (mut client, mut first, mut second, relay) = gateway_of_two();

    client
        .send_value(request(json!(1), "prompts/list", json!({})))
        .await;
    let (to_first, _) = first.recv().await;
    let (to_second, _) = second.recv().await;
    let unreadable = Frame::Malformed {
        error: ParseError::Json("expected value".into()),
        id: Some(jsonrpc::raw(to_first["id"].to_string())),
    };
    first.send(unreadable).await;
    second
        .send_value(answer(
            &to_second["id"],
            json!({"prompts": [{"name": "greet"}]}),
        ))
        .await;
    let (merged, _) = client.recv().await;
    assert_eq!(merged["id"], 1);
    assert_eq!(
        merged["result"],
        json!({"prompts": [{"name": "second_greet"}]}),
        "{merged}"
    );
    client.send_value(marker()).await;
    let (next, _) = first.recv().await;
    assert_eq!(next, marker(), "the first got nothing more");
    let (next, _) = second.recv().await;
    assert_eq!(next, marker());
    // Exactly one answer reached the client: the next thing it sees is new.
    second
        .send_value(notification("notifications/tools/list_changed", json!({})))
        .await;
    let (next, _) = client.recv().await;
    assert_eq!(next["method"], "notifications/tools/list_changed", "{next}");
    relay.abort();
}

/// A server with a request timeout: a request it does not answer in time fails with
/// an error naming the server, the method and the time, the server is told to cancel
/// it, and its late answer is dropped (the client got exactly one answer).
#[tokio::test]
async fn a_request_the_server_does_not_answer_in_time_fails_and_is_cancelled() {
    let (client_link, mut client) = link();
    let (backend_link, mut server) = link();
    let slow = BackendLink {
        timeout: Some(Duration::from_millis(100)),
        ..backend("slow", backend_link)
    };
    let relay = SessionRelay::with_backends(config("slow"), client_link, vec![slow]);
    let relay = tokio::spawn(relay.run(std::future::pending()));

    client
        .send_value(request(json!(7), "tools/call", json!({"name": "wait"})))
        .await;
    let (forwarded, _) = server.recv().await;
    let (failed, route) = client.recv().await;
    assert_eq!(failed["id"], 7);
    assert_eq!(route.as_deref(), Some("7"));
    assert_eq!(failed["error"]["code"], -32000);
    assert_eq!(
        failed["error"]["message"],
        "server `slow` did not answer `tools/call` within 100ms"
    );
    assert_eq!(failed["error"]["data"]["timeout_ms"], 100);
    let (cancel, _) = server.recv().await;
    assert_eq!(cancel["method"], "notifications/cancelled");
    assert_eq!(cancel["params"]["requestId"], forwarded["id"]);

    server
        .send_value(answer(&forwarded["id"], json!({"late": true})))
        .await;
    server.send_value(marker()).await;
    let (next, _) = client.recv().await;
    assert_eq!(next, marker(), "the late answer was dropped");

    // An answer in time stops the clock: nothing fails later.
    client
        .send_value(request(json!(8), "tools/call", json!({"name": "quick"})))
        .await;
    let (forwarded, _) = server.recv().await;
    server
        .send_value(answer(&forwarded["id"], json!({"ok": true})))
        .await;
    let (answered, _) = client.recv().await;
    assert_eq!(answered, answer(&json!(8), json!({"ok": true})));
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.send_value(marker()).await;
    let (next, _) = client.recv().await;
    assert_eq!(next, marker(), "no timeout fired for the answered request");
    relay.abort();
}

/// A server that does not answer the gateway's `initialize` in time is left out of
/// the client's handshake instead of holding it (and is not sent a cancellation:
/// `initialize` must not be cancelled); calls to it fail naming it and why; when it
/// answers at last it joins: it hears what the client announced meanwhile, and the
/// client hears that the lists changed.
#[tokio::test(start_paused = true)]
async fn a_slow_server_does_not_hold_the_gateways_handshake() {
    let (mut client, mut first, mut second, relay) = gateway_of_two();
    let init = json!({"protocolVersion": "2025-11-25", "capabilities": {},
                      "clientInfo": {"name": "c", "version": "1"}});
    client
        .send_value(request(json!(1), "initialize", init))
        .await;
    let (to_first, _) = first.recv().await;
    let (to_second, _) = second.recv().await;
    assert_eq!(to_second["method"], "initialize");
    first
        .send_value(answer(
            &to_first["id"],
            json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                   "serverInfo": {"name": "first"}}),
        ))
        .await;
    // The paused clock moves on once everything waits: past the start timeout.
    let (merged, _) = client.recv().await;
    assert_eq!(merged["id"], 1);
    assert_eq!(
        merged["result"]["serverInfo"]["name"], "interpose",
        "{merged}"
    );
    assert_eq!(
        merged["result"]["capabilities"]["tools"]["listChanged"],
        true
    );
    client
        .send_value(notification("notifications/initialized", json!({})))
        .await;
    let (initialized, _) = first.recv().await;
    assert_eq!(initialized["method"], "notifications/initialized");

    // Its names are not known yet; once known (a list it answered), a call to one of
    // them fails at once, naming it and why.
    let names = json!({"tools": [{"name": "wait", "inputSchema": {}}]});
    client
        .send_value(request(
            json!(2),
            "tools/call",
            json!({"name": "second_wait"}),
        ))
        .await;
    let (unknown, _) = client.recv().await;
    assert_eq!(unknown["id"], 2);
    assert!(unknown["error"].is_object(), "{unknown}");

    // It answers at last: it joins, and hears `initialized` (and nothing before it:
    // no cancellation of `initialize`).
    second
        .send_value(answer(
            &to_second["id"],
            json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                   "serverInfo": {"name": "second"}}),
        ))
        .await;
    let (next, _) = second.recv().await;
    assert_eq!(next["method"], "notifications/initialized", "{next}");
    for list in ["tools", "prompts", "resources"] {
        let (changed, _) = client.recv().await;
        assert_eq!(
            changed["method"],
            format!("notifications/{list}/list_changed")
        );
    }
    client
        .send_value(request(json!(3), "tools/list", json!({})))
        .await;
    let (to_first, _) = first.recv().await;
    let (to_second, _) = second.recv().await;
    first
        .send_value(answer(&to_first["id"], json!({"tools": []})))
        .await;
    second.send_value(answer(&to_second["id"], names)).await;
    let (listed, _) = client.recv().await;
    assert_eq!(
        listed["result"]["tools"][0]["name"], "second_wait",
        "{listed}"
    );
    client
        .send_value(request(
            json!(4),
            "tools/call",
            json!({"name": "second_wait"}),
        ))
        .await;
    let (call, _) = second.recv().await;
    assert_eq!(call["params"]["name"], "wait");
    relay.abort();
}

/// While a server has not answered its `initialize` past its start timeout, a call
/// to a name it offered fails at once with an error naming it and saying why.
#[tokio::test(start_paused = true)]
async fn a_call_to_a_server_that_did_not_start_in_time_says_so() {
    let (client_link, mut client) = link();
    let (first_link, mut first) = link();
    let (second_link, mut second) = link();
    let short = |link| BackendLink {
        lifecycle: Lifecycle {
            start_timeout: Duration::from_secs(2),
            ..Lifecycle::default()
        },
        ..backend("second", link)
    };
    let relay = SessionRelay::with_backends(
        config("gateway"),
        client_link,
        vec![backend("first", first_link), short(second_link)],
    );
    let relay = tokio::spawn(relay.run(std::future::pending()));
    // The second's names are known from a list before the handshake (a 2026-07-28
    // client needs none; here it only fills the names).
    client
        .send_value(request(json!(1), "tools/list", json!({})))
        .await;
    let (to_first, _) = first.recv().await;
    let (to_second, _) = second.recv().await;
    first
        .send_value(answer(&to_first["id"], json!({"tools": []})))
        .await;
    second
        .send_value(answer(
            &to_second["id"],
            json!({"tools": [{"name": "wait", "inputSchema": {}}]}),
        ))
        .await;
    let (listed, _) = client.recv().await;
    assert_eq!(listed["result"]["tools"][0]["name"], "second_wait");

    let init = json!({"protocolVersion": "2025-11-25", "capabilities": {},
                      "clientInfo": {"name": "c", "version": "1"}});
    client
        .send_value(request(json!(2), "initialize", init))
        .await;
    let (to_first, _) = first.recv().await;
    let (_, _) = second.recv().await;
    first
        .send_value(answer(
            &to_first["id"],
            json!({"protocolVersion": "2025-11-25", "capabilities": {}}),
        ))
        .await;
    let (merged, _) = client.recv().await;
    assert_eq!(merged["id"], 2);
    client
        .send_value(request(
            json!(3),
            "tools/call",
            json!({"name": "second_wait"}),
        ))
        .await;
    let (refused, _) = client.recv().await;
    assert_eq!(refused["id"], 3);
    assert_eq!(refused["error"]["code"], -32000);
    assert_eq!(
        refused["error"]["message"], "server `second` did not start within 2s",
        "{refused}"
    );
    assert_eq!(refused["error"]["data"]["server"], "second");
    relay.abort();
}

/// Links handed out one by one, each time the relay connects the backend again, and
/// how many were asked for.
fn connector(links: Vec<Link>) -> (super::super::lifecycle::Connector, Arc<AtomicUsize>) {
    let links = std::sync::Mutex::new(std::collections::VecDeque::from(links));
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    let connect = move || {
        count.fetch_add(1, Ordering::SeqCst);
        let link = links.lock().unwrap().pop_front();
        link.map(|link| (link, UpstreamGuard::Nothing))
            .ok_or_else(|| anyhow::anyhow!("no more test links"))
    };
    (Arc::new(connect), asked)
}

async fn expect_lists_changed(client: &mut Peer) {
    for list in ["tools", "prompts", "resources"] {
        let (changed, _) = client.recv().await;
        assert_eq!(
            changed["method"],
            format!("notifications/{list}/list_changed")
        );
    }
}

/// A server with `restart = "on-failure"` that dies: the calls to it fail at once
/// while it is down; after its backoff it is connected again and given the client's
/// `initialize`, then `initialized` and the client's last `logging/setLevel`, and the
/// client hears the lists changed; calls reach it again. When it comes back in
/// another protocol version, it is given up on.
#[tokio::test(start_paused = true)]
async fn a_server_that_dies_is_restarted_with_the_clients_handshake_replayed() {
    let (client_link, mut client) = link();
    let (first_link, mut first) = link();
    let (second_link, second) = link();
    let (again_link, mut again) = link();
    let (third_link, mut third) = link();
    let (connect, connects) = connector(vec![again_link, third_link]);
    let restarting = BackendLink {
        lifecycle: Lifecycle {
            restart: super::super::lifecycle::RestartPolicy::OnFailure,
            connect: Some(connect),
            ..Lifecycle::default()
        },
        ..backend("second", second_link)
    };
    let relay = SessionRelay::with_backends(
        config("gateway"),
        client_link,
        vec![backend("first", first_link), restarting],
    );
    let relay = tokio::spawn(relay.run(std::future::pending()));
    let mut second = second;

    let init = json!({"protocolVersion": "2025-11-25", "capabilities": {},
                      "clientInfo": {"name": "c", "version": "1"}});
    let init_result = json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}});
    client
        .send_value(request(json!(1), "initialize", init.clone()))
        .await;
    for backend in [&mut first, &mut second] {
        let (asked, _) = backend.recv().await;
        backend
            .send_value(answer(&asked["id"], init_result.clone()))
            .await;
    }
    let (merged, _) = client.recv().await;
    assert_eq!(merged["id"], 1);
    client
        .send_value(notification("notifications/initialized", json!({})))
        .await;
    let level = json!({"level": "debug"});
    client
        .send_value(request(json!(2), "logging/setLevel", level.clone()))
        .await;
    for backend in [&mut first, &mut second] {
        let (initialized, _) = backend.recv().await;
        assert_eq!(initialized["method"], "notifications/initialized");
        let (set, _) = backend.recv().await;
        backend.send_value(answer(&set["id"], json!({}))).await;
    }
    let (set, _) = client.recv().await;
    assert_eq!(set, answer(&json!(2), json!({})));

    // It dies; a call to it in the meantime fails at once, saying a restart is due.
    drop(second);
    expect_lists_changed(&mut client).await;
    client
        .send_value(request(
            json!(3),
            "tools/call",
            json!({"name": "second_echo"}),
        ))
        .await;
    let (refused, _) = client.recv().await;
    assert_eq!(refused["id"], 3);
    assert_eq!(
        refused["error"]["message"],
        "server `second` is not available: the backend connection closed; restart 1 is pending",
        "{refused}"
    );

    // The paused clock runs to the restart: the handshake is replayed in order.
    let (replayed, _) = again.recv().await;
    assert_eq!(connects.load(Ordering::SeqCst), 1);
    assert_eq!(replayed["method"], "initialize");
    assert_eq!(replayed["params"], init);
    again
        .send_value(answer(&replayed["id"], init_result.clone()))
        .await;
    let (initialized, _) = again.recv().await;
    assert_eq!(initialized["method"], "notifications/initialized");
    let (set, _) = again.recv().await;
    assert_eq!(set["method"], "logging/setLevel");
    assert_eq!(set["params"], level);
    again.send_value(answer(&set["id"], json!({}))).await;
    expect_lists_changed(&mut client).await;

    client
        .send_value(request(
            json!(4),
            "tools/call",
            json!({"name": "second_echo"}),
        ))
        .await;
    let (call, _) = again.recv().await;
    assert_eq!(call["params"]["name"], "echo");
    again
        .send_value(answer(&call["id"], json!({"content": []})))
        .await;
    let (answered, _) = client.recv().await;
    assert_eq!(answered, answer(&json!(4), json!({"content": []})));

    // It dies again and comes back speaking another version: it is given up on.
    drop(again);
    expect_lists_changed(&mut client).await;
    let (replayed, _) = third.recv().await;
    third
        .send_value(answer(
            &replayed["id"],
            json!({"protocolVersion": "2024-11-05", "capabilities": {}}),
        ))
        .await;
    third.assert_closed().await;
    client
        .send_value(request(
            json!(5),
            "tools/call",
            json!({"name": "second_echo"}),
        ))
        .await;
    let (refused, _) = client.recv().await;
    assert_eq!(refused["id"], 5, "no list_changed for a server given up on");
    assert_eq!(
        refused["error"]["message"],
        "server `second` is not available: given up: it settled on protocol version \
         2024-11-05, not 2025-11-25 as before",
        "{refused}"
    );
    assert_eq!(connects.load(Ordering::SeqCst), 2);
    assert!(!relay.is_finished(), "the first still serves");
    relay.abort();
}

/// A lazy server whose catalog is filled is not started with the session: the
/// client's `initialize` and first list pages are answered from the catalog; the
/// first call routed to it starts it and waits for its handshake. One that does not
/// answer within its start timeout fails the waiting call, naming it; when it answers
/// late, it joins and takes calls.
#[tokio::test(start_paused = true)]
async fn a_lazy_server_answers_from_its_catalog_until_a_call_starts_it() {
    let (client_link, mut client) = link();
    let (first_link, mut first) = link();
    let (lazy_link, mut lazy) = link();
    let (connect, connects) = connector(vec![lazy_link]);
    let catalog = Arc::new(super::super::lifecycle::Catalog::default());
    catalog.record_initialize(&json!({"protocolVersion": "2025-11-25",
        "capabilities": {"tools": {}}, "instructions": "Sleeps a lot."}));
    catalog.record_first_page(
        super::super::lists::ListKind::Tools,
        &json!({"tools": [{"name": "nap", "inputSchema": {}}]}),
    );
    let sleepy = BackendLink {
        name: "sleepy".into(),
        start: BackendStart::OnFirstUse,
        timeout: None,
        chain: None,
        lifecycle: Lifecycle {
            start_timeout: Duration::from_secs(2),
            connect: Some(connect),
            catalog: Some(catalog),
            ..Lifecycle::default()
        },
    };
    let relay = SessionRelay::with_backends(
        config("gateway"),
        client_link,
        vec![backend("first", first_link), sleepy],
    );
    let relay = tokio::spawn(relay.run(std::future::pending()));

    let init = json!({"protocolVersion": "2025-11-25", "capabilities": {},
                      "clientInfo": {"name": "c", "version": "1"}});
    client
        .send_value(request(json!(1), "initialize", init.clone()))
        .await;
    let (asked, _) = first.recv().await;
    first
        .send_value(answer(
            &asked["id"],
            json!({"protocolVersion": "2025-11-25", "capabilities": {}}),
        ))
        .await;
    let (merged, _) = client.recv().await;
    assert_eq!(merged["result"]["instructions"], "sleepy: Sleeps a lot.");
    client
        .send_value(notification("notifications/initialized", json!({})))
        .await;
    let (initialized, _) = first.recv().await;
    assert_eq!(initialized["method"], "notifications/initialized");
    client
        .send_value(request(json!(2), "tools/list", json!({})))
        .await;
    let (asked, _) = first.recv().await;
    first
        .send_value(answer(&asked["id"], json!({"tools": []})))
        .await;
    let (listed, _) = client.recv().await;
    assert_eq!(
        listed["result"]["tools"][0]["name"], "sleepy_nap",
        "{listed}"
    );
    assert_eq!(connects.load(Ordering::SeqCst), 0, "not started yet");

    // The first call starts it; it does not answer its `initialize` in time.
    client
        .send_value(request(
            json!(3),
            "tools/call",
            json!({"name": "sleepy_nap"}),
        ))
        .await;
    let (replayed, _) = lazy.recv().await;
    assert_eq!(connects.load(Ordering::SeqCst), 1);
    assert_eq!(replayed["method"], "initialize");
    assert_eq!(replayed["params"], init);
    let (failed, _) = client.recv().await;
    assert_eq!(failed["id"], 3);
    assert_eq!(
        failed["error"]["message"], "server `sleepy` did not start within 2s",
        "{failed}"
    );

    // It answers late: it joins (`initialized` first), and the next call reaches it.
    lazy.send_value(answer(
        &replayed["id"],
        json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}}),
    ))
    .await;
    let (initialized, _) = lazy.recv().await;
    assert_eq!(initialized["method"], "notifications/initialized");
    expect_lists_changed(&mut client).await;
    client
        .send_value(request(
            json!(4),
            "tools/call",
            json!({"name": "sleepy_nap"}),
        ))
        .await;
    let (call, _) = lazy.recv().await;
    assert_eq!(call["params"]["name"], "nap", "{call}");
    relay.abort();
}

/// One backend with restarts on: its `initialize` answer says its lists can change,
/// the session outlives it, requests while it is down fail at once naming it, and once
/// it is back (the client's handshake replayed) the client hears its lists changed.
#[tokio::test(start_paused = true)]
async fn one_backend_with_restarts_outlives_its_backend() {
    let (client_link, mut client) = link();
    let (backend_link, backend_peer) = link();
    let (again_link, mut again) = link();
    let (connect, _) = connector(vec![again_link]);
    let only = BackendLink {
        lifecycle: Lifecycle {
            restart: super::super::lifecycle::RestartPolicy::OnFailure,
            connect: Some(connect),
            ..Lifecycle::default()
        },
        ..backend("only", backend_link)
    };
    let relay = SessionRelay::with_backends(config("only"), client_link, vec![only]);
    let relay = tokio::spawn(relay.run(std::future::pending()));
    let mut backend = backend_peer;

    let init = json!({"protocolVersion": "2025-11-25", "capabilities": {},
                      "clientInfo": {"name": "c", "version": "1"}});
    client
        .send_value(request(json!(1), "initialize", init.clone()))
        .await;
    let (asked, _) = backend.recv().await;
    let result = json!({"protocolVersion": "2025-11-25",
                        "capabilities": {"tools": {}, "logging": {}},
                        "serverInfo": {"name": "only"}});
    backend
        .send_value(answer(&asked["id"], result.clone()))
        .await;
    let (answered, _) = client.recv().await;
    assert_eq!(
        answered["result"]["capabilities"],
        json!({"tools": {"listChanged": true}, "logging": {}})
    );
    assert_eq!(answered["result"]["serverInfo"]["name"], "only");

    // It closes its output; once the relay has seen it go, it closes its input.
    drop(backend.to_relay);
    assert!(
        backend.from_relay.recv().await.is_none(),
        "nothing more goes to it"
    );
    client
        .send_value(request(json!(2), "tools/call", json!({"name": "x"})))
        .await;
    let (refused, _) = client.recv().await;
    assert_eq!(refused["id"], 2);
    assert_eq!(
        refused["error"]["message"],
        "server `only` is not available: the backend connection closed; restart 1 is pending"
    );
    assert!(!relay.is_finished(), "the session goes on");

    let (replayed, _) = again.recv().await;
    assert_eq!(replayed["params"], init);
    again.send_value(answer(&replayed["id"], result)).await;
    expect_lists_changed(&mut client).await;
    client
        .send_value(request(json!(3), "tools/call", json!({"name": "x"})))
        .await;
    let (call, _) = again.recv().await;
    assert_eq!(call["params"]["name"], "x", "its names as they are: {call}");
    relay.abort();
}

/// `subscriptions/listen` through a gateway: each server is asked for its own
/// resources, the client gets one acknowledgement made of both, each server's
/// notifications on its stream reach the client's naming its listen request (and the
/// resource as the client knows it), and the client's cancellation ends every part,
/// after which it gets one answer.
#[tokio::test]
async fn a_listen_is_fanned_out_and_acknowledged_once_for_all_servers() {
    let (mut client, mut first, mut second, relay) = gateway_of_two();
    let filter = json!({
        "toolsListChanged": true,
        "resourceSubscriptions": ["first+file:///a", "second+mem://b"]
    });
    client
        .send_value(request(
            json!(7),
            "subscriptions/listen",
            json!({"notifications": filter}),
        ))
        .await;
    let (to_first, _) = first.recv().await;
    let (to_second, _) = second.recv().await;
    assert_eq!(to_first["method"], "subscriptions/listen");
    let asked = |to: &Value| to["params"]["notifications"].clone();
    assert_eq!(
        asked(&to_first),
        json!({"toolsListChanged": true, "resourceSubscriptions": ["file:///a"]})
    );
    assert_eq!(
        asked(&to_second),
        json!({"toolsListChanged": true, "resourceSubscriptions": ["mem://b"]})
    );
    let on_stream = |to: &Value, params: Value| {
        let mut params = params;
        params["_meta"] = json!({"io.modelcontextprotocol/subscriptionId": to["id"]});
        params
    };
    let first_ack = json!({"notifications": {"toolsListChanged": true, "resourceSubscriptions": ["file:///a"]}});
    first
        .send_value(notification(
            "notifications/subscriptions/acknowledged",
            on_stream(&to_first, first_ack),
        ))
        .await;
    let second_ack =
        json!({"notifications": {"toolsListChanged": false, "resourceSubscriptions": ["mem://b"]}});
    second
        .send_value(notification(
            "notifications/subscriptions/acknowledged",
            on_stream(&to_second, second_ack),
        ))
        .await;
    let (ack, related) = client.recv().await;
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(
        ack["params"],
        json!({
            "notifications": {
                "toolsListChanged": true,
                "resourceSubscriptions": ["first+file:///a", "second+mem://b"]
            },
            "_meta": {"io.modelcontextprotocol/subscriptionId": 7}
        })
    );
    assert_eq!(related.as_deref(), Some("7"));

    let updated = on_stream(&to_second, json!({"uri": "mem://b"}));
    second
        .send_value(notification("notifications/resources/updated", updated))
        .await;
    let (update, related) = client.recv().await;
    assert_eq!(update["method"], "notifications/resources/updated");
    assert_eq!(update["params"]["uri"], "second+mem://b");
    assert_eq!(
        update["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        7
    );
    assert_eq!(related.as_deref(), Some("7"));

    client.send_value(cancelled(&json!(7), "done")).await;
    for (server, to) in [(&mut first, &to_first), (&mut second, &to_second)] {
        let (cancel, _) = server.recv().await;
        assert_eq!(cancel["method"], "notifications/cancelled");
        assert_eq!(cancel["params"]["requestId"], to["id"]);
        server.send_value(answer(&to["id"], json!({}))).await;
    }
    let (end, _) = client.recv().await;
    assert_eq!(end, answer(&json!(7), json!({})));
    client.send_value(marker()).await;
    assert_eq!(first.recv().await.0, marker(), "the first got nothing more");
    relay.abort();
}

/// A chain that notes each message it is shown (`LABEL: direction kind method @server
/// name`, the name being the `name` in the params, or in the answered request's) and
/// refuses requests naming `refuse`.
struct Recorder {
    label: &'static str,
    refuse: Option<&'static str>,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Recorder {
    fn new(
        label: &'static str,
        refuse: Option<&'static str>,
        seen: &Arc<std::sync::Mutex<Vec<String>>>,
    ) -> Arc<Self> {
        Arc::new(Recorder {
            label,
            refuse,
            seen: seen.clone(),
        })
    }
}

impl Interceptor for Recorder {
    fn intercept<'a>(&'a self, msg: Intercepted<'a>) -> VerdictFuture<'a> {
        let name = [msg.payload, msg.request_payload]
            .into_iter()
            .flatten()
            .find_map(|p| {
                let params: Value = serde_json::from_str(p.get()).ok()?;
                params["name"].as_str().map(str::to_owned)
            });
        let mut line = format!(
            "{}: {} {} {} @{}",
            self.label,
            msg.direction.as_str(),
            msg.kind.as_str(),
            msg.method,
            msg.server
        );
        if let Some(name) = &name {
            line = format!("{line} {name}");
        }
        self.seen.lock().unwrap().push(line);
        match (msg.kind, name, self.refuse) {
            (Kind::Request, Some(name), Some(refused)) if name == refused => {
                let error = ErrorObject::new(-32001, format!("{} refuses {name}", self.label));
                VerdictFuture::ready(Verdict::Reject(error))
            }
            _ => VerdictFuture::ready(Verdict::Pass),
        }
    }

    fn wants_request_payload(&self) -> bool {
        true
    }
}

/// A gateway of two whose global chain and first server's chain record what they see
/// in `seen`; the first server's chain refuses requests naming `secret`, the global
/// chain those naming `forbidden`.
fn gateway_with_chains(
    seen: &Arc<std::sync::Mutex<Vec<String>>>,
) -> (Peer, Peer, Peer, tokio::task::JoinHandle<RelayEnd>) {
    let (client_link, client) = link();
    let (first_link, first) = link();
    let (second_link, second) = link();
    let config = RelayConfig {
        interceptor: Recorder::new("global", Some("forbidden"), seen),
        ..config("gateway")
    };
    let first_backend = BackendLink {
        chain: Some(Recorder::new("first", Some("secret"), seen)),
        ..backend("first", first_link)
    };
    let relay = SessionRelay::with_backends(
        config,
        client_link,
        vec![first_backend, backend("second", second_link)],
    );
    (
        client,
        first,
        second,
        tokio::spawn(relay.run(std::future::pending())),
    )
}

fn take_seen(seen: &Arc<std::sync::Mutex<Vec<String>>>) -> Vec<String> {
    std::mem::take(&mut *seen.lock().unwrap())
}

/// The order of docs/plugins.md: a routed call passes the global chain (the client's
/// names) then its server's (the server's names), and its answer the reverse; both
/// are told the owning server. A server without a chain is passed by its messages.
#[tokio::test]
async fn a_routed_call_walks_the_global_chain_then_its_servers_and_back() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (mut client, mut first, mut second, relay) = gateway_with_chains(&seen);

    client
        .send_value(request(
            json!(1),
            "tools/call",
            json!({"name": "first_read"}),
        ))
        .await;
    let (forwarded, _) = first.recv().await;
    assert_eq!(forwarded["params"], json!({"name": "read"}));
    first
        .send_value(answer(&forwarded["id"], json!({"content": []})))
        .await;
    let (answered, _) = client.recv().await;
    assert_eq!(answered, answer(&json!(1), json!({"content": []})));
    assert_eq!(
        take_seen(&seen),
        [
            "global: to-server request tools/call @first first_read",
            "first: to-server request tools/call @first read",
            "first: to-client response tools/call @first read",
            "global: to-client response tools/call @first first_read",
        ]
    );

    client
        .send_value(request(
            json!(2),
            "tools/call",
            json!({"name": "second_read"}),
        ))
        .await;
    let (forwarded, _) = second.recv().await;
    second
        .send_value(answer(&forwarded["id"], json!({"content": []})))
        .await;
    let (answered, _) = client.recv().await;
    assert_eq!(answered["id"], 2);
    assert_eq!(
        take_seen(&seen),
        [
            "global: to-server request tools/call @second second_read",
            "global: to-client response tools/call @second second_read",
        ]
    );
    relay.abort();
}

/// A server's chain refusing a call answers it once, with the request's id; the
/// refusal walks back through the global chain as that server's answer, and the
/// server never hears of the call.
#[tokio::test]
async fn a_refusal_by_a_servers_chain_is_one_answer_seen_by_the_global_chain() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (mut client, mut first, _second, relay) = gateway_with_chains(&seen);

    client
        .send_value(request(
            json!("r"),
            "tools/call",
            json!({"name": "first_secret"}),
        ))
        .await;
    let (refused, route) = client.recv().await;
    assert_eq!(refused["id"], "r");
    assert_eq!(refused["error"]["code"], -32001, "{refused}");
    assert_eq!(refused["error"]["message"], "first refuses secret");
    assert_eq!(route.as_deref(), Some(r#""r""#));
    assert_eq!(
        take_seen(&seen),
        [
            "global: to-server request tools/call @first first_secret",
            "first: to-server request tools/call @first secret",
            "global: to-client error tools/call @first first_secret",
        ]
    );
    // Messages are handled in order: once the client's next message has reached the
    // server, a second answer would be waiting for the client already.
    client.send_value(marker()).await;
    let (next, _) = first.recv().await;
    assert_eq!(next, marker(), "the server heard of the refused call");
    assert!(
        client.from_relay.try_recv().is_err(),
        "a second answer reached the client"
    );
    relay.abort();
}

/// A fan-out passes the global chain once each way (told the gateway's name), and
/// each server's chain on its own part; a server's notification and request pass its
/// chain before the global one, and an answer the global chain makes to that request
/// goes back through the server's chain.
#[tokio::test]
async fn a_fan_out_passes_the_global_chain_once_and_each_servers_on_its_part() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (mut client, mut first, mut second, relay) = gateway_with_chains(&seen);

    client
        .send_value(request(json!(1), "tools/list", json!({})))
        .await;
    for backend in [&mut first, &mut second] {
        let (part, _) = backend.recv().await;
        let tool = json!({"tools": [{"name": "read", "inputSchema": {}}]});
        backend.send_value(answer(&part["id"], tool)).await;
    }
    let (merged, _) = client.recv().await;
    assert_eq!(
        merged["result"]["tools"][1]["name"], "second_read",
        "{merged}"
    );
    assert_eq!(
        take_seen(&seen),
        [
            "global: to-server request tools/list @gateway",
            "first: to-server request tools/list @first",
            "first: to-client response tools/list @first",
            "global: to-client response tools/list @gateway",
        ]
    );

    first
        .send_value(notification(
            "notifications/message",
            json!({"level": "info"}),
        ))
        .await;
    let (told, _) = client.recv().await;
    assert_eq!(told["method"], "notifications/message");
    first
        .send_value(request(json!(7), "roots/list", json!({})))
        .await;
    let (asked, _) = client.recv().await;
    assert_eq!(asked["method"], "roots/list");
    client
        .send_value(answer(&asked["id"], json!({"roots": []})))
        .await;
    let (answered, _) = first.recv().await;
    assert_eq!(answered, answer(&json!(7), json!({"roots": []})));
    assert_eq!(
        take_seen(&seen),
        [
            "first: to-client notification notifications/message @first",
            "global: to-client notification notifications/message @first",
            "first: to-client request roots/list @first",
            "global: to-client request roots/list @first",
            "global: to-server response roots/list @first",
            "first: to-server response roots/list @first",
        ]
    );

    first
        .send_value(request(
            json!(8),
            "elicitation/create",
            json!({"name": "forbidden"}),
        ))
        .await;
    let (refused, _) = first.recv().await;
    assert_eq!(refused["id"], 8);
    assert_eq!(refused["error"]["message"], "global refuses forbidden");
    assert_eq!(
        take_seen(&seen),
        [
            "first: to-client request elicitation/create @first forbidden",
            "global: to-client request elicitation/create @first forbidden",
            "first: to-server error elicitation/create @first forbidden",
        ]
    );

    // A server's chain that answers its part for it leaves that server out of the
    // fan-out; the client still gets one merged answer.
    client
        .send_value(request(json!(10), "tools/list", json!({"name": "secret"})))
        .await;
    let (part, _) = second.recv().await;
    second
        .send_value(answer(
            &part["id"],
            json!({"tools": [{"name": "read", "inputSchema": {}}]}),
        ))
        .await;
    let (merged, _) = client.recv().await;
    assert_eq!(merged["id"], 10);
    assert_eq!(
        merged["result"]["tools"],
        json!([{"name": "second_read", "inputSchema": {}}])
    );
    assert_eq!(
        take_seen(&seen),
        [
            "global: to-server request tools/list @gateway secret",
            "first: to-server request tools/list @first secret",
            "global: to-client response tools/list @gateway secret",
        ]
    );

    // What the gateway answers itself passes the global chain both ways, as the
    // gateway's.
    client
        .send_value(request(json!(9), "ping", json!({})))
        .await;
    let (pong, _) = client.recv().await;
    assert_eq!(pong, answer(&json!(9), json!({})));
    assert_eq!(
        take_seen(&seen),
        [
            "global: to-server request ping @gateway",
            "global: to-client response ping @gateway",
        ]
    );

    // What the client announces passes the global chain once, then each server's.
    client
        .send_value(notification("notifications/roots/list_changed", json!({})))
        .await;
    for backend in [&mut first, &mut second] {
        let (heard, _) = backend.recv().await;
        assert_eq!(heard["method"], "notifications/roots/list_changed");
    }
    assert_eq!(
        take_seen(&seen),
        [
            "global: to-server notification notifications/roots/list_changed @gateway",
            "first: to-server notification notifications/roots/list_changed @first",
        ]
    );
    relay.abort();
}

/// The process's metrics text: the registry is shared by every test, so each test
/// that reads it names a server of its own.
fn scrape() -> String {
    crate::telemetry::metrics().encode()
}

#[tokio::test]
async fn upstream_operations_and_the_backends_connection_are_counted_per_server() {
    const SERVER: &str = "relay-metrics-test";
    let (client_link, mut client) = link();
    let (backend_link, mut server) = link();
    let relay = SessionRelay::with_backends(
        config("relay"),
        client_link,
        vec![backend(SERVER, backend_link)],
    );
    let relay = tokio::spawn(relay.run(std::future::pending()));
    let up = format!(r#"interpose_backend_up{{server="{SERVER}"}}"#);
    assert!(scrape().contains(&format!("{up} 1")), "{}", scrape());

    client
        .send_value(request(json!(1), "tools/call", json!({"name": "x"})))
        .await;
    let (call, _) = server.recv().await;
    let invalid =
        json!({"jsonrpc": "2.0", "id": call["id"], "error": {"code": -32602, "message": "bad"}});
    server.send_value(invalid).await;
    assert_eq!(client.recv().await.0["error"]["code"], -32602);
    client
        .send_value(request(json!(2), "ping", json!({})))
        .await;
    let (ping, _) = server.recv().await;
    server.send_value(answer(&ping["id"], json!({}))).await;
    assert_eq!(client.recv().await.0["result"], json!({}));
    // One more in flight when the backend goes: it fails with -32000.
    client
        .send_value(request(json!(3), "resources/read", json!({"uri": "a://b"})))
        .await;
    server.recv().await;
    drop(server);
    assert_eq!(client.recv().await.0["error"]["code"], BACKEND_UNAVAILABLE);
    assert!(matches!(ended(relay).await, RelayEnd::BackendClosed(_)));

    let text = scrape();
    let count = |labels: &str| {
        format!("mcp_client_operation_duration_seconds_count{{server=\"{SERVER}\",{labels}}} 1")
    };
    for line in [
        count(r#"mcp_method_name="tools/call",error_type="-32602""#),
        count(r#"mcp_method_name="ping""#),
        count(r#"mcp_method_name="resources/read",error_type="-32000""#),
        format!("{up} 0"),
    ] {
        assert!(text.contains(&line), "{line} in:\n{text}");
    }
}

/// A session continued on another replica (`[replicas]`): its backend is up already,
/// so the client's calls go straight to it with no `initialize`; when it dies and is
/// restarted, it is given the handshake the first replica recorded, and one that comes
/// back in another version than the recorded one is given up on.
#[tokio::test(start_paused = true)]
async fn a_continued_session_calls_at_once_and_replays_the_recorded_handshake() {
    use crate::wire::handoff::{BackendState, Handoff, HandoffState};
    let init = json!({"protocolVersion": "2025-06-18", "capabilities": {},
                      "clientInfo": {"name": "moved", "version": "1"}});
    let handoff = Handoff::resume(HandoffState {
        initialize: Some(jsonrpc::raw(init.to_string())),
        backends: vec![BackendState {
            name: "one".into(),
            session_id: Some("backend-session".into()),
            version: Some("2025-06-18".into()),
        }],
    });
    let (client_link, mut client) = link();
    let (first_link, first) = link();
    let (again_link, mut again) = link();
    let (connect, _) = connector(vec![again_link]);
    let restarting = BackendLink {
        lifecycle: Lifecycle {
            restart: super::super::lifecycle::RestartPolicy::OnFailure,
            connect: Some(connect),
            ..Lifecycle::default()
        },
        ..backend("one", first_link)
    };
    let mut relay = SessionRelay::with_backends(config("one"), client_link, vec![restarting]);
    relay.attach_handoff(handoff);
    let relay = tokio::spawn(relay.run(std::future::pending()));
    let mut first = first;

    client
        .send_value(request(json!(7), "tools/call", json!({"name": "echo"})))
        .await;
    let (call, _) = first.recv().await;
    assert_eq!(call["method"], "tools/call", "no handshake first: {call}");
    first
        .send_value(answer(&call["id"], json!({"content": []})))
        .await;
    let (answered, _) = client.recv().await;
    assert_eq!(answered, answer(&json!(7), json!({"content": []})));

    drop(first);
    let (replayed, _) = again.recv().await;
    assert_eq!(replayed["method"], "initialize");
    assert_eq!(replayed["params"], init);
    again
        .send_value(answer(
            &replayed["id"],
            json!({"protocolVersion": "2025-11-25", "capabilities": {}}),
        ))
        .await;
    again.assert_closed().await;
    drop(client);
    ended(relay).await;
}

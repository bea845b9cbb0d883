//! Outbound HTTP from plugins, against a real local server (`tests/servers/
//! http_target.py`): a granted URL is fetched; a URL outside the grant, a name that
//! leads to a private address, a redirect out of the grant, an over-size body and a
//! slow server are refused or cut off, each logged with the plugin and the URL; and
//! the plugin's failure policy applies when it fails on them.
//!
//! `fixture-http` makes the request a `fetch` tool call describes and answers with
//! `{"status", "body"}`, or rejects with code -32050 and the `wasi:http` error;
//! `fixture-py-http` and `fixture-js-http` do the same through the Python and
//! JavaScript SDKs, so a granted URL and a refusal are checked from each language.

use crate::http_support::{Proc, http_get, python, repo};
use crate::support;

use std::ffi::OsStr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{
    PLUGIN_ERROR, Proxy, config_file, echo_backend, echoed_params, error, result, scratch,
};

/// The fixture's own rejection code, distinct from a plugin failure's.
const FETCH_FAILED: i64 = -32050;

/// The local HTTP server plugins call.
pub struct Target {
    proc: Proc,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Target {
    pub fn start() -> Target {
        let mut command = Command::new(python());
        command.arg(repo().join("tests/servers/http_target.py"));
        let proc = Proc::start("http_target", command, "listening on http://");
        // `start` returns on seeing the line, maybe before it is in `output`.
        for _ in 0..500 {
            let output = proc.output();
            if let Some(line) = output
                .lines()
                .find_map(|l| l.strip_prefix("listening on http://"))
            {
                let addr = line.trim().to_owned();
                return Target { proc, addr };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no address in the target's output: {}", proc.output());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The paths requested so far.
    pub fn requested(&self) -> Vec<String> {
        let (status, body) = http_get(&self.addr, "/log", None);
        assert_eq!(
            status,
            200,
            "{body}; target output:\n{}",
            self.proc.output()
        );
        body.lines().map(str::to_owned).collect()
    }
}

/// A proxy running `plugin` with `settings` (TOML lines of its entry), once the
/// plugin is loaded (a Python one is compiled at its first start).
fn proxy(plugin: &str, settings: &str) -> Proxy {
    let dir = scratch();
    let config = config_file(
        dir.path(),
        &format!("[[plugins]]\npath = \"{{{plugin}}}\"\n{settings}\n"),
    );
    let backend = echo_backend();
    Proxy::start_loaded(
        &["--config".as_ref(), config.as_os_str()],
        &[OsStr::new("python3"), backend.as_os_str()],
        1,
    )
    .holding(dir)
}

/// The answer of a `fetch` of `url`.
fn fetch(proxy: &mut Proxy, id: u64, url: &str) -> Value {
    proxy.call_tool(id, "fetch", json!({ "url": url }))
}

/// The `{"status", "body"}` a successful fetch answered with.
fn fetched(answer: &Value) -> Value {
    let text = result(answer)["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {answer}"));
    serde_json::from_str(text).expect("the fixture's JSON")
}

/// The fixture's rejection of a failed fetch: its message.
fn refused(answer: &Value) -> String {
    let err = error(answer);
    assert_eq!(err["code"], FETCH_FAILED, "{answer}");
    err["message"].as_str().expect("a message").to_owned()
}

/// A grant of the target's `/v1/` paths (timeouts generous for a loaded machine).
fn granted(target: &Target) -> String {
    format!("timeout_ms = 10000\nhttp = [\"{}\"]", target.url("/v1/*"))
}

/// Calls 1 and 2: a GET of `/v1/hello` and a POST of `ping` to `echo` (a path
/// under `/v1/`), each answered with what the target sent.
fn fetches_hello_and_echo(proxy: &mut Proxy, target: &Target, echo: &str) {
    let hello = fetch(proxy, 1, &target.url("/v1/hello"));
    assert_eq!(
        fetched(&hello),
        json!({"status": 200, "body": "hello from the target"})
    );
    let echo = proxy.call_tool(2, "fetch", json!({"url": target.url(echo), "body": "ping"}));
    assert_eq!(fetched(&echo), json!({"status": 200, "body": "ping"}));
}

#[test]
fn a_granted_url_is_fetched_from_a_rust_plugin() {
    let target = Target::start();
    let mut proxy = proxy("fixture-http", &granted(&target));
    fetches_hello_and_echo(&mut proxy, &target, "/v1/echo?x=1");
    assert_eq!(target.requested(), ["/v1/hello", "/v1/echo"]);
}

/// A guest language's fixture fetches a granted URL, is denied one outside the
/// grant, and is refused a name leading to loopback. `declared` is what the
/// fixture's `capabilities.toml` declares (granted too, or it would not load).
fn fetches_from(plugin: &str, declared: &str) {
    let target = Target::start();
    let port = target.addr.rsplit(':').next().unwrap();
    let mut proxy = proxy(
        plugin,
        &format!(
            "timeout_ms = 10000\nhttp = [\"{declared}\", \"{}\", \"http://localhost:{port}/v1/*\"]",
            target.url("/v1/*")
        ),
    );
    fetches_hello_and_echo(&mut proxy, &target, "/v1/echo");
    let denied = refused(&fetch(&mut proxy, 3, &target.url("/other")));
    assert_eq!(denied, "HTTP request failed: HttpRequestDenied");
    let private = refused(&fetch(
        &mut proxy,
        4,
        &format!("http://localhost:{port}/v1/hello"),
    ));
    assert_eq!(private, "HTTP request failed: DestinationIpProhibited");
    assert_eq!(target.requested(), ["/v1/hello", "/v1/echo"]);
}

#[test]
fn a_granted_url_is_fetched_from_a_python_plugin() {
    fetches_from("fixture-py-http", "http://127.0.0.1:9/");
}

#[test]
fn a_python_plugin_failing_on_a_refusal_gets_its_failure_policy() {
    refusal_gets_the_failure_policy("fixture-py-http", "http://127.0.0.1:9/");
}

#[test]
fn a_granted_url_is_fetched_from_a_javascript_plugin() {
    fetches_from("fixture-js-http", "http://127.0.0.1:9/");
}

#[test]
fn a_javascript_plugin_failing_on_a_refusal_gets_its_failure_policy() {
    refusal_gets_the_failure_policy("fixture-js-http", "http://127.0.0.1:9/");
}

#[test]
fn urls_outside_the_grant_are_denied_and_logged() {
    let target = Target::start();
    let port = target.addr.rsplit(':').next().unwrap();
    let mut proxy = proxy("fixture-http", &granted(&target));
    let outside = [
        target.url("/other"),
        target.url("/v10/hello"),
        target.url("/v1/../other"),
        format!("http://127.0.0.2:{port}/v1/hello"),
        format!("https://127.0.0.1:{port}/v1/hello"),
    ];
    for (id, url) in (1..).zip(&outside) {
        let message = refused(&fetch(&mut proxy, id, url));
        assert_eq!(message, "HTTP request failed: HttpRequestDenied", "{url}");
    }
    assert!(target.requested().is_empty());
    // The log comes on stderr, read apart from the answers on stdout: the last
    // refusal is waited for.
    let last = outside.last().expect("URLs");
    assert!(
        proxy.wait_for_log(last, Duration::from_secs(30)),
        "{}",
        proxy.log()
    );
    let log = proxy.log();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("outbound HTTP refused: not within the plugin's `http` grant"))
        .collect();
    assert_eq!(refusals.len(), outside.len(), "{log}");
    assert!(refusals.iter().all(|l| l.contains("fixture-http")), "{log}");
    assert!(
        refusals[0].contains(&target.url("/other")),
        "the URL is logged: {log}"
    );
}

#[test]
fn without_a_grant_every_request_is_denied() {
    let target = Target::start();
    let mut proxy = proxy("fixture-http", "timeout_ms = 10000");
    let message = refused(&fetch(&mut proxy, 1, &target.url("/v1/hello")));
    assert_eq!(message, "HTTP request failed: HttpRequestDenied");
    assert!(target.requested().is_empty());
    // The log comes on stderr, read apart from the answer on stdout: waited for.
    assert!(
        proxy.wait_for_log(
            "outbound HTTP refused: the plugin has no `http` grant",
            Duration::from_secs(30)
        ),
        "{}",
        proxy.log()
    );
}

#[test]
fn a_name_leading_to_a_private_address_is_refused_unless_the_address_is_listed() {
    let target = Target::start();
    let port = target.addr.rsplit(':').next().unwrap();
    // `localhost` is granted by name; it resolves to loopback, which only an entry
    // naming the address itself opens.
    let mut proxy = proxy(
        "fixture-http",
        &format!("timeout_ms = 10000\nhttp = [\"http://localhost:{port}/v1/*\"]"),
    );
    let message = refused(&fetch(
        &mut proxy,
        1,
        &format!("http://localhost:{port}/v1/hello"),
    ));
    assert_eq!(message, "HTTP request failed: DestinationIpProhibited");
    assert!(target.requested().is_empty());
}

#[test]
fn redirects_are_not_followed() {
    let target = Target::start();
    let mut proxy = proxy("fixture-http", &granted(&target));
    let elsewhere = target.url("/outside");
    let answer = fetch(
        &mut proxy,
        1,
        &target.url(&format!("/v1/redirect?to={elsewhere}")),
    );
    assert_eq!(fetched(&answer)["status"], 302);
    assert_eq!(target.requested(), ["/v1/redirect"]);
}

#[test]
fn an_over_size_body_is_refused() {
    let target = Target::start();
    let mut proxy = proxy(
        "fixture-http",
        &format!("{}\nmax_input_bytes = 65536", granted(&target)),
    );
    let small = fetch(&mut proxy, 1, &target.url("/v1/big?bytes=1000"));
    assert_eq!(fetched(&small)["body"].as_str().map(str::len), Some(1000));
    let message = refused(&fetch(&mut proxy, 2, &target.url("/v1/big?bytes=1048576")));
    assert_eq!(
        message,
        "HTTP request failed: HttpResponseBodySize(Some(1048576))"
    );
}

/// A server slower than the plugin's deadline: the request is cut off just before
/// the call's deadline, in time for the plugin to answer. `settings` are added.
fn slow_call(path: &str, settings: &str) -> (Value, Duration) {
    let target = Target::start();
    let mut proxy = proxy(
        "fixture-http",
        &format!(
            "timeout_ms = 1500\nhttp = [\"{}\"]\n{settings}",
            target.url("/v1/*")
        ),
    );
    // A first call, so that the timed one does not include starting the proxy.
    fetch(&mut proxy, 1, &target.url("/v1/hello"));
    let started = Instant::now();
    let answer = fetch(&mut proxy, 2, &target.url(path));
    (answer, started.elapsed())
}

#[test]
fn a_slow_server_is_cut_off_before_the_plugin_deadline() {
    for (path, code) in [
        ("/v1/slow", "ConnectionTimeout"),
        // Cut off while reading the body: a stream error, whose text wasmtime
        // gives (it carries no error code for the guest to read).
        ("/v1/trickle", "HTTP response timeout"),
    ] {
        let (answer, took) = slow_call(path, "");
        assert_eq!(refused(&answer), format!("HTTP request failed: {code}"));
        // The server takes 30 s; the call ends at its 1.5 s deadline (with slack
        // for a loaded machine).
        assert!(took < Duration::from_secs(15), "{path} took {took:?}");
    }
}

#[test]
fn a_plugin_failing_on_a_refusal_gets_its_failure_policy() {
    refusal_gets_the_failure_policy("fixture-http", "http://127.0.0.1:9/");
    let (answer, _) = slow_call("/v1/slow", &format!("failure_policy = \"skip\"\n{PANIC}"));
    assert_eq!(echoed_params(&answer)["name"], "fetch");
}

/// A fixture configured to fail (panic, raise, throw) on a failed request, refused a
/// URL outside its grant: with `failure_policy = "reject"` the call gets the plugin
/// error naming it, with `"skip"` the call passes to the server. `declared` is what
/// the fixture declares (granted too).
fn refusal_gets_the_failure_policy(plugin: &str, declared: &str) {
    let target = Target::start();
    let settings = |policy: &str| {
        format!(
            "failure_policy = \"{policy}\"\ntimeout_ms = 10000\nhttp = [\"{declared}\", \"{}\"]\n{PANIC}",
            target.url("/v1/*")
        )
    };
    let mut closed = proxy(plugin, &settings("reject"));
    let answer = fetch(&mut closed, 1, &target.url("/other"));
    let err = error(&answer);
    assert_eq!(err["code"], PLUGIN_ERROR, "{answer}");
    assert_eq!(err["data"]["plugin"], plugin);

    let mut open = proxy(plugin, &settings("skip"));
    let answer = fetch(&mut open, 1, &target.url("/other"));
    assert_eq!(
        echoed_params(&answer)["arguments"],
        json!({"url": target.url("/other")}),
        "the message passed to the server"
    );
    assert!(target.requested().is_empty());
}

/// The fixture's config to panic on a failed request.
const PANIC: &str = "[plugins.config]\non_error = \"panic\"";

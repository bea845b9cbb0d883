//! `interpose run --record` and `interpose replay`, as a user runs them: a scripted
//! client session through the demo's plugin chain to the Python `full_server.py`,
//! recorded; the recording replayed through the same chain (against a golden file made
//! by `--update`) and through a changed one; `--record-redact` keeping a secret out of
//! the file while the client still gets it.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::http_support::{python, repo};
use crate::support::{INTERPOSE, Proxy, cache_dir, fixture, result, scratch};

/// The demo's chain (host/src/demo/plugins.toml) with its plugins' paths made absolute,
/// and `extra_deny` added to tool-policy's denied tools.
fn demo_chain(dir: &Path, name: &str, extra_deny: &[&str]) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("host/src/demo/plugins.toml"))
        .expect("read the demo's chain");
    let plugins = fixture("redact");
    let plugins = plugins.parent().expect("plugins live in a directory");
    let mut deny = vec!["\"delete_*\"".to_owned()];
    deny.extend(extra_deny.iter().map(|tool| format!("\"{tool}\"")));
    let text = text
        .replace("path = \"", &format!("path = \"{}/", plugins.display()))
        .replace(
            "deny = [\"delete_*\"]",
            &format!("deny = [{}]", deny.join(", ")),
        );
    assert!(
        text.contains(&format!("deny = [{}]", deny.join(", "))),
        "the demo chain still has tool-policy's deny list:\n{text}"
    );
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the chain");
    path
}

/// `interpose ARGS`: exit status, stdout, stderr.
fn interpose(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = Command::new(INTERPOSE)
        .args(args)
        .env("INTERPOSE_CACHE_DIR", cache_dir())
        .env_remove("RUST_LOG")
        .output()
        .expect("run interpose");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn replay(recording: &Path, config: &Path, expect: &Path, update: bool) -> (bool, String, String) {
    let mut args = vec![
        "replay".as_ref(),
        recording.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
        "--expect".as_ref(),
        expect.as_os_str(),
    ];
    if update {
        args.push("--update".as_ref());
    }
    interpose(&args)
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("read the file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

fn initialize(proxy: &mut Proxy) {
    let answer = proxy.request(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "interpose-tests", "version": "1.0.0"}}),
    );
    result(&answer);
    proxy.notify("notifications/initialized", json!({}));
}

/// Records a session through the demo chain to full_server.py: an echo whose answer
/// redact rewrites, an add, a denied delete. Returns the recording's path.
fn record_session(dir: &Path, chain: &Path) -> PathBuf {
    let recording = dir.join("session.jsonl");
    let python = python();
    let server = repo().join("tests/servers/full_server.py");
    let mut proxy = Proxy::start_loaded(
        &[
            "--config".as_ref(),
            chain.as_os_str(),
            "--record".as_ref(),
            recording.as_os_str(),
        ],
        &[python.as_os_str(), server.as_os_str()],
        3,
    );
    initialize(&mut proxy);
    let echo = proxy.call_tool(2, "echo", json!({"text": "write to alice@example.com"}));
    assert_eq!(
        result(&echo)["content"][0]["text"],
        "write to [REDACTED:email]",
        "{echo}"
    );
    let add = proxy.call_tool(3, "add", json!({"a": 2, "b": 3}));
    assert_eq!(result(&add)["structuredContent"]["sum"], 5, "{add}");
    let denied = proxy.call_tool(4, "delete_everything", json!({}));
    assert_eq!(denied["error"]["code"], -32001, "{denied}");
    let (status, log) = proxy.finish();
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(
        log.contains("the file holds raw traffic"),
        "recording warns that it holds raw traffic:\n{log}"
    );
    recording
}

#[test]
fn a_recorded_session_replays_to_the_same_verdicts_and_a_changed_chain_shows_its_change() {
    let dir = scratch();
    let chain = demo_chain(dir.path(), "chain.toml", &[]);
    let recording = record_session(dir.path(), &chain);

    // The file: owner-only, one versioned line per message, both directions.
    let mode = std::fs::metadata(&recording).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the recording is owner-only");
    let lines = read_lines(&recording);
    for line in &lines {
        assert_eq!(line["v"], 1, "{line}");
        assert_eq!(line["session"], "stdio", "{line}");
        let time = line["time"].as_str().expect("a time");
        assert!(
            time.len() == 27 && time.ends_with('Z') && time.as_bytes()[19] == b'.',
            "RFC 3339 with microseconds: {time}"
        );
    }
    // Every request of the client is recorded once going to the server, and answered
    // exactly once: by the backend (a line coming back), or by the chain (its `answer`).
    let mut requests = HashMap::new();
    let mut answers: HashMap<String, usize> = HashMap::new();
    for line in &lines {
        let id = line["id"].to_string();
        match (line["direction"].as_str(), line["kind"].as_str()) {
            (Some("to-server"), Some("request")) => {
                assert!(requests.insert(id.clone(), line).is_none(), "{line}");
                if line.get("answer").is_some() {
                    *answers.entry(id).or_default() += 1;
                }
            }
            (Some("to-client"), Some("response" | "error")) => {
                *answers.entry(id).or_default() += 1;
            }
            (Some("to-server"), Some("notification")) => {
                assert_eq!(line["method"], "notifications/initialized", "{line}");
            }
            other => panic!("unexpected line {other:?}: {line}"),
        }
    }
    for id in ["1", "2", "3", "4"] {
        assert!(
            requests.contains_key(id),
            "request {id} recorded: {lines:?}"
        );
        assert_eq!(
            answers.get(id),
            Some(&1),
            "request {id} answered once: {lines:?}"
        );
    }
    assert_eq!(requests.len(), 4, "{lines:?}");
    // The rewritten answer holds both: as received and as forwarded.
    let echo_answer = lines
        .iter()
        .find(|l| l["direction"] == "to-client" && l["id"] == 2)
        .expect("the echo's answer");
    assert_eq!(echo_answer["verdict"], "rewrite", "{echo_answer}");
    assert_eq!(
        echo_answer["message"]["result"]["content"][0]["text"],
        "write to alice@example.com"
    );
    assert_eq!(
        echo_answer["forwarded"]["result"]["content"][0]["text"],
        "write to [REDACTED:email]"
    );
    let denied = &requests["4"];
    assert_eq!(denied["verdict"], "reject", "{denied}");
    assert_eq!(denied["answer"]["error"]["code"], -32001, "{denied}");

    // Replayed through the same chain: the golden file --update writes holds the
    // recorded verdicts and payloads, and --expect against it passes.
    let golden = dir.path().join("golden.jsonl");
    let (ok, out, err) = replay(&recording, &chain, &golden, true);
    assert!(ok, "replay --update failed:\n{out}\n{err}");
    assert!(
        out.contains(
            r#"~ /content/0/text: "write to alice@example.com" -> "write to [REDACTED:email]""#
        ),
        "the table shows what the rewrite changed:\n{out}"
    );
    assert!(
        out.contains("[audit-log pass, tool-policy reject]"),
        "{out}"
    );
    let outcomes = read_lines(&golden);
    assert_eq!(outcomes.len(), lines.len());
    for (line, outcome) in lines.iter().zip(&outcomes) {
        assert_eq!(outcome["verdict"], line["verdict"], "{line}\n{outcome}");
        assert_eq!(outcome["id"], line["id"], "{line}\n{outcome}");
        let forwarded = &line["forwarded"];
        if line["verdict"] == "rewrite" {
            assert_eq!(outcome["payload"], forwarded["result"], "{outcome}");
        }
        if line["verdict"] == "reject" {
            assert_eq!(outcome["error"], line["error"], "{outcome}");
        }
    }
    let (ok, out, err) = replay(&recording, &chain, &golden, false);
    assert!(
        ok,
        "replay --expect of its own golden file failed:\n{out}\n{err}"
    );
    assert!(out.contains("the replay matches"), "{out}");

    // A chain that now denies `add`: its call is rejected, its recorded answer never
    // comes, and nothing else changes.
    let changed = demo_chain(dir.path(), "changed.toml", &["add"]);
    let (ok, out, err) = replay(&recording, &changed, &golden, false);
    assert!(!ok, "a changed verdict fails --expect:\n{out}");
    assert!(
        out.contains("rejected: tool `add` is denied by tool-policy"),
        "{out}"
    );
    let add_line = lines
        .iter()
        .position(|l| l["kind"] == "request" && l["id"] == 3)
        .unwrap()
        + 1;
    let add_answer_line = lines
        .iter()
        .position(|l| l["kind"] == "response" && l["id"] == 3)
        .unwrap()
        + 1;
    assert!(
        out.contains(&format!(
            "(recording line {add_line}: session stdio, -> request tools/call id 3):"
        )) && out.contains(r#"~ /verdict: "pass" -> "reject""#),
        "the difference names the message and its verdict:\n{out}"
    );
    assert!(
        out.contains(&format!(
            "(recording line {add_answer_line}: session stdio, <- response tools/call id 3):"
        )) && out.contains(r#"~ /verdict: "pass" -> "not reached""#),
        "{out}"
    );
    assert!(
        err.contains(&format!("differs from {} in 2 of", golden.display())),
        "exactly the call and its answer differ:\n{err}"
    );
}

#[test]
fn record_redact_keeps_a_secret_out_of_the_file_but_not_from_the_client() {
    let dir = scratch();
    let recording = dir.path().join("redacted.jsonl");
    let redact = fixture("redact");
    // The demo backend, served by interpose itself: its `fetch_config` returns fake
    // secrets that no client sent.
    let mut proxy = Proxy::start_loaded(
        &[
            "--record".as_ref(),
            recording.as_os_str(),
            "--record-redact".as_ref(),
            redact.as_os_str(),
        ],
        &[INTERPOSE, "demo", "--serve"],
        1,
    );
    initialize(&mut proxy);
    let answer = proxy.call_tool(2, "fetch_config", json!({}));
    let text = result(&answer)["content"][0]["text"]
        .as_str()
        .expect("a text result")
        .to_owned();
    for secret in ["sk-demo-4f8a2c9e1b7d3f6a0c5e", "alice@example.com"] {
        assert!(text.contains(secret), "the client gets the secret: {text}");
    }
    let (status, log) = proxy.finish();
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(
        !log.contains("the file holds raw traffic"),
        "no raw-traffic warning with a redaction plugin:\n{log}"
    );
    let file = std::fs::read_to_string(&recording).expect("the recording");
    for secret in ["sk-demo-4f8a2c9e1b7d3f6a0c5e", "alice@example.com"] {
        assert!(!file.contains(secret), "{secret} is not recorded:\n{file}");
    }
    let lines = read_lines(&recording);
    let recorded = lines
        .iter()
        .find(|l| l["direction"] == "to-client" && l["id"] == 2)
        .expect("the fetch_config answer is recorded");
    // Live traffic was not changed: the chain (none) passed it.
    assert_eq!(recorded["verdict"], "pass", "{recorded}");
    let text = recorded["message"]["result"]["content"][0]["text"]
        .as_str()
        .expect("text");
    assert!(text.contains("[REDACTED:email]"), "{text}");
}

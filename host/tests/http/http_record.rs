//! `interpose run --record` over Streamable HTTP: two real clients at once, with
//! server-to-client requests (sampling, elicitation, roots), recorded per session.

use std::collections::HashMap;

use serde_json::Value;

use crate::http_support::*;

#[test]
fn two_http_sessions_are_recorded_apart_with_every_request_answered_once() {
    let recording = unique_temp_path("interpose-record").with_extension("jsonl");
    let (mut proxy, base) = proxy_to_full_server(&["--record", recording.to_str().unwrap()]);
    two_clients_at_once(&format!("{base}/mcp"), "streamable");
    let status = proxy.terminate().expect("the proxy exits");
    assert!(status.success(), "exit {status}:\n{}", proxy.output());

    let text = std::fs::read_to_string(&recording).expect("the recording");
    std::fs::remove_file(&recording).ok();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    // Requests each way, and their answers coming back the other way, per session.
    let mut requests: HashMap<(String, String, String), usize> = HashMap::new();
    let mut answers: HashMap<(String, String, String), usize> = HashMap::new();
    for line in &lines {
        let session = line["session"].as_str().expect("a session").to_owned();
        let id = line["id"].to_string();
        let direction = line["direction"].as_str().expect("a direction");
        match line["kind"].as_str() {
            Some("request") => {
                *requests
                    .entry((session, direction.to_owned(), id))
                    .or_default() += 1;
            }
            Some("response" | "error") => {
                let request_direction = if direction == "to-client" {
                    "to-server"
                } else {
                    "to-client"
                };
                *answers
                    .entry((session, request_direction.to_owned(), id))
                    .or_default() += 1;
            }
            _ => {}
        }
    }
    let sessions: std::collections::BTreeSet<&str> =
        requests.keys().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(
        sessions.len(),
        2,
        "one label per client session: {sessions:?}"
    );
    assert!(
        sessions.iter().all(|s| s.starts_with("http-")),
        "{sessions:?}"
    );
    for (request, count) in &requests {
        assert_eq!(*count, 1, "request {request:?} recorded once");
        assert_eq!(
            answers.get(request),
            Some(&1),
            "request {request:?} answered once in the recording"
        );
    }
    assert_eq!(
        requests.len(),
        answers.len(),
        "no answer without its request"
    );
    // Server-to-client requests were recorded, in each session.
    for session in &sessions {
        let methods: Vec<&str> = lines
            .iter()
            .filter(|l| {
                l["session"] == *session && l["direction"] == "to-client" && l["kind"] == "request"
            })
            .filter_map(|l| l["method"].as_str())
            .collect();
        assert_eq!(
            methods,
            ["sampling/createMessage", "elicitation/create", "roots/list"],
            "session {session}"
        );
    }
}

//! The benchmarks' stdio session against the real echo-backend, as the benchmarks use
//! them: handshake, timed calls and lists, interleaved series.

use std::ffi::OsString;

use interpose_bench::Target;
use interpose_bench::session::{self, Session};
use serde_json::json;

fn echo_backend(name: &str, args: &[&str]) -> Target {
    let mut command = vec![OsString::from(env!("CARGO_BIN_EXE_echo-backend"))];
    command.extend(args.iter().map(OsString::from));
    Target {
        name: name.into(),
        command,
    }
}

#[test]
fn a_backend_with_many_tools_lists_them_all_in_one_page() {
    let mut session = Session::start(&echo_backend("many", &["--tools", "120"]), "echo").unwrap();
    let list = session.request("tools/list", json!({})).unwrap();
    let tools = list["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 120);
    assert_eq!(tools[0]["name"], "echo");
    assert!(list.get("nextCursor").is_none());
    // The other tools are listed, not callable.
    let error = session
        .request(
            "tools/call",
            json!({ "name": tools[1]["name"], "arguments": {} }),
        )
        .unwrap_err();
    assert!(error.to_string().contains("unknown tool"), "{error}");
}

#[test]
fn interleaved_series_give_every_session_one_sample_per_round() {
    let mut sessions = vec![
        Session::start(&echo_backend("one", &[]), "echo").unwrap(),
        Session::start(&echo_backend("listing", &["--tools", "50"]), "echo").unwrap(),
    ];
    let calls = session::interleaved(&mut sessions, 20, |s| s.timed_echo("hello")).unwrap();
    let lists = session::interleaved(&mut sessions, 5, Session::timed_list).unwrap();
    assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), [20, 20]);
    assert_eq!(lists.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5]);
    // Each session still answers in order after the timed requests.
    for session in &mut sessions {
        let result = session.request("ping", json!({})).unwrap();
        assert_eq!(result, json!({}));
    }
}

#[test]
fn a_tool_the_target_does_not_list_fails_the_handshake() {
    let error = Session::start(&echo_backend("renamed", &[]), "a_echo")
        .err()
        .unwrap();
    let chain = format!("{error:#}");
    assert!(chain.contains("no `a_echo` tool"), "{chain}");
    assert!(chain.contains("renamed: handshake failed"), "{chain}");
}

#[test]
fn the_initialize_answers_can_be_awaited_after_all_are_sent() {
    let target = echo_backend("several", &[]);
    let mut pending: Vec<_> = (0..3)
        .map(|_| {
            let mut session = Session::spawn(&target).unwrap();
            let id = session.send_initialize().unwrap();
            (session, id)
        })
        .collect();
    for (session, id) in &mut pending {
        let result = session.result_of(*id, "initialize").unwrap();
        assert_eq!(result["serverInfo"]["name"], "echo-backend");
        assert!(session.pid() > 0);
    }
}

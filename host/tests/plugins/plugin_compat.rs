//! The compatibility promise of `wit/README.md`, tested: plugins built against an
//! earlier `interpose:plugin` version (source fixtures under
//! `tests/plugins/compat-*`, each with the WIT copy it was built from) load and
//! behave the same after every change to the contract.

use crate::http_support::repo;
use crate::support;

use serde_json::json;
use support::{Proxy, echoed_params, error, fixture, interpose_to_exit, result};

#[test]
fn a_plugin_built_against_0_1_0_loads_and_behaves_the_same() {
    let wit =
        std::fs::read_to_string(repo().join("tests/plugins/compat-0.1.0/wit/interceptor.wit"))
            .unwrap();
    assert!(
        wit.contains("package interpose:plugin@0.1.0;"),
        "the fixture's WIT copy stays at 0.1.0"
    );
    let plugin = fixture("fixture-compat-0-1-0");
    let (status, report, stderr) = interpose_to_exit(&[
        "plugin".as_ref(),
        "inspect".as_ref(),
        "--json".as_ref(),
        plugin.as_os_str(),
    ]);
    assert!(status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["wit_version"], "interpose:plugin@0.1.0");
    assert_eq!(
        report["manifest"],
        json!({"name": "compat-0.1.0", "version": "0.1.0", "wants_request": false,
               "interests": [{"kinds": ["request"], "methods": ["tools/call"]}]})
    );

    let mut proxy = Proxy::start(&["--plugin".as_ref(), plugin.as_os_str()]);
    for count in 1..=2 {
        let answer = proxy.call_tool(count, "respond", json!({}));
        assert_eq!(
            result(&answer),
            &json!({"by": "compat-0.1.0", "count": count}),
            "answered by the plugin, counted in the host's store"
        );
    }
    let rejected = proxy.call_tool(3, "reject", json!({}));
    assert_eq!(
        error(&rejected),
        &json!({"code": -32050, "message": "rejected by compat-0.1.0"})
    );
    let rewritten = proxy.call_tool(4, "rewrite", json!({"rewritten": false}));
    assert_eq!(
        echoed_params(&rewritten),
        &json!({"name": "rewrite", "arguments": {"rewritten": true}})
    );
    let passed = proxy.call_tool(5, "other", json!({"x": 1}));
    assert_eq!(
        echoed_params(&passed),
        &json!({"name": "other", "arguments": {"x": 1}})
    );
    assert!(
        proxy.log().contains("compat-0.1.0 ready"),
        "{}",
        proxy.log()
    );
}

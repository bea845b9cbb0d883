import json
from pathlib import Path

import pytest

from interpose_plugin import InitError, Interest, Kind, Message, PASS, Reject, Rewrite, RpcError
from interpose_plugin.testing import load_plugin, take_logs

import redact_rules
import redact_scan
from redact_rules import Rules

PLUGIN = Path(__file__).resolve().parents[1]


def plugin(config=None):
    take_logs()
    return load_plugin(PLUGIN, config)


def result(text):
    return {"content": [{"type": "text", "text": text}], "isError": False}


def redact_text(rules, text):
    return rules.redact(text, [])


def test_manifest_asks_only_for_results_of_the_three_methods():
    manifest = plugin().manifest
    assert manifest.name == "redact"
    assert manifest.interests == (
        Interest(kinds=(Kind.RESPONSE,), methods=("tools/call", "resources/read", "prompts/get")),
    )


def test_secret_in_tool_result_is_rewritten_and_logged():
    verdict = plugin().intercept(Message.response("tools/call", result("key=AKIAIOSFODNN7EXAMPLE")))
    assert isinstance(verdict, Rewrite)
    assert verdict.json() == result("key=[REDACTED:aws-access-key]")
    assert take_logs() == [("debug", "redacted 1 string(s) in a tools/call result (rules: aws-access-key)")]


def test_clean_results_and_other_messages_pass():
    redact = plugin()
    assert redact.intercept(Message.response("tools/call", result("all good"))) == PASS
    secret = result("bob@example.com")
    assert redact.intercept(Message.request("tools/call", secret)) == PASS, "requests"
    assert redact.intercept(Message.response("tools/list", secret)) == PASS, "other methods"
    assert redact.intercept(Message.response("tools/call")) == PASS, "no payload"


def test_defaults_false_without_rules_redacts_nothing():
    verdict = plugin({"defaults": False}).intercept(Message.response("tools/call", result("bob@example.com")))
    assert verdict == PASS


def test_undecodable_result_fails_closed():
    raw = r'{"content":[{"type":"text","text":"\ud800 bob@example.com"}]}'
    verdict = plugin().intercept(Message.response("tools/call", raw))
    assert verdict == Reject(
        RpcError.INTERNAL_ERROR, "redact: the tools/call result was withheld: a string at byte 34 does not decode"
    )


@pytest.mark.parametrize(
    "config, message",
    [
        ({"rule": []}, "invalid config: unknown field `rule`, expected `rules` or `defaults` at line 1 column 7"),
        ({"rules": [{"name": "a"}]}, "invalid config: missing field `pattern` at line 1 column 22"),
        (
            {"defaults": "yes"},
            'invalid config: invalid type: string "yes", expected true, false, or a list of built-in rule names '
            "at line 1 column 17",
        ),
        (
            {"defaults": ["emails"]},
            "invalid config: `defaults` names an unknown rule `emails`; the built-in rules are: "
            "private-key, aws-access-key, bearer-token, api-key, email, card-number",
        ),
        ({"rules": [{"name": "x", "pattern": "a*"}]}, "invalid config: rule `x`: the pattern matches the empty string"),
        ({"rules": [{"name": "", "pattern": "a"}]}, "invalid config: a rule has an empty `name`"),
    ],
)
def test_config_errors_are_reported_as_the_rust_plugin_does(config, message):
    with pytest.raises(InitError) as err:
        plugin(config)
    assert str(err.value) == message


def test_invalid_pattern_is_named():
    with pytest.raises(InitError) as err:
        plugin({"rules": [{"name": "x", "pattern": "("}]})
    assert str(err.value).startswith("invalid config: rule `x`: invalid pattern:")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("key AKIAIOSFODNN7EXAMPLE here", "key [REDACTED:aws-access-key] here"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc", "Authorization: [REDACTED:bearer-token]"),
        ("OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuv1234", "OPENAI_API_KEY=[REDACTED:api-key]"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789AB", "token [REDACTED:api-key]"),
        ("mail alice.smith+tag@example.co.uk now", "mail [REDACTED:email] now"),
        ("card 4111 1111 1111 1111.", "card [REDACTED:card-number]."),
        ("card 4111-1111-1111-1111", "card [REDACTED:card-number]"),
        (
            "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAAAA==\n-----END RSA PRIVATE KEY-----\ny",
            "x\n[REDACTED:private-key]\ny",
        ),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN", "[REDACTED:private-key]"),
    ],
)
def test_each_builtin_redacts_its_example(text, expected):
    assert redact_text(Rules("{}"), text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "the bearer of bad news",
        "order 4111111111111112 (bad checksum)",
        "timestamp 1700000000000123",
        "pi 3.4111111111111111",
        "risk-assessment-framework-version-two",
        "plain text with no secrets @ all",
    ],
)
def test_builtins_leave_lookalikes_alone(text):
    assert redact_text(Rules("{}"), text) is None


def test_user_rules_come_first_and_expand_captures():
    rules = Rules(
        json.dumps(
            {
                "defaults": ["email"],
                "rules": [
                    {"name": "ticket", "pattern": "TICKET-(\\d+)", "replacement": "TICKET-#$1#"},
                    {"name": "codename", "pattern": "(?i)project\\s+falcon"},
                ],
            }
        )
    )
    hits = []
    assert (
        rules.redact("TICKET-42 by bob@example.com on Project Falcon", hits)
        == "TICKET-#42# by [REDACTED:email] on [REDACTED:codename]"
    )
    assert rules.names(hits) == ["ticket", "codename", "email"]
    assert rules.redact("key AKIAIOSFODNN7EXAMPLE", hits) is None, "aws rule not chosen"


def test_replacement_templates_follow_rust_regex():
    rules = Rules(json.dumps({"defaults": False, "rules": [
        {"name": "pw", "pattern": "(?P<key>pw)=(\\w+)", "replacement": "${key}=$2 $$ $nope ${9}$"},
    ]}))
    assert rules.redact("pw=hunter2", []) == "pw=hunter2 $  $"


def test_rust_syntax_is_translated():
    translate = redact_rules.translate
    assert translate("x(?i)a|b") == "x(?i:a)|(?i:b)"
    assert translate("(?<user>[a-z]+)@") == "(?P<user>[a-z]+)@"
    assert translate("end$") == "end\\Z"
    assert translate("(?i)(password[:=])") == "(?i:(password[:=]))"
    with pytest.raises(redact_rules.PatternError):
        translate("[[:alpha:]]")
    with pytest.raises(redact_rules.PatternError):
        translate("a(?=b)")
    with pytest.raises(redact_rules.PatternError):
        translate("(a)\\1")


def test_raw_filter_is_dropped_for_patterns_it_cannot_check():
    filtered = Rules('{"rules": [{"name": "n", "pattern": "secret[0-9]+"}]}')
    assert filtered.filterable
    assert not filtered.may_match_raw('{"text": "nothing here"}')
    assert filtered.may_match_raw('{"text": "secret42"}')
    assert filtered.may_match_raw('{"text": "\\u0073ecret42"}'), "\\u escapes force a scan"
    unfiltered = Rules('{"rules": [{"name": "n", "pattern": "secret:\\\\s+\\\\S+"}]}')
    assert not unfiltered.filterable
    assert unfiltered.may_match_raw('{"text": "nothing here"}')


def test_email_finder_is_linear_and_agrees_with_the_pattern():
    import re
    import time

    pattern = re.compile(redact_rules.BUILTINS[4].regex.pattern)
    for text in ["a@b.cd x@y.zz", "bob@@example.com", "a-b.c_d%e+f@g-h.ij", "foo@bar.com.", "x@y.z", "ghp_a@b.cd5555"]:
        assert list(redact_rules.find_emails(text)) == [m.span() for m in pattern.finditer(text)], text
    start = time.perf_counter()
    assert list(redact_rules.find_emails("x" * 200_000 + " bob@example.com")) == [(200_001, 200_016)]
    assert time.perf_counter() - start < 0.5


SCAN_RULES = '{"defaults": ["email"], "rules": [{"name": "word", "pattern": "secret", "replacement": "\\"\\\\"}]}'


def scan(raw, spec):
    redacted = redact_scan.redact(raw, spec, Rules(SCAN_RULES))
    return None if redacted is None else json.loads(redacted.payload)


def test_scan_redacts_text_embedded_resources_and_structured_content_only():
    raw = json.dumps(
        {
            "content": [
                {"type": "text", "text": "mail bob@example.com"},
                {"type": "image", "data": "bob@example.com", "mimeType": "image/png"},
                {"type": "resource", "resource": {"uri": "file:///bob@example.com", "text": "bob@example.com"}},
            ],
            "structuredContent": {"owner": {"email": "bob@example.com"}, "bob@example.com": [1, "bob@example.com", True, None]},
            "_meta": {"note": "bob@example.com"},
        }
    )
    assert scan(raw, redact_scan.TOOL_RESULT) == {
        "content": [
            {"type": "text", "text": "mail [REDACTED:email]"},
            {"type": "image", "data": "bob@example.com", "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "file:///bob@example.com", "text": "[REDACTED:email]"}},
        ],
        "structuredContent": {"owner": {"email": "[REDACTED:email]"}, "bob@example.com": [1, "[REDACTED:email]", True, None]},
        "_meta": {"note": "bob@example.com"},
    }


def test_untouched_bytes_are_kept_exactly():
    raw = '{ "z":1, "content" : [ {"text":"a secret" ,"type":"text"} ] }'
    redacted = redact_scan.redact(raw, redact_scan.TOOL_RESULT, Rules(SCAN_RULES))
    assert (redacted.strings, redacted.rules) == (1, [0])
    assert redacted.payload == '{ "z":1, "content" : [ {"text":"a \\"\\\\" ,"type":"text"} ] }'


def test_escapes_are_decoded_before_matching_and_re_encoded_after():
    raw = r'{"content":[{"type":"text","text":"line\nbob@example.com\t\u0073ecret \"q\""}]}'
    assert scan(raw, redact_scan.TOOL_RESULT)["content"][0]["text"] == 'line\n[REDACTED:email]\t"\\ "q"'


def test_resource_and_prompt_results():
    raw = '{"contents":[{"uri":"a","text":"bob@example.com"},{"uri":"b","blob":"Ym9i"}]}'
    assert scan(raw, redact_scan.RESOURCE_RESULT) == {
        "contents": [{"uri": "a", "text": "[REDACTED:email]"}, {"uri": "b", "blob": "Ym9i"}]
    }
    raw = json.dumps({"description": "bob@example.com", "messages": [{"role": "user", "content": {"type": "text", "text": "hi bob@example.com"}}]})
    assert scan(raw, redact_scan.PROMPT_RESULT) == {
        "description": "bob@example.com",
        "messages": [{"role": "user", "content": {"type": "text", "text": "hi [REDACTED:email]"}}],
    }


def test_nothing_to_redact_gives_none():
    assert scan('{"content":[{"type":"text","text":"clean"}],"isError":false}', redact_scan.TOOL_RESULT) is None
    assert scan('[1,2,{"a":"bob@example.com"}]', redact_scan.TOOL_RESULT) is None, "not an object: left alone"


def test_deep_nesting_is_walked_without_recursion():
    depth = 100_000
    raw = '{"structuredContent":' + "[" * depth + '"bob@example.com"' + "]" * depth + "}"
    redacted = redact_scan.redact(raw, redact_scan.TOOL_RESULT, Rules(SCAN_RULES))
    assert redacted.strings == 1
    assert '"[REDACTED:email]"' in redacted.payload


def test_malformed_and_undecodable_input_is_an_error():
    with pytest.raises(redact_scan.ScanError, match="does not decode"):
        redact_scan.redact(r'{"content":[{"text":"\ud800 bob@example.com"}]}', redact_scan.TOOL_RESULT, Rules(SCAN_RULES))
    with pytest.raises(redact_scan.ScanError, match="malformed JSON"):
        redact_scan.redact('{"content": [}', redact_scan.TOOL_RESULT, Rules(SCAN_RULES))

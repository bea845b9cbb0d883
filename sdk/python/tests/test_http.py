"""The `http` helper under CPython: the stand-in handler, the JSON helpers, URL
splitting. (The `wasi:http` path runs only inside a component; see
host/tests/plugins/plugin_http.rs.)"""

import json

import pytest

from interpose_plugin import http


@pytest.fixture(autouse=True)
def restore_handler():
    # Before as well as after: importing the component glue (test_component.py, in
    # the same process) installs the handler of a build without wasi:http.
    http.set_native_handler(None)
    yield
    http.set_native_handler(None)


def test_without_a_handler_requests_raise():
    with pytest.raises(http.HttpError, match="no wasi:http outside the component"):
        http.get("https://api.example.com/v1/x")


def test_post_json_sends_json_and_reads_json():
    seen = []

    def handler(method, url, body, headers, timeout_ms):
        seen.append((method, url, json.loads(body), headers, timeout_ms))
        return http.Response(200, [("content-type", b"application/json")], b'{"flagged": false}')

    http.set_native_handler(handler)
    answer = http.post_json("https://api.example.com/v1/check", {"text": "hi"}, timeout_ms=500)
    assert answer.status == 200
    assert answer.json() == {"flagged": False}
    assert seen == [
        ("POST", "https://api.example.com/v1/check", {"text": "hi"},
         [("content-type", "application/json")], 500),
    ]


def test_errors_carry_the_wasi_http_code():
    def handler(method, url, body, headers, timeout_ms):
        raise http.HttpError("HTTP request failed: HttpRequestDenied", "HttpRequestDenied")

    http.set_native_handler(handler)
    with pytest.raises(http.HttpError) as caught:
        http.get("https://elsewhere.example.com/")
    assert caught.value.code == "HttpRequestDenied"


def test_urls_split_into_the_parts_wasi_http_takes():
    assert http._split_url("HTTPS://api.example.com:8443/v1/x?q=1") == ("https", "api.example.com:8443", "/v1/x?q=1")
    assert http._split_url("http://127.0.0.1:8080") == ("http", "127.0.0.1:8080", "/")
    assert http._split_url("http://h?q=1") == ("http", "h", "/?q=1")
    with pytest.raises(http.HttpError, match="not an absolute URL"):
        http._split_url("/relative")
    with pytest.raises(http.HttpError, match="has no host"):
        http._split_url("http:///path")

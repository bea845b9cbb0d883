//! Outbound HTTP from a plugin (cargo feature `http`): a small blocking client over
//! `wasi:http/outgoing-handler`.
//!
//! The proxy sends a request only when the user's configuration grants its URL
//! (`http = ["https://api.example.com/*"]`), and cuts it off at the plugin's call
//! deadline and response size cap; anything else comes back as an [`Error`] naming
//! the `wasi:http` error code (`HttpRequestDenied`, `DestinationIpProhibited`,
//! `HttpResponseBodySize`, ...). Redirects are not followed.
//!
//! ```no_run
//! use interpose_plugin::http;
//!
//! let answer = http::post_json("https://api.example.com/v1/check", &serde_json::json!({"text": "hi"}))?;
//! if answer.status == 200 {
//!     let verdict: serde_json::Value = answer.json()?;
//! }
//! # Ok::<(), http::Error>(())
//! ```

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

/// Largest chunk `blocking-write-and-flush` takes.
const WRITE_CHUNK: usize = 4096;

/// A request, built step by step and sent with [`Request::send`].
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
}

/// A response, its body read whole.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// Why a request failed: a `wasi:http` error code, or a problem with the request or
/// the answer found before or after sending.
#[derive(Debug, Clone)]
pub struct Error {
    code: Option<ErrorCode>,
    text: String,
}

impl Error {
    fn other(text: impl Into<String>) -> Self {
        Error {
            code: None,
            text: text.into(),
        }
    }

    /// The `wasi:http` error code, when the host gave one.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.code.as_ref()
    }
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Self {
        // `HttpRequestDenied`, `HttpResponseBodySize(Some(1024))`: the WIT case.
        let debug = format!("{code:?}");
        let text = debug
            .strip_prefix("ErrorCode::")
            .unwrap_or(&debug)
            .to_owned();
        Error {
            code: Some(code),
            text,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP request failed: {}", self.text)
    }
}

impl std::error::Error for Error {}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, Error> {
    Request::new("GET", url).send()
}

/// `POST url` with `body` as JSON.
pub fn post_json(url: &str, body: &impl Serialize) -> Result<Response, Error> {
    Request::new("POST", url).json(body)?.send()
}

impl Request {
    pub fn new(method: &str, url: &str) -> Self {
        Request {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// `body` as JSON, with its `content-type`.
    pub fn json(self, body: &impl Serialize) -> Result<Self, Error> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::other(e.to_string()))?;
        Ok(self.header("content-type", "application/json").body(bytes))
    }

    /// A limit for connecting, for the response to start and between its bytes
    /// (each). The proxy ends the request at the plugin's call deadline anyway.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request and reads the whole response. Blocks the plugin.
    pub fn send(self) -> Result<Response, Error> {
        let (scheme, authority, path) = split_url(&self.url)?;
        let headers: Vec<(String, Vec<u8>)> = self.headers;
        let fields = Fields::from_list(&headers)
            .map_err(|e| Error::other(format!("invalid header: {e:?}")))?;
        let request = OutgoingRequest::new(fields);
        let method = match self.method.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_owned()),
        };
        let invalid = |what: &str| Error::other(format!("invalid {what} in `{}`", self.url));
        request
            .set_method(&method)
            .map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(authority))
            .map_err(|()| invalid("authority"))?;
        request
            .set_path_with_query(Some(&path))
            .map_err(|()| invalid("path"))?;
        let body = request
            .body()
            .map_err(|()| Error::other("the request body was taken twice"))?;
        let options = self.timeout.map(|timeout| {
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            let options = RequestOptions::new();
            // Each returns an error only when the host does not support it.
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            let _ = options.set_between_bytes_timeout(Some(nanos));
            options
        });
        let pending = outgoing_handler::handle(request, options)?;
        let written = write_body(&body, &self.body)
            .and_then(|()| OutgoingBody::finish(body, None).map_err(Error::from));
        pending.subscribe().block();
        // The response's error first: a refused request closes the body stream, and
        // the refusal is what explains the failed write.
        let response = match pending.get() {
            Some(Ok(result)) => result?,
            Some(Err(())) | None => return Err(Error::other("the response was lost")),
        };
        written?;
        let status = response.status();
        let headers = response.headers().entries().into_iter().collect();
        let incoming = response
            .consume()
            .map_err(|()| Error::other("the response body was taken twice"))?;
        let body = read_body(&incoming)?;
        drop(IncomingBody::finish(incoming));
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

impl Response {
    /// The body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::other(format!("the response is not the JSON expected: {e}")))
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn write_body(body: &OutgoingBody, bytes: &[u8]) -> Result<(), Error> {
    if bytes.is_empty() {
        return Ok(());
    }
    let stream = body
        .write()
        .map_err(|()| Error::other("the request body stream was taken twice"))?;
    for chunk in bytes.chunks(WRITE_CHUNK) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(stream_error)?;
    }
    Ok(())
}

fn read_body(body: &IncomingBody) -> Result<Vec<u8>, Error> {
    let stream = body
        .stream()
        .map_err(|()| Error::other("the response body stream was taken twice"))?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(out),
            Err(e) => return Err(stream_error(e)),
        }
    }
}

/// A failed read or write, with the `wasi:http` code behind it when there is one.
fn stream_error(error: StreamError) -> Error {
    match error {
        StreamError::Closed => Error::other("the stream closed early"),
        StreamError::LastOperationFailed(e) => match wasip2::http::types::http_error_code(&e) {
            Some(code) => code.into(),
            None => Error::other(e.to_debug_string()),
        },
    }
}

/// `scheme://authority/path?query` in the three parts `wasi:http` takes.
fn split_url(url: &str) -> Result<(Scheme, &str, String), Error> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Error::other(format!("`{url}` is not an absolute URL")))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_owned()),
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() {
        return Err(Error::other(format!("`{url}` has no host")));
    }
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Ok((scheme, authority, path))
}

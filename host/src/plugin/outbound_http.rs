//! Outbound HTTP for plugins: `wasi:http/outgoing-handler`, linked for every plugin
//! that imports it, with every request checked against the plugin's `http` grant.
//!
//! Linked for all rather than only for granted plugins because JavaScript
//! components (componentize-js) import `wasi:http` whether they use it or not: a
//! plugin without the grant still loads, and each of its requests is refused with
//! `HTTP-request-denied`. A request goes out only when
//!
//! - its scheme, host, port and path prefix match an entry of the grant (the path at
//!   a segment boundary: `/v1` takes in `/v1/x`, not `/v10`);
//! - the addresses its host resolves to are public, unless the entry names the
//!   address itself (`http://127.0.0.1:8080/`): a name never leads to a loopback,
//!   private or link-local address (no DNS rebinding to the proxy's neighbours);
//! - it ends before the deadline of the plugin call it is made in, whatever the
//!   guest's own timeouts say; the response body is cut off past the size cap.
//!
//! Redirects are not followed: the guest sees the 3xx, and a request it makes to
//! the new location is checked like any other. Refusals are logged with the
//! plugin's name and the URL, and reach the guest as `wasi:http` error codes.

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use url::{Host, Url};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiHttpHooks};

use super::tag::PluginTag;

/// One entry of an `http` grant, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowEntry {
    scheme: String,
    host: Host<String>,
    port: u16,
    /// The path prefix, without the grant's trailing `*`.
    path: String,
}

/// The parsed `http` grant of one plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<AllowEntry>);

impl AllowList {
    /// Parses the grant's entries (checked by the configuration already).
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                let url = Url::parse(entry.trim_end_matches('*'))
                    .map_err(|e| format!("`http` entry `{entry}` is not a URL: {e}"))?;
                let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) else {
                    return Err(format!("`http` entry `{entry}` has no host"));
                };
                Ok(AllowEntry {
                    scheme: url.scheme().to_owned(),
                    host: host.to_owned(),
                    port,
                    path: url.path().to_owned(),
                })
            })
            .collect::<Result<_, _>>()
            .map(AllowList)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `url` (already normalised by [`Url::parse`]: `..` resolved, host
    /// lower-cased, default port known) is within an entry.
    fn permits(&self, url: &Url) -> bool {
        let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) else {
            return false;
        };
        self.0.iter().any(|entry| {
            entry.scheme == url.scheme()
                && entry.host == host.to_owned()
                && entry.port == port
                && path_within(&entry.path, url.path())
        })
    }
}

/// Whether `path` is `prefix` or below it, at a segment boundary.
fn path_within(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some("") => true,
        Some(rest) => prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

/// Whether `ip` is an address a name must not lead to: loopback, private,
/// link-local, carrier-grade NAT, unique-local, unspecified, multicast, broadcast.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                // 100.64.0.0/10, shared address space (carrier-grade NAT).
                || (a == 100 && (64..128).contains(&b))
                // 0.0.0.0/8, "this network".
                || a == 0
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_non_public(IpAddr::V4(v4)),
            None => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local()
            }
        },
    }
}

/// What a name resolved to when all of its addresses were refused.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` resolves only to loopback, private or link-local addresses")]
struct NonPublicName(String);

/// The system resolver, keeping only public addresses.
struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|addr| !is_non_public(addr.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(NonPublicName(name)) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The outbound HTTP of one plugin: its grant and its client, shared by its
/// instances.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    allow: AllowList,
    /// `None` when nothing is granted (no client is built).
    client: Option<reqwest::Client>,
    /// Largest response body, in bytes.
    max_response_bytes: usize,
}

impl HttpPolicy {
    /// The policy for a grant. Builds a client only when something is granted.
    pub fn new(grant: &[String], max_response_bytes: usize) -> Result<Self, String> {
        let allow = AllowList::parse(grant)?;
        let client = if allow.is_empty() {
            None
        } else {
            Some(
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    // Not the proxy's environment (HTTP_PROXY...): the grant names
                    // the destination, and the request goes there.
                    .no_proxy()
                    .dns_resolver(Arc::new(PublicOnlyResolver))
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client: {e}"))?,
            )
        };
        Ok(HttpPolicy {
            allow,
            client,
            max_response_bytes,
        })
    }

    /// Nothing granted: every request is refused.
    pub fn none() -> Self {
        HttpPolicy {
            allow: AllowList::default(),
            client: None,
            max_response_bytes: 0,
        }
    }
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy::none()
    }
}

/// The most of a call's deadline kept back from its requests (see
/// [`OutboundHttp::set_deadline`]).
pub const MAX_DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// The `wasi:http` hooks of one instance: its plugin's policy and the deadline of
/// the call in progress.
pub struct OutboundHttp {
    policy: Arc<HttpPolicy>,
    tag: Arc<PluginTag>,
    deadline: Instant,
}

impl OutboundHttp {
    pub fn new(policy: Arc<HttpPolicy>, tag: Arc<PluginTag>) -> Self {
        OutboundHttp {
            policy,
            tag,
            deadline: Instant::now(),
        }
    }

    /// Requests made in the call that began at `started` must end within `timeout`
    /// (the call's deadline), less a tenth of it (at most [`MAX_DEADLINE_MARGIN`]) so
    /// that the guest gets the timeout error in time to answer with a fallback of its
    /// own.
    pub fn set_deadline(&mut self, started: Instant, timeout: Duration) {
        let margin = (timeout / 10).min(MAX_DEADLINE_MARGIN);
        self.deadline = started + timeout - margin;
    }

    fn refuse(&self, url: &str, why: &str, code: HttpError) -> SendFuture {
        tracing::warn!(
            target: "interpose::plugin",
            plugin = &*self.tag.get(),
            url,
            "outbound HTTP refused: {why}"
        );
        Box::new(async move { Err(code) })
    }
}

type ResponseBody = wasmtime_wasi_http::WasiBody;
type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<ResponseBody>, IoFuture), HttpError>> + Send>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<ResponseBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        let shown = request.uri().to_string();
        // Checked and sent in its normalised form, so what goes out is what was
        // checked (`/v1/../admin` is `/admin`).
        let url = match Url::parse(&shown) {
            Ok(url) => url,
            Err(_) => return self.refuse(&shown, "not a URL", HttpError::HttpRequestUriInvalid),
        };
        let Some(client) = self.policy.client.clone() else {
            return self.refuse(
                &shown,
                "the plugin has no `http` grant",
                HttpError::HttpRequestDenied,
            );
        };
        if !self.policy.allow.permits(&url) {
            return self.refuse(
                &shown,
                "not within the plugin's `http` grant",
                HttpError::HttpRequestDenied,
            );
        }
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return self.refuse(
                &shown,
                "the plugin's call deadline has passed",
                HttpError::ConnectionTimeout,
            );
        }
        let deadline = tokio::time::Instant::from_std(self.deadline);
        let options = options.unwrap_or_default();
        // Connecting and the response head, within the guest's own limits if it set
        // them, and always within the call's deadline.
        let head_timeout = [options.connect_timeout, options.first_byte_timeout]
            .into_iter()
            .flatten()
            .reduce(|a, b| a.saturating_add(b))
            .map_or(remaining, |t| t.min(remaining));
        let between_bytes = options.between_bytes_timeout;
        let max_bytes = self.policy.max_response_bytes;
        let tag = self.tag.clone();
        Box::new(async move {
            let (mut parts, body) = request.into_parts();
            // The whole body first: a plugin's request is small, and it is sent in
            // one piece.
            let body = body.collect().await?.to_bytes();
            // The client sets it from the URL, which is the guest's authority.
            parts.headers.remove(http::header::HOST);
            let outgoing = client
                .request(parts.method, url.as_str())
                .headers(parts.headers)
                .body(body);
            let response = match tokio::time::timeout(head_timeout, outgoing.send()).await {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => return Err(log_failure(&tag, &url, classify(&e))),
                Err(_) => return Err(log_failure(&tag, &url, HttpError::ConnectionTimeout)),
            };
            if response
                .content_length()
                .is_some_and(|len| len > max_bytes as u64)
            {
                return Err(log_failure(
                    &tag,
                    &url,
                    HttpError::HttpResponseBodySize(response.content_length()),
                ));
            }
            let response: http::Response<reqwest::Body> = response.into();
            let response = response.map(|body| {
                CappedBody {
                    inner: body,
                    left: max_bytes,
                    max_bytes,
                    deadline: Box::pin(tokio::time::sleep_until(deadline)),
                    between_bytes: between_bytes.map(|t| (t, Box::pin(tokio::time::sleep(t)))),
                    tag,
                    url: url.to_string(),
                }
                .boxed_unsync()
            });
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}

fn log_failure(tag: &PluginTag, url: &Url, error: HttpError) -> HttpError {
    tracing::warn!(
        target: "interpose::plugin",
        plugin = &*tag.get(),
        url = url.as_str(),
        "outbound HTTP failed: {error}"
    );
    error
}

/// The `wasi:http` error code for a failed request.
fn classify(error: &reqwest::Error) -> HttpError {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<NonPublicName>().is_some() {
            return HttpError::DestinationIpProhibited;
        }
        cause = e.source();
    }
    if error.is_timeout() {
        HttpError::ConnectionTimeout
    } else if error.is_connect() {
        HttpError::ConnectionRefused
    } else if error.is_body() || error.is_decode() {
        HttpError::HttpResponseIncomplete
    } else {
        HttpError::HttpProtocolError
    }
}

/// A response body cut off past the size cap, the call's deadline, or (when the
/// guest set one) the between-bytes timeout.
struct CappedBody {
    inner: reqwest::Body,
    left: usize,
    max_bytes: usize,
    deadline: Pin<Box<tokio::time::Sleep>>,
    between_bytes: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
    tag: Arc<PluginTag>,
    url: String,
}

impl CappedBody {
    fn fail(&mut self, error: HttpError) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        tracing::warn!(
            target: "interpose::plugin",
            plugin = &*self.tag.get(),
            url = self.url.as_str(),
            "outbound HTTP response cut off: {error}"
        );
        self.left = 0;
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, Bytes::len);
                if len > this.left {
                    let max = this.max_bytes as u64;
                    return this.fail(HttpError::HttpResponseBodySize(Some(max)));
                }
                this.left -= len;
                if let Some((timeout, sleep)) = &mut this.between_bytes {
                    sleep.as_mut().reset(tokio::time::Instant::now() + *timeout);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let code = classify(&e);
                this.fail(code)
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    return this.fail(HttpError::HttpResponseTimeout);
                }
                if let Some((_, sleep)) = &mut this.between_bytes
                    && sleep.as_mut().poll(cx).is_ready()
                {
                    return this.fail(HttpError::ConnectionReadTimeout);
                }
                Poll::Pending
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(entries: &[&str]) -> AllowList {
        AllowList::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn permits(list: &AllowList, url: &str) -> bool {
        list.permits(&Url::parse(url).unwrap())
    }

    #[test]
    fn requests_match_scheme_host_port_and_path_prefix() {
        let list = allow(&["https://api.example.com/*", "http://127.0.0.1:8080/v1/*"]);
        assert!(permits(&list, "https://api.example.com/anything?q=1"));
        assert!(permits(&list, "https://API.example.com:443/x"));
        assert!(permits(&list, "http://127.0.0.1:8080/v1/check"));
        assert!(!permits(&list, "http://api.example.com/x"), "scheme");
        assert!(!permits(&list, "https://api.example.com:8443/x"), "port");
        assert!(
            !permits(&list, "https://api.example.com.evil.net/x"),
            "host"
        );
        assert!(!permits(&list, "http://127.0.0.1:8081/v1/check"), "port");
        assert!(!permits(&list, "http://127.0.0.1:8080/v2/check"), "path");
        assert!(
            !permits(&list, "http://127.0.0.1:8080/v1/../admin"),
            "dot segments"
        );
        assert!(
            !permits(&list, "http://localhost:8080/v1/check"),
            "a name is not its address"
        );
    }

    #[test]
    fn a_path_prefix_ends_at_a_segment_boundary() {
        let list = allow(&["https://a.example/v1"]);
        assert!(permits(&list, "https://a.example/v1"));
        assert!(permits(&list, "https://a.example/v1/x"));
        assert!(!permits(&list, "https://a.example/v10"));
        assert!(!permits(&list, "https://a.example/"));
    }

    #[test]
    fn non_public_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_non_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_non_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn a_name_leading_only_to_private_addresses_is_refused() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let error = match PublicOnlyResolver.resolve(name).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert!(error.downcast_ref::<NonPublicName>().is_some(), "{error}");
    }
}

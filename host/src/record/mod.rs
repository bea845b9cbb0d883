//! Record and replay. `interpose run --record FILE.jsonl` appends every message that
//! crosses the proxy, with the verdict it got, to a JSONL file ([`format`]), written
//! by its own thread; `interpose replay` ([`replay`]) runs a recording through a plugin
//! chain with no client and no server. See docs/record.md.

pub mod format;
pub mod replay;
mod writer;

use std::path::Path;

use crate::config::PluginConfig;
use crate::session::intercept::{
    Intercepted, Interceptor, SharedInterceptor, Verdict, VerdictFuture,
};
use format::Captured;
use writer::{Sink, Writer};

/// Wraps the real interceptor and copies every message it judged, with the verdict,
/// to the recording's queue. It decides nothing.
struct Recorder {
    inner: SharedInterceptor,
    sink: Sink,
}

impl Interceptor for Recorder {
    fn intercept<'a>(&'a self, msg: Intercepted<'a>) -> VerdictFuture<'a> {
        self.inner.intercept(msg)
    }

    fn wants_request_payload(&self) -> bool {
        self.inner.wants_request_payload()
    }

    fn observe(&self, msg: &Intercepted<'_>, verdict: &Verdict) {
        self.inner.observe(msg, verdict);
        self.sink.push(Captured::new(msg, verdict));
    }
}

/// A recording in progress.
pub struct Recording {
    writer: Writer,
    interceptor: SharedInterceptor,
}

impl Recording {
    /// Starts recording what `inner` judges to `path`. `redact` is a plugin run over
    /// what is written (never over live traffic). Must run inside the Tokio runtime.
    pub async fn start(
        path: &Path,
        redact: Option<&Path>,
        max_message_bytes: usize,
        inner: SharedInterceptor,
    ) -> anyhow::Result<Recording> {
        let redact: Option<SharedInterceptor> = match redact {
            Some(plugin) => {
                let plugins = vec![PluginConfig::from_path(plugin)];
                Some(crate::plugin::load_chain(plugins, max_message_bytes).await?)
            }
            None => None,
        };
        if redact.is_none() {
            tracing::warn!(
                file = %path.display(),
                "recording every message: the file holds raw traffic (tokens, personal data); \
                 keep it private, or run a redaction plugin over it with --record-redact"
            );
        }
        let writer = Writer::start(path, redact, tokio::runtime::Handle::current())?;
        let interceptor = std::sync::Arc::new(Recorder {
            inner,
            sink: writer.sink(),
        });
        tracing::info!(file = %path.display(), "recording messages");
        Ok(Recording {
            writer,
            interceptor,
        })
    }

    /// The interceptor to run sessions through: the wrapped one, recorded.
    pub fn interceptor(&self) -> SharedInterceptor {
        self.interceptor.clone()
    }

    /// Writes what is queued and closes the file.
    pub async fn finish(self) {
        let Recording { writer, .. } = self;
        if let Err(e) = tokio::task::spawn_blocking(move || writer.finish()).await {
            tracing::error!("the recording did not finish: {e}");
        }
    }
}

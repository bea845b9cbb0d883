//! The WASI context of one plugin instance, built from its grants and nothing else:
//! no inherited environment, arguments, stdin, files or network. The guest's stdout
//! and stderr go to the proxy's log, line by line, tagged with the plugin's name.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use super::outbound_http::HttpPolicy;
use super::tag::PluginTag;
use crate::config::{DirGrant, DirMode, PluginConfig};

/// What a plugin is granted, resolved once when the plugin is loaded.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    dirs: Vec<DirGrant>,
    env: Vec<(String, String)>,
    /// Outbound HTTP (nothing granted: every request refused).
    http: Arc<HttpPolicy>,
}

/// A grant that cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("cannot grant directory {path}: {cause}")]
    Dir {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot grant outbound HTTP: {0}")]
    Http(String),
}

impl Grants {
    /// Reads the granted environment variables now (a variable that is not set is
    /// left out, with a warning), checks the granted directories exist and parses the
    /// `http` grant. A response body is capped like a message the plugin is called
    /// with, at `max_input_bytes`: both end up in its memory.
    pub fn from_config(config: &PluginConfig, max_input_bytes: usize) -> Result<Self, GrantError> {
        for dir in &config.dirs {
            check_dir(&dir.host)?;
        }
        let env = config
            .env
            .iter()
            .filter_map(|name| match std::env::var(name) {
                Ok(value) => Some((name.clone(), value)),
                Err(_) => {
                    tracing::warn!(
                        target: "interpose::plugin",
                        plugin = %config.display_name(),
                        "granted environment variable `{name}` is not set (or not UTF-8); the plugin will not see it"
                    );
                    None
                }
            })
            .collect();
        let http = HttpPolicy::new(&config.http, max_input_bytes).map_err(GrantError::Http)?;
        Ok(Grants {
            dirs: config.dirs.clone(),
            env,
            http: Arc::new(http),
        })
    }

    pub fn http(&self) -> Arc<HttpPolicy> {
        self.http.clone()
    }

    /// A fresh WASI context holding exactly these grants.
    pub fn wasi_ctx(&self, tag: &Arc<PluginTag>) -> Result<WasiCtx, GrantError> {
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdout(LogOutput {
                tag: tag.clone(),
                stream: "stdout",
            })
            .stderr(LogOutput {
                tag: tag.clone(),
                stream: "stderr",
            })
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        for (name, value) in &self.env {
            builder.env(name, value);
        }
        for dir in &self.dirs {
            let perms = match dir.mode {
                DirMode::ReadOnly => FsPerms::ReadOnly,
                DirMode::ReadWrite => FsPerms::ReadWrite,
            };
            builder
                .preopened_dir(&dir.host, dir.guest_path(), perms)
                .map_err(|e| GrantError::Dir {
                    path: dir.host.clone(),
                    cause: std::io::Error::other(e.to_string()),
                })?;
        }
        Ok(builder.build())
    }
}

fn check_dir(path: &Path) -> Result<(), GrantError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(GrantError::Dir {
            path: path.to_owned(),
            cause: std::io::Error::other("not a directory"),
        }),
        Err(cause) => Err(GrantError::Dir {
            path: path.to_owned(),
            cause,
        }),
    }
}

/// Longest line logged in one piece; longer output is split.
const MAX_LINE: usize = 4096;

/// Stdout or stderr of a plugin, written to the log.
struct LogOutput {
    tag: Arc<PluginTag>,
    stream: &'static str,
}

impl IsTerminal for LogOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineLogger::new(self.tag.clone(), self.stream))
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineLogger::new(self.tag.clone(), self.stream))
    }
}

/// Collects bytes into lines and logs each complete one; the rest when dropped.
struct LineLogger {
    tag: Arc<PluginTag>,
    stream: &'static str,
    line: Vec<u8>,
}

impl LineLogger {
    fn new(tag: Arc<PluginTag>, stream: &'static str) -> Self {
        LineLogger {
            tag,
            stream,
            line: Vec::new(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let mut line = std::mem::take(&mut self.line);
        split_lines(&mut line, bytes, |text| self.emit(text));
        self.line = line;
    }

    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let plugin = self.tag.get();
        match self.stream {
            "stderr" => {
                tracing::warn!(target: "interpose::plugin", plugin = %plugin, stream = self.stream, "{text}")
            }
            _ => {
                tracing::info!(target: "interpose::plugin", plugin = %plugin, stream = self.stream, "{text}")
            }
        }
    }
}

/// Appends `bytes` to the partial `line`, calling `emit` for each complete line (and
/// for each [`MAX_LINE`] bytes of an overlong one); what is left stays in `line`.
fn split_lines(line: &mut Vec<u8>, mut bytes: &[u8], mut emit: impl FnMut(&[u8])) {
    while !bytes.is_empty() {
        let end = memchr::memchr(b'\n', bytes);
        let take = end.unwrap_or(bytes.len()).min(MAX_LINE - line.len());
        line.extend_from_slice(&bytes[..take]);
        bytes = &bytes[take..];
        if end == Some(take) {
            bytes = &bytes[1..];
            emit(line);
            line.clear();
        } else if line.len() >= MAX_LINE {
            emit(line);
            line.clear();
        }
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit(&self.line);
        }
    }
}

impl OutputStream for LineLogger {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineLogger {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LineLogger {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> (Vec<String>, String) {
        let mut out = Vec::new();
        let mut line = Vec::new();
        for chunk in chunks {
            split_lines(&mut line, chunk, |l| {
                out.push(String::from_utf8_lossy(l).into_owned())
            });
        }
        (out, String::from_utf8_lossy(&line).into_owned())
    }

    #[test]
    fn output_is_logged_line_by_line() {
        assert_eq!(
            lines(&[b"one\ntw", b"o\n\nthr", b"ee"]),
            (
                vec!["one".into(), "two".into(), String::new()],
                "three".into()
            )
        );
    }

    #[test]
    fn overlong_lines_are_split() {
        let long = vec![b'x'; MAX_LINE + 10];
        let (out, rest) = lines(&[&long, b"\n"]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), MAX_LINE);
        assert_eq!(out[1].len(), 10);
        assert!(rest.is_empty());
    }
}

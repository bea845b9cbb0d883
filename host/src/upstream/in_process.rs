//! Upstream to a server running inside this process, over an in-memory pipe. Used by
//! the demo and by tests: no process to spawn, and the bytes on the pipe are the same
//! newline-delimited JSON a stdio server would write.

use std::future::Future;

use tokio::io::{BufReader, DuplexStream};

use crate::wire::link::{Link, line_link};

/// Bytes buffered in each direction of the pipe.
const PIPE_CAPACITY: usize = 256 * 1024;

/// Starts `serve` on one end of a pipe and links the relay to the other end.
pub fn server_link<F, Fut>(serve: F, max_message_bytes: usize) -> Link
where
    F: FnOnce(DuplexStream) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(PIPE_CAPACITY);
    let server = tokio::spawn(serve(theirs));
    let (read, write) = tokio::io::split(ours);
    line_link(
        BufReader::new(read),
        write,
        max_message_bytes,
        "backend",
        async move {
            match server.await {
                Ok(Ok(())) => "the in-process backend stopped".to_owned(),
                Ok(Err(e)) => format!("the in-process backend failed: {e:#}"),
                Err(e) => format!("the in-process backend panicked: {e}"),
            }
        },
    )
}

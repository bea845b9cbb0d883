//! Downstream over the proxy's own stdin and stdout.
//!
//! Clients start us with pipes (or, from Node.js, Unix socket pairs) on stdin and
//! stdout. Those are read and written through the reactor (epoll). tokio's
//! `stdin()`/`stdout()` would do every read and write on a blocking thread instead,
//! which costs two thread hand-offs per message (measured: about twice the context
//! switches per call). Files and terminals keep tokio's blocking path.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite, BufReader};

use crate::wire::link::{Link, line_link};

type Reader = Pin<Box<dyn AsyncRead + Send>>;
type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// The client on the other end of this process's stdin and stdout.
pub fn client_link(max_message_bytes: usize) -> Link {
    let stdin = BufReader::with_capacity(64 * 1024, stdin_reader());
    line_link(stdin, stdout_writer(), max_message_bytes, "client", async {
        "the client closed stdin".to_owned()
    })
}

fn stdin_reader() -> Reader {
    let stdin = std::io::stdin();
    match reactor_stream(stdin.as_fd().try_clone_to_owned()) {
        Some(Ok(Stream::Pipe(file))) => match tokio::net::unix::pipe::Receiver::from_file(file) {
            Ok(pipe) => return Box::pin(pipe),
            Err(e) => tracing::debug!(
                "stdin: pipe not usable with the reactor ({e}); using a blocking thread"
            ),
        },
        Some(Ok(Stream::Socket(socket))) => return Box::pin(socket),
        Some(Err(e)) => tracing::debug!("stdin: {e}; using a blocking thread"),
        None => {}
    }
    Box::pin(tokio::io::stdin())
}

fn stdout_writer() -> Writer {
    let stdout = std::io::stdout();
    match reactor_stream(stdout.as_fd().try_clone_to_owned()) {
        Some(Ok(Stream::Pipe(file))) => match tokio::net::unix::pipe::Sender::from_file(file) {
            Ok(pipe) => return Box::pin(pipe),
            Err(e) => tracing::debug!(
                "stdout: pipe not usable with the reactor ({e}); using a blocking thread"
            ),
        },
        Some(Ok(Stream::Socket(socket))) => return Box::pin(socket),
        Some(Err(e)) => tracing::debug!("stdout: {e}; using a blocking thread"),
        None => {}
    }
    Box::pin(tokio::io::stdout())
}

enum Stream {
    Pipe(File),
    Socket(tokio::net::UnixStream),
}

/// The descriptor as something the reactor can drive, or `None` when it is neither a
/// pipe nor a Unix socket (a file, a terminal).
fn reactor_stream(fd: std::io::Result<OwnedFd>) -> Option<std::io::Result<Stream>> {
    let file = match fd {
        Ok(fd) => File::from(fd),
        Err(e) => return Some(Err(e)),
    };
    let kind = match file.metadata() {
        Ok(meta) => meta.file_type(),
        Err(e) => return Some(Err(e)),
    };
    if kind.is_fifo() {
        return Some(Ok(Stream::Pipe(file)));
    }
    if !kind.is_socket() {
        return None;
    }
    let socket = std::os::unix::net::UnixStream::from(OwnedFd::from(file));
    let stream = socket
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixStream::from_std(socket));
    Some(stream.map(Stream::Socket))
}

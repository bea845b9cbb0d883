//! Downstream over the proxy's own stdin and stdout.

use tokio::io::BufReader;

use super::{Link, line_link};

/// The client on the other end of this process's stdin and stdout.
pub fn client_link(max_message_bytes: usize) -> Link {
    let stdin = BufReader::with_capacity(64 * 1024, tokio::io::stdin());
    line_link(
        stdin,
        tokio::io::stdout(),
        max_message_bytes,
        "client",
        async { "the client closed stdin".to_owned() },
    )
}

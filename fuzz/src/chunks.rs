//! Cutting one input into chunks, to check that a streaming reader gives the same
//! result however the bytes arrive.

use std::hash::{Hash, Hasher};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

/// Inputs up to this size are also fed one byte at a time.
const BYTEWISE_LIMIT: usize = 4096;

/// The ways to cut `data`: whole; one byte at a time (small inputs); after every line
/// ending byte (a `\r\n` split across reads); and pseudo-random sizes seeded by the
/// input itself, so a run is reproducible from the input alone.
pub fn plans(data: &[u8]) -> Vec<Vec<&[u8]>> {
    let mut plans = vec![vec![data]];
    if data.len() <= BYTEWISE_LIMIT {
        plans.push(data.chunks(1).collect());
    }
    plans.push(
        data.split_inclusive(|b| matches!(b, b'\r' | b'\n'))
            .collect(),
    );
    plans.push(random_cuts(data));
    plans
}

fn random_cuts(data: &[u8]) -> Vec<&[u8]> {
    let mut hasher = std::hash::DefaultHasher::new();
    data.hash(&mut hasher);
    let mut state = hasher.finish() | 1;
    let mut rest = data;
    let mut chunks = Vec::new();
    while !rest.is_empty() {
        // xorshift64: cheap, deterministic, good enough to spread the cut points.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = match state % 8 {
            0 => 1 + (state >> 8) as usize % 4096,
            _ => 1 + (state >> 8) as usize % 16,
        };
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// An `AsyncBufRead` that hands out exactly the given chunks, one per `fill_buf`.
pub struct ChunkedReader<'a> {
    chunks: std::collections::VecDeque<&'a [u8]>,
}

impl<'a> ChunkedReader<'a> {
    pub fn new(chunks: &[&'a [u8]]) -> Self {
        ChunkedReader {
            chunks: chunks.iter().copied().filter(|c| !c.is_empty()).collect(),
        }
    }
}

impl AsyncRead for ChunkedReader<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(front) = self.chunks.front_mut() {
            let n = front.len().min(buf.remaining());
            buf.put_slice(&front[..n]);
            *front = &front[n..];
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for ChunkedReader<'_> {
    fn poll_fill_buf(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        Poll::Ready(Ok(this.chunks.front().copied().unwrap_or(&[])))
    }

    fn consume(mut self: Pin<&mut Self>, amount: usize) {
        if let Some(front) = self.chunks.front_mut() {
            *front = &front[amount..];
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plan_covers_the_input_in_order() {
        let data = b"{\"a\":1}\r\n\n{\"b\":\r\n2}".repeat(50);
        for plan in plans(&data) {
            assert_eq!(plan.concat(), data);
        }
    }
}

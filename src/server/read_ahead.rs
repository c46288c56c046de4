//! A read-ahead buffer under a TLS connection that grows with the traffic and is released when
//! the connection goes quiet.
//!
//! rustls reads the socket at most 4 KiB at a time, which costs a system call (and on loopback
//! a window update) per 4 KiB. Reading ahead into a buffer makes that one call per buffer; the
//! buffer starts small, doubles each time a read fills it (a producer streaming batches) up to
//! [`MAX`], halves after a read that used less than a quarter of it, and is not held while the
//! connection waits after such a read, so an idle connection holds no buffer at all.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The first buffer's size.
const MIN: usize = 16 * 1024;
/// The largest buffer.
const MAX: usize = 1024 * 1024;

pub struct ReadAhead<S> {
    inner: S,
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    /// The size of the next buffer.
    size: usize,
    /// The last read used little of its buffer (or there was none yet): the connection is
    /// quiet, and waiting holds no buffer.
    quiet: bool,
}

impl<S> ReadAhead<S> {
    pub fn new(inner: S) -> ReadAhead<S> {
        ReadAhead {
            inner,
            buf: Vec::new(),
            pos: 0,
            filled: 0,
            size: MIN,
            quiet: true,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if me.pos == me.filled {
            if me.buf.len() != me.size {
                me.buf = vec![0; me.size];
            }
            let mut rb = ReadBuf::new(&mut me.buf);
            match Pin::new(&mut me.inner).poll_read(cx, &mut rb) {
                Poll::Pending => {
                    if me.quiet {
                        // nothing much arriving: hold no buffer while waiting
                        me.buf = Vec::new();
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let n = rb.filled().len();
            me.pos = 0;
            me.filled = n;
            me.quiet = n < me.size / 4;
            if n == me.size {
                me.size = (me.size * 2).min(MAX);
            } else if me.quiet {
                me.size = (me.size / 2).max(MIN);
            }
            if n == 0 {
                return Poll::Ready(Ok(())); // end of stream
            }
        }
        let take = out.remaining().min(me.filled - me.pos);
        out.put_slice(&me.buf[me.pos..me.pos + take]);
        me.pos += take;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_everything_in_order_growing_and_releasing_its_buffer() {
        let (mut tx, rx) = tokio::io::duplex(4 * MAX);
        let data: Vec<u8> = (0..3 * MAX + 123).map(|i| (i % 251) as u8).collect();
        tx.write_all(&data).await.expect("write");
        drop(tx);
        let mut r = ReadAhead::new(rx);
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut grew = false;
        loop {
            let n = r.read(&mut chunk).await.expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
            grew |= r.buf.len() > MIN;
        }
        assert_eq!(got, data);
        assert!(grew, "a streaming reader's buffer grows");

        // a quiet connection holds no buffer while it waits
        let (_tx, rx) = tokio::io::duplex(1024);
        let mut r = ReadAhead::new(rx);
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(20), r.read(&mut chunk)).await;
        assert!(waited.is_err(), "nothing to read");
        assert!(r.buf.is_empty());
    }
}

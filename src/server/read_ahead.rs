//! A read-ahead buffer under a TLS connection that grows with the traffic and is released when
//! the connection goes quiet, and that keeps the socket from waking the connection for every
//! TLS record of a large request.
//!
//! rustls reads the socket at most 4 KiB at a time, which costs a system call (and on loopback
//! a window update) per 4 KiB. Reading ahead into a buffer makes that one call per buffer; the
//! buffer starts small, doubles each time a read fills it (a producer streaming batches) up to
//! [`MAX`], halves after a read that used less than a quarter of it, and once it is back at
//! [`MIN`] is not held while the connection waits, so an idle connection holds no buffer.
//!
//! A client writes TLS records of at most 16 KiB, often one per system call, and each one
//! arriving woke the connection: a 1 MiB produce request cost some 64 wake-ups, reads and
//! window updates on both sides, where plaintext costs a few. The reader above says how much
//! of the request it still waits for ([`Wanted`]); before waiting on the socket, the buffer
//! sets the socket's low-water mark (`SO_RCVLOWAT`) to that, less what TLS may hold above the
//! socket, so the kernel wakes the connection once for many records. The mark is always below
//! what must still arrive, so it never waits for bytes that will not come (and the kernel
//! wakes a reader whose window is closing or whose peer closed, whatever the mark).

use bytes::{Buf, BytesMut};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The first buffer's size.
const MIN: usize = 16 * 1024;
/// The largest buffer.
const MAX: usize = 1024 * 1024;
/// What TLS may hold above this buffer when it next reads the socket: rustls decrypts at most
/// a record ahead of the reader and holds at most one partial record (each up to 16 KiB and a
/// little), so the low-water mark stays this far under what the reader wants.
const HELD_ABOVE: usize = 64 * 1024;
/// Under this the mark stays at 1 (wake for any byte): waking once more costs little.
const MARK_MIN: usize = 32 * 1024;
/// The highest mark. Setting a mark can enlarge the socket's receive buffer to fit it; this
/// keeps that modest.
const MARK_MAX: usize = 256 * 1024;

/// How many more bytes of plaintext the connection's reader waits for to complete the request
/// it is reading; 0 between requests. Set by the reader, read by the buffer under TLS.
#[derive(Clone, Default)]
pub struct Wanted(Arc<AtomicUsize>);

impl Wanted {
    pub fn set(&self, bytes: usize) {
        self.0.store(bytes, Ordering::Relaxed);
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// The socket's low-water mark, kept to what the reader wants.
struct LowWater {
    fd: RawFd,
    wanted: Wanted,
    /// The mark last set (1 is the socket's default).
    set: usize,
}

impl LowWater {
    /// The mark for `wanted` bytes of plaintext still to come.
    fn mark(wanted: usize) -> usize {
        let sure = wanted.saturating_sub(HELD_ABOVE);
        if sure < MARK_MIN {
            1
        } else {
            sure.min(MARK_MAX)
        }
    }

    fn apply(&mut self) {
        let mark = Self::mark(self.wanted.get());
        if mark != self.set {
            // a mark that cannot be set leaves the socket waking on every arrival, as before
            if set_rcvlowat(self.fd, mark).is_ok() {
                self.set = mark;
            }
        }
    }
}

fn set_rcvlowat(fd: RawFd, bytes: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fd` is the open socket of the stream this buffer owns, and the option value is
    // a c_int whose size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub struct ReadAhead<S> {
    inner: S,
    /// Bytes read and not yet handed on; its allocation is kept between reads.
    buf: BytesMut,
    /// The size of the current allocation (0: none).
    held: usize,
    /// The size of the next buffer.
    size: usize,
    low_water: Option<LowWater>,
}

impl<S> ReadAhead<S> {
    pub fn new(inner: S) -> ReadAhead<S> {
        ReadAhead {
            inner,
            buf: BytesMut::new(),
            held: 0,
            size: MIN,
            low_water: None,
        }
    }
}

impl<S: AsRawFd> ReadAhead<S> {
    /// A buffer over a socket whose low-water mark follows what `wanted` says.
    pub fn with_low_water(inner: S, wanted: Wanted) -> ReadAhead<S> {
        let fd = inner.as_raw_fd();
        let mut r = ReadAhead::new(inner);
        r.low_water = Some(LowWater { fd, wanted, set: 1 });
        r
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if !me.buf.has_remaining() {
            if me.held < me.size {
                // grown (or none held): a new allocation, nothing to carry over
                me.buf = BytesMut::with_capacity(me.size);
                me.held = me.size;
            } else {
                // everything was handed on: take the whole allocation back
                me.buf.clear();
                me.buf.reserve(me.held);
            }
            if let Some(lw) = me.low_water.as_mut() {
                lw.apply();
            }
            let asked = me.buf.capacity();
            let n = match tokio_util::io::poll_read_buf(Pin::new(&mut me.inner), cx, &mut me.buf) {
                Poll::Pending => {
                    if me.size == MIN || me.held > 2 * me.size {
                        // little arriving: hold no buffer (or a smaller one next) while waiting
                        me.buf = BytesMut::new();
                        me.held = 0;
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(n)) => n,
            };
            if n == asked {
                me.size = (me.size * 2).min(MAX);
            } else if n < me.size / 4 {
                me.size = (me.size / 2).max(MIN);
            }
            if n == 0 {
                return Poll::Ready(Ok(())); // end of stream
            }
        }
        let take = out.remaining().min(me.buf.remaining());
        out.put_slice(&me.buf[..take]);
        me.buf.advance(take);
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
            grew |= r.held > MIN;
        }
        assert_eq!(got, data);
        assert!(grew, "a streaming reader's buffer grows");

        // a quiet connection holds no buffer while it waits
        let (_tx, rx) = tokio::io::duplex(1024);
        let mut r = ReadAhead::new(rx);
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(20), r.read(&mut chunk)).await;
        assert!(waited.is_err(), "nothing to read");
        assert_eq!(r.held, 0);
    }

    #[test]
    fn the_mark_stays_under_what_must_still_arrive() {
        assert_eq!(LowWater::mark(0), 1);
        assert_eq!(LowWater::mark(HELD_ABOVE + MARK_MIN - 1), 1);
        assert_eq!(LowWater::mark(HELD_ABOVE + MARK_MIN), MARK_MIN);
        assert_eq!(LowWater::mark(HELD_ABOVE + 100_000), 100_000);
        assert_eq!(LowWater::mark(usize::MAX), MARK_MAX);
        for wanted in (0..4 * MARK_MAX).step_by(997) {
            assert!(LowWater::mark(wanted) <= wanted.max(1));
        }
    }

    fn rcvlowat(fd: RawFd) -> usize {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: reads a c_int option of an open socket into a c_int
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "getsockopt");
        v as usize
    }

    #[tokio::test]
    async fn a_large_request_arriving_in_pieces_is_read_whole_with_the_mark_raised() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let total = 3 * MARK_MAX + 4321;
        let data: Vec<u8> = (0..total).map(|i| (i % 253) as u8).collect();
        let sent = data.clone();
        let client = tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            // small writes with pauses, as a TLS client writes records
            for piece in sent.chunks(16 * 1024 + 22) {
                s.write_all(piece).await.expect("write");
                tokio::time::sleep(std::time::Duration::from_micros(200)).await;
            }
            s
        });
        let (sock, _) = listener.accept().await.expect("accept");
        let fd = sock.as_raw_fd();
        let wanted = Wanted::default();
        let mut r = ReadAhead::with_low_water(sock, wanted.clone());
        let mut got = Vec::new();
        let mut chunk = vec![0u8; 4096];
        let mut raised = false;
        while got.len() < total {
            wanted.set(total - got.len());
            let n = tokio::time::timeout(std::time::Duration::from_secs(10), r.read(&mut chunk))
                .await
                .expect("the last bytes arrive under the mark and are still read")
                .expect("read");
            assert!(n > 0, "end of stream before the request's end");
            got.extend_from_slice(&chunk[..n]);
            raised |= rcvlowat(fd) > 1;
        }
        assert_eq!(got, data);
        assert!(raised, "the mark was raised while much was still wanted");
        // between requests the socket wakes for any byte again
        wanted.set(0);
        let _client = client.await.expect("client");
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(20), r.read(&mut chunk)).await;
        assert!(waited.is_err(), "nothing more to read");
        assert_eq!(rcvlowat(fd), 1);
    }
}

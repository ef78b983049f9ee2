//! One accepted connection: the limits on its reads, and how it ends during a drain.
//!
//! hyper's own `header_read_timeout` also runs while a kept-alive connection waits for its next
//! request, so it cannot give a short head timeout and a long idle timeout at once; the reads
//! are timed here instead, with the request phase the service reports.

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// Requests of one connection inside the service (head read, answer not yet returned); while
/// one is, the connection is neither idle nor reading a head, so no read timer runs.
#[derive(Debug, Default)]
pub(super) struct InService(AtomicUsize);

impl InService {
    pub(super) fn enter(self: &Arc<Self>) -> Leave {
        self.0.fetch_add(1, Ordering::AcqRel);
        Leave(Arc::clone(self))
    }

    fn busy(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }
}

/// Leaves the service when dropped, answered or not.
pub(super) struct Leave(Arc<InService>);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests: the idle timer runs.
    Idle,
    /// A head has started (or the connection is new): the head timer runs.
    Head,
    /// A request is in the service; its body read is bounded by the request deadline there.
    Busy,
}

/// A TCP stream whose reads end with a timeout error when a head takes longer than
/// `head_timeout` or the connection idles longer than `idle_timeout`, and with end-of-file once
/// the gateway is stopping and no more bytes have arrived, so that idle and half-sent
/// connections close at once while every request already received is read and answered.
pub(super) struct Guarded {
    stream: TcpStream,
    in_service: Arc<InService>,
    stopping: watch::Receiver<Option<Instant>>,
    phase: Phase,
    timer: Pin<Box<Sleep>>,
    head_timeout: Duration,
    idle_timeout: Duration,
}

impl Guarded {
    pub(super) fn new(
        stream: TcpStream,
        in_service: Arc<InService>,
        stopping: watch::Receiver<Option<Instant>>,
        head_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            stream,
            in_service,
            stopping,
            // A new connection owes its first head: a client that connects and stays silent is
            // closed like one that sends its head slowly.
            phase: Phase::Head,
            timer: Box::pin(tokio::time::sleep(head_timeout)),
            head_timeout,
            idle_timeout,
        }
    }

    fn start(&mut self, phase: Phase, limit: Duration) {
        self.phase = phase;
        self.timer.as_mut().reset(Instant::now() + limit);
    }
}

/// Reads what the socket holds right now, without waiting and without the runtime's readiness
/// cache (which may not know yet of bytes that arrived on a connection accepted during the
/// drain). `Ok(None)`: nothing has arrived.
fn read_now(stream: &TcpStream, buf: &mut ReadBuf<'_>) -> io::Result<Option<()>> {
    let unfilled = buf.initialize_unfilled();
    // SAFETY: the descriptor is open (we hold the stream) and `unfilled` is a valid, initialized
    // buffer of the given length; MSG_DONTWAIT keeps the call from blocking.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            unfilled.as_mut_ptr().cast(),
            unfilled.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n >= 0 {
        buf.advance(n as usize);
        return Ok(Some(()));
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock => Ok(None),
        io::ErrorKind::Interrupted => Ok(None),
        _ => Err(e),
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.in_service.busy() {
            this.phase = Phase::Busy;
        } else if this.phase == Phase::Busy {
            this.start(Phase::Idle, this.idle_timeout);
        }
        let before = buf.filled().len();
        let read = match Pin::new(&mut this.stream).poll_read(cx, buf) {
            // While a request is in the service, an end of input would make hyper drop its
            // answer; a body that stalls there is cut at the request deadline instead.
            Poll::Pending if this.phase != Phase::Busy && this.stopping.borrow().is_some() => {
                match read_now(&this.stream, buf) {
                    // Nothing more has arrived: end of input, so hyper closes an idle
                    // connection at once, and one with half a head with an error.
                    Ok(None) => return Poll::Ready(Ok(())),
                    other => Poll::Ready(other.map(|_| ())),
                }
            }
            other => other,
        };
        match read {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.phase == Phase::Idle {
                    this.start(Phase::Head, this.head_timeout);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending
                if this.phase != Phase::Busy && this.timer.as_mut().poll(cx).is_ready() =>
            {
                let (what, limit) = match this.phase {
                    Phase::Idle => ("idle", this.idle_timeout),
                    _ => ("request head", this.head_timeout),
                };
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{what} timeout of {} s", limit.as_secs()),
                )))
            }
            other => other,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

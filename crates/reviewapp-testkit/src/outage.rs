//! API server outages, at the network level: the emulator's listener and every connection it
//! accepted go through a [`Gate`], so that an outage looks to a client as a stopped or
//! partitioned API server does (see [`Outage`]), watches included.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How the API server is unreachable during an outage
/// ([`Handle::start_outage`](crate::Handle::start_outage)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outage {
    /// As a stopped server: the port is closed, so new connections are refused, and every open
    /// connection (watches included) is reset. Nothing sent meanwhile is received.
    Refuse,
    /// As a network partition: connections are accepted, but nothing is read or answered, so
    /// requests (and open watches) hang until the outage ends; then every connection that saw
    /// the outage is reset. Nothing sent meanwhile is ever received.
    Hang,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    outage: Option<Outage>,
    /// Incremented when an outage starts and when it ends: a connection accepted in another
    /// epoch than the current one saw an outage.
    epoch: u64,
}

/// What a connection may do now.
enum Verdict {
    Pass,
    Wait,
    Dead,
}

/// The tasks polling one connection (reading, writing), woken when an outage starts or ends.
#[derive(Default)]
struct Slot {
    wakers: Mutex<[Option<Waker>; 2]>,
}

/// The outage switch, shared by the listener, every connection and the handle.
pub(crate) struct Gate {
    state: watch::Sender<State>,
    /// One slot per live connection.
    slots: Mutex<Vec<Weak<Slot>>>,
}

impl Gate {
    pub(crate) fn new() -> Self {
        Self {
            state: watch::Sender::new(State {
                outage: None,
                epoch: 0,
            }),
            slots: Mutex::new(Vec::new()),
        }
    }

    /// Starts (`Some`) or ends (`None`) an outage.
    pub(crate) fn set(&self, outage: Option<Outage>) {
        let changed = self.state.send_if_modified(|state| {
            if state.outage == outage {
                return false;
            }
            state.outage = outage;
            state.epoch += 1;
            true
        });
        if !changed {
            return;
        }
        // The state changed before any waker is taken (see `verdict`).
        let slots: Vec<Arc<Slot>> = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.retain(|slot| slot.strong_count() > 0);
            slots.iter().filter_map(Weak::upgrade).collect()
        };
        for slot in slots {
            let wakers =
                std::mem::take(&mut *slot.wakers.lock().unwrap_or_else(|e| e.into_inner()));
            for waker in wakers.into_iter().flatten() {
                waker.wake();
            }
        }
    }

    /// The current outage.
    pub(crate) fn outage(&self) -> Option<Outage> {
        self.state.borrow().outage
    }

    fn epoch(&self) -> u64 {
        self.state.borrow().epoch
    }

    /// A slot for a new connection.
    fn slot(&self) -> Arc<Slot> {
        let slot = Arc::new(Slot::default());
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.len() >= 64 && slots.len().is_power_of_two() {
            slots.retain(|slot| slot.strong_count() > 0);
        }
        slots.push(Arc::downgrade(&slot));
        slot
    }

    /// What a connection accepted in epoch `born` may do; registers `waker` in its `slot` to be
    /// woken when an outage starts or ends. Reading the state and registering happen under the
    /// slot's lock, which `set` takes after changing the state, so a change is never missed.
    fn verdict(&self, born: u64, slot: &Slot, writing: bool, waker: &Waker) -> Verdict {
        let mut wakers = slot.wakers.lock().unwrap_or_else(|e| e.into_inner());
        let state = *self.state.borrow();
        let verdict = match state.outage {
            Some(Outage::Refuse) => return Verdict::Dead,
            Some(Outage::Hang) => Verdict::Wait,
            None if state.epoch != born => return Verdict::Dead,
            None => Verdict::Pass,
        };
        match &mut wakers[usize::from(writing)] {
            Some(known) if known.will_wake(waker) => {}
            entry => *entry = Some(waker.clone()),
        }
        verdict
    }
}

/// The emulator's listener: closed during a [`Outage::Refuse`] outage (and bound again on the
/// same address after it), and wrapping every connection in a [`GatedStream`].
pub(crate) struct GatedListener {
    listener: Option<TcpListener>,
    addr: SocketAddr,
    gate: Arc<Gate>,
}

impl GatedListener {
    pub(crate) fn new(listener: TcpListener, gate: Arc<Gate>) -> io::Result<Self> {
        Ok(Self {
            addr: listener.local_addr()?,
            listener: Some(listener),
            gate,
        })
    }
}

impl axum::serve::Listener for GatedListener {
    type Io = GatedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (GatedStream, SocketAddr) {
        let mut changes = self.gate.state.subscribe();
        loop {
            let refusing = changes.borrow_and_update().outage == Some(Outage::Refuse);
            if refusing {
                self.listener = None; // the port is closed: connecting is refused
                let _ = changes.changed().await;
                continue;
            }
            let Some(listener) = &self.listener else {
                match TcpListener::bind(self.addr).await {
                    Ok(listener) => self.listener = Some(listener),
                    Err(err) => {
                        tracing::warn!(addr = %self.addr, %err, "emulator: cannot listen again yet");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                continue;
            };
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, remote)) => {
                        let _ = stream.set_nodelay(true);
                        let stream = GatedStream {
                            inner: stream,
                            born: self.gate.epoch(),
                            slot: self.gate.slot(),
                            gate: self.gate.clone(),
                            reset: false,
                        };
                        return (stream, remote);
                    }
                    Err(err) => {
                        tracing::debug!(%err, "emulator: accept failed");
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                },
                _ = changes.changed() => {}
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// One accepted connection, passing bytes only while no outage is on and none happened since it
/// was accepted.
pub(crate) struct GatedStream {
    inner: TcpStream,
    gate: Arc<Gate>,
    born: u64,
    slot: Arc<Slot>,
    reset: bool,
}

impl GatedStream {
    /// The error of a dead connection; it is closed with a reset (RST) rather than a FIN.
    fn dead(&mut self) -> io::Error {
        if !self.reset {
            self.reset = true;
            let _ = self.inner.set_zero_linger();
        }
        io::Error::new(
            io::ErrorKind::ConnectionReset,
            "the emulated API server is unreachable",
        )
    }
}

impl AsyncRead for GatedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.gate.verdict(this.born, &this.slot, false, cx.waker()) {
            Verdict::Pass => Pin::new(&mut this.inner).poll_read(cx, buf),
            Verdict::Wait => Poll::Pending,
            Verdict::Dead => Poll::Ready(Err(this.dead())),
        }
    }
}

impl AsyncWrite for GatedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.gate.verdict(this.born, &this.slot, true, cx.waker()) {
            Verdict::Pass => Pin::new(&mut this.inner).poll_write(cx, buf),
            Verdict::Wait => Poll::Pending,
            Verdict::Dead => Poll::Ready(Err(this.dead())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.gate.verdict(this.born, &this.slot, true, cx.waker()) {
            Verdict::Pass => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
            Verdict::Wait => Poll::Pending,
            Verdict::Dead => Poll::Ready(Err(this.dead())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.gate.verdict(this.born, &this.slot, true, cx.waker()) {
            Verdict::Pass => Pin::new(&mut this.inner).poll_flush(cx),
            Verdict::Wait => Poll::Pending,
            Verdict::Dead => Poll::Ready(Err(this.dead())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.gate.verdict(this.born, &this.slot, true, cx.waker()) {
            Verdict::Pass => Pin::new(&mut this.inner).poll_shutdown(cx),
            Verdict::Wait => Poll::Pending,
            // Closing a dead connection is done: it is reset when dropped.
            Verdict::Dead => {
                let _ = this.dead();
                Poll::Ready(Ok(()))
            }
        }
    }
}

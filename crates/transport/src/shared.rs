//! State shared by the transport, its handles, the UDP threads and the TCP tasks.

use std::fmt;
use std::net::UdpSocket;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::stats::Stats;
use crate::tcp::TcpShared;
use crate::{DynHandler, LocalSocket};

/// Everything the threads, tasks and handles share.
pub(crate) struct Shared {
    /// The bound listen sockets, by index.
    pub sockets: Arc<[LocalSocket]>,
    /// The socket to send from, per listen index: the first worker socket of each UDP listen
    /// address; `None` for TCP listen addresses, and for all once shut down (so that no
    /// socket of the `SO_REUSEPORT` group outlives the transport, silently taking a share of
    /// the datagrams).
    pub udp_send: RwLock<Vec<Option<Arc<UdpSocket>>>>,
    /// The counters.
    pub stats: Stats,
    /// The handler, from start to shutdown (taken at shutdown: it usually holds a
    /// [`TransportHandle`](crate::TransportHandle), which holds this).
    pub handler: Mutex<Option<DynHandler>>,
    /// The TCP runtime, from start to shutdown.
    pub runtime: RwLock<Option<tokio::runtime::Handle>>,
    /// Connections and the TCP shutdown phases.
    pub tcp: TcpShared,
    /// Set when shutdown begins: no new outbound TCP connections.
    pub closing: AtomicBool,
    /// Set when shutdown is over: every send fails with `Closed`.
    pub closed: AtomicBool,
    /// Tells the UDP workers to stop.
    pub udp_stop: AtomicBool,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("sockets", &self.sockets)
            .field("closing", &self.closing)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// Runs a handler call, logging instead of unwinding further if it panics, so that one bad
/// message does not kill a UDP worker or leave a connection half registered.
pub(crate) fn guarded(what: &'static str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        tracing::error!("the handler panicked in {what}");
    }
}

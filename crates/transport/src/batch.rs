//! Batched UDP sending: while a [`UdpBatch`] guard lives, the UDP datagrams this thread
//! sends are queued and go out together with `sendmmsg` (one system call, and one chance
//! for the kernel to switch to the woken receivers, instead of one per datagram).
//!
//! For a thread that sends many datagrams at once on its own (keepalive's prober): a
//! datagram queued here leaves when the guard is dropped, or when [`MAX_BATCH`] are queued,
//! never later. A send error then shows in the log and in `send_errors`, not to the caller,
//! which was told `Ok` (for UDP, errors are rare and mostly delayed anyway: an unreachable
//! port answers with ICMP after the send returned).

use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use crate::shared::Shared;
use crate::stats::{add, bump};

/// At most this many datagrams are queued before they are sent (the kernel's `UIO_MAXIOV`
/// is 1024; 64 keeps the bursts short).
pub const MAX_BATCH: usize = 64;

/// The datagrams queued on one thread. The vectors stay with the thread between batches
/// (a prober opens one every round).
struct Pending {
    /// The transport of the open batch; `None` when no batch is open.
    shared: Option<Arc<Shared>>,
    /// (listen socket index, destination, range in `buf`).
    items: Vec<(usize, SocketAddr, usize, usize)>,
    buf: Vec<u8>,
}

thread_local! {
    static BATCH: RefCell<Pending> = const {
        RefCell::new(Pending {
            shared: None,
            items: Vec::new(),
            buf: Vec::new(),
        })
    };
}

/// While this guard lives, UDP datagrams sent on this thread through the transport it came
/// from are queued, and sent together when it is dropped (see the module documentation).
/// A guard made while another lives on the thread changes nothing.
#[derive(Debug)]
#[must_use = "the batch is sent when the guard is dropped"]
pub struct UdpBatch {
    outer: bool,
}

impl UdpBatch {
    pub(crate) fn begin(shared: &Arc<Shared>) -> UdpBatch {
        let outer = BATCH.with(|b| {
            let mut b = b.borrow_mut();
            if b.shared.is_some() {
                return false;
            }
            b.shared = Some(shared.clone());
            b.items.reserve(MAX_BATCH);
            b.buf.reserve(MAX_BATCH * 512);
            true
        });
        UdpBatch { outer }
    }
}

impl Drop for UdpBatch {
    fn drop(&mut self) {
        if !self.outer {
            return;
        }
        BATCH.with(|b| {
            let mut b = b.borrow_mut();
            flush(&mut b);
            b.shared = None;
        });
    }
}

/// Queues a datagram when a batch of `shared` is open on this thread: false when there is
/// none (the caller sends it at once).
pub(crate) fn queue(shared: &Shared, index: usize, dst: SocketAddr, data: &[u8]) -> bool {
    BATCH.with(|b| {
        let mut b = b.borrow_mut();
        let p = &mut *b;
        if !p
            .shared
            .as_ref()
            .is_some_and(|open| std::ptr::eq(Arc::as_ptr(open), shared))
        {
            return false;
        }
        let start = p.buf.len();
        p.buf.extend_from_slice(data);
        p.items.push((index, dst, start, p.buf.len()));
        if p.items.len() >= MAX_BATCH {
            flush(p);
        }
        true
    })
}

/// Sends what is queued, socket by socket (runs of the same listen socket go in one call).
fn flush(p: &mut Pending) {
    let Some(shared) = p.shared.as_ref() else {
        return;
    };
    let mut rest = p.items.as_slice();
    while let Some(&(index, ..)) = rest.first() {
        let run = rest.iter().take_while(|i| i.0 == index).count();
        let (now, later) = rest.split_at(run);
        let socket = shared
            .udp_send
            .read()
            .get(index)
            .and_then(Option::as_ref)
            .cloned();
        match socket {
            Some(s) => send_run(shared, &s, now, &p.buf),
            None => add(&shared.stats.send_errors, run as u64),
        }
        rest = later;
    }
    p.items.clear();
    p.buf.clear();
}

/// Sends datagrams from one socket, skipping (and counting) one that fails.
#[cfg(target_os = "linux")]
fn send_run(
    shared: &Shared,
    socket: &UdpSocket,
    items: &[(usize, SocketAddr, usize, usize)],
    buf: &[u8],
) {
    use rustix::net::addr::SocketAddrArg;
    use rustix::net::{sendmmsg, MMsgHdr, SendAncillaryBuffer, SendFlags};
    use std::io::IoSlice;

    let addrs: Vec<_> = items.iter().map(|i| i.1.as_any()).collect();
    let iovs: Vec<[IoSlice<'_>; 1]> = items
        .iter()
        .map(|i| [IoSlice::new(buf.get(i.2..i.3).unwrap_or_default())])
        .collect();
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = items
        .iter()
        .map(|_| SendAncillaryBuffer::default())
        .collect();
    let mut msgs: Vec<MMsgHdr<'_>> = addrs
        .iter()
        .zip(iovs.iter())
        .zip(controls.iter_mut())
        .map(|((a, iov), c)| MMsgHdr::new_with_addr(a, iov, c))
        .collect();
    let mut done = 0;
    while done < msgs.len() {
        let Some(left) = msgs.get_mut(done..) else {
            break;
        };
        match sendmmsg(socket, left, SendFlags::empty()) {
            Ok(0) => break,
            Ok(n) => {
                add(&shared.stats.udp_sent, n as u64);
                done += n;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                // The first datagram left failed: count it, go on with the next.
                let dst = items.get(done).map(|i| i.1);
                tracing::debug!(?dst, error = %e, "UDP send failed");
                bump(&shared.stats.send_errors);
                done += 1;
            }
        }
    }
}

/// Elsewhere: one `send_to` each.
#[cfg(not(target_os = "linux"))]
fn send_run(
    shared: &Shared,
    socket: &UdpSocket,
    items: &[(usize, SocketAddr, usize, usize)],
    buf: &[u8],
) {
    for i in items {
        match socket.send_to(buf.get(i.2..i.3).unwrap_or_default(), i.1) {
            Ok(_) => bump(&shared.stats.udp_sent),
            Err(e) => {
                tracing::debug!(dst = %i.1, error = %e, "UDP send failed");
                bump(&shared.stats.send_errors);
            }
        }
    }
}

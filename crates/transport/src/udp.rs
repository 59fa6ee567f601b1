//! UDP: worker threads on `SO_REUSEPORT` sockets, and sending.
//!
//! Every UDP listen address gets `udp_children` sockets bound to the same address with
//! `SO_REUSEPORT`. The kernel spreads the datagrams over the group by a hash of the source
//! address and port, so the datagrams of one peer always land on the same socket, and so on
//! the same worker thread, in order (`DESIGN.md` §4).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::SendError;
use crate::shared::{guarded, Shared};
use crate::stats::bump;
use crate::{family_name, pick_local, DynHandler, Inbound, Outbound, Proto};

/// The largest datagram handed to the handler: the largest UDP payload an IP header can
/// describe (and more than IPv4 can carry, 65507).
pub(crate) const MAX_DATAGRAM: usize = 65535;

/// The size of each worker's receive buffer: one octet more than [`MAX_DATAGRAM`], so that
/// a larger datagram (an IPv6 jumbogram, truncated by the kernel to the buffer) shows as
/// filling the buffer and can be dropped instead of being handled truncated.
pub(crate) const UDP_BUFFER_LEN: usize = MAX_DATAGRAM + 2;

/// How long a worker blocks in `recv_from` before looking at the stop flag.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// True when a datagram of `len` octets (as `recv_from` returned it into a buffer of
/// [`UDP_BUFFER_LEN`]) is too large, and was perhaps truncated: it must be dropped.
pub(crate) fn is_oversize(len: usize) -> bool {
    len > MAX_DATAGRAM
}

/// Binds the `children` sockets of one listen address; the first to `addr`, the others to
/// the address the first got (the same one unless the port was 0).
pub(crate) fn bind_group(addr: SocketAddr, children: usize) -> io::Result<Vec<Arc<UdpSocket>>> {
    let first = bind_one(addr)?;
    let resolved = first.local_addr()?;
    let mut group = Vec::with_capacity(children);
    group.push(Arc::new(first));
    for _ in 1..children {
        group.push(Arc::new(bind_one(resolved)?));
    }
    Ok(group)
}

/// One blocking UDP socket with `SO_REUSEPORT` and the read timeout; IPv6 sockets are
/// IPv6-only, so that `[::]` and `0.0.0.0` can both be listened on with the same port.
fn bind_one(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(socket.into())
}

/// The loop of one worker thread: receive into the thread's buffer, call the handler, until
/// the stop flag is set.
pub(crate) fn worker(
    shared: Arc<Shared>,
    handler: DynHandler,
    socket: Arc<UdpSocket>,
    index: usize,
) {
    let Some(local) = shared.sockets.get(index) else {
        return;
    };
    let mut buf = vec![0u8; UDP_BUFFER_LEN];
    tracing::debug!(local = %local.addr, "UDP worker started");
    while !shared.udp_stop.load(Ordering::Acquire) {
        match socket.recv_from(&mut buf) {
            Ok((len, src)) => {
                if is_oversize(len) {
                    bump(&shared.stats.udp_oversize_dropped);
                    tracing::debug!(%src, local = %local.addr, "oversize UDP datagram dropped");
                    continue;
                }
                bump(&shared.stats.udp_received);
                let data = buf.get(..len).unwrap_or_default();
                guarded("on_message", || {
                    handler.on_message(Inbound {
                        data,
                        proto: Proto::Udp,
                        src,
                        local,
                        conn: None,
                    });
                });
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                tracing::debug!(local = %local.addr, error = %e, "UDP receive failed");
                // Do not spin on an error that repeats.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    tracing::debug!(local = %local.addr, "UDP worker stopped");
}

/// Sends one datagram from the chosen listen socket.
pub(crate) fn send(shared: &Shared, out: &Outbound<'_>) -> Result<(), SendError> {
    let index = pick_local(&shared.sockets, out.local, Proto::Udp, &out.dst).ok_or(
        SendError::NoSocket {
            proto: Proto::Udp,
            family: family_name(&out.dst),
        },
    )?;
    if crate::batch::queue(shared, index, out.dst, out.data) {
        return Ok(());
    }
    let sockets = shared.udp_send.read();
    let socket = sockets
        .get(index)
        .and_then(Option::as_ref)
        .ok_or(SendError::Closed)?;
    match socket.send_to(out.data, out.dst) {
        Ok(_) => {
            bump(&shared.stats.udp_sent);
            Ok(())
        }
        Err(e) => {
            tracing::debug!(dst = %out.dst, error = %e, "UDP send failed");
            Err(SendError::Io(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversize_check() {
        assert!(!is_oversize(0));
        assert!(!is_oversize(65507));
        assert!(!is_oversize(65535));
        assert!(is_oversize(65536));
        assert!(is_oversize(UDP_BUFFER_LEN));
        // The buffer can hold more than the limit, so a truncated datagram is detectable.
        const { assert!(UDP_BUFFER_LEN == 65536 + 1) };
    }

    #[test]
    fn group_shares_the_resolved_port() {
        let group = bind_group("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let addrs: Vec<_> = group.iter().map(|s| s.local_addr().unwrap()).collect();
        assert_eq!(addrs.len(), 3);
        assert_ne!(addrs[0].port(), 0);
        assert!(addrs.iter().all(|a| *a == addrs[0]));
    }
}

//! Counters of the transport.

use std::sync::atomic::{AtomicU64, Ordering};

/// The counters, updated with relaxed atomics from every thread.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub udp_received: AtomicU64,
    pub udp_sent: AtomicU64,
    pub udp_oversize_dropped: AtomicU64,
    pub tcp_received: AtomicU64,
    pub tcp_sent: AtomicU64,
    pub tcp_connections_accepted: AtomicU64,
    pub tcp_connections_connected: AtomicU64,
    pub tcp_connections_refused: AtomicU64,
    pub tcp_connect_failures: AtomicU64,
    pub framing_errors: AtomicU64,
    pub tcp_idle_closed: AtomicU64,
    pub send_errors: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Stats {
    /// The current values; `tcp_connections_open` is given by the caller.
    pub(crate) fn snapshot(&self, tcp_connections_open: u64) -> TransportStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStatsSnapshot {
            udp_received: get(&self.udp_received),
            udp_sent: get(&self.udp_sent),
            udp_oversize_dropped: get(&self.udp_oversize_dropped),
            tcp_received: get(&self.tcp_received),
            tcp_sent: get(&self.tcp_sent),
            tcp_connections_open,
            tcp_connections_accepted: get(&self.tcp_connections_accepted),
            tcp_connections_connected: get(&self.tcp_connections_connected),
            tcp_connections_refused: get(&self.tcp_connections_refused),
            tcp_connect_failures: get(&self.tcp_connect_failures),
            framing_errors: get(&self.framing_errors),
            tcp_idle_closed: get(&self.tcp_idle_closed),
            send_errors: get(&self.send_errors),
        }
    }
}

/// The transport's counters at one moment (each read on its own: they need not be mutually
/// consistent while traffic flows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStatsSnapshot {
    /// Datagrams received and handed to the handler.
    pub udp_received: u64,
    /// Datagrams sent.
    pub udp_sent: u64,
    /// Datagrams dropped because they filled the receive buffer (over 65535 octets).
    pub udp_oversize_dropped: u64,
    /// Stream messages received and handed to the handler (keep-alives not counted).
    pub tcp_received: u64,
    /// Stream messages written to a connection (keep-alive pongs not counted).
    pub tcp_sent: u64,
    /// TCP connections open now, including outbound ones still connecting.
    pub tcp_connections_open: u64,
    /// TCP connections accepted (and not refused).
    pub tcp_connections_accepted: u64,
    /// Outbound TCP connections established.
    pub tcp_connections_connected: u64,
    /// TCP connections accepted and closed at once because `tcp_max_connections` were open.
    pub tcp_connections_refused: u64,
    /// Outbound TCP connects that failed or timed out.
    pub tcp_connect_failures: u64,
    /// Streams whose framing was lost (each closed).
    pub framing_errors: u64,
    /// TCP connections closed after `tcp_connection_lifetime` without traffic.
    pub tcp_idle_closed: u64,
    /// Messages not sent: `send` calls that returned an error, and queued TCP messages
    /// dropped because their connection failed (connect or write error, write timeout).
    pub send_errors: u64,
}

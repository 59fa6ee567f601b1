//! `sable-transport`: the sockets of Sable, and the only crate that owns any.
//!
//! What this crate owns:
//! - **UDP**: for every UDP listen address, `udp_children` worker threads, each with its own
//!   socket bound to that address with `SO_REUSEPORT`, so the kernel keeps the datagrams of
//!   one peer on one thread (and therefore in order, see `DESIGN.md` §4). Each worker blocks
//!   in `recv_from` on one 64 KiB buffer of its own and calls the [`Handler`] synchronously on
//!   that thread with the datagram borrowed from the buffer: no allocation per datagram.
//! - **TCP**: a small tokio runtime of its own (two named worker threads) with an accept loop
//!   per TCP listen address and one task per connection. Each task cuts the byte stream into
//!   messages with [`sable_sip::StreamFramer`] (RFC 3261 §18.3), answers RFC 5626 CRLF
//!   keep-alive pings, closes idle connections and hands each whole message to the same
//!   synchronous [`Handler`].
//! - **Sending**: [`TransportHandle::send`], callable from any thread, which never waits for
//!   the network: UDP datagrams go out at once with `send_to`, TCP messages are queued to the
//!   writer of an open connection (the one named, or any to the destination) or to a new
//!   connection that is opened in the background.
//! - **Counters**: [`TransportStatsSnapshot`].
//!
//! What it does not do: parse or route messages (beyond the stream framing), retransmit,
//! keep transactions, resolve names (DNS/NAPTR/SRV), or decide which socket a reply should
//! leave from: that belongs to the callers, which get the receiving [`LocalSocket`] and
//! [`ConnectionId`] with every message and pass them back in [`Outbound`].
//!
//! # Life cycle
//!
//! [`Transport::bind`] binds every socket (so that configuration errors show before anything
//! runs), [`Transport::start`] starts the threads and tasks with a handler, and
//! [`Transport::shutdown`] stops reading, lets the handler calls in flight finish, flushes
//! queued TCP output within a grace period and joins the threads.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use sable_transport::{Handler, Inbound, Outbound, Transport, TransportConfig};
//!
//! struct Echo(sable_transport::TransportHandle);
//! impl Handler for Echo {
//!     fn on_message(&self, msg: Inbound<'_>) {
//!         let _ = self.0.send(Outbound {
//!             proto: msg.proto,
//!             dst: msg.src,
//!             local: Some(msg.local.index),
//!             conn: msg.conn,
//!             data: msg.data,
//!         });
//!     }
//! }
//!
//! # fn main() -> Result<(), sable_transport::TransportError> {
//! let mut transport = Transport::bind(TransportConfig::default())?;
//! let handle = transport.handle();
//! transport.start(Arc::new(Echo(handle)))?;
//! // ...
//! transport.shutdown(Duration::from_secs(1));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

mod batch;
mod error;
mod shared;
mod stats;
mod tcp;
mod transport;
mod udp;

pub use batch::{UdpBatch, MAX_BATCH};
pub use error::{SendError, TransportError};
pub use sable_sip::FramerLimits;
pub use stats::TransportStatsSnapshot;
pub use transport::{Transport, TransportHandle};

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// UDP (RFC 3261 §18.1.1, §18.2.1).
    Udp,
    /// TCP (RFC 3261 §18.3).
    Tcp,
}

impl Proto {
    /// The lower-case name, as in Kamailio's `listen=udp:...` and in Via transports
    /// (lower-cased).
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }

    /// The upper-case name a Via's `SIP/2.0/<transport>` carries.
    pub fn via_name(self) -> &'static str {
        match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The address to put in Via and Record-Route instead of the bound one (Kamailio's
/// `listen=... advertise host:port`), for a server behind NAT.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Advertise {
    /// Host name or IP address to advertise.
    pub host: String,
    /// Port to advertise; the bound port when `None`.
    pub port: Option<u16>,
}

/// One listen address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    /// The protocol.
    pub proto: Proto,
    /// The address to bind; port 0 binds an ephemeral port (reported by
    /// [`Transport::sockets`]).
    pub addr: SocketAddr,
    /// What to advertise instead of `addr`, if anything. The transport only carries it.
    pub advertise: Option<Advertise>,
}

impl ListenSpec {
    /// A listen address without an advertised address.
    pub fn new(proto: Proto, addr: SocketAddr) -> Self {
        ListenSpec {
            proto,
            addr,
            advertise: None,
        }
    }
}

/// What to bind and how to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// The listen addresses; their order gives the [`LocalSocket::index`]es.
    pub listens: Vec<ListenSpec>,
    /// Worker threads (each with its own socket) per UDP listen address; at least 1
    /// (Kamailio's `children`).
    pub udp_children: usize,
    /// A TCP connection without traffic in either direction for this long is closed
    /// (Kamailio's `tcp_connection_lifetime`, 120 s by default there).
    pub tcp_connection_lifetime: Duration,
    /// At most this many TCP connections, accepted and outbound together, at once
    /// (Kamailio's `tcp_max_connections`).
    pub tcp_max_connections: usize,
    /// Accept stream messages without Content-Length as having an empty body (Kamailio's
    /// `tcp_accept_no_cl`). Overrides
    /// [`framer_limits.accept_no_content_length`](FramerLimits::accept_no_content_length).
    pub tcp_accept_no_cl: bool,
    /// Size limits for messages on streams.
    pub framer_limits: FramerLimits,
}

impl Default for TransportConfig {
    /// One UDP listen address, 127.0.0.1:5060; 2 children; lifetime 120 s; 2048
    /// connections; Content-Length required on streams.
    fn default() -> Self {
        TransportConfig {
            listens: vec![ListenSpec::new(
                Proto::Udp,
                SocketAddr::from(([127, 0, 0, 1], 5060)),
            )],
            udp_children: 2,
            tcp_connection_lifetime: Duration::from_secs(120),
            tcp_max_connections: 2048,
            tcp_accept_no_cl: false,
            framer_limits: FramerLimits::default(),
        }
    }
}

/// A bound listen socket, as the handler sees it and as [`Outbound::local`] names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSocket {
    /// Position in [`TransportConfig::listens`] and in [`Transport::sockets`].
    pub index: usize,
    /// The protocol.
    pub proto: Proto,
    /// The bound address, with the real port when the configured one was 0.
    pub addr: SocketAddr,
    /// The configured advertised address, if any.
    pub advertise: Option<Advertise>,
    /// The host written for this socket in a Via, Record-Route or Contact: the advertised
    /// one, else the bound IP (IPv6 in brackets). Made once by [`LocalSocket::new`], not
    /// per message; private so that it cannot drift from `advertise` and `addr`.
    host: Arc<str>,
    /// The port written with `host`.
    port: u16,
    /// `host:port`: a Via's sent-by.
    sent_by: Arc<str>,
}

impl LocalSocket {
    /// A socket bound at `addr` (its `host` derived from `advertise` or `addr`).
    pub fn new(index: usize, proto: Proto, addr: SocketAddr, advertise: Option<Advertise>) -> Self {
        let host: Arc<str> = match &advertise {
            Some(a) => a.host.as_str().into(),
            None => match addr.ip() {
                IpAddr::V4(v4) => v4.to_string().into(),
                IpAddr::V6(v6) => format!("[{v6}]").into(),
            },
        };
        let port = advertise
            .as_ref()
            .and_then(|a| a.port)
            .unwrap_or(addr.port());
        let sent_by = format!("{host}:{port}").into();
        LocalSocket {
            index,
            proto,
            addr,
            advertise,
            host,
            port,
            sent_by,
        }
    }

    /// The host and port to write in a Via, Record-Route or Contact: the advertised address
    /// when there is one.
    pub fn advertised(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// `host:port` as [`LocalSocket::advertised`] gives them: the sent-by of a Via.
    pub fn sent_by(&self) -> &str {
        &self.sent_by
    }
}

/// Names one TCP connection for as long as it is open; never reused within a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// One received message (a datagram, or one framed stream message), lent to the handler.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The octets: a whole datagram, or one whole stream message (header section and exactly
    /// Content-Length body octets). Borrowed: copy what must outlive the call.
    pub data: &'a [u8],
    /// The protocol it came on.
    pub proto: Proto,
    /// The peer address it came from.
    pub src: SocketAddr,
    /// The listen socket it came on (for an outbound TCP connection: the TCP listen socket
    /// it was opened for).
    pub local: &'a LocalSocket,
    /// The TCP connection it came on; `None` for UDP.
    pub conn: Option<ConnectionId>,
}

/// The receiver of everything that arrives.
///
/// All methods are called synchronously: UDP messages on the worker thread that received
/// them, stream messages on a runtime thread. They must return quickly and must not block on
/// I/O: parse, route, [`send`](TransportHandle::send) (which never blocks on the network),
/// and queue slow work elsewhere. A panic in a handler call is caught and logged.
pub trait Handler: Send + Sync + 'static {
    /// A message arrived.
    fn on_message(&self, msg: Inbound<'_>);

    /// The framing of a stream was lost (bad or missing Content-Length, a header section or
    /// body over the limits). The connection is closed after this returns, once the output
    /// queued to it (for example a `400` sent from here to `src` over TCP) is written.
    fn on_stream_error(
        &self,
        _local: &LocalSocket,
        _src: SocketAddr,
        _error: &sable_sip::ParseError,
    ) {
    }

    /// A message queued by [`send`](TransportHandle::send) could not be delivered after
    /// `send` had returned (for now: a TCP connect to `dst` failed or timed out).
    fn on_send_failure(&self, _proto: Proto, _dst: SocketAddr) {}
}

/// TCP options of one send (ignored for UDP).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendFlags {
    /// Close the connection once this message is written.
    pub close_after: bool,
    /// Use only an open connection; never connect (fails with
    /// [`SendError::NotConnected`]).
    pub no_connect: bool,
}

/// One message to send.
#[derive(Debug, Clone, Copy)]
pub struct Outbound<'a> {
    /// The protocol.
    pub proto: Proto,
    /// The destination.
    pub dst: SocketAddr,
    /// The preferred listen socket to send from (its index). Used when it is of `proto` and
    /// of the destination's address family; otherwise the first listen socket that is.
    pub local: Option<usize>,
    /// TCP: the connection to write to, if it is still open; otherwise any open connection
    /// to `dst`, otherwise a new one. Ignored for UDP.
    pub conn: Option<ConnectionId>,
    /// The octets (one whole message). Copied for TCP, sent directly for UDP.
    pub data: &'a [u8],
}

/// The name of the address family of `addr`, as in [`SendError::NoSocket`].
fn family_name(addr: &SocketAddr) -> &'static str {
    if addr.is_ipv4() {
        "ipv4"
    } else {
        "ipv6"
    }
}

/// The index of the listen socket to send `proto` to `dst` from: `preferred` if it fits,
/// else the first one that does.
fn pick_local(
    sockets: &[LocalSocket],
    preferred: Option<usize>,
    proto: Proto,
    dst: &SocketAddr,
) -> Option<usize> {
    let fits = |s: &LocalSocket| s.proto == proto && s.addr.is_ipv4() == dst.is_ipv4();
    if let Some(s) = preferred.and_then(|i| sockets.get(i)) {
        if fits(s) {
            return Some(s.index);
        }
    }
    sockets.iter().find(|s| fits(s)).map(|s| s.index)
}

/// Shorthand for the handler as stored.
type DynHandler = Arc<dyn Handler>;

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(index: usize, proto: Proto, addr: &str) -> LocalSocket {
        LocalSocket::new(index, proto, addr.parse().unwrap(), None)
    }

    #[test]
    fn socket_host_and_sent_by_are_made_once() {
        let s = sock(0, Proto::Udp, "192.0.2.1:5070");
        assert_eq!(s.advertised(), ("192.0.2.1", 5070));
        assert_eq!(s.sent_by(), "192.0.2.1:5070");
        let s = sock(1, Proto::Udp, "[2001:db8::1]:5060");
        assert_eq!(s.advertised(), ("[2001:db8::1]", 5060));
        assert_eq!(s.sent_by(), "[2001:db8::1]:5060");
        let adv = |port| Advertise {
            host: "sip.example.com".to_owned(),
            port,
        };
        let s = LocalSocket::new(
            2,
            Proto::Tcp,
            "10.0.0.1:5060".parse().unwrap(),
            Some(adv(None)),
        );
        assert_eq!(s.advertised(), ("sip.example.com", 5060));
        let s = LocalSocket::new(
            3,
            Proto::Tcp,
            "10.0.0.1:5060".parse().unwrap(),
            Some(adv(Some(5080))),
        );
        assert_eq!(s.advertised(), ("sip.example.com", 5080));
        assert_eq!(s.sent_by(), "sip.example.com:5080");
    }

    #[test]
    fn proto_display() {
        assert_eq!(Proto::Udp.to_string(), "udp");
        assert_eq!(Proto::Tcp.to_string(), "tcp");
    }

    #[test]
    fn pick_local_prefers_fitting_then_first_of_family() {
        let sockets = [
            sock(0, Proto::Udp, "127.0.0.1:5060"),
            sock(1, Proto::Tcp, "127.0.0.1:5060"),
            sock(2, Proto::Udp, "[::1]:5060"),
            sock(3, Proto::Udp, "127.0.0.2:5060"),
        ];
        let v4: SocketAddr = "10.0.0.1:5060".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
        assert_eq!(pick_local(&sockets, None, Proto::Udp, &v4), Some(0));
        assert_eq!(pick_local(&sockets, Some(3), Proto::Udp, &v4), Some(3));
        // Wrong protocol, wrong family, out of range: fall back.
        assert_eq!(pick_local(&sockets, Some(1), Proto::Udp, &v4), Some(0));
        assert_eq!(pick_local(&sockets, Some(2), Proto::Udp, &v4), Some(0));
        assert_eq!(pick_local(&sockets, Some(9), Proto::Udp, &v4), Some(0));
        assert_eq!(pick_local(&sockets, None, Proto::Udp, &v6), Some(2));
        assert_eq!(pick_local(&sockets, None, Proto::Tcp, &v4), Some(1));
        assert_eq!(pick_local(&sockets, None, Proto::Tcp, &v6), None);
    }

    #[test]
    fn default_config() {
        let c = TransportConfig::default();
        assert_eq!(c.listens.len(), 1);
        assert_eq!(c.udp_children, 2);
        assert_eq!(c.tcp_connection_lifetime, Duration::from_secs(120));
        assert_eq!(c.tcp_max_connections, 2048);
        assert!(!c.tcp_accept_no_cl);
    }
}

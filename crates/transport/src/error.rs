//! The errors of binding, starting and sending.

use std::net::SocketAddr;

use crate::Proto;

/// Binding or starting the transport failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A listen socket could not be created, configured or bound.
    #[error("cannot bind {proto}:{addr}: {source}")]
    Bind {
        /// The protocol of the listen address.
        proto: Proto,
        /// The configured address.
        addr: SocketAddr,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The configuration cannot work (for example `udp_children` is 0).
    #[error("invalid transport configuration: {0}")]
    Config(&'static str),
    /// The TCP runtime could not be built.
    #[error("cannot build the TCP runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A UDP worker thread could not be started.
    #[error("cannot start a UDP worker thread: {0}")]
    Thread(#[source] std::io::Error),
    /// [`Transport::start`](crate::Transport::start) was called twice.
    #[error("the transport is already started")]
    AlreadyStarted,
}

/// [`TransportHandle::send`](crate::TransportHandle::send) failed. Errors found after `send`
/// has returned (a TCP connect failing) go to
/// [`Handler::on_send_failure`](crate::Handler::on_send_failure) instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// There is no listen socket of this protocol and address family to send from.
    #[error("no {proto} listen socket for {family} destinations")]
    NoSocket {
        /// The protocol asked for.
        proto: crate::Proto,
        /// `"ipv4"` or `"ipv6"`: the family of the destination.
        family: &'static str,
    },
    /// The system refused to send (UDP).
    #[error("send failed: {0}")]
    Io(#[source] std::io::Error),
    /// A new TCP connection is needed and `tcp_max_connections` are open.
    #[error("too many TCP connections")]
    TooManyConnections,
    /// The transport is shutting down or shut down.
    #[error("the transport is shut down")]
    Closed,
    /// TCP with [`SendFlags::no_connect`](crate::SendFlags::no_connect): no connection to
    /// the destination is open, and none may be opened.
    #[error("no open TCP connection to the destination (no-connect)")]
    NotConnected,
    /// A TCP message was sent before [`Transport::start`](crate::Transport::start) (UDP
    /// works before start; TCP needs the runtime).
    #[error("the transport is not started")]
    NotStarted,
}

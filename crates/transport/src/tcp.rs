//! TCP: listeners, the connection table, one task per connection, outbound connects.
//!
//! Every open connection (accepted, or outbound and perhaps still connecting) has an entry in
//! the [`Table`], indexed by [`ConnectionId`] and by remote address, holding the sending side
//! of the connection's write queue. [`send`] queues to an entry and returns; the connection's
//! task writes. The task also reads, frames with [`StreamFramer`] and calls the handler.
//!
//! Shutdown has two phases, so that the handler calls in flight can still queue replies:
//! [`Phase::StopReading`] (accept loops end, connection tasks stop reading but keep writing),
//! then [`Phase::Close`] (connection tasks write what is queued and close).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sable_sip::{Frame, FramerLimits, StreamFramer};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::watch;

use crate::error::SendError;
use crate::shared::{guarded, Shared};
use crate::stats::{add, bump};
use crate::{family_name, pick_local, ConnectionId, DynHandler, Inbound, Outbound, Proto};

/// One message queued to a connection's writer; `close` ends the connection once it is
/// written (Kamailio's `set_reply_close()` / `set_forward_close()`).
#[derive(Debug)]
pub(crate) struct Queued {
    pub data: Vec<u8>,
    pub close: bool,
}

/// Octets read from a connection at a time (one buffer per connection).
const READ_BUFFER_LEN: usize = 8192;

/// How long an outbound connect may take (Kamailio's `tcp_connect_timeout` is 10 s).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one write may wait for the peer to read (Kamailio's `tcp_send_timeout` is 10 s);
/// on timeout the connection is closed.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The listen backlog of TCP listen sockets.
const LISTEN_BACKLOG: i32 = 1024;

/// Where the TCP side is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Accepting, reading and writing.
    Running,
    /// Shutting down: no more accepting or reading; queued and newly queued output is still
    /// written.
    StopReading,
    /// Shutting down: write what is queued, then close.
    Close,
}

/// One open connection, as the senders see it.
#[derive(Debug)]
struct Entry {
    remote: SocketAddr,
    tx: UnboundedSender<Queued>,
}

/// The open connections, by id and by remote address.
#[derive(Debug, Default)]
pub(crate) struct Table {
    by_id: HashMap<u64, Entry>,
    /// One connection per remote address: the latest opened, or any other once that one
    /// closes.
    by_addr: HashMap<SocketAddr, u64>,
}

impl Table {
    /// Number of open connections.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    fn insert(&mut self, id: u64, remote: SocketAddr, tx: UnboundedSender<Queued>) {
        self.by_id.insert(id, Entry { remote, tx });
        self.by_addr.insert(remote, id);
    }

    fn remove(&mut self, id: u64) {
        let Some(entry) = self.by_id.remove(&id) else {
            return;
        };
        if self.by_addr.get(&entry.remote) == Some(&id) {
            let other = self
                .by_id
                .iter()
                .find(|(_, e)| e.remote == entry.remote)
                .map(|(other, _)| *other);
            match other {
                Some(other) => self.by_addr.insert(entry.remote, other),
                None => self.by_addr.remove(&entry.remote),
            };
        }
    }

    fn by_addr(&self, remote: &SocketAddr) -> Option<u64> {
        self.by_addr.get(remote).copied()
    }

    fn sender(&self, id: u64) -> Option<&UnboundedSender<Queued>> {
        self.by_id.get(&id).map(|e| &e.tx)
    }
}

/// The TCP part of [`Shared`].
#[derive(Debug)]
pub(crate) struct TcpShared {
    /// The open connections.
    pub table: Mutex<Table>,
    next_id: AtomicU64,
    max_connections: usize,
    lifetime: Duration,
    limits: FramerLimits,
    /// The shutdown phase, watched by every task.
    pub phase: watch::Sender<Phase>,
    /// Connection tasks currently in their reading loop (they may call the handler).
    pub readers: AtomicUsize,
}

impl TcpShared {
    pub(crate) fn new(max_connections: usize, lifetime: Duration, limits: FramerLimits) -> Self {
        TcpShared {
            table: Mutex::new(Table::default()),
            next_id: AtomicU64::new(1),
            max_connections,
            lifetime,
            limits,
            phase: watch::Sender::new(Phase::Running),
            readers: AtomicUsize::new(0),
        }
    }

    /// Enters a connection in the table (with `first` already queued, if any), unless
    /// `tcp_max_connections` are open. Returns its id and the receiving end of its queue.
    fn register(
        &self,
        table: &mut Table,
        remote: SocketAddr,
        first: Option<Queued>,
    ) -> Option<(u64, UnboundedReceiver<Queued>)> {
        if table.len() >= self.max_connections {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = unbounded_channel();
        if let Some(data) = first {
            // Cannot fail: `rx` is alive.
            let _ = tx.send(data);
        }
        table.insert(id, remote, tx);
        Some((id, rx))
    }
}

/// A connection's place in the table; dropping it removes the entry (also when the task is
/// dropped by a runtime shutdown).
struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.tcp.table.lock().remove(self.id);
    }
}

/// Binds and listens on a non-blocking TCP listen socket (with `SO_REUSEADDR`, so that a
/// restart does not wait for old connections in TIME_WAIT; IPv6 sockets are IPv6-only).
pub(crate) fn bind_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Queues one message to a TCP connection: the one named, else one open to the destination,
/// else a new one, connected in the background.
pub(crate) fn send(
    shared: &Arc<Shared>,
    out: &Outbound<'_>,
    flags: crate::SendFlags,
) -> Result<(), SendError> {
    let runtime = shared.runtime.read().clone().ok_or(SendError::NotStarted)?;
    let mut data = Queued {
        data: out.data.to_vec(),
        close: flags.close_after,
    };
    let mut table = shared.tcp.table.lock();
    let candidates = [out.conn.map(|c| c.0), table.by_addr(&out.dst)];
    for id in candidates.into_iter().flatten() {
        if let Some(tx) = table.sender(id) {
            match tx.send(data) {
                Ok(()) => return Ok(()),
                // The connection is closing; try the next.
                Err(returned) => data = returned.0,
            }
        }
    }
    if shared.closing.load(Ordering::Acquire) {
        return Err(SendError::Closed);
    }
    if flags.no_connect {
        return Err(SendError::NotConnected);
    }
    let local = pick_local(&shared.sockets, out.local, Proto::Tcp, &out.dst).ok_or(
        SendError::NoSocket {
            proto: Proto::Tcp,
            family: family_name(&out.dst),
        },
    )?;
    let handler = shared.handler.lock().clone().ok_or(SendError::Closed)?;
    let (id, rx) = shared
        .tcp
        .register(&mut table, out.dst, Some(data))
        .ok_or(SendError::TooManyConnections)?;
    drop(table);
    let registration = Registration {
        shared: Arc::clone(shared),
        id,
    };
    tracing::debug!(conn = id, dst = %out.dst, "opening TCP connection");
    runtime.spawn(connect_and_serve(
        Arc::clone(shared),
        handler,
        registration,
        out.dst,
        local,
        rx,
    ));
    Ok(())
}

/// Connects a new outbound connection, then serves it like an accepted one. On failure,
/// drops what was queued and tells the handler.
async fn connect_and_serve(
    shared: Arc<Shared>,
    handler: DynHandler,
    registration: Registration,
    dst: SocketAddr,
    local: usize,
    mut rx: UnboundedReceiver<Queued>,
) {
    // Not interrupted by shutdown: what is queued is flushed within the grace period (the
    // runtime is dropped when it ends).
    let local_ip = shared.sockets.get(local).map(|s| s.addr.ip());
    let result = tokio::time::timeout(CONNECT_TIMEOUT, connect(dst, local_ip)).await;
    let error = match result {
        Ok(Ok(stream)) => {
            bump(&shared.stats.tcp_connections_connected);
            tracing::debug!(conn = registration.id, %dst, "TCP connection established");
            serve(shared, handler, registration, stream, dst, local, rx).await;
            return;
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => "connect timed out".to_string(),
    };
    bump(&shared.stats.tcp_connect_failures);
    drop(registration);
    let dropped = discard(&mut rx);
    add(&shared.stats.send_errors, dropped);
    tracing::warn!(%dst, %error, dropped, "TCP connect failed");
    guarded("on_send_failure", || {
        handler.on_send_failure(Proto::Tcp, dst)
    });
}

/// Closes a queue and drops what it holds; returns how many messages that was.
fn discard(rx: &mut UnboundedReceiver<Queued>) -> u64 {
    rx.close();
    let mut dropped = 0;
    while rx.try_recv().is_ok() {
        dropped += 1;
    }
    dropped
}

/// Opens a TCP connection to `dst`, from `local_ip` unless it is unspecified.
async fn connect(dst: SocketAddr, local_ip: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if dst.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = local_ip.filter(|ip| !ip.is_unspecified()) {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(dst).await
}

/// Accepts connections on one listen socket until shutdown.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    handler: DynHandler,
    listener: TcpListener,
    local: usize,
) {
    let mut phase = shared.tcp.phase.subscribe();
    loop {
        let accepted = tokio::select! {
            _ = phase.wait_for(|p| *p >= Phase::StopReading) => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, remote)) => {
                let registered = {
                    let mut table = shared.tcp.table.lock();
                    shared.tcp.register(&mut table, remote, None)
                };
                let Some((id, rx)) = registered else {
                    bump(&shared.stats.tcp_connections_refused);
                    tracing::debug!(%remote, "TCP connection refused: tcp_max_connections reached");
                    drop(stream);
                    continue;
                };
                bump(&shared.stats.tcp_connections_accepted);
                tracing::debug!(conn = id, %remote, "TCP connection accepted");
                let registration = Registration {
                    shared: Arc::clone(&shared),
                    id,
                };
                tokio::spawn(serve(
                    Arc::clone(&shared),
                    Arc::clone(&handler),
                    registration,
                    stream,
                    remote,
                    local,
                    rx,
                ));
            }
            Err(e) => {
                // For example out of file descriptors: wait a little rather than spin.
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Why a connection's reading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The peer closed its side.
    Eof,
    /// Reading failed.
    ReadFailed,
    /// Writing failed or timed out.
    WriteFailed,
    /// The framing was lost.
    Framing,
    /// No traffic for the lifetime.
    Idle,
    /// The transport is shutting down.
    Shutdown,
    /// A message was sent with "close after" (`set_reply_close()`).
    CloseRequested,
}

/// The life of one established connection: read and write until it ends, then write what is
/// queued (unless writing failed) and close.
async fn serve(
    shared: Arc<Shared>,
    handler: DynHandler,
    registration: Registration,
    mut stream: TcpStream,
    remote: SocketAddr,
    local: usize,
    mut rx: UnboundedReceiver<Queued>,
) {
    let _ = stream.set_nodelay(true);
    let id = registration.id;
    let mut phase = shared.tcp.phase.subscribe();
    shared.tcp.readers.fetch_add(1, Ordering::SeqCst);
    let mut end = read_loop(
        &shared,
        &handler,
        &mut stream,
        &mut rx,
        &mut phase,
        id,
        remote,
        local,
    )
    .await;
    shared.tcp.readers.fetch_sub(1, Ordering::SeqCst);
    if end == End::Shutdown {
        end = write_until_close(&shared, &mut stream, &mut rx, &mut phase).await;
    }
    // No new output can be queued once the entry is gone and the queue closed.
    drop(registration);
    rx.close();
    let mut writable = !matches!(end, End::WriteFailed | End::ReadFailed);
    let mut dropped = 0;
    while let Some(data) = rx.recv().await {
        if writable && write(&mut stream, &data.data).await.is_ok() {
            bump(&shared.stats.tcp_sent);
        } else {
            writable = false;
            dropped += 1;
        }
    }
    add(&shared.stats.send_errors, dropped);
    if writable {
        let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.shutdown()).await;
    }
    tracing::debug!(conn = id, %remote, reason = ?end, "TCP connection closed");
}

/// Reads, frames and hands over messages, and writes queued output, until the connection
/// ends or shutdown begins.
#[allow(clippy::too_many_arguments)]
async fn read_loop(
    shared: &Shared,
    handler: &DynHandler,
    stream: &mut TcpStream,
    rx: &mut UnboundedReceiver<Queued>,
    phase: &mut watch::Receiver<Phase>,
    id: u64,
    remote: SocketAddr,
    local: usize,
) -> End {
    let Some(local) = shared.sockets.get(local) else {
        return End::ReadFailed;
    };
    let lifetime = shared.tcp.lifetime;
    let mut framer = StreamFramer::new(shared.tcp.limits);
    let mut buf = vec![0u8; READ_BUFFER_LEN];
    let idle = tokio::time::sleep(lifetime);
    tokio::pin!(idle);
    loop {
        if *phase.borrow_and_update() != Phase::Running {
            return End::Shutdown;
        }
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() {
                    return End::Shutdown;
                }
            }
            queued = rx.recv() => {
                let Some(data) = queued else {
                    return End::Shutdown;
                };
                if write(stream, &data.data).await.is_err() {
                    bump(&shared.stats.send_errors);
                    return End::WriteFailed;
                }
                bump(&shared.stats.tcp_sent);
                if data.close {
                    return End::CloseRequested;
                }
                idle.as_mut().reset(tokio::time::Instant::now() + lifetime);
            }
            read = stream.read(&mut buf) => {
                let len = match read {
                    Ok(0) => return End::Eof,
                    Ok(len) => len,
                    Err(e) => {
                        tracing::debug!(conn = id, %remote, error = %e, "TCP read failed");
                        return End::ReadFailed;
                    }
                };
                idle.as_mut().reset(tokio::time::Instant::now() + lifetime);
                framer.push(buf.get(..len).unwrap_or_default());
                loop {
                    match framer.next_frame() {
                        Ok(None) => break,
                        Ok(Some(Frame::Message(message))) => {
                            bump(&shared.stats.tcp_received);
                            guarded("on_message", || {
                                handler.on_message(Inbound {
                                    data: &message,
                                    proto: Proto::Tcp,
                                    src: remote,
                                    local,
                                    conn: Some(ConnectionId(id)),
                                });
                            });
                        }
                        Ok(Some(Frame::Ping)) => {
                            // RFC 5626 §3.5.1: answer a CRLF CRLF ping with a CRLF pong.
                            if write(stream, b"\r\n").await.is_err() {
                                return End::WriteFailed;
                            }
                        }
                        Ok(Some(Frame::Pong)) => {}
                        Err(e) => {
                            bump(&shared.stats.framing_errors);
                            tracing::debug!(conn = id, %remote, error = %e, "TCP framing lost");
                            guarded("on_stream_error", || handler.on_stream_error(local, remote, &e));
                            return End::Framing;
                        }
                    }
                }
            }
            () = &mut idle => {
                bump(&shared.stats.tcp_idle_closed);
                tracing::debug!(conn = id, %remote, "TCP connection idle for its lifetime");
                return End::Idle;
            }
        }
    }
}

/// During shutdown, after reading has stopped: writes queued output until the close phase.
async fn write_until_close(
    shared: &Shared,
    stream: &mut TcpStream,
    rx: &mut UnboundedReceiver<Queued>,
    phase: &mut watch::Receiver<Phase>,
) -> End {
    loop {
        if *phase.borrow_and_update() >= Phase::Close {
            return End::Shutdown;
        }
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() {
                    return End::Shutdown;
                }
            }
            queued = rx.recv() => {
                let Some(data) = queued else {
                    return End::Shutdown;
                };
                if write(stream, &data.data).await.is_err() {
                    bump(&shared.stats.send_errors);
                    return End::WriteFailed;
                }
                bump(&shared.stats.tcp_sent);
                if data.close {
                    return End::CloseRequested;
                }
            }
        }
    }
}

/// Writes all of `data`, or fails after [`WRITE_TIMEOUT`].
async fn write(stream: &mut TcpStream, data: &[u8]) -> io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(data)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TCP write timed out",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn table_indexes_by_id_and_address() {
        let mut table = Table::default();
        let (tx, _rx) = unbounded_channel();
        let a = addr("127.0.0.1:40000");
        let b = addr("127.0.0.1:40001");
        table.insert(1, a, tx.clone());
        table.insert(2, b, tx.clone());
        assert_eq!(table.len(), 2);
        assert_eq!(table.by_addr(&a), Some(1));
        assert_eq!(table.by_addr(&b), Some(2));
        // A second connection to `a`: the newest is found by address.
        table.insert(3, a, tx.clone());
        assert_eq!(table.by_addr(&a), Some(3));
        // Closing the newest falls back to the older one.
        table.remove(3);
        assert_eq!(table.by_addr(&a), Some(1));
        // Closing an older one that the index does not point to leaves the index alone.
        table.insert(4, b, tx);
        table.remove(2);
        assert_eq!(table.by_addr(&b), Some(4));
        table.remove(1);
        table.remove(4);
        assert_eq!(table.by_addr(&a), None);
        assert_eq!(table.by_addr(&b), None);
        assert_eq!(table.len(), 0);
        assert!(table.sender(1).is_none());
        // Removing twice is harmless.
        table.remove(1);
    }

    #[test]
    fn register_respects_the_limit() {
        let tcp = TcpShared::new(1, Duration::from_secs(1), FramerLimits::default());
        let mut table = Table::default();
        let first = tcp.register(
            &mut table,
            addr("127.0.0.1:1"),
            Some(Queued {
                data: b"x".to_vec(),
                close: false,
            }),
        );
        let (id, mut rx) = first.unwrap();
        assert_eq!(rx.try_recv().unwrap().data, b"x".to_vec());
        assert!(tcp
            .register(&mut table, addr("127.0.0.1:2"), None)
            .is_none());
        table.remove(id);
        assert!(tcp
            .register(&mut table, addr("127.0.0.1:2"), None)
            .is_some());
    }
}

//! [`Transport`] (binding, starting, shutting down) and [`TransportHandle`] (sending).

use std::fmt;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::error::{SendError, TransportError};
use crate::shared::Shared;
use crate::stats::{bump, Stats, TransportStatsSnapshot};
use crate::tcp::{self, Phase, TcpShared};
use crate::udp::{self, READ_TIMEOUT};
use crate::{Handler, LocalSocket, Outbound, Proto, TransportConfig};

/// Extra time shutdown may take beyond the grace period: for the UDP workers to see the stop
/// flag (they wake every [`READ_TIMEOUT`]) and for the runtime's threads to stop.
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(250);

/// How often shutdown looks whether the threads and tasks are done.
const SHUTDOWN_POLL: Duration = Duration::from_millis(2);

/// The sockets of a SIP server, their threads and their TCP runtime.
///
/// Created by [`bind`](Transport::bind), run by [`start`](Transport::start), stopped by
/// [`shutdown`](Transport::shutdown) (dropping it without shutdown stops everything without
/// waiting). Messages are sent through a [`TransportHandle`].
pub struct Transport {
    shared: Arc<Shared>,
    /// Bound UDP sockets per listen index, until start hands them to the workers.
    udp_groups: Vec<(usize, Vec<Arc<UdpSocket>>)>,
    /// Bound TCP listen sockets per listen index, until start hands them to the runtime.
    tcp_listeners: Vec<(usize, std::net::TcpListener)>,
    runtime: Option<tokio::runtime::Runtime>,
    accept_tasks: Vec<tokio::task::JoinHandle<()>>,
    udp_threads: Vec<JoinHandle<()>>,
    started: bool,
    stopped: bool,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("sockets", &self.shared.sockets)
            .field("started", &self.started)
            .field("udp_threads", &self.udp_threads.len())
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Binds every listen socket now (`udp_children` sockets per UDP address, one listen
    /// socket per TCP address) and starts nothing.
    ///
    /// # Errors
    ///
    /// [`TransportError::Bind`], naming the address (`cannot bind udp:127.0.0.1:5060:
    /// Address already in use`), or [`TransportError::Config`] when `udp_children` is 0.
    ///
    /// Note that binding a UDP address that another process of the same user has bound
    /// with `SO_REUSEPORT` succeeds (the kernel then shares the datagrams between both).
    pub fn bind(config: TransportConfig) -> Result<Transport, TransportError> {
        if config.udp_children == 0 {
            return Err(TransportError::Config("udp_children must be at least 1"));
        }
        let mut limits = config.framer_limits;
        limits.accept_no_content_length = config.tcp_accept_no_cl;

        let mut sockets = Vec::with_capacity(config.listens.len());
        let mut udp_send = Vec::with_capacity(config.listens.len());
        let mut udp_groups = Vec::new();
        let mut tcp_listeners = Vec::new();
        for (index, spec) in config.listens.into_iter().enumerate() {
            let bind_error = |source| TransportError::Bind {
                proto: spec.proto,
                addr: spec.addr,
                source,
            };
            let addr = match spec.proto {
                Proto::Udp => {
                    let group =
                        udp::bind_group(spec.addr, config.udp_children).map_err(bind_error)?;
                    let first = group
                        .first()
                        .cloned()
                        .ok_or_else(|| bind_error(std::io::Error::other("no socket bound")))?;
                    let addr = first.local_addr().map_err(bind_error)?;
                    udp_send.push(Some(first));
                    udp_groups.push((index, group));
                    addr
                }
                Proto::Tcp => {
                    let listener = tcp::bind_listener(spec.addr).map_err(bind_error)?;
                    let addr = listener.local_addr().map_err(bind_error)?;
                    udp_send.push(None);
                    tcp_listeners.push((index, listener));
                    addr
                }
            };
            tracing::debug!(proto = %spec.proto, %addr, "bound");
            sockets.push(LocalSocket::new(index, spec.proto, addr, spec.advertise));
        }

        let shared = Arc::new(Shared {
            sockets: sockets.into(),
            udp_send: RwLock::new(udp_send),
            stats: Stats::default(),
            handler: Mutex::new(None),
            runtime: RwLock::new(None),
            tcp: TcpShared::new(
                config.tcp_max_connections,
                config.tcp_connection_lifetime,
                limits,
            ),
            closing: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            udp_stop: AtomicBool::new(false),
        });
        Ok(Transport {
            shared,
            udp_groups,
            tcp_listeners,
            runtime: None,
            accept_tasks: Vec::new(),
            udp_threads: Vec::new(),
            started: false,
            stopped: false,
        })
    }

    /// The bound listen sockets, in configuration order, with their real addresses.
    pub fn sockets(&self) -> &[LocalSocket] {
        &self.shared.sockets
    }

    /// A handle for sending and for the counters; usable before start (UDP only) and after
    /// shutdown (every send then fails with [`SendError::Closed`]).
    pub fn handle(&self) -> TransportHandle {
        TransportHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Starts the UDP worker threads, the TCP runtime and its accept loops, all calling
    /// `handler`.
    ///
    /// # Errors
    ///
    /// [`TransportError::AlreadyStarted`] on a second call; [`TransportError::Runtime`],
    /// [`TransportError::Bind`] (a listen socket the runtime cannot take) or
    /// [`TransportError::Thread`]. After an error, what was started keeps running until
    /// [`shutdown`](Transport::shutdown).
    pub fn start(&mut self, handler: Arc<dyn Handler>) -> Result<(), TransportError> {
        if self.started || self.stopped {
            return Err(TransportError::AlreadyStarted);
        }
        self.started = true;
        *self.shared.handler.lock() = Some(Arc::clone(&handler));

        // TCP first: its steps can fail, and nothing is running yet.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sable-tcp")
            .enable_io()
            .enable_time()
            .build()
            .map_err(TransportError::Runtime)?;
        let mut listeners = Vec::with_capacity(self.tcp_listeners.len());
        {
            let _entered = runtime.enter();
            for (index, listener) in self.tcp_listeners.drain(..) {
                let listener = tokio::net::TcpListener::from_std(listener).map_err(|source| {
                    TransportError::Bind {
                        proto: Proto::Tcp,
                        addr: self
                            .shared
                            .sockets
                            .get(index)
                            .map(|s| s.addr)
                            .unwrap_or_else(|| ([0, 0, 0, 0], 0).into()),
                        source,
                    }
                })?;
                listeners.push((index, listener));
            }
        }
        for (index, listener) in listeners {
            self.accept_tasks.push(runtime.spawn(tcp::accept_loop(
                Arc::clone(&self.shared),
                Arc::clone(&handler),
                listener,
                index,
            )));
        }
        *self.shared.runtime.write() = Some(runtime.handle().clone());
        self.runtime = Some(runtime);

        for (index, group) in self.udp_groups.drain(..) {
            for (child, socket) in group.into_iter().enumerate() {
                let shared = Arc::clone(&self.shared);
                let handler = Arc::clone(&handler);
                let thread = std::thread::Builder::new()
                    .name(format!("sable-udp{index}-{child}"))
                    .spawn(move || udp::worker(shared, handler, socket, index))
                    .map_err(TransportError::Thread)?;
                self.udp_threads.push(thread);
            }
        }
        Ok(())
    }

    /// Stops the transport and waits for it, at most about `grace` plus a fraction of a
    /// second:
    ///
    /// 1. no more accepting, reading or new outbound connections; the UDP workers stop
    ///    after their current datagram;
    /// 2. once the handler calls in flight are over (or `grace` ran out), every TCP
    ///    connection writes what is queued to it and closes;
    /// 3. the runtime is dropped and the UDP threads joined (a thread stuck in the handler
    ///    past the deadline is left to finish on its own), the sockets are closed, and the
    ///    handler is released.
    ///
    /// Call it from outside any async runtime (inside one, the TCP runtime is dropped
    /// without waiting for its threads).
    pub fn shutdown(mut self, grace: Duration) {
        self.stop(Some(grace));
    }

    /// Stops everything; waits up to `grace` when given, else not at all.
    fn stop(&mut self, grace: Option<Duration>) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let began = Instant::now();
        let deadline = began + grace.unwrap_or_default();
        let shared = &self.shared;

        // Phase 1: stop accepting and reading.
        shared.closing.store(true, Ordering::Release);
        shared.udp_stop.store(true, Ordering::Release);
        shared.tcp.phase.send_replace(Phase::StopReading);
        if grace.is_some() {
            let threads = &self.udp_threads;
            let accepts = &self.accept_tasks;
            wait_until(deadline, || {
                threads.iter().all(JoinHandle::is_finished)
                    && accepts.iter().all(tokio::task::JoinHandle::is_finished)
                    && shared.tcp.readers.load(Ordering::SeqCst) == 0
            });
        }

        // Phase 2: flush and close the connections.
        shared.tcp.phase.send_replace(Phase::Close);
        if grace.is_some() {
            wait_until(deadline, || shared.tcp.table.lock().len() == 0);
        }

        // Phase 3: drop the runtime (cancelling what is left), join the UDP threads.
        *shared.runtime.write() = None;
        self.accept_tasks.clear();
        if let Some(runtime) = self.runtime.take() {
            if grace.is_some() && tokio::runtime::Handle::try_current().is_err() {
                runtime.shutdown_timeout(SHUTDOWN_MARGIN);
            } else {
                runtime.shutdown_background();
            }
        }
        let udp_deadline = deadline.max(began + READ_TIMEOUT) + SHUTDOWN_MARGIN;
        for thread in self.udp_threads.drain(..) {
            if grace.is_some() {
                wait_until(udp_deadline, || thread.is_finished());
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else if grace.is_some() {
                tracing::warn!("a UDP worker did not stop in time; left to finish on its own");
            }
        }
        for socket in shared.udp_send.write().iter_mut() {
            *socket = None;
        }
        self.udp_groups.clear();
        self.tcp_listeners.clear();
        shared.handler.lock().take();
        shared.closed.store(true, Ordering::Release);
        tracing::debug!(elapsed = ?began.elapsed(), "transport shut down");
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.stop(None);
    }
}

/// Polls `done` until it holds or `deadline` passes.
fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) {
    while !done() {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        std::thread::sleep(SHUTDOWN_POLL.min(deadline - now));
    }
}

/// Sends messages and reads the counters; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct TransportHandle {
    shared: Arc<Shared>,
}

impl TransportHandle {
    /// Sends one message without waiting for the network.
    ///
    /// - UDP: `send_to` from the chosen listen socket ([`Outbound::local`] if it is a UDP
    ///   socket of the destination's family, else the first such); the datagram is out when
    ///   this returns.
    /// - TCP: the message is copied and queued to the connection [`Outbound::conn`] if it is
    ///   still open, else to an open connection to `dst`, else to a new connection opened in
    ///   the background from the chosen TCP listen socket's address. A connect failure is
    ///   reported later to [`Handler::on_send_failure`]. Replies on a new connection reach
    ///   the handler like those on accepted ones.
    ///
    /// # Errors
    ///
    /// [`SendError::NoSocket`] when there is no listen socket of the protocol and family;
    /// [`SendError::Io`] when UDP `send_to` fails; [`SendError::TooManyConnections`] when a
    /// new TCP connection is needed and `tcp_max_connections` are open;
    /// [`SendError::NotStarted`] for TCP before [`Transport::start`];
    /// [`SendError::Closed`] after shutdown began (TCP) or ended (all).
    pub fn send(&self, out: Outbound<'_>) -> Result<(), SendError> {
        self.send_with(out, crate::SendFlags::default())
    }

    /// [`send`](TransportHandle::send) with TCP options: close the connection once the
    /// message is written, or send only over a connection that is already open.
    pub fn send_with(&self, out: Outbound<'_>, flags: crate::SendFlags) -> Result<(), SendError> {
        let result = if self.shared.closed.load(Ordering::Acquire) {
            Err(SendError::Closed)
        } else {
            match out.proto {
                Proto::Udp => udp::send(&self.shared, &out),
                Proto::Tcp => tcp::send(&self.shared, &out, flags),
            }
        };
        if result.is_err() {
            bump(&self.shared.stats.send_errors);
        }
        result
    }

    /// Opens a batch of UDP sends on this thread: until the guard is dropped, UDP datagrams
    /// this thread sends through this transport are queued and then sent together with
    /// `sendmmsg` ([`UdpBatch`]). For a thread that sends many requests at once on its own.
    pub fn udp_batch(&self) -> crate::UdpBatch {
        crate::UdpBatch::begin(&self.shared)
    }

    /// The bound listen sockets, in configuration order.
    pub fn sockets(&self) -> &[LocalSocket] {
        &self.shared.sockets
    }

    /// The counters now.
    pub fn stats(&self) -> TransportStatsSnapshot {
        let open = self.shared.tcp.table.lock().len();
        self.shared
            .stats
            .snapshot(u64::try_from(open).unwrap_or(u64::MAX))
    }
}

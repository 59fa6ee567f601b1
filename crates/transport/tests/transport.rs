//! The transport on loopback: UDP workers, TCP framing, connection reuse, outbound
//! connections, limits, and shutdown. Every wait is bounded.

// Test code: a panic is a failed assertion.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use sable_transport::{
    ConnectionId, FramerLimits, Handler, Inbound, ListenSpec, LocalSocket, Outbound, Proto,
    SendError, SendFlags, Transport, TransportConfig, TransportError, TransportHandle,
    TransportStatsSnapshot,
};

/// The longest any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(5);

/// What the handler saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Message {
        data: Vec<u8>,
        proto: Proto,
        src: SocketAddr,
        local: usize,
        conn: Option<ConnectionId>,
        /// The name of the thread the handler ran on.
        thread: String,
    },
    StreamError {
        src: SocketAddr,
        status: u16,
    },
    SendFailure {
        proto: Proto,
        dst: SocketAddr,
    },
}

/// What the handler does besides recording.
#[derive(Debug, Clone, Copy, Default)]
struct Behaviour {
    /// Send every message back where it came from (same protocol, socket and connection).
    echo: bool,
    /// On a stream error, send a 400 to the source over TCP (by address).
    reply_400: bool,
}

struct Recorder {
    events: Mutex<mpsc::Sender<Event>>,
    handle: TransportHandle,
    behaviour: Behaviour,
}

impl Handler for Recorder {
    fn on_message(&self, msg: Inbound<'_>) {
        if self.behaviour.echo {
            self.handle
                .send(Outbound {
                    proto: msg.proto,
                    dst: msg.src,
                    local: Some(msg.local.index),
                    conn: msg.conn,
                    data: msg.data,
                })
                .unwrap();
        }
        let _ = self.events.lock().unwrap().send(Event::Message {
            data: msg.data.to_vec(),
            proto: msg.proto,
            src: msg.src,
            local: msg.local.index,
            conn: msg.conn,
            thread: std::thread::current().name().unwrap_or("").to_string(),
        });
    }

    fn on_stream_error(
        &self,
        _local: &LocalSocket,
        src: SocketAddr,
        error: &sable_sip::ParseError,
    ) {
        if self.behaviour.reply_400 {
            self.handle
                .send(Outbound {
                    proto: Proto::Tcp,
                    dst: src,
                    local: None,
                    conn: None,
                    data: BAD_REQUEST,
                })
                .unwrap();
        }
        let _ = self.events.lock().unwrap().send(Event::StreamError {
            src,
            status: error.status(),
        });
    }

    fn on_send_failure(&self, proto: Proto, dst: SocketAddr) {
        let _ = self
            .events
            .lock()
            .unwrap()
            .send(Event::SendFailure { proto, dst });
    }
}

const BAD_REQUEST: &[u8] = b"SIP/2.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n";

/// A running transport and what its handler saw.
struct Server {
    transport: Transport,
    handle: TransportHandle,
    events: mpsc::Receiver<Event>,
}

impl Server {
    fn start(config: TransportConfig, behaviour: Behaviour) -> Server {
        let mut transport = Transport::bind(config).unwrap();
        let handle = transport.handle();
        let (tx, events) = mpsc::channel();
        let recorder = Recorder {
            events: Mutex::new(tx),
            handle: handle.clone(),
            behaviour,
        };
        transport.start(Arc::new(recorder)).unwrap();
        Server {
            transport,
            handle,
            events,
        }
    }

    fn addr(&self, index: usize) -> SocketAddr {
        self.transport.sockets()[index].addr
    }

    fn next_event(&self) -> Event {
        self.events
            .recv_timeout(WAIT)
            .expect("no handler event in time")
    }

    fn next_message(&self) -> (Vec<u8>, SocketAddr, Option<ConnectionId>) {
        match self.next_event() {
            Event::Message {
                data, src, conn, ..
            } => (data, src, conn),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    fn stats(&self) -> TransportStatsSnapshot {
        self.handle.stats()
    }

    /// Waits (bounded) until the counters satisfy `cond`.
    fn wait_stats(&self, what: &str, cond: impl Fn(&TransportStatsSnapshot) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let stats = self.stats();
            if cond(&stats) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {stats:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn shutdown(self) {
        self.transport.shutdown(Duration::from_secs(2));
    }
}

fn config(listens: &[(Proto, &str)]) -> TransportConfig {
    TransportConfig {
        listens: listens
            .iter()
            .map(|(proto, addr)| ListenSpec::new(*proto, addr.parse().unwrap()))
            .collect(),
        ..TransportConfig::default()
    }
}

/// A small valid SIP request with Content-Length.
fn options(n: u32) -> Vec<u8> {
    format!(
        "OPTIONS sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bK-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag={n}\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: {n}@test.invalid\r\n\
         CSeq: {n} OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn udp_client(v6: bool) -> UdpSocket {
    let socket = UdpSocket::bind(if v6 { "[::1]:0" } else { "127.0.0.1:0" }).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket
}

fn tcp_client(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

fn read_exact(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).unwrap();
    buf
}

/// True when the peer has closed the connection (EOF or reset) within [`WAIT`].
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
    false
}

/// Accepts one connection within [`WAIT`].
fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(WAIT)).unwrap();
                return stream;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no connection in time");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

fn ipv6_available() -> bool {
    UdpSocket::bind("[::1]:0").is_ok() && TcpListener::bind("[::1]:0").is_ok()
}

// ---------------------------------------------------------------------------------------
// UDP

#[test]
fn udp_echo_with_three_children() {
    let mut cfg = config(&[(Proto::Udp, "127.0.0.1:0")]);
    cfg.udp_children = 3;
    let server = Server::start(
        cfg,
        Behaviour {
            echo: true,
            ..Behaviour::default()
        },
    );
    let addr = server.addr(0);
    assert_ne!(addr.port(), 0, "the resolved port is reported");
    let client = udp_client(false);
    for i in 0..100u32 {
        client
            .send_to(format!("datagram {i}").as_bytes(), addr)
            .unwrap();
    }
    let mut buf = [0u8; 2048];
    let mut back = Vec::new();
    for _ in 0..100 {
        let (len, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(from, addr, "replies leave from the listen address");
        back.push(String::from_utf8(buf[..len].to_vec()).unwrap());
    }
    let expected: Vec<String> = (0..100).map(|i| format!("datagram {i}")).collect();
    assert_eq!(back, expected, "one peer: in order");
    server.wait_stats("counters", |s| s.udp_received == 100 && s.udp_sent == 100);
    server.shutdown();
}

#[test]
fn udp_per_peer_order_with_several_peers() {
    let mut cfg = config(&[(Proto::Udp, "127.0.0.1:0")]);
    cfg.udp_children = 3;
    let server = Server::start(cfg, Behaviour::default());
    let addr = server.addr(0);
    let clients: Vec<UdpSocket> = (0..6).map(|_| udp_client(false)).collect();
    let mut seen: HashMap<SocketAddr, Vec<u32>> = HashMap::new();
    let mut threads: HashMap<SocketAddr, HashSet<String>> = HashMap::new();
    // Bursts of 10 datagrams per peer queue up behind each other (what the order test is
    // about) without filling a socket's receive buffer on a loaded machine (UDP may drop
    // then, and the test would wait for a datagram that never comes).
    for burst in 0..5u32 {
        for i in burst * 10..burst * 10 + 10 {
            for client in &clients {
                client.send_to(&i.to_be_bytes(), addr).unwrap();
            }
        }
        receive_burst(&server, 10 * clients.len(), &mut seen, &mut threads);
    }
    assert_eq!(seen.len(), clients.len());
    for (src, numbers) in seen {
        assert_eq!(numbers, (0..50).collect::<Vec<_>>(), "order of {src}");
    }
    for (src, names) in threads {
        assert_eq!(names.len(), 1, "one peer, one worker: {src} {names:?}");
    }
    server.shutdown();
}

fn receive_burst(
    server: &Server,
    count: usize,
    seen: &mut HashMap<SocketAddr, Vec<u32>>,
    threads: &mut HashMap<SocketAddr, HashSet<String>>,
) {
    for _ in 0..count {
        let Event::Message {
            data,
            src,
            conn,
            local,
            thread,
            ..
        } = server.next_event()
        else {
            panic!("expected a message");
        };
        assert_eq!((conn, local), (None, 0));
        assert!(thread.starts_with("sable-udp0-"), "{thread}");
        let n = u32::from_be_bytes(data.as_slice().try_into().unwrap());
        seen.entry(src).or_default().push(n);
        threads.entry(src).or_default().insert(thread);
    }
}

#[test]
fn udp_largest_ipv4_datagram_is_delivered_whole() {
    let server = Server::start(config(&[(Proto::Udp, "127.0.0.1:0")]), Behaviour::default());
    let client = udp_client(false);
    let big: Vec<u8> = (0..65507u32).map(|i| (i % 251) as u8).collect();
    client.send_to(&big, server.addr(0)).unwrap();
    let (data, _, _) = server.next_message();
    assert_eq!(data.len(), 65507);
    assert_eq!(data, big);
    assert_eq!(server.stats().udp_oversize_dropped, 0);
    server.shutdown();
}

#[test]
fn ipv6_loopback_udp_and_tcp() {
    if !ipv6_available() {
        eprintln!("skipped: ::1 is not available here");
        return;
    }
    let server = Server::start(
        config(&[(Proto::Udp, "[::1]:0"), (Proto::Tcp, "[::1]:0")]),
        Behaviour {
            echo: true,
            ..Behaviour::default()
        },
    );
    assert!(server.addr(0).is_ipv6() && server.addr(1).is_ipv6());

    let client = udp_client(true);
    client.send_to(b"hello v6", server.addr(0)).unwrap();
    let mut buf = [0u8; 64];
    let (len, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..len], from), (&b"hello v6"[..], server.addr(0)));

    let mut stream = tcp_client(server.addr(1));
    let m = options(1);
    stream.write_all(&m).unwrap();
    assert_eq!(read_exact(&mut stream, m.len()), m);
    server.shutdown();
}

#[test]
fn udp_send_works_before_start() {
    let transport = Transport::bind(config(&[(Proto::Udp, "127.0.0.1:0")])).unwrap();
    let handle = transport.handle();
    let client = udp_client(false);
    handle
        .send(Outbound {
            proto: Proto::Udp,
            dst: client.local_addr().unwrap(),
            local: None,
            conn: None,
            data: b"early",
        })
        .unwrap();
    let mut buf = [0u8; 16];
    let (len, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"early");
    assert_eq!(from, transport.sockets()[0].addr);
    // TCP needs the runtime.
    let tcp = handle.send(Outbound {
        proto: Proto::Tcp,
        dst: client.local_addr().unwrap(),
        local: None,
        conn: None,
        data: b"x",
    });
    assert!(matches!(tcp, Err(SendError::NotStarted)), "{tcp:?}");
    transport.shutdown(Duration::from_millis(100));
}

#[test]
fn udp_batch_sends_when_dropped_or_full() {
    let transport = Transport::bind(config(&[(Proto::Udp, "127.0.0.1:0")])).unwrap();
    let handle = transport.handle();
    let client = udp_client(false);
    let dst = client.local_addr().unwrap();
    let send = |data: &[u8]| {
        handle
            .send(Outbound {
                proto: Proto::Udp,
                dst,
                local: None,
                conn: None,
                data,
            })
            .unwrap();
    };
    let mut buf = [0u8; 64];
    {
        let batch = handle.udp_batch();
        // A nested guard changes nothing: the outer one sends.
        let inner = handle.udp_batch();
        send(b"one");
        send(b"two");
        drop(inner);
        send(b"three");
        client.set_nonblocking(true).unwrap();
        let early = client.recv_from(&mut buf);
        assert_eq!(
            early.map_err(|e| e.kind()).err(),
            Some(ErrorKind::WouldBlock),
            "nothing leaves before the batch ends"
        );
        client.set_nonblocking(false).unwrap();
        drop(batch);
    }
    for want in [&b"one"[..], b"two", b"three"] {
        let (len, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], want);
        assert_eq!(from, transport.sockets()[0].addr);
    }
    // A full batch goes out at once.
    let batch = handle.udp_batch();
    for i in 0..=sable_transport::MAX_BATCH {
        send(format!("d{i}").as_bytes());
    }
    for i in 0..sable_transport::MAX_BATCH {
        let (len, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], format!("d{i}").as_bytes());
    }
    drop(batch);
    let (len, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(
        &buf[..len],
        format!("d{}", sable_transport::MAX_BATCH).as_bytes()
    );
    assert_eq!(
        handle.stats().udp_sent,
        3 + sable_transport::MAX_BATCH as u64 + 1
    );
    transport.shutdown(Duration::from_millis(100));
}

#[test]
fn no_socket_for_family_or_protocol() {
    let server = Server::start(config(&[(Proto::Udp, "127.0.0.1:0")]), Behaviour::default());
    let v6 = server.handle.send(Outbound {
        proto: Proto::Udp,
        dst: "[::1]:5060".parse().unwrap(),
        local: Some(0),
        conn: None,
        data: b"x",
    });
    assert!(
        matches!(
            v6,
            Err(SendError::NoSocket {
                proto: Proto::Udp,
                family: "ipv6"
            })
        ),
        "{v6:?}"
    );
    let tcp = server.handle.send(Outbound {
        proto: Proto::Tcp,
        dst: "127.0.0.1:5060".parse().unwrap(),
        local: None,
        conn: None,
        data: b"x",
    });
    assert!(
        matches!(
            tcp,
            Err(SendError::NoSocket {
                proto: Proto::Tcp,
                family: "ipv4"
            })
        ),
        "{tcp:?}"
    );
    assert_eq!(server.stats().send_errors, 2);
    server.shutdown();
}

// ---------------------------------------------------------------------------------------
// TCP

#[test]
fn tcp_two_messages_in_one_write() {
    let server = Server::start(config(&[(Proto::Tcp, "127.0.0.1:0")]), Behaviour::default());
    let mut stream = tcp_client(server.addr(0));
    let (m1, m2) = (options(1), options(2));
    stream
        .write_all(&[m1.clone(), m2.clone()].concat())
        .unwrap();
    let (d1, src1, conn1) = server.next_message();
    let (d2, src2, conn2) = server.next_message();
    assert_eq!((d1, d2), (m1, m2));
    assert_eq!(src1, stream.local_addr().unwrap());
    assert_eq!(src2, src1);
    assert!(conn1.is_some());
    assert_eq!(conn1, conn2);
    let stats = server.stats();
    assert_eq!(stats.tcp_received, 2);
    assert_eq!(stats.tcp_connections_accepted, 1);
    assert_eq!(stats.tcp_connections_open, 1);
    server.shutdown();
}

#[test]
fn tcp_slow_drip_does_not_block_other_connections() {
    let server = Server::start(config(&[(Proto::Tcp, "127.0.0.1:0")]), Behaviour::default());
    let addr = server.addr(0);
    let slow_message = options(1);
    let (halfway_tx, halfway_rx) = mpsc::channel();
    let dripper = {
        let message = slow_message.clone();
        std::thread::spawn(move || {
            let mut stream = tcp_client(addr);
            for (i, byte) in message.iter().enumerate() {
                stream.write_all(&[*byte]).unwrap();
                if i == message.len() / 2 {
                    halfway_tx.send(()).unwrap();
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            stream
        })
    };
    halfway_rx.recv_timeout(WAIT).unwrap();
    let mut fast = tcp_client(addr);
    let fast_message = options(2);
    fast.write_all(&fast_message).unwrap();
    let (first, _, _) = server.next_message();
    assert_eq!(
        first, fast_message,
        "the whole message overtakes the dripping one"
    );
    let (second, _, _) = server.next_message();
    assert_eq!(second, slow_message, "the dripped message arrives whole");
    drop(dripper.join().unwrap());
    server.shutdown();
}

#[test]
fn tcp_crlf_ping_gets_pong() {
    let server = Server::start(config(&[(Proto::Tcp, "127.0.0.1:0")]), Behaviour::default());
    let mut stream = tcp_client(server.addr(0));
    stream.write_all(b"\r\n\r\n").unwrap();
    assert_eq!(read_exact(&mut stream, 2), b"\r\n");
    // The connection goes on working.
    let m = options(7);
    stream.write_all(&m).unwrap();
    assert_eq!(server.next_message().0, m);
    assert_eq!(
        server.stats().tcp_received,
        1,
        "keep-alives are not messages"
    );
    server.shutdown();
}

#[test]
fn tcp_accept_no_cl() {
    let mut cfg = config(&[(Proto::Tcp, "127.0.0.1:0")]);
    cfg.tcp_accept_no_cl = true;
    let server = Server::start(cfg, Behaviour::default());
    let mut stream = tcp_client(server.addr(0));
    let m = b"OPTIONS sip:bob@example.com SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n".to_vec();
    stream.write_all(&m).unwrap();
    assert_eq!(server.next_message().0, m);
    server.shutdown();
}

#[test]
fn tcp_bad_content_length_closes_after_pending_output() {
    let server = Server::start(
        config(&[(Proto::Tcp, "127.0.0.1:0")]),
        Behaviour {
            reply_400: true,
            ..Behaviour::default()
        },
    );
    let mut stream = tcp_client(server.addr(0));
    stream
        .write_all(b"OPTIONS sip:bob@example.com SIP/2.0\r\nContent-Length: abc\r\n\r\n")
        .unwrap();
    assert_eq!(
        server.next_event(),
        Event::StreamError {
            src: stream.local_addr().unwrap(),
            status: 400
        }
    );
    // The 400 queued from on_stream_error is written before the close.
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, BAD_REQUEST);
    server.wait_stats("closed", |s| {
        s.framing_errors == 1 && s.tcp_connections_open == 0 && s.tcp_sent == 1
    });

    // The server still serves new connections.
    let mut again = tcp_client(server.addr(0));
    let m = options(2);
    again.write_all(&m).unwrap();
    assert_eq!(server.next_message().0, m);
    server.shutdown();
}

#[test]
fn tcp_header_section_over_limit_closes() {
    let mut cfg = config(&[(Proto::Tcp, "127.0.0.1:0")]);
    cfg.framer_limits = FramerLimits {
        max_header_bytes: 256,
        ..FramerLimits::default()
    };
    let server = Server::start(cfg, Behaviour::default());
    let mut stream = tcp_client(server.addr(0));
    let mut big = b"OPTIONS sip:bob@example.com SIP/2.0\r\n".to_vec();
    big.extend_from_slice(format!("X-Pad: {}\r\n", "a".repeat(400)).as_bytes());
    stream.write_all(&big).unwrap();
    match server.next_event() {
        Event::StreamError { status, .. } => assert_eq!(status, 513),
        other => panic!("expected a stream error, got {other:?}"),
    }
    assert!(closed_by_peer(&mut stream));
    server.wait_stats("closed", |s| {
        s.framing_errors == 1 && s.tcp_connections_open == 0
    });
    server.shutdown();
}

#[test]
fn tcp_reply_reuses_the_connection() {
    let server = Server::start(
        config(&[(Proto::Tcp, "127.0.0.1:0")]),
        Behaviour {
            echo: true,
            ..Behaviour::default()
        },
    );
    let mut stream = tcp_client(server.addr(0));
    for n in 1..=3 {
        let m = options(n);
        stream.write_all(&m).unwrap();
        assert_eq!(read_exact(&mut stream, m.len()), m);
    }
    server.wait_stats("sent", |s| s.tcp_sent == 3);
    let stats = server.stats();
    assert_eq!(stats.tcp_connections_open, 1);
    assert_eq!(stats.tcp_connections_accepted, 1);
    assert_eq!(stats.tcp_connections_connected, 0);
    server.shutdown();
}

#[test]
fn tcp_send_flags_close_after_and_no_connect() {
    let server = Server::start(config(&[(Proto::Tcp, "127.0.0.1:0")]), Behaviour::default());
    let mut stream = tcp_client(server.addr(0));
    stream.write_all(&options(1)).unwrap();
    let (_, src, conn) = server.next_message();
    let reply = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    server
        .handle
        .send_with(
            Outbound {
                proto: Proto::Tcp,
                dst: src,
                local: None,
                conn,
                data: reply,
            },
            SendFlags {
                close_after: true,
                no_connect: false,
            },
        )
        .unwrap();
    // The reply arrives, then the connection is closed by the server.
    assert_eq!(read_exact(&mut stream, reply.len()), reply);
    assert!(closed_by_peer(&mut stream));
    // No connection is open to a fresh address, and none may be opened.
    let nobody: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let err = server
        .handle
        .send_with(
            Outbound {
                proto: Proto::Tcp,
                dst: nobody,
                local: None,
                conn: None,
                data: reply,
            },
            SendFlags {
                close_after: false,
                no_connect: true,
            },
        )
        .unwrap_err();
    assert!(matches!(err, SendError::NotConnected), "{err:?}");
    server.shutdown();
}

#[test]
fn tcp_reply_by_address_reuses_an_accepted_connection() {
    let server = Server::start(config(&[(Proto::Tcp, "127.0.0.1:0")]), Behaviour::default());
    let mut stream = tcp_client(server.addr(0));
    stream.write_all(&options(1)).unwrap();
    let (_, src, _) = server.next_message();
    assert_eq!(src, stream.local_addr().unwrap());
    // No connection id: found by the remote address.
    let reply = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    server
        .handle
        .send(Outbound {
            proto: Proto::Tcp,
            dst: src,
            local: None,
            conn: None,
            data: reply,
        })
        .unwrap();
    assert_eq!(read_exact(&mut stream, reply.len()), reply);
    assert_eq!(server.stats().tcp_connections_connected, 0);
    server.shutdown();
}

#[test]
fn tcp_outbound_connection_carries_replies_both_ways() {
    let server = Server::start(config(&[(Proto::Tcp, "127.0.0.1:0")]), Behaviour::default());
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let dst = peer.local_addr().unwrap();
    let request = options(1);
    server
        .handle
        .send(Outbound {
            proto: Proto::Tcp,
            dst,
            local: None,
            conn: None,
            data: &request,
        })
        .unwrap();
    let mut accepted = accept(&peer);
    assert_eq!(read_exact(&mut accepted, request.len()), request);
    assert_eq!(
        accepted.peer_addr().unwrap().ip(),
        server.addr(0).ip(),
        "connects from the listen address"
    );

    // The reply comes back on the new connection.
    let reply = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec();
    accepted.write_all(&reply).unwrap();
    let (data, src, conn) = server.next_message();
    assert_eq!((data, src), (reply, dst));
    let conn = conn.unwrap();

    // Sending by that id uses that connection, whatever the destination says.
    let m2 = options(2);
    server
        .handle
        .send(Outbound {
            proto: Proto::Tcp,
            dst: "127.0.0.1:9".parse().unwrap(),
            local: None,
            conn: Some(conn),
            data: &m2,
        })
        .unwrap();
    assert_eq!(read_exact(&mut accepted, m2.len()), m2);
    // Sending by address reuses it too: no second connection.
    let m3 = options(3);
    server
        .handle
        .send(Outbound {
            proto: Proto::Tcp,
            dst,
            local: None,
            conn: None,
            data: &m3,
        })
        .unwrap();
    assert_eq!(read_exact(&mut accepted, m3.len()), m3);
    assert_eq!(
        peer.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    let stats = server.stats();
    assert_eq!(stats.tcp_connections_connected, 1);
    assert_eq!(stats.tcp_connections_open, 1);
    server.shutdown();
}

#[test]
fn tcp_idle_connection_is_closed_after_lifetime() {
    let mut cfg = config(&[(Proto::Tcp, "127.0.0.1:0")]);
    cfg.tcp_connection_lifetime = Duration::from_millis(300);
    let server = Server::start(cfg, Behaviour::default());
    let mut stream = tcp_client(server.addr(0));
    stream.write_all(&options(1)).unwrap();
    server.next_message();
    assert!(closed_by_peer(&mut stream), "closed when idle");
    server.wait_stats("idle", |s| {
        s.tcp_idle_closed == 1 && s.tcp_connections_open == 0
    });
    server.shutdown();
}

#[test]
fn tcp_max_connections_is_enforced() {
    let mut cfg = config(&[(Proto::Tcp, "127.0.0.1:0")]);
    cfg.tcp_max_connections = 2;
    let server = Server::start(cfg, Behaviour::default());
    let addr = server.addr(0);
    let ping = |stream: &mut TcpStream| {
        stream.write_all(b"\r\n\r\n").unwrap();
        assert_eq!(read_exact(stream, 2), b"\r\n");
    };
    let mut c1 = tcp_client(addr);
    ping(&mut c1);
    let mut c2 = tcp_client(addr);
    ping(&mut c2);

    let mut c3 = tcp_client(addr);
    assert!(closed_by_peer(&mut c3), "the third connection is refused");
    server.wait_stats("refused", |s| s.tcp_connections_refused == 1);

    // Outbound connections count too.
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let out = server.handle.send(Outbound {
        proto: Proto::Tcp,
        dst: peer.local_addr().unwrap(),
        local: None,
        conn: None,
        data: b"x",
    });
    assert!(matches!(out, Err(SendError::TooManyConnections)), "{out:?}");

    // A slot frees when a connection closes.
    drop(c1);
    server.wait_stats("one closed", |s| s.tcp_connections_open == 1);
    let mut c4 = tcp_client(addr);
    ping(&mut c4);
    ping(&mut c2);
    assert_eq!(server.stats().tcp_connections_accepted, 3);
    server.shutdown();
}

#[test]
fn tcp_connect_failure_is_counted_and_reported() {
    let server = Server::start(config(&[(Proto::Tcp, "127.0.0.1:0")]), Behaviour::default());
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    server
        .handle
        .send(Outbound {
            proto: Proto::Tcp,
            dst: closed_port,
            local: None,
            conn: None,
            data: &options(1),
        })
        .unwrap();
    assert_eq!(
        server.next_event(),
        Event::SendFailure {
            proto: Proto::Tcp,
            dst: closed_port
        }
    );
    server.wait_stats("failure", |s| {
        s.tcp_connect_failures == 1 && s.send_errors == 1 && s.tcp_connections_open == 0
    });
    server.shutdown();
}

// ---------------------------------------------------------------------------------------
// Life cycle

#[test]
fn bind_errors_name_the_address() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = Transport::bind(TransportConfig {
        listens: vec![ListenSpec::new(Proto::Udp, addr)],
        ..TransportConfig::default()
    })
    .unwrap_err();
    assert!(matches!(
        err,
        TransportError::Bind {
            proto: Proto::Udp,
            ..
        }
    ));
    assert!(
        err.to_string()
            .starts_with(&format!("cannot bind udp:{addr}: ")),
        "{err}"
    );

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = Transport::bind(TransportConfig {
        listens: vec![ListenSpec::new(Proto::Tcp, addr)],
        ..TransportConfig::default()
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot bind tcp:{addr}: ")),
        "{err}"
    );

    let err = Transport::bind(TransportConfig {
        udp_children: 0,
        ..config(&[(Proto::Udp, "127.0.0.1:0")])
    })
    .unwrap_err();
    assert!(matches!(err, TransportError::Config(_)));
}

#[test]
fn start_twice_fails() {
    let mut server = Server::start(config(&[(Proto::Udp, "127.0.0.1:0")]), Behaviour::default());
    let (tx, _rx) = mpsc::channel();
    let again = server.transport.start(Arc::new(Recorder {
        events: Mutex::new(tx),
        handle: server.handle.clone(),
        behaviour: Behaviour::default(),
    }));
    assert!(matches!(again, Err(TransportError::AlreadyStarted)));
    server.shutdown();
}

#[test]
fn shutdown_joins_threads_and_closes_sockets() {
    let mut cfg = config(&[(Proto::Udp, "127.0.0.1:0"), (Proto::Tcp, "127.0.0.1:0")]);
    cfg.udp_children = 2;
    let server = Server::start(
        cfg,
        Behaviour {
            echo: true,
            ..Behaviour::default()
        },
    );
    let udp_addr = server.addr(0);
    let client = udp_client(false);
    client.send_to(b"ping", udp_addr).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(client.recv(&mut buf).unwrap(), 4);
    let mut stream = tcp_client(server.addr(1));
    let m = options(1);
    stream.write_all(&m).unwrap();
    assert_eq!(read_exact(&mut stream, m.len()), m);

    let handle = server.handle.clone();
    let began = Instant::now();
    server.transport.shutdown(Duration::from_secs(1));
    let took = began.elapsed();
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");

    // The connection was closed and every UDP socket of the group is gone: the address can
    // be bound again without SO_REUSEPORT.
    assert!(closed_by_peer(&mut stream));
    UdpSocket::bind(udp_addr).expect("all UDP sockets closed");
    let after = handle.send(Outbound {
        proto: Proto::Udp,
        dst: client.local_addr().unwrap(),
        local: None,
        conn: None,
        data: b"late",
    });
    assert!(matches!(after, Err(SendError::Closed)), "{after:?}");
}

#[test]
fn shutdown_flushes_queued_tcp_output() {
    let server = Server::start(config(&[(Proto::Tcp, "127.0.0.1:0")]), Behaviour::default());
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let m = options(1);
    server
        .handle
        .send(Outbound {
            proto: Proto::Tcp,
            dst: peer.local_addr().unwrap(),
            local: None,
            conn: None,
            data: &m,
        })
        .unwrap();
    // Shut down at once: the connect and the write still happen within the grace period.
    server.transport.shutdown(Duration::from_secs(2));
    let mut accepted = accept(&peer);
    let mut got = Vec::new();
    accepted.read_to_end(&mut got).unwrap();
    assert_eq!(got, m);
}

#[test]
fn dropping_without_shutdown_stops_everything() {
    let server = Server::start(config(&[(Proto::Udp, "127.0.0.1:0")]), Behaviour::default());
    let handle = server.handle.clone();
    drop(server);
    let after = handle.send(Outbound {
        proto: Proto::Udp,
        dst: "127.0.0.1:9".parse().unwrap(),
        local: None,
        conn: None,
        data: b"late",
    });
    assert!(matches!(after, Err(SendError::Closed)), "{after:?}");
}

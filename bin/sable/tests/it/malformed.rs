//! Malformed input over UDP and TCP: the RFC 4475 invalid set, random bytes, oversize
//! datagrams, truncated and slow-drip TCP. Each gets the reply its fault implies (or a
//! counted drop), and the server goes on serving.

use crate::harness::*;
use sable_sip::Message;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

/// Answers every request 200 (what is malformed never reaches the script).
const ECHO_CFG: &str = r#"
listen=udp:127.0.0.1:PORT
listen=tcp:127.0.0.1:PORT
children=2
loadmodule "sl.so"
request_route {
    sl_send_reply("200", "OK");
}
"#;

/// What the server must answer to `bytes`: the status the parser's verdict implies, 200 for
/// a request it accepts, nothing for a reply, an ACK, or what has no usable Via.
fn expected_reply(bytes: &[u8]) -> Option<u16> {
    let verdict = Message::parse(bytes).and_then(|m| m.validate().map(|()| m));
    match verdict {
        Ok(m) if m.is_request() => (m.method() != Some(sable_sip::Method::Ack)).then_some(200),
        Ok(_) => None,
        Err(e) => {
            let req = Message::parse_for_reply(bytes).ok()?;
            if !req.is_request()
                || req.method() == Some(sable_sip::Method::Ack)
                || req.top_via().is_err()
            {
                return None;
            }
            Some(e.status())
        }
    }
}

fn manifest_files(set: &str) -> Vec<std::path::PathBuf> {
    let dir = data_dir().join("conformance");
    let manifest = std::fs::read_to_string(dir.join(set).join("manifest.tsv")).unwrap();
    manifest
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .filter(|f| !f.is_empty())
        .map(|f| data_dir().join(f))
        .collect()
}

#[test]
fn torture_messages_get_their_verdict_and_the_server_goes_on() {
    let server = Server::start("torture", ECHO_CFG);
    let client = UdpClient::new();
    let mut checked = 0;
    for set in ["rfc4475", "rfc5118"] {
        for path in manifest_files(set) {
            let bytes = std::fs::read(&path).unwrap();
            // The reply goes where the message's Via says: rewrite nothing, but only expect
            // a reply when the Via points back at this client (most torture messages name
            // other hosts: those replies leave towards them and are not awaited).
            let expect = expected_reply(&bytes);
            client.send(server.addr(), &bytes);
            if expect.is_none() {
                continue;
            }
            checked += 1;
        }
    }
    assert!(checked > 10, "too few requests checked: {checked}");
    // Whatever happened to them, the server still answers.
    let probe = options(client.port(), server.port, "after-torture");
    client.send(server.addr(), &probe);
    let reply = client.recv();
    assert_eq!(status(&reply), 200);
}

/// The invalid requests, with their Via rewritten to point at the test client, get exactly
/// the reply their fault implies.
#[test]
fn invalid_requests_are_answered_with_the_fault_status() {
    let server = Server::start("invalid", ECHO_CFG);
    let client = UdpClient::new();
    let mut answered = 0;
    for path in manifest_files("rfc4475") {
        if !path.to_string_lossy().contains("/invalid/") {
            continue;
        }
        let original = std::fs::read(&path).unwrap();
        let Some(bytes) = aim_top_via(&original, client.port()) else {
            continue;
        };
        let Some(want) = expected_reply(&bytes) else {
            client.send(server.addr(), &bytes);
            continue;
        };
        client.send(server.addr(), &bytes);
        let reply = client
            .recv_within(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{}: no reply (expected {want})", path.display()));
        assert_eq!(status(&reply), want, "{}", path.display());
        answered += 1;
    }
    assert!(
        answered >= 5,
        "only {answered} invalid requests could be aimed at the client"
    );
}

/// Rewrites the first Via header's sent-by to 127.0.0.1:port with rport (so the reply comes
/// back here); `None` when the message has no `Via:`/`v:` line to rewrite.
fn aim_top_via(bytes: &[u8], port: u16) -> Option<Vec<u8>> {
    let text = bytes;
    let mut out = Vec::with_capacity(text.len() + 32);
    let mut rest = text;
    let mut done = false;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |k| k + 1);
        let line = &rest[..end];
        let lower = line.to_ascii_lowercase();
        if !done
            && (lower.starts_with(b"via:")
                || lower.starts_with(b"v:")
                || lower.starts_with(b"via "))
        {
            let eol: &[u8] = if line.ends_with(b"\r\n") {
                b"\r\n"
            } else {
                b"\n"
            };
            out.extend_from_slice(
                format!("Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bKaim").as_bytes(),
            );
            out.extend_from_slice(eol);
            done = true;
            // Skip folded continuation lines of the replaced header.
            rest = &rest[end..];
            while rest.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                let e = rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |k| k + 1);
                rest = &rest[e..];
            }
            continue;
        }
        out.extend_from_slice(line);
        rest = &rest[end..];
    }
    done.then_some(out)
}

#[test]
fn garbage_and_oversize_datagrams_do_not_stop_the_server() {
    let server = Server::start("garbage", ECHO_CFG);
    let client = UdpClient::new();
    // Deterministic pseudo-random bytes.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in [1usize, 3, 17, 100, 1500, 9000, 65000] {
        let mut data = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.push((x >> 24) as u8);
        }
        client.send(server.addr(), &data);
    }
    // A request line followed by nothing, and headers cut in the middle.
    client.send(server.addr(), b"INVITE sip:a@b SIP/2.0\r\n");
    let probe = options(client.port(), server.port, "cut");
    client.send(server.addr(), &probe[..probe.len() / 2]);
    // An oversize but well-formed datagram: 60000 bytes of header. It parses; it is answered.
    let mut big = options(client.port(), server.port, "big");
    let filler = format!("X-Filler: {}\r\n", "a".repeat(60000));
    let at = big.len() - 2;
    big.splice(at..at, filler.into_bytes());
    client.send(server.addr(), &big);
    let mut got_big = false;
    while let Some(r) = client.recv_within(Duration::from_secs(2)) {
        if String::from_utf8_lossy(&r).contains("Call-ID: big") {
            got_big = true;
            assert_eq!(status(&r), 200);
        }
    }
    assert!(got_big, "the large request was not answered");
    let probe = options(client.port(), server.port, "after-garbage");
    client.send(server.addr(), &probe);
    let reply = client.recv();
    assert_eq!(status(&reply), 200);
}

#[test]
fn tcp_slow_drip_truncated_and_bad_framing() {
    let server = Server::start("tcp", ECHO_CFG);
    // Slow drip: one byte at a time; answered on the same connection.
    let mut s = TcpStream::connect(server.addr()).unwrap();
    let local = s.local_addr().unwrap().port();
    let req = String::from_utf8(options(local, server.port, "drip"))
        .unwrap()
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    for b in req.as_bytes() {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let reply = read_some(&mut s, Duration::from_secs(5));
    assert_eq!(status(&reply), 200, "{}", String::from_utf8_lossy(&reply));

    // Truncated: half a message, then the client closes.
    let mut t = TcpStream::connect(server.addr()).unwrap();
    t.write_all(&req.as_bytes()[..req.len() / 2]).unwrap();
    drop(t);

    // Bad framing: a Content-Length that is not a number closes that connection.
    let mut b = TcpStream::connect(server.addr()).unwrap();
    b.write_all(
        req.replace("Content-Length: 0", "Content-Length: x")
            .as_bytes(),
    )
    .unwrap();
    let _ = read_some(&mut b, Duration::from_secs(2));

    // CRLF keep-alive ping gets a pong.
    let mut p = TcpStream::connect(server.addr()).unwrap();
    p.write_all(b"\r\n\r\n").unwrap();
    let pong = read_some(&mut p, Duration::from_secs(2));
    assert!(pong.starts_with(b"\r\n"), "no pong: {pong:?}");

    // The server still serves a new connection.
    let mut n = TcpStream::connect(server.addr()).unwrap();
    n.write_all(req.replace("drip", "fresh").as_bytes())
        .unwrap();
    let reply = read_some(&mut n, Duration::from_secs(5));
    assert_eq!(status(&reply), 200);
}

//! Core behaviour over the wire: IPv6 listen, TCP next hops, aliases and `myself`, `-A`
//! defines, `$sel(cfg_get...)`, `$fs`.

use crate::harness::*;
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::time::Duration;

#[test]
fn ipv6_listen_answers_over_ipv6() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("note: no ::1 here: IPv6 test skipped");
        return;
    }
    let server = Server::start(
        "ipv6",
        "listen=udp:[::1]:PORT\nloadmodule \"sl.so\"\nrequest_route { sl_send_reply(\"200\", \"v6 ok\"); }\n",
    );
    let client = UdpSocket::bind("[::1]:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let port = client.local_addr().unwrap().port();
    let req = format!(
        "OPTIONS sip:[::1]:{p} SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:{port};branch=z9hG4bK6\r\nFrom: <sip:a@[::1]>;tag=1\r\nTo: <sip:b@[::1]>\r\nCall-ID: v6\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        p = server.port
    );
    client
        .send_to(req.as_bytes(), ("::1", server.port))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("SIP/2.0 200 v6 ok"), "{text}");
}

#[test]
fn forward_over_tcp_and_relay_the_reply_back_over_udp() {
    let next = TcpListener::bind("127.0.0.1:0").unwrap();
    let next_port = next.local_addr().unwrap().port();
    let cfg = "listen=udp:127.0.0.1:PORT\nlisten=tcp:127.0.0.1:PORT\nloadmodule \"sl.so\"\n\
request_route { $du = \"sip:127.0.0.1:NEXT;transport=tcp\"; if (!forward()) { sl_send_reply(\"500\", \"no\"); } }\n";
    let server = Server::start_with("tcp-next", cfg, &[("NEXT", next_port)]);
    let client = UdpClient::new();
    client.send(
        server.addr(),
        &options(client.port(), server.port, "via-tcp"),
    );
    next.set_nonblocking(false).unwrap();
    let (mut conn, _) = next.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed early");
        got.extend_from_slice(&buf[..n]);
    }
    let req = String::from_utf8(got).unwrap();
    let top_via = req
        .lines()
        .find(|l| l.starts_with("Via:"))
        .unwrap()
        .to_owned();
    assert!(
        top_via.starts_with(&format!(
            "Via: SIP/2.0/TCP 127.0.0.1:{};branch=",
            server.port
        )),
        "{req}"
    );
    // Answer on the same connection: the reply is relayed to the UDP client.
    let reply = reply_to(&req, "SIP/2.0 200 OK");
    conn.write_all(reply.as_bytes()).unwrap();
    let back = client.recv();
    assert_eq!(status(&back), 200);
    assert!(String::from_utf8_lossy(&back).contains("Call-ID: via-tcp"));
}

const MYSELF_CFG: &str = r#"
listen=udp:127.0.0.1:PORT
alias="sip.example.test"
pstn.gw_ip = "192.0.2.7" desc "PSTN gateway"
loadmodule "sl.so"
loadmodule "kex.so"
request_route {
#!ifdef WITH_GREETING
    sl_send_reply("299", "greeting $sel(cfg_get.pstn.gw_ip)");
    exit;
#!endif
    if (uri == myself) {
        sl_send_reply("200", "mine");
    } else if (is_myself("sip:$rd")) {
        sl_send_reply("201", "alias");
    } else {
        $fs = "udp:127.0.0.1:PORT";
        sl_send_reply("404", "not mine fs=$fs");
    }
}
"#;

fn options_to(uri: &str, port: u16, call_id: &str) -> Vec<u8> {
    format!(
        "OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bK{call_id}\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <{uri}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn reason(reply: &[u8]) -> String {
    let t = String::from_utf8_lossy(reply);
    t.lines()
        .next()
        .unwrap_or("")
        .get(12..)
        .unwrap_or("")
        .to_owned()
}

#[test]
fn myself_alias_and_forced_socket() {
    let server = Server::start("myself", MYSELF_CFG);
    let c = UdpClient::new();
    let p = server.port;
    c.send(
        server.addr(),
        &options_to(&format!("sip:x@127.0.0.1:{p}"), c.port(), "m1"),
    );
    assert_eq!(reason(&c.recv()), "mine");
    // Port 5060 is implied: not this listener (unless it is on 5060).
    if p != 5060 {
        c.send(
            server.addr(),
            &options_to("sip:x@127.0.0.1", c.port(), "m2"),
        );
        assert_eq!(status(&c.recv()), 404);
    }
    // An alias without a port matches any port.
    c.send(
        server.addr(),
        &options_to("sip:x@sip.example.test", c.port(), "m3"),
    );
    assert_eq!(reason(&c.recv()), "mine");
    c.send(
        server.addr(),
        &options_to("sip:x@elsewhere.test", c.port(), "m4"),
    );
    assert_eq!(reason(&c.recv()), format!("not mine fs=udp:127.0.0.1:{p}"));
}

#[test]
fn command_line_defines_select_code_and_cfg_vars_are_read() {
    let mut server = Server::start("no-define", MYSELF_CFG);
    let c = UdpClient::new();
    c.send(
        server.addr(),
        &options_to(&format!("sip:x@127.0.0.1:{}", server.port), c.port(), "d1"),
    );
    assert_eq!(status(&c.recv()), 200);
    server.stop();

    // The same config with -A WITH_GREETING takes the #!ifdef branch.
    let port = free_port();
    let dir = scratch("define");
    let path = dir.join("d.cfg");
    std::fs::write(&path, MYSELF_CFG.replace("PORT", &port.to_string())).unwrap();
    let check = Command::new(sable_bin())
        .args(["-c", "-A", "WITH_GREETING", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut child = Command::new(sable_bin())
        .args(["-A", "WITH_GREETING", "-f"])
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut answered = None;
    for _ in 0..50 {
        c.send(
            addr,
            &options_to(&format!("sip:x@127.0.0.1:{port}"), c.port(), "d2"),
        );
        if let Some(r) = c.recv_within(Duration::from_millis(200)) {
            answered = Some(r);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let r = answered.expect("no answer with -A");
    assert_eq!(status(&r), 299);
    assert_eq!(reason(&r), "greeting 192.0.2.7");
}

#[test]
fn advertised_address_goes_in_via_and_record_route_and_counts_as_myself() {
    let hop = UdpSocket::bind("127.0.0.1:0").unwrap();
    hop.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let hop_port = hop.local_addr().unwrap().port();
    let cfg = "listen=udp:127.0.0.1:PORT advertise 192.0.2.5:5999\nloadmodule \"rr.so\"\n\
request_route { record_route(); $du = \"sip:127.0.0.1:HOP\"; forward(); }\n";
    let server = Server::start_with("advertise", cfg, &[("HOP", hop_port)]);
    let client = UdpClient::new();
    client.send(server.addr(), &options(client.port(), server.port, "adv"));
    let mut buf = [0u8; 4096];
    let (n, _) = hop.recv_from(&mut buf).unwrap();
    let fwd = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        fwd.contains("Via: SIP/2.0/UDP 192.0.2.5:5999;branch="),
        "{fwd}"
    );
    assert!(
        fwd.contains("Record-Route: <sip:192.0.2.5:5999;lr"),
        "{fwd}"
    );
    // The reply names the advertised address in its top Via: still relayed.
    let reply = reply_to(&fwd, "SIP/2.0 200 OK");
    hop.send_to(reply.as_bytes(), server.addr()).unwrap();
    assert_eq!(status(&client.recv()), 200);
}

#[test]
fn from_and_to_pseudo_variables() {
    let server = Server::start(
        "from-to",
        "listen=udp:127.0.0.1:PORT\nloadmodule \"sl.so\"\nrequest_route { sl_send_reply(\"299\", \"$fU|$fd|$fn|$ft|$fu|$tU|$td|$tt|$tu|$rU|$rd|$rp\"); }\n",
    );
    let c = UdpClient::new();
    let req = format!(
        "OPTIONS sip:bob@example.com:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p};rport;branch=z9hG4bKft\r\nFrom: \"Alice A\" <sip:alice@atlanta.example.com>;tag=1928\r\nTo: <sip:bob@biloxi.example.com>\r\nCall-ID: ft\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        p = c.port()
    );
    c.send(server.addr(), req.as_bytes());
    assert_eq!(
        reason(&c.recv()),
        "alice|atlanta.example.com|\"Alice A\"|1928|sip:alice@atlanta.example.com|bob|biloxi.example.com|<null>|sip:bob@biloxi.example.com|bob|example.com|5070"
    );
}

#[test]
fn append_branch_builds_the_destination_set_and_redirects_carry_it() {
    let server = Server::start(
        "branches",
        "listen=udp:127.0.0.1:PORT\nloadmodule \"sl.so\"\nrequest_route {\n\
         append_branch();\n\
         append_branch(\"sip:a@192.0.2.1\", \"0.5\");\n\
         append_branch(\"sip:b@192.0.2.2\");\n\
         sl_send_reply(\"302\", \"Moved $br|$bR\");\n}\n",
    );
    let c = UdpClient::new();
    c.send(
        server.addr(),
        &options_to("sip:x@192.0.2.9", c.port(), "br1"),
    );
    let reply = String::from_utf8(c.recv()).unwrap();
    assert!(
        reply.starts_with("SIP/2.0 302 Moved sip:x@192.0.2.9|sip:x@192.0.2.9, sip:a@192.0.2.1, sip:b@192.0.2.2\r\n"),
        "{reply}"
    );
    assert!(
        reply
            .contains("Contact: <sip:x@192.0.2.9>, <sip:a@192.0.2.1>;q=0.5, <sip:b@192.0.2.2>\r\n"),
        "{reply}"
    );
}

//! Stateless routing end to end: forward() with the Via, received/rport, Record-Route and
//! R-URI rewriting; replies relayed back by their Via; onsend_route; Max-Forwards.

use crate::harness::*;
use std::net::UdpSocket;
use std::time::Duration;

const CFG: &str = r#"
listen=udp:127.0.0.1:PORT
children=2
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "xlog.so"
loadmodule "textopsx.so"

request_route {
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    if ($rU == "rewrite") {
        $rU = "rewritten";
    }
    if (is_method("INVITE")) {
        record_route();
        # A second call is refused: still one Record-Route.
        if (record_route()) {
            append_hf("X-Second-RR: accepted\r\n");
        }
        append_hf("X-Via-Proxy: yes\r\n");
    }
    $du = "sip:127.0.0.1:NEXT_PORT";
    if (!forward()) {
        sl_send_reply("500", "Not forwarded");
    }
}

onsend_route {
    xlog("L_ERR", "onsend to $snd(ip):$snd(port) for $rU\n");
    if ($rU == "blocked") {
        drop;
    }
}

reply_route {
    append_hf("X-Reply-Seen: 1\r\n");
    if ($rs == 486) {
        change_reply_status(404, "Not Here");
    }
}
"#;

fn request(method: &str, user: &str, client_port: u16, proxy_port: u16, extra: &str) -> Vec<u8> {
    format!(
        "{method} sip:{user}@127.0.0.1:{proxy_port} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:{client_port};rport;branch=z9hG4bK-{user}-{method}\r\n\
From: <sip:alice@127.0.0.1>;tag=a1\r\n\
To: <sip:{user}@127.0.0.1>\r\n\
Call-ID: {user}-{method}\r\n\
CSeq: 1 {method}\r\n\
{extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn next_hop() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

fn recv_text(s: &UdpSocket) -> Option<(String, std::net::SocketAddr)> {
    let mut buf = vec![0u8; 65536];
    s.recv_from(&mut buf)
        .ok()
        .map(|(n, from)| (String::from_utf8_lossy(&buf[..n]).into_owned(), from))
}

fn header<'t>(msg: &'t str, name: &str) -> Vec<&'t str> {
    msg.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

#[test]
fn forward_adds_via_received_rport_record_route_and_relays_the_reply_back() {
    let hop = next_hop();
    let hop_port = hop.local_addr().unwrap().port();
    let server = Server::start_with("forward", CFG, &[("NEXT_PORT", hop_port)]);
    let client = UdpClient::new();
    client.send(
        server.addr(),
        &request(
            "INVITE",
            "bob",
            client.port(),
            server.port,
            "Max-Forwards: 70\r\n",
        ),
    );

    let (fwd, from) = recv_text(&hop).expect("the INVITE was not forwarded");
    assert_eq!(from.port(), server.port, "sent from the listen socket");
    let vias = header(&fwd, "Via");
    assert_eq!(vias.len(), 2, "{fwd}");
    assert!(
        vias[0].starts_with(&format!(
            "SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK",
            server.port
        )),
        "{fwd}"
    );
    assert!(
        vias[1].contains(&format!("rport={}", client.port()))
            && vias[1].contains("received=127.0.0.1"),
        "{fwd}"
    );
    assert_eq!(header(&fwd, "Max-Forwards"), ["69"]);
    assert_eq!(header(&fwd, "X-Via-Proxy"), ["yes"]);
    assert!(header(&fwd, "X-Second-RR").is_empty(), "{fwd}");
    let rr = header(&fwd, "Record-Route");
    assert_eq!(rr.len(), 1);
    assert_eq!(rr[0], format!("<sip:127.0.0.1:{};lr;ftag=a1>", server.port));

    // The next hop answers to the proxy (top Via); the proxy relays to the client by the
    // second Via's received/rport, without its own Via.
    let reply = {
        let mut lines: Vec<String> = vec!["SIP/2.0 180 Ringing".to_owned()];
        for v in &vias {
            lines.push(format!("Via: {v}"));
        }
        for h in ["From", "To", "Call-ID", "CSeq"] {
            lines.push(format!("{h}: {}", header(&fwd, h)[0]));
        }
        lines.push("Content-Length: 0".to_owned());
        format!("{}\r\n\r\n", lines.join("\r\n"))
    };
    hop.send_to(reply.as_bytes(), server.addr()).unwrap();
    let relayed = String::from_utf8(client.recv()).unwrap();
    assert!(relayed.starts_with("SIP/2.0 180 Ringing"), "{relayed}");
    assert_eq!(header(&relayed, "Via").len(), 1, "{relayed}");
    assert_eq!(header(&relayed, "X-Reply-Seen"), ["1"]);

    // A 486 has its status line rewritten by the reply route.
    hop.send_to(
        reply.replace("180 Ringing", "486 Busy Here").as_bytes(),
        server.addr(),
    )
    .unwrap();
    let relayed = String::from_utf8(client.recv()).unwrap();
    assert!(relayed.starts_with("SIP/2.0 404 Not Here\r\n"), "{relayed}");

    // The onsend_route saw the destination.
    server.wait_log(
        &format!("onsend to 127.0.0.1:{hop_port} for bob"),
        Duration::from_secs(5),
    );
}

#[test]
fn onsend_drop_stops_the_request_and_rewrites_reach_the_wire() {
    let hop = next_hop();
    let hop_port = hop.local_addr().unwrap().port();
    let server = Server::start_with("onsend", CFG, &[("NEXT_PORT", hop_port)]);
    let client = UdpClient::new();

    client.send(
        server.addr(),
        &request("MESSAGE", "blocked", client.port(), server.port, ""),
    );
    // forward() failed (dropped in onsend_route): the script answers 500.
    assert_eq!(status(&client.recv()), 500);

    client.send(
        server.addr(),
        &request("MESSAGE", "rewrite", client.port(), server.port, ""),
    );
    let (fwd, _) = recv_text(&hop).expect("not forwarded");
    assert!(
        fwd.starts_with(&format!(
            "MESSAGE sip:rewritten@127.0.0.1:{} SIP/2.0",
            server.port
        )),
        "{fwd}"
    );
    // No Max-Forwards in the request: the module added one.
    assert_eq!(header(&fwd, "Max-Forwards"), ["10"]);
    // Nothing else arrived at the next hop (the blocked one was not sent).
    hop.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(recv_text(&hop).is_none());
}

#[test]
fn max_forwards_zero_gets_483() {
    let hop = next_hop();
    let server = Server::start_with(
        "maxfwd",
        CFG,
        &[("NEXT_PORT", hop.local_addr().unwrap().port())],
    );
    let client = UdpClient::new();
    client.send(
        server.addr(),
        &request(
            "OPTIONS",
            "bob",
            client.port(),
            server.port,
            "Max-Forwards: 0\r\n",
        ),
    );
    let reply = client.recv();
    assert_eq!(status(&reply), 483);
    // A stateless reply of 180 or more gets a To-tag; its top Via carries received/rport.
    let text = String::from_utf8(reply).unwrap();
    assert!(header(&text, "To")[0].contains(";tag="), "{text}");
    assert!(
        header(&text, "Via")[0].contains("received=127.0.0.1"),
        "{text}"
    );
}

const RR_CFG: &str = r#"
listen=udp:127.0.0.1:PORT
listen=tcp:127.0.0.1:PORT
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "siputils.so"
request_route {
    if (has_totag()) {
        if (loose_route()) {
            $var(d) = "none";
            if (is_direction("downstream")) { $var(d) = "down"; }
            if (is_direction("upstream")) { $var(d) = "up"; }
            sl_send_reply("299", "lr $var(d) $route_uri $ru $du");
            exit;
        }
        sl_send_reply("404", "No Route");
        exit;
    }
    record_route();
    $du = "sip:127.0.0.1:HOP;transport=tcp";
    forward();
}
"#;

fn in_dialog(client_port: u16, ruri: &str, routes: &[&str], from_tag: &str) -> Vec<u8> {
    let route_lines: String = routes.iter().map(|r| format!("Route: {r}\r\n")).collect();
    format!(
        "BYE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{client_port};rport;branch=z9hG4bK-{from_tag}\r\n{route_lines}From: <sip:alice@127.0.0.1>;tag={from_tag}\r\nTo: <sip:bob@127.0.0.1>;tag=b2\r\nCall-ID: rr-{from_tag}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn double_record_route_is_direction_route_uri_and_strict_routers() {
    let next = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hop = next.local_addr().unwrap().port();
    let server = Server::start_with("rr", RR_CFG, &[("HOP", hop)]);
    let p = server.port;
    let client = UdpClient::new();

    // UDP in, TCP out: two Record-Routes with r2=on, the outbound one on top.
    client.send(
        server.addr(),
        &request("INVITE", "bob", client.port(), p, ""),
    );
    let (mut conn, _) = next.accept().unwrap();
    let fwd = String::from_utf8(read_some(&mut conn, Duration::from_secs(5))).unwrap();
    let rr = header(&fwd, "Record-Route");
    assert_eq!(
        rr,
        [
            format!("<sip:127.0.0.1:{p};transport=tcp;r2=on;lr;ftag=a1>"),
            format!("<sip:127.0.0.1:{p};r2=on;lr;ftag=a1>"),
        ],
        "{fwd}"
    );

    // Both of our Routes are consumed; the direction comes from ftag.
    let ours_tcp = format!("<sip:127.0.0.1:{p};transport=tcp;r2=on;lr;ftag=a1>");
    let ours_udp = format!("<sip:127.0.0.1:{p};r2=on;lr;ftag=a1>");
    client.send(
        server.addr(),
        &in_dialog(
            client.port(),
            "sip:bob@192.0.2.9",
            &[&ours_udp, &ours_tcp],
            "a1",
        ),
    );
    assert_eq!(
        reason(&client.recv()),
        format!("lr down sip:127.0.0.1:{p};r2=on;lr;ftag=a1 sip:bob@192.0.2.9 <null>")
    );
    let ours = format!("<sip:127.0.0.1:{p};lr;ftag=a1>");
    client.send(
        server.addr(),
        &in_dialog(
            client.port(),
            "sip:alice@192.0.2.8",
            &[&ours, "<sip:192.0.2.50;lr>"],
            "zz",
        ),
    );
    assert_eq!(
        reason(&client.recv()),
        format!("lr up sip:127.0.0.1:{p};lr;ftag=a1 sip:alice@192.0.2.8 sip:192.0.2.50;lr")
    );

    // From a strict router: the Request-URI is ours, the real one is the last Route.
    client.send(
        server.addr(),
        &in_dialog(
            client.port(),
            &format!("sip:127.0.0.1:{p}"),
            &["<sip:bob@192.0.2.9>"],
            "s1",
        ),
    );
    assert_eq!(
        reason(&client.recv()),
        format!("lr none sip:127.0.0.1:{p} sip:bob@192.0.2.9 <null>")
    );
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

/// Script text cannot inject header lines; a stateless provisional above 100 gets a To-tag;
/// a request is not forwarded to the server itself.
#[test]
fn injection_refused_provisional_tags_and_self_loops() {
    let cfg = r#"
listen=udp:127.0.0.1:PORT
loadmodule "sl.so"
loadmodule "xlog.so"
request_route {
    if ($rU == "reason") {
        if (!sl_send_reply("403", "No $(hdr(X-R){s.unescape.user})")) {
            sl_send_reply("500", "refused");
        }
        exit;
    }
    if ($rU == "ruri") {
        $ru = "sip:x@192.0.2.1" + $(hdr(X-R){s.unescape.user});
        if (!forward("127.0.0.1", 9)) {
            sl_send_reply("500", "not forwarded");
        }
        exit;
    }
    if ($rU == "prov") {
        sl_send_reply("110", "Early");
        exit;
    }
    if (!forward()) {
        sl_send_reply("508", "loop");
    }
}
"#;
    let server = Server::start("inject", cfg);
    let client = UdpClient::new();
    let p = server.port;
    let evil = "X-R: a%0d%0aX-Injected:%20yes\r\n";
    client.send(
        server.addr(),
        &request("OPTIONS", "reason", client.port(), p, evil),
    );
    let r = String::from_utf8(client.recv()).unwrap();
    assert!(
        r.starts_with("SIP/2.0 500 refused\r\n") && !r.contains("X-Injected"),
        "{r}"
    );
    client.send(
        server.addr(),
        &request("OPTIONS", "ruri", client.port(), p, evil),
    );
    let r = String::from_utf8(client.recv()).unwrap();
    assert!(r.starts_with("SIP/2.0 500 not forwarded\r\n"), "{r}");
    client.send(
        server.addr(),
        &request("OPTIONS", "prov", client.port(), p, ""),
    );
    let r = String::from_utf8(client.recv()).unwrap();
    assert!(header(&r, "To")[0].contains(";tag="), "{r}");
    // The Request-URI names this server: forward() would send it to itself.
    client.send(
        server.addr(),
        &request("OPTIONS", "self", client.port(), p, ""),
    );
    assert_eq!(status(&client.recv()), 508);
}

/// `$TV(s)`, `$TV(u)` and `$Ts` are the message's time (the first read's, kept while the
/// message is routed); `$TV(sn)`, `$TV(un)` and `$TV(Sn)` are the time of each read.
#[test]
fn tv_gives_the_message_time_and_the_time_now() {
    const TV_CFG: &str = r#"
listen=udp:127.0.0.1:PORT
children=1
max_while_loops=100000
loadmodule "sl.so"
loadmodule "xlog.so"

request_route {
    xlog("L_ERR", "tv1 $TV(s) $TV(u) $Ts $TV(sn) $TV(un) $TV(Sn)\n");
    $var(i) = 0;
    while ($var(i) < 20000) {
        $var(i) = $var(i) + 1;
    }
    xlog("L_ERR", "tv2 $TV(s) $TV(u) $Ts $TV(sn) $TV(un) $TV(Sn)\n");
    sl_send_reply("200", "OK");
}
"#;
    let server = Server::start("tv", TV_CFG);
    let client = UdpClient::new();
    client.send(
        server.addr(),
        &request("OPTIONS", "tv", client.port(), server.port, ""),
    );
    assert_eq!(status(&client.recv()), 200);
    server.wait_log("tv2 ", Duration::from_secs(5));
    let log = server.log_text();
    let fields = |tag: &str| -> (Vec<i64>, String) {
        let line = log
            .lines()
            .find_map(|l| l.split_once(&format!("{tag} ")).map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("no {tag} line in\n{log}"));
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(parts.len(), 6, "{line}");
        let ints = parts[..5].iter().map(|p| p.parse().unwrap()).collect();
        (ints, parts[5].to_owned())
    };
    let (a, a_sn) = fields("tv1");
    let (b, b_sn) = fields("tv2");
    // The message's time: the same at both reads, $Ts equal to $TV(s).
    assert_eq!(a[..3], b[..3], "{log}");
    assert_eq!(a[0], a[2]);
    assert!((0..1_000_000).contains(&a[1]));
    // The time now: later at the second read, and never before the message's time.
    let micros = |s: i64, u: i64| s * 1_000_000 + u;
    assert!(micros(a[3], a[4]) >= micros(a[0], a[1]), "{log}");
    assert!(micros(b[3], b[4]) > micros(a[3], a[4]), "{log}");
    for sn in [&a_sn, &b_sn] {
        let (s, u) = sn.split_once('.').unwrap();
        assert!(
            s.parse::<i64>().is_ok() && u.len() == 6 && u.parse::<u32>().is_ok(),
            "{sn}"
        );
    }
}

//! tm on the wire, with raw UDP peers playing caller and callees: parallel forking and the
//! best reply, hop-by-hop ACK, retransmissions absorbed, fr_timer's 408, CANCEL, failure
//! routes that try another destination, AVPs kept by the transaction.

use crate::harness::*;
use std::net::SocketAddr;
use std::time::Duration;

const CFG: &str = r#"
listen=udp:127.0.0.1:PORT
children=2
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
modparam("tm", "fr_timer", 1000)
modparam("tm", "fr_inv_timer", 3000)
modparam("tm", "wt_timer", 500)
modparam("tm", "contacts_avp", "tm_contacts")
modparam("tm", "contact_flows_avp", "tm_contact_flows")

request_route {
    if (is_method("ACK")) {
        if (t_check_trans()) {
            t_relay();
        }
        exit;
    }
    if (is_method("CANCEL")) {
        if (t_check_trans()) {
            t_relay();
        }
        exit;
    }
    $avp(kept) = "from-request-" + $rU;
    if ($rU == "serial") {
        append_branch("sip:one@127.0.0.1:UAS1", "1.0");
        append_branch("sip:three@127.0.0.1:UAS3", "0.1");
        append_branch("sip:two@127.0.0.1:UAS2", "0.5");
        t_load_contacts();
        t_next_contacts();
        t_on_failure("SERIAL");
        t_relay();
        exit;
    }
    if ($rU == "fork") {
        $ru = "sip:one@127.0.0.1:UAS1";
        append_branch("sip:two@127.0.0.1:UAS2");
        append_branch("sip:three@127.0.0.1:UAS3");
    } else if ($rU == "retry") {
        $du = "sip:127.0.0.1:UAS1";
    } else {
        $du = "sip:127.0.0.1:UAS1";
    }
    t_on_reply("R");
    t_on_failure("F");
    if (!t_relay()) {
        xlog("L_ERR", "relay failed\n");
    }
}

failure_route[SERIAL] {
    xlog("L_ERR", "serial failure $T_reply_code, next\n");
    if (!t_next_contacts()) {
        exit;
    }
    t_on_failure("SERIAL");
    t_relay();
}

onreply_route[R] {
    xlog("L_ERR", "reply $rs branch $T_branch_idx avp $avp(kept)\n");
    append_hf("X-Seen-By-Reply-Route: $rs\r\n");
}

failure_route[F] {
    xlog("L_ERR", "failure $T_reply_code avp $avp(kept) req-callid $T_req($ci) rpl-to-tag $T_rpl($tt) reason $T_reply_reason\n");
    if (t_is_canceled()) {
        xlog("L_ERR", "failure: canceled\n");
        exit;
    }
    if ($rU == "retry" && t_check_status("503")) {
        $du = "sip:127.0.0.1:UAS2";
        t_on_failure("F");
        t_relay();
        exit;
    }
    if (t_branch_timeout()) {
        xlog("L_ERR", "failure: timeout\n");
    }
}
"#;

struct Peer {
    c: UdpClient,
}

impl Peer {
    fn new() -> Peer {
        Peer {
            c: UdpClient::new(),
        }
    }
    fn port(&self) -> u16 {
        self.c.port()
    }
    /// The next datagram as text.
    fn next(&self) -> String {
        String::from_utf8(self.c.recv()).unwrap()
    }
    fn next_within(&self, ms: u64) -> Option<String> {
        self.c
            .recv_within(Duration::from_millis(ms))
            .map(|b| String::from_utf8(b).unwrap())
    }
    /// The next datagram that is not a 100 Trying.
    fn next_not_100(&self) -> String {
        loop {
            let m = self.next();
            if !m.starts_with("SIP/2.0 100 ") {
                return m;
            }
        }
    }
    fn send(&self, to: SocketAddr, text: &str) {
        self.c.send(to, text.as_bytes());
    }
}

fn start(name: &str) -> (Server, Peer, Peer, Peer) {
    let (u1, u2, u3) = (Peer::new(), Peer::new(), Peer::new());
    let s = Server::start_with(
        name,
        CFG,
        &[
            ("UAS1", u1.port()),
            ("UAS2", u2.port()),
            ("UAS3", u3.port()),
        ],
    );
    (s, u1, u2, u3)
}

fn invite(user: &str, caller: &Peer, proxy: u16, branch: &str) -> String {
    format!(
        "INVITE sip:{user}@127.0.0.1:{proxy} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK{branch}\r\n\
From: <sip:alice@127.0.0.1>;tag=a1\r\n\
To: <sip:{user}@127.0.0.1>\r\n\
Call-ID: {branch}@test\r\n\
CSeq: 1 INVITE\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:alice@127.0.0.1:{p}>\r\n\
Content-Length: 0\r\n\r\n",
        p = caller.port()
    )
}

/// The request with its method and CSeq method changed (ACK, CANCEL for an INVITE).
fn same_transaction(req: &str, method: &str, to_tag: Option<&str>) -> String {
    let mut out = String::new();
    for (k, line) in req.split("\r\n").enumerate() {
        if k == 0 {
            out.push_str(&line.replacen("INVITE", method, 1));
        } else if line.starts_with("CSeq:") {
            out.push_str(&line.replace("INVITE", method));
        } else if line.starts_with("To:") {
            out.push_str(line);
            if let Some(t) = to_tag {
                out.push_str(";tag=");
                out.push_str(t);
            }
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out.truncate(out.len() - 2);
    out
}

/// A UAS reply with a To-tag.
fn answer(req: &str, status: &str, tag: &str) -> String {
    reply_to(req, status)
        .split("\r\n")
        .map(|l| {
            if l.starts_with("To:") && !l.contains("tag=") {
                format!("{l};tag={tag}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn top_branch(msg: &str) -> String {
    let via = msg.lines().find(|l| l.starts_with("Via:")).unwrap();
    via.split("branch=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn first_line(msg: &str) -> &str {
    msg.lines().next().unwrap()
}

#[test]
fn parallel_fork_relays_the_best_reply_and_acks_each_branch() {
    let (s, u1, u2, u3) = start("tm-fork");
    let caller = Peer::new();
    let inv = invite("fork", &caller, s.port, "fork1");
    caller.send(s.addr(), &inv);
    assert!(caller.next().starts_with("SIP/2.0 100 trying"));
    let mut branches = Vec::new();
    for (peer, status) in [
        (&u1, "SIP/2.0 503 Service Unavailable"),
        (&u2, "SIP/2.0 486 Busy Here"),
        (&u3, "SIP/2.0 404 Not Found"),
    ] {
        let req = peer.next();
        assert!(req.starts_with("INVITE sip:"), "{req}");
        let b = top_branch(&req);
        assert!(b.starts_with("z9hG4bKtm"), "{b}");
        branches.push(b);
        peer.send(s.addr(), &answer(&req, status, "t"));
        // Hop-by-hop ACK for the negative reply, same branch as the INVITE (§17.1.1.3).
        let ack = peer.next();
        assert!(ack.starts_with("ACK sip:"), "{ack}");
        assert_eq!(top_branch(&ack), *branches.last().unwrap());
    }
    branches.dedup();
    assert_eq!(branches.len(), 3, "each branch has its own Via branch");
    // 4xx beats 5xx; within 4xx the lowest code (404 < 486).
    let fin = caller.next_not_100();
    assert!(fin.starts_with("SIP/2.0 404 "), "{fin}");
    assert!(fin.contains("X-Seen-By-Reply-Route: 404"), "{fin}");
    // A retransmitted INVITE is answered with the stored reply without reaching the
    // callees again; the caller's ACK is absorbed by the transaction.
    caller.send(s.addr(), &inv);
    let again = caller.next();
    assert!(again.starts_with("SIP/2.0 404 "), "{again}");
    caller.send(s.addr(), &same_transaction(&inv, "ACK", Some("t")));
    for p in [&u1, &u2, &u3] {
        assert!(p.next_within(300).is_none());
    }
    let log = s.log_text();
    assert!(
        log.contains(
            "failure 404 avp from-request-fork req-callid fork1@test rpl-to-tag t reason Not Found"
        ),
        "{log}"
    );
    assert!(log.contains("avp from-request-fork"), "{log}");
}

#[test]
fn retransmitted_invite_is_absorbed_and_2xx_goes_straight_up() {
    let (s, u1, _u2, _u3) = start("tm-retr");
    let caller = Peer::new();
    let inv = invite("one", &caller, s.port, "retr1");
    caller.send(s.addr(), &inv);
    assert!(caller.next().starts_with("SIP/2.0 100 "));
    let req = u1.next();
    caller.send(s.addr(), &inv);
    // The stored 100 again, and no second INVITE downstream.
    assert!(caller.next().starts_with("SIP/2.0 100 "));
    u1.send(s.addr(), &answer(&req, "SIP/2.0 180 Ringing", "b"));
    let r = caller.next();
    assert!(r.starts_with("SIP/2.0 180 "), "{r}");
    // Our Via is gone from the relayed reply; the caller's is on top.
    assert!(!r.contains("z9hG4bKtm"), "{r}");
    u1.send(s.addr(), &answer(&req, "SIP/2.0 200 OK", "b"));
    let r = caller.next();
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    // A retransmitted 2xx is relayed too (end to end).
    u1.send(s.addr(), &answer(&req, "SIP/2.0 200 OK", "b"));
    assert!(caller.next().starts_with("SIP/2.0 200 "));
    // Only the first INVITE went downstream (no Timer A retransmission after the 180).
    if let Some(m) = u1.next_within(700) {
        panic!("unexpected downstream message: {}", first_line(&m));
    }
}

#[test]
fn fr_timer_gives_408_and_invite_is_retransmitted_meanwhile() {
    let (s, u1, _u2, _u3) = start("tm-fr");
    let caller = Peer::new();
    let inv = invite("silent", &caller, s.port, "silent1");
    caller.send(s.addr(), &inv);
    assert!(caller.next().starts_with("SIP/2.0 100 "));
    // Timer A: the INVITE again after T1 (500 ms) while nothing answers.
    let first = u1.next();
    let second = u1.next();
    assert_eq!(top_branch(&first), top_branch(&second));
    let fin = caller.next_not_100();
    assert!(fin.starts_with("SIP/2.0 408 Request Timeout"), "{fin}");
    assert!(fin.contains(";tag="), "{fin}");
    s.wait_log("failure: timeout", Duration::from_secs(3));
}

#[test]
fn cancel_reaches_the_ringing_branch_and_the_caller_gets_487() {
    let (s, u1, _u2, _u3) = start("tm-cancel");
    let caller = Peer::new();
    let inv = invite("cancelme", &caller, s.port, "cancel1");
    caller.send(s.addr(), &inv);
    assert!(caller.next().starts_with("SIP/2.0 100 "));
    let req = u1.next();
    u1.send(s.addr(), &answer(&req, "SIP/2.0 180 Ringing", "c"));
    assert!(caller.next().starts_with("SIP/2.0 180 "));
    caller.send(s.addr(), &same_transaction(&inv, "CANCEL", None));
    let r = caller.next();
    assert!(r.starts_with("SIP/2.0 200 canceling"), "{r}");
    assert!(r.contains("CSeq: 1 CANCEL"), "{r}");
    let cancel = u1.next();
    assert!(cancel.starts_with("CANCEL sip:"), "{cancel}");
    assert_eq!(top_branch(&cancel), top_branch(&req));
    u1.send(s.addr(), &answer(&cancel, "SIP/2.0 200 OK", "c"));
    u1.send(
        s.addr(),
        &answer(&req, "SIP/2.0 487 Request Terminated", "c"),
    );
    let ack = u1.next();
    assert!(ack.starts_with("ACK sip:"), "{ack}");
    let fin = caller.next_not_100();
    assert!(fin.starts_with("SIP/2.0 487 "), "{fin}");
    s.wait_log("failure: canceled", Duration::from_secs(3));
}

#[test]
fn failure_route_tries_another_destination() {
    let (s, u1, u2, _u3) = start("tm-failure");
    let caller = Peer::new();
    let inv = invite("retry", &caller, s.port, "retry1");
    caller.send(s.addr(), &inv);
    assert!(caller.next().starts_with("SIP/2.0 100 "));
    let req = u1.next();
    u1.send(
        s.addr(),
        &answer(&req, "SIP/2.0 503 Service Unavailable", "d"),
    );
    assert!(u1.next().starts_with("ACK "));
    let req2 = u2.next();
    assert!(req2.starts_with("INVITE sip:retry@"), "{req2}");
    assert_ne!(top_branch(&req), top_branch(&req2));
    u2.send(s.addr(), &answer(&req2, "SIP/2.0 200 OK", "e"));
    let fin = caller.next_not_100();
    assert!(fin.starts_with("SIP/2.0 200 "), "{fin}");
    assert!(fin.contains("tag=e"), "{fin}");
}

#[test]
fn serial_forking_walks_the_contacts_by_q() {
    let (s, u1, u2, u3) = start("tm-serial");
    let caller = Peer::new();
    let inv = invite("serial", &caller, s.port, "serial1");
    caller.send(s.addr(), &inv);
    assert!(caller.next().starts_with("SIP/2.0 100 "));
    let r1 = u1.next();
    assert!(r1.starts_with("INVITE sip:one@"), "{r1}");
    u1.send(
        s.addr(),
        &answer(&r1, "SIP/2.0 503 Service Unavailable", "s1"),
    );
    assert!(u1.next().starts_with("ACK "));
    // q 0.5 before q 0.1, whatever the order they were appended in.
    let r2 = u2.next();
    assert!(r2.starts_with("INVITE sip:two@"), "{r2}");
    u2.send(s.addr(), &answer(&r2, "SIP/2.0 486 Busy Here", "s2"));
    assert!(u2.next().starts_with("ACK "));
    let r3 = u3.next();
    assert!(r3.starts_with("INVITE sip:three@"), "{r3}");
    u3.send(s.addr(), &answer(&r3, "SIP/2.0 180 Ringing", "s3"));
    assert!(caller.next().starts_with("SIP/2.0 180 "));
    u3.send(s.addr(), &answer(&r3, "SIP/2.0 200 OK", "s3"));
    let fin = caller.next();
    assert!(fin.starts_with("SIP/2.0 200 "), "{fin}");
    // The log is read from the server's stderr by another thread: wait for the last line.
    s.wait_log("serial failure 486, next", Duration::from_secs(5));
    let log = s.log_text();
    let first = log
        .find("serial failure 503, next")
        .expect("503 step logged");
    let second = log
        .find("serial failure 486, next")
        .expect("486 step logged");
    assert!(first < second, "{log}");
}

const RPC_CFG: &str = r#"
listen=udp:127.0.0.1:PORT
children=2
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "ctl.so"
loadmodule "textops.so"
modparam("ctl", "binrpc", "unix:CTL_PATH")
modparam("tm", "wt_timer", 300)

request_route {
    if (is_method("MESSAGE")) {
        # Held: answered later over RPC (tm.reply).
        t_newtran();
        exit;
    }
    $du = "sip:127.0.0.1:UAS1";
    t_relay();
}
"#;

#[test]
fn rpc_stats_uac_start_reply_and_cancel() {
    let u1 = Peer::new();
    let dir = scratch("tm-rpc-ctl");
    let sock = dir.join("sable_ctl");
    let cfg = RPC_CFG.replace("CTL_PATH", &sock.to_string_lossy());
    let s = Server::start_with("tm-rpc", &cfg, &[("UAS1", u1.port())]);
    let ctl = |args: &[&str]| crate::control::ctl_json(&sock, args);

    // A request of our own: OPTIONS to the peer, its 200 ends it.
    let uri = format!("sip:ping@127.0.0.1:{}", u1.port());
    ctl(&[
        "rpc",
        "tm.t_uac_start",
        "OPTIONS",
        &uri,
        ".",
        ".",
        "X-Probe: 1\r\n",
    ]);
    let opt = u1.next();
    assert!(opt.starts_with(&format!("OPTIONS {uri} SIP/2.0")), "{opt}");
    for h in [
        "X-Probe: 1",
        "From: <sip:sable@",
        "CSeq: 10 OPTIONS",
        "Max-Forwards: 70",
    ] {
        assert!(opt.contains(h), "{h} missing: {opt}");
    }
    u1.send(s.addr(), &answer(&opt, "SIP/2.0 200 OK", "p"));

    // A held MESSAGE answered from RPC.
    let caller = Peer::new();
    let msg = format!(
        "MESSAGE sip:held@127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bKheld1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:held@x>\r\nCall-ID: held-1\r\nCSeq: 5 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        p = s.port,
        c = caller.port()
    );
    caller.send(s.addr(), &msg);
    let mut tindex = None;
    for _ in 0..50 {
        let list = ctl(&["rpc", "tm.list"]);
        if let Some(t) = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["method"] == "MESSAGE")
        {
            assert_eq!(t["callid"], "held-1");
            assert_eq!(t["cseq"], "5");
            tindex = Some(t["tindex"].as_u64().unwrap().to_string());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let tindex = tindex.expect("the held MESSAGE is listed");
    ctl(&[
        "rpc",
        "tm.reply",
        "i:202",
        "Accepted",
        &tindex,
        ".",
        "X-From-Rpc: yes\r\n",
    ]);
    let r = caller.next();
    assert!(r.starts_with("SIP/2.0 202 Accepted"), "{r}");
    assert!(r.contains("X-From-Rpc: yes"), "{r}");

    // A ringing INVITE cancelled from RPC.
    let inv = invite("ring", &caller, s.port, "rpccancel");
    caller.send(s.addr(), &inv);
    assert!(caller.next().starts_with("SIP/2.0 100 "));
    let req = u1.next();
    u1.send(s.addr(), &answer(&req, "SIP/2.0 180 Ringing", "r"));
    assert!(caller.next().starts_with("SIP/2.0 180 "));
    ctl(&["rpc", "tm.cancel", "rpccancel@test", "1"]);
    let cancel = u1.next();
    assert!(cancel.starts_with("CANCEL "), "{cancel}");
    u1.send(
        s.addr(),
        &answer(&req, "SIP/2.0 487 Request Terminated", "r"),
    );
    assert!(u1.next().starts_with("ACK "));
    assert!(caller.next().starts_with("SIP/2.0 487 "));
    // The ACK ends the INVITE's server side (no route absorbs it here: t_relay() does).
    caller.send(s.addr(), &same_transaction(&inv, "ACK", Some("r")));

    let st = ctl(&["rpc", "tm.stats"]);
    for k in [
        "current",
        "waiting",
        "total",
        "total_local",
        "rpl_received",
        "rpl_generated",
        "rpl_sent",
        "6xx",
        "5xx",
        "4xx",
        "3xx",
        "2xx",
        "created",
        "freed",
        "delayed_free",
    ] {
        assert!(st[k].is_i64() || st[k].is_u64(), "{k} in {st}");
    }
    assert_eq!(st["total"], 3, "{st}");
    assert_eq!(st["total_local"], 1, "{st}");
    assert_eq!(st["2xx"], 2, "{st}");
    assert_eq!(st["4xx"], 1, "{st}");
    // Freed after wt_timer.
    let mut freed = 0;
    for _ in 0..60 {
        let st = ctl(&["rpc", "tm.stats"]);
        freed = st["freed"].as_u64().unwrap();
        if freed == 3 {
            assert_eq!(st["current"], 0, "{st}");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(freed, 3);
    // Freed transactions leave no deadline behind: the INVITEs' fr_inv_timer (120 s) and
    // lifetime entries, and the 32 s timers, go with them.
    let mut mem = serde_json::Value::Null;
    for _ in 0..30 {
        mem = ctl(&["rpc", "tm.memory"]);
        if mem["timer_entries"] == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(mem["transactions"], 0, "{mem}");
    assert_eq!(mem["timer_entries"], 0, "{mem}");
}

//! The dialog module on the wire with raw UDP peers: dlg.terminate_dlg sends a BYE to both
//! sides and ends the dialog; a dialog whose timeout runs out with send_bye does the same;
//! a profile limits concurrent calls per caller.

use crate::harness::*;
use std::net::SocketAddr;
use std::time::Duration;

const CFG: &str = r#"
listen=udp:127.0.0.1:PORT
children=2
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "ctl.so"
loadmodule "dialog.so"
modparam("ctl", "binrpc", "unix:CTL_PATH")
modparam("dialog", "profiles_with_value", "caller")
modparam("dialog", "send_bye", 1)

request_route {
    if (has_totag()) {
        if (loose_route()) {
            t_relay();
        }
        exit;
    }
    if (is_method("INVITE")) {
        get_profile_size("caller", "$fU", "$var(n)");
        if ($var(n) >= 1) {
            sl_send_reply("486", "Busy Here");
            exit;
        }
        dlg_manage();
        set_dlg_profile("caller", "$fU");
        if ($rU == "short") {
            dlg_set_timeout("2");
        }
        record_route();
    }
    $du = "sip:127.0.0.1:UAS";
    t_relay();
}

event_route[dialog:end] {
    xlog("L_INFO", "dialog end $dlg(callid)\n");
}
"#;

fn recv(c: &UdpClient) -> String {
    String::from_utf8(c.recv()).unwrap()
}

fn header(msg: &str, name: &str) -> Option<String> {
    msg.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// A UAS reply with To-tag, Contact and the request's Record-Route.
fn answer(req: &str, status: &str, uas: &UdpClient) -> String {
    let mut out = format!("{status}\r\n");
    for l in req.split("\r\n") {
        if ["Via:", "From:", "Call-ID:", "CSeq:", "Record-Route:"]
            .iter()
            .any(|h| l.starts_with(h))
        {
            out.push_str(l);
            out.push_str("\r\n");
        }
        if l.starts_with("To:") {
            out.push_str(&format!("{l};tag=callee\r\n"));
        }
    }
    out.push_str(&format!(
        "Contact: <sip:bob@127.0.0.1:{}>\r\nContent-Length: 0\r\n\r\n",
        uas.port()
    ));
    out
}

/// Sets up a call caller → proxy → callee up to the ACK; gives the caller's Route set.
fn call(proxy: SocketAddr, caller: &UdpClient, uas: &UdpClient, user: &str, call_id: &str) {
    let inv = format!(
        "INVITE sip:{user}@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-{call_id}\r\nFrom: <sip:alice@127.0.0.1>;tag=caller\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{c}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        proxy.port(),
        c = caller.port()
    );
    caller.send(proxy, inv.as_bytes());
    let req = recv(uas);
    assert!(req.starts_with("INVITE"), "{req}");
    let rr = header(&req, "Record-Route").expect("Record-Route");
    assert!(rr.contains(";did="), "{rr}");
    uas.send(proxy, answer(&req, "SIP/2.0 200 OK", uas).as_bytes());
    loop {
        let r = recv(caller);
        if r.starts_with("SIP/2.0 200") {
            break;
        }
    }
    let ack = format!(
        "ACK sip:bob@127.0.0.1:{u} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-ack-{call_id}\r\nRoute: {rr}\r\nFrom: <sip:alice@127.0.0.1>;tag=caller\r\nTo: <sip:{user}@127.0.0.1>;tag=callee\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        u = uas.port(),
        c = caller.port()
    );
    caller.send(proxy, ack.as_bytes());
    assert!(recv(uas).starts_with("ACK "));
}

/// Both sides get a BYE of the dialog; they answer 200.
fn both_get_bye(proxy: SocketAddr, caller: &UdpClient, uas: &UdpClient, call_id: &str) {
    for (peer, who) in [(uas, "callee"), (caller, "caller")] {
        let bye = recv(peer);
        assert!(bye.starts_with("BYE sip:"), "{who}: {bye}");
        assert_eq!(header(&bye, "Call-ID").as_deref(), Some(call_id), "{bye}");
        let mut ok = String::from("SIP/2.0 200 OK\r\n");
        for l in bye.split("\r\n") {
            if ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                .iter()
                .any(|h| l.starts_with(h))
            {
                ok.push_str(l);
                ok.push_str("\r\n");
            }
        }
        ok.push_str("Content-Length: 0\r\n\r\n");
        peer.send(proxy, ok.as_bytes());
    }
}

fn start(name: &str) -> (Server, UdpClient, std::path::PathBuf) {
    let uas = UdpClient::new();
    let dir = scratch(&format!("{name}-ctl"));
    let sock = dir.join("sable_ctl");
    let cfg = CFG.replace("CTL_PATH", &sock.to_string_lossy());
    let s = Server::start_with(name, &cfg, &[("UAS", uas.port())]);
    (s, uas, sock)
}

#[test]
fn terminate_dlg_sends_bye_to_both_sides() {
    let (s, uas, sock) = start("dlg-term");
    let caller = UdpClient::new();
    call(s.addr(), &caller, &uas, "bob", "dlg-term-1");
    let list = crate::control::ctl_json(&sock, &["rpc", "dlg.list"]);
    let d = &list[0];
    assert_eq!(d["call-id"], "dlg-term-1", "{list}");
    assert_eq!(d["state"], 4, "{list}");
    let (e, i) = (d["h_entry"].to_string(), d["h_id"].to_string());
    crate::control::ctl_json(
        &sock,
        &[
            "rpc",
            "dlg.terminate_dlg",
            &format!("i:{e}"),
            &format!("i:{i}"),
        ],
    );
    both_get_bye(s.addr(), &caller, &uas, "dlg-term-1");
    s.wait_log("dialog end dlg-term-1", Duration::from_secs(3));
    let list = crate::control::ctl_json(&sock, &["rpc", "dlg.list"]);
    assert_eq!(list[0]["state"], 5, "{list}");
    let st = crate::control::ctl_json(&sock, &["stats", "dialog:"]).to_string();
    assert!(st.contains("processed_dialogs"), "{st}");
}

#[test]
fn timeout_with_send_bye_ends_the_call() {
    let (s, uas, _sock) = start("dlg-timeout");
    let caller = UdpClient::new();
    call(s.addr(), &caller, &uas, "short", "dlg-short-1");
    // dlg_set_timeout("2"): both sides get a BYE about two seconds later.
    both_get_bye(s.addr(), &caller, &uas, "dlg-short-1");
    s.wait_log("dialog end dlg-short-1", Duration::from_secs(3));
}

#[test]
fn a_profile_limits_concurrent_calls() {
    let (s, uas, sock) = start("dlg-profile");
    let caller = UdpClient::new();
    call(s.addr(), &caller, &uas, "bob", "dlg-p-1");
    // A second call of the same caller: 486 from the script.
    let inv = format!(
        "INVITE sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-p2\r\nFrom: <sip:alice@127.0.0.1>;tag=c2\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: dlg-p-2\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{c}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        s.port,
        c = caller.port()
    );
    caller.send(s.addr(), inv.as_bytes());
    let r = recv(&caller);
    assert!(r.starts_with("SIP/2.0 486"), "{r}");
    let size = crate::control::ctl_json(&sock, &["rpc", "dlg.profile_get_size", "caller", "alice"]);
    assert_eq!(size["count"], 1, "{size}");
    // Hang up the first (the caller's BYE through the proxy), then a new call goes through.
    let list = crate::control::ctl_json(&sock, &["rpc", "dlg.list"]);
    let (e, i) = (list[0]["h_entry"].to_string(), list[0]["h_id"].to_string());
    crate::control::ctl_json(
        &sock,
        &["rpc", "dlg.end_dlg", &format!("i:{e}"), &format!("i:{i}")],
    );
    both_get_bye(s.addr(), &caller, &uas, "dlg-p-1");
    s.wait_log("dialog end dlg-p-1", Duration::from_secs(3));
    call(s.addr(), &caller, &uas, "bob", "dlg-p-3");
}

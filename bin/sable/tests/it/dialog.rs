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
loadmodule "kex.so"
loadmodule "dialog.so"
modparam("ctl", "binrpc", "unix:CTL_PATH")
modparam("dialog", "profiles_with_value", "caller")
modparam("dialog", "send_bye", 1)
modparam("dialog", "timeout_avp", "$avp(dlg_timeout)")
#PARAMS

request_route {
    if (has_totag()) {
        if (loose_route()) {
            if (is_method("INFO")) {
                if (dlg_get("$ci", "$ft", "$tt")) {
                    xlog("L_INFO", "got $dlg(callid) state $DLG_status\n");
                }
                dlg_set_property("timeout-noreset");
                dlg_set_timeout_by_profile("caller", "$fU", "1");
                sl_send_reply("200", "Timeout set");
                exit;
            }
            if (is_method("PUBLISH")) {
                # Hand the call over: the callee gives it away, the caller is referred.
                if (dlg_refer("callee", "sip:transfer@127.0.0.1")) {
                    sl_send_reply("200", "Referred");
                } else {
                    sl_send_reply("500", "No refer");
                }
                exit;
            }
            if (is_method("MESSAGE")) {
                # Hang the call up from the proxy.
                dlg_bye("all");
                sl_send_reply("200", "Hung up");
                exit;
            }
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
        if ($rU == "avp") {
            $avp(dlg_timeout) = 2;
        }
        dlg_manage();
        if ($rU == "ctx") {
            $dlg_ctx(timeout_route) = "TIMEOUT";
            $dlg_ctx(timeout) = 2;
        }
        set_dlg_profile("caller", "$fU");
        if ($rU == "ka") {
            dlg_set_property("ka-dst");
        }
        if ($rU == "short") {
            dlg_set_timeout("2");
        }
        record_route();
    }
    $du = "sip:127.0.0.1:UAS";
    t_relay();
}

route[TIMEOUT] {
    xlog("L_INFO", "timeout route $dlg(callid) on=$dlg_ctx(on)\n");
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

/// Sets up a call caller → proxy → callee up to the ACK; the proxy's Record-Route (with a
/// `did`) is kept in `LAST_RR`.
fn call(proxy: SocketAddr, caller: &UdpClient, uas: &UdpClient, user: &str, call_id: &str) {
    let rr = call_rr(proxy, caller, uas, user, call_id);
    assert!(rr.contains(";did="), "{rr}");
}

/// [`call`] without the check of the `did`; gives the Record-Route.
fn call_rr(
    proxy: SocketAddr,
    caller: &UdpClient,
    uas: &UdpClient,
    user: &str,
    call_id: &str,
) -> String {
    let inv = format!(
        "INVITE sip:{user}@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-{call_id}\r\nFrom: <sip:alice@127.0.0.1>;tag=caller\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{c}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        proxy.port(),
        c = caller.port()
    );
    caller.send(proxy, inv.as_bytes());
    let req = recv(uas);
    assert!(req.starts_with("INVITE"), "{req}");
    let rr = header(&req, "Record-Route").expect("Record-Route");
    LAST_RR.with(|r| *r.borrow_mut() = rr.clone());
    uas.send(proxy, answer(&req, "SIP/2.0 200 OK", uas).as_bytes());
    final_ok(caller);
    let ack = format!(
        "ACK sip:bob@127.0.0.1:{u} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-ack-{call_id}\r\nRoute: {rr}\r\nFrom: <sip:alice@127.0.0.1>;tag=caller\r\nTo: <sip:{user}@127.0.0.1>;tag=callee\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        u = uas.port(),
        c = caller.port()
    );
    caller.send(proxy, ack.as_bytes());
    assert!(recv(uas).starts_with("ACK "));
    rr
}

/// The caller's final reply after any provisional ones: a 200 (anything else fails the
/// test with its text; a 500 ahead of the 200 was a tm race once).
fn final_ok(caller: &UdpClient) -> String {
    loop {
        let r = recv(caller);
        if r.starts_with("SIP/2.0 1") {
            continue;
        }
        assert!(r.starts_with("SIP/2.0 200"), "{r}");
        return r;
    }
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
    start_params(name, "")
}

/// [`start`] with more module parameters (lines added after the others).
fn start_params(name: &str, params: &str) -> (Server, UdpClient, std::path::PathBuf) {
    let uas = UdpClient::new();
    let dir = scratch(&format!("{name}-ctl"));
    let sock = dir.join("sable_ctl");
    let cfg = CFG
        .replace("CTL_PATH", &sock.to_string_lossy())
        .replace("#PARAMS", params);
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

/// States of the listed dialogs and the dialog statistics, from a server's control socket
/// (`kamcmd` for Kamailio, sablectl for Sable).
fn snapshot(kamailio: bool, sock: &std::path::Path) -> (Vec<i64>, Vec<String>) {
    if kamailio {
        let run = |args: &[&str]| {
            let out = std::process::Command::new("kamcmd")
                .arg("-s")
                .arg(format!("unix:{}", sock.to_string_lossy()))
                .args(args)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let list = run(&["dlg.list"]);
        let mut states: Vec<i64> = list
            .lines()
            .filter_map(|l| l.trim().strip_prefix("state: "))
            .map(|v| v.trim().parse().unwrap())
            .collect();
        states.sort_unstable();
        let mut stats: Vec<String> = run(&["stats.get_statistics", "dialog:"])
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| l.starts_with("dialog:"))
            .collect();
        stats.sort();
        (states, stats)
    } else {
        let list = crate::control::ctl_json(sock, &["rpc", "dlg.list"]);
        let mut states: Vec<i64> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["state"].as_i64().unwrap())
            .collect();
        states.sort_unstable();
        let st = crate::control::ctl_json(sock, &["rpc", "stats.get_statistics", "dialog:"]);
        let mut stats: Vec<String> = st
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        stats.sort();
        (states, stats)
    }
}

/// An answered call, hung up by the caller; a rejected call. Snapshots after each step.
fn compare_flow(kamailio: bool) -> Vec<(Vec<i64>, Vec<String>)> {
    let uas = UdpClient::new();
    let name = if kamailio { "dlg-cmp-k" } else { "dlg-cmp-s" };
    let dir = scratch(&format!("{name}-ctl"));
    let sock = dir.join("ctl.sock");
    let _ = std::fs::remove_file(&sock);
    let port = free_port();
    let cfg = CFG
        .replace("CTL_PATH", &sock.to_string_lossy())
        .replace("UAS", &uas.port().to_string())
        .replace("PORT", &port.to_string());
    let path = dir.join("proxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let bin = if kamailio {
        "kamailio".to_owned()
    } else {
        sable_bin().to_owned()
    };
    let mut cmd = std::process::Command::new(bin);
    if kamailio {
        cmd.args(["-DD", "-E", "-m", "64", "-M", "8", "-f"]);
    } else {
        cmd.args(["-f"]);
    }
    let mut child = cmd
        .arg(&path)
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("proxy.log")).unwrap())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while (std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() || !sock.exists())
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    let caller = UdpClient::new();
    let mut out = Vec::new();
    call(proxy, &caller, &uas, "bob", "cmp-1");
    out.push(snapshot(kamailio, &sock));
    // The caller hangs up through the proxy.
    let bye = format!(
        "BYE sip:bob@127.0.0.1:{u} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-cmp-bye\r\nRoute: {rr}\r\nFrom: <sip:alice@127.0.0.1>;tag=caller\r\nTo: <sip:bob@127.0.0.1>;tag=callee\r\nCall-ID: cmp-1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        u = uas.port(),
        c = caller.port(),
        rr = LAST_RR.with(|r| r.borrow().clone()),
    );
    caller.send(proxy, bye.as_bytes());
    let got = recv(&uas);
    assert!(got.starts_with("BYE "), "{got}");
    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for l in got.split("\r\n") {
        if ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
            .iter()
            .any(|h| l.starts_with(h))
        {
            ok.push_str(l);
            ok.push_str("\r\n");
        }
    }
    ok.push_str("Content-Length: 0\r\n\r\n");
    uas.send(proxy, ok.as_bytes());
    assert!(recv(&caller).starts_with("SIP/2.0 200"));
    std::thread::sleep(Duration::from_millis(200));
    out.push(snapshot(kamailio, &sock));
    // A rejected call: 486 from the callee.
    let inv = format!(
        "INVITE sip:bob@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-cmp-rej\r\nFrom: <sip:carol@127.0.0.1>;tag=rej\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: cmp-2\r\nCSeq: 1 INVITE\r\nContact: <sip:carol@127.0.0.1:{c}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        c = caller.port()
    );
    caller.send(proxy, inv.as_bytes());
    let req = recv(&uas);
    assert!(req.starts_with("INVITE"), "{req}");
    uas.send(
        proxy,
        answer(&req, "SIP/2.0 486 Busy Here", &uas).as_bytes(),
    );
    assert!(recv(&uas).starts_with("ACK "));
    loop {
        if recv(&caller).starts_with("SIP/2.0 486") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    out.push(snapshot(kamailio, &sock));
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    out
}

thread_local! {
    /// The Record-Route of the last call set up (the caller's route set).
    static LAST_RR: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

#[test]
fn dialog_states_and_statistics_match_kamailio() {
    if !have_kamailio()
        || std::process::Command::new("kamcmd")
            .arg("-V")
            .output()
            .is_err()
    {
        eprintln!("note: kamailio/kamcmd missing: dialog comparison skipped");
        return;
    }
    let k = compare_flow(true);
    let s = compare_flow(false);
    assert_eq!(k[0].0, vec![4], "Kamailio: the answered call is confirmed");
    assert_eq!(
        s, k,
        "Sable (left) and Kamailio (right): dialog states and statistics"
    );
}

/// Answers a BYE with 200.
fn ok_to(peer: &UdpClient, proxy: SocketAddr, bye: &str) {
    reply_with(peer, proxy, bye, "SIP/2.0 200 OK");
}

/// Answers a request with a status line.
fn reply_with(peer: &UdpClient, proxy: SocketAddr, bye: &str, status: &str) {
    let mut ok = format!("{status}\r\n");
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

#[test]
fn dlg_bye_from_the_script_and_the_dialog_lists() {
    let (s, uas, sock) = start("dlg-bye");
    let caller = UdpClient::new();
    call(s.addr(), &caller, &uas, "bob", "dlg-bye-1");
    let mem = crate::control::ctl_json(&sock, &["rpc", "dlg.memory"]);
    assert_eq!(mem["dialogs"], 1, "{mem}");
    // The struct and its packed text at least.
    assert!(mem["bytes_per_dialog"].as_u64().unwrap() > 150, "{mem}");
    assert!(
        mem["dialog_bytes_per_dialog"].as_u64().unwrap() > 150,
        "{mem}"
    );
    let brief = crate::control::ctl_json(&sock, &["rpc", "dlg.briefing", "c"]);
    assert_eq!(brief[0]["call-id"], "dlg-bye-1", "{brief}");
    let one = crate::control::ctl_json(&sock, &["rpc", "dlg.dlg_list", "dlg-bye-1"]);
    assert_eq!(one.as_array().unwrap().len(), 1, "{one}");
    let none = crate::control::ctl_json(&sock, &["rpc", "dlg.dlg_list", "other"]);
    assert!(none.as_array().unwrap().is_empty(), "{none}");
    let msg = format!(
        "MESSAGE sip:bob@127.0.0.1:{u} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-hang\r\nRoute: {rr}\r\nFrom: <sip:alice@127.0.0.1>;tag=caller\r\nTo: <sip:bob@127.0.0.1>;tag=callee\r\nCall-ID: dlg-bye-1\r\nCSeq: 2 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        u = uas.port(),
        c = caller.port(),
        rr = LAST_RR.with(|r| r.borrow().clone()),
    );
    caller.send(s.addr(), msg.as_bytes());
    let bye = recv(&uas);
    assert!(bye.starts_with("BYE "), "{bye}");
    ok_to(&uas, s.addr(), &bye);
    // The caller gets the 200 to its MESSAGE and a BYE, in either order.
    let (mut hung_up, mut got_bye) = (false, false);
    for _ in 0..2 {
        let m = recv(&caller);
        if m.starts_with("SIP/2.0 200 Hung up") {
            hung_up = true;
        } else if m.starts_with("BYE ") {
            got_bye = true;
            ok_to(&caller, s.addr(), &m);
        }
    }
    assert!(hung_up && got_bye);
    s.wait_log("dialog end dlg-bye-1", Duration::from_secs(3));
}

#[test]
fn db_mode_restores_confirmed_dialogs_with_profiles_and_variables() {
    // kill -9: the confirmed dialog is in the database already (db_mode 1).
    restored_after_a_restart("dlg-db", r#"modparam("dialog", "db_mode", 1)"#, true);
}

/// db_mode 3 (Kamailio: written at shutdown only; Sable also writes every
/// db_update_period, here an hour away): a graceful stop writes the dialogs.
#[test]
fn db_mode_3_writes_the_dialogs_at_a_graceful_stop() {
    restored_after_a_restart(
        "dlg-db3",
        "modparam(\"dialog\", \"db_mode\", 3)\nmodparam(\"dialog\", \"db_update_period\", 3600)",
        false,
    );
}

/// A confirmed call, a restart of the server on the same port and database (kill -9 or
/// SIGTERM), and the dialog back with its profile, variable, route sets and CSeqs;
/// `db_params` are the dialog module's database parameters but db_url.
fn restored_after_a_restart(name: &str, db_params: &str, kill: bool) {
    let uas = UdpClient::new();
    let db = crate::control::new_db(name);
    let dir = db.parent().unwrap().to_path_buf();
    let sock = dir.join("ctl.sock");
    let cfg = CFG
        .replace("CTL_PATH", &sock.to_string_lossy())
        .replace(
            "modparam(\"dialog\", \"send_bye\", 1)",
            &format!(
                "modparam(\"dialog\", \"send_bye\", 1)\n{db_params}\nmodparam(\"dialog\", \"db_url\", \"sqlite://{}\")",
                db.to_string_lossy()
            ),
        )
        .replace(
            "        set_dlg_profile(\"caller\", \"$fU\");",
            "        set_dlg_profile(\"caller\", \"$fU\");\n        $dlg_var(account) = \"acct-42\";",
        );
    let mut s = Server::start_with(&format!("{name}-a"), &cfg, &[("UAS", uas.port())]);
    let caller = UdpClient::new();
    let call_id = format!("{name}-1");
    call(s.addr(), &caller, &uas, "bob", &call_id);
    if kill {
        let mut child = s.child.take().unwrap();
        let _ = std::process::Command::new("kill")
            .arg("-9")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
    } else {
        assert_eq!(s.stop().and_then(|st| st.code()), Some(0));
    }
    let _ = std::fs::remove_file(&sock);
    // The same port: the peers keep talking to it.
    let cfg2 = cfg.replace("PORT", &s.port.to_string());
    let s2 = Server::start_with(&format!("{name}-b"), &cfg2, &[("UAS", uas.port())]);
    let list = crate::control::ctl_json(&sock, &["rpc", "dlg.list"]);
    let d = &list[0];
    assert_eq!(d["call-id"], call_id.as_str(), "{list}");
    assert_eq!(d["state"], 4, "{list}");
    assert!(list.to_string().contains("acct-42"), "{list}");
    let size = crate::control::ctl_json(&sock, &["rpc", "dlg.profile_get_size", "caller", "alice"]);
    assert_eq!(size["count"], 1, "{size}");
    // Its route sets and CSeqs came back too: the BYEs reach both sides.
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
    // (The restarted server listens on the first one's port, which `cfg2` names.)
    both_get_bye(s.addr(), &caller, &uas, &call_id);
    s2.wait_log(&format!("dialog end {call_id}"), Duration::from_secs(3));
    drop(s);
}

#[test]
fn timeout_avp_sets_the_lifetime() {
    let (s, uas, _sock) = start("dlg-avp");
    let caller = UdpClient::new();
    call(s.addr(), &caller, &uas, "avp", "dlg-avp-1");
    // $avp(dlg_timeout) = 2: ended (BYE to both) about two seconds later.
    both_get_bye(s.addr(), &caller, &uas, "dlg-avp-1");
    s.wait_log("dialog end dlg-avp-1", Duration::from_secs(3));
}

/// A BYE from the caller with the given Route; the callee answers it if it gets it.
fn bye_with_route(s: &Server, caller: &UdpClient, uas: &UdpClient, call_id: &str, route: &str) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let bye = format!(
        "BYE sip:bob@127.0.0.1:{u} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-bye{n}-{call_id}\r\nRoute: {route}\r\nFrom: <sip:alice@127.0.0.1>;tag=caller\r\nTo: <sip:bob@127.0.0.1>;tag=callee\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        u = uas.port(),
        c = caller.port(),
    );
    caller.send(s.addr(), bye.as_bytes());
    let got = recv(uas);
    assert!(got.starts_with("BYE "), "{got}");
    ok_to(uas, s.addr(), &got);
}

fn dialog_states(sock: &std::path::Path) -> Vec<i64> {
    let list = crate::control::ctl_json(sock, &["rpc", "dlg.list"]);
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_i64().unwrap())
        .collect()
}

#[test]
fn match_mode_1_finds_a_request_without_did_by_call_id_and_tags() {
    let (s, uas, _sock) = start_params("dlg-tags", r#"modparam("dialog", "dlg_match_mode", 1)"#);
    let caller = UdpClient::new();
    call(s.addr(), &caller, &uas, "bob", "dlg-tags-1");
    // Our Route without its did: the dialog is found by Call-ID and tags.
    let route = format!("<sip:127.0.0.1:{};lr>", s.port);
    bye_with_route(&s, &caller, &uas, "dlg-tags-1", &route);
    s.wait_log("dialog end dlg-tags-1", Duration::from_secs(3));
}

#[test]
fn match_mode_0_needs_the_did() {
    // The default (Kamailio's DID_ONLY): a BYE whose Route lost the did is relayed, but it
    // is not matched to the dialog, which stays up.
    let (s, uas, sock) = start("dlg-mode0");
    let caller = UdpClient::new();
    call(s.addr(), &caller, &uas, "bob", "dlg-mode0-1");
    let route = format!("<sip:127.0.0.1:{};lr>", s.port);
    bye_with_route(&s, &caller, &uas, "dlg-mode0-1", &route);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(dialog_states(&sock), vec![4]);
    assert!(!s.log_text().contains("dialog end dlg-mode0-1"));
    // With its did, the BYE ends it.
    let rr = LAST_RR.with(|r| r.borrow().clone());
    bye_with_route(&s, &caller, &uas, "dlg-mode0-1", &rr);
    s.wait_log("dialog end dlg-mode0-1", Duration::from_secs(3));
    assert_eq!(dialog_states(&sock), vec![5]);
}

#[test]
fn match_mode_2_puts_no_did_in_the_record_route_and_matches_by_tags() {
    let (s, uas, sock) = start_params("dlg-mode2", r#"modparam("dialog", "dlg_match_mode", 2)"#);
    let caller = UdpClient::new();
    let rr = call_rr(s.addr(), &caller, &uas, "bob", "dlg-mode2-1");
    assert!(!rr.contains("did="), "{rr}");
    assert_eq!(dialog_states(&sock), vec![4]);
    bye_with_route(&s, &caller, &uas, "dlg-mode2-1", &rr);
    s.wait_log("dialog end dlg-mode2-1", Duration::from_secs(3));
    assert_eq!(dialog_states(&sock), vec![5]);
}

const SPIRAL_CFG: &str = r#"
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
loadmodule "kex.so"
loadmodule "dialog.so"
modparam("ctl", "binrpc", "unix:CTL_PATH")
modparam("dialog", "detect_spirals", SPIRALS)

request_route {
    if (has_totag()) {
        if (loose_route()) {
            t_relay();
        }
        exit;
    }
    if (is_method("INVITE")) {
        dlg_manage();
        xlog("L_INFO", "pass $rU dialog $dlg(h_entry):$dlg(h_id) count $DLG_count\n");
        if ($rU == "spiral") {
            # Out to another proxy (REFL), which sends the INVITE back here: a spiral.
            record_route();
            $rU = "bob";
            $du = "sip:127.0.0.1:REFL";
            t_relay();
            exit;
        }
    }
    $du = "sip:127.0.0.1:UAS";
    t_relay();
}

event_route[dialog:start] {
    xlog("L_INFO", "dialog start $dlg(callid)\n");
}

event_route[dialog:end] {
    xlog("L_INFO", "dialog end $dlg(callid)\n");
}
"#;

/// The call of the spiral tests: INVITE to `spiral`, which the script relays to itself
/// once; the callee answers; the caller ACKs. Gives the server and the listed states.
fn spiral_call(name: &str, spirals: u8) -> (Server, UdpClient, UdpClient, std::path::PathBuf) {
    let uas = UdpClient::new();
    let dir = scratch(&format!("{name}-ctl"));
    let sock = dir.join("sable_ctl");
    let cfg = SPIRAL_CFG
        .replace("CTL_PATH", &sock.to_string_lossy())
        .replace("SPIRALS", &spirals.to_string());
    // The other proxy: adds its Via to the INVITE and sends it back; takes its Via off
    // the final reply and sends that back too.
    let refl = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let refl_port = refl.local_addr().unwrap().port();
    let s = Server::start_with(name, &cfg, &[("UAS", uas.port()), ("REFL", refl_port)]);
    let proxy = s.addr();
    std::thread::spawn(move || {
        refl.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = vec![0u8; 65536];
        while let Ok((n, _)) = refl.recv_from(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let out = if m.starts_with("INVITE ") {
                let (line, rest) = m.split_once("\r\n").unwrap();
                format!(
                    "{line}\r\nVia: SIP/2.0/UDP 127.0.0.1:{refl_port};branch=z9hG4bK-refl\r\n{rest}"
                )
            } else if m.starts_with("SIP/2.0 1") {
                continue;
            } else if m.starts_with("SIP/2.0 ") {
                let (line, rest) = m.split_once("\r\n").unwrap();
                let (_, rest) = rest.split_once("\r\n").unwrap();
                format!("{line}\r\n{rest}")
            } else {
                continue;
            };
            refl.send_to(out.as_bytes(), proxy).unwrap();
            if out.starts_with("SIP/2.0 2") {
                break;
            }
        }
    });
    let caller = UdpClient::new();
    let inv = format!(
        "INVITE sip:spiral@127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-{name}\r\nFrom: <sip:alice@127.0.0.1>;tag=caller\r\nTo: <sip:spiral@127.0.0.1>\r\nCall-ID: {name}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{c}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        p = s.port,
        c = caller.port()
    );
    caller.send(s.addr(), inv.as_bytes());
    let req = recv(&uas);
    assert!(req.starts_with("INVITE sip:bob@"), "{req}");
    uas.send(s.addr(), answer(&req, "SIP/2.0 200 OK", &uas).as_bytes());
    let ok = final_ok(&caller);
    // The caller's route set: the Record-Route values of the 2xx, reversed.
    let mut rrs: Vec<String> = ok
        .split("\r\n")
        .filter_map(|l| l.strip_prefix("Record-Route: "))
        .flat_map(|v| v.split(", ").map(str::to_owned).collect::<Vec<_>>())
        .collect();
    rrs.reverse();
    let route = rrs.join(", ");
    let ack = format!(
        "ACK sip:bob@127.0.0.1:{u} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-ack-{name}\r\nRoute: {route}\r\nFrom: <sip:alice@127.0.0.1>;tag=caller\r\nTo: <sip:spiral@127.0.0.1>;tag=callee\r\nCall-ID: {name}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        u = uas.port(),
        c = caller.port()
    );
    caller.send(s.addr(), ack.as_bytes());
    assert!(recv(&uas).starts_with("ACK "));
    LAST_RR.with(|r| *r.borrow_mut() = route);
    (s, caller, uas, sock)
}

#[test]
fn a_spiraled_invite_is_the_same_dialog() {
    let (s, caller, uas, sock) = spiral_call("dlg-spiral", 1);
    // The event route's line may reach the log after the ACK reached the callee.
    s.wait_log("dialog start dlg-spiral", Duration::from_secs(3));
    // Both passes saw the one dialog.
    let log = s.log_text();
    let ids: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("pass ").nth(1))
        .collect();
    assert_eq!(ids.len(), 2, "{log}");
    let dialog = |l: &str| {
        l.split(" count")
            .next()
            .unwrap()
            .split("dialog ")
            .nth(1)
            .unwrap()
            .to_owned()
    };
    assert_eq!(dialog(ids[0]), dialog(ids[1]), "{log}");
    assert!(ids[1].ends_with("count 1"), "{log}");
    assert_eq!(dialog_states(&sock), vec![4]);
    assert_eq!(log.matches("dialog start dlg-spiral").count(), 1, "{log}");
    let route = LAST_RR.with(|r| r.borrow().clone());
    bye_with_route(&s, &caller, &uas, "dlg-spiral", &route);
    s.wait_log("dialog end dlg-spiral", Duration::from_secs(3));
    assert_eq!(dialog_states(&sock), vec![5]);
}

#[test]
fn without_spiral_detection_a_spiral_makes_a_second_dialog() {
    let (_s, _caller, _uas, sock) = spiral_call("dlg-nospiral", 0);
    // Kamailio's documented effect of detect_spirals=0: one dialog per pass.
    assert_eq!(dialog_states(&sock).len(), 2);
}

#[test]
fn dlg_ctx_timeout_route_runs_and_profile_list_shows_the_call() {
    let (s, uas, sock) = start("dlg-ctx");
    let caller = UdpClient::new();
    call(s.addr(), &caller, &uas, "ctx", "dlg-ctx-1");
    let list = crate::control::ctl_json(&sock, &["rpc", "dlg.profile_list", "caller", "alice"]);
    assert_eq!(list[0]["call-id"], "dlg-ctx-1", "{list}");
    let none = crate::control::ctl_json(&sock, &["rpc", "dlg.profile_list", "caller", "zed"]);
    assert!(none.as_array().unwrap().is_empty(), "{none}");
    // $dlg_ctx(timeout) = 2 with a timeout route: the route runs, then the BYEs.
    s.wait_log("timeout route dlg-ctx-1 on=1", Duration::from_secs(4));
    both_get_bye(s.addr(), &caller, &uas, "dlg-ctx-1");
    s.wait_log("dialog end dlg-ctx-1", Duration::from_secs(3));
}

#[test]
fn dlg_get_and_timeout_by_profile() {
    let (s, uas, _sock) = start("dlg-info");
    let caller = UdpClient::new();
    call(s.addr(), &caller, &uas, "bob", "dlg-info-1");
    let info = format!(
        "INFO sip:bob@127.0.0.1:{u} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-info\r\nRoute: {rr}\r\nFrom: <sip:alice@127.0.0.1>;tag=caller\r\nTo: <sip:bob@127.0.0.1>;tag=callee\r\nCall-ID: dlg-info-1\r\nCSeq: 2 INFO\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        u = uas.port(),
        c = caller.port(),
        rr = LAST_RR.with(|r| r.borrow().clone()),
    );
    caller.send(s.addr(), info.as_bytes());
    let r = recv(&caller);
    assert!(r.starts_with("SIP/2.0 200 Timeout set"), "{r}");
    s.wait_log("got dlg-info-1 state 4", Duration::from_secs(2));
    // Every dialog of alice now ends within about a second (send_bye).
    both_get_bye(s.addr(), &caller, &uas, "dlg-info-1");
    s.wait_log("dialog end dlg-info-1", Duration::from_secs(3));
}

#[test]
fn keepalives_probe_the_callee_and_failures_shorten_the_lifetime() {
    let (s, uas, sock) = start_params(
        "dlg-ka",
        r#"modparam("dialog", "ka_timer", 1)
modparam("dialog", "ka_interval", 1)
modparam("dialog", "ka_failed_limit", 1)"#,
    );
    let caller = UdpClient::new();
    call(s.addr(), &caller, &uas, "ka", "dlg-ka-1");
    let list = crate::control::ctl_json(&sock, &["rpc", "dlg.list"]);
    assert_eq!(list[0]["iflags"].as_u64().unwrap() & 4, 4, "ka-dst: {list}");
    // An in-dialog OPTIONS to the callee, as the caller would send it.
    let opt = recv(&uas);
    assert!(
        opt.starts_with(&format!("OPTIONS sip:bob@127.0.0.1:{} SIP/2.0", uas.port())),
        "{opt}"
    );
    assert_eq!(header(&opt, "CSeq").as_deref(), Some("2 OPTIONS"), "{opt}");
    assert!(
        header(&opt, "From").unwrap().ends_with(";tag=caller"),
        "{opt}"
    );
    assert!(
        header(&opt, "To").unwrap().ends_with(";tag=callee"),
        "{opt}"
    );
    reply_with(&uas, s.addr(), &opt, "SIP/2.0 200 OK");
    // The caller is not probed (no ka-src); the next probe of the callee gets a 481.
    let opt = recv(&uas);
    assert!(opt.starts_with("OPTIONS "), "{opt}");
    reply_with(&uas, s.addr(), &opt, "SIP/2.0 481 Call Does Not Exist");
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let list = crate::control::ctl_json(&sock, &["rpc", "dlg.list"]);
        if list[0]["lifetime"] == 10 {
            assert_eq!(list[0]["state"], 4, "{list}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "lifetime not 10: {list}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(caller.recv_within(Duration::from_millis(200)).is_none());
}

#[test]
fn event_callback_is_refused_without_kemi() {
    let cfg = CFG
        .replace("CTL_PATH", "/tmp/unused-dlg-evcb")
        .replace(
            "#PARAMS",
            r#"modparam("dialog", "event_callback", "ksr_dialog_event")"#,
        )
        .replace("PORT", "5999")
        .replace("UAS", "5998");
    let dir = scratch("dlg-evcb");
    let path = dir.join("sable.cfg");
    std::fs::write(&path, cfg).unwrap();
    let out = std::process::Command::new(sable_bin())
        .args(["-c", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("event_callback") && err.contains("KEMI"),
        "{err}"
    );
}

/// dlg_refer("callee", uri): the caller gets a REFER inside the dialog (as from the callee:
/// its tags, the CSeq after the callee's), then, once it answered, a BYE (the next CSeq).
#[test]
fn dlg_refer_sends_refer_then_bye() {
    let (s, uas, _sock) = start("dlg-refer");
    let caller = UdpClient::new();
    call(s.addr(), &caller, &uas, "bob", "dlg-refer-1");
    let publish = format!(
        "PUBLISH sip:bob@127.0.0.1:{u} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{c};branch=z9hG4bK-refer\r\nRoute: {rr}\r\nFrom: <sip:alice@127.0.0.1>;tag=caller\r\nTo: <sip:bob@127.0.0.1>;tag=callee\r\nCall-ID: dlg-refer-1\r\nCSeq: 2 PUBLISH\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        u = uas.port(),
        c = caller.port(),
        rr = LAST_RR.with(|r| r.borrow().clone()),
    );
    caller.send(s.addr(), publish.as_bytes());
    let (mut replied, mut refer) = (false, None);
    while !(replied && refer.is_some()) {
        let m = recv(&caller);
        if m.starts_with("SIP/2.0 200 Referred") {
            replied = true;
        } else if m.starts_with("REFER ") {
            refer = Some(m);
        } else {
            panic!("unexpected: {m}");
        }
    }
    let refer = refer.unwrap();
    assert!(
        refer.starts_with(&format!("REFER sip:alice@127.0.0.1:{} ", caller.port())),
        "{refer}"
    );
    assert_eq!(
        header(&refer, "Refer-To").as_deref(),
        Some("sip:transfer@127.0.0.1")
    );
    assert_eq!(
        header(&refer, "Referred-By").as_deref(),
        Some("sip:controller@kamailio.org")
    );
    assert_eq!(
        header(&refer, "Contact").as_deref(),
        Some("<sip:controller@kamailio.org:5064>")
    );
    assert!(
        header(&refer, "From").unwrap().ends_with(";tag=callee"),
        "{refer}"
    );
    assert!(
        header(&refer, "To").unwrap().ends_with(";tag=caller"),
        "{refer}"
    );
    let cseq = header(&refer, "CSeq").unwrap();
    let n: u32 = cseq.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(cseq, format!("{n} REFER"));
    reply_with(&caller, s.addr(), &refer, "SIP/2.0 202 Accepted");
    let bye = recv(&caller);
    assert!(bye.starts_with("BYE "), "{bye}");
    assert_eq!(header(&bye, "CSeq"), Some(format!("{} BYE", n + 1)));
    ok_to(&caller, s.addr(), &bye);
    // The callee hears nothing of it.
    assert!(uas.recv_within(Duration::from_millis(300)).is_none());
}

/// `dlg.terminate_dlg callid from_tag to_tag` (Kamailio's parameters) ends a live call.
#[test]
fn terminate_dlg_by_call_id_and_tags() {
    let (s, uas, sock) = start("dlg-term-tags");
    let caller = UdpClient::new();
    call(s.addr(), &caller, &uas, "bob", "dlg-term-tags-1");
    let (code, _, err) = crate::control::ctl(
        &sock,
        &[
            "rpc",
            "dlg.terminate_dlg",
            "no-such-call",
            "caller",
            "callee",
        ],
    );
    assert!(code != 0 && err.contains("404"), "{err}");
    crate::control::ctl_json(
        &sock,
        &[
            "rpc",
            "dlg.terminate_dlg",
            "dlg-term-tags-1",
            "caller",
            "callee",
        ],
    );
    both_get_bye(s.addr(), &caller, &uas, "dlg-term-tags-1");
    s.wait_log("dialog end dlg-term-tags-1", Duration::from_secs(3));
}

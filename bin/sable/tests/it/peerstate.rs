//! peerstate driven by real SIP: SIPp agents register, call, answer, reject, cancel, hang
//! up, unregister and let their registrations expire; after each step `peerstate.get_peer`
//! and the event route's log lines (the seed's example) show the expected states.

use crate::control::ctl_json;
use crate::harness::*;
use crate::tm::{sipp_dir, spawn_sipp_file, wait_bound, Reaper};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "dialog.so"
loadmodule "peerstate.so"
modparam("ctl", "binrpc", "unix:CTL_PATH")
modparam("usrloc", "use_domain", 1)
modparam("usrloc", "timer_interval", 1)
modparam("registrar", "min_expires", 1)
EXTRA

request_route {
    if (is_method("REGISTER")) {
        # Peers named by the script (used where the tests set use_avps).
        $avp(reg_peer) = "agent-" + $tU + "@callcenter";
        save("location");
        exit;
    }
    if (has_totag()) {
        if (loose_route()) {
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
    if (is_method("INVITE")) {
        # Flags 10 and 11 mute the caller and the callee where the tests configure
        # disable_caller_notify_flag / disable_callee_notify_flag.
        setflag(10);
        setflag(11);
        $avp(caller_peer) = "agent-" + $fU + "@callcenter";
        $avp(callee_peer) = "agent-" + $rU + "@callcenter";
        $avp(callee_peer) = "supervisor@callcenter";
        dlg_manage();
        record_route();
    }
    if (!lookup("location")) {
        sl_send_reply("404", "Not Found");
        exit;
    }
    t_relay();
}

event_route[peerstate:state_changed] {
    xlog("L_INFO", "Peer $avp(ps_peer): $avp(ps_prev_state) -> $avp(ps_state)");
    xlog("L_INFO", " id=$avp(ps_uniq_id) second=$(avp(ps_peer)[1])\n");

    if ($avp(ps_state) == "INUSE") {
        xlog("L_INFO", "busy $avp(ps_peer)\n");
    }
}
"#;

struct Rig {
    server: Server,
    sock: PathBuf,
    dir: PathBuf,
    cfg: String,
    name: String,
}

impl Rig {
    fn start(name: &str, extra: &str) -> Rig {
        let dir = scratch(&format!("{name}-sipp"));
        let sock = scratch(&format!("{name}-ctl")).join("sable_ctl");
        let cfg = CFG
            .replace("CTL_PATH", &sock.to_string_lossy())
            .replace("EXTRA", extra);
        let server = Server::start(name, &cfg);
        Rig {
            server,
            sock,
            dir,
            cfg,
            name: name.to_owned(),
        }
    }

    /// kill -9, then the same config on the same port.
    fn restart(&mut self) {
        let mut child = self.server.child.take().unwrap();
        let _ = std::process::Command::new("kill")
            .arg("-9")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
        let _ = std::fs::remove_file(&self.sock);
        let cfg = self.cfg.replace("PORT", &self.port().to_string());
        self.server = Server::start(&format!("{}-again", self.name), &cfg);
    }

    fn port(&self) -> u16 {
        self.server.addr().port()
    }

    fn rpc(&self, args: &[&str]) -> Value {
        let mut a = vec!["rpc"];
        a.extend_from_slice(args);
        ctl_json(&self.sock, &a)
    }

    /// `peerstate.get_peer`: (state, call_count, registered).
    fn peer(&self, peer: &str) -> (String, i64, String) {
        let v = self.rpc(&["peerstate.get_peer", peer]);
        (
            v["state"].as_str().unwrap_or("?").to_owned(),
            v["call_count"].as_i64().unwrap_or(-1),
            v["registered"].as_str().unwrap_or("?").to_owned(),
        )
    }

    /// Waits (bounded) until the peer is as wanted.
    fn wait_peer(&self, peer: &str, want: (&str, i64, &str)) {
        let start = Instant::now();
        loop {
            let got = self.peer(peer);
            if (got.0.as_str(), got.1, got.2.as_str()) == want {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{peer}: {got:?}, expected {want:?}\n{}",
                self.server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The event route's transitions of one peer, in order (`prev -> new`).
    fn transitions(&self, peer: &str) -> Vec<String> {
        let prefix = format!("Peer {peer}: ");
        self.server
            .log_text()
            .lines()
            .filter_map(|l| {
                let at = l.find(&prefix)?;
                let rest = &l[at + prefix.len()..];
                Some(rest.split(" id=").next().unwrap_or(rest).trim().to_owned())
            })
            .collect()
    }

    fn wait_transitions(&self, peer: &str, want: &[&str]) {
        let start = Instant::now();
        while self.transitions(peer) != want && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(self.transitions(peer), want, "{}", self.server.log_text());
    }

    /// A REGISTER of `user` with its calls going to `contact_port`.
    fn register(&self, user: &str, contact_port: u16, expires: u32) {
        let xml = ps_dir().join("reg.xml");
        let port = free_port().to_string();
        let contact = contact_port.to_string();
        let exp = expires.to_string();
        let name = format!("reg-{user}-{exp}-{port}");
        let mut r = spawn_sipp_file(
            &self.dir,
            &name,
            &xml,
            port.parse().unwrap(),
            Some(self.port()),
            &[
                "-s",
                user,
                "-key",
                "contact_port",
                &contact,
                "-key",
                "expires",
                &exp,
            ],
        );
        assert_eq!(
            r.wait(Duration::from_secs(15)),
            Some(0),
            "REGISTER of {user} failed: {}",
            read(&self.dir.join(format!("{name}.err")))
        );
    }

    /// A SIPp callee on `port` running a tm scenario for `calls` calls.
    fn callee(&self, xml: &str, port: u16, calls: u32) -> Reaper {
        let name = format!("uas-{xml}-{port}-{}", free_port());
        let m = calls.to_string();
        let mut r = spawn_sipp_file(
            &self.dir,
            &name,
            &sipp_dir().join(xml),
            port,
            None,
            &["-m", &m],
        );
        wait_bound(
            port,
            &mut r,
            "SIPp UAS",
            &self.dir.join(format!("{name}.stderr")),
        );
        r
    }

    /// A SIPp caller (user `sipp`) running a tm scenario (to user `service`), the call `ms`
    /// long.
    fn caller(&self, xml: &str, ms: u32) -> (Reaper, String) {
        let port = free_port();
        let name = format!("uac-{xml}-{port}");
        let d = ms.to_string();
        let r = spawn_sipp_file(
            &self.dir,
            &name,
            &sipp_dir().join(xml),
            port,
            Some(self.port()),
            &["-d", &d],
        );
        (r, name)
    }

    fn call(&self, uac: &str, uas: &str, uas_port: u16, ms: u32) {
        let mut callee = self.callee(uas, uas_port, 1);
        let (mut caller, name) = self.caller(uac, ms);
        assert_eq!(
            caller.wait(Duration::from_secs(20)),
            Some(0),
            "{uac}: {}\n{}",
            read(&self.dir.join(format!("{name}.err"))),
            self.server.log_text()
        );
        assert_eq!(callee.wait(Duration::from_secs(10)), Some(0), "{uas}");
    }
}

fn ps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sipp/peerstate")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

const B: &str = "service@127.0.0.1";
const A: &str = "sipp@127.0.0.1";

#[test]
fn peer_states_follow_registrations_and_calls() {
    if !have_sipp() {
        eprintln!("sipp not installed: skipped");
        return;
    }
    let rig = Rig::start(
        "ps-flow",
        "listen=tcp:127.0.0.1:PORT\ntcp_accept_no_cl=yes\nloadmodule \"xhttp.so\"\n\
         loadmodule \"xhttp_prom.so\"\n\
         modparam(\"xhttp_prom\", \"xhttp_prom_stats\", \"peerstate:\")\n\
         event_route[xhttp:request] { prom_dispatch(); }",
    );
    let b_port = free_port();
    let a_port = free_port();

    // Registrations: UNAVAILABLE -> NOT_INUSE for each agent.
    rig.register("service", b_port, 3600);
    rig.register("sipp", a_port, 3600);
    rig.wait_peer(B, ("NOT_INUSE", 0, "yes"));
    rig.wait_peer(A, ("NOT_INUSE", 0, "yes"));
    rig.wait_transitions(B, &["UNAVAILABLE -> NOT_INUSE"]);
    // A refresh is no change.
    rig.register("service", b_port, 3600);
    rig.wait_transitions(B, &["UNAVAILABLE -> NOT_INUSE"]);

    // Answered (180 then 200), hung up.
    rig.call("uac_call.xml", "uas_answer.xml", b_port, 200);
    let mut b_want = vec![
        "UNAVAILABLE -> NOT_INUSE",
        "NOT_INUSE -> RINGING",
        "RINGING -> INUSE",
        "INUSE -> NOT_INUSE",
    ];
    rig.wait_transitions(B, &b_want);
    rig.wait_transitions(A, &b_want);
    rig.wait_peer(B, ("NOT_INUSE", 0, "yes"));

    // Rejected without ringing: no change at all.
    rig.call("uac_486.xml", "uas_486.xml", b_port, 0);
    rig.wait_peer(B, ("NOT_INUSE", 0, "yes"));
    rig.wait_peer(A, ("NOT_INUSE", 0, "yes"));
    assert_eq!(rig.transitions(B), b_want);

    // Ringing, then cancelled.
    rig.call("uac_cancel.xml", "uas_ring_cancel.xml", b_port, 0);
    b_want.extend(["NOT_INUSE -> RINGING", "RINGING -> NOT_INUSE"]);
    rig.wait_transitions(B, &b_want);
    rig.wait_peer(B, ("NOT_INUSE", 0, "yes"));

    // In a call, B unregisters: stays INUSE, becomes UNAVAILABLE when the call ends.
    let mut callee = rig.callee("uas_answer.xml", b_port, 1);
    let (mut caller, _) = rig.caller("uac_call.xml", 3000);
    rig.wait_peer(B, ("INUSE", 1, "yes"));
    rig.register("service", b_port, 0);
    rig.wait_peer(B, ("INUSE", 1, "no"));
    assert_eq!(caller.wait(Duration::from_secs(20)), Some(0));
    assert_eq!(callee.wait(Duration::from_secs(10)), Some(0));
    b_want.extend([
        "NOT_INUSE -> RINGING",
        "RINGING -> INUSE",
        "INUSE -> UNAVAILABLE",
    ]);
    rig.wait_transitions(B, &b_want);
    rig.wait_peer(B, ("UNAVAILABLE", 0, "no"));

    // Two calls at once: count 2, INUSE until both ended.
    rig.register("service", b_port, 3600);
    b_want.push("UNAVAILABLE -> NOT_INUSE");
    let mut callee = rig.callee("uas_answer.xml", b_port, 2);
    let (mut first, _) = rig.caller("uac_call.xml", 2000);
    rig.wait_peer(B, ("INUSE", 1, "yes"));
    let (mut second, _) = rig.caller("uac_call.xml", 4000);
    rig.wait_peer(B, ("INUSE", 2, "yes"));
    assert_eq!(first.wait(Duration::from_secs(20)), Some(0));
    rig.wait_peer(B, ("INUSE", 1, "yes"));
    assert_eq!(second.wait(Duration::from_secs(20)), Some(0));
    assert_eq!(callee.wait(Duration::from_secs(10)), Some(0));
    rig.wait_peer(B, ("NOT_INUSE", 0, "yes"));
    b_want.extend([
        "NOT_INUSE -> RINGING",
        "RINGING -> INUSE",
        "INUSE -> NOT_INUSE",
    ]);
    rig.wait_transitions(B, &b_want);

    // The registration expires (usrloc's timer): UNAVAILABLE.
    rig.register("service", b_port, 1);
    rig.wait_peer(B, ("UNAVAILABLE", 0, "no"));
    b_want.push("NOT_INUSE -> UNAVAILABLE");
    rig.wait_transitions(B, &b_want);

    // Each run of the event route has its own four AVPs (nothing left from an earlier run),
    // and the id is the Call-ID or the binding's ruid.
    let log = rig.server.log_text();
    assert!(log.matches("second=").count() > 10, "{log}");
    assert_eq!(
        log.matches("second=").count(),
        log.matches("second=<null>").count(),
        "{log}"
    );
    assert!(log.contains(" id=uloc-"), "{log}");
    assert!(log.contains("busy service@127.0.0.1"), "{log}");

    // The RPC results.
    assert_eq!(
        rig.rpc(&["peerstate.stats"]),
        json!({"total_peers": 2, "incall_peers": 0, "registered_peers": 1})
    );
    assert_eq!(
        rig.rpc(&["peerstate.list", "not_inuse"]),
        json!({"count": 1, "state": "NOT_INUSE", "Peer": [
            {"name": A, "state": "NOT_INUSE", "call_count": 0, "registered": "yes"}]})
    );
    let dump = rig.rpc(&["peerstate.dump"]);
    assert_eq!(dump["count"], 2, "{dump}");
    assert_eq!(dump["Peer"][0]["name"], B, "{dump}");
    assert_eq!(dump["Peer"][0]["state"], "UNAVAILABLE", "{dump}");
    let (code, _, err) = crate::control::ctl(&rig.sock, &["rpc", "peerstate.get_peer", "nobody@x"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("404") && err.contains("Peer not found"),
        "{err}"
    );
    let (code, _, err) = crate::control::ctl(&rig.sock, &["rpc", "peerstate.list", "busy"]);
    assert_ne!(code, 0);
    assert!(err.contains("400"), "{err}");
    // Statistics, on the Prometheus endpoint too: peers per state.
    let st = ctl_json(&rig.sock, &["stats", "peerstate:"]).to_string();
    assert!(
        st.contains("unavailable_peers") && st.contains("not_inuse_peers"),
        "{st}"
    );
    let (code, body) = crate::control::http(rig.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(code, 200, "{body}");
    for line in [
        "kamailio_peerstate_not_inuse_peers 1",
        "kamailio_peerstate_unavailable_peers 1",
        "kamailio_peerstate_inuse_peers 0",
        "kamailio_peerstate_ringing_peers 0",
        "kamailio_peerstate_total_peers 2",
    ] {
        assert!(body.lines().any(|l| l == line), "{line} in:\n{body}");
    }
}

/// The notify flags suppress exactly the notifications they name; the cache still tracks
/// the truth. disable_reg_notify and disable_dlg_notify turn whole event sources off.
#[test]
fn notify_flags_and_disabled_sources() {
    if !have_sipp() {
        eprintln!("sipp not installed: skipped");
        return;
    }
    let full = [
        "UNAVAILABLE -> NOT_INUSE",
        "NOT_INUSE -> RINGING",
        "RINGING -> INUSE",
        "INUSE -> NOT_INUSE",
    ];
    for (flag, muted, heard) in [
        ("disable_callee_notify_flag\", 11", B, A),
        ("disable_caller_notify_flag\", 10", A, B),
    ] {
        let rig = Rig::start("ps-flags", &format!("modparam(\"peerstate\", \"{flag})"));
        let (b_port, a_port) = (free_port(), free_port());
        rig.register("service", b_port, 3600);
        rig.register("sipp", a_port, 3600);
        rig.call("uac_call.xml", "uas_answer.xml", b_port, 200);
        rig.wait_transitions(heard, &full);
        rig.wait_peer(muted, ("NOT_INUSE", 0, "yes"));
        // Registration notifications are not muted by a message flag.
        assert_eq!(
            rig.transitions(muted),
            ["UNAVAILABLE -> NOT_INUSE"],
            "{flag}"
        );
    }

    // enable_notify_on_trying: the INVITE itself rings the peers, so a call rejected
    // without any 1xx shows RINGING and back.
    let rig = Rig::start(
        "ps-trying",
        "modparam(\"peerstate\", \"enable_notify_on_trying\", 1)",
    );
    let b_port = free_port();
    rig.register("service", b_port, 3600);
    rig.call("uac_486.xml", "uas_486.xml", b_port, 0);
    rig.wait_transitions(
        B,
        &[
            "UNAVAILABLE -> NOT_INUSE",
            "NOT_INUSE -> RINGING",
            "RINGING -> NOT_INUSE",
        ],
    );
    rig.wait_peer(B, ("NOT_INUSE", 0, "yes"));

    // No registration events: a REGISTER leaves no peer; calls still make them.
    let rig = Rig::start(
        "ps-noreg",
        "modparam(\"peerstate\", \"disable_reg_notify\", 1)",
    );
    let b_port = free_port();
    rig.register("service", b_port, 3600);
    let (code, _, err) = crate::control::ctl(&rig.sock, &["rpc", "peerstate.get_peer", B]);
    assert!(code != 0 && err.contains("404"), "{err}");
    rig.call("uac_call.xml", "uas_answer.xml", b_port, 200);
    // Not registered as far as peerstate knows: the call ends in UNAVAILABLE.
    rig.wait_peer(B, ("UNAVAILABLE", 0, "no"));

    // No dialog events: calls change nothing, registrations do.
    let rig = Rig::start(
        "ps-nodlg",
        "modparam(\"peerstate\", \"disable_dlg_notify\", 1)",
    );
    let b_port = free_port();
    rig.register("service", b_port, 3600);
    rig.call("uac_call.xml", "uas_answer.xml", b_port, 200);
    rig.wait_peer(B, ("NOT_INUSE", 0, "yes"));
    assert_eq!(rig.transitions(B), ["UNAVAILABLE -> NOT_INUSE"]);
    let (code, _, err) = crate::control::ctl(&rig.sock, &["rpc", "peerstate.get_peer", A]);
    assert!(code != 0 && err.contains("404"), "{err}");
}

/// use_avps: the script names the peers; every value of the callee AVP is a peer, the
/// lists are kept as dialog variables, the registration key survives an expiry that comes
/// without a message.
#[test]
fn peers_named_by_avps() {
    if !have_sipp() {
        eprintln!("sipp not installed: skipped");
        return;
    }
    let rig = Rig::start(
        "ps-avps",
        "modparam(\"peerstate\", \"use_avps\", 1)\n\
         modparam(\"peerstate\", \"caller_avp\", \"$avp(caller_peer)\")\n\
         modparam(\"peerstate\", \"callee_avp\", \"$avp(callee_peer)\")\n\
         modparam(\"peerstate\", \"reg_avp\", \"$avp(reg_peer)\")",
    );
    let b_port = free_port();
    rig.register("service", b_port, 3600);
    rig.wait_peer("agent-service@callcenter", ("NOT_INUSE", 0, "yes"));
    let mut callee = rig.callee("uas_answer.xml", b_port, 1);
    let (mut caller, _) = rig.caller("uac_call.xml", 2000);
    rig.wait_peer("agent-service@callcenter", ("INUSE", 1, "yes"));
    rig.wait_peer("supervisor@callcenter", ("INUSE", 1, "no"));
    rig.wait_peer("agent-sipp@callcenter", ("INUSE", 1, "no"));
    let list = rig.rpc(&["dlg.list"]).to_string();
    assert!(
        list.contains("caller_var")
            && list.contains("supervisor@callcenter,agent-service@callcenter"),
        "{list}"
    );
    assert_eq!(caller.wait(Duration::from_secs(20)), Some(0));
    assert_eq!(callee.wait(Duration::from_secs(10)), Some(0));
    rig.wait_peer("agent-service@callcenter", ("NOT_INUSE", 0, "yes"));
    rig.wait_peer("supervisor@callcenter", ("UNAVAILABLE", 0, "no"));
    // Expiry (no REGISTER, no AVP): the key remembered from the registration.
    rig.register("service", b_port, 1);
    rig.wait_peer("agent-service@callcenter", ("UNAVAILABLE", 0, "no"));
    let (code, _, _) = crate::control::ctl(&rig.sock, &["rpc", "peerstate.get_peer", B]);
    assert_ne!(code, 0, "no entry under the AOR itself");
}

/// With usrloc and dialog writing to the database, a restart in the middle of a call gives
/// the peers their states back, and the call's end is still followed.
#[test]
fn states_rebuilt_after_a_restart() {
    if !have_sipp() {
        eprintln!("sipp not installed: skipped");
        return;
    }
    let db = crate::control::new_db("ps-db");
    let url = format!("sqlite://{}", db.to_string_lossy());
    let mut rig = Rig::start(
        "ps-restart",
        &format!(
            "modparam(\"usrloc\", \"db_mode\", 1)\nmodparam(\"usrloc\", \"db_url\", \"{url}\")\n\
             modparam(\"dialog\", \"db_mode\", 1)\nmodparam(\"dialog\", \"db_url\", \"{url}\")"
        ),
    );
    let (b_port, a_port, c_port) = (free_port(), free_port(), free_port());
    rig.register("service", b_port, 3600);
    rig.register("sipp", a_port, 3600);
    rig.register("idle", c_port, 3600);
    let mut callee = rig.callee("uas_answer.xml", b_port, 1);
    let (mut caller, name) = rig.caller("uac_call.xml", 6000);
    rig.wait_peer(B, ("INUSE", 1, "yes"));
    rig.restart();
    rig.wait_peer(B, ("INUSE", 1, "yes"));
    rig.wait_peer(A, ("INUSE", 1, "yes"));
    rig.wait_peer("idle@127.0.0.1", ("NOT_INUSE", 0, "yes"));
    // The BYE reaches the restarted server: the call ends for both peers.
    assert_eq!(
        caller.wait(Duration::from_secs(20)),
        Some(0),
        "{}",
        read(&rig.dir.join(format!("{name}.err")))
    );
    assert_eq!(callee.wait(Duration::from_secs(10)), Some(0));
    rig.wait_peer(B, ("NOT_INUSE", 0, "yes"));
    rig.wait_peer(A, ("NOT_INUSE", 0, "yes"));
    rig.wait_transitions(B, &["INUSE -> NOT_INUSE"]);
}

/// A call forked to two contacts of the callee (both ring, one answers, the other is
/// cancelled) counts once; with two bindings, the peer is unregistered only when the last
/// one goes.
#[test]
fn forked_call_and_several_contacts() {
    if !have_sipp() {
        eprintln!("sipp not installed: skipped");
        return;
    }
    let rig = Rig::start("ps-fork", "");
    let (p1, p2) = (free_port(), free_port());
    rig.register("service", p1, 3600);
    rig.register("service", p2, 3600);
    rig.wait_peer(B, ("NOT_INUSE", 0, "yes"));
    let mut answers = rig.callee("uas_answer.xml", p1, 1);
    let mut rings = rig.callee("uas_ring_cancel.xml", p2, 1);
    let (mut caller, name) = rig.caller("uac_call.xml", 2000);
    rig.wait_peer(B, ("INUSE", 1, "yes"));
    assert_eq!(
        caller.wait(Duration::from_secs(20)),
        Some(0),
        "{}",
        read(&rig.dir.join(format!("{name}.err")))
    );
    assert_eq!(answers.wait(Duration::from_secs(10)), Some(0));
    assert_eq!(rings.wait(Duration::from_secs(10)), Some(0));
    rig.wait_peer(B, ("NOT_INUSE", 0, "yes"));
    rig.wait_transitions(
        B,
        &[
            "UNAVAILABLE -> NOT_INUSE",
            "NOT_INUSE -> RINGING",
            "RINGING -> INUSE",
            "INUSE -> NOT_INUSE",
        ],
    );
    // One binding goes: still registered, no change.
    rig.register("service", p1, 0);
    rig.wait_peer(B, ("NOT_INUSE", 0, "yes"));
    // The last one goes.
    rig.register("service", p2, 0);
    rig.wait_peer(B, ("UNAVAILABLE", 0, "no"));
    assert_eq!(rig.transitions(B).len(), 5);
}

//! dlgs (seed 001) on the wire, without tm: records made in onsend_route, replies followed
//! by themselves, ACK/BYE/CANCEL by dlgs_update(), counts and tag counts from the script,
//! the RPC commands, lifetimes; bad static parameters refused at load.

use crate::harness::*;
use std::net::SocketAddr;
use std::time::Duration;

const CFG: &str = r#"
listen=udp:127.0.0.1:PORT
children=2
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
loadmodule "ctl.so"
loadmodule "dlgs.so"
modparam("ctl", "binrpc", "unix:CTL_PATH")
modparam("dlgs", "finish_lifetime", 1)
modparam("dlgs", "timer_interval", 1)

request_route {
    if (is_method("OPTIONS")) {
        $var(src) = dlgs_count("src", "eq", "$fu");
        $var(all) = dlgs_count("any", "eq", "*");
        $var(tags) = dlgs_tags_count("$si");
        $var(sw) = dlgs_count("dst", "sw", "sip:bob");
        append_to_reply("X-Counts: $var(src) $var(all) $var(tags) $var(sw)\r\n");
        # Bad field and bad regex given at run time: a negative value and a log line.
        $var(f) = "nosuch";
        $var(re) = "(unclosed";
        $var(badf) = dlgs_count("$var(f)", "eq", "x");
        $var(badre) = dlgs_count("src", "re", "$var(re)");
        append_to_reply("X-Bad: $var(badf) $var(badre)\r\n");
        sl_send_reply("200", "Counts");
        exit;
    }
    if (is_method("ACK|BYE|CANCEL")) {
        dlgs_update();
    }
    $du = "sip:127.0.0.1:UAS";
    forward();
}

onsend_route {
    if (is_method("INVITE")) {
        dlgs_init("$fu", "$tu", "my data");
        dlgs_tags_add("$si");
    }
}
"#;

fn recv(c: &UdpClient) -> String {
    String::from_utf8(c.recv()).unwrap()
}

fn request(
    method: &str,
    c: &UdpClient,
    proxy: SocketAddr,
    call_id: &str,
    cseq: u32,
    to_tag: bool,
) -> String {
    format!(
        "{method} sip:bob@127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-{call_id}-{method}-{cseq}\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>{t}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        p = proxy.port(),
        me = c.port(),
        t = if to_tag { ";tag=b1" } else { "" },
    )
}

/// The callee's reply to a forwarded request.
fn answer(req: &str, status: &str) -> String {
    reply_to(req, status)
        .split("\r\n")
        .map(|l| {
            if l.starts_with("To:") && !l.contains("tag=") {
                format!("{l};tag=b1")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn counts(c: &UdpClient, proxy: SocketAddr) -> String {
    c.send(
        proxy,
        request("OPTIONS", c, proxy, "probe", 1, false).as_bytes(),
    );
    loop {
        let r = recv(c);
        if r.contains("Call-ID: probe") {
            return r
                .lines()
                .find_map(|l| l.strip_prefix("X-Counts: "))
                .unwrap()
                .trim()
                .to_owned();
        }
    }
}

#[test]
fn calls_are_counted_from_invite_to_bye_and_rpc_lists_them() {
    let uas = UdpClient::new();
    let dir = scratch("dlgs-ctl");
    let sock = dir.join("ctl.sock");
    let cfg = CFG.replace("CTL_PATH", &sock.to_string_lossy());
    let s = Server::start_with("dlgs", &cfg, &[("UAS", uas.port())]);
    let proxy = s.addr();
    let caller = UdpClient::new();
    assert_eq!(counts(&caller, proxy), "-1 -1 -1 -1", "nothing tracked yet");

    // An answered call: INVITE (record made in onsend_route), 180, 200, ACK.
    caller.send(
        proxy,
        request("INVITE", &caller, proxy, "d1", 1, false).as_bytes(),
    );
    let inv = recv(&uas);
    assert!(inv.starts_with("INVITE "), "{inv}");
    uas.send(proxy, answer(&inv, "SIP/2.0 180 Ringing").as_bytes());
    assert!(recv(&caller).starts_with("SIP/2.0 180"));
    uas.send(proxy, answer(&inv, "SIP/2.0 200 OK").as_bytes());
    assert!(recv(&caller).starts_with("SIP/2.0 200"));
    caller.send(
        proxy,
        request("ACK", &caller, proxy, "d1", 1, true).as_bytes(),
    );
    assert!(recv(&uas).starts_with("ACK "));
    assert_eq!(counts(&caller, proxy), "1 1 1 1");
    let ctl = |args: &[&str]| crate::control::ctl_json(&sock, args);
    let list = ctl(&["rpc", "dlgs.list"]);
    let text = list.to_string();
    assert!(
        text.contains("\"callid\":\"d1\"") && text.contains("my data"),
        "{text}"
    );
    let got = ctl(&["rpc", "dlgs.get", "src", "eq", "sip:alice@127.0.0.1"]);
    assert!(got.to_string().contains("\"d1\""), "{got}");
    let all = ctl(&["rpc", "dlgs.getall", "dst", "sw", "sip:bob"]);
    assert!(all.to_string().contains("\"d1\""), "{all}");
    let brief = ctl(&["rpc", "dlgs.briefing"]);
    assert!(brief.to_string().contains("\"d1\""), "{brief}");
    let stats = ctl(&["rpc", "dlgs.stats"]).to_string();
    assert!(
        stats.contains("active") && stats.contains("final"),
        "{stats}"
    );
    // Dynamic bad arguments.
    caller.send(
        proxy,
        request("OPTIONS", &caller, proxy, "probe-bad", 1, false).as_bytes(),
    );
    let bad = loop {
        let r = recv(&caller);
        if r.contains("Call-ID: probe-bad") {
            break r;
        }
    };
    let bad = bad
        .lines()
        .find_map(|l| l.strip_prefix("X-Bad: "))
        .unwrap()
        .to_owned();
    let vals: Vec<i64> = bad.split_whitespace().map(|v| v.parse().unwrap()).collect();
    assert!(vals.len() == 2 && vals.iter().all(|v| *v < 0), "{bad}");
    s.wait_log("nosuch", Duration::from_secs(3));
    let mem = ctl(&["rpc", "dlgs.memory"]);
    assert_eq!(mem["records"], 1, "{mem}");
    assert!(mem["bytes_per_record"].as_u64().unwrap() > 100, "{mem}");

    // An INVITE the callee refuses ends as finished, a CANCELled one too.
    caller.send(
        proxy,
        request("INVITE", &caller, proxy, "d2", 1, false).as_bytes(),
    );
    let inv2 = recv(&uas);
    uas.send(proxy, answer(&inv2, "SIP/2.0 486 Busy Here").as_bytes());
    assert!(recv(&caller).starts_with("SIP/2.0 486"));
    caller.send(
        proxy,
        request("INVITE", &caller, proxy, "d3", 1, false).as_bytes(),
    );
    let inv3 = recv(&uas);
    uas.send(proxy, answer(&inv3, "SIP/2.0 180 Ringing").as_bytes());
    assert!(recv(&caller).starts_with("SIP/2.0 180"));
    caller.send(
        proxy,
        request("CANCEL", &caller, proxy, "d3", 1, false).as_bytes(),
    );
    assert!(recv(&uas).starts_with("CANCEL "));
    // Still one ongoing call (d1).
    assert_eq!(counts(&caller, proxy), "1 1 1 1");

    // BYE ends d1; after finish_lifetime (1 s) and a timer run the records are gone.
    caller.send(
        proxy,
        request("BYE", &caller, proxy, "d1", 2, true).as_bytes(),
    );
    assert!(recv(&uas).starts_with("BYE "));
    assert_eq!(counts(&caller, proxy), "-1 -1 -1 -1");
    let mut empty = false;
    for _ in 0..40 {
        if ctl(&["rpc", "dlgs.list"])
            .as_array()
            .is_some_and(Vec::is_empty)
        {
            empty = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(empty, "records past their lifetime are removed");
}

#[test]
fn bad_static_parameters_are_load_errors() {
    for (call, what) in [
        ("dlgs_count(\"foo\", \"eq\", \"x\")", "field"),
        ("dlgs_count(\"src\", \"xx\", \"x\")", "op"),
        ("dlgs_count(\"src\", \"re\", \"(\")", "regex"),
    ] {
        let dir = scratch(&format!("dlgs-bad-{what}"));
        let path = dir.join("bad.cfg");
        std::fs::write(
            &path,
            format!("loadmodule \"dlgs.so\"\nrequest_route {{\n    $var(n) = {call};\n}}\n"),
        )
        .unwrap();
        let out = std::process::Command::new(sable_bin())
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains("bad.cfg:3:"), "{what}: {err}");
    }
}

/// SIPp calls held up for a while through a stateless proxy tracking them with dlgs: the
/// count goes up while they last and back to nothing after their BYEs and finish_lifetime.
#[test]
fn sipp_calls_are_tracked_while_up() {
    if !have_sipp() {
        eprintln!("note: sipp is not installed: dlgs SIPp test skipped");
        return;
    }
    let uas_port = free_port();
    let dir = scratch("dlgs-sipp-ctl");
    let sock = dir.join("ctl.sock");
    let cfg = CFG.replace("CTL_PATH", &sock.to_string_lossy());
    let s = Server::start_with("dlgs-sipp", &cfg, &[("UAS", uas_port)]);
    let mut uas = sipp_uas(&s.dir, uas_port);
    std::thread::sleep(Duration::from_millis(300));
    // Five calls, each held 3 s before its BYE.
    let mut uac = std::process::Command::new("sipp")
        .args(["-sn", "uac", &format!("127.0.0.1:{}", s.port)])
        .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
        .args([
            "-r", "10", "-m", "5", "-d", "3000", "-timeout", "30s", "-nostdin",
        ])
        .current_dir(&s.dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ctl = |args: &[&str]| crate::control::ctl_json(&sock, args);
    let ongoing = |v: &serde_json::Value| {
        v.as_array().map_or(0, |a| {
            a.iter()
                .filter(|r| r["state"].as_i64().is_some_and(|s| s <= 3))
                .count()
        })
    };
    let mut peak = 0;
    for _ in 0..25 {
        peak = peak.max(ongoing(&ctl(&["rpc", "dlgs.list"])));
        if peak == 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(peak, 5, "five calls up at once");
    let status = uac.wait().unwrap();
    let _ = uas.kill();
    let _ = uas.wait();
    assert!(status.success(), "SIPp UAC failed calls");
    assert_eq!(ongoing(&ctl(&["rpc", "dlgs.list"])), 0, "every call ended");
    let mut gone = false;
    for _ in 0..40 {
        if ctl(&["rpc", "dlgs.list"])
            .as_array()
            .is_some_and(Vec::is_empty)
        {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gone, "finished records removed after finish_lifetime");
}

//! usrloc + registrar on the wire: REGISTER flows (new AOR, refresh, several contacts with
//! q, out-of-order CSeq, 423 with Min-Expires, max_contacts, Expires 0, `*`, query), the
//! same flow on Kamailio 5.6 compared reply by reply, lookup() forking to the bindings, the
//! contact-expired event route, and the ul.* RPCs.

use crate::harness::*;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CFG: &str = r#"
debug=2
children=2
listen=udp:127.0.0.1:PORT
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("registrar", "max_contacts", 3)
modparam("registrar", "min_expires_mode", 1)
EXTRA

request_route {
    if (is_method("REGISTER")) {
        save("location");
        exit;
    }
    if (is_method("INVITE")) {
        if (!lookup("location")) {
            sl_send_reply("404", "Not Found");
            exit;
        }
        t_relay();
        exit;
    }
    sl_send_reply("405", "Method Not Allowed");
}

event_route[usrloc:contact-expired] {
    xlog("L_INFO", "UL EXPIRED $ulc(exp=>aor) $ulc(exp=>addr)\n");
}
"#;

/// What a REGISTER got back.
#[derive(Debug, Clone, PartialEq)]
struct RegReply {
    code: u16,
    /// (contact URI, expires) in the order listed.
    contacts: Vec<(String, u64)>,
    min_expires: Option<String>,
    registrar_error: bool,
}

fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n")
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

fn parse_reply(text: &str) -> RegReply {
    let mut contacts = Vec::new();
    for h in header(text, "Contact") {
        for c in h.split(", ") {
            let uri = c
                .split('>')
                .next()
                .unwrap()
                .trim_start_matches('<')
                .to_owned();
            let exp = c
                .split(";expires=")
                .nth(1)
                .map(|e| e.split(';').next().unwrap().parse().unwrap())
                .unwrap_or(0);
            contacts.push((uri, exp));
        }
    }
    RegReply {
        code: status(text.as_bytes()),
        contacts,
        min_expires: header(text, "Min-Expires").first().map(|s| (*s).to_owned()),
        registrar_error: !header(text, "P-Registrar-Error").is_empty(),
    }
}

fn register(
    c: &UdpClient,
    to: SocketAddr,
    user: &str,
    call_id: &str,
    cseq: u32,
    contact: Option<&str>,
    expires: Option<u32>,
) -> RegReply {
    let mut msg = format!(
        "REGISTER sip:127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{call_id}-{cseq}\r\nFrom: <sip:{user}@127.0.0.1>;tag=f{cseq}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nMax-Forwards: 70\r\n",
        to.port(),
        c.port()
    );
    if let Some(ct) = contact {
        msg.push_str(&format!("Contact: {ct}\r\n"));
    }
    if let Some(e) = expires {
        msg.push_str(&format!("Expires: {e}\r\n"));
    }
    msg.push_str("Content-Length: 0\r\n\r\n");
    c.send(to, msg.as_bytes());
    let reply = String::from_utf8(c.recv()).unwrap();
    parse_reply(&reply)
}

/// The REGISTER flow of the acceptance list, on a server at `to`.
fn flow(to: SocketAddr) -> Vec<RegReply> {
    let c = UdpClient::new();
    let a = "<sip:alice@127.0.0.1:5081>";
    let b = "<sip:alice@127.0.0.1:5082>;q=0.5";
    let (c2, c3, c4) = (
        "<sip:alice@127.0.0.1:5082>",
        "<sip:alice@127.0.0.1:5083>",
        "<sip:alice@127.0.0.1:5084>",
    );
    vec![
        // New AOR; refresh; a second contact with q; out-of-order CSeq.
        register(&c, to, "alice", "reg-1", 1, Some(a), Some(600)),
        register(&c, to, "alice", "reg-1", 2, Some(a), Some(600)),
        register(&c, to, "alice", "reg-1", 3, Some(b), Some(300)),
        register(&c, to, "alice", "reg-1", 1, Some(a), Some(600)),
        // Too brief.
        register(&c, to, "alice", "reg-1", 4, Some(c3), Some(10)),
        // Up to max_contacts (3), then one too many.
        register(&c, to, "alice", "reg-1", 5, Some(c3), Some(120)),
        register(&c, to, "alice", "reg-1", 6, Some(c4), Some(120)),
        // Expires 0 for one; query; `*`.
        register(&c, to, "alice", "reg-1", 7, Some(c2), Some(0)),
        register(&c, to, "alice", "reg-2", 1, None, None),
        register(&c, to, "alice", "reg-1", 8, Some("*"), Some(0)),
        register(&c, to, "alice", "reg-1", 9, None, None),
    ]
}

fn check_flow(r: &[RegReply]) {
    let codes: Vec<u16> = r.iter().map(|x| x.code).collect();
    assert_eq!(
        codes,
        [200, 200, 200, 400, 423, 200, 503, 200, 200, 200, 200],
        "{r:#?}"
    );
    assert_eq!(
        r[0].contacts,
        [("sip:alice@127.0.0.1:5081".to_owned(), 600)]
    );
    assert_eq!(r[2].contacts.len(), 2);
    assert!(r[3].registrar_error && r[6].registrar_error);
    assert_eq!(r[4].min_expires.as_deref(), Some("60"));
    assert_eq!(r[5].contacts.len(), 3);
    assert_eq!(r[7].contacts.len(), 2);
    assert!(r[7].contacts.iter().all(|(u, _)| !u.ends_with(":5082")));
    assert!(r[9].contacts.is_empty() && r[10].contacts.is_empty());
}

/// Same codes and bindings (expires may differ by a second at a clock tick).
fn same(k: &[RegReply], s: &[RegReply]) {
    assert_eq!(k.len(), s.len());
    for (i, (a, b)) in k.iter().zip(s).enumerate() {
        assert_eq!(a.code, b.code, "reply {i}: Kamailio {a:?}, Sable {b:?}");
        assert_eq!(a.min_expires, b.min_expires, "reply {i}");
        assert_eq!(a.registrar_error, b.registrar_error, "reply {i}");
        assert_eq!(
            a.contacts.len(),
            b.contacts.len(),
            "reply {i}: Kamailio {a:?}, Sable {b:?}"
        );
        for ((ua, ea), (ub, eb)) in a.contacts.iter().zip(&b.contacts) {
            assert_eq!(
                ua, ub,
                "reply {i}: contact order, Kamailio {a:?}, Sable {b:?}"
            );
            assert!(ea.abs_diff(*eb) <= 1, "reply {i}: expires {ea} vs {eb}");
        }
    }
}

fn cfg(extra: &str) -> String {
    CFG.replace("EXTRA", extra)
}

#[test]
fn register_flows_follow_the_registrar_rules() {
    let s = Server::start("reg-flow", &cfg(""));
    let r = flow(s.addr());
    check_flow(&r);
}

#[test]
fn register_flows_match_kamailio() {
    if !have_kamailio() {
        eprintln!("note: kamailio missing: side-by-side REGISTER test skipped");
        return;
    }
    let port = free_port();
    let dir = scratch("reg-kamailio");
    let path = dir.join("k.cfg");
    std::fs::write(&path, cfg("").replace("PORT", &port.to_string())).unwrap();
    let log = std::fs::File::create(dir.join("k.log")).unwrap();
    let mut k = Command::new("kamailio")
        .args(["-DD", "-E", "-m", "64", "-M", "8", "-f"])
        .arg(&path)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let kr = flow(SocketAddr::from(([127, 0, 0, 1], port)));
    let _ = Command::new("kill").arg(k.id().to_string()).status();
    let _ = k.wait();
    check_flow(&kr);
    let s = Server::start("reg-side", &cfg(""));
    let sr = flow(s.addr());
    same(&kr, &sr);
}

#[test]
fn lookup_forks_to_every_binding_and_expiry_runs_the_event_route() {
    let s = Server::start(
        "reg-lookup",
        &cfg("modparam(\"usrloc\", \"timer_interval\", 1)\nmodparam(\"registrar\", \"min_expires\", 1)"),
    );
    let (p1, p2) = (UdpClient::new(), UdpClient::new());
    let c = UdpClient::new();
    let r = register(
        &c,
        s.addr(),
        "bob",
        "b1",
        1,
        Some(&format!("<sip:bob@127.0.0.1:{}>", p1.port())),
        Some(600),
    );
    assert_eq!(r.code, 200);
    let r = register(
        &c,
        s.addr(),
        "bob",
        "b1",
        2,
        Some(&format!("<sip:bob@127.0.0.1:{}>;q=0.5", p2.port())),
        Some(600),
    );
    assert_eq!(r.contacts.len(), 2);
    let inv = format!(
        "INVITE sip:bob@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-lk1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: lk1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        s.port,
        c.port()
    );
    c.send(s.addr(), inv.as_bytes());
    for p in [&p1, &p2] {
        let got = String::from_utf8(p.recv()).unwrap();
        assert!(got.starts_with("INVITE sip:bob@127.0.0.1:"), "{got}");
    }
    // Unknown user: 404.
    let unknown = inv.replace("sip:bob@", "sip:nobody@").replace("lk1", "lk2");
    c.send(s.addr(), unknown.as_bytes());
    loop {
        let r = String::from_utf8(c.recv()).unwrap();
        if r.contains("Call-ID: lk2") {
            assert_eq!(status(r.as_bytes()), 404, "{r}");
            break;
        }
    }
    // A binding of 2 s expires and the event route tells.
    let r = register(
        &c,
        s.addr(),
        "carol",
        "c1",
        1,
        Some("<sip:carol@127.0.0.1:5099>"),
        Some(2),
    );
    assert_eq!(r.contacts, [("sip:carol@127.0.0.1:5099".to_owned(), 2)]);
    s.wait_log(
        "UL EXPIRED carol sip:carol@127.0.0.1:5099",
        Duration::from_secs(6),
    );
}

#[test]
fn ul_rpcs_dump_lookup_and_remove() {
    let dir = scratch("reg-rpc-ctl");
    let sock = dir.join("sable_ctl");
    let extra = format!(
        "loadmodule \"ctl.so\"\nmodparam(\"ctl\", \"binrpc\", \"unix:{}\")",
        sock.to_string_lossy()
    );
    let s = Server::start("reg-rpc", &cfg(&extra));
    let c = UdpClient::new();
    assert_eq!(
        register(
            &c,
            s.addr(),
            "dave",
            "d1",
            1,
            Some("<sip:dave@127.0.0.1:5071>"),
            Some(300)
        )
        .code,
        200
    );
    let ctl = |args: &[&str]| crate::control::ctl_json(&sock, args);
    let dump = ctl(&["rpc", "ul.dump"]);
    let d = &dump["Domains"][0]["Domain"];
    assert_eq!(d["Domain"], "location");
    assert_eq!(d["Size"], 1024);
    let info = &d["AoRs"][0]["Info"];
    assert_eq!(info["AoR"], "dave");
    let contact = &info["Contacts"][0]["Contact"];
    assert_eq!(contact["Address"], "sip:dave@127.0.0.1:5071");
    assert!(contact["Expires"].as_u64().unwrap() <= 300);
    assert_eq!(contact["Q"], -1);
    assert_eq!(contact["Call-ID"], "d1");
    assert_eq!(contact["Received"], "[not set]");
    assert!(contact["Ruid"].as_str().unwrap().starts_with("uloc-"));
    assert_eq!(d["Stats"]["Records"], 1);
    let brief = ctl(&["rpc", "ul.dump", "brief"]);
    assert_eq!(brief["Domains"][0]["Domain"]["AoRs"][0]["AoR"], "dave");
    let l = ctl(&["rpc", "ul.lookup", "location", "dave"]);
    assert_eq!(l["AoR"], "dave");
    assert_eq!(
        l["Contacts"][0]["Contact"]["Address"],
        "sip:dave@127.0.0.1:5071"
    );
    let (code, _, err) = crate::control::ctl(&sock, &["rpc", "ul.lookup", "location", "nobody"]);
    assert_ne!(code, 0);
    assert!(err.contains("AOR not found"), "{err}");
    // An unknown table is an error, and asking does not create it.
    for _ in 0..2 {
        let (code, _, err) = crate::control::ctl(&sock, &["rpc", "ul.lookup", "nosuch", "dave"]);
        assert_ne!(code, 0);
        assert!(err.contains("Table not found: nosuch"), "{err}");
    }
    ctl(&[
        "rpc",
        "ul.add",
        "location",
        "erin",
        "sip:erin@127.0.0.1:5072",
        "i:0",
        "0.5",
        ".",
        "i:0",
        "i:0",
        "i:0",
    ]);
    let l = ctl(&["rpc", "ul.lookup", "location", "erin"]);
    assert_eq!(l["Contacts"][0]["Contact"]["Expires"], "permanent");
    assert_eq!(l["Contacts"][0]["Contact"]["Q"], 0.5);
    ctl(&["rpc", "ul.rm", "location", "dave"]);
    let (code, _, _) = crate::control::ctl(&sock, &["rpc", "ul.lookup", "location", "dave"]);
    assert_ne!(code, 0);
    let stats = ctl(&["stats", "usrloc:"]);
    let text = stats.to_string();
    assert!(
        text.contains("location_users") && text.contains("registered_users"),
        "{text}"
    );
}

fn db_cfg(mode: u8, db: &std::path::Path) -> String {
    cfg(&db_params(mode, db, 1))
}

/// usrloc's database parameters: `db_mode`, the database, `timer_interval` (seconds).
fn db_params(mode: u8, db: &std::path::Path, timer_interval: u32) -> String {
    format!(
        "modparam(\"usrloc\", \"db_mode\", {mode})\nmodparam(\"usrloc\", \"db_url\", \"sqlite://{}\")\nmodparam(\"usrloc\", \"timer_interval\", {timer_interval})",
        db.to_string_lossy()
    )
}

/// The bindings a REGISTER query (no Contact) lists.
fn bindings(s: &Server, user: &str) -> Vec<(String, u64)> {
    let c = UdpClient::new();
    register(
        &c,
        s.addr(),
        user,
        &format!("q-{}", c.port()),
        1,
        None,
        None,
    )
    .contacts
}

#[test]
fn db_mode_1_survives_kill_9() {
    let db = crate::control::new_db("reg-db1");
    let cfgt = db_cfg(1, &db);
    let mut s = Server::start("reg-db1-a", &cfgt);
    let c = UdpClient::new();
    assert_eq!(
        register(
            &c,
            s.addr(),
            "frank",
            "f1",
            1,
            Some("<sip:frank@127.0.0.1:5061>"),
            Some(600)
        )
        .code,
        200
    );
    assert_eq!(
        register(
            &c,
            s.addr(),
            "frank",
            "f1",
            2,
            Some("<sip:frank@127.0.0.1:5062>;q=0.5"),
            Some(600)
        )
        .code,
        200
    );
    assert_eq!(
        register(
            &c,
            s.addr(),
            "gina",
            "g1",
            1,
            Some("<sip:gina@127.0.0.1:5063>"),
            Some(600)
        )
        .code,
        200
    );
    // kill -9 right after the last 200: nothing acknowledged may be lost.
    let child = s.child.take().unwrap();
    let _ = Command::new("kill")
        .arg("-9")
        .arg(child.id().to_string())
        .status();
    let mut child = child;
    let _ = child.wait();
    let s2 = Server::start("reg-db1-b", &cfgt);
    let f = bindings(&s2, "frank");
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(f[0].0, "sip:frank@127.0.0.1:5062", "q order kept");
    assert!(f.iter().all(|(_, e)| *e > 590 && *e <= 600), "{f:?}");
    assert_eq!(bindings(&s2, "gina").len(), 1);
    drop(s);
}

/// A db_mode 2 server with its own control socket, and a bounded wait for the number of
/// valid bindings in its database (`ul.db_contacts`): what the timer wrote.
struct WriteBack {
    s: Server,
    sock: std::path::PathBuf,
}

impl WriteBack {
    fn start(name: &str, db: &std::path::Path, timer_interval: u32) -> WriteBack {
        let sock = scratch(&format!("{name}-ctl")).join("sable_ctl");
        let extra = format!(
            "loadmodule \"ctl.so\"\nmodparam(\"ctl\", \"binrpc\", \"unix:{}\")\n{}",
            sock.to_string_lossy(),
            db_params(2, db, timer_interval)
        );
        WriteBack {
            s: Server::start(name, &cfg(&extra)),
            sock,
        }
    }

    fn wait_db_contacts(&self, want: u64) {
        let count = || {
            crate::control::ctl_json(&self.sock, &["rpc", "ul.db_contacts", "location"])["contacts"]
                .as_u64()
        };
        eventually(Duration::from_secs(10), || count() == Some(want));
        assert_eq!(count(), Some(want), "bindings in the database");
    }
}

#[test]
fn db_mode_2_writes_back_and_reloads() {
    let db = crate::control::new_db("reg-db2");
    let mut a = WriteBack::start("reg-db2-a", &db, 3600);
    let ua = UdpClient::new();
    let reg = |s: &Server, cseq: u32, expires: u32| {
        register(
            &ua,
            s.addr(),
            "hank",
            "h1",
            cseq,
            Some("<sip:hank@127.0.0.1:5064>"),
            Some(expires),
        )
        .code
    };
    // A new binding, refreshed before anything was written (the timer is an hour away):
    // written once, as it is then, here by the graceful stop.
    assert_eq!(reg(&a.s, 1, 600), 200);
    assert_eq!(reg(&a.s, 2, 300), 200);
    a.wait_db_contacts(0);
    assert_eq!(a.s.stop().and_then(|s| s.code()), Some(0));
    let mut b = WriteBack::start("reg-db2-b", &db, 1);
    let loaded = bindings(&b.s, "hank");
    assert_eq!(loaded.len(), 1);
    assert!(loaded[0].1 <= 300, "{loaded:?}");
    // A refresh of a binding loaded from the database is written over its row (here by the
    // graceful stop).
    assert_eq!(reg(&b.s, 3, 900), 200);
    assert_eq!(b.s.stop().and_then(|s| s.code()), Some(0));
    let c = WriteBack::start("reg-db2-c", &db, 1);
    let loaded = bindings(&c.s, "hank");
    assert_eq!(loaded.len(), 1);
    assert!(loaded[0].1 > 600, "{loaded:?}");
    // Removal is written back too, by the timer (1 s) while the server runs: kill -9 then
    // loses nothing.
    assert_eq!(reg(&c.s, 4, 0), 200);
    c.wait_db_contacts(0);
    drop(c);
    let d = Server::start("reg-db2-d", &db_cfg(2, &db));
    assert!(bindings(&d, "hank").is_empty());
}

/// db_mode 2: a graceful stop writes what the timer has not written yet (as Kamailio's
/// usrloc does on exit); the timer here is an hour away.
#[test]
fn db_mode_2_stop_writes_the_pending_changes() {
    let db = crate::control::new_db("reg-db2-stop");
    let mut a = WriteBack::start("reg-db2-stop-a", &db, 3600);
    let c = UdpClient::new();
    for (user, cseq, expires) in [("ivan", 1, 600), ("judy", 1, 600), ("judy", 2, 0)] {
        let contact = format!("<sip:{user}@127.0.0.1:5065>");
        let r = register(
            &c,
            a.s.addr(),
            user,
            user,
            cseq,
            Some(&contact),
            Some(expires),
        );
        assert_eq!(r.code, 200);
    }
    a.wait_db_contacts(0);
    assert_eq!(a.s.stop().and_then(|s| s.code()), Some(0));
    let b = WriteBack::start("reg-db2-stop-b", &db, 3600);
    b.wait_db_contacts(1);
    assert_eq!(bindings(&b.s, "ivan").len(), 1);
    assert!(bindings(&b.s, "judy").is_empty());
}

#[test]
fn missing_or_corrupt_database_stops_the_start() {
    let dir = scratch("reg-db-bad");
    for (name, content) in [
        ("missing.db", None),
        (
            "corrupt.db",
            Some(&b"this is not a database at all, just bytes"[..]),
        ),
    ] {
        let db = dir.join(name);
        let _ = std::fs::remove_file(&db);
        if let Some(c) = content {
            std::fs::write(&db, c).unwrap();
        }
        let path = dir.join(format!("{name}.cfg"));
        std::fs::write(
            &path,
            db_cfg(1, &db).replace("PORT", &free_port().to_string()),
        )
        .unwrap();
        let out = Command::new(sable_bin())
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{name}: {err}");
        assert!(
            err.contains("usrloc") && err.contains(name),
            "{name}: {err}"
        );
    }
}

#[test]
fn ul_add_over_a_binding_keeps_its_ruid_in_the_database_and_ul_memory_counts_it() {
    let db = crate::control::new_db("reg-add-db1");
    let dir = scratch("reg-add-ctl");
    let sock = dir.join("sable_ctl");
    let extra = format!(
        "loadmodule \"ctl.so\"\nmodparam(\"ctl\", \"binrpc\", \"unix:{}\")\nmodparam(\"usrloc\", \"db_mode\", 1)\nmodparam(\"usrloc\", \"db_url\", \"sqlite://{}\")",
        sock.to_string_lossy(),
        db.to_string_lossy()
    );
    let s = Server::start("reg-add", &cfg(&extra));
    let ctl = |args: &[&str]| crate::control::ctl_json(&sock, args);
    let add = |q: &str| {
        ctl(&[
            "rpc",
            "ul.add",
            "location",
            "fay",
            "sip:fay@127.0.0.1:5073",
            "i:600",
            q,
            ".",
            "i:0",
            "i:0",
            "i:0",
        ])
    };
    add("0.5");
    let first = ctl(&["rpc", "ul.lookup", "location", "fay"])["Contacts"][0]["Contact"]["Ruid"]
        .as_str()
        .unwrap()
        .to_owned();
    // The same contact again replaces the binding: same ruid in memory and in the database
    // (no second row under another ruid).
    add("0.7");
    let l = ctl(&["rpc", "ul.lookup", "location", "fay"]);
    assert_eq!(l["Contacts"].as_array().unwrap().len(), 1, "{l}");
    assert_eq!(l["Contacts"][0]["Contact"]["Ruid"], first.as_str());
    assert_eq!(l["Contacts"][0]["Contact"]["Q"], 0.7);
    let rows = ctl(&["rpc", "ul.db_contacts", "location"]);
    assert_eq!(rows["contacts"], 1, "{rows}");
    let m = ctl(&["rpc", "ul.memory"]);
    assert_eq!(m["contacts"], 1, "{m}");
    assert_eq!(m["records"], 1, "{m}");
    assert!(m["bytes_per_contact"].as_u64().unwrap() > 0, "{m}");
    drop(s);
}

//! Digest authentication on the wire (auth + auth_db on the SQLite subscriber table made by
//! sablectl): challenge, the right password, a wrong one and an unknown user answered alike,
//! a replayed nonce count, a stale nonce re-challenged with stale=true, MD5 and SHA-256.

use crate::harness::*;
use sable_auth::{Algorithm, Qop, QopInput, ResponseInput};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

const CFG: &str = r#"
children=2
listen=udp:127.0.0.1:PORT
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
modparam("auth_db", "db_url", "sqlite://DB")
modparam("auth_db", "calculate_ha1", 1)
modparam("auth_db", "password_column", "password")
modparam("auth", "nonce_count", 1)
modparam("auth", "qop", "auth")
modparam("auth", "nonce_expire", 2)
ALGORITHM

request_route {
    if (is_method("REGISTER")) {
        $var(rc) = auth_check("sable.test", "subscriber", "1");
        if ($var(rc) != 1) {
            xlog("L_INFO", "auth rc=$var(rc)\n");
            if ($var(rc) == -4) {
                auth_challenge("sable.test", "17");
                exit;
            }
            auth_challenge("sable.test", "1");
            exit;
        }
        consume_credentials();
        save("location");
        exit;
    }
    sl_send_reply("405", "Method Not Allowed");
}
"#;

fn start(name: &str, algorithm: Option<&str>) -> Server {
    let dir = scratch(&format!("{name}-db"));
    let db = dir.join("sable.db");
    let _ = std::fs::remove_file(&db);
    let ctl = crate::control::sablectl_bin();
    let run = |args: &[&str]| {
        let out = Command::new(&ctl).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let dbs = db.to_string_lossy().into_owned();
    run(&["db", "init", &dbs]);
    run(&[
        "subscriber",
        "add",
        "alice@sable.test",
        "wonderland",
        "--db",
        &dbs,
    ]);
    let cfg = CFG.replace("DB", &dbs).replace(
        "ALGORITHM",
        &algorithm
            .map(|a| format!("modparam(\"auth\", \"algorithm\", \"{a}\")"))
            .unwrap_or_default(),
    );
    Server::start(name, &cfg)
}

struct Challenge {
    code: u16,
    nonce: String,
    stale: bool,
    algorithm: Option<String>,
    text: String,
}

fn param(h: &str, name: &str) -> Option<String> {
    h.split(", ").find_map(|p| {
        let p = p.trim().trim_start_matches("Digest ");
        let (n, v) = p.split_once('=')?;
        (n == name).then(|| v.trim_matches('"').to_owned())
    })
}

fn send(c: &UdpClient, to: SocketAddr, user: &str, cseq: u32, auth: Option<String>) -> Challenge {
    let mut m = format!(
        "REGISTER sip:sable.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK-au-{cseq}\r\nFrom: <sip:{user}@sable.test>;tag=a{cseq}\r\nTo: <sip:{user}@sable.test>\r\nCall-ID: auth-{p}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@127.0.0.1:{p}>\r\nMax-Forwards: 70\r\n",
        p = c.port()
    );
    if let Some(a) = auth {
        m.push_str(&format!("Authorization: {a}\r\n"));
    }
    m.push_str("Content-Length: 0\r\n\r\n");
    c.send(to, m.as_bytes());
    let text = String::from_utf8(c.recv()).unwrap();
    let code = status(text.as_bytes());
    let h = text
        .lines()
        .find(|l| l.starts_with("WWW-Authenticate:"))
        .map(|l| l["WWW-Authenticate:".len()..].trim().to_owned())
        .unwrap_or_default();
    Challenge {
        code,
        nonce: param(&h, "nonce").unwrap_or_default(),
        stale: param(&h, "stale").as_deref() == Some("true"),
        algorithm: param(&h, "algorithm"),
        text,
    }
}

fn credentials(alg: Algorithm, user: &str, password: &str, nonce: &str, nc: u32) -> String {
    let ha1 = sable_auth::ha1(alg, user.as_bytes(), b"sable.test", password.as_bytes());
    let nc = format!("{nc:08x}");
    let resp = sable_auth::response(
        alg,
        ha1.as_bytes(),
        &ResponseInput {
            method: b"REGISTER",
            uri: b"sip:sable.test",
            nonce: nonce.as_bytes(),
            qop: Some(QopInput {
                qop: Qop::Auth,
                nc: nc.as_bytes(),
                cnonce: b"c0ffee",
            }),
            body: b"",
        },
    );
    let alg_param = if alg == Algorithm::Md5 {
        String::new()
    } else {
        format!(", algorithm={}", alg.as_str())
    };
    format!(
        "Digest username=\"{user}\", realm=\"sable.test\", nonce=\"{nonce}\", uri=\"sip:sable.test\", response=\"{resp}\", qop=auth, nc={nc}, cnonce=\"c0ffee\"{alg_param}"
    )
}

fn flow(s: &Server, alg: Algorithm) {
    let c = UdpClient::new();
    let to = s.addr();
    let ch = send(&c, to, "alice", 1, None);
    assert_eq!(ch.code, 401, "{}", ch.text);
    assert!(ch.text.contains("qop=\"auth\""), "{}", ch.text);
    assert!(!ch.stale);
    if alg == Algorithm::Sha256 {
        assert_eq!(ch.algorithm.as_deref(), Some("SHA-256"), "{}", ch.text);
    }
    let ok = send(
        &c,
        to,
        "alice",
        2,
        Some(credentials(alg, "alice", "wonderland", &ch.nonce, 1)),
    );
    assert_eq!(ok.code, 200, "{}", ok.text);
    assert!(
        ok.text.contains("Contact: <sip:alice@127.0.0.1:"),
        "{}",
        ok.text
    );
    // The same nonce count again: a replay, answered as stale.
    let replay = send(
        &c,
        to,
        "alice",
        3,
        Some(credentials(alg, "alice", "wonderland", &ch.nonce, 1)),
    );
    assert_eq!(replay.code, 401);
    assert!(replay.stale, "{}", replay.text);
    // The next count on the same nonce is fine.
    let next = send(
        &c,
        to,
        "alice",
        4,
        Some(credentials(alg, "alice", "wonderland", &ch.nonce, 2)),
    );
    assert_eq!(next.code, 200, "{}", next.text);
    // A wrong password and an unknown user get the same answer.
    let wrong = send(
        &c,
        to,
        "alice",
        5,
        Some(credentials(alg, "alice", "looking-glass", &ch.nonce, 3)),
    );
    let unknown = send(
        &c,
        to,
        "mallory",
        6,
        Some(credentials(alg, "mallory", "x", &ch.nonce, 4)),
    );
    assert_eq!((wrong.code, unknown.code), (401, 401));
    assert!(!wrong.stale && !unknown.stale);
    let strip = |t: &str| {
        t.lines()
            .filter(|l| l.starts_with("SIP/2.0") || l.starts_with("WWW-Authenticate"))
            .map(|l| l.split("nonce=").next().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&wrong.text), strip(&unknown.text));
    // After nonce_expire (2 s) the nonce is stale: a new challenge with stale=true.
    std::thread::sleep(Duration::from_millis(3200));
    let stale = send(
        &c,
        to,
        "alice",
        7,
        Some(credentials(alg, "alice", "wonderland", &ch.nonce, 5)),
    );
    assert_eq!(stale.code, 401);
    assert!(stale.stale, "{}", stale.text);
    assert_ne!(stale.nonce, ch.nonce);
    let log = s.log_text();
    for rc in ["auth rc=-5", "auth rc=-4", "auth rc=-2", "auth rc=-3"] {
        assert!(log.contains(rc), "{rc} not logged:\n{log}");
    }
}

#[test]
fn digest_md5_challenge_accept_reject_replay_and_stale() {
    let s = start("auth-md5", None);
    flow(&s, Algorithm::Md5);
}

#[test]
fn digest_sha256_challenge_accept_reject_replay_and_stale() {
    let s = start("auth-sha256", Some("SHA-256"));
    flow(&s, Algorithm::Sha256);
}

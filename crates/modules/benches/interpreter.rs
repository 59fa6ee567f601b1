//! The interpreter on a 30-statement request route (conditions, pseudo-variables,
//! transformations, AVPs, header edits), run on a parsed INVITE, edits serialized.
//!
//! Run: `cargo bench -p sable-modules --bench interpreter`. Figures in `bench/RESULTS.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use criterion::{criterion_group, criterion_main, Criterion};
use sable_engine::{load, Core, ModuleSet, MsgCtx, RecvInfo};
use sable_script::{parse_str, Defines, RouteMask};
use sable_sip::Message;
use sable_transport::{ListenSpec, Proto, Transport, TransportConfig};
use std::hint::black_box;

const CFG: &str = r#"
loadmodule "sl.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "maxfwd.so"
loadmodule "xlog.so"
loadmodule "kex.so"
loadmodule "rr.so"

request_route {
    if (!mf_process_maxfwd_header("10")) { exit; }                      # 1
    if (is_method("INVITE|SUBSCRIBE") && !has_totag()) {                  # 2
        record_route();                                                   # 3
    }
    $var(n) = 0;                                                          # 4
    $var(user) = $(ru{uri.user});                                         # 5
    if ($var(user) =~ "^\+?[0-9]+$") {                                    # 6
        $var(n) = $var(n) + 1;                                            # 7
        $avp(dialed) = $(var(user){s.strip,1});                           # 8
    }
    if ($fU == "alice" && $fd == "atlanta.example.com") {                 # 9
        setflag(1);                                                       # 10
        $avp(caller) = $fu;                                               # 11
    }
    if (is_present_hf("Subject")) {                                       # 12
        remove_hf("Subject");                                             # 13
    }
    append_hf("X-Caller: $fU\r\n");                                       # 14
    append_hf("X-Call-Id-Len: $(ci{s.len})\r\n");                         # 15
    switch ($rm) {                                                        # 16
        case "INVITE":
            $var(kind) = "call";                                          # 17
            break;
        case "MESSAGE":
            $var(kind) = "im";
            break;
        default:
            $var(kind) = "other";
    }
    if (isflagset(1)) {                                                   # 18
        $var(n) = $var(n) * 10;                                           # 19
    }
    if ($si == "127.0.0.1" || $sp == 5060) {                              # 20
        $var(local) = 1;                                                  # 21
    }
    if ($(hdr(Contact){nameaddr.uri}) != $null) {                         # 22
        $avp(contact) = $(hdr(Contact){nameaddr.uri});                    # 23
    }
    $var(ua) = $ua;                                                       # 24
    if ($var(ua) =~ "softphone") {                                        # 25
        append_hf("X-UA-Class: soft\r\n");                                # 26
    }
    $var(tag) = $ft;                                                      # 27
    xdbg("routing $rm from $fu to $ru\n");                                # 28
    if ($avp(caller) != $null && $var(kind) == "call") {                  # 29
        $du = "sip:127.0.0.1:5070";                                       # 30
    }
}
"#;

const INVITE: &[u8] = include_bytes!("../../sip/benches/data/invite.sip");

fn bench(c: &mut Criterion) {
    let config = parse_str("bench.cfg", CFG, &Defines::new()).unwrap();
    let loaded = load(&config, ModuleSet::new(sable_modules::all())).unwrap();
    let addr = "127.0.0.1:0".parse().unwrap();
    let transport = Transport::bind(TransportConfig {
        listens: vec![ListenSpec {
            proto: Proto::Udp,
            addr,
            advertise: None,
        }],
        udp_children: 1,
        ..TransportConfig::default()
    })
    .unwrap();
    let sockets = transport.sockets().to_vec();
    let core = Core::new(loaded.core, transport.handle(), sockets.clone());
    let program = loaded.program;
    let route = program.request_route().unwrap();
    let recv = RecvInfo {
        proto: Proto::Udp,
        src: "127.0.0.1:5060".parse().unwrap(),
        local: sockets[0].clone(),
        conn: None,
    };
    let mut vars = Vec::new();
    let mut out = Vec::with_capacity(2048);

    // Sanity: the route does what the bench claims.
    {
        let msg = Message::parse(INVITE).unwrap();
        let mut ctx = MsgCtx::new(
            &core,
            msg,
            &recv,
            std::mem::take(&mut vars),
            RouteMask::REQUEST,
        );
        let r = program.run(route, &mut ctx);
        assert!(!r.exited || r.code != 0);
        out.clear();
        ctx.edits.serialize(&ctx.msg, &mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("X-Caller: "), "{text}");
        vars = ctx.vars;
    }

    c.bench_function("interpreter/30-statement route on an INVITE", |b| {
        b.iter(|| {
            let msg = Message::parse(black_box(INVITE)).unwrap();
            let mut ctx = MsgCtx::new(
                &core,
                msg,
                &recv,
                std::mem::take(&mut vars),
                RouteMask::REQUEST,
            );
            let r = program.run(route, &mut ctx);
            out.clear();
            ctx.edits.serialize(&ctx.msg, &mut out);
            vars = ctx.vars;
            black_box((r.code, out.len()))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! What a peer state update costs next to parsing the SIP message that causes it.

use criterion::{criterion_group, criterion_main, Criterion};
use sable_peerstate::{Cache, Candidate, DialogPeers};
use std::hint::black_box;

const INVITE: &[u8] = b"INVITE sip:2000@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:2000@example.com>\r\n\
From: \"Agent 1000\" <sip:1000@example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:1000@192.0.2.10:5060>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 0\r\n\r\n";

fn bench(c: &mut Criterion) {
    let cache = Cache::new(4096);
    for i in 0..10_000 {
        cache.registration(&format!("{i}@example.com"), true, 1);
    }
    let mut n = 0u32;
    c.bench_function("parse an INVITE (for scale)", |b| {
        b.iter(|| sable_sip::Message::parse(black_box(INVITE)).map(|m| m.headers().len()))
    });
    c.bench_function(
        "dialog: one call ringing, answered, ended (6 updates)",
        |b| {
            b.iter(|| {
                n = (n + 1) % 5000;
                let mut d = DialogPeers::new(
                    vec![format!("{n}@example.com").into()],
                    vec![format!("{}@example.com", n + 5000).into()],
                );
                cache.dialog_event(&mut d, Candidate::Ringing, 2);
                cache.dialog_event(&mut d, Candidate::InUse, 3);
                black_box(cache.dialog_event(&mut d, Candidate::Ended, 4))
            })
        },
    );
    c.bench_function("registration: one update", |b| {
        b.iter(|| {
            n = (n + 1) % 10_000;
            black_box(cache.registration(&format!("{n}@example.com"), true, 5))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

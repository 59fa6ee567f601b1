//! A full digest verification (credentials selection, nonce check, nonce count, HA1 from
//! the password, response, constant-time compare) with SHA-256 and with MD5, and the pieces
//! it is made of.
//!
//! Run: `cargo bench -p sable-auth --bench digest`.

// A benchmark panicking on a fixture it controls is a failed run, not a crash on input.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use sable_auth::{
    ha1, response, Algorithm, NonceMaker, NonceTracker, Outcome, Qop, QopInput, Request,
    ResponseInput, Stored, Verifier,
};
use sable_sip::Credentials;
use std::hint::black_box;

const NOW: u64 = 1_700_000_000;

fn header(alg: Algorithm, nonce: &str, nc: u32) -> String {
    let h = ha1(alg, b"alice", b"example.com", b"secret");
    let nc = format!("{nc:08x}");
    let r = response(
        alg,
        h.as_bytes(),
        &ResponseInput {
            method: b"REGISTER",
            uri: b"sip:example.com",
            nonce: nonce.as_bytes(),
            qop: Some(QopInput {
                qop: Qop::Auth,
                nc: nc.as_bytes(),
                cnonce: b"0a4f113b",
            }),
            body: b"",
        },
    );
    format!(
        "Digest username=\"alice\", realm=\"example.com\", nonce=\"{nonce}\", \
         uri=\"sip:example.com\", response=\"{r}\", algorithm={alg}, qop=auth, \
         nc={nc}, cnonce=\"0a4f113b\""
    )
}

fn verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify");
    let nonces = NonceMaker::new(b"a benchmark secret, 32 octets ok", 300);
    let request = Request {
        method: b"REGISTER",
        realm: b"example.com",
        body: b"",
    };
    for alg in [Algorithm::Sha256, Algorithm::Md5] {
        // Without nonce counts: the same credentials verify every time.
        let nonce = nonces.make(NOW, 0);
        let h = header(alg, &nonce, 1);
        let list = [Credentials::parse(h.as_bytes()).unwrap()];
        let v = Verifier::new(&nonces).with_algorithms(&[alg]);
        assert_eq!(
            v.verify(request, &list, Some(Stored::Password(b"secret")), NOW),
            Outcome::Authenticated
        );
        g.bench_function(format!("{alg}/password"), |b| {
            b.iter(|| {
                v.verify(
                    black_box(request),
                    black_box(&list),
                    Some(Stored::Password(b"secret")),
                    NOW,
                )
            })
        });
        let stored = ha1(alg, b"alice", b"example.com", b"secret");
        g.bench_function(format!("{alg}/ha1"), |b| {
            b.iter(|| {
                v.verify(
                    black_box(request),
                    black_box(&list),
                    Some(Stored::Ha1(stored.as_bytes())),
                    NOW,
                )
            })
        });
        // With nonce counts: a fresh nonce per iteration (tracker and nonce made inside the
        // measured loop, as a registrar does per challenge).
        let tracker = NonceTracker::new(16, 0);
        let vc = Verifier::new(&nonces)
            .with_algorithms(&[alg])
            .with_nonce_count(&tracker);
        g.bench_function(format!("{alg}/nonce_count_with_new_nonce"), |b| {
            b.iter(|| {
                let nonce = nonces.make(NOW, tracker.issue());
                let h = header(alg, &nonce, 1);
                let list = [Credentials::parse(h.as_bytes()).unwrap()];
                let outcome = vc.verify(request, &list, Some(Stored::Password(b"secret")), NOW);
                assert_eq!(outcome, Outcome::Authenticated);
                outcome
            })
        });
    }
    g.finish();
}

fn nonce(c: &mut Criterion) {
    let nonces = NonceMaker::new(b"a benchmark secret, 32 octets ok", 300);
    let n = nonces.make(NOW, 7);
    c.bench_function("nonce/make", |b| b.iter(|| nonces.make(black_box(NOW), 7)));
    c.bench_function("nonce/check", |b| {
        b.iter(|| nonces.check(black_box(n.as_bytes()), NOW))
    });
}

criterion_group!(benches, verify, nonce);
criterion_main!(benches);

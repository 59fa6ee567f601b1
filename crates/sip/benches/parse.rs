//! Parse and serialize benchmarks, with the `rsip` crate on the same bytes for comparison.
//!
//! Run: `cargo bench -p sable-sip --bench parse`. Figures and the run they come from are
//! recorded in `bench/RESULTS.md`.

// A benchmark panicking on a fixture it controls is a failed run, not a crash on input.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rsip::prelude::*;
use sable_sip::{Edits, HeaderName, Message};
use std::hint::black_box;

const INVITE: &[u8] = include_bytes!("data/invite.sip");
const REGISTER: &[u8] = include_bytes!("data/register.sip");
const OK200: &[u8] = include_bytes!("data/ok200.sip");

const MESSAGES: &[(&str, &[u8])] = &[("invite", INVITE), ("register", REGISTER), ("200ok", OK200)];

/// Start line + header index (what every message pays), against rsip's parse into its
/// message struct with untyped headers.
fn index(c: &mut Criterion) {
    let mut g = c.benchmark_group("index");
    for &(name, bytes) in MESSAGES {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new("sable", name), bytes, |b, bytes| {
            b.iter(|| {
                let m = Message::parse(black_box(bytes)).unwrap();
                black_box(m.headers().len())
            })
        });
        g.bench_with_input(BenchmarkId::new("rsip", name), bytes, |b, bytes| {
            b.iter(|| {
                let m = rsip::SipMessage::try_from(black_box(bytes)).unwrap();
                black_box(m.headers().iter().count())
            })
        });
    }
    g.finish();
}

/// Index plus the typed views a proxy reads on every message: top Via (branch), From and To
/// (tags), Call-ID, CSeq.
fn typed(c: &mut Criterion) {
    let mut g = c.benchmark_group("typed");
    for &(name, bytes) in MESSAGES {
        g.bench_with_input(BenchmarkId::new("sable", name), bytes, |b, bytes| {
            b.iter(|| {
                let m = Message::parse(black_box(bytes)).unwrap();
                let branch = m.top_via().unwrap().branch().map(<[u8]>::len);
                let ftag = m.from().unwrap().tag().map(<[u8]>::len);
                let ttag = m.to().unwrap().tag().map(<[u8]>::len);
                black_box((
                    branch,
                    ftag,
                    ttag,
                    m.call_id().unwrap().len(),
                    m.cseq().unwrap().number,
                ))
            })
        });
        g.bench_with_input(BenchmarkId::new("rsip", name), bytes, |b, bytes| {
            b.iter(|| {
                let m = rsip::SipMessage::try_from(black_box(bytes)).unwrap();
                let via = m.via_header().unwrap().typed().unwrap();
                let from = m.from_header().unwrap().typed().unwrap();
                let to = m.to_header().unwrap().typed().unwrap();
                let call_id = m.call_id_header().unwrap().value().len();
                let cseq = m.cseq_header().unwrap().typed().unwrap();
                black_box((
                    via.branch().is_some(),
                    from.tag().is_some(),
                    to.tag().is_some(),
                    call_id,
                    cseq.seq,
                ))
            })
        });
    }
    g.finish();
}

/// A proxy's three edits (new top Via, Record-Route, decremented Max-Forwards) recorded and
/// serialized into a reused buffer; the message is parsed outside the loop.
fn serialize(c: &mut Criterion) {
    let mut g = c.benchmark_group("serialize");
    let m = Message::parse(INVITE).unwrap();
    let mut out = Vec::with_capacity(2048);
    let mut edits = Edits::new();
    g.bench_function("sable/invite_3_edits", |b| {
        b.iter(|| {
            edits.clear();
            edits
                .add_via(&m, b"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKsable.1")
                .unwrap();
            edits.add_record_route(&m, b"<sip:192.0.2.10;lr>").unwrap();
            let mf = m.header(HeaderName::MaxForwards).unwrap();
            edits.replace_value(mf, b"69").unwrap();
            edits.serialize(black_box(&m), &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("sable/invite_no_edits", |b| {
        let none = Edits::new();
        b.iter(|| {
            none.serialize(black_box(&m), &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, index, typed, serialize);
criterion_main!(benches);

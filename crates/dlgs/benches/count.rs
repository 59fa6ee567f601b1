//! `dlgs_count` and `dlgs_tags_count` cost against the table size: `eq` and tags come from
//! hash indexes and stay flat from 100 to 100,000 records; `re` scans and grows linearly.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sable_dlgs::{Config, Field, Filter, Op, Store};
use std::hint::black_box;

fn table(n: usize) -> Store {
    let mut s = Store::new(Config::default());
    for i in 0..n {
        let call_id = format!("call-{i}@bench");
        s.init(
            &format!("sip:user{}@example.com", i % 1000),
            &format!("sip:gw{}@example.net", i % 10),
            "data",
            &call_id,
            "ft",
            0,
        )
        .unwrap();
        s.tags_add(&call_id, &format!("10.0.{}.{}", (i / 256) % 4, i % 256))
            .unwrap();
    }
    s
}

fn counts(c: &mut Criterion) {
    let sizes = [100usize, 1_000, 10_000, 100_000];
    let mut group = c.benchmark_group("dlgs_count");
    for &n in &sizes {
        let s = table(n);
        group.bench_with_input(BenchmarkId::new("src_eq", n), &s, |b, s| {
            b.iter(|| s.count(Field::Src, Op::Eq, black_box("sip:user7@example.com")))
        });
        group.bench_with_input(BenchmarkId::new("tags_count", n), &s, |b, s| {
            b.iter(|| s.tags_count(black_box("10.0.0.7")))
        });
        group.bench_with_input(BenchmarkId::new("any", n), &s, |b, s| {
            b.iter(|| s.count(Field::Any, Op::Eq, black_box("*")))
        });
        if n <= 10_000 {
            let re = Filter::new(Field::Src, Op::Re, "^sip:user7[0-9]*@").unwrap();
            group.bench_with_input(BenchmarkId::new("src_re_scan", n), &s, |b, s| {
                b.iter(|| s.count_filter(black_box(&re)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, counts);
criterion_main!(benches);

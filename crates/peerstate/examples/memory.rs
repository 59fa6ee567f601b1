//! How much memory N peers take: fills a cache with N registered peers, a tenth of them in
//! a call, and prints the cache's own accounting and the process's resident growth.
//! Usage: `cargo run --release -p sable-peerstate --example memory [N]` (default 100000).

use sable_peerstate::{Cache, Candidate, DialogPeers};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let before = rss_kib();
    let cache = Cache::new(4096);
    let empty = cache.approx_bytes();
    for i in 0..n {
        cache.registration(&format!("agent{i}@callcenter.example.com"), true, 1);
    }
    let mut calls = Vec::new();
    for i in (0..n).step_by(20) {
        let mut d = DialogPeers::new(
            vec![format!("agent{i}@callcenter.example.com").into()],
            vec![format!("agent{}@callcenter.example.com", i + 1).into()],
        );
        cache.dialog_event(&mut d, Candidate::InUse, 2);
        calls.push(d);
    }
    let after = rss_kib();
    let own = cache.approx_bytes() - empty;
    println!(
        "{n} peers ({} in calls): cache accounting {} bytes ({} per peer); RSS growth {} KiB ({} bytes per peer)",
        calls.len() * 2,
        own,
        own / n.max(1),
        after.saturating_sub(before),
        after.saturating_sub(before) * 1024 / n.max(1) as u64
    );
    assert_eq!(cache.stats().total_peers, i64::try_from(n).unwrap_or(0));
}

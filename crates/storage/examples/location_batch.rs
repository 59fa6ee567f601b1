//! What a usrloc db_mode 2 write-back costs SQLite: N new bindings shaped like the
//! REGISTER benchmark's (`bench/reg.xml`), written in one batch
//! ([`Database::apply_batch`]), then the same N bindings refreshed (new expires, CSeq,
//! last_modified) in a second batch. Prints the wall time of each batch; for figures that do
//! not move with the machine's load, count instructions, e.g.
//! `valgrind --tool=callgrind --toggle-collect='*apply_batch*' target/release/examples/location_batch 20000`
//! (or `perf stat -e instructions:u` on runs of two sizes and take the difference).
//!
//! Usage: `location_batch [N] [new|refresh|both]` (defaults 20000, both).

use std::time::Instant;

/// CPU time of this (single-threaded) process so far, user and system, in nanoseconds.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

use sable_storage::{Change, Database, LocationRow, TableName};

fn binding(i: u64, now: i64, cseq: i32) -> LocationRow {
    LocationRow {
        ruid: format!("uloc-{:x}-{:x}-{:x}", now, 4242, i + 1),
        username: format!("user{i}"),
        domain: None,
        contact: format!("sip:user{i}@127.0.0.1:5080"),
        received: None,
        path: None,
        expires: now + 3600,
        q: -1.0,
        callid: format!("{i}-4242@127.0.0.1"),
        cseq,
        last_modified: now,
        flags: 0,
        cflags: 0,
        user_agent: String::new(),
        socket: Some("udp:127.0.0.1:5060".to_owned()),
        methods: None,
        instance: None,
        reg_id: 0,
        server_id: 0,
        connection_id: 0,
        keepalive: 0,
        partition: 0,
    }
}

fn report(what: &str, n: u64, started: Instant, cpu: u64) {
    let wall = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    let cpu = (cpu_ns() - cpu) as f64 / 1e3 / n as f64;
    println!("{what}: {n} rows, {cpu:.2} us CPU/row, {wall:.2} us wall/row");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let what = args.next().unwrap_or_else(|| "both".to_owned());
    let path = std::env::temp_dir().join(format!("sable-location-batch-{}.db", std::process::id()));
    let remove = || {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    };
    remove();
    let mut db = Database::create(&path)?;
    // An experiment's changes to the schema or the connection, e.g.
    // LOCATION_BATCH_SETUP='DROP INDEX location_expires_idx'.
    if let Ok(setup) = std::env::var("LOCATION_BATCH_SETUP") {
        rusqlite::Connection::open(&path)?.execute_batch(&setup)?;
    }
    let table = TableName::location();
    let now = 1_795_343_296;
    // The order the bindings are written in: as created (default), `shuffled` (as the
    // write-back's hash map hands them over when it does not sort them) or `ruid` (sorted
    // by ruid); LOCATION_BATCH_ORDER.
    let order = std::env::var("LOCATION_BATCH_ORDER").unwrap_or_default();
    let mut ids: Vec<u64> = (0..n).collect();
    if order == "shuffled" || order == "ruid" {
        // A fixed pseudo-random permutation (Fisher-Yates with an LCG).
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for i in (1..ids.len()).rev() {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ids.swap(i, (state >> 33) as usize % (i + 1));
        }
    }
    if order == "ruid" {
        ids.sort_by_key(|i| binding(*i, now, 1).ruid);
    }
    let new: Vec<Change> = ids
        .iter()
        .map(|i| Change::Insert(Box::new(binding(*i, now, 1))))
        .collect();
    let (started, cpu) = (Instant::now(), cpu_ns());
    db.apply_batch(&table, &new)?;
    if what != "refresh" {
        report("new", n, started, cpu);
    }
    if what != "new" {
        let refreshed: Vec<Change> = ids
            .iter()
            .map(|i| {
                let mut row = binding(*i, now, 2);
                row.expires += 60;
                row.last_modified += 60;
                Change::Upsert(Box::new(row))
            })
            .collect();
        let (started, cpu) = (Instant::now(), cpu_ns());
        db.apply_batch(&table, &refreshed)?;
        report("refresh", n, started, cpu);
    }
    drop(db);
    remove();
    Ok(())
}

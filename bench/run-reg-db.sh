#!/usr/bin/env bash
# What usrloc's db_mode 2 (write-back to SQLite) costs Sable: the same REGISTER load on
# bench/configs/registrar.cfg (memory only) and bench/configs/registrar-db2.cfg (db_mode 2,
# timer_interval 10 s), CPU of the server including the write-backs (it runs until one
# interval after the load so that every change is written).
# Usage: bench/run-reg-db.sh [REGS] [RATE]   (defaults 20000, 1000). Build first:
# `cargo build --release -p sable -p sablectl`.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
n=${1:-20000}
rate=${2:-1000}
sable=${SABLE:-$root/target/release/sable}
sablectl=${SABLECTL:-$root/target/release/sablectl}
hz=$(getconf CLK_TCK)
db=/tmp/sable-bench-reg.db
cpu_of() { awk '{print $14+$15}' "/proc/$1/stat"; }
for cfg in registrar.cfg registrar-db2.cfg; do
    rm -f "$db" "$db-wal" "$db-shm"
    "$sablectl" db init "$db" >/dev/null
    "$sable" -f "$here/configs/$cfg" >/dev/null 2>/tmp/sable-bench-reg.log &
    main=$!
    sleep 1
    b=$(cpu_of $main)
    sipp 127.0.0.1:5060 -sf "$here/reg.xml" -i 127.0.0.1 -p 5080 -r "$rate" -m "$n" -nostdin >/dev/null 2>&1
    sleep 11
    a=$(cpu_of $main)
    kill "$main"; wait "$main" 2>/dev/null
    rows=$(python3 -c "import sqlite3; print(sqlite3.connect('$db').execute('select count(*) from location').fetchone()[0])")
    cpu=$(echo "scale=3; ($a - $b) / $hz" | bc)
    echo "$cfg cpu_s=$cpu us_per_reg=$(echo "scale=1; $cpu * 1000000 / $n" | bc) rows_in_db=$rows"
done

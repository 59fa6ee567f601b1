#!/usr/bin/env bash
# What usrloc's db_mode 2 (write-back to SQLite) costs Sable: the same REGISTER load on
# bench/configs/registrar.cfg (memory only) and bench/configs/registrar-db2.cfg (db_mode 2,
# timer_interval 10 s), CPU of the server including the write-backs (it runs until one
# interval after the load so that every change is written).
# Three rounds, the two configs interleaved; the medians are compared (single runs on this
# machine move by ±20%).
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
one() { # cfg -> prints us per REGISTER
    local cfg=$1
    rm -f "$db" "$db-wal" "$db-shm"
    "$sablectl" db init "$db" >/dev/null
    "$sable" -f "$here/configs/$cfg" >/dev/null 2>/tmp/sable-bench-reg.log &
    local main=$!
    sleep 1
    local b a
    b=$(cpu_of $main)
    sipp 127.0.0.1:5060 -sf "$here/reg.xml" -i 127.0.0.1 -p 5080 -r "$rate" -m "$n" -nostdin >/dev/null 2>&1
    sleep 11
    a=$(cpu_of $main)
    kill "$main"; wait "$main" 2>/dev/null
    local rows
    rows=$(python3 -c "import sqlite3; print(sqlite3.connect('$db').execute('select count(*) from location').fetchone()[0])")
    echo "$cfg rows_in_db=$rows us_per_reg=$(echo "scale=1; ($a - $b) * 1000000 / $hz / $n" | bc)" >&2
    echo "scale=1; ($a - $b) * 1000000 / $hz / $n" | bc
}
m0=(); m2=()
for round in 1 2 3; do
    m0+=("$(one registrar.cfg)")
    m2+=("$(one registrar-db2.cfg)")
done
med() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
a=$(med "${m0[@]}"); b=$(med "${m2[@]}")
echo "median us/REGISTER: db_mode 0 $a, db_mode 2 $b, cost +$(echo "scale=1; ($b - $a) * 100 / $a" | bc)%"

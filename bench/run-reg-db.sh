#!/usr/bin/env bash
# What usrloc's db_mode 2 (write-back to SQLite) costs Sable: the same REGISTER load on
# bench/configs/registrar.cfg (memory only) and bench/configs/registrar-db2.cfg (db_mode 2,
# timer_interval 10 s), CPU of the server including the write-backs (it runs until one
# interval after the load so that every change is written).
# Three rounds, the two configs interleaved; the medians are compared (single runs on this
# machine move by ±20%).
# Usage: bench/run-reg-db.sh [REGS] [RATE]   (defaults 20000, 1000). Build first:
# `cargo build --release -p sable -p sablectl`.
# Environment: SABLE, SABLECTL (the binaries), SIP_PORT (Sable's port, default 5060),
# SIPP_PORT (sipp's, default 5080), DB (the database file, default
# /tmp/sable-bench-reg.db): other ports and file when another benchmark runs at the same
# time (the configs are copied with them substituted).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
n=${1:-20000}
rate=${2:-1000}
sable=${SABLE:-$root/target/release/sable}
sablectl=${SABLECTL:-$root/target/release/sablectl}
hz=$(getconf CLK_TCK)
db=${DB:-/tmp/sable-bench-reg.db}
sip_port=${SIP_PORT:-5060}
sipp_port=${SIPP_PORT:-5080}
cfg_dir=$(mktemp -d)
trap 'rm -rf "$cfg_dir"' EXIT
for cfg in registrar.cfg registrar-db2.cfg; do
    sed -e "s|127.0.0.1:5060|127.0.0.1:$sip_port|" -e "s|sqlite:///*tmp/sable-bench-reg.db|sqlite://$db|" \
        "$here/configs/$cfg" >"$cfg_dir/$cfg"
done
log=$cfg_dir/sable.log
cpu_of() { awk '{print $14+$15}' "/proc/$1/stat"; }
one() { # cfg -> prints us per REGISTER
    local cfg=$1
    rm -f "$db" "$db-wal" "$db-shm"
    "$sablectl" db init "$db" >/dev/null
    "$sable" -f "$cfg_dir/$cfg" >/dev/null 2>"$log" &
    local main=$!
    sleep 1
    local b a
    b=$(cpu_of $main)
    sipp "127.0.0.1:$sip_port" -sf "$here/reg.xml" -i 127.0.0.1 -p "$sipp_port" -r "$rate" -m "$n" -nostdin >/dev/null 2>&1
    sleep 11
    a=$(cpu_of $main)
    # The busiest threads (CPU ticks since start, name), to tell the write-back apart.
    local threads
    threads=$(for t in /proc/$main/task/*; do
        echo "$(awk '{print $14+$15}' "$t/stat") $(cat "$t/comm")"
    done | sort -rn | head -3 | tr '\n' ' ')
    kill "$main"; wait "$main" 2>/dev/null
    local rows
    rows=$(python3 -c "import sqlite3; print(sqlite3.connect('$db').execute('select count(*) from location').fetchone()[0])")
    echo "$cfg rows_in_db=$rows threads: $threads us_per_reg=$(echo "scale=1; ($a - $b) * 1000000 / $hz / $n" | bc)" >&2
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

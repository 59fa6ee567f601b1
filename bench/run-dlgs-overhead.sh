#!/usr/bin/env bash
# What dlgs tracking costs Sable: the same SIPp load (calls at RATE/s, SIPp UAS on :5070)
# through bench/configs/stateless.cfg and bench/configs/dlgs.cfg (the same plus dlgs_init in
# onsend_route, dlgs_update, a dlgs_count per request); CPU of the server per call, three
# rounds interleaved, medians compared. Debian's Kamailio 5.6 has no dlgs module, so this is
# the issue's fallback measure (goal: under 15%).
# Usage: bench/run-dlgs-overhead.sh [CALLS] [RATE]   (defaults 5000, 500). Build first:
# `cargo build --release -p sable`.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
calls=${1:-5000}
rate=${2:-500}
sable=${SABLE:-$root/target/release/sable}
hz=$(getconf CLK_TCK)
cpu_of() { awk '{print $14+$15}' "/proc/$1/stat"; }
one() { # cfg -> us per call
    "$sable" -f "$here/configs/$1" >/dev/null 2>/tmp/sable-bench-dlgs.log &
    local main=$!
    sleep 1
    sipp -sn uas -i 127.0.0.1 -p 5070 -nostdin >/dev/null 2>&1 &
    local uas=$!
    sleep 0.5
    local b a
    b=$(cpu_of $main)
    sipp -sn uac 127.0.0.1:5060 -i 127.0.0.1 -p 5080 -s service -r "$rate" -m "$calls" -nostdin >/dev/null 2>&1
    a=$(cpu_of $main)
    kill "$uas" "$main"; wait "$uas" "$main" 2>/dev/null
    echo "$1 us_per_call=$(echo "scale=1; ($a - $b) * 1000000 / $hz / $calls" | bc)" >&2
    echo "scale=1; ($a - $b) * 1000000 / $hz / $calls" | bc
}
m0=(); m1=()
for round in 1 2 3; do
    m0+=("$(one stateless.cfg)")
    m1+=("$(one dlgs.cfg)")
done
med() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
a=$(med "${m0[@]}"); b=$(med "${m1[@]}")
echo "median us/call: stateless $a, with dlgs $b, cost +$(echo "scale=1; ($b - $a) * 100 / $a" | bc)%"

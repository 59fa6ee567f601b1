#!/usr/bin/env bash
# What peerstate costs Sable: 10,000 agents register (bench/reg-agents.xml, contacts on the
# SIPp UAS at :5070), then agent calls agent (bench/uac-agents.xml, pairs taken in turn) at
# RATE/s through bench/configs/peerstate.cfg and through the same file without peerstate;
# CPU of the server per call during the calls only, three rounds interleaved, medians
# compared (goal: within 10%). Debian's Kamailio 5.6 has no peerstate: no Kamailio figure.
# Usage: bench/run-peerstate.sh [CALLS] [RATE] [AGENTS]   (defaults 5000, 500, 10000).
# Ports: the server on BASE (default 7060), the UAS on BASE+10, SIPp clients on BASE+20/21.
# Build first: `cargo build --release -p sable -p sablectl`.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
calls=${1:-5000}
rate=${2:-500}
agents=${3:-10000}
sable=${SABLE:-$root/target/release/sable}
hz=$(getconf CLK_TCK)
base=${BASE:-7060}
dir=$(mktemp -d)
sed "s/127.0.0.1:5060/127.0.0.1:$base/" "$here/configs/peerstate.cfg" >"$dir/peerstate.cfg"
grep -v 'peerstate.so' "$dir/peerstate.cfg" >"$dir/baseline.cfg"
# Caller and callee rows: agent i calls agent (i + agents/2) mod agents.
{
    echo SEQUENTIAL
    half=$((agents / 2))
    for ((i = 1; i <= half; i++)); do echo "agent$i;agent$((i + half))"; done
} >"$dir/pairs.csv"
cpu_of() { awk '{print $14+$15}' "/proc/$1/stat"; }
one() { # cfg -> us per call
    "$sable" -f "$dir/$1" >/dev/null 2>"$dir/sable.log" &
    local main=$!
    sleep 1
    sipp -sn uas -i 127.0.0.1 -p $((base + 10)) -nostdin >/dev/null 2>&1 &
    local uas=$!
    sipp -sf "$here/reg-agents.xml" "127.0.0.1:$base" -i 127.0.0.1 -p $((base + 21)) \
        -key uas_port $((base + 10)) -r 2000 -m "$agents" -nostdin >/dev/null 2>&1 ||
        echo "registrations failed" >&2
    sleep 0.5
    local b a
    b=$(cpu_of $main)
    sipp -sf "$here/uac-agents.xml" "127.0.0.1:$base" -i 127.0.0.1 -p $((base + 20)) -inf "$dir/pairs.csv" \
        -r "$rate" -m "$calls" -nostdin >/dev/null 2>&1 || echo "some calls failed" >&2
    a=$(cpu_of $main)
    kill "$uas" "$main"; wait "$uas" "$main" 2>/dev/null
    echo "$1 us_per_call=$(echo "scale=1; ($a - $b) * 1000000 / $hz / $calls" | bc)" >&2
    echo "scale=1; ($a - $b) * 1000000 / $hz / $calls" | bc
}
m0=(); m1=()
for round in 1 2 3; do
    m0+=("$(one baseline.cfg)")
    m1+=("$(one peerstate.cfg)")
done
med() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
a=$(med "${m0[@]}"); b=$(med "${m1[@]}")
echo "median us/call: without peerstate $a, with peerstate $b, cost $(echo "scale=1; ($b - $a) * 100 / $a" | bc)%"
rm -rf "$dir"

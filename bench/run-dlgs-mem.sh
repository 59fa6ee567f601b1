#!/usr/bin/env bash
# dlgs memory: N calls set up and left up (bench/uac-nobye.xml, bench/uas-nobye.xml: no BYE,
# so every record stays active, SIPp keeps nothing) through bench/configs/dlgs.cfg with a
# control socket; read when all are up: the module's own accounting (`dlgs.memory`: records,
# strings, indexes, deadline queue) and the process's proportional set size growth.
# Usage: bench/run-dlgs-mem.sh [CALLS] [RATE]   (defaults 100000, 2000).
# Ports: the server on BASE (default 7160), the UAS on BASE+10, the UAC on BASE+20.
# Build first: `cargo build --release -p sable -p sablectl`.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
n=${1:-100000}
rate=${2:-2000}
base=${BASE:-7160}
sable=${SABLE:-$root/target/release/sable}
sablectl=${SABLECTL:-$root/target/release/sablectl}
dir=$(mktemp -d)
sock=$dir/ctl
sed -e "s/127.0.0.1:5060/127.0.0.1:$base/" -e "s/127.0.0.1:5070/127.0.0.1:$((base + 10))/" \
    -e "s|^loadmodule \"dlgs.so\"|loadmodule \"dlgs.so\"\nloadmodule \"ctl.so\"\nmodparam(\"ctl\", \"binrpc\", \"unix:$sock\")|" \
    "$here/configs/dlgs.cfg" >"$dir/dlgs.cfg"
pss_of() { awk '/^Pss:/{print $2}' "/proc/$1/smaps_rollup"; }
"$sable" -f "$dir/dlgs.cfg" >/dev/null 2>"$dir/sable.log" &
main=$!
sleep 1
pb=$(pss_of $main)
sipp -sf "$here/uas-nobye.xml" -i 127.0.0.1 -p $((base + 10)) -nostdin >/dev/null 2>&1 &
uas=$!
sleep 0.5
sipp -sf "$here/uac-nobye.xml" "127.0.0.1:$base" -i 127.0.0.1 -p $((base + 20)) -r "$rate" -m "$n" \
    -nostdin >/dev/null 2>&1 || echo "some calls failed" >&2
sleep 2
pa=$(pss_of $main)
stats=$("$sablectl" -s "$sock" --json rpc dlgs.stats)
mem=$("$sablectl" -s "$sock" --json rpc dlgs.memory)
kill "$uas" "$main"; wait "$uas" "$main" 2>/dev/null
echo "dlgs.stats: $stats"
echo "dlgs.memory: $mem"
echo "PSS growth: $(( (pa - pb) * 1024 / n )) bytes per call ($(( (pa - pb) / 1024 )) MiB for $n)"
rm -rf "$dir"

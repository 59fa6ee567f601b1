#!/usr/bin/env bash
# End-to-end CPU comparison: Kamailio 5.6 and Sable on the same config, the same SIPp load.
#
# Usage: bench/run-e2e.sh [CFG] [CALLS] [RATE]
#   CFG    a config both servers load (default bench/configs/stateless.cfg): it must listen on
#          udp:127.0.0.1:5060 and relay to the SIPp UAS on 127.0.0.1:5070
#   CALLS  calls per server (default 5000), RATE calls per second (default 500)
#
# For each server: start it, start a SIPp UAS on :5070, place CALLS calls from a SIPp UAC on
# :5080, and read the server's CPU time (user+sys of all its processes and threads, from
# /proc) before and after the load. Prints one line per server and the ratio. Needs
# kamailio, sipp, bc; run it on an otherwise idle machine; build Sable and the floor relay
# first: `cargo build --release -p sable && cargo build --release -p sable-transport --example
# udp_relay` (one command with both would build only the example).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cfg=${1:-$here/configs/stateless.cfg}
calls=${2:-5000}
rate=${3:-500}
sable=${SABLE:-$root/target/release/sable}
relay=${RELAY:-$root/target/release/examples/udp_relay}
hz=$(getconf CLK_TCK)
dir=$(mktemp -d)

cpu_of() { # pids... -> clock ticks (utime+stime, threads included)
    local sum=0 t
    for p in "$@"; do
        t=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        sum=$((sum + t))
    done
    echo "$sum"
}

rss_of() { # pids... -> kB
    local sum=0 r
    for p in "$@"; do
        r=$(awk '/VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        sum=$((sum + r))
    done
    echo "$sum"
}

run_one() { # name -> prints "name cpu_s failed successful rss"
    local name=$1 pids main
    if [ "$name" = kamailio ]; then
        kamailio -f "$cfg" -P "$dir/k.pid" -m 256 -M 16 -E -e >/dev/null 2>"$dir/kamailio.log" &
        sleep 1.5
        main=$(cat "$dir/k.pid")
        pids="$main $(pgrep -d' ' -P "$main")"
    elif [ "$name" = floor ]; then
        "$relay" 127.0.0.1:5060 127.0.0.1:5070 127.0.0.1:5080 2>"$dir/floor.log" &
        main=$!
        sleep 0.5
        pids=$main
    else
        "$sable" -f "$cfg" >/dev/null 2>"$dir/sable.log" &
        main=$!
        sleep 1
        pids=$main
    fi
    sipp -sn uas -i 127.0.0.1 -p 5070 -nostdin -trace_err -error_file "$dir/$name-uas.err" >/dev/null 2>&1 &
    local uas=$!
    sleep 0.5
    local before after
    before=$(cpu_of $pids)
    sipp -sn uac 127.0.0.1:5060 -i 127.0.0.1 -p 5080 -s service -r "$rate" -m "$calls" -nostdin \
        -trace_stat -stf "$dir/$name-uac.csv" -trace_err -error_file "$dir/$name-uac.err" >/dev/null 2>&1
    after=$(cpu_of $pids)
    local rss
    rss=$(rss_of $pids)
    local stats
    # Last line of SIPp's statistics: cumulative successful ($16) and failed ($18) calls.
    stats=$(grep -v '^$' "$dir/$name-uac.csv" | tail -1 | awk -F';' '{print $16" "$18}')
    kill "$uas" 2>/dev/null
    if [ "$name" = kamailio ]; then kill "$main" 2>/dev/null; else kill -TERM "$main" 2>/dev/null; fi
    wait "$main" 2>/dev/null
    sleep 0.5
    echo "$name $(echo "scale=3; ($after - $before) / $hz" | bc) $stats $rss"
}

echo "config=$(basename "$cfg") calls=$calls rate=$rate"
k=$(run_one kamailio)
s=$(run_one sable)
printf "%-9s %10s %10s %8s %8s %10s\n" server cpu_s us/call ok failed rss_kb
for line in "$k" "$s"; do
    set -- $line
    printf "%-9s %10s %10s %8s %8s %10s\n" "$1" "$2" "$(echo "scale=1; $2 * 1000000 / $calls" | bc)" "$3" "$4" "$5"
done
kc=$(echo "$k" | awk '{print $2}')
sc=$(echo "$s" | awk '{print $2}')
echo "ratio sable/kamailio CPU: $(echo "scale=3; $sc / $kc" | bc)"
# The floor: a bare UDP relay (no SIP) under the same load. SIPp's UAS answers the UAC
# directly (the relay adds no Via), so it relays the 3 requests of a call, not the 6
# datagrams the proxies relay: compare CPU per datagram.
if [ -x "$relay" ]; then
    f=$(run_one floor)
    fc=$(echo "$f" | awk '{print $2}')
    echo "floor (bare UDP relay, requests only): cpu_s=$fc  us/datagram=$(echo "scale=1; $fc * 1000000 / ($calls * 3)" | bc)"
    echo "proxies per datagram (6 a call): kamailio $(echo "scale=1; $kc * 1000000 / ($calls * 6)" | bc) us, sable $(echo "scale=1; $sc * 1000000 / ($calls * 6)" | bc) us"
fi
echo "logs and SIPp statistics: $dir"

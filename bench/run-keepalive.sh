#!/usr/bin/env bash
# keepalive: CPU of Kamailio 5.6 and of Sable probing the same N destinations (default 1000)
# every second with OPTIONS, for SECS seconds (default 30) after a 5 s warm-up, in one run.
# Destinations: users gw0..gwN-1 spread over four SIPp processes on 127.0.0.1:5071-5074, each
# answering every OPTIONS with 200 (tests/sipp/keepalive/uas_options_200.xml). Kamailio's CPU
# is the sum over all its processes (/proc/PID/stat utime+stime). Each server's tm.stats `2xx`
# over the same window counts the probes answered (should be about N x SECS): the run says
# how many it saw. (kamcmd cannot print keepalive.list for 1,000 destinations: "reply too
# big".)
# Usage: bench/run-keepalive.sh [N] [SECS] [ROUNDS]   (defaults 1000, 30, 1). Needs kamailio,
# kamcmd, sipp, bc. Build first: `cargo build --release -p sable -p sablectl`.
# Environment: KA_BASE_PORT (default 5060): the server listens on it and the SIPp
# destinations on KA_BASE_PORT+11..+14, so that two runs on one machine do not collide;
# SABLE / SABLECTL: the binaries (SABLE_B: a second Sable binary, run as a third server in
# each round, to compare two builds in the same conditions).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
n=${1:-1000}
secs=${2:-30}
rounds=${3:-1}
target=${CARGO_TARGET_DIR:-$root/target}
sable=${SABLE:-$target/release/sable}
sablectl=${SABLECTL:-$target/release/sablectl}
hz=$(getconf CLK_TCK)
dir=$(mktemp -d /tmp/sable-bench-ka.XXXXXX)
base=${KA_BASE_PORT:-5060}
sable_b=${SABLE_B:-}
ctl=/tmp/sable-bench-ka-ctl-$base

cfg="$dir/keepalive.cfg"
{
    for ((i = 0; i < n; i++)); do
        echo "modparam(\"keepalive\", \"destination\", \"sip:gw$i@127.0.0.1:$((base + 11 + i % 4))\")"
    done
} >"$dir/dests"
sed -e "/^#DESTINATIONS$/r $dir/dests" -e '/^#DESTINATIONS$/d' \
    -e "s|^listen=udp:127.0.0.1:5060$|listen=udp:127.0.0.1:$base|" \
    -e "s|unix:/tmp/sable-bench-ka-ctl|unix:$ctl|" "$here/configs/keepalive.cfg" >"$cfg"

cpu_of() { # pids... -> ticks
    local sum=0 t p
    for p in "$@"; do
        t=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        sum=$((sum + t))
    done
    echo "$sum"
}

uas=()
for port in $((base + 11)) $((base + 12)) $((base + 13)) $((base + 14)); do
    sipp -sf "$root/tests/sipp/keepalive/uas_options_200.xml" -i 127.0.0.1 -p "$port" -nostdin \
        >/dev/null 2>"$dir/uas-$port.log" &
    uas+=($!)
done
sleep 0.5

answered() { # name -> tm 2xx count so far
    if [ "$1" = kamailio ]; then
        kamcmd -s "unix:$ctl" tm.stats 2>/dev/null | awk '/2xx:/{print $2}'
    else
        "$sablectl" -s "$ctl" --json rpc tm.stats 2>/dev/null | tr -d ' ,' | awk -F: '/"2xx"/{print $2}'
    fi
}

run_one() { # name -> prints "name cpu_seconds probes_answered"
    local name=$1 pids main up
    rm -f "$ctl" "$dir/k.pid"
    if [ "$name" = kamailio ]; then
        kamailio -f "$cfg" -P "$dir/k.pid" -m 256 -M 16 -E -e >/dev/null 2>"$dir/kamailio.log" &
        for _ in $(seq 50); do [ -s "$dir/k.pid" ] && break; sleep 0.2; done
        sleep 1
        main=$(cat "$dir/k.pid")
        pids="$main $(pgrep -d' ' -P "$main")"
    else
        local bin=$sable
        [ "$name" = sable_b ] && bin=$sable_b
        "$bin" -f "$cfg" >/dev/null 2>"$dir/$name.log" &
        main=$!
        sleep 1.5
        pids=$main
    fi
    sleep 5
    local before after a0 a1
    a0=$(answered "$name")
    before=$(cpu_of $pids)
    sleep "$secs"
    after=$(cpu_of $pids)
    a1=$(answered "$name")
    up=$((a1 - a0))
    kill -TERM "$main" 2>/dev/null
    wait "$main" 2>/dev/null
    sleep 1
    echo "$name $(echo "scale=3; ($after - $before) / $hz" | bc) $up"
}

echo "destinations=$n interval=1s measured=${secs}s rounds=$rounds"
for ((r = 1; r <= rounds; r++)); do
    k=$(run_one kamailio)
    s=$(run_one sable)
    echo "round $r: $k | $s"
    kc=$(echo "$k" | awk '{print $2}')
    sc=$(echo "$s" | awk '{print $2}')
    ku=$(echo "$k" | awk '{print $3}')
    su=$(echo "$s" | awk '{print $3}')
    echo "  kamailio: ${kc}s CPU, $ku probes answered; sable: ${sc}s CPU, $su probes answered (expected about $((n * secs)))"
    echo "  per probe: kamailio $(echo "scale=1; $kc * 1000000 / ($n * $secs)" | bc) us, sable $(echo "scale=1; $sc * 1000000 / ($n * $secs)" | bc) us"
    echo "  ratio sable/kamailio CPU: $(echo "scale=3; $sc / $kc" | bc)"
    if [ -n "$sable_b" ]; then
        b=$(run_one sable_b)
        bc_=$(echo "$b" | awk '{print $2}')
        echo "  sable_b ($sable_b): ${bc_}s CPU, $(echo "$b" | awk '{print $3}') probes answered, ratio $(echo "scale=3; $bc_ / $kc" | bc)"
    fi
    echo "  load: $(uptime | sed 's/.*load average: //')"
done
kill "${uas[@]}" 2>/dev/null
wait "${uas[@]}" 2>/dev/null
rm -rf "$dir"

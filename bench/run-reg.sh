#!/usr/bin/env bash
# REGISTER load: Kamailio 5.6 and Sable on the same registrar config, the same SIPp load of
# distinct REGISTERs (bench/reg.xml: one AOR per call), CPU per REGISTER and memory per
# stored contact, in one run.
#
# Usage: bench/run-reg.sh [REGS] [RATE]   (defaults 20000, 1000)
# Ports (other benchmarks may run at the same time): the servers listen on BASE (default
# 9060), SIPp sends from BASE+20; the configs are copied into a temporary directory with
# the port and the control socket substituted (the files in bench/configs stay as they are).
# ONLY=cpu or ONLY=mem runs one half.
# CPU: user+sys of every process/thread of the server during the load
# (bench/configs/registrar.cfg, the shared file unchanged). Memory: a second run per server
# on bench/configs/registrar-ctl.cfg (the same plus a control socket): Kamailio's
# `core.shmmem` "used" and "real_used" growth; Sable's proportional set size growth and its
# own accounting (`ul.memory`: the bytes the location tables hold, per contact).
# Build Sable first: `cargo build --release -p sable -p sablectl`.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
n=${1:-20000}
rate=${2:-1000}
sable=${SABLE:-$root/target/release/sable}
sablectl=${SABLECTL:-$root/target/release/sablectl}
hz=$(getconf CLK_TCK)
base=${BASE:-9060}
uac_port=$((base + 20))
only=${ONLY:-}
dir=$(mktemp -d)
ctl=$dir/ctl
for cfg in registrar registrar-ctl; do
    sed -e "s/127.0.0.1:5060/127.0.0.1:$base/" -e "s|unix:/tmp/sable-bench-ctl|unix:$ctl|" \
        "$here/configs/$cfg.cfg" >"$dir/$cfg.cfg"
done

cpu_of() { local s=0 t; for p in "$@"; do t=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0); s=$((s + t)); done; echo "$s"; }
pss_of() { local s=0 r; for p in "$@"; do r=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0); s=$((s + r)); done; echo "$s"; }

start() { # name cfg -> sets main, pids
    if [ "$1" = kamailio ]; then
        kamailio -f "$2" -P "$dir/k.pid" -m 512 -M 16 -E -e >/dev/null 2>"$dir/kamailio.log" &
        sleep 1.5
        main=$(cat "$dir/k.pid")
        pids="$main $(pgrep -d' ' -P "$main")"
    else
        "$sable" -f "$2" >/dev/null 2>"$dir/sable.log" &
        main=$!
        sleep 1
        pids=$main
    fi
}

stop() { kill "$main" 2>/dev/null; wait "$main" 2>/dev/null; sleep 0.5; }

load() { # -> "ok failed"
    sipp "127.0.0.1:$base" -sf "$here/reg.xml" -i 127.0.0.1 -p "$uac_port" -r "$rate" -m "$n" -nostdin \
        -trace_stat -stf "$dir/reg.csv" >/dev/null 2>&1
    grep -v '^$' "$dir/reg.csv" | tail -1 | awk -F';' '{print $16" "$18}'
    rm -f "$dir/reg.csv"
}

shm_used() { # kamailio: "used real_used" in bytes
    kamcmd -s "unix:$ctl" core.shmmem 2>/dev/null | awk '/^\tused:|^\t?used:/{u=$2} /real_used:/{r=$2} END{print u" "r}'
}

echo "regs=$n rate=$rate base=$base"
if [ "$only" != mem ]; then
printf "%-9s %8s %12s %8s %8s\n" server cpu_s us_per_reg ok failed
for name in kamailio sable; do
    start "$name" "$dir/registrar.cfg"
    b=$(cpu_of $pids)
    res=$(load)
    a=$(cpu_of $pids)
    stop
    cpu=$(echo "scale=3; ($a - $b) / $hz" | bc)
    eval "cpu_$name=$cpu"
    printf "%-9s %8s %12s %8s %8s\n" "$name" "$cpu" "$(echo "scale=1; $cpu * 1000000 / $n" | bc)" $res
done
echo "ratio sable/kamailio CPU: $(echo "scale=3; $cpu_sable / $cpu_kamailio" | bc)"
fi
[ "$only" = cpu ] && { echo "logs: $dir"; exit 0; }

rm -f "$ctl"
start kamailio "$dir/registrar-ctl.cfg"
set -- $(shm_used); ub=$1; rb=$2
load >/dev/null
set -- $(shm_used); ua=$1; ra=$2
stop
echo "kamailio core.shmmem: used +$(( (ua - ub) / n )) bytes/contact, real_used +$(( (ra - rb) / n )) bytes/contact"
rm -f "$ctl"
start sable "$dir/registrar-ctl.cfg"
pb=$(pss_of $pids)
load >/dev/null
pa=$(pss_of $pids)
count=$("$sablectl" -s "$ctl" stats usrloc:location_contacts 2>/dev/null | awk -F'= ' '{print $2}')
own=$("$sablectl" -s "$ctl" --json rpc ul.memory 2>/dev/null | tr -d ' \n')
stop
echo "sable PSS: +$(( (pa - pb) * 1024 / n )) bytes/contact (contacts stored: $count)"
echo "sable ul.memory: ${own:-(not available)}"
echo "logs: $dir"

#!/usr/bin/env bash
# Memory per active dialog: Kamailio 5.6 and Sable on bench/configs/dialog-ctl.cfg
# (stateful relay + dlg_manage()), N SIPp calls held up (the UAC waits 120 s before its
# BYE), memory read when all are up: Kamailio's core.shmmem "used"/"real_used" growth,
# Sable's proportional set size growth; the servers' own count of active dialogs alongside.
# Usage: bench/run-dlg-mem.sh [CALLS] [RATE]   (defaults 10000, 500). Build first:
# `cargo build --release -p sable -p sablectl`.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
n=${1:-10000}
rate=${2:-500}
sable=${SABLE:-$root/target/release/sable}
sablectl=${SABLECTL:-$root/target/release/sablectl}
cfg=$here/configs/dialog-ctl.cfg
sock=/tmp/sable-bench-dlg-ctl
dir=$(mktemp -d)
pss_of() { local s=0 r; for p in "$@"; do r=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0); s=$((s + r)); done; echo "$s"; }
shm() { kamcmd -s "unix:$sock" core.shmmem 2>/dev/null | awk '/^\t?used:/{u=$2} /real_used:/{r=$2} END{print u" "r}'; }
hold() { # starts the UAS and the UAC; waits until every call is up
    sipp -sn uas -i 127.0.0.1 -p 5070 -nostdin >/dev/null 2>&1 &
    uas=$!
    sleep 0.5
    sipp -sn uac 127.0.0.1:5060 -i 127.0.0.1 -p 5080 -s service -r "$rate" -m "$n" -d 120000 -nostdin >/dev/null 2>&1 &
    uac=$!
    sleep $(( n / rate + 10 ))
}
release() { kill "$uac" "$uas" 2>/dev/null; wait "$uac" "$uas" 2>/dev/null; }

rm -f "$sock"
kamailio -f "$cfg" -P "$dir/k.pid" -m 1024 -M 16 -E -e >/dev/null 2>"$dir/kamailio.log" &
sleep 1.5
main=$(cat "$dir/k.pid")
set -- $(shm); ub=$1; rb=$2
hold
set -- $(shm); ua=$1; ra=$2
kact=$(kamcmd -s "unix:$sock" stats.get_statistics dialog: 2>/dev/null | awk -F'= ' '/active_dialogs/{print $2}')
release
kill "$main"; sleep 1
echo "kamailio: active_dialogs=$kact core.shmmem used +$(( (ua - ub) / n )) bytes/dialog, real_used +$(( (ra - rb) / n )) bytes/dialog"

rm -f "$sock"
"$sable" -f "$cfg" >/dev/null 2>"$dir/sable.log" &
main=$!
sleep 1
pb=$(pss_of $main)
hold
pa=$(pss_of $main)
sact=$("$sablectl" -s "$sock" stats dialog: 2>/dev/null | awk -F'= ' '/active_dialogs/{print $2}')
own=$("$sablectl" -s "$sock" --json rpc dlg.memory 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_per_dialog"])')
release
kill "$main"; wait "$main" 2>/dev/null
echo "sable: active_dialogs=$sact PSS +$(( (pa - pb) * 1024 / n )) bytes/dialog, own accounting (dlg.memory) $own bytes/dialog"
echo "logs: $dir"

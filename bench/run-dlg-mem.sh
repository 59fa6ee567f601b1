#!/usr/bin/env bash
# Memory per active dialog: Kamailio 5.6 and Sable on bench/configs/dialog-ctl.cfg
# (stateful relay + dlg_manage()), N SIPp calls held up (the UAC waits 120 s before its
# BYE), memory read when all are up: Kamailio's core.shmmem "used"/"real_used" growth,
# the proportional set size growth of every process of each server; the servers' own count of active dialogs alongside.
# Usage: bench/run-dlg-mem.sh [CALLS] [RATE]   (defaults 10000, 500). Build first:
# `cargo build --release -p sable -p sablectl`.
# Ports: SIP_PORT (server, 5060), UAS_PORT (5070), UAC_PORT (5080), and CTL (the control
# socket path) can be moved when another run holds the defaults.
# Readings: when every call is up (N/RATE + 10 s after the start: the INVITE transactions
# of all but the last ~5 s are freed by then, tm's wait timer being 5 s), then SETTLE
# seconds later (default 10) when every INVITE transaction is gone. Sable's PSS and RSS
# count what the process touched, including transaction memory that glibc keeps after the
# free; its own accounting (`dlg.memory`) counts the dialogs and their tables only. TRIM=1
# (needs gdb) adds a reading after asking glibc to return its free pages (malloc_trim).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
n=${1:-10000}
rate=${2:-500}
sable=${SABLE:-$root/target/release/sable}
sablectl=${SABLECTL:-$root/target/release/sablectl}
sip_port=${SIP_PORT:-5060}
uas_port=${UAS_PORT:-5070}
uac_port=${UAC_PORT:-5080}
settle=${SETTLE:-10}
sock=${CTL:-/tmp/sable-bench-dlg-ctl}
dir=$(mktemp -d)
cfg=$dir/dialog-ctl.cfg
sed -e "s/127.0.0.1:5060/127.0.0.1:$sip_port/; s/127.0.0.1:5070/127.0.0.1:$uas_port/" \
    -e "s|unix:/tmp/sable-bench-dlg-ctl|unix:$sock|" "$here/configs/dialog-ctl.cfg" >"$cfg"
pss_of() { local s=0 r; for p in "$@"; do r=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0); s=$((s + r)); done; echo "$s"; }
rss_of() { awk '/VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
shm() { kamcmd -s "unix:$sock" core.shmmem 2>/dev/null | awk '/^\t?used:/{u=$2} /real_used:/{r=$2} END{print u" "r}'; }
hold() { # starts the UAS and the UAC; waits until every call is up
    sipp -sn uas -i 127.0.0.1 -p "$uas_port" -nostdin >/dev/null 2>&1 &
    uas=$!
    sleep 0.5
    sipp -sn uac "127.0.0.1:$sip_port" -i 127.0.0.1 -p "$uac_port" -s service -r "$rate" -m "$n" -d 120000 -nostdin >/dev/null 2>&1 &
    uac=$!
    sleep $(( n / rate + 10 ))
}
release() { kill "$uac" "$uas" 2>/dev/null; wait "$uac" "$uas" 2>/dev/null; }

rm -f "$sock"
kamailio -f "$cfg" -P "$dir/k.pid" -m 1024 -M 16 -E -e >/dev/null 2>"$dir/kamailio.log" &
sleep 1.5
main=$(cat "$dir/k.pid")
kpids="$main $(pgrep -d' ' -P "$main")"
set -- $(shm); ub=$1; rb=$2
kpb=$(pss_of $kpids)
hold
set -- $(shm); ua=$1; ra=$2
kpa=$(pss_of $kpids)
kact=$(kamcmd -s "unix:$sock" stats.get_statistics dialog: 2>/dev/null | awk -F'= ' '/active_dialogs/{print $2}')
sleep "$settle"
set -- $(shm); us=$1; rs=$2
kps=$(pss_of $kpids)
release
kill "$main"; sleep 1
echo "kamailio: active_dialogs=$kact core.shmmem used +$(( (ua - ub) / n )) bytes/dialog, real_used +$(( (ra - rb) / n )) bytes/dialog; after ${settle} s more: used +$(( (us - ub) / n )), real_used +$(( (rs - rb) / n )); PSS of all processes +$(( (kpa - kpb) * 1024 / n )) bytes/dialog, after ${settle} s more +$(( (kps - kpb) * 1024 / n ))"

rm -f "$sock"
"$sable" -f "$cfg" >/dev/null 2>"$dir/sable.log" &
main=$!
sleep 1
pb=$(pss_of $main); rb=$(rss_of $main)
hold
pa=$(pss_of $main); ra=$(rss_of $main)
sact=$("$sablectl" -s "$sock" stats dialog: 2>/dev/null | awk -F'= ' '/active_dialogs/{print $2}')
own=$("$sablectl" -s "$sock" --json rpc dlg.memory 2>/dev/null | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["bytes_per_dialog"], "(dialogs", m.get("dialog_bytes_per_dialog", "?"), "+ tables", str(m.get("table_bytes_per_dialog", "?")) + ")")')
sleep "$settle"
ps_=$(pss_of $main); rs=$(rss_of $main)
trimmed=""
if [ "${TRIM:-0}" = 1 ] && command -v gdb >/dev/null; then
    # Diagnostic: how much of the growth is memory glibc holds free (the freed transactions):
    # ask it to give free pages back (malloc_trim) and read PSS again.
    gdb -p "$main" -batch -ex 'call (int)malloc_trim(0)' >/dev/null 2>&1
    pt=$(pss_of $main)
    trimmed="; after malloc_trim(0): PSS +$(( (pt - pb) * 1024 / n ))"
fi
release
kill "$main"; wait "$main" 2>/dev/null
echo "sable: active_dialogs=$sact PSS +$(( (pa - pb) * 1024 / n )) RSS +$(( (ra - rb) * 1024 / n )) bytes/dialog; after ${settle} s more: PSS +$(( (ps_ - pb) * 1024 / n )) RSS +$(( (rs - rb) * 1024 / n )); own accounting (dlg.memory) $own bytes/dialog$trimmed"
echo "logs: $dir"

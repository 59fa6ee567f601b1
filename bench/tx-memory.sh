#!/usr/bin/env bash
# Memory per in-flight transaction: Kamailio 5.6 and Sable on bench/configs/tx-hold.cfg,
# N INVITEs (distinct transactions) relayed to a peer that never answers, memory read
# before and after (proportional set size of every process of the server: Kamailio's
# shared memory counted once).
#
# Usage: bench/tx-memory.sh [N]   (default 20000). Needs kamailio, python3; build Sable
# first: `cargo build --release -p sable`.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cfg=$here/configs/tx-hold.cfg
n=${1:-20000}
sable=${SABLE:-$root/target/release/sable}
dir=$(mktemp -d)

pss_of() { # pids... -> kB
    local sum=0 r
    for p in "$@"; do
        r=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        sum=$((sum + r))
    done
    echo "$sum"
}

blast() { # sends $n INVITEs to :5060 from :5081; a silent peer on :5071 swallows them
    python3 - "$n" <<'PY'
import socket, sys, time
n = int(sys.argv[1])
peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
peer.bind(("127.0.0.1", 5071))
peer.setblocking(False)
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.bind(("127.0.0.1", 5081))
c.setblocking(False)
body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"
def drain():
    for s in (peer, c):
        try:
            while True:
                s.recv(65535)
        except BlockingIOError:
            pass
for i in range(n):
    inv = ("INVITE sip:bob@127.0.0.1:5060 SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:5081;branch=z9hG4bK-mem-{i}\r\n"
           f"From: <sip:alice@127.0.0.1>;tag=f{i}\r\n"
           "To: <sip:bob@127.0.0.1>\r\n"
           f"Call-ID: mem-{i}@127.0.0.1\r\n"
           "CSeq: 1 INVITE\r\n"
           "Contact: <sip:alice@127.0.0.1:5081>\r\n"
           "Max-Forwards: 70\r\n"
           "Content-Type: application/sdp\r\n"
           f"Content-Length: {len(body)}\r\n\r\n{body}")
    c.sendto(inv.encode(), ("127.0.0.1", 5060))
    if i % 200 == 199:
        drain()
        time.sleep(0.02)
deadline = time.time() + 3
while time.time() < deadline:
    drain()
    time.sleep(0.05)
PY
}

run_one() { # name -> "name before_kb after_kb"
    local name=$1 main pids before after
    if [ "$name" = kamailio ]; then
        kamailio -f "$cfg" -P "$dir/k.pid" -m 512 -M 16 -E -e >/dev/null 2>"$dir/kamailio.log" &
        sleep 1.5
        main=$(cat "$dir/k.pid")
    else
        "$sable" -f "$cfg" >/dev/null 2>"$dir/sable.log" &
        main=$!
        sleep 1
    fi
    pids="$main $(pgrep -d' ' -P "$main")"
    before=$(pss_of $pids)
    blast
    after=$(pss_of $pids)
    kill "$main" 2>/dev/null
    wait "$main" 2>/dev/null
    sleep 0.5
    echo "$name $before $after"
}

echo "transactions=$n config=$(basename "$cfg")"
printf "%-9s %10s %10s %14s\n" server before_kb after_kb bytes_per_tx
for name in kamailio sable; do
    set -- $(run_one "$name")
    printf "%-9s %10s %10s %14s\n" "$1" "$2" "$3" "$(( ($3 - $2) * 1024 / n ))"
done
echo "logs: $dir"

#!/usr/bin/env bash
# The first pings once a connection is up, over many fresh starts: awl, then boringtun.
#
#   bash bench/first.sh                       # as root; builds awl --release; 100 starts each
#   BENCH_STARTS=300 BENCH_TRACE=1 bash bench/first.sh   # with a scheduler trace (needs perf)
#   BENCH_AWL=<binary> ...                    # another awl build (for A/B)
#
# Two namespaces joined by a veth pair; both daemons of a VPN pinned to CPU 0, as in run.sh.
# Per start: fresh daemons (awl with run.sh's nine configured peers that never answer, polled
# every 50 ms until A reports B connected and confirmed; boringtun after its handshake ping),
# then five single pings, each its own `ping -c 1`. Prints each ping's median and the count
# over 1 ms. With BENCH_TRACE=1 the whole run is recorded with the scheduler's tracepoints
# (all CPUs, monotonic clock) and bench/first_trace.py splits each ping's time in the tunnel
# (from the ping's write waking the daemon to the daemon waking the ping with the reply) into
# the daemons' own time on CPU 0, CPU 0 idle (a wake-up's latency) and other tasks holding it,
# and names the cause of every one over 1 ms.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STARTS=${BENCH_STARTS:-100}
[ "$(id -u)" = 0 ] || { echo "bench: needs root (namespaces, TUN)"; exit 1; }
export PATH="$HOME/.cargo/bin:$PATH"
for t in taskset ping ip boringtun-cli wg python3; do command -v $t >/dev/null || { echo "bench: $t missing (bench/run.sh installs boringtun-cli)"; exit 1; }; done
[ "${BENCH_TRACE:-0}" = 1 ] && ! command -v perf >/dev/null && { echo "bench: perf missing"; exit 1; }
if [ -z "${BENCH_AWL:-}" ]; then
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin awl || exit 1
fi
AWL=${BENCH_AWL:-$ROOT/target/release/awl}
WORK=$(mktemp -d /tmp/awl-first.XXXXXX)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
PERF=
cleanup() {
    [ -n "$PERF" ] && kill -INT "$PERF" 2>/dev/null
    pkill -f "$WORK/" 2>/dev/null
    ip netns del bf-a 2>/dev/null; ip netns del bf-b 2>/dev/null
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
veth_pair bf-a bf-b

# trace DIR: starts the scheduler trace into DIR (stopped by untrace), with the offset of
# the wall clock (ping -D's timestamps) from the monotonic one (perf's).
trace() {
    [ "${BENCH_TRACE:-0}" = 1 ] || return 0
    perf record -q -a -k monotonic -e sched:sched_switch,sched:sched_waking -o "$1/sched.perf" -- sleep 100000 &
    PERF=$!; sleep 2
    python3 -c 'import time; print(time.time() - time.monotonic())' >"$1/offset"
}
untrace() {
    [ -n "$PERF" ] || return 0
    kill -INT "$PERF"; wait "$PERF" 2>/dev/null; PERF=
    perf script -i "$1/sched.perf" -F comm,pid,tid,cpu,time,event,trace 2>/dev/null >"$1/sched.txt"
}
# pings DIR START DST: five single pings, logged with their wall-clock time.
pings() {
    local k l
    for k in 1 2 3 4 5; do
        l=$(ip netns exec bf-a ping -D -c 1 -W 1 "$3" 2>/dev/null | grep time=)
        echo "$2 $k $l" >>"$1/pings.txt"
    done
}

# --- awl ---
D=$WORK/awl; mkdir -p "$D" "$WORK/a" "$WORK/b"
write_awl a; write_awl b
A=$("$AWL" -c "$WORK/a.uci" id); B=$("$AWL" -c "$WORK/b.uci" id)
FAKE=(); for j in $(seq 9); do FAKE+=("$("$AWL" -d "$WORK/fake$j" id 2>/dev/null)"); done
fakes() { for f in "${FAKE[@]}"; do printf "config peer\n\toption peer_id '%s'\n\tlist address '/ip4/192.0.2.99/udp/4363/quic-v1'\n" "$f" >>"$WORK/$1.uci"; done; }
trace "$D"
for i in $(seq "$STARTS"); do
    write_awl a "$B" /ip4/192.0.2.2/udp/4363/quic-v1; write_awl b "$A" /ip4/192.0.2.1/udp/4363/quic-v1
    fakes a; fakes b
    ip netns exec bf-a taskset -c 0 "$AWL" -c "$WORK/a.uci" run 2>"$WORK/a.log" & PA=$!
    ip netns exec bf-b taskset -c 0 "$AWL" -c "$WORK/b.uci" run 2>"$WORK/b.log" & PB=$!
    DST=
    for _ in $(seq 100); do
        DST=$("$AWL" -c "$WORK/a.uci" peers --json 2>/dev/null | python3 -c "import json,sys; print(*[p['ip'] for p in json.load(sys.stdin) if p['peer_id'] == sys.argv[1] and p['confirmed'] and p['connected']])" "$B" 2>/dev/null)
        [ -n "$DST" ] && break
        sleep 0.05
    done
    [ -n "$DST" ] && pings "$D" "$i" "$DST"
    kill "$PA" "$PB"; wait "$PA" "$PB" 2>/dev/null
done
untrace "$D"

# --- boringtun ---
D=$WORK/boringtun; mkdir -p "$D"
trace "$D"
for i in $(seq "$STARTS"); do
    for n in a b; do
        # One UAPI socket per interface name in /var/run/wireguard: the names differ.
        ip netns exec "bf-$n" env WG_SUDO=1 taskset -c 0 boringtun-cli --foreground --disable-drop-privileges "wgf$n" >/dev/null 2>&1 &
        eval "P$n=\$!"
    done
    for _ in $(seq 200); do [ -S /var/run/wireguard/wgfa.sock ] && [ -S /var/run/wireguard/wgfb.sock ] && break; sleep 0.02; done
    wg_link bf-a bf-b wgfa wgfb
    ip netns exec bf-a ping -c 1 -W 1 10.99.0.2 >/dev/null  # the handshake
    pings "$D" "$i" 10.99.0.2
    # shellcheck disable=SC2154
    kill "$Pa" "$Pb"; wait "$Pa" "$Pb" 2>/dev/null
    for _ in $(seq 200); do [ -S /var/run/wireguard/wgfa.sock ] || [ -S /var/run/wireguard/wgfb.sock ] || break; sleep 0.02; done
done
untrace "$D"

echo "First five single pings once the connection is up, $STARTS fresh starts of each VPN ($(date -u +%Y-%m-%dT%H:%MZ), $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)):"
echo
for v in awl boringtun; do python3 "$ROOT/bench/first_trace.py" "$WORK/$v" "$v"; echo; done

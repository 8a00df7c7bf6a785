#!/usr/bin/env bash
# Two awl builds side by side at a ping's pace: which one costs less CPU per round trip?
#
#   bash bench/ab.sh BINARY_X BINARY_Y [ROUNDS]     # as root; default 20 rounds
#
# Two pairs of namespaces, one pair of awl nodes on each (X's and Y's), all four daemons pinned
# to CPU 0, as in bench/run.sh. The two pairs take turns (who goes first alternates): per turn
# 2 s of quiet, then 100 pings 20 ms apart through that pair, and both its daemons' CPU (the
# scheduler's own accounting) per round trip. This VM moves one turn's figure by ±15 % (an A/A
# run of one build against itself: per-round ratios 0.95-1.32), so a difference of a few per
# cent needs tens of rounds: the script prints each turn, the mean of each build, and the
# median of the per-round ratios Y/X with the rounds in which Y cost less.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
X=${1:?binary X}; Y=${2:?binary Y}; ROUNDS=${3:-20}
[ "$(id -u)" = 0 ] || { echo "ab: needs root (namespaces, TUN)"; exit 1; }
WORK=$(mktemp -d /tmp/awl-ab.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for n in abxa abxb abya abyb; do ip netns del "$n" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
cpu_ns() { local s=0 t; for t in /proc/"$1"/task/*/schedstat; do s=$((s + $(cut -d' ' -f1 "$t"))); done; echo "$s"; }
declare -A PA PB DST C
pair() { # TAG BINARY: namespaces abTAGa, abTAGb; nodes TAGa, TAGb
    local t=$1 bin=$2 a b
    veth_pair "ab${t}a" "ab${t}b"
    mkdir -p "$WORK/${t}a" "$WORK/${t}b"; write_awl "${t}a"; write_awl "${t}b"
    a=$("$bin" -c "$WORK/${t}a.uci" id 2>/dev/null); b=$("$bin" -c "$WORK/${t}b.uci" id 2>/dev/null)
    write_awl "${t}a" "$b" /ip4/192.0.2.2/udp/4363/quic-v1
    write_awl "${t}b" "$a" /ip4/192.0.2.1/udp/4363/quic-v1
    ip netns exec "ab${t}a" taskset -c 0 "$bin" -c "$WORK/${t}a.uci" run >/dev/null 2>&1 & PA[$t]=$!; PIDS+=($!)
    ip netns exec "ab${t}b" taskset -c 0 "$bin" -c "$WORK/${t}b.uci" run >/dev/null 2>&1 & PB[$t]=$!; PIDS+=($!)
    for _ in $(seq 150); do
        DST[$t]=$("$bin" -c "$WORK/${t}a.uci" peers --json 2>/dev/null | python3 -c "import json,sys; print(*[p['ip'] for p in json.load(sys.stdin) if p['peer_id'] == sys.argv[1] and p['confirmed'] and p['connected']])" "$b" 2>/dev/null)
        [ -n "${DST[$t]}" ] && return 0
        sleep 0.2
    done
    echo "ab: the pair of $bin did not connect"; exit 1
}
pair x "$X"; pair y "$Y"
# Past awl's start-up work (AutoNAT dials back 20-30 s after start).
sleep "${BENCH_WARM:-40}"
turn() { # TAG
    local c0 c1
    sleep 2
    c0=$(( $(cpu_ns "${PA[$1]}") + $(cpu_ns "${PB[$1]}") ))
    ip netns exec "ab${1}a" ping -q -c 100 -i 0.02 "${DST[$1]}" >/dev/null 2>&1
    c1=$(( $(cpu_ns "${PA[$1]}") + $(cpu_ns "${PB[$1]}") ))
    C[$1]="${C[$1]:-} $(( (c1 - c0) / 100000 ))"
}
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then turn x; turn y; else turn y; turn x; fi
done
echo "X = $X, Y = $Y: CPU of both daemons per round trip, µs, 100 pings 20 ms apart, $ROUNDS rounds"
echo "X:${C[x]}"; echo "Y:${C[y]}"
python3 - "${C[x]}" "${C[y]}" <<'PY'
import statistics as s, sys
x = [int(v) for v in sys.argv[1].split()]; y = [int(v) for v in sys.argv[2].split()]
r = [b / a for a, b in zip(x, y) if a]
print(f"mean X {s.mean(x):.1f}, Y {s.mean(y):.1f}; Y/X per round: median {s.median(r):.3f}, "
      f"mean {s.mean(r):.3f}; Y below X in {sum(b < a for a, b in zip(x, y))} of {len(r)} rounds")
PY

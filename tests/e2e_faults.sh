#!/usr/bin/env bash
# Faults: kill -9 and restart a peer in the middle of a transfer, and take the link down and
# up. Traffic resumes within a stated time, and the config and known peers are intact.
source "$(dirname "$0")/lib.sh"
need_root
find_awl || exit 1
command -v iperf3 >/dev/null || { echo "iperf3 missing"; exit 1; }
RESUME_S=${AWL_RESUME_S:-15}

two_friends bob alice
IP_A=$(ctl b peers --json | json "[p['ip'] for p in d if p['peer_id']=='$A'][0]")
SUM_B=$(md5sum <"$WORK/b.uci")

# resumed SECONDS: ms until a pings b again (0.2 s probes).
resumed() {
    local t0 end
    t0=$(date +%s%3N); end=$((SECONDS + $1))
    while [ $SECONDS -lt "$end" ]; do
        if ip netns exec awl-a ping -c 1 -W 1 "$IP_B" >/dev/null 2>&1; then
            echo $(( $(date +%s%3N) - t0 )); return 0
        fi
        sleep 0.2
    done
    echo never; return 1
}

# 1. kill -9 in the middle of an iperf3 transfer, restart at once.
ip netns exec awl-b iperf3 -s -D -B 10.66.0.1 --pidfile "$WORK/iperf.pid"
sleep 0.5
PIDS+=("$(cat "$WORK/iperf.pid")")
ip netns exec awl-a iperf3 -c "$IP_B" -t 10 >"$WORK/iperf.txt" 2>&1 &
IPERF=$!
sleep 3
kill -9 "$PID_b"
sleep 0.3
check "b restarts after kill -9" start_node awl-b b
T=$(resumed "$RESUME_S")
echo "    traffic resumed $T ms after kill -9 + restart (bound ${RESUME_S} s)"
check "traffic resumes within ${RESUME_S} s after kill -9" test "$T" != never
wait "$IPERF"
check "b's config file is untouched by the crash" test "$(md5sum <"$WORK/b.uci")" = "$SUM_B"
check "b still knows a, confirmed, at the same IP" wait_for 20 sh -c \
    "'$AWL_BIN' -c '$WORK/b.uci' peers --json | python3 -c \"import json,sys; d=json.load(sys.stdin); assert any(p['peer_id']=='$A' and p['confirmed'] and p['ip']=='$IP_A' and p['alias']=='alice' for p in d)\""

# 2. The link goes down for 5 s (QUIC outlives it) and for 40 s (it does not: redial).
for down in 5 40; do
    ip -n awl-a link set eth0 down
    sleep "$down"
    ip -n awl-a link set eth0 up
    T=$(resumed "$RESUME_S")
    echo "    traffic resumed $T ms after a ${down} s link outage (bound ${RESUME_S} s)"
    check "traffic resumes within ${RESUME_S} s after a ${down} s link outage" test "$T" != never
done
check "a and b are confirmed friends after it all" confirmed a "$B"
summary

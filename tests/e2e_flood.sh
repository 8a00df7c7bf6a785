#!/usr/bin/env bash
# Bounded under attack: while two known peers run iperf3 through the mesh, a namespace on the
# same switch makes 1000 QUIC+TLS handshakes to B (each identifies and pings, as anyone on the
# internet may), and a stranger that believes it is B's friend keeps sending it tunnel
# streams. B's peak RSS stays under a stated bound, the legitimate flow keeps a stated share of
# its rate, the strangers' streams and datagrams are refused and counted, and B still answers afterwards.
source "$(dirname "$0")/lib.sh"
need_root
find_awl || exit 1
command -v iperf3 >/dev/null || { echo "iperf3 missing"; exit 1; }
HANDSHAKES=${AWL_FLOOD_HANDSHAKES:-1000}
RSS_BOUND_KB=${AWL_FLOOD_RSS_KB:-32768}
MIN_SHARE=${AWL_FLOOD_MIN_SHARE:-25}

netns awl-sw; netns awl-a; netns awl-b; netns awl-x
switch_hosts awl-sw awl-a awl-b awl-x
ip -n awl-a addr add 192.0.2.1/24 dev eth0
ip -n awl-b addr add 192.0.2.2/24 dev eth0
ip -n awl-x addr add 192.0.2.3/24 dev eth0

mkdir -p "$WORK/a" "$WORK/b" "$WORK/x"
write_config "$WORK/a.uci" a "	option log_level 'info'"
write_config "$WORK/b.uci" b "	option log_level 'info'"
A=$(peer_id a); B=$(peer_id b)
printf "config peer 'b'\n\toption peer_id '%s'\n\tlist address '/ip4/192.0.2.2/udp/4363/quic-v1'\n" "$B" >>"$WORK/a.uci"
printf "config peer 'a'\n\toption peer_id '%s'\n" "$A" >>"$WORK/b.uci"
# The stranger: B never heard of it.
write_config "$WORK/x.uci" x "	option log_level 'warn'"
printf "config peer 'b'\n\toption peer_id '%s'\n\tlist address '/ip4/192.0.2.2/udp/4363/quic-v1'\n" "$B" >>"$WORK/x.uci"

check "node a starts" start_node awl-a a
check "node b starts" start_node awl-b b
confirmed() { ctl a peers --json | json "any(p['peer_id']=='$B' and p['confirmed'] and p['connected'] for p in d)" | grep -q True; }
check "a and b are friends" wait_for 20 confirmed
IP_B=$(ctl a peers --json | json "[p['ip'] for p in d if p['peer_id']=='$B'][0]")

ip netns exec awl-b iperf3 -s -D -B 10.66.0.1 --pidfile "$WORK/iperf.pid"
sleep 0.5
PIDS+=("$(cat "$WORK/iperf.pid")")
rate() { # seconds -> Mbit/s received
    ip netns exec awl-a iperf3 -c "$IP_B" -t "$1" -J >"$WORK/iperf.json" 2>&1 || { echo 0; return; }
    python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['end']['sum_received']['bits_per_second']/1e6))" "$WORK/iperf.json"
}
BASE=$(rate 4)
echo "    baseline a -> b: $BASE Mbit/s"

# The flood.
check "the stranger starts" start_node awl-x x
IP_B_AT_X=$(ctl x peers --json | json "[p['ip'] for p in d if p['peer_id']=='$B'][0]")
ip netns exec awl-x ping -q -i 0.05 -w 60 "$IP_B_AT_X" >/dev/null 2>&1 &
PIDS+=($!)
T0=$SECONDS
seq "$HANDSHAKES" | ip netns exec awl-x xargs -P 16 -I{} \
    "$AWL_BIN" ping /ip4/192.0.2.2/udp/4363/quic-v1 >"$WORK/flood.out" 2>&1 &
FLOOD=$!
sleep 1
UNDER=$(rate 6)
wait "$FLOOD"
OK_PINGS=$(grep -c "rtt" "$WORK/flood.out")
echo "    $HANDSHAKES handshakes in $((SECONDS - T0)) s ($OK_PINGS identified and pinged); a -> b under flood: $UNDER Mbit/s"
RSS=$(awk '/VmHWM/ {print $2}' "/proc/$PID_b/status")
echo "    b's peak RSS: $RSS kB (bound $RSS_BOUND_KB kB, debug build)"
check "b's peak RSS stays under $RSS_BOUND_KB kB" test "$RSS" -lt "$RSS_BOUND_KB"
# One address gets a bounded share of b's slots (admission: 8 strangers per address), so
# some of the 16 parallel dialers are refused and counted; b keeps answering the rest.
check "b kept answering the flood" test "$OK_PINGS" -ge $((HANDSHAKES / 2))
REFUSED=$(ctl b metrics | awk '/^awl_refused_connections_total/ {print $2}')
echo "    connections refused from the one flooding address: ${REFUSED:-0}"
check "the flooding address was held to its share (refusals counted)" test "${REFUSED:-0}" -gt 0
SHARE=$(( BASE > 0 ? UNDER * 100 / BASE : 0 ))
echo "    the legitimate flow kept $SHARE % of its rate (bound $MIN_SHARE %)"
check "the legitimate flow keeps >= $MIN_SHARE % of its rate" test "$SHARE" -ge "$MIN_SHARE"
# An awl stranger sends QUIC datagrams (b lists them in identify to anyone); an AWL one, streams.
REFUSED=$(ctl b status --json | json "d['dropped']['rx_unknown_peer_streams'] + d['dropped']['rx_unknown_peer_packets']")
echo "    stranger's tunnel streams and datagrams refused: $REFUSED"
check "the stranger's tunnel traffic was refused and counted" test "$REFUSED" -gt 0
check "b still answers a after the flood" ip netns exec awl-a ping -c 2 -W 2 "$IP_B"
check "b's connection count is back to a handful" sh -c \
    "[ \$('$AWL_BIN' -c '$WORK/b.uci' metrics | awk '/^awl_connections\\{path=\"direct\"\\}/ {print \$2}') -le 5 ]"
summary

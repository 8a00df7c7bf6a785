#!/usr/bin/env bash
# Two awl nodes in their own namespaces, each with a real TUN, joined by veth through a switch
# namespace: invite and accept through the CLI, ping and iperf3 both ways through the mesh, a
# stranger's tunnel stream is refused, and a kill -9 + restart recovers without manual steps.
# Both nodes use AWL's default 10.66.0.1 for themselves: addresses are node-local.
source "$(dirname "$0")/lib.sh"
need_root
find_awl || exit 1
command -v iperf3 >/dev/null || { echo "iperf3 missing (apt-get install iperf3)"; exit 1; }

netns awl-sw; netns awl-a; netns awl-b; netns awl-c
switch_hosts awl-sw awl-a awl-b awl-c
ip -n awl-a addr add 192.0.2.1/24 dev eth0
ip -n awl-b addr add 192.0.2.2/24 dev eth0
ip -n awl-c addr add 192.0.2.3/24 dev eth0

write_config "$WORK/a.uci" a
write_config "$WORK/b.uci" b
mkdir -p "$WORK/a" "$WORK/b" "$WORK/c"
A=$(peer_id a); B=$(peer_id b)
# C believes B is its friend; B has never heard of C.
write_config "$WORK/c.uci" c "config peer 'b'" "	option peer_id '$B'" "	list address '/ip4/192.0.2.2/udp/4363/quic-v1'"

check "node a starts" start_node awl-a a
check "node b starts" start_node awl-b b

T0=$SECONDS
ctl a invite "$B" bob --address /ip4/192.0.2.2/udp/4363/quic-v1 >/dev/null
check "b sees a's friend request" wait_for 15 sh -c "'$AWL_BIN' -c '$WORK/b.uci' requests --json | grep -q '$A'"
ctl b accept "$A" alice >/dev/null
confirmed() { ctl "$1" peers --json | json "[p for p in d if p['peer_id']=='$2'][0]['confirmed'] and [p for p in d if p['peer_id']=='$2'][0]['connected']" | grep -q True; }
check "a shows b confirmed" wait_for 20 confirmed a "$B"
check "b shows a confirmed" wait_for 20 confirmed b "$A"
echo "friend flow took $((SECONDS - T0)) s"

IP_B_AT_A=$(ctl a peers --json | json "[p['ip'] for p in d if p['peer_id']=='$B'][0]")
IP_A_AT_B=$(ctl b peers --json | json "[p['ip'] for p in d if p['peer_id']=='$A'][0]")
echo "a reaches b at $IP_B_AT_A, b reaches a at $IP_A_AT_B"
check "ping a -> b through the mesh" ip netns exec awl-a ping -c 3 -W 2 "$IP_B_AT_A"
check "ping b -> a through the mesh" ip netns exec awl-b ping -c 3 -W 2 "$IP_A_AT_B"
FAST=$(ip netns exec awl-a ping -q -c 50 -i 0.02 -W 1 "$IP_B_AT_A" 2>&1 | grep -o '[0-9]* received' | cut -d' ' -f1)
echo "50 pings 20 ms apart: ${FAST:-0} answered"
check "a quick ping train gets through" test "${FAST:-0}" -ge 48

ip netns exec awl-b iperf3 -s -D -B 10.66.0.1 --pidfile "$WORK/iperf-b.pid"
ip netns exec awl-a iperf3 -s -D -B 10.66.0.1 --pidfile "$WORK/iperf-a.pid"
sleep 0.5
PIDS+=("$(cat "$WORK/iperf-b.pid")" "$(cat "$WORK/iperf-a.pid")")
echo "iperf3 TCP a -> b (3 s):"; check "iperf3 a -> b" iperf awl-a "$IP_B_AT_A"
echo "iperf3 TCP b -> a (3 s):"; check "iperf3 b -> a" iperf awl-b "$IP_A_AT_B"
# Both are awl nodes: the packets ride QUIC datagrams, not the stream tunnel.
DG=$(metric a peer_tx_datagrams_total); TX=$(metric a peer_tx_packets_total)
echo "a sent $DG of $TX packets to b in QUIC datagrams"
check "awl nodes use the datagram tunnel for most packets" test "$DG" -gt $((TX / 2))
# TSO on the TUN: the kernel hands a's TCP to awl in super-packets, cut into segments here
# (iperf3 would not have worked if the segments were wrong).
SUPER=$(metric a tun_super_packets_total)
echo "a read $SUPER TCP super-packets from its TUN"
check "the TUN offload (TSO) is in use" test "$SUPER" -gt 0

# The stranger.
rx_b() { ip netns exec awl-b cat /sys/class/net/awl0/statistics/rx_packets; }
check "node c starts" start_node awl-c c
IP_B_AT_C=$(ctl c peers --json | json "[p['ip'] for p in d if p['peer_id']=='$B'][0]")
wait_for 10 sh -c "'$AWL_BIN' -c '$WORK/c.uci' peers --json | grep -q '\"connected\":true'"
BEFORE=$(rx_b)
ip netns exec awl-c ping -c 5 -i 0.2 -W 1 "$IP_B_AT_C" >/dev/null 2>&1
AFTER=$(rx_b)
REFUSED=$(ctl b status --json | json "d['dropped']['rx_unknown_peer_streams'] + d['dropped']['rx_unknown_peer_packets']")
echo "b's TUN rx packets before/after c's pings: $BEFORE/$AFTER; unknown-peer streams + datagrams refused: $REFUSED"
check "stranger's packets never reach b's TUN" test "$BEFORE" = "$AFTER"
check "stranger's tunnel streams and datagrams are counted as refused" test "$REFUSED" -gt 0

# kill -9 and restart.
kill -9 "$PID_b"; sleep 0.5
T0=$SECONDS
check "node b restarts" start_node awl-b b
check "traffic resumes after kill -9 + restart" wait_for 30 ip netns exec awl-a ping -c 1 -W 1 "$IP_B_AT_A"
echo "traffic resumed $((SECONDS - T0)) s after restart"
check "b still knows a after restart" wait_for 20 confirmed b "$A"

summary

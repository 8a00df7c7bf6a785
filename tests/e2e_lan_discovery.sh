#!/usr/bin/env bash
# Two nodes on one LAN (a bridge in a namespace), each knowing the other's peer ID but no
# address, and no bootstrap node: LAN discovery connects them directly, and traffic flows.
source "$(dirname "$0")/lib.sh"
need_root
find_awl || exit 1

netns awl-lan; netns awl-d1; netns awl-d2
ip -n awl-lan link add br0 type bridge && ip -n awl-lan link set br0 up
for n in 1 2; do
    ip link add eth0 netns "awl-d$n" type veth peer name "v$n" netns awl-lan
    ip -n awl-lan link set "v$n" master br0 up
    ip -n "awl-d$n" link set eth0 up
    ip -n "awl-d$n" addr add "192.0.2.1$n/24" dev eth0
    # Multicast leaves through eth0 (no default route in the namespace).
    ip -n "awl-d$n" route add 224.0.0.0/4 dev eth0
done
mkdir -p "$WORK/d1" "$WORK/d2"
write_config "$WORK/d1.uci" d1; write_config "$WORK/d2.uci" d2
D1=$(peer_id d1); D2=$(peer_id d2)
printf "config peer 'd2'\n\toption peer_id '%s'\n" "$D2" >>"$WORK/d1.uci"
printf "config peer 'd1'\n\toption peer_id '%s'\n" "$D1" >>"$WORK/d2.uci"
check "no addresses configured" sh -c "! grep -q 'list address' '$WORK/d1.uci' '$WORK/d2.uci'"

check "node d1 starts" start_node awl-d1 d1
check "node d2 starts" start_node awl-d2 d2
T0=$SECONDS
connected() { ctl "$1" peers --json | json "d[0]['connected'] and d[0]['path']=='direct'" | grep -q True; }
check "d1 finds d2 on the LAN and connects directly" wait_for 30 connected d1
check "d2 sees d1 connected" wait_for 10 connected d2
echo "connected $((SECONDS - T0)) s after start"
check "the log says it was found on the LAN" sh -c "grep -q 'on the LAN at /ip4/192.0.2.1' '$WORK/d1.log' '$WORK/d2.log'"
IP=$(ctl d1 peers --json | json "d[0]['ip']")
check "ping through the mesh" wait_for 20 ip netns exec awl-d1 ping -c 1 -W 1 "$IP"
summary

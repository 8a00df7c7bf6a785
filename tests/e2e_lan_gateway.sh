#!/usr/bin/env bash
# LAN gateway end to end, six namespaces plus extras:
#   hostA (192.168.1.10) — routerA ═ wan (198.51.100.0/24) ═ routerB — hostB (192.168.2.10)
#                                          ║                    └─ inet (203.0.113.1, only B's upstream)
#                                        routerC (announces unsafe routes)
#                                        wanN (a WAN neighbour with routes via A and B)
# Hosts run no awl, only a default route to their router. Checks: hostA ↔ hostB by LAN
# address (ping, iperf3 both ways), routerA using routerB as exit node reaches 203.0.113.1,
# unsafe announcements refused with a log line while traffic flows, a WAN neighbour routing
# into the mesh or the LANs through A or B gets nowhere, and no nftables rules, routes,
# policy rules or forwarding switches left after the daemons stop.
source "$(dirname "$0")/lib.sh"
need_root
find_awl || exit 1
for c in iperf3 nft ethtool; do command -v $c >/dev/null || { echo "$c missing"; exit 1; }; done

for n in hA rA wan rB hB rC inet wn; do netns "awl-$n"; done
ip -n awl-wan link add br0 type bridge && ip -n awl-wan link set br0 up
for r in A B C; do
    ip link add wan0 netns "awl-r$r" type veth peer name "w$r" netns awl-wan
    ip -n awl-wan link set "w$r" master br0 up
    ip -n "awl-r$r" link set wan0 up
done
ip -n awl-rA addr add 198.51.100.1/24 dev wan0
ip -n awl-rB addr add 198.51.100.2/24 dev wan0
ip -n awl-rC addr add 198.51.100.3/24 dev wan0
ip link add wan0 netns awl-wn type veth peer name wN netns awl-wan
ip -n awl-wan link set wN master br0 up
ip -n awl-wn link set wan0 up
ip -n awl-wn addr add 198.51.100.9/24 dev wan0
link awl-hA eth0 192.168.1.10/24 awl-rA lan0 192.168.1.1/24
link awl-hB eth0 192.168.2.10/24 awl-rB lan0 192.168.2.1/24
link awl-inet eth0 203.0.113.1/24 awl-rB up0 203.0.113.2/24
ip -n awl-hA route add default via 192.168.1.1
ip -n awl-hB route add default via 192.168.2.1
# The routers sum checksums in software where they send to their LANs (TX offload off), so
# the hosts' kernels check every one: a partial checksum from the mesh (the sending node
# leaves what its kernel left partial for the receiving node's kernel to complete) that came
# out wrong is dropped there and counted, not passed along unchecked as between veths.
for r in rA rB; do ip netns exec "awl-$r" ethtool -K lan0 tx off >/dev/null; done
# TCP and UDP segments hostA and hostB dropped for a bad checksum.
csum_errors() {
    ip netns exec "$1" awk '/^(Tcp|Udp):/ { if (!($1 in h)) { h[$1] = 1; for (i = 2; i <= NF; i++) k[$1, i] = $i }
        else for (i = 2; i <= NF; i++) if (k[$1, i] == "InCsumErrors") s += $i } END { print s + 0 }' /proc/net/snmp
}
for r in rA rB rC; do ip netns exec "awl-$r" sysctl -qw net.ipv4.ip_forward=0; done

mkdir -p "$WORK/ra" "$WORK/rb" "$WORK/rc"
write_config "$WORK/ra.uci" ra; write_config "$WORK/rb.uci" rb; write_config "$WORK/rc.uci" rc
A=$(peer_id ra); B=$(peer_id rb); C=$(peer_id rc)
quic() { echo "/ip4/$1/udp/4363/quic-v1"; }
cat >>"$WORK/ra.uci" <<EOF
	list route '192.168.1.0/24'
	option exit_node 'rb'
	option firewall 'nftables'
config peer 'rb'
	option peer_id '$B'
	option allow_lan '1'
	option accept_routes '1'
	list address '$(quic 198.51.100.2)'
config peer 'rc'
	option peer_id '$C'
	option accept_routes '1'
	list accept_route '198.51.100.0/24'
	list address '$(quic 198.51.100.3)'
EOF
cat >>"$WORK/rb.uci" <<EOF
	list route '192.168.2.0/24'
	option gateway '1'
config peer 'ra'
	option peer_id '$A'
	option allow_lan '1'
	option allow_exit '1'
	option accept_routes '1'
	list address '$(quic 198.51.100.1)'
EOF
# C uses another mesh subnet, so it may legally announce A's mesh range; the others overlap
# A's LAN, contain C's own underlay address (listed in A's accept_route for C, so the loop
# check is what refuses it) and take over a public prefix (8.8.8.0/24, not listed).
sed -i "s|option address '10.66.0.1/16'|option address '10.77.0.1/16'|" "$WORK/rc.uci"
cat >>"$WORK/rc.uci" <<EOF
	list route '10.66.0.0/24'
	list route '192.168.1.0/24'
	list route '198.51.100.0/24'
	list route '8.8.8.0/24'
config peer 'ra'
	option peer_id '$A'
	option allow_lan '1'
	list address '$(quic 198.51.100.1)'
EOF

check "router A starts" start_node awl-rA ra
check "router B starts" start_node awl-rB rb
check "router C starts" start_node awl-rC rc
T0=$SECONDS
check "A installs B's LAN route" wait_for 30 sh -c "ip -n awl-rA route show 192.168.2.0/24 | grep -q awl0"
check "B installs A's LAN route" wait_for 30 sh -c "ip -n awl-rB route show 192.168.1.0/24 | grep -q awl0"
echo "routes exchanged in $((SECONDS - T0)) s"
check "IPv4 forwarding enabled on B (said in the log)" grep -q "enabled IPv4 forwarding" "$WORK/rb.log"
check "A forwards only on its TUN and LAN interface, not on the WAN side" sh -c \
    "[ \$(ip netns exec awl-rA cat /proc/sys/net/ipv4/conf/all/forwarding) = 0 ] && [ \$(ip netns exec awl-rA cat /proc/sys/net/ipv4/conf/wan0/forwarding) = 0 ] && [ \$(ip netns exec awl-rA cat /proc/sys/net/ipv4/conf/lan0/forwarding) = 1 ] && [ \$(ip netns exec awl-rA cat /proc/sys/net/ipv4/conf/awl0/forwarding) = 1 ]"
check "A found its LAN interface from the exported route" grep -q "LAN interfaces: lan0" "$WORK/ra.log"

check "hostA pings hostB by LAN address" ip netns exec awl-hA ping -c 3 -W 2 192.168.2.10
check "hostB pings hostA by LAN address" ip netns exec awl-hB ping -c 3 -W 2 192.168.1.10

iperf() { # CLIENT_NS SERVER_IP [extra]
    ip netns exec "$1" iperf3 -c "$2" -t 3 -J "${@:3}" >"$WORK/iperf.json" 2>&1 || { tail -3 "$WORK/iperf.json"; return 1; }
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); b=d['end']['sum_received']['bits_per_second']; print(f'    {b/1e6:.1f} Mbit/s'); sys.exit(0 if b>0 else 1)" "$WORK/iperf.json"
}
ip netns exec awl-hB iperf3 -s -D -B 192.168.2.10 --pidfile "$WORK/iperf-hb.pid"
ip netns exec awl-hA iperf3 -s -D -B 192.168.1.10 --pidfile "$WORK/iperf-ha.pid"
sleep 0.5; PIDS+=("$(cat "$WORK/iperf-hb.pid")" "$(cat "$WORK/iperf-ha.pid")")
echo "iperf3 hostA -> hostB:"; check "iperf3 hostA -> hostB" iperf awl-hA 192.168.2.10
echo "iperf3 hostB -> hostA:"; check "iperf3 hostB -> hostA" iperf awl-hB 192.168.1.10
# Router A's own TCP: its kernel leaves every checksum partial (TSO on awl0).
echo "iperf3 routerA -> hostB:"; check "iperf3 routerA -> hostB" iperf awl-rA 192.168.2.10
ERR_A=$(csum_errors awl-hA); ERR_B=$(csum_errors awl-hB)
echo "segments dropped for a bad checksum: hostA $ERR_A, hostB $ERR_B"
check "hostA and hostB dropped no segment for a bad checksum" test "$ERR_A:$ERR_B" = 0:0

# Exit node: 203.0.113.1 exists only behind router B.
check "A enables B as exit node" wait_for 30 grep -q "exit node: default route" "$WORK/ra.log"
check "A reaches B's upstream through the exit node" ip netns exec awl-rA ping -c 3 -W 2 203.0.113.1
check "without awl, A has no route to 203.0.113.1" sh -c "! ip -n awl-rA route get 203.0.113.1 table main 2>/dev/null | grep -q wan0"

# The exit node's returning traffic keeps its source (A must accept the internet's replies),
# but it may not claim one on A's LAN: B sends as 192.168.1.77 (untracked, so B's own
# masquerade leaves it alone) to A's mesh IP; A counts what arrives on awl0 with that source.
IP_A_AT_B=$(ctl rb peers --json | json "[p['ip'] for p in d if p['peer_id']=='$A'][0]")
ip -n awl-rB addr add 192.168.1.77/32 dev lo
printf 'table ip spoof {\n chain out {\n  type filter hook output priority raw; policy accept;\n  ip saddr 192.168.1.77 notrack\n }\n}\n' \
    | ip netns exec awl-rB nft -f -
printf 'table ip spoofcheck {\n chain pre {\n  type filter hook prerouting priority raw; policy accept;\n  iifname "awl0" ip saddr 192.168.1.77 counter\n }\n}\n' \
    | ip netns exec awl-rA nft -f -
ip netns exec awl-rB ping -c 3 -i 0.2 -W 1 -I 192.168.1.77 "$IP_A_AT_B" >/dev/null 2>&1
check "A drops exit traffic from B that claims a source on A's LAN" sh -c \
    "ip netns exec awl-rA nft list table ip spoofcheck | grep -q 'packets 0 '"
ip netns exec awl-rA nft delete table ip spoofcheck
ip netns exec awl-rB nft delete table ip spoof
ip -n awl-rB addr del 192.168.1.77/32 dev lo

# A WAN neighbour (198.51.100.9) with routes into the mesh and the LANs via A and via B.
ip -n awl-wn route add 10.66.0.0/16 via 198.51.100.2
ip -n awl-wn route add 192.168.2.0/24 via 198.51.100.2
ip -n awl-wn route add 192.168.1.0/24 via 198.51.100.1
nope() { ! ip netns exec awl-wn ping -c 2 -i 0.3 -W 1 "$1" >/dev/null 2>&1; }
check "B's service address (DNS, /status) is out of the WAN neighbour's reach" nope 10.66.255.254
check "…so is B's own mesh address" nope 10.66.0.1
check "…and hostB behind B (WAN → LAN through the exit node)" nope 192.168.2.10
check "…and hostA behind A (WAN → LAN)" nope 192.168.1.10
check "no HTTP status for the WAN neighbour" sh -c \
    "! ip netns exec awl-wn curl -s -m 3 http://10.66.255.254/status >/dev/null"
check "hostA still reaches hostB after that" ip netns exec awl-hA ping -c 2 -W 2 192.168.2.10
check "hostA reaches B's service address" ip netns exec awl-hA ping -c 2 -W 2 10.66.255.254

# Route safety.
check "C's route overlapping the mesh is refused" wait_for 20 grep -q "refusing route 10.66.0.0/24 .*mesh" "$WORK/ra.log"
check "C's route overlapping A's LAN is refused" grep -q "refusing route 192.168.1.0/24 .*own exported" "$WORK/ra.log"
check "C's route over its underlay address is refused" grep -q "refusing route 198.51.100.0/24 .*routing loop" "$WORK/ra.log"
check "C's public prefix 8.8.8.0/24 is refused (not in accept_route)" grep -q "refusing route 8.8.8.0/24 .*not a private range" "$WORK/ra.log"
check "no refused route reached the kernel" sh -c "! ip -n awl-rA route | grep -q '10.66.0.0/24\|198.51.100.0/24 dev awl0\|8.8.8.0/24'"
check "traffic still flows after the refusals" ip netns exec awl-hA ping -c 2 -W 2 192.168.2.10

# Clean stop.
kill -TERM "$PID_ra" "$PID_rb"; sleep 2
check "no awl nftables table left on A" sh -c "! ip netns exec awl-rA nft list tables | grep -q awl"
check "no awl nftables table left on B" sh -c "! ip netns exec awl-rB nft list tables | grep -q awl"
check "no routes via awl0 left on A" sh -c "! ip -n awl-rA route | grep -q awl0"
check "no policy rules left on A" sh -c "! ip -n awl-rA rule | grep -q '^52[0-2]0:'"
check "forwarding switched off again on A and B" sh -c \
    "[ \$(ip netns exec awl-rA cat /proc/sys/net/ipv4/conf/lan0/forwarding) = 0 ] && [ \$(ip netns exec awl-rB cat /proc/sys/net/ipv4/conf/all/forwarding) = 0 ]"

summary

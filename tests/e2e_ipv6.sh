#!/usr/bin/env bash
# The IPv6 underlay, two ways.
#
# 1. Only IPv6 between two awl nodes (no IPv4 address on their link): friends at /ip6/
#    addresses connect over QUIC on IPv6, ping and iperf3 run through the mesh.
#
# 2. The common ISP case: IPv4 behind each router's masquerading NAT that drops unsolicited
#    inbound, IPv6 routed and open. The nodes know each other by peer ID only and meet at an
#    awl bootstrap/relay reached over IPv4; the DHT hands out their IPv6 addresses and they
#    connect directly over IPv6, with no relay in between.
#
#   1:  sw (bridge)   a: fd00:66::1   b: fd00:66::2
#   2:  pub (bridge): relay 198.51.100.1, 2001:db8:100::1
#       nat-a: wan 198.51.100.2, 2001:db8:100::2; lan 10.1.0.1, 2001:db8:a::1   rt-a: 10.1.0.2, 2001:db8:a::2
#       nat-b: wan 198.51.100.3, 2001:db8:100::3; lan 10.2.0.1, 2001:db8:b::1   rt-b: 10.2.0.2, 2001:db8:b::2
source "$(dirname "$0")/lib.sh"
need_root
find_awl || exit 1
command -v iperf3 >/dev/null || { echo "iperf3 missing (apt-get install iperf3)"; exit 1; }

remote_of() { ctl "$1" peers --json | json "([p['remote_addr'] for p in d if p['peer_id']=='$2'] or [None])[0]"; }
path_of() { ctl "$1" peers --json | json "([p['path'] for p in d if p['peer_id']=='$2'] or [None])[0]"; }
ip_of() { ctl "$1" peers --json | json "[p['ip'] for p in d if p['peer_id']=='$2'][0]"; }

echo "=== 1: IPv6 only ==="
netns awl-sw; netns awl-a; netns awl-b
switch_hosts awl-sw awl-a awl-b
ip -n awl-a addr add fd00:66::1/64 dev eth0 nodad
ip -n awl-b addr add fd00:66::2/64 dev eth0 nodad
mkdir -p "$WORK/a" "$WORK/b"
write_config "$WORK/a.uci" a "	option lan_discovery '0'"
write_config "$WORK/b.uci" b "	option lan_discovery '0'"
A=$(peer_id a); B=$(peer_id b)
printf "config peer 'b'\n\toption peer_id '%s'\n\tlist address '/ip6/fd00:66::2/udp/4363/quic-v1'\n" "$B" >>"$WORK/a.uci"
printf "config peer 'a'\n\toption peer_id '%s'\n\tlist address '/ip6/fd00:66::1/udp/4363/quic-v1'\n" "$A" >>"$WORK/b.uci"
check "the link has no IPv4 address" sh -c "! ip -n awl-a -4 addr show dev eth0 | grep -q inet"
check "node a starts" start_node awl-a a
check "node b starts" start_node awl-b b
# ss shows a dual-stack wildcard socket (IPV6_V6ONLY off) as *:4363.
check "a listens on UDP 4363, dual-stack" sh -c "ip netns exec awl-a ss -Hlun | grep -q '\*:4363'"
check "a listens on TCP 4363, dual-stack" sh -c "ip netns exec awl-a ss -Hltn | grep -q '\*:4363'"
check "a and b are friends over IPv6" wait_for 20 confirmed a "$B"
echo "    a reaches b at $(remote_of a "$B")"
check "the connection is QUIC over IPv6" sh -c "'$AWL_BIN' -c '$WORK/a.uci' peers --json | grep -q '\"remote_addr\":\"/ip6/fd00:66::2/udp/4363/quic-v1'"
IP_B=$(ip_of a "$B"); IP_A=$(ip_of b "$A")
check "ping a -> b through the mesh over IPv6" ip netns exec awl-a ping -c 3 -W 2 "$IP_B"
check "ping b -> a through the mesh over IPv6" ip netns exec awl-b ping -c 3 -W 2 "$IP_A"
ip netns exec awl-b iperf3 -s -D -B 10.66.0.1 --pidfile "$WORK/iperf-b.pid"
sleep 0.5
PIDS+=("$(cat "$WORK/iperf-b.pid")")
echo "iperf3 TCP a -> b over IPv6 (3 s):"; check "iperf3 a -> b over IPv6" iperf awl-a "$IP_B"
kill "$PID_a" "$PID_b" 2>/dev/null; wait "$PID_a" "$PID_b" 2>/dev/null
kill "$(cat "$WORK/iperf-b.pid")" 2>/dev/null

echo "=== 2: IPv4 behind NAT, IPv6 open ==="
rm -rf "$WORK/a" "$WORK/b"
netns awl-pub; netns awl-nat-a; netns awl-nat-b; netns awl-rt-a; netns awl-rt-b
ip -n awl-pub link add br0 type bridge && ip -n awl-pub link set br0 up
ip -n awl-pub addr add 198.51.100.1/24 dev br0
ip -n awl-pub addr add 2001:db8:100::1/64 dev br0 nodad
n=2
for side in a b; do
    ns=awl-nat-$side
    ip link add wan netns "$ns" type veth peer name "p$side" netns awl-pub
    ip -n awl-pub link set "p$side" master br0 up
    ip -n "$ns" link set wan up
    ip -n "$ns" addr add "198.51.100.$n/24" dev wan
    ip -n "$ns" addr add "2001:db8:100::$n/64" dev wan nodad
    n=$((n + 1))
done
link awl-nat-a lan 10.1.0.1/24 awl-rt-a eth0 10.1.0.2/24
link awl-nat-b lan 10.2.0.1/24 awl-rt-b eth0 10.2.0.2/24
ip -n awl-nat-a addr add 2001:db8:a::1/64 dev lan nodad; ip -n awl-rt-a addr add 2001:db8:a::2/64 dev eth0 nodad
ip -n awl-nat-b addr add 2001:db8:b::1/64 dev lan nodad; ip -n awl-rt-b addr add 2001:db8:b::2/64 dev eth0 nodad
ip -n awl-rt-a route add default via 10.1.0.1; ip -n awl-rt-a -6 route add default via 2001:db8:a::1
ip -n awl-rt-b route add default via 10.2.0.1; ip -n awl-rt-b -6 route add default via 2001:db8:b::1
# The "internet" routes each site's IPv6 prefix to its router.
ip -n awl-pub -6 route add 2001:db8:a::/64 via 2001:db8:100::2
ip -n awl-pub -6 route add 2001:db8:b::/64 via 2001:db8:100::3
ip -n awl-nat-a -6 route add 2001:db8:b::/64 via 2001:db8:100::3
ip -n awl-nat-b -6 route add 2001:db8:a::/64 via 2001:db8:100::2
for side in a b; do
    ns=awl-nat-$side
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    ip -n "$ns" route add default via 198.51.100.1
    ip netns exec "$ns" nft -f - <<'EOF'
table ip nat {
    chain post { type nat hook postrouting priority srcnat; oifname "wan" masquerade; }
}
table ip filter {
    chain forwarding {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "lan" oifname "wan" accept
    }
}
EOF
done
check "IPv4 between the routers goes through NAT only (no way in)" \
    sh -c "! ip netns exec awl-rt-a ping -c 1 -W 1 10.2.0.2 >/dev/null 2>&1"
check "IPv6 between the routers is open" ip netns exec awl-rt-a ping -6 -c 1 -W 2 2001:db8:b::2

mkdir -p "$WORK/r" "$WORK/a" "$WORK/b"
write_config "$WORK/r.uci" r "	option listen_port '6150'" "	option serve '1'" \
    "	option relay_for 'all'" "	option lan_discovery '0'" "	option use_relays '0'"
check "bootstrap/relay starts" start_node awl-pub r
R=$(peer_id r)
for n in a b; do
    write_config "$WORK/$n.uci" "$n" "	option lan_discovery '0'" \
        "	list bootstrap '/ip4/198.51.100.1/udp/6150/quic-v1/p2p/$R'"
done
A=$(peer_id a); B=$(peer_id b)
printf "config peer 'b'\n\toption peer_id '%s'\n" "$B" >>"$WORK/a.uci"
printf "config peer 'a'\n\toption peer_id '%s'\n" "$A" >>"$WORK/b.uci"
check "node b starts" start_node awl-rt-b b
check "b is known to the bootstrap node" wait_for 20 grep -q "connected to bootstrap peer" "$WORK/b.log"
check "node a starts" start_node awl-rt-a a
check "a finds b by peer ID and they are friends" wait_for 40 confirmed a "$B"
echo "    a reaches b at $(remote_of a "$B") ($(path_of a "$B"))"
check "the connection is direct over IPv6" sh -c "'$AWL_BIN' -c '$WORK/a.uci' peers --json | grep -q '\"remote_addr\":\"/ip6/2001:db8:b::2/'"
check "no relay was needed" sh -c "! grep -q 'through relay' '$WORK/a.log'"
IP_B=$(ip_of a "$B")
check "ping a -> b through the mesh over IPv6" ip netns exec awl-rt-a ping -c 3 -W 2 "$IP_B"
ip netns exec awl-rt-b iperf3 -s -D -B 10.66.0.1 --pidfile "$WORK/iperf-b2.pid"
sleep 0.5
PIDS+=("$(cat "$WORK/iperf-b2.pid")")
echo "iperf3 TCP a -> b, direct over IPv6 (3 s):"; check "iperf3 a -> b" iperf awl-rt-a "$IP_B"

summary

#!/usr/bin/env bash
# A network that drops UDP: the switch between the hosts drops every UDP packet (nftables,
# bridge family), as hotel Wi-Fi and some firewalls do. Two awl nodes and the independent
# rust-libp2p bootstrap/relay node (tests/interop relay_node, QUIC + TCP on one port) sit on
# it. The awl nodes know each other by peer ID only and know the bootstrap node's QUIC and TCP
# addresses: they reach it over TCP, find each other through its DHT, connect over TCP, become
# friends (auth, status over yamux streams) and carry ping and iperf3 through the mesh on the
# stream tunnel. Then TCP between the two awl hosts is cut too: the relay (reached over TCP)
# carries them. Last, garbage and a half-open connection against a node's TCP port are
# counted and do not disturb the mesh.
#
#   sw: bridge, drops UDP    a: 192.0.2.1 (awl)    b: 192.0.2.2 (awl)    r: 192.0.2.3 (relay_node)
source "$(dirname "$0")/lib.sh"
need_root
find_awl || exit 1
command -v iperf3 >/dev/null || { echo "iperf3 missing (apt-get install iperf3)"; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)

netns awl-sw; netns awl-a; netns awl-b; netns awl-r
switch_hosts awl-sw awl-a awl-b awl-r
ip -n awl-a addr add 192.0.2.1/24 dev eth0
ip -n awl-b addr add 192.0.2.2/24 dev eth0
ip -n awl-r addr add 192.0.2.3/24 dev eth0
ip netns exec awl-sw nft -f - <<'EOF'
table bridge path {
    chain forward {
        type filter hook forward priority filter; policy accept;
        meta l4proto udp counter drop
    }
}
EOF
udp_dropped() { ip netns exec awl-sw nft list chain bridge path forward | grep -o 'packets [0-9]*' | head -1 | cut -d' ' -f2; }

RELAY_BIN="$ROOT/tests/interop/target/debug/relay_node"
cargo build --quiet --manifest-path "$ROOT/tests/interop/Cargo.toml" --bin relay_node || { fail "build relay_node"; summary; exit 1; }
ip netns exec awl-r "$RELAY_BIN" --listen 192.0.2.3 --port 6150 \
    --seed 0202020202020202020202020202020202020202020202020202020202020202 \
    >"$WORK/r.out" 2>"$WORK/r.log" &
PIDS+=($!)
wait_for 10 grep -q '^relay_node ' "$WORK/r.out"
R=$(awk '{print $2; exit}' "$WORK/r.out")
check "rust-libp2p bootstrap/relay is up ($R)" test -n "$R"

mkdir -p "$WORK/a" "$WORK/b"
for n in a b; do
    write_config "$WORK/$n.uci" "$n" "	option lan_discovery '0'" \
        "	list bootstrap '/ip4/192.0.2.3/udp/6150/quic-v1/p2p/$R'" \
        "	list bootstrap '/ip4/192.0.2.3/tcp/6150/p2p/$R'"
done
A=$(peer_id a); B=$(peer_id b)
# Friends by peer ID alone: the DHT gives the addresses.
printf "config peer 'b'\n\toption peer_id '%s'\n\toption alias 'bob'\n" "$B" >>"$WORK/a.uci"
printf "config peer 'a'\n\toption peer_id '%s'\n\toption alias 'alice'\n" "$A" >>"$WORK/b.uci"

check "node b starts" start_node awl-b b
check "node a starts" start_node awl-a a
check "a listens on TCP 4363 beside UDP 4363" \
    sh -c "ip netns exec awl-a ss -Htln 'sport = :4363' | grep -q LISTEN"
remote_of() { ctl "$1" peers --json | json "([p['remote_addr'] for p in d if p['peer_id']=='$2'] or [None])[0]"; }
check "a and b become friends with UDP dropped on the path" wait_for 40 confirmed a "$B"
check "b sees a confirmed" wait_for 20 confirmed b "$A"
echo "    a reaches b at $(remote_of a "$B"), b reaches a at $(remote_of b "$A")"
check "a's connection to b is direct TCP" sh -c "ctl_out=\$('$AWL_BIN' -c '$WORK/a.uci' peers --json); echo \"\$ctl_out\" | grep -q '\"remote_addr\":\"/ip4/192.0.2.2/tcp/'"
check "a reached the bootstrap node over TCP" grep -q "connected to bootstrap peer" "$WORK/a.log"
check "the switch dropped the QUIC attempts" test "$(udp_dropped)" -gt 0

# Status over TCP: each shows the other's chosen name (from the status protocol).
name_of() { ctl "$1" peers --json | json "([p['name'] for p in d if p['peer_id']=='$2'] or [''])[0]"; }
check "a learnt b's name over the status protocol" wait_for 15 sh -c "[ \"\$('$AWL_BIN' -c '$WORK/a.uci' peers --json | python3 -c \"import json,sys; print([p['name'] for p in json.load(sys.stdin) if p['peer_id']=='$B'][0])\")\" = b ]"

IP_B=$(ctl a peers --json | json "[p['ip'] for p in d if p['peer_id']=='$B'][0]")
IP_A=$(ctl b peers --json | json "[p['ip'] for p in d if p['peer_id']=='$A'][0]")
check "ping a -> b through the mesh over TCP" ip netns exec awl-a ping -c 3 -W 2 "$IP_B"
check "ping b -> a through the mesh over TCP" ip netns exec awl-b ping -c 3 -W 2 "$IP_A"

ip netns exec awl-b iperf3 -s -D -B 10.66.0.1 --pidfile "$WORK/iperf-b.pid"
ip netns exec awl-a iperf3 -s -D -B 10.66.0.1 --pidfile "$WORK/iperf-a.pid"
sleep 0.5
PIDS+=("$(cat "$WORK/iperf-b.pid")" "$(cat "$WORK/iperf-a.pid")")
echo "iperf3 TCP a -> b over awl's TCP transport (3 s):"; check "iperf3 a -> b" iperf awl-a "$IP_B"
echo "iperf3 TCP b -> a over awl's TCP transport (3 s):"; check "iperf3 b -> a" iperf awl-b "$IP_A"
DG=$(metric a peer_tx_datagrams_total); TX=$(metric a peer_tx_packets_total)
echo "    a sent $DG of $TX packets to b in datagrams"
check "over TCP the packets ride the stream tunnel (no datagrams)" test "$DG" -eq 0 -a "$TX" -gt 100
check "metrics count the TCP connections" test "$(metric a tcp_connections)" -ge 2
# (The verdict waits until the node has been up 30 s.)
check "health says UDP is blocked and TCP carries the peers" wait_for 40 \
    sh -c "'$AWL_BIN' -c '$WORK/a.uci' health --json | grep -q 'reached over TCP instead'"
ctl a health | grep -i udp | sed "s/^/    health says: /"

# Hostile bytes on b's TCP port: counted and closed, the mesh unaffected.
HF0=$(metric b handshake_failures_total)
ip netns exec awl-r python3 - <<'EOF'
import socket, time
g = socket.create_connection(("192.0.2.2", 4363), timeout=5)
g.sendall(b"\x13/multistream/1.0.0\n\xff\xff\xff\xff\xff garbage garbage")
g.settimeout(5)
try:
    while g.recv(256):
        pass
except OSError:
    pass
EOF
check "garbage on b's TCP port is counted as a failed handshake" \
    wait_for 5 sh -c "[ \$('$AWL_BIN' -c '$WORK/b.uci' metrics | awk '\$1==\"awl_handshake_failures_total\" {print \$2}') -gt $HF0 ]"
check "the mesh still answers after the garbage" ip netns exec awl-a ping -c 2 -W 2 "$IP_B"

# Now TCP between a and b is cut too: only the relay (over TCP) joins them.
ip netns exec awl-sw nft add rule bridge path forward ip saddr 192.0.2.1 ip daddr 192.0.2.2 drop
ip netns exec awl-sw nft add rule bridge path forward ip saddr 192.0.2.2 ip daddr 192.0.2.1 drop
check "b holds a relay reservation over TCP" wait_for 40 sh -c \
    "'$AWL_BIN' -c '$WORK/b.uci' status --json | grep -q '\"circuit_addrs\":\[\"/ip4/192.0.2.3/tcp/'"
path_of() { ctl "$1" peers --json | json "([p['path'] for p in d if p['peer_id']=='$2'] or [None])[0]"; }
check "a reaches b through the relay once the direct TCP path is cut" wait_for 60 sh -c \
    "[ \"\$('$AWL_BIN' -c '$WORK/a.uci' peers --json | python3 -c \"import json,sys; print([p['path'] for p in json.load(sys.stdin) if p['peer_id']=='$B'][0])\")\" = relayed ]"
check "ping a -> b through the relay over TCP" wait_for 20 ip netns exec awl-a ping -c 1 -W 2 "$IP_B"

summary

#!/usr/bin/env bash
# The node's own services and the SOCKS5 exit, end to end:
#   host-a (192.168.1.10) — router A ═ switch (192.0.2.0/24) ═ router B — host-b (192.168.2.10)
#                                      └ resolver (192.0.2.53)  └ node U (unprivileged)
# From host-a, behind router A: `dig @<service address>` for peer names (UDP and TCP), a
# non-mesh name forwarded to the resolver namespace, ping of the service address, the HTTP
# status endpoint. Through B's SOCKS5 exit: curl reaches host-b's web server; a peer without
# permission and a loopback destination are refused. Node U runs without CAP_NET_ADMIN: it
# starts in userspace mode, answers ping on its mesh address, and its SOCKS5 proxy reaches
# host-b through B.
source "$(dirname "$0")/lib.sh"
need_root
find_awl || exit 1
for t in dig curl setpriv python3; do
    command -v $t >/dev/null || { echo "$t missing (tests/deps.sh installs it)"; exit 1; }
done

netns awl-sw; netns awl-ra; netns awl-rb; netns awl-ha; netns awl-hb; netns awl-dns; netns awl-u
switch_hosts awl-sw awl-ra awl-rb awl-dns awl-u
ip -n awl-ra addr add 192.0.2.1/24 dev eth0
ip -n awl-rb addr add 192.0.2.2/24 dev eth0
ip -n awl-dns addr add 192.0.2.53/24 dev eth0
ip -n awl-u addr add 192.0.2.4/24 dev eth0
link awl-ra lan 192.168.1.1/24 awl-ha eth0 192.168.1.10/24
link awl-rb lan 192.168.2.1/24 awl-hb eth0 192.168.2.10/24
ip -n awl-ha route add default via 192.168.1.1
ip -n awl-hb route add default via 192.168.2.1
ip netns exec awl-ra sysctl -qw net.ipv4.ip_forward=1

# The upstream resolver: answers every A query with 203.0.113.99.
cat >"$WORK/resolver.py" <<'EOF'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.0.2.53", 53))
while True:
    q, peer = s.recvfrom(512)
    end = 12
    while q[end] != 0:
        end += q[end] + 1
    end += 5
    r = q[:2] + b"\x81\x80" + q[4:6] + b"\x00\x01\x00\x00\x00\x00" + q[12:end]
    r += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([203, 0, 113, 99])
    s.sendto(r, peer)
EOF
ip netns exec awl-dns python3 "$WORK/resolver.py" &
PIDS+=($!)
wait_for 20 sh -c "ip netns exec awl-dns ss -lun | grep -q 192.0.2.53:53"
# Web servers behind B: on host-b's LAN, and on B's own loopback (must stay unreachable).
mkdir -p "$WORK/www" && echo "hello from host-b" >"$WORK/www/index.html"
ip netns exec awl-hb python3 -m http.server 8000 --bind 192.168.2.10 --directory "$WORK/www" >"$WORK/http-hb.log" 2>&1 &
PIDS+=($!)
ip netns exec awl-rb python3 -m http.server 8000 --bind 127.0.0.1 --directory "$WORK/www" >/dev/null 2>&1 &
PIDS+=($!)
# A "cloud metadata service" on a link-local address next to B (must stay unreachable too).
ip -n awl-hb addr add 169.254.169.254/32 dev lo
ip -n awl-rb route add 169.254.169.254/32 via 192.168.2.10
ip netns exec awl-hb python3 -m http.server 8000 --bind 169.254.169.254 --directory "$WORK/www" >/dev/null 2>&1 &
PIDS+=($!)

mkdir -p "$WORK/a" "$WORK/b" "$WORK/u"
write_config "$WORK/a.uci" a
write_config "$WORK/b.uci" b
write_config "$WORK/u.uci" u
A=$(peer_id a); B=$(peer_id b); U=$(peer_id u)
cat >>"$WORK/a.uci" <<EOF
	option dns_upstream '192.0.2.53'
	option socks5 '1'
	option socks5_exit 'office'
config peer
	option peer_id '$B'
	option alias 'office'
	list address '/ip4/192.0.2.2/udp/4363/quic-v1'
EOF
cat >>"$WORK/b.uci" <<EOF
config peer
	option peer_id '$A'
	option alias 'alice'
	option allow_exit '1'
config peer
	option peer_id '$U'
	option alias 'userspace'
	option allow_exit '1'
EOF
cat >>"$WORK/u.uci" <<EOF
	option socks5 '1'
	option socks5_port '1081'
	option socks5_exit 'office'
config peer
	option peer_id '$B'
	option alias 'office'
	list address '/ip4/192.0.2.2/udp/4363/quic-v1'
EOF

check "node a starts" start_node awl-ra a
check "node b starts" start_node awl-rb b
check "a and b are friends" wait_for 20 confirmed a "$B"

SVC=10.66.255.254
IP_B=$(ctl a peers --json | json "[p['ip'] for p in d if p['peer_id']=='$B'][0]")
dig_a() { ip netns exec awl-ha dig +short +time=2 +tries=1 @"$SVC" "$@"; }
check "host-a pings the service address" ip netns exec awl-ha ping -c 2 -W 2 "$SVC"
check "dig office.awl (UDP) from the LAN gives b's mesh IP $IP_B" test "$(dig_a office.awl A)" = "$IP_B"
check "dig +tcp office.awl gives the same" test "$(dig_a +tcp office.awl A)" = "$IP_B"
check "dig <peer-id>.awl works (case-insensitive)" test "$(dig_a "$B.awl" A)" = "$IP_B"
check "AAAA of a peer name is an empty NOERROR answer" sh -c \
    "ip netns exec awl-ha dig +time=2 +tries=1 @$SVC office.awl AAAA | grep -q 'status: NOERROR' && [ -z \"\$(ip netns exec awl-ha dig +short +time=2 @$SVC office.awl AAAA)\" ]"
check "an unknown .awl name is NXDOMAIN" sh -c \
    "ip netns exec awl-ha dig +time=2 +tries=1 @$SVC nobody.awl | grep -q 'status: NXDOMAIN'"
REV=$(echo "$IP_B" | awk -F. '{print $4"."$3"."$2"."$1".in-addr.arpa"}')
check "PTR of b's mesh IP is office.awl" test "$(dig_a "$REV" PTR)" = "office.awl."
check "a non-mesh name is forwarded to the upstream resolver" test "$(dig_a www.example.com A)" = "203.0.113.99"
check "…over TCP too" test "$(dig_a +tcp www.example.com A)" = "203.0.113.99"
ip netns exec awl-ha curl -s -m 5 "http://$SVC/status" >"$WORK/status.json"
check "HTTP status lists the peers" python3 -c "
import json, sys
d = json.load(open('$WORK/status.json'))
assert d['node']['peer_id'] == '$A', d['node']
assert any(p['peer_id'] == '$B' and p['path'] == 'direct' for p in d['peers']), d['peers']
"
check "HTTP status shows LAN hosts no underlay address (ours or a friend's)" python3 -c "
import json
t = open('$WORK/status.json').read()
d = json.loads(t)
assert '192.0.2.' not in t, t
assert all('remote_addr' not in p for p in d['peers']), d['peers']
assert 'listen_addrs' not in d['node'] and 'observed_addrs' not in d['node'], d['node']
"

# Observability: health, Prometheus metrics (control API and HTTP), the log ring.
check "awl health passes with b connected" ctl a health
check "a pings b through the tunnel" ip netns exec awl-ra ping -c 2 -W 2 "$IP_B"
ctl a metrics >"$WORK/metrics.txt"
check "metrics show b connected on a direct path" sh -c \
    "grep -q 'awl_peer_connected{peer=\"$B\",alias=\"office\"} 1' '$WORK/metrics.txt' && grep -q 'awl_peer_relayed{peer=\"$B\",alias=\"office\"} 0' '$WORK/metrics.txt'"
check "metrics count b's traffic" sh -c "grep -E '^awl_peer_rx_packets_total\{peer=\"$B\".*\} [1-9]' '$WORK/metrics.txt' >/dev/null"
check "/metrics on the service address" sh -c \
    "ip netns exec awl-ha curl -s -m 5 http://$SVC/metrics | grep -q '^awl_pool_buffers_free '"
check "awl logs returns the daemon's recent lines" sh -c "'$AWL_BIN' -c '$WORK/a.uci' logs 20 | grep -q 'services on'"

# SOCKS5 through B (once the web servers listen: python starts slowly on a busy machine).
wait_for 20 sh -c "ip netns exec awl-hb ss -ltn | grep -q 192.168.2.10:8000"
wait_for 20 sh -c "ip netns exec awl-rb ss -ltn | grep -q 127.0.0.1:8000"
wait_for 20 sh -c "ip netns exec awl-hb ss -ltn | grep -q 169.254.169.254:8000"
curl_a() { ip netns exec awl-ra curl -s -m 8 --socks5 127.0.0.1:1080 "$@"; }
check "curl --socks5 through b reaches host-b's web server" sh -c \
    "ip netns exec awl-ra curl -s -m 8 --socks5 127.0.0.1:1080 http://192.168.2.10:8000/ | grep -q 'hello from host-b'"
check "a loopback destination on the exit is refused" sh -c \
    "! ip netns exec awl-ra curl -s -m 8 --socks5 127.0.0.1:1080 http://127.0.0.1:8000/ >/dev/null"
check "B itself reaches the link-local metadata service (the test's control)" sh -c \
    "ip netns exec awl-rb curl -s -m 8 http://169.254.169.254:8000/ | grep -q 'hello from host-b'"
check "a link-local destination (169.254.169.254) on the exit is refused" sh -c \
    "! ip netns exec awl-ra curl -s -m 8 --socks5 127.0.0.1:1080 http://169.254.169.254:8000/ >/dev/null"
# B withdraws the permission (reload keeps a connected).
sed -i "/option alias 'alice'/{n;s/option allow_exit '1'/option allow_exit '0'/}" "$WORK/b.uci"
ctl b reload >/dev/null
check "without allow_exit the exit refuses" sh -c \
    "! ip netns exec awl-ra curl -s -m 8 --socks5 127.0.0.1:1080 http://192.168.2.10:8000/ >/dev/null"

# The control socket: 0600 from the start, and even when opened up, another uid is refused.
check "the control socket is mode 0600" test "$(stat -c %a "$WORK/a/awl.sock")" = 600
chmod 711 "$WORK" "$WORK/a"
chmod 666 "$WORK/a/awl.sock"
chmod 644 "$WORK/a.uci"
check "another uid is refused on the control socket (SO_PEERCRED)" sh -c \
    "setpriv --reuid=65534 --regid=65534 --clear-groups '$AWL_BIN' -c '$WORK/a.uci' -s '$WORK/a/awl.sock' status 2>&1 | grep -q 'permission denied'"
check "root still gets an answer" sh -c "'$AWL_BIN' -c '$WORK/a.uci' status >/dev/null"
chmod 600 "$WORK/a/awl.sock"
chmod 700 "$WORK/a"

# Node U without privileges: userspace mode.
chown -R 65534:65534 "$WORK/u"
chmod 755 "$WORK"
chmod 644 "$WORK/u.uci"
ip netns exec awl-u setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
    "$AWL_BIN" -c "$WORK/u.uci" run >>"$WORK/u.log" 2>&1 &
PIDS+=($!)
check "node u starts unprivileged" wait_for 10 test -S "$WORK/u/awl.sock"
check "u says it runs in userspace mode" wait_for 5 grep -q "userspace mode" "$WORK/u.log"
check "b and u are friends" wait_for 20 confirmed b "$U"
IP_U=$(ctl b peers --json | json "[p['ip'] for p in d if p['peer_id']=='$U'][0]")
check "b pings u's mesh address (answered in userspace)" ip netns exec awl-rb ping -c 2 -W 2 "$IP_U"
check "u's SOCKS5 proxy reaches host-b through b" sh -c \
    "ip netns exec awl-u curl -s -m 8 --socks5 127.0.0.1:1081 http://192.168.2.10:8000/ | grep -q 'hello from host-b'"

summary

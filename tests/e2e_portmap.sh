#!/usr/bin/env bash
# Port mapping against a real home router: miniupnpd (Debian's, nftables backend) in a
# namespace that masquerades a LAN behind 5.5.5.1. A node on that LAN (the Raspberry Pi
# gateway case) asks the router to forward its QUIC port, first with NAT-PMP and then, with
# NAT-PMP off on the router, with UPnP-IGD. A peer on the WAN that knows only the mapped
# address connects directly and pings through the mesh; the mapping is gone once the node
# exits. Without port mapping the same peer cannot connect at all (the control case).
source "$(dirname "$0")/lib.sh"
need_root
find_awl || exit 1

# miniupnpd from the Debian archive, unpacked (its package scripts would start a service).
MINIUPNPD=$(command -v miniupnpd || true)
if [ -z "$MINIUPNPD" ]; then
    CACHE=${AWL_TEST_CACHE:-/var/cache/awl-tests}/miniupnpd
    if [ ! -x "$CACHE/usr/sbin/miniupnpd" ]; then
        mkdir -p "$CACHE" && (cd "$CACHE" && { apt-get download -qq miniupnpd-nftables >/dev/null 2>&1 \
            || { apt-get update -qq && apt-get download -qq miniupnpd-nftables >/dev/null 2>&1; }; } \
            && dpkg-deb -x miniupnpd-nftables_*.deb .)
    fi
    MINIUPNPD=$CACHE/usr/sbin/miniupnpd
fi
[ -x "$MINIUPNPD" ] || { fail "miniupnpd not available (apt-get download miniupnpd-nftables)"; summary; exit 1; }
echo "miniupnpd: $("$MINIUPNPD" --version 2>&1 | head -1)"

netns awl-pm-gw; netns awl-pm-wan; netns awl-pm-pi
ip link add gwwan netns awl-pm-gw type veth peer name eth0 netns awl-pm-wan
ip link add gwlan netns awl-pm-gw type veth peer name eth0 netns awl-pm-pi
ip -n awl-pm-gw addr add 5.5.5.1/24 dev gwwan && ip -n awl-pm-gw link set gwwan up
ip -n awl-pm-gw addr add 192.168.77.1/24 dev gwlan && ip -n awl-pm-gw link set gwlan up
ip -n awl-pm-wan addr add 5.5.5.2/24 dev eth0 && ip -n awl-pm-wan link set eth0 up
ip -n awl-pm-pi addr add 192.168.77.2/24 dev eth0 && ip -n awl-pm-pi link set eth0 up
ip -n awl-pm-pi route add default via 192.168.77.1
ip netns exec awl-pm-gw sysctl -qw net.ipv4.ip_forward=1
# The router: masquerade out, nothing in but what miniupnpd forwards (its chains, empty now).
ip netns exec awl-pm-gw nft -f - <<'EOF'
table inet filter {
    chain forward { type filter hook forward priority 0; policy drop;
        ct state established,related accept; iifname "gwlan" accept; jump miniupnpd; }
    chain miniupnpd { }
    chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
    chain postrouting { type nat hook postrouting priority 100; policy accept;
        jump postrouting_miniupnpd; oifname "gwwan" masquerade; }
    chain prerouting_miniupnpd { }
    chain postrouting_miniupnpd { }
}
EOF

start_router() { # NATPMP(yes|no)
    cat >"$WORK/miniupnpd.conf" <<EOF
ext_ifname=gwwan
listening_ip=gwlan
port=5000
enable_natpmp=$1
enable_upnp=yes
secure_mode=yes
system_uptime=yes
uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b
allow 1024-65535 192.168.77.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
    # A fresh log: the wait below must see this start's line, not the previous router's.
    ip netns exec awl-pm-gw "$MINIUPNPD" -f "$WORK/miniupnpd.conf" -d -P "$WORK/miniupnpd.pid" \
        >"$WORK/miniupnpd.log" 2>&1 &
    ROUTER=$!; PIDS+=("$ROUTER")
    wait_for 10 grep -q "HTTP listening" "$WORK/miniupnpd.log"
    # SSDP (UDP 1900) is bound after the HTTP line: a node started before it finds no gateway.
    wait_for 10 ssdp_bound
}
ssdp_bound() { ip netns exec awl-pm-gw ss -Hlun 'sport = :1900' | grep -q .; }
stop_router() { kill "$ROUTER" 2>/dev/null; wait "$ROUTER" 2>/dev/null; }
redirects() { ip netns exec awl-pm-gw nft list chain inet filter prerouting_miniupnpd; }
forwarded() { redirects | grep -q "dport 4363"; }
not() { ! "$@"; }

write_config "$WORK/w.uci" w "	option lan_discovery '0'" "	option use_relays '0'"
mkdir -p "$WORK/w" "$WORK/p"
write_config "$WORK/p.uci" p "	option lan_discovery '0'" "	option use_relays '0'" "	option port_mapping '0'"
W=$(peer_id w); P=$(peer_id p)
# The WAN peer knows the Pi only at the router's public address; the Pi knows no address of it.
cat >>"$WORK/w.uci" <<EOF
config peer 'p'
	option peer_id '$P'
	list address '/ip4/5.5.5.1/udp/4363/quic-v1'
EOF
printf "config peer 'w'\n\toption peer_id '%s'\n" "$W" >>"$WORK/p.uci"
connected() { ctl "$1" peers --json | json "[p['connected'] for p in d if p['peer_id']=='$2'][0]" | grep -q True; }
mapped() { ctl p status --json | json "d['mapped_addrs']" | grep -q "/ip4/5.5.5.1/udp/4363/quic-v1"; }

start_router yes

# Control: port mapping off, the router drops the WAN node's dial.
check "the LAN node starts with port_mapping 0" start_node awl-pm-pi p
check "the WAN node starts" start_node awl-pm-wan w
sleep 8
check "without a mapping the WAN node cannot connect" not connected w "$P"
check "without a mapping the router forwards nothing" not forwarded
kill "$PID_p" "$PID_w"; wait "$PID_p" "$PID_w" 2>/dev/null

run_mapped() { # LABEL PROTOCOL-IN-LOG
    local what=$1 how=$2
    sed -i "s/option port_mapping '0'/option port_mapping '1'/" "$WORK/p.uci"
    : >"$WORK/p.log"
    check "[$what] the LAN node starts with port_mapping 1" start_node awl-pm-pi p
    check "[$what] the router forwards 5.5.5.1:4363 to the node" wait_for 15 forwarded
    check "[$what] the node says it mapped the port with $how" wait_for 10 grep -q "port mapping.*$how.*5.5.5.1:4363" "$WORK/p.log"
    check "[$what] the mapped address is advertised" wait_for 10 mapped
    # A fresh WAN node each round: no connection left over from the round before. The
    # router's conntrack still holds the unanswered dials of the round before, and NAT rules
    # apply to new flows only (that flow would keep missing the new forward for as long as
    # it is retried): flush it, as a router's restart of its firewall would.
    ip netns exec awl-pm-gw conntrack -F >/dev/null 2>&1
    start_node awl-pm-wan w
    check "[$what] the WAN node connects through the mapping" wait_for 30 connected w "$P"
    check "[$what] the path is direct" test "$(ctl w peers --json | json "[p['path'] for p in d if p['peer_id']=='$P'][0]")" = direct
    local ip
    ip=$(ctl w peers --json | json "[p['ip'] for p in d if p['peer_id']=='$P'][0]")
    check "[$what] ping WAN -> LAN node through the mesh" ip netns exec awl-pm-wan ping -c 3 -W 2 "$ip"
    kill "$PID_p" "$PID_w"; wait "$PID_p" "$PID_w" 2>/dev/null
    check "[$what] the mapping is removed when the node exits" not forwarded
}
run_mapped NAT-PMP NAT-PMP
stop_router
start_router no
run_mapped UPnP UPnP
grep -E "port mapping|NAT-PMP|UPnP" "$WORK/p.log" | head -5 | sed 's/^/    /'

summary

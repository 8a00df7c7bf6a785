#!/usr/bin/env bash
# Two routers, each behind its own nftables masquerade NAT that drops unsolicited inbound
# traffic, and a "public" namespace with a bootstrap/relay. No peer has an address for the
# other: A finds B by peer ID through the DHT, connects through the relay, and the connection
# is upgraded to direct by DCUtR hole punching. ping and iperf3 run through the tunnel.
#
# Run three times: the bootstrap/relay is an independent rust-libp2p node (tests/interop
# relay_node: Kademlia server on /awl/kad/1.0.0, relay v2, dcutr), then an awl node in serving
# mode; then again with awl, but nat-a maps every flow to a random port (a "symmetric" NAT):
# punching must fail once, and the peers stay connected through the relay. Last, with hole
# punching off and two awl relays: the relay carrying the path is killed and traffic resumes
# through the other one. Then AutoNAT: with three awl bootstrap nodes answering dial-backs, a
# node with a public address (no NAT) finds itself public and drops its relay reservations,
# a node behind the NAT finds itself private and keeps them. AWL_NAT_SCENARIOS picks some.
#
#   pub:     a bridge (the internet), relay 198.51.100.1
#   nat-a:   wan 198.51.100.2, lan 10.1.0.1/24, masquerade     router-a: 10.1.0.2 (awl A)
#   nat-b:   wan 198.51.100.3, lan 10.2.0.1/24, masquerade     router-b: 10.2.0.2 (awl B)
source "$(dirname "$0")/lib.sh"
need_root
find_awl || exit 1
command -v iperf3 >/dev/null || { echo "iperf3 missing (apt-get install iperf3)"; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCENARIOS=${AWL_NAT_SCENARIOS:-"libp2p awl symmetric failover autonat"}

netns awl-pub; netns awl-nat-a; netns awl-nat-b; netns awl-rt-a; netns awl-rt-b
ip -n awl-pub link add br0 type bridge && ip -n awl-pub link set br0 up
ip -n awl-pub addr add 198.51.100.1/24 dev br0
for side in a b; do
    ip link add wan netns "awl-nat-$side" type veth peer name "p$side" netns awl-pub
    ip -n awl-pub link set "p$side" master br0 up
    ip -n "awl-nat-$side" link set wan up
done
ip -n awl-nat-a addr add 198.51.100.2/24 dev wan
ip -n awl-nat-b addr add 198.51.100.3/24 dev wan
link awl-nat-a lan 10.1.0.1/24 awl-rt-a eth0 10.1.0.2/24
link awl-nat-b lan 10.2.0.1/24 awl-rt-b eth0 10.2.0.2/24
ip -n awl-rt-a route add default via 10.1.0.1
ip -n awl-rt-b route add default via 10.2.0.1
for side in a b; do
    ns=awl-nat-$side
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
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
    chain incoming {
        type filter hook input priority filter; policy drop;
        ct state established,related accept
        iifname "lan" accept
        icmp type echo-request accept
    }
}
EOF
done
check "routers reach the public side through NAT only" \
    ip netns exec awl-rt-a ping -c 1 -W 2 198.51.100.3
check "the NATs drop unsolicited inbound" \
    sh -c "! ip netns exec awl-rt-a ping -c 1 -W 1 10.2.0.2 >/dev/null 2>&1"

# ms since the epoch (for step timings).
now_ms() { date +%s%3N; }
path_of() { ctl "$1" peers --json | json "([p['path'] for p in d if p['peer_id']=='$2'] or [None])[0]"; }

reachability() { ctl "$1" status --json | json "d['reachability']"; }
relays_held() { ctl "$1" status --json | json "len(d['relays'])"; }
is_public() { [ "$(reachability "$1")" = public ]; }
is_private() { [ "$(reachability "$1")" = private ]; }
holds_relay() { [ "$(relays_held "$1")" -ge 1 ]; }
no_relay() { [ "$(relays_held "$1")" = 0 ] && ! ctl "$1" status --json | grep -q p2p-circuit; }

# Three awl bootstrap/relay nodes in serving mode on the public side; p (public address, no
# NAT) and b (behind nat-b) ask them to dial back.
run_autonat() {
    local kind=autonat n i boots=() ids=() t0
    echo "=== scenario: autonat ==="
    for n in r r2 r3 p b; do rm -rf "${WORK:?}/$n"; mkdir -p "$WORK/$n"; done
    for i in 0 1 2; do
        n=r; [ "$i" -gt 0 ] && n="r$((i + 1))"
        write_config "$WORK/$n.uci" "$n" "	option listen_port '$((6150 + i))'" "	option serve '1'" \
            "	option relay_for 'all'" "	option lan_discovery '0'" "	option use_relays '0'" \
            "	option interface 'awl$i'"
        start_node awl-pub "$n"
        ids+=("$(peer_id "$n")")
        boots+=("	list bootstrap '/ip4/198.51.100.1/udp/$((6150 + i))/quic-v1/p2p/${ids[$i]}'")
    done
    write_config "$WORK/p.uci" p "	option listen_port '6160'" "	option lan_discovery '0'" \
        "	option interface 'awl3'" "${boots[@]}"
    write_config "$WORK/b.uci" b "	option lan_discovery '0'" "${boots[@]}"
    t0=$(now_ms)
    start_node awl-pub p
    start_node awl-rt-b b
    check "[$kind] b holds a relay reservation" wait_for 30 holds_relay b
    check "[$kind] p (no NAT) finds itself public" wait_for 120 is_public p
    echo "    p public after $(( $(now_ms) - t0 )) ms"
    check "[$kind] p holds no relay reservation and advertises no circuit" wait_for 30 no_relay p
    check "[$kind] p logged why" grep -q "publicly reachable at /ip4/198.51.100.1/udp/6160/quic-v1.*: no relay reservations needed" "$WORK/p.log"
    check "[$kind] b (behind NAT) finds itself private" wait_for 120 is_private b
    echo "    b private after $(( $(now_ms) - t0 )) ms"
    check "[$kind] b keeps its relay reservation" holds_relay b
    is_private b || echo "    b status: $(ctl b status --json 2>&1 | head -c 600)"
    grep -h "reachability\|publicly\|autonat" "$WORK/p.log" "$WORK/b.log" | tail -n 12 | sed 's/^/    log: /'
    stop_nodes p b r r2 r3
    for n in r r2 r3 p b; do cp "$WORK/$n.log" "$WORK/$kind-$n.log" 2>/dev/null; : >"$WORK/$n.log"; done
    ip netns exec awl-nat-b conntrack -F >/dev/null 2>&1
}

run_scenario() {
    local kind=$1 relay_id relay_pid t0 t_conn t_direct saw_relayed=0 p
    [ "$kind" = autonat ] && { run_autonat; return; }
    FAILED_BEFORE=$FAILED
    echo "=== scenario: bootstrap/relay = $kind ==="
    rm -rf "$WORK/a" "$WORK/b" "$WORK/r"; mkdir -p "$WORK/a" "$WORK/b" "$WORK/r"
    if [ "$kind" = symmetric ]; then
        ip netns exec awl-nat-a conntrack -F >/dev/null 2>&1
        ip netns exec awl-nat-a nft flush chain ip nat post
        ip netns exec awl-nat-a nft add rule ip nat post oifname wan masquerade random
    fi
    if [ "$kind" = libp2p ]; then
        local bin="$ROOT/tests/interop/target/debug/relay_node"
        cargo build --quiet --manifest-path "$ROOT/tests/interop/Cargo.toml" --bin relay_node || { fail "build relay_node"; return; }
        ip netns exec awl-pub "$bin" --listen 198.51.100.1 --port 6150 \
            --seed 0101010101010101010101010101010101010101010101010101010101010101 \
            >"$WORK/r.out" 2>"$WORK/r.log" &
        relay_pid=$!; PIDS+=("$relay_pid"); PID_r=$relay_pid
        wait_for 10 grep -q '^relay_node ' "$WORK/r.out"
        relay_id=$(awk '{print $2; exit}' "$WORK/r.out")
    else
        write_config "$WORK/r.uci" r "	option listen_port '6150'" "	option serve '1'" \
            "	option relay_for 'all'" "	option lan_discovery '0'" "	option use_relays '0'"
        start_node awl-pub r
        relay_pid=$PID_r
        relay_id=$(peer_id r)
    fi
    local extra_a=() extra_b=() relay2_id=""
    if [ "$kind" = failover ]; then
        mkdir -p "$WORK/r2"
        write_config "$WORK/r2.uci" r2 "	option listen_port '6151'" "	option serve '1'" \
            "	option relay_for 'all'" "	option lan_discovery '0'" "	option use_relays '0'" \
            "	option interface 'awl1'"
        start_node awl-pub r2
        relay2_id=$(peer_id r2)
        extra_a=("	option hole_punching '0'" "	list bootstrap '/ip4/198.51.100.1/udp/6151/quic-v1/p2p/$relay2_id'")
        extra_b=("${extra_a[@]}")
    fi
    relay_listens() { ip netns exec awl-pub ss -Hlun "sport = :6150" | grep -q .; }
    relay_up() { [ -n "$relay_id" ] && wait_for 5 relay_listens; }
    check "[$kind] relay is up ($relay_id) and listens on UDP 6150" relay_up

    write_config "$WORK/a.uci" a "	option lan_discovery '0'" \
        "	list bootstrap '/ip4/198.51.100.1/udp/6150/quic-v1/p2p/$relay_id'" "${extra_a[@]}"
    write_config "$WORK/b.uci" b "	option lan_discovery '0'" \
        "	list bootstrap '/ip4/198.51.100.1/udp/6150/quic-v1/p2p/$relay_id'" "${extra_b[@]}"
    local A B
    A=$(peer_id a); B=$(peer_id b)
    # Friends by peer ID alone: no address anywhere.
    printf "config peer 'b'\n\toption peer_id '%s'\n" "$B" >>"$WORK/a.uci"
    printf "config peer 'a'\n\toption peer_id '%s'\n" "$A" >>"$WORK/b.uci"

    t0=$(now_ms)
    start_node awl-rt-b b
    check "[$kind] b holds a relay reservation" wait_for 20 sh -c \
        "'$AWL_BIN' -c '$WORK/b.uci' status --json | grep -q '\"circuit_addrs\":\[\"'"
    echo "    b reserved a relay slot after $(( $(now_ms) - t0 )) ms"
    t0=$(now_ms)
    start_node awl-rt-a a
    t_conn=""; t_direct=""
    for _ in $(seq 1 300); do
        p=$(path_of a "$B")
        [ "$p" = relayed ] && { saw_relayed=1; [ -z "$t_conn" ] && t_conn=$(( $(now_ms) - t0 )); }
        if [ "$p" = direct ]; then
            [ -z "$t_conn" ] && t_conn=$(( $(now_ms) - t0 ))
            t_direct=$(( $(now_ms) - t0 )); break
        fi
        # Behind the symmetric NAT the answer is the failed punch, not a direct path.
        [ "$kind" = symmetric ] && [ -n "$t_conn" ] && grep -q "hole punching with" "$WORK/b.log" && break
        [ "$kind" = failover ] && [ -n "$t_conn" ] && break
        sleep 0.1
    done
    echo "    a connected to b after ${t_conn:-never} ms, direct after ${t_direct:-never} ms"
    check "[$kind] a found b by peer ID and connected through the relay" \
        grep -q "connected to …${B: -6} through relay" "$WORK/a.log"
    check "[$kind] the relayed path was seen before the direct one" \
        sh -c "[ $saw_relayed = 1 ] || grep -q 'relayed' '$WORK/a.log'"
    if [ "$kind" = failover ]; then
        two_relays() { [ "$(ctl b status --json | json "len(d['relays'])")" = 2 ]; }
        check "[$kind] b holds reservations on both relays" wait_for 30 two_relays
        check "[$kind] a's path to b is relayed" test "$(path_of a "$B")" = relayed
        local via ipb0 t_kill
        via=$(ctl a peers --json | json "[p['remote_addr'] for p in d if p['peer_id']=='$B'][0]")
        echo "    path goes through $via"
        ipb0=$(ctl a peers --json | json "[p['ip'] for p in d if p['peer_id']=='$B'][0]")
        check "[$kind] ping a -> b through the relay" ip netns exec awl-rt-a ping -c 2 -W 2 "$ipb0"
        # Kill the relay that carries the path.
        if [[ "$via" == *"$relay2_id"* ]]; then kill -9 "$PID_r2"; else kill -9 "$relay_pid"; fi
        t_kill=$(now_ms)
        check "[$kind] traffic resumes through the other relay within 25 s" wait_for 25 \
            ip netns exec awl-rt-a ping -c 1 -W 1 "$ipb0"
        echo "    traffic resumed $(( $(now_ms) - t_kill )) ms after the relay was killed"
        check "[$kind] the new path is relayed too, through the surviving relay" sh -c \
            "'$AWL_BIN' -c '$WORK/a.uci' peers --json | grep -q p2p-circuit"
        finish_scenario r2; return
    fi
    if [ "$kind" = symmetric ]; then
        check "[$kind] hole punching fails and is reported" wait_for 30 \
            grep -q "hole punching with …${A: -6} failed" "$WORK/b.log"
        check "[$kind] a's path to b stays relayed" test "$(path_of a "$B")" = relayed
        check "[$kind] one attempt only (then backoff)" \
            test "$(grep -c "hole punching with …${A: -6}" "$WORK/b.log")" = 1
    else
        check "[$kind] b hole-punched to a direct connection" \
            grep -q "direct connection to …${A: -6} by hole punching" "$WORK/b.log"
        check "[$kind] a's path to b is direct" test "$(path_of a "$B")" = direct
        check "[$kind] b's path to a is direct" test "$(path_of b "$A")" = direct
    fi
    grep -h "found …${B: -6}\|hole punching" "$WORK/a.log" "$WORK/b.log" | sed 's/^/    log: /'

    local ipb ipa
    ipb=$(ctl a peers --json | json "[p['ip'] for p in d if p['peer_id']=='$B'][0]")
    ipa=$(ctl b peers --json | json "[p['ip'] for p in d if p['peer_id']=='$A'][0]")
    check "[$kind] a and b confirmed each other" wait_for 15 sh -c \
        "'$AWL_BIN' -c '$WORK/a.uci' peers --json | grep -q '\"confirmed\":true'"
    check "[$kind] ping a -> b through the tunnel" ip netns exec awl-rt-a ping -c 3 -W 2 "$ipb"
    check "[$kind] ping b -> a through the tunnel" ip netns exec awl-rt-b ping -c 3 -W 2 "$ipa"
    if [ "$kind" = symmetric ]; then
        finish_scenario; return
    fi
    ip netns exec awl-rt-b iperf3 -s -D -1 -B 10.66.0.1 --pidfile "$WORK/iperf.pid"
    sleep 0.5
    PIDS+=("$(cat "$WORK/iperf.pid" 2>/dev/null)")
    if ip netns exec awl-rt-a iperf3 -c "$ipb" -t 3 -J >"$WORK/iperf.json" 2>&1 &&
        python3 -c "import json,sys; d=json.load(open(sys.argv[1])); b=d['end']['sum_received']['bits_per_second']; print('    iperf3 a -> b: %.1f Mbit/s' % (b/1e6)); sys.exit(b <= 0)" "$WORK/iperf.json"; then
        pass "[$kind] iperf3 a -> b through the tunnel"
    else
        fail "[$kind] iperf3 a -> b through the tunnel"
    fi
    # The punching stays small in each NAT's connection-tracking table.
    local ct_a ct_b
    ct_a=$(ip netns exec awl-nat-a cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo 0)
    ct_b=$(ip netns exec awl-nat-b cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo 0)
    echo "    conntrack entries: nat-a $ct_a, nat-b $ct_b"
    check "[$kind] conntrack tables stay small (< 64 entries)" test "$ct_a" -lt 64 -a "$ct_b" -lt 64

    finish_scenario
}

# finish_scenario [MORE_NODES...]: stops a, b, r (and those) and keeps their logs.
finish_scenario() {
    # A failed scenario shows what the nodes saw, and who held the relay's ports.
    if [ "$FAILED" != "${FAILED_BEFORE:-$FAILED}" ]; then
        echo "    sockets on the relay's host:"
        ip netns exec awl-pub ss -tuanp 2>/dev/null | grep -E ':61[56][0-9]' | sed 's/^/      /'
        for f in r b a "$@"; do
            echo "    last lines of $f.log:"
            tail -n 25 "$WORK/$f.log" 2>/dev/null | cut -c1-240 | sed 's/^/      /'
        done
    fi
    stop_nodes a b r "$@"
    for f in a b r "$@"; do cp "$WORK/$f.log" "$WORK/$kind-$f.log" 2>/dev/null; : >"$WORK/$f.log"; done
    ip netns exec awl-nat-a conntrack -F >/dev/null 2>&1
    ip netns exec awl-nat-b conntrack -F >/dev/null 2>&1
}

for s in $SCENARIOS; do run_scenario "$s"; done
summary

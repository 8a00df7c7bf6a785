# Shared by the bench scripts (sourced): the wire between two test hosts, and an awl node's
# UCI config for a two-node test.
#
# veth_pair A B: namespaces A and B (made afresh) joined by a veth pair, eth0 in each,
# 192.0.2.1/24 in A and 192.0.2.2/24 in B.
veth_pair() {
    local n
    for n in "$1" "$2"; do ip netns del "$n" 2>/dev/null; ip netns add "$n"; ip -n "$n" link set lo up; done
    ip link add eth0 netns "$1" type veth peer name eth0 netns "$2"
    ip -n "$1" addr add 192.0.2.1/24 dev eth0 && ip -n "$1" link set eth0 up
    ip -n "$2" addr add 192.0.2.2/24 dev eth0 && ip -n "$2" link set eth0 up
}

# wg_link NS_A NS_B IF_A IF_B: two boringtun interfaces (their daemons started, UAPI sockets
# there) made each other's peer over the veth pair: 10.99.0.1 and 10.99.0.2, mtu 1420 (no
# keep-alives: the handshake waits for the first packet). Keys made once per $WORK.
wg_link() {
    [ -f "$WORK/wg.kb" ] || (umask 077; wg genkey >"$WORK/wg.ka"; wg genkey >"$WORK/wg.kb")
    ip netns exec "$1" wg set "$3" private-key "$WORK/wg.ka" listen-port 51820 \
        peer "$(wg pubkey <"$WORK/wg.kb")" allowed-ips 10.99.0.2/32 endpoint 192.0.2.2:51820
    ip netns exec "$2" wg set "$4" private-key "$WORK/wg.kb" listen-port 51820 \
        peer "$(wg pubkey <"$WORK/wg.ka")" allowed-ips 10.99.0.1/32 endpoint 192.0.2.1:51820
    ip -n "$1" addr add 10.99.0.1/24 dev "$3" && ip -n "$1" link set "$3" mtu 1420 up
    ip -n "$2" addr add 10.99.0.2/24 dev "$4" && ip -n "$2" link set "$4" mtu 1420 up
}

# write_awl NAME [PEER_ID PEER_ADDR]: $WORK/NAME.uci, data in $WORK/NAME. From the
# environment: MTU (1420), DGRAM (1: QUIC datagrams), MAX_PEERS (the daemon's default if unset).
write_awl() {
    {
        printf "config awl 'main'\n"
        printf "\toption %s '%s'\n" name "$1" interface awl0 address 10.66.0.1/16 \
            mtu "${MTU:-1420}" datagrams "${DGRAM:-1}"
        if [ -n "${MAX_PEERS:-}" ]; then printf "\toption max_peers '%s'\n" "$MAX_PEERS"; fi
        printf "\toption %s '%s'\n" use_default_bootstrap 0 lan_discovery 0 services 0 \
            log_level warn data_dir "$WORK/$1" control_socket "$WORK/$1/awl.sock"
        if [ -n "${2:-}" ]; then
            printf "config peer\n\toption peer_id '%s'\n\tlist address '%s'\n" "$2" "$3"
        fi
    } >"$WORK/$1.uci"
}

# Shared by the bench scripts (sourced): an awl node's UCI config for a two-node test.
#
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

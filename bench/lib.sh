# Shared by the bench scripts (sourced): an awl node's UCI config for a two-node test.
#
# write_awl NAME [PEER_ID PEER_ADDR]: $WORK/NAME.uci, data in $WORK/NAME; MTU (1420) and DGRAM
# (1: QUIC datagrams) from the environment.
write_awl() {
    cat >"$WORK/$1.uci" <<EOF
config awl 'main'
	option name '$1'
	option interface 'awl0'
	option address '10.66.0.1/16'
	option mtu '${MTU:-1420}'
	option datagrams '${DGRAM:-1}'
	option use_default_bootstrap '0'
	option lan_discovery '0'
	option services '0'
	option log_level 'warn'
	option data_dir '$WORK/$1'
	option control_socket '$WORK/$1/awl.sock'
EOF
    [ -n "${2:-}" ] && printf "config peer\n\toption peer_id '%s'\n\tlist address '%s'\n" "$2" "$3" >>"$WORK/$1.uci"
}

# Shared helpers for the namespace end-to-end tests (bash, run as root).
# Test traffic stays inside the namespaces these scripts create; everything is torn down on exit.

set -uo pipefail

AWL_BIN=${AWL_BIN:-}
PASSED=0
FAILED=0
NETNS=()
PIDS=()
WORK=$(mktemp -d /tmp/awl-e2e.XXXXXX)

find_awl() {
    if [ -z "$AWL_BIN" ]; then
        local root
        root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
        cargo build --quiet --manifest-path "$root/Cargo.toml" --bin awl >&2 || return 1
        AWL_BIN="$root/target/debug/awl"
    fi
    [ -x "$AWL_BIN" ] || { echo "awl binary not found: $AWL_BIN" >&2; return 1; }
}

pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

cleanup() {
    local p ns
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    # Wrappers (faketime, ip netns exec) may leave their child behind: every process still
    # running on this test's files goes too.
    pkill -9 -f -- "$WORK/" 2>/dev/null
    for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "SKIP: needs root (network namespaces, TUN)"
        echo "0 passed, 0 failed, 1 skipped"
        exit 0
    fi
}

# netns NAME: a namespace with loopback up (one left by an interrupted run is replaced).
netns() {
    ip netns del "$1" 2>/dev/null
    ip netns add "$1" && NETNS+=("$1") && ip -n "$1" link set lo up
}

# link NS1 IF1 ADDR1 NS2 IF2 ADDR2: a veth pair between two namespaces.
link() {
    ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
    ip -n "$1" addr add "$3" dev "$2" && ip -n "$1" link set "$2" up
    ip -n "$4" addr add "$6" dev "$5" && ip -n "$4" link set "$5" up
}

# wait_for SECONDS CMD...: retry CMD until it succeeds.
wait_for() {
    local t=$1; shift
    local end=$((SECONDS + t))
    while [ $SECONDS -lt $end ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    return 1
}

# write_config FILE NAME [extra UCI lines...]
write_config() {
    local file=$1 name=$2; shift 2
    {
        echo "config awl 'main'"
        echo "	option enabled '1'"
        echo "	option name '$name'"
        echo "	option interface 'awl0'"
        echo "	option address '10.66.0.1/16'"
        echo "	option mtu '1420'"
        echo "	option use_default_bootstrap '0'"
        echo "	option reconnect_interval '5'"
        echo "	option log_level 'debug'"
        echo "	option data_dir '$WORK/$name'"
        echo "	option control_socket '$WORK/$name/awl.sock'"
        for l in "$@"; do echo "$l"; done
    } >"$file"
}

# start_node NS NAME: runs awl in NS with $WORK/NAME.uci; log in $WORK/NAME.log.
start_node() {
    local ns=$1 name=$2
    mkdir -p "$WORK/$name"
    ip netns exec "$ns" "$AWL_BIN" -c "$WORK/$name.uci" run >>"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    eval "PID_$name=$!"
    wait_for 10 test -S "$WORK/$name/awl.sock"
}

# stop_nodes NAME...: SIGTERM to the named nodes, then wait until each has exited (SIGKILL
# after 10 s): the next scenario starts nodes of the same names at the same paths and ports,
# and a daemon still shutting down (its state file's fsync behind a busy disk) must not
# overlap with them.
stop_nodes() {
    local n pid t0
    for n in "$@"; do eval "pid=\${PID_$n:-}"; [ -n "$pid" ] && kill "$pid" 2>/dev/null; done
    for n in "$@"; do
        eval "pid=\${PID_$n:-}"
        [ -n "$pid" ] || continue
        t0=$SECONDS
        wait_for 10 exited "$pid" || { echo "    $n did not exit within 10 s: killed"; kill -9 "$pid" 2>/dev/null; }
        [ $((SECONDS - t0)) -lt 2 ] || echo "    $n took $((SECONDS - t0)) s to exit"
    done
    return 0
}

# exited PID: gone, or a zombie waiting to be reaped.
exited() { [ ! -e "/proc/$1" ] || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# ctl NAME ARGS...: the CLI against NAME's daemon.
ctl() {
    local name=$1; shift
    "$AWL_BIN" -c "$WORK/$name.uci" "$@"
}

peer_id() { "$AWL_BIN" -c "$WORK/$1.uci" id 2>/dev/null; }

# jq-free JSON access through python3.
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

summary() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" = 0 ]
}

# switch_hosts SWITCH NS...: a bridge in namespace SWITCH with each NS attached by its eth0
# (addresses are the caller's).
switch_hosts() {
    local sw=$1 n; shift
    ip -n "$sw" link add br0 type bridge && ip -n "$sw" link set br0 up
    for n in "$@"; do
        ip link add eth0 netns "$n" type veth peer name "v${n#awl-}" netns "$sw"
        ip -n "$sw" link set "v${n#awl-}" master br0 up
        ip -n "$n" link set eth0 up
    done
}

confirmed() { ctl "$1" peers --json | json "any(p['peer_id']=='$2' and p['confirmed'] and p['connected'] for p in d)" | grep -q True; }

# two_friends [ALIAS_OF_B ALIAS_OF_A]: nodes a (192.0.2.1) and b (192.0.2.2) in awl-a and
# awl-b on a switch, each configured with the other as a friend at its address, started and
# confirmed (four checks). Sets A, B (peer IDs) and IP_B (b's mesh address at a).
two_friends() {
    local alias_b=${1:-} alias_a=${2:-}
    netns awl-sw; netns awl-a; netns awl-b
    switch_hosts awl-sw awl-a awl-b
    ip -n awl-a addr add 192.0.2.1/24 dev eth0
    ip -n awl-b addr add 192.0.2.2/24 dev eth0
    mkdir -p "$WORK/a" "$WORK/b"
    write_config "$WORK/a.uci" a
    write_config "$WORK/b.uci" b
    A=$(peer_id a); B=$(peer_id b)
    friend_section() { # ID ALIAS ADDRESS
        printf "config peer '%s'\n\toption peer_id '%s'\n" "$4" "$1"
        [ -n "$2" ] && printf "\toption alias '%s'\n" "$2"
        printf "\tlist address '/ip4/%s/udp/4363/quic-v1'\n" "$3"
    }
    friend_section "$B" "$alias_b" 192.0.2.2 b >>"$WORK/a.uci"
    friend_section "$A" "$alias_a" 192.0.2.1 a >>"$WORK/b.uci"
    check "node a starts" start_node awl-a a
    check "node b starts" start_node awl-b b
    check "a and b are friends" wait_for 20 confirmed a "$B"
    IP_B=$(ctl a peers --json | json "[p['ip'] for p in d if p['peer_id']=='$B'][0]")
}

# iperf NS_CLIENT TARGET [extra iperf3 args]: 3 s of iperf3 from NS_CLIENT, prints Mbit/s;
# fails when nothing got through.
iperf() {
    ip netns exec "$1" iperf3 -c "$2" -t 3 -J "${@:3}" >"$WORK/iperf.json" 2>&1 || return 1
    python3 - "$WORK/iperf.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
bps = d["end"]["sum_received"]["bits_per_second"]
print(f"    {bps / 1e6:.1f} Mbit/s")
sys.exit(0 if bps > 0 else 1)
EOF
}

# metric NAME METRIC: the sum of awl_METRIC over its labels, from NAME's daemon.
metric() { ctl "$1" metrics | awk -v m="awl_$2" '$1 ~ "^"m"([{]|$)" {s += $2} END {print s + 0}'; }

#!/usr/bin/env bash
# Routers without an RTC boot with the clock at the firmware's build date (or 1970) until NTP
# syncs. Two awl nodes whose clocks are 16 years apart (one in 2019, one in 2035, through
# libfaketime) must still become friends and carry traffic: the certificates we present are
# valid from 1970 to 9999 whatever our clock says, and we do not check a peer's dates against
# our clock (docs/SECURITY.md, "Keys").
source "$(dirname "$0")/lib.sh"
need_root
find_awl || exit 1
command -v faketime >/dev/null || { echo "faketime missing (apt-get install faketime)"; exit 1; }
if ldd "$AWL_BIN" 2>&1 | grep -qE 'not a dynamic|statically'; then
    echo "SKIP: $AWL_BIN is static (libfaketime needs a dynamic glibc build)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi

netns awl-sw; netns awl-a; netns awl-b
switch_hosts awl-sw awl-a awl-b
ip -n awl-a addr add 192.0.2.1/24 dev eth0
ip -n awl-b addr add 192.0.2.2/24 dev eth0

write_config "$WORK/a.uci" a
write_config "$WORK/b.uci" b
mkdir -p "$WORK/a" "$WORK/b"
A=$(peer_id a); B=$(peer_id b)

# start_at NS NAME DATE: like start_node, with the node's wall clock starting at DATE
# (monotonic time untouched: only the calendar is wrong, as on a router after boot).
start_at() {
    local ns=$1 name=$2 date=$3
    ip netns exec "$ns" env FAKETIME_DONT_FAKE_MONOTONIC=1 faketime "$date" \
        "$AWL_BIN" -c "$WORK/$name.uci" run >>"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    wait_for 10 test -S "$WORK/$name/awl.sock"
}
check "node a starts with its clock in 2019" start_at awl-a a "2019-01-01 00:00:00"
check "node b starts with its clock in 2035" start_at awl-b b "2035-06-01 00:00:00"
check "libfaketime is in effect for a" sh -c \
    "ip netns exec awl-a env FAKETIME_DONT_FAKE_MONOTONIC=1 faketime '2019-01-01 00:00:00' date +%Y | grep -q 2019"

ctl a invite "$B" bob --address /ip4/192.0.2.2/udp/4363/quic-v1 >/dev/null
check "b sees a's friend request" wait_for 20 sh -c "'$AWL_BIN' -c '$WORK/b.uci' requests --json | grep -q '$A'"
ctl b accept "$A" alice >/dev/null
confirmed() { ctl "$1" peers --json | json "[p for p in d if p['peer_id']=='$2'][0]['confirmed'] and [p for p in d if p['peer_id']=='$2'][0]['connected']" | grep -q True; }
check "a (2019) shows b (2035) confirmed" wait_for 20 confirmed a "$B"
check "b (2035) shows a (2019) confirmed" wait_for 20 confirmed b "$A"
IP_B_AT_A=$(ctl a peers --json | json "[p['ip'] for p in d if p['peer_id']=='$B'][0]")
check "ping a -> b through the mesh" ip netns exec awl-a ping -c 3 -W 2 "$IP_B_AT_A"
check "no certificate was refused" sh -c "! grep -qi 'certificate' '$WORK/a.log' '$WORK/b.log'"

summary

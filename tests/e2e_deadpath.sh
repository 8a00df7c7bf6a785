#!/usr/bin/env bash
# A dead path is noticed in seconds, not at the 30 s idle timeout: while a sends to b through
# the mesh, everything from b is dropped on a's side (as when b restarted and cannot reset our
# old connection: rust-libp2p peers cannot). a must declare the path dead, close it and redial;
# once packets flow again, traffic resumes.
source "$(dirname "$0")/lib.sh"
need_root
find_awl || exit 1
DEAD_S=${AWL_DEAD_S:-8}

two_friends
check "a pings b" ip netns exec awl-a ping -c 2 -W 2 "$IP_B"

# Traffic from a, and from now on nothing from b reaches a.
ip netns exec awl-a ping -q -i 0.2 -w 60 "$IP_B" >/dev/null 2>&1 &
PIDS+=($!)
ip netns exec awl-a nft -f - <<'NFT'
table inet awl_test {
	chain input {
		type filter hook input priority filter - 10; policy accept;
		ip saddr 192.0.2.2 udp sport 4363 drop
	}
}
NFT
T0=$(date +%s%3N)
noticed() { grep -q "path to .* is dead" "$WORK/a.log"; }
if wait_for "$DEAD_S" noticed; then DT=$(( $(date +%s%3N) - T0 )); else DT=never; fi
echo "    a declared the path dead after ${DT} ms (QUIC idle timeout: 30000 ms)"
check "a notices the dead path within ${DEAD_S} s, long before the idle timeout" test "$DT" != never

# The path comes back: a redials and traffic flows again.
ip netns exec awl-a nft delete table inet awl_test
check "traffic resumes once b is heard again" wait_for 30 ip netns exec awl-a ping -c 1 -W 1 "$IP_B"
# Healthy again: neither side may call a live path dead, idle or busy.
dead_count() { grep -c 'path to .* is dead' "$WORK/$1.log"; }
BEFORE_A=$(dead_count a); BEFORE_B=$(dead_count b)
ip netns exec awl-a ping -q -c 20 -i 0.2 "$IP_B" >/dev/null 2>&1
sleep 6
check "no false alarm on a healthy path, busy then idle" \
    test "$(dead_count a)/$(dead_count b)" = "$BEFORE_A/$BEFORE_B"

summary

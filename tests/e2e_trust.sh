#!/usr/bin/env bash
# The trust boundary at the control plane, against a real daemon in a namespace:
# - a stranger whose name is HTML gets its request stored as text; accepting it writes a valid
#   config (valid DNS label), and the CLI and init-time check still pass;
# - the daemon never writes a config its own validator rejects: reserved addresses (broadcast,
#   network, service address) are refused and the file is unchanged;
# - on a read-only /etc, invite and remove fail and change nothing in memory either;
# - rpcd's backend builds requests from declared parameters only: a read call carrying
#   "cmd":"invite" stays a read.
source "$(dirname "$0")/lib.sh"
need_root
find_awl || exit 1

netns awl-sw; netns awl-r; netns awl-x
switch_hosts awl-sw awl-r awl-x
ip -n awl-r addr add 192.0.2.1/24 dev eth0
ip -n awl-x addr add 192.0.2.9/24 dev eth0

mkdir -p "$WORK/r" "$WORK/x" "$WORK/etc"
write_config "$WORK/etc/r.uci" r
write_config "$WORK/x.uci" x
# The stranger calls itself by an HTML snippet (valid as its own name: printable, ≤ 64).
sed -i "s|option name 'x'|option name '<img src=x onerror=alert(1)>'|" "$WORK/x.uci"
ln -s "$WORK/etc/r.uci" "$WORK/r.uci"
R=$(peer_id r); X=$(peer_id x)
OTHER=12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7
printf "config peer 'keep'\n\toption peer_id '%s'\n\toption alias 'keep'\n" "$OTHER" >>"$WORK/etc/r.uci"

check "router starts" start_node awl-r r
check "stranger starts" start_node awl-x x

# 1. Hostile name: stored and shown as text, accepting it writes a valid file.
ctl x invite "$R" router --address /ip4/192.0.2.1/udp/4363/quic-v1 >/dev/null
check "the router holds the stranger's request" wait_for 15 sh -c "'$AWL_BIN' -c '$WORK/r.uci' requests --json | grep -q '$X'"
NAME=$(ctl r requests --json | json "[r['name'] for r in d if r['peer_id']=='$X'][0]")
echo "    request name: $NAME"
check "the name is kept as text, unchanged" test "$NAME" = "<img src=x onerror=alert(1)>"
check "accepting it works" ctl r accept "$X"
check "the file the daemon wrote passes 'awl config check'" "$AWL_BIN" config check "$WORK/etc/r.uci"
DOMAIN=$(ctl r peers --json | json "[p['domain'] for p in d if p['peer_id']=='$X'][0]")
echo "    derived DNS label: $DOMAIN"
check "the derived DNS label is a valid label" sh -c "echo '$DOMAIN' | grep -Eq '^[a-z0-9_][a-z0-9_-]{0,62}$'"
check "the peer's section is named after its ID" grep -q "config peer 'peer_$X'" "$WORK/etc/r.uci"

# 2. Reserved addresses are refused; the file does not change.
SUM=$(sha256sum <"$WORK/etc/r.uci")
for ip in 10.66.255.255 10.66.0.0 10.66.255.254 10.66.0.1; do
    NEW=$("$AWL_BIN" id --data-dir "$WORK/tmp-$ip" 2>/dev/null)
    OUT=$(ctl r invite "$NEW" "n$ip" --ip "$ip" 2>&1); RC=$?
    echo "    invite --ip $ip: $OUT"
    check "invite --ip $ip is refused" test "$RC" != 0
    check "... and the peer is not in memory" sh -c "! '$AWL_BIN' -c '$WORK/r.uci' peers --json | grep -q '$NEW'"
done
check "the config file is unchanged by the refused invites" test "$(sha256sum <"$WORK/etc/r.uci")" = "$SUM"
check "the config still passes 'awl config check'" "$AWL_BIN" config check "$WORK/etc/r.uci"

# 3. Read-only /etc: the daemon restarted with its config directory mounted read-only.
kill "$PID_r"; sleep 1
ip netns exec awl-r unshare -m sh -c "mount --bind '$WORK/etc' '$WORK/etc' && mount -o remount,bind,ro '$WORK/etc' && exec '$AWL_BIN' -c '$WORK/r.uci' run" >>"$WORK/r.log" 2>&1 &
PIDS+=($!)
check "router restarts with a read-only config directory" wait_for 10 sh -c "'$AWL_BIN' -c '$WORK/r.uci' status >/dev/null"
NEW=$("$AWL_BIN" id --data-dir "$WORK/tmp-ro" 2>/dev/null)
OUT=$(ctl r invite "$NEW" ro 2>&1); echo "    invite on read-only /etc: $OUT"
check "invite fails on a read-only /etc" sh -c "echo '$OUT' | grep -qi 'read-only'"
check "... and the peer is not in memory either" sh -c "! '$AWL_BIN' -c '$WORK/r.uci' peers --json | grep -q '$NEW'"
OUT=$(ctl r remove "$OTHER" 2>&1); echo "    remove on read-only /etc: $OUT"
check "remove fails on a read-only /etc" sh -c "echo '$OUT' | grep -qi 'read-only'"
check "... and the peer is still known" sh -c "'$AWL_BIN' -c '$WORK/r.uci' peers --json | grep -q '$OTHER'"

# 4. rpcd: a read method with a smuggled command stays a read.
NEW=$("$AWL_BIN" id --data-dir "$WORK/tmp-rpcd" 2>/dev/null)
REPLY=$(printf '{"cmd":"invite","peer_id":"%s","ubus_rpc_session":"x"}' "$NEW" | "$AWL_BIN" -c "$WORK/r.uci" rpcd call status)
check "rpcd 'status' with a cmd argument answers status" sh -c "echo '$REPLY' | grep -q '\"peer_id\":\"$R\"'"
check "... and invites nobody" sh -c "! '$AWL_BIN' -c '$WORK/r.uci' peers --json | grep -q '$NEW'"
REPLY=$(echo '{}' | "$AWL_BIN" -c "$WORK/r.uci" rpcd call frobnicate)
check "rpcd refuses an undeclared method" sh -c "echo '$REPLY' | grep -q '\"ok\":false'"

summary

#!/usr/bin/env bash
# The package's uci-defaults (firewall zone, network, dnsmasq) run against uci: a fresh router,
# a second run, an upgrade from release 0.1.0-1's untouched defaults (migrated: input REJECT,
# awl -> lan forwarding removed) and from edited ones (left alone, logged). The uci here is the
# project's stand-in (tests/packaging/lib/uci.py); vectors/uci-transcript.txt is the same
# scenario recorded with the real uci built from openwrt/uci, and the stand-in must reproduce it
# byte for byte. With UCI_REAL=/path/to/uci the scenario runs against that binary instead and
# RECORD=1 rewrites the transcript from it.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
PASSED=0; FAILED=0
check() { local what=$1; shift; if "$@"; then PASSED=$((PASSED + 1)); echo "PASS: $what"; else FAILED=$((FAILED + 1)); echo "FAIL: $what"; fi; }
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
NEW=$ROOT/openwrt/awl/files/awl.uci-defaults
OLD=$ROOT/tests/packaging/vectors/awl.uci-defaults-0.1.0-1

mkdir -p "$WORK/bin" "$WORK/etc/config" "$WORK/save"
if [ -n "${UCI_REAL:-}" ]; then
    printf '#!/bin/sh\nexec %q -c %q -t %q "$@"\n' "$UCI_REAL" "$WORK/etc/config" "$WORK/save" >"$WORK/bin/uci"
else
    printf '#!/bin/sh\nexec python3 %q -c %q -t %q "$@"\n' "$ROOT/tests/packaging/lib/uci.py" "$WORK/etc/config" "$WORK/save" >"$WORK/bin/uci"
fi
printf '#!/bin/sh\necho "logger $*"\n' >"$WORK/bin/logger"
chmod +x "$WORK/bin/uci" "$WORK/bin/logger"
export PATH=$WORK/bin:$PATH

fresh() {
    rm -rf "$WORK/save"/* "$WORK/etc/config"/*
    : >"$WORK/etc/config/network"; : >"$WORK/etc/config/firewall"
    printf "config dnsmasq\n\toption domain 'lan'\n" >"$WORK/etc/config/dhcp"
}
state() { # files and uci's view of them
    for f in network firewall dhcp; do echo "# /etc/config/$f"; cat "$WORK/etc/config/$f"; done
    echo "# uci show firewall"; uci show firewall; echo "rc=$?"
    echo "# uci get firewall.awl.input: $(uci -q get firewall.awl.input; echo "rc=$?")"
    echo "# uci get dhcp.@dnsmasq[0].server: $(uci -q get 'dhcp.@dnsmasq[0].server')"
    echo "# uci -q get firewall.nothing: $(uci -q get firewall.nothing; echo "rc=$?")"
}
scenario() {
    echo "## fresh install"; fresh; sh "$NEW" 2>&1; state
    echo "## second run"; sh "$NEW" 2>&1; state
    echo "## 0.1.0-1 defaults"; fresh; sh "$OLD" 2>&1; state
    echo "## upgrade from untouched 0.1.0-1 defaults"; sh "$NEW" 2>&1; state
    echo "## upgrade from edited 0.1.0-1 defaults"; fresh; sh "$OLD" 2>&1
    uci set firewall.awl.log='1'; uci set firewall.awl_lan_back.name='mine'; uci commit firewall
    sh "$NEW" 2>&1; state
    echo "## user's own zone awl"; fresh; uci set firewall.awl=zone; uci set firewall.awl.input='DROP'; uci commit firewall
    sh "$NEW" 2>&1; state
}
scenario >"$WORK/transcript.txt"
if [ -n "${UCI_REAL:-}" ] && [ "${RECORD:-0}" = 1 ]; then
    cp "$WORK/transcript.txt" tests/packaging/vectors/uci-transcript.txt
    echo "recorded tests/packaging/vectors/uci-transcript.txt with $UCI_REAL"
fi
check "uci stand-in reproduces the real uci's transcript" cmp -s "$WORK/transcript.txt" tests/packaging/vectors/uci-transcript.txt
cmp -s "$WORK/transcript.txt" tests/packaging/vectors/uci-transcript.txt || diff tests/packaging/vectors/uci-transcript.txt "$WORK/transcript.txt" | head -20

# The outcomes, read from this run (not from the recording).
section() { awk -v h="## $1" '$0==h{p=1;next} /^## /{p=0} p' "$WORK/transcript.txt"; }
has() { section "$1" | grep -qxF -- "$2"; }
lacks() { ! section "$1" | grep -q -- "$2"; }
check "fresh: zone awl rejects input" has "fresh install" "firewall.awl.input='REJECT'"
check "fresh: zone awl rejects forwarding" has "fresh install" "firewall.awl.forward='REJECT'"
check "fresh: ping allowed" has "fresh install" "firewall.awl_icmp.icmp_type='echo-request'"
check "fresh: no forwarding awl -> lan" lacks "fresh install" "^firewall.awl_lan_back"
check "fresh: lan -> awl forwarding" has "fresh install" "firewall.awl_lan_fwd.dest='awl'"
check "fresh: dnsmasq forwards .awl to the service address" has "fresh install" "# uci get dhcp.@dnsmasq[0].server: /awl/10.66.255.254"
check "second run changes nothing" test "$(section "fresh install")" = "$(section "second run")"
only_icmp_from_awl() { test "$(section "fresh install" | grep "^firewall\..*\.src='awl'$" | grep -v '^firewall\.awl_icmp\.')" = ""; }
check "nothing but the ping rule has src awl" only_icmp_from_awl
check "0.1.0-1 defaults had input ACCEPT" has "0.1.0-1 defaults" "firewall.awl.input='ACCEPT'"
check "0.1.0-1 defaults had awl -> lan" has "0.1.0-1 defaults" "firewall.awl_lan_back.src='awl'"
check "untouched old defaults migrated: input REJECT" has "upgrade from untouched 0.1.0-1 defaults" "firewall.awl.input='REJECT'"
check "untouched old defaults migrated: awl -> lan removed" lacks "upgrade from untouched 0.1.0-1 defaults" "^firewall.awl_lan_back"
check "migration is logged" has "upgrade from untouched 0.1.0-1 defaults" "logger -t awl firewall zone awl: input changed from ACCEPT to REJECT (ping allowed); peers no longer reach the router's services"
check "edited zone kept: input ACCEPT" has "upgrade from edited 0.1.0-1 defaults" "firewall.awl.input='ACCEPT'"
check "edited zone kept: log 1" has "upgrade from edited 0.1.0-1 defaults" "firewall.awl.log='1'"
check "edited zone: the user is told" has "upgrade from edited 0.1.0-1 defaults" "logger -t awl firewall zone awl was edited and is left as is; its input ACCEPT lets every peer reach the router's services (LuCI, SSH): consider input REJECT"
check "edited forwarding kept" has "upgrade from edited 0.1.0-1 defaults" "firewall.awl_lan_back.name='mine'"
check "a user's own zone awl is not touched" has "user's own zone awl" "firewall.awl.input='DROP'"
check "a user's own zone awl gets no options added" lacks "user's own zone awl" "^firewall.awl.masq"

# The init script's per-peer fw4 rules (procd data), with OpenWrt's config_* and json_* API
# reduced to what it uses.
cat >"$WORK/fwtest.sh" <<'EOT'
config_load() { :; }
config_get() { eval "$1=\${CFG_$2_$3:-$4}"; }
config_get_bool() { local v; eval "v=\${CFG_$2_$3:-$4}"; case $v in 1|on|true|yes|enabled) v=1 ;; *) v=0 ;; esac; eval "$1=$v"; }
config_foreach() { local s; for s in $PEERS; do "$1" "$s"; done; }
json_add_object() { printf '{'; }
json_close_object() { printf '}\n'; }
json_add_string() { printf '%s=%s;' "$1" "$2"; }
. "$INIT"
awl_firewall_rules
EOT
# shellcheck disable=SC2016 # $0 is expanded by the inner sh
fw() { env INIT="$ROOT/openwrt/awl/files/awl.init" "$@" sh -c '. "$0"' "$WORK/fwtest.sh" 2>&1 | grep -v '^$'; }
out=$(fw PEERS="a b c" CFG_main_route="192.168.1.0/24 10.0.0.0/8" CFG_main_gateway=0 \
    CFG_a_ip=10.66.0.2 CFG_a_allow_lan=1 CFG_b_ip=10.66.0.3 CFG_b_allow_exit=1 CFG_c_allow_lan=1)
check "allow_lan peer: one rule per exported route, from its mesh IP" test "$(echo "$out" | grep -c 'src_ip=10.66.0.2;dest_ip=')" = 2
check "rules are forward rules from zone awl, ACCEPT" sh -c "echo '$out' | grep -q '^{type=rule;name=awl-lan-a;src=awl;dest=\*;family=ipv4;src_ip=10.66.0.2;dest_ip=192.168.1.0/24;target=ACCEPT;}$'"
check "peer without allow_lan gets nothing; exit needs gateway" sh -c "! echo '$out' | grep -q '10.66.0.3'"
check "peer without an ip gets nothing" test "$(echo "$out" | grep -c .)" = 2
out=$(fw PEERS="b" CFG_main_gateway=1 CFG_b_ip=10.66.0.3 CFG_b_allow_exit=1)
check "allow_exit peer on a gateway: any destination" test "$out" = "{type=rule;name=awl-exit-b;src=awl;dest=*;family=ipv4;src_ip=10.66.0.3;target=ACCEPT;}"

# start_service as procd's rc.common runs it: disabled in /etc/config/awl -> no instance (the
# package's postinst enables and starts the init script on a first install; nothing runs until
# the user sets enabled); enabled -> one instance with the firewall data; stop -> fw4 reloads.
cat >"$WORK/svc.sh" <<'EOT'
config_load() { :; }
config_get() { eval "$1=\${CFG_$2_$3:-$4}"; }
config_get_bool() { local v; eval "v=\${CFG_$2_$3:-$4}"; case $v in 1) v=1 ;; *) v=0 ;; esac; eval "$1=$v"; }
config_foreach() { :; }
procd_open_instance() { echo "instance $1"; }
procd_set_param() { echo "param $*"; }
procd_close_instance() { echo "close"; }
procd_open_data() { echo "data"; }
procd_close_data() { :; }
json_add_array() { echo "array $1"; }
json_close_array() { :; }
procd_set_config_changed() { echo "config changed $1"; }
. "$INIT"
PROG=true
"$@"
EOT
svc() { env INIT="$ROOT/openwrt/awl/files/awl.init" "${@:2}" sh "$WORK/svc.sh" $1 2>&1; }
check "disabled: start_service opens no instance and says how to enable" sh -c "out=\$(env INIT='$ROOT/openwrt/awl/files/awl.init' sh '$WORK/svc.sh' start_service 2>&1); echo \"\$out\" | grep -q 'uci set awl.main.enabled=1' && ! echo \"\$out\" | grep -q instance"
out=$(svc start_service CFG_main_enabled=1)
check "enabled: one instance 'awl' running 'awl -c /etc/config/awl run'" grep -qx "param command true -c /etc/config/awl run" <<<"$out"
check "enabled: the instance carries firewall data" grep -qx "array firewall" <<<"$out"
check "stop asks fw4 to reload (the per-peer rules go)" grep -qx "config changed firewall" <<<"$(svc stop_service)"
check "start asks fw4 to reload (the per-peer rules come)" grep -qx "config changed firewall" <<<"$(svc service_started)"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]

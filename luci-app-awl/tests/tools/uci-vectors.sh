#!/bin/sh
# Records how OpenWrt's uci applies staged changes (the savedir delta, as LuCI stages them
# through rpcd) to a config file that another writer changed meanwhile: for each case, the
# file LuCI loaded, the uci commands staged, the delta uci wrote, the file at commit time and
# the file `uci commit` produced. Output: JSON on stdout (luci-app-awl/tests/uci-vectors.json).
# Needs a uci binary built from openwrt/uci (UCI=/path/to/uci); CI only reads the JSON.
# UCI_SOURCE names the uci (and libubox) commit it was built from, for the record.
set -eu
UCI=${UCI:-uci}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
N=0

# case NAME FILE_LOADED "CMD;CMD" DAEMON_SED
case_() {
	name=$1 loaded=$2 cmds=$3 daemon=$4
	rm -rf "$W/c" "$W/s"; mkdir -p "$W/c" "$W/s"
	printf '%s' "$loaded" > "$W/c/awl"
	echo "$cmds" | tr ';' '\n' | while read -r c; do
		[ -n "$c" ] || continue
		eval "set -- $c"
		"$UCI" -c "$W/c" -t "$W/s" "$@"
	done
	delta=$(cat "$W/s/awl" 2>/dev/null || true)
	python3 -c "import re,sys; s=open(sys.argv[1]).read(); open(sys.argv[1],'w').write(re.sub(sys.argv[2], '', s, flags=re.S))" "$W/c/awl" "$daemon"
	at_commit=$(cat "$W/c/awl")
	"$UCI" -c "$W/c" -t "$W/s" commit awl
	result=$(cat "$W/c/awl")
	[ "$N" = 0 ] && printf '{"recorded_with": "%s",\n"vectors": [\n' "${UCI_SOURCE:-uci}" || printf ',\n'
	N=$((N + 1))
	python3 -c 'import json,sys; print(json.dumps(dict(zip(["name","loaded","commands","delta","at_commit","result"], sys.argv[1:])), indent=1), end="")' \
		"$name" "$loaded" "$cmds" "$delta" "$at_commit" "$result"
}

NAMED="# awl peers
config awl 'main'
	option name 'home' # kept?

config peer 'peer_A'
	option peer_id 'A'
	option alias 'a'
	list address '/ip4/192.0.2.1/udp/1/quic-v1'

config peer 'peer_B'
	option peer_id 'B'
	option alias 'b'

config peer 'peer_C'
	option peer_id 'C'
	option alias 'c'
"
ANON="# awl peers
config awl 'main'
	option name 'home'

config peer
	option peer_id 'A'
	option alias 'a'

config peer
	option peer_id 'B'
	option alias 'b'

config peer
	option peer_id 'C'
	option alias 'c'
"
RM_A="config peer( 'peer_A')?\n\toption peer_id 'A'\n[^\n]*\n(\tlist[^\n]*\n)?\n"
RM_B="config peer( 'peer_B')?\n\toption peer_id 'B'\n[^\n]*\n\n"
RM_NONE="^\$^"

case_ "named: edit A staged, daemon removes B" "$NAMED" "set awl.peer_A.alias=office" "$RM_B"
case_ "named: edit C staged, daemon removes B" "$NAMED" "set awl.peer_C.alias=phone;set awl.peer_C.allow_lan=1" "$RM_B"
case_ "named: edit B staged, daemon removes B" "$NAMED" "set awl.peer_B.alias=gone" "$RM_B"
case_ "named: edits of B and A staged, daemon removes B" "$NAMED" "set awl.peer_B.alias=gone;set awl.peer_A.alias=office" "$RM_B"
case_ "named: option deleted and list replaced on A, daemon removes B" "$NAMED" "delete awl.peer_A.alias;delete awl.peer_A.address;add_list awl.peer_A.address=/ip4/192.0.2.9/udp/9/quic-v1;add_list awl.peer_A.address=/ip4/192.0.2.8/udp/8/quic-v1" "$RM_B"
case_ "named: edit A staged, no other writer" "$NAMED" "set awl.peer_A.alias=office;set awl.main.name=router" "$RM_NONE"
case_ "anonymous: edit B (cfg03) staged, daemon removes A" "$ANON" "set awl.cfg033511.alias=laptop" "$RM_A"
case_ "anonymous: edit C (cfg04) staged, daemon removes B" "$ANON" "set awl.cfg043511.alias=phone" "$RM_B"
case_ "anonymous: edit by position @peer[1] staged, daemon removes A" "$ANON" "set awl.@peer[1].alias=laptop" "$RM_A"
case_ "anonymous: edit B staged, no other writer" "$ANON" "set awl.cfg033511.alias=laptop" "$RM_NONE"
printf '\n]}\n'

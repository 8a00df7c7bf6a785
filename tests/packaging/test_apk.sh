#!/usr/bin/env bash
# .apk packages (apk-tools v3, OpenWrt 25.12+) made by cross/package/adb.py:
# - byte for byte what the real `apk mkpkg` (apk-tools 3.0.6, built from its source) made of
#   the same files: vectors/apk-mkpkg-fixture.apk is its output for tests/packaging/lib/apk_fixture.sh
#   (SOURCE_DATE_EPOCH=1700000000), vectors/apk-mkpkg.md the record;
# - awl (each cross-built target) and luci-app-awl: fields, payload, metadata, scripts;
# - refused like apk refuses them: versions without -r or malformed;
# - install -> modify -> upgrade -> reinstall -> del -> add in an offline root with apk's
#   rules for files under /etc (.apk-new), as the real apk did (vectors/package-managers.md).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
PASSED=0; FAILED=0
check() { local what=$1; shift; if "$@"; then PASSED=$((PASSED + 1)); echo "PASS: $what"; else FAILED=$((FAILED + 1)); echo "FAIL: $what"; fi; }
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
ADB="python3 cross/package/adb.py"
PT="python3 tests/packaging/lib/pkgtool.py"
# shellcheck source=tests/packaging/lib/apk_fixture.sh
source tests/packaging/lib/apk_fixture.sh

apk_fixture "$WORK/fx"
apk_fixture_args "$WORK/fx" "$WORK/fx.apk"
SOURCE_DATE_EPOCH=1700000000 $ADB "${APK_FIXTURE_ARGS[@]}"
check "adb.py mkpkg = real apk mkpkg, byte for byte (fixture)" cmp "$WORK/fx.apk" tests/packaging/vectors/apk-mkpkg-fixture.apk
$ADB dump "$WORK/fx.apk" >"$WORK/fx.json"
check "fixture: dependencies sorted and unique" python3 -c "import json,sys; assert json.load(open(sys.argv[1]))['info']['depends']==['kmod-tun','libc']" "$WORK/fx.json"
check "fixture: symlink, empty dir and big file present" python3 -c "
import json,sys; d=json.load(open(sys.argv[1])); p={x['name']:x for x in d['paths']}
assert 'usr/share/empty' in p and p['usr/share/empty']['mode']=='0o700'
f={x['name']:x for x in p['usr/sbin']['files']}; assert f['t-link']['target']=='00a074' and f['t']['mode']=='0o755'
assert {x['name']:x for x in p['www/a/b']['files']}['big.bin']['size']==76800" "$WORK/fx.json"
cp tests/packaging/vectors/apk-mkpkg-fixture.apk "$WORK/t-1.2.3-r4.apk"
$ADB mkndx --output "$WORK/fx.adb" "$WORK/t-1.2.3-r4.apk"
check "adb.py mkndx = real apk mkndx, byte for byte (unsigned index of the fixture)" cmp "$WORK/fx.adb" tests/packaging/vectors/apk-mkndx-fixture.adb
apk_fixture_args "$WORK/fx" "$WORK/bad.apk"
APK_FIXTURE_ARGS=("${APK_FIXTURE_ARGS[@]/version:1.2.3-r4/version:1.2.3-4}")
refused() { local out; ! out=$($ADB "${APK_FIXTURE_ARGS[@]}" 2>&1) && grep -q "info field 'version' has invalid value" <<<"$out"; }
check "a version apk refuses (1.2.3-4) is refused, with apk's message" refused
check "nothing written for a refused package" test ! -e "$WORK/bad.apk"

targets=()
for d in dist/*-unknown-linux-musl*/awl; do [ -x "$d" ] && targets+=("$(basename "$(dirname "$d")")"); done
[ ${#targets[@]} -gt 0 ] || { bash cross/build.sh x86_64-unknown-linux-musl >/dev/null && targets=(x86_64-unknown-linux-musl); }
PKGV=$(bash -c 'source cross/package/common.sh; echo "$PKG_VERSION"')
for t in "${targets[@]}"; do
    arch=$(bash -c "source cross/package/common.sh; openwrt_arch $t")
    apk=$(bash cross/package/build-apk.sh "$t" | awk '{print $1}')
    check "$t: built as apk/$arch/awl-$PKGV.apk" test "$apk" = "$ROOT/dist/packages/apk/$arch/awl-$PKGV.apk"
    $ADB dump "$apk" >"$WORK/$t.json"
    check "$t: info fields as package-pack.mk passes them" python3 - "$WORK/$t.json" "$PKGV" "$arch" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); i = d["info"]
assert d["schema"] == "676b6370"
assert (i["name"], i["version"], i["arch"]) == ("awl", sys.argv[2], sys.argv[3]), i
assert i["depends"] == ["kmod-tun", "libc"] and i["license"] == "MPL-2.0" and i["origin"] == "feeds/awl/awl"
assert i["url"].startswith("https://") and i["maintainer"] and "\n" not in i["description"]
assert len(i["hashes"]) == 40
PY
    $PT apk "$WORK/r-$t" add "$apk" >/dev/null 2>&1 || true
    r=$WORK/r-$t
    check "$t: payload: binary, config, init, uci-defaults, keep.d" test -x "$r/usr/sbin/awl" -a -f "$r/etc/config/awl" -a -x "$r/etc/init.d/awl" -a -x "$r/etc/uci-defaults/90-awl" -a -f "$r/lib/upgrade/keep.d/awl"
    check "$t: binary unchanged" cmp -s "$r/usr/sbin/awl" "dist/$t/awl"
    check "$t: no /etc/awl in the package" test ! -e "$r/etc/awl"
    check "$t: lib/apk/packages/awl.conffiles is /etc/config/awl" test "$(cat "$r/lib/apk/packages/awl.conffiles")" = /etc/config/awl
    check "$t: conffiles_static has its sha256" test "$(cat "$r/lib/apk/packages/awl.conffiles_static")" = "/etc/config/awl $(sha256sum <openwrt/awl/files/awl.config | cut -d' ' -f1)"
    check "$t: awl.list lists the payload's files" test "$(cat "$r/lib/apk/packages/awl.list")" = "$(printf '%s\n' /etc/config/awl /etc/init.d/awl /etc/uci-defaults/90-awl /lib/upgrade/keep.d/awl /usr/sbin/awl)"
    check "$t: scripts post-install, post-upgrade, pre-deinstall as OpenWrt writes them" python3 - "$WORK/$t.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["scripts"]
pi = ('#!/bin/sh\n[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0\n[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n'
      '. ${IPKG_INSTROOT}/lib/functions.sh\nexport root="${IPKG_INSTROOT}"\nexport pkgname="awl"\nadd_group_and_user\ndefault_postinst\n')
assert s["post-install"] == pi, s["post-install"]
assert s["post-upgrade"] == "#!/bin/sh\nexport PKG_UPGRADE=1\n" + pi.split("\n", 1)[1]
assert s["pre-deinstall"] == ('#!/bin/sh\n[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n. ${IPKG_INSTROOT}/lib/functions.sh\n'
                              'export root="${IPKG_INSTROOT}"\nexport pkgname="awl"\ndefault_prerm\n')
assert sorted(s) == ["post-install", "post-upgrade", "pre-deinstall"]
PY
done
if command -v zopfli >/dev/null; then
    t=${targets[0]}; a1=$(bash cross/package/build-apk.sh "$t" | awk '{print $1}'); cp "$a1" "$WORK/z.apk"
    AWL_APK_ZLIB=1 bash cross/package/build-apk.sh "$t" >/dev/null; cp "$a1" "$WORK/zlib.apk"
    bash cross/package/build-apk.sh "$t" >/dev/null
    same_stream() { python3 -c "import sys,zlib; r=lambda f: zlib.decompress(open(f,'rb').read()[4:],-15); sys.exit(r(sys.argv[1])!=r(sys.argv[2]))" "$1" "$2"; }
    check "$t: zopfli-compressed .apk holds exactly apk's stream, and is smaller" sh -c "$(declare -f same_stream); same_stream '$WORK/z.apk' '$WORK/zlib.apk' && [ \$(stat -c %s '$WORK/z.apk') -lt \$(stat -c %s '$WORK/zlib.apk') ]"
fi
lapk=$(bash cross/package/build-apk.sh luci-app-awl | awk '{print $1}')
$ADB dump "$lapk" >"$WORK/luci.json"
check "luci-app-awl: noarch, depends on awl and luci-base" python3 -c "
import json,sys; i=json.load(open(sys.argv[1]))['info']; assert i['arch']=='noarch' and i['depends']==['awl','libc','luci-base'], i" "$WORK/luci.json"

# The lifecycle, offline, with apk's rules (pkgtool apk).
t=${targets[0]}; arch=$(bash -c "source cross/package/common.sh; openwrt_arch $t")
next=$(bash -c 'source cross/package/common.sh; echo $((RELEASE + 1))')
r2=$(AWL_PKG_RELEASE=$next bash cross/package/build-apk.sh "$t" | awk '{print $1}')
l2=$(AWL_PKG_RELEASE=$next bash cross/package/build-apk.sh luci-app-awl | awk '{print $1}')
r1=dist/packages/apk/$arch/awl-$PKGV.apk
R=$WORK/root; mkdir -p "$R"
apk() { $PT apk "$R" "$@"; }
check "add awl $PKGV" apk add "$r1" >/dev/null
check "add luci-app-awl $PKGV" apk add "$lapk" >/dev/null
printf "\toption name 'my-router'\n" >>"$R/etc/config/awl"
mkdir -p "$R/etc/awl"; echo identity >"$R/etc/awl/identity"; mine=$(sha256sum <"$R/etc/config/awl")
out=$(apk add "$r2")
check "upgrade to r$next keeps the user's /etc/config/awl" test "$(sha256sum <"$R/etc/config/awl")" = "$mine"
check "upgrade writes the new default as awl.apk-new" cmp -s "$R/etc/config/awl.apk-new" openwrt/awl/files/awl.config
check "upgrade says so" grep -q "etc/config/awl.apk-new" <<<"$out"
check "upgrade keeps the identity" test "$(cat "$R/etc/awl/identity")" = identity
check "upgrade luci-app-awl" apk add "$l2" >/dev/null
check "reinstall keeps config and identity" sh -c "$PT apk '$R' add '$r2' >/dev/null && test \"\$(sha256sum <'$R/etc/config/awl')\" = '$mine' && test -f '$R/etc/awl/identity'"
apk del luci-app-awl >/dev/null; apk del awl >/dev/null
check "del removes the binary" test ! -e "$R/usr/sbin/awl"
check "del keeps the modified config, drops awl.apk-new" test "$(sha256sum <"$R/etc/config/awl")" = "$mine" -a ! -e "$R/etc/config/awl.apk-new"
check "del keeps the identity" test -f "$R/etc/awl/identity"
check "add after del works and keeps both" sh -c "$PT apk '$R' add '$r2' >/dev/null && test \"\$(sha256sum <'$R/etc/config/awl')\" = '$mine' && test -x '$R/usr/sbin/awl' && test -f '$R/etc/awl/identity'"
check "luci-app-awl deleted: its views are gone" test ! -e "$R/www/luci-static/resources/view/awl/status.js"
check "luci-app-awl added again after del" sh -c "$PT apk '$R' add '$l2' >/dev/null && test -f '$R/www/luci-static/resources/view/awl/status.js' && test -x '$R/usr/libexec/rpcd/awl'"
rm -f "$r2" "$l2"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]

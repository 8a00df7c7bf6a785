#!/usr/bin/env bash
# Builds an apk-tools v3 package (.apk, OpenWrt 25.12 and later) as OpenWrt's package-pack.mk
# does with `apk mkpkg`:
#   bash cross/package/build-apk.sh <rust-target> [binary]   awl
#   bash cross/package/build-apk.sh luci-app-awl               the LuCI app (noarch)
# Output: dist/packages/apk/<arch>/<name>-<X.Y.Z-rN>.apk. The payload carries
# lib/apk/packages/<name>.{list,conffiles,conffiles_static}; the scripts are OpenWrt's
# generated post-install, post-upgrade and pre-deinstall. Packed by cross/package/adb.py (no
# registry offers apk-tools v3), compressed with zopfli when installed; AWL_APK_ZLIB=1 gives
# exactly `apk mkpkg`'s bytes; APK=/path/to/apk packs with the real `apk mkpkg` instead.
set -euo pipefail
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/stage.sh"
what=${1:?usage: build-apk.sh <rust-target>|luci-app-awl [binary]}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data=$work/data scr=$work/scripts
stage_package "$what" "$data" "${2:-}"
meta=$data/lib/apk/packages
mkdir -p "$meta" "$scr"
(cd "$data" && find . -type f,l -printf "/%P\n" | LC_ALL=C sort >"$work/list")
mv "$work/list" "$meta/$PKG.list"
if [ -n "$CONFFILES" ]; then
    echo "$CONFFILES" >"$meta/$PKG.conffiles"
    for f in $CONFFILES; do
        [ -f "$data/$f" ] || continue
        echo "$f $(sha256sum "$data/$f" | cut -d' ' -f1)" >>"$meta/$PKG.conffiles_static"
    done
fi
find "$data" -type d -exec chmod 0755 {} +
cat >"$scr/post-install" <<EOT
#!/bin/sh
[ "\${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s \${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. \${IPKG_INSTROOT}/lib/functions.sh
export root="\${IPKG_INSTROOT}"
export pkgname="$PKG"
add_group_and_user
default_postinst
EOT
{ echo "#!/bin/sh"; echo "export PKG_UPGRADE=1"; sed '/^\s*#!/d' "$scr/post-install"; } >"$scr/post-upgrade"
cat >"$scr/pre-deinstall" <<EOT
#!/bin/sh
[ -s \${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. \${IPKG_INSTROOT}/lib/functions.sh
export root="\${IPKG_INSTROOT}"
export pkgname="$PKG"
default_prerm
EOT
# make's $(strip): whitespace runs become one space.
desc=$(tr -s ' \t\n' '   ' <<<"$DESCRIPTION" | sed 's/^ //; s/ $//')
apk_arch=$ARCH
[ "$ARCH" = all ] && apk_arch=noarch
outdir=$ROOT/dist/packages/apk/$ARCH
mkdir -p "$outdir"
out=$outdir/$PKG-$PKG_VERSION.apk
args=(mkpkg
    --info "name:$PKG" --info "version:$PKG_VERSION"
    --info "description:$desc"
    --info "arch:$apk_arch" --info "license:$LICENSE" --info "origin:$SOURCE"
    --info "url:$URL" --info "maintainer:$MAINTAINER"
    --script "post-install:$scr/post-install" --script "post-upgrade:$scr/post-upgrade"
    --script "pre-deinstall:$scr/pre-deinstall"
    --info "depends:$(echo "$DEPENDS" | tr -d ',')"
    --files "$data" --output "$out")
if [ -n "${APK:-}" ]; then
    "$APK" "${args[@]}"
else
    # zopfli when installed (as for the .ipk): ~3.5% smaller than apk's own deflate.
    # AWL_APK_ZLIB=1 writes exactly what `apk mkpkg` writes.
    z=()
    if command -v zopfli >/dev/null && [ "${AWL_APK_ZLIB:-0}" != 1 ]; then z=(--zopfli); fi
    python3 "$ROOT/cross/package/adb.py" "${args[@]}" "${z[@]}"
fi
echo "$out ($(stat -c %s "$out") bytes)"

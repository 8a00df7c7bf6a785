#!/usr/bin/env bash
# Builds an OpenWrt .ipk as OpenWrt's package-pack.mk and scripts/ipkg-build make it:
#   bash cross/package/build-ipk.sh <rust-target> [binary]   awl (default binary: dist/<target>/awl)
#   bash cross/package/build-ipk.sh luci-app-awl               the LuCI app (architecture all)
# Output: dist/packages/<name>_<X.Y.Z-rN>_<arch>.ipk, a gzip'd tar of debian-binary,
# data.tar.gz and control.tar.gz. conffiles lists regular files only (ipkg-build drops anything
# else; opkg fails on a directory), Installed-Size is the uncompressed data tar's size, and
# postinst/prerm are OpenWrt's generated ones (default_postinst/default_prerm).
set -euo pipefail
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/stage.sh"
what=${1:?usage: build-ipk.sh <rust-target>|luci-app-awl [binary]}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data=$work/data ctl=$work/control
stage_package "$what" "$data" "${2:-}"

outer=$work/outer
mkdir -p "$ctl" "$outer"
det_tar "$outer/data.tar.gz" "$data"
installed_size=$(zcat "$outer/data.tar.gz" | wc -c)
{
    echo "Package: $PKG"
    echo "Version: $PKG_VERSION"
    echo "Depends: $DEPENDS"
    echo "Source: $SOURCE"
    echo "SourceName: $PKG"
    echo "License: $LICENSE"
    echo "Section: $SECTION"
    echo "SourceDateEpoch: $SOURCE_DATE_EPOCH"
    echo "URL: $URL"
    echo "Maintainer: $MAINTAINER"
    echo "Architecture: $ARCH"
    echo "Installed-Size: $installed_size"
    printf "Description: "; echo "$DESCRIPTION" | sed -e 's,^[[:space:]]*, ,g'
} >"$ctl/control"
# ipkg-build keeps the conffiles that are regular files in the payload, sorted.
: >"$ctl/conffiles"
for f in $CONFFILES; do
    if [ -f "$data$f" ] && [ ! -L "$data$f" ]; then echo "$f" >>"$ctl/conffiles"; fi
done
if [ -s "$ctl/conffiles" ]; then LC_ALL=C sort -o "$ctl/conffiles" "$ctl/conffiles"; else rm "$ctl/conffiles"; fi
cat >"$ctl/postinst" <<'EOT'
#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
EOT
cat >"$ctl/prerm" <<'EOT'
#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
EOT
chmod 0644 "$ctl/control"
chmod 0755 "$ctl/postinst" "$ctl/prerm"
det_tar "$outer/control.tar.gz" "$ctl"
echo "2.0" >"$outer/debian-binary"
mkdir -p "$ROOT/dist/packages"
out=$ROOT/dist/packages/${PKG}_${PKG_VERSION}_${ARCH}.ipk
tar --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" --format=gnu \
    -C "$outer" -cf - ./debian-binary ./data.tar.gz ./control.tar.gz | gzip -9n >"$out"
echo "$out ($(stat -c %s "$out") bytes)"

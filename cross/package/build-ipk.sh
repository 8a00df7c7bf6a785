#!/usr/bin/env bash
# Builds an OpenWrt .ipk from a static binary:
#   bash cross/package/build-ipk.sh <rust-target> [binary]   (default binary: dist/<target>/awl)
# Output: dist/packages/awl_<version>-<release>_<arch>.ipk (gzip'd tar of debian-binary,
# data.tar.gz, control.tar.gz, as ipkg-build makes them).
set -euo pipefail
source "$(dirname "$0")/common.sh"
target=${1:?usage: build-ipk.sh <rust-target> [binary]}
bin=${2:-$ROOT/dist/$target/awl}
arch=$(openwrt_arch "$target") || { echo "no OpenWrt arch for $target" >&2; exit 2; }
[ -x "$bin" ] || { echo "binary not found: $bin (run cross/build.sh $target)" >&2; exit 1; }
files=$ROOT/openwrt/awl/files

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data=$work/data ctl=$work/control
install -D -m 0755 "$bin" "$data/usr/sbin/awl"
install -D -m 0644 "$files/awl.config" "$data/etc/config/awl"
install -D -m 0755 "$files/awl.init" "$data/etc/init.d/awl"
install -D -m 0755 "$files/awl.uci-defaults" "$data/etc/uci-defaults/90-awl"
install -D -m 0644 "$files/awl.keep" "$data/lib/upgrade/keep.d/awl"
install -d -m 0700 "$data/etc/awl"

mkdir -p "$ctl"
size=$(du -sb --exclude=CONTROL "$data" | cut -f1)
cat >"$ctl/control" <<EOT
Package: awl
Version: $VERSION-$RELEASE
Depends: libc, kmod-tun
Source: feeds/awl/awl
SourceName: awl
License: MPL-2.0
LicenseFiles: LICENSE
Section: net
SourceDateEpoch: $SOURCE_DATE_EPOCH
Maintainer: awl developers <awl@example.org>
Architecture: $arch
Installed-Size: $size
Description:  Mesh VPN node compatible with Anywherelan (AWL): joins the router and its LAN
 to a peer-to-peer mesh over libp2p QUIC. Configure in /etc/config/awl or luci-app-awl.
EOT
printf '/etc/config/awl\n/etc/awl/\n' >"$ctl/conffiles"
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
chmod 0755 "$ctl/postinst" "$ctl/prerm"

outer=$work/outer
mkdir -p "$outer"
echo "2.0" >"$outer/debian-binary"
det_tar "$outer/data.tar.gz" "$data"
det_tar "$outer/control.tar.gz" "$ctl"
mkdir -p "$ROOT/dist/packages"
out=$ROOT/dist/packages/awl_${VERSION}-${RELEASE}_${arch}.ipk
tar --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" --format=gnu \
    -C "$outer" -cf - ./debian-binary ./data.tar.gz ./control.tar.gz | gzip -9n >"$out"
echo "$out ($(stat -c %s "$out") bytes)"

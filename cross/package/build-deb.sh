#!/usr/bin/env bash
# Builds a Debian / Raspberry Pi OS package with a systemd unit:
#   bash cross/package/build-deb.sh <rust-target> [binary]
# Targets: aarch64-unknown-linux-musl (arm64), armv7-unknown-linux-musleabihf (armhf),
# x86_64-unknown-linux-musl (amd64). Output: dist/packages/awl_<version>-<release>_<arch>.deb
set -euo pipefail
source "$(dirname "$0")/common.sh"
target=${1:?usage: build-deb.sh <rust-target> [binary]}
bin=${2:-$ROOT/dist/$target/awl}
arch=$(deb_arch "$target") || { echo "no Debian arch for $target" >&2; exit 2; }
[ -x "$bin" ] || { echo "binary not found: $bin" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg=$work/pkg
install -D -m 0755 "$bin" "$pkg/usr/sbin/awl"
install -D -m 0644 "$ROOT/cross/package/awl.service" "$pkg/lib/systemd/system/awl.service"
# Same UCI file as on OpenWrt, enabled: a package installed on a Pi is meant to run.
install -D -m 0644 "$ROOT/configs/awl.default" "$pkg/etc/config/awl"
sed -i "s/option enabled '0'/option enabled '1'/" "$pkg/etc/config/awl"
# A Pi sits behind a home router: ask it to forward our port (docs/INSTALL.md).
sed -i "s/option port_mapping '0'/option port_mapping '1'/" "$pkg/etc/config/awl"
install -D -m 0644 "$ROOT/README.md" "$pkg/usr/share/doc/awl/README.md"
for d in CONFIG GATEWAY INSTALL; do
    [ -f "$ROOT/docs/$d.md" ] && install -m 0644 "$ROOT/docs/$d.md" "$pkg/usr/share/doc/awl/"
done
mkdir -p "$pkg/DEBIAN"
cat >"$pkg/DEBIAN/control" <<EOT
Package: awl
Version: $PKG_VERSION
Architecture: $arch
Maintainer: awl developers <awl@example.org>
Section: net
Priority: optional
Depends: iproute2
Recommends: nftables
Installed-Size: $(du -sk "$pkg" | cut -f1)
Homepage: https://github.com/awl-mesh/awl
Description: mesh VPN node compatible with Anywherelan (AWL)
 Joins this machine, and optionally the LAN it routes, to a peer-to-peer mesh
 VPN over libp2p QUIC, interoperable with Anywherelan nodes.
EOT
echo "/etc/config/awl" >"$pkg/DEBIAN/conffiles"
cat >"$pkg/DEBIAN/postinst" <<'EOT'
#!/bin/sh
set -e
install -d -m 0700 /etc/awl
if [ "$1" = configure ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl enable awl.service >/dev/null 2>&1 || true
	systemctl restart awl.service || true
fi
EOT
cat >"$pkg/DEBIAN/prerm" <<'EOT'
#!/bin/sh
set -e
if [ "$1" = remove ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
	systemctl disable --now awl.service || true
fi
EOT
cat >"$pkg/DEBIAN/postrm" <<'EOT'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
	rm -rf /etc/awl
fi
EOT
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm" "$pkg/DEBIAN/postrm"
mkdir -p "$ROOT/dist/packages"
out=$ROOT/dist/packages/awl_${PKG_VERSION}_${arch}.deb
dpkg-deb --root-owner-group -Zgzip --build "$pkg" "$out" >/dev/null
echo "$out ($(stat -c %s "$out") bytes)"

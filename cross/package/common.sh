# shellcheck shell=bash disable=SC2034
# Shared by the package scripts: version, architecture names, deterministic tar.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# The version comes from openwrt/version.mk, the one place that defines it (the feed Makefiles
# read it too). Packages are X.Y.Z-rN: OpenWrt's form, which apk requires and opkg ranks above
# X.Y.Z-N. Cargo.toml must carry the same X.Y.Z.
mk_var() { sed -n "s/^$1:=\(.*\)$/\1/p" "$ROOT/openwrt/version.mk"; }
VERSION=$(mk_var AWL_VERSION)
# AWL_PKG_RELEASE overrides the release (tests build a later release to upgrade to).
RELEASE=${AWL_PKG_RELEASE:-$(mk_var AWL_RELEASE)}
PKG_VERSION=$VERSION-r$RELEASE
cargo_version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
if [ "$cargo_version" != "$VERSION" ] || ! [[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || ! [[ $RELEASE =~ ^[1-9][0-9]*$ ]]; then
    echo "openwrt/version.mk ($VERSION, release $RELEASE) and Cargo.toml ($cargo_version) disagree or are malformed" >&2
    exit 1
fi
unset cargo_version
URL=https://github.com/awl-mesh/awl
MAINTAINER="awl developers <awl@example.org>"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}

# OpenWrt package architecture for a Rust target.
openwrt_arch() {
    case $1 in
        mipsel-unknown-linux-musl) echo mipsel_24kc ;;
        mips-unknown-linux-musl) echo mips_24kc ;;
        armv7-unknown-linux-musleabihf) echo arm_cortex-a7_neon-vfpv4 ;;
        aarch64-unknown-linux-musl) echo aarch64_cortex-a53 ;;
        x86_64-unknown-linux-musl) echo x86_64 ;;
        *) return 1 ;;
    esac
}

# Debian architecture for a Rust target.
deb_arch() {
    case $1 in
        aarch64-unknown-linux-musl) echo arm64 ;;
        armv7-unknown-linux-musleabihf) echo armhf ;;
        x86_64-unknown-linux-musl) echo amd64 ;;
        *) return 1 ;;
    esac
}

# gz FILE OUT: gzip-compatible compression; zopfli when installed (about 4% smaller than
# gzip -9, which is what keeps the mipsel .ipk under 800 kB), else gzip -9.
gz() {
    if command -v zopfli >/dev/null; then zopfli -c --i15 "$1" >"$2"; else gzip -9nc "$1" >"$2"; fi
}

# det_tar OUT.tar.gz DIR: gzip'd tar of DIR's contents, root-owned, sorted, fixed mtime.
det_tar() {
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
        --format=gnu -C "$2" -cf "$1.tar" .
    gz "$1.tar" "$1"
    rm -f "$1.tar"
}

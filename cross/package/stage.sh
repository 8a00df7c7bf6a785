# shellcheck shell=bash disable=SC2034
# Shared by build-ipk.sh and build-apk.sh: what goes into each package, as the feed Makefiles
# (openwrt/awl/Makefile, luci-app-awl/Makefile with OpenWrt's luci.mk) install it, and the
# package metadata package-pack.mk writes. Sourced after common.sh.

# pkg_meta NAME [RUST_TARGET]: sets PKG ARCH DEPENDS SECTION SOURCE LICENSE DESCRIPTION CONFFILES.
pkg_meta() {
    PKG=$1
    LICENSE=MPL-2.0
    case $PKG in
        awl)
            ARCH=$(openwrt_arch "$2") || { echo "no OpenWrt arch for $2" >&2; return 2; }
            DEPENDS="libc, kmod-tun"
            SECTION=net
            # The Makefile's description, as make expands the define (lines keep their indent).
            DESCRIPTION=$(sed -n '/^define Package\/awl\/description$/,/^endef$/{/^define\|^endef/d;p}' "$ROOT/openwrt/awl/Makefile")
            CONFFILES=$(sed -n '/^define Package\/awl\/conffiles$/,/^endef$/{/^define\|^endef/d;p}' "$ROOT/openwrt/awl/Makefile")
            ;;
        luci-app-awl)
            ARCH=all
            DEPENDS="libc, $(sed -n 's/^LUCI_DEPENDS:=//p' "$ROOT/luci-app-awl/Makefile" | sed 's/+//g; s/ \+/, /g')"
            SECTION=luci
            DESCRIPTION=$(sed -n 's/^LUCI_DESCRIPTION:=//p' "$ROOT/luci-app-awl/Makefile")
            CONFFILES=""
            ;;
        *) echo "unknown package $PKG" >&2; return 2 ;;
    esac
    SOURCE=feeds/awl/$PKG
}

# stage_payload NAME DIR [BINARY]: the package's files under DIR, as Package/NAME/install does.
stage_payload() {
    local d=$2 files=$ROOT/openwrt/awl/files
    case $1 in
        awl)
            install -D -m 0755 "$3" "$d/usr/sbin/awl"
            install -D -m 0644 "$files/awl.config" "$d/etc/config/awl"
            install -D -m 0755 "$files/awl.init" "$d/etc/init.d/awl"
            install -D -m 0755 "$files/awl.uci-defaults" "$d/etc/uci-defaults/90-awl"
            install -D -m 0644 "$files/awl.keep" "$d/lib/upgrade/keep.d/awl"
            ;;
        luci-app-awl)
            # luci.mk: htdocs/* -> /www, root/* -> / (cp -pR keeps the modes from git).
            mkdir -p "$d/www"
            cp -pR "$ROOT/luci-app-awl/htdocs/." "$d/www/"
            cp -pR "$ROOT/luci-app-awl/root/." "$d/"
            ;;
    esac
    # Files root-owned, directories 0755 as a build tree has them (umask 022).
    find "$d" -type d -exec chmod 0755 {} +
}

# stage_package WHAT DATA [BINARY]: metadata and payload of luci-app-awl, or of awl for the
# Rust target WHAT (its binary from dist/ unless given).
stage_package() {
    local what=$1 data=$2 bin=${3:-}
    if [ "$what" = luci-app-awl ]; then
        pkg_meta luci-app-awl
        stage_payload luci-app-awl "$data"
    else
        pkg_meta awl "$what"
        bin=${bin:-$ROOT/dist/$what/awl}
        [ -x "$bin" ] || { echo "binary not found: $bin (run cross/build.sh $what)" >&2; return 1; }
        stage_payload awl "$data" "$bin"
    fi
}

#!/usr/bin/env bash
# The feed in OpenWrt's layout: `src-link awl <repo>/openwrt` makes feeds/awl a symlink to
# openwrt/, and `scripts/feeds install` links package/feeds/awl/<name> to feeds/awl/<name>.
# OpenWrt finds packages with `find -L feeds/<feed> -mindepth 1 -maxdepth 5 -name Makefile |
# xargs grep 'call BuildPackage'` (include/scan.mk) and builds with make -C on the package
# directory. Here the buildroot's include files are stand-ins that record what the Makefiles
# ask for; the test checks that both packages are found, every include resolves (no
# "No such file"), and the versions come from openwrt/version.mk.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
PASSED=0; FAILED=0
check() { local what=$1; shift; if "$@"; then PASSED=$((PASSED + 1)); echo "PASS: $what"; else FAILED=$((FAILED + 1)); echo "FAIL: $what"; fi; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
mkdir -p "$T/include" "$T/feeds/packages/lang/rust" "$T/feeds/luci" "$T/package/feeds/awl"
cat >"$T/rules.mk" <<'EOM'
INCLUDE_DIR:=$(TOPDIR)/include
EOM
echo 'PKG_BUILD_DIR?=/build/$(PKG_NAME)' >"$T/include/package.mk"
cat >"$T/feeds/packages/lang/rust/rust-package.mk" <<'EOM'
RUST_ARCH_DEPENDS:=@(aarch64||arm||mips||mipsel||x86_64)
define RustBinPackage
endef
define BuildPackage
$$(info PACKAGE $(1) VERSION $(PKG_VERSION)-r$(PKG_RELEASE) CONFFILES $(strip $(Package/$(1)/conffiles)) SOURCE $(if $(PKG_SOURCE),$(PKG_SOURCE),local-tree) PREPARE $(if $(Build/Prepare),custom,default))
endef
EOM
cat >"$T/feeds/luci/luci.mk" <<'EOM'
LUCI_NAME?=$(notdir ${CURDIR})
PKG_NAME?=$(LUCI_NAME)
include $(INCLUDE_DIR)/package.mk
$(info PACKAGE $(PKG_NAME) VERSION $(PKG_VERSION)-r$(PKG_RELEASE) DEPENDS $(LUCI_DEPENDS) HTDOCS $(if $(wildcard ./htdocs/luci-static),yes,no) ROOT $(if $(wildcard ./root/usr),yes,no))
EOM
ln -s "$ROOT/openwrt" "$T/feeds/awl"
ln -s ../../../feeds/awl/awl "$T/package/feeds/awl/awl"
ln -s ../../../feeds/awl/luci-app-awl "$T/package/feeds/awl/luci-app-awl"

found=$(cd "$T" && find -L feeds/awl -mindepth 1 -maxdepth 5 -name Makefile -exec grep -aHE 'call (Build/DefaultTargets|BuildPackage|KernelPackage)' {} + | sed -e 's#^feeds/awl/##' -e 's#/Makefile:.*##' | sort -u | tr '\n' ' ')
check "scan finds awl and luci-app-awl in the feed" test "$found" = "awl luci-app-awl "
v=$(sed -n 's/^AWL_VERSION:=//p' openwrt/version.mk)-r$(sed -n 's/^AWL_RELEASE:=//p' openwrt/version.mk)
out=$(make --no-print-directory -C "$T/package/feeds/awl/awl" TOPDIR="$T" 2>&1)
echo "$out" | sed 's/^/  awl: /'
check "awl Makefile: every include resolves" sh -c "! echo '$out' | grep -qi 'no such file\|error'"
check "awl: version $v from openwrt/version.mk, conffiles /etc/config/awl" grep -q "^PACKAGE awl VERSION $v CONFFILES /etc/config/awl SOURCE" <<<"$out"
check "awl: a src-link to a checkout builds that tree" grep -q "SOURCE local-tree PREPARE custom" <<<"$out"
out=$(make --no-print-directory -C "$T/package/feeds/awl/luci-app-awl" TOPDIR="$T" 2>&1)
echo "$out" | sed 's/^/  luci-app-awl: /'
check "luci-app-awl Makefile: every include resolves" sh -c "! echo '$out' | grep -qi 'no such file\|error'"
check "luci-app-awl: version $v, depends awl, htdocs and root found through the symlink" grep -qx "PACKAGE luci-app-awl VERSION $v DEPENDS +awl +luci-base HTDOCS yes ROOT yes" <<<"$out"
# The old relative includes do not resolve in this layout (issue 19): prove the test sees it.
sed 's#\$(TOPDIR)/feeds/packages/lang/rust/rust-package.mk#../../lang/rust/rust-package.mk#' openwrt/awl/Makefile >"$T/old.mk"
out=$(cd "$T/package/feeds/awl/awl" && make --no-print-directory -f "$T/old.mk" TOPDIR="$T" CURDIR="$ROOT/openwrt/awl" 2>&1)
check "an include relative to the package (../../lang/rust) fails in the feed layout" grep -q "No such file" <<<"$out"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]

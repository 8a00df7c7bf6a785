#!/usr/bin/env bash
# The feed in OpenWrt's layout: `src-link awl <repo>/openwrt` makes feeds/awl a symlink to
# openwrt/, and `scripts/feeds install` links package/feeds/awl/<name> to feeds/awl/<name>.
# OpenWrt finds packages with `find -L feeds/<feed> -mindepth 1 -maxdepth 5 -name Makefile |
# xargs grep 'call BuildPackage'` (include/scan.mk) and builds with make -C on the package
# directory. Here the buildroot's include files are stand-ins that record what the Makefiles
# ask for; the test checks that both packages are found, every include resolves (no
# "No such file"), and the versions come from openwrt/version.mk. Then what cargo would build
# there: OpenWrt's environment for Rust packages (vectors/openwrt-rust-env.txt) against the
# Makefile's arguments, per ARCH, must give the profile CI tests and the MIPS .ipk's levels.
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
Build/Compile/Cargo=cargo install --profile release --locked $(2)
Build/Compile=$(call Build/Compile/Cargo)
define BuildPackage
$$(info PACKAGE $(1) VERSION $(PKG_VERSION)-r$(PKG_RELEASE) CONFFILES $(strip $(Package/$(1)/conffiles)) SOURCE $(if $(PKG_SOURCE),$(PKG_SOURCE),local-tree) PREPARE $(if $(Build/Prepare),custom,default))
$$(info COMPILE $(strip $(Build/Compile)))
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

# What cargo builds in the feed: OpenWrt's environment (vectors/openwrt-rust-env.txt), the
# command line the Makefile gives Build/Compile for ARCH, resolved by cargo (--unit-graph,
# nothing compiled). Prints one line per library or binary built for the router:
#   crate kind opt-level panic overflow-checks features(comma-separated)
mapfile -t OPENWRT_ENV < <(grep -v '^#' tests/packaging/vectors/openwrt-rust-env.txt)
resolve() {  # ARCH TRIPLE [MAKEFILE]
    local cmd
    cmd=$(cd "$T/package/feeds/awl/awl" && make --no-print-directory ${3:+-f "$3"} TOPDIR="$T" ARCH="$1" CURDIR="$ROOT/openwrt/awl" 2>&1 | sed -n 's/^COMPILE cargo install --profile release //p')
    [ -n "$cmd" ] || { echo "no COMPILE line for ARCH=$1" >&2; return 1; }
    # shellcheck disable=SC2086 # the Makefile's words, as make's shell splits them
    env "${OPENWRT_ENV[@]}" RUSTC_BOOTSTRAP=1 cargo build --release --target "$2" --unit-graph -Zunstable-options $cmd |
        python3 -c '
import json, sys
for u in json.load(sys.stdin)["units"]:
    # Only what runs on the router: build scripts and proc macros run on the build host.
    if u["mode"] != "build" or u["target"]["kind"] == ["custom-build"] or u["platform"] is None:
        continue
    p = u["profile"]
    name = u["pkg_id"].split("#")[-1].split("@")[0]
    print(name, "+".join(u["target"]["kind"]), p["opt_level"], p["panic"], str(p["overflow_checks"]).lower(), ",".join(u["features"]))'
}
# Cargo.toml's raised crates, and the levels cargo-mips.toml gives them.
raised=$(sed -n 's/^\[profile\.release\.package\.\([A-Za-z0-9_-]*\)\]$/\1/p' Cargo.toml | sort | tr '\n' ' ')
check "cargo-mips.toml sets back every crate Cargo.toml raises ($raised)" test "$(sed -n 's/^\[profile\.release\.package\.\([A-Za-z0-9_-]*\)\]$/\1/p' openwrt/awl/cargo-mips.toml | sort | tr '\n' ' ')" = "$raised"
level() { awk -v c="$1" '$1 == c && $2 == "lib" { print $3; exit }' <<<"$2"; }
awl_features() { awk '$1 == "awl" && $2 == "bin" { print $6 }' <<<"$1"; }
as_tested() { [ -n "$1" ] && ! awk '$4 != "abort" || $5 != "false"' <<<"$1" | grep -q .; }
feats=$(sed -n 's/^OPENWRT_ONLY_FEATURES=(--no-default-features --features=\(.*\))$/\1/p' cross/build.sh | tr ',' '\n' | sort | tr '\n' ',' | sed 's/,$//')
mips=$(resolve mipsel mipsel-unknown-linux-musl)
echo "$mips" | grep -E '^(awl|ring|quinn|tokio|rustls) ' | sed 's/^/  feed mipsel: /'
check "feed on MIPS: ring at \"s\", as cross/build.sh builds it" test "$(level ring "$mips")" = s
for c in $raised; do
    [ "$c" = ring ] && continue
    check "feed on MIPS: $c at \"z\", as cross/build.sh builds it" test "$(level "$c" "$mips")" = z
done
check "feed on MIPS: awl's features are cross/build.sh's for MIPS ($feats)" test "$(awl_features "$mips")" = "$feats"
for arch in mipsel:mipsel-unknown-linux-musl aarch64:aarch64-unknown-linux-musl x86_64:x86_64-unknown-linux-musl; do
    out=$(resolve "${arch%%:*}" "${arch#*:}")
    check "feed on ${arch%%:*}: every crate built with panic=abort and no overflow checks, as tested (OpenWrt's environment says unwind, checks on)" \
        as_tested "$out"
done
x86=$(resolve x86_64 x86_64-unknown-linux-musl)
check "feed on x86_64: ring at Cargo.toml's 3, default features (port mapping) kept" \
    bash -c '[ "$1" = 3 ] && [[ ,$2, == *,portmap,* ]]' _ "$(level ring "$x86")" "$(awl_features "$x86")"
# Without the Makefile's arguments (the feed before this check), OpenWrt's environment wins
# where Cargo.toml is silent and Cargo.toml's levels stay: prove the checks above see it.
sed '/^Build\/Compile=/d' openwrt/awl/Makefile >"$T/plain.mk"
plain=$(resolve mipsel mipsel-unknown-linux-musl "$T/plain.mk")
check "a feed Makefile without those arguments builds ring at 3 with panic=unwind on MIPS (the checks can fail)" \
    test "$(level ring "$plain") $(awk '$1 == "ring" && $2 == "lib" { print $4 }' <<<"$plain")" = "3 unwind"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]

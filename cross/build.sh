#!/usr/bin/env bash
# Size-optimised static musl binaries:
#   bash cross/build.sh [--size-flags] [--no-default-features|--features=…] [TARGET...]
# Default targets: mipsel, mips (soft-float), armv7, aarch64, x86_64. Output: dist/<target>/awl,
# and a size table (stripped bytes, gzip -9 bytes) in dist/sizes.txt.
# --size-flags adds nightly-only size options for release artefacts: optimize_for_size std and
# cross/size-flags.sh's rustflags (location details, immediate-abort panics, no unwind tables,
# and on MIPS shallow derived Debug).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_FLAGS=0
TARGETS=()
CARGO_FEATURES=()
for a in "$@"; do
    case $a in
        --size-flags) SIZE_FLAGS=1 ;;
        # Feature trimming, e.g. --no-default-features (no LAN gateway), --features=…
        --no-default-features|--features=*) CARGO_FEATURES+=("$a") ;;
        -*) echo "unknown option $a" >&2; exit 2 ;;
        *) TARGETS+=("$a") ;;
    esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(mipsel-unknown-linux-musl mips-unknown-linux-musl armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl x86_64-unknown-linux-musl)

eval "$(bash cross/toolchain.sh)"
export CARGO_TARGET_DIR=$PWD/target/cross
mkdir -p dist
: >dist/sizes.txt
printf '%-34s %12s %12s %8s\n' target stripped gzip-9 seconds | tee -a dist/sizes.txt

# MIPS boards run OpenWrt and are the NAT themselves: no port mapping code there.
# Nor the AWL config import (AWL does not run on them; the import runs on any machine).
OPENWRT_ONLY_FEATURES=(--no-default-features --features=gateway,services,socks5)
# Cargo.toml builds the packet path's crates for speed ([profile.release.package.*]); on MIPS
# the flash budget rules: openwrt/awl/cargo-mips.toml sets them back (ring to "s", the others
# to "z"), the same file the feed's Makefile gives cargo.
# AWL_MIPS_KEEP=CRATE[:LEVEL] (e.g. ring:2) builds one of them at LEVEL instead (without one,
# at Cargo.toml's): to measure what it buys, or for a board with flash to spare.
KEEP=${AWL_MIPS_KEEP:-}
MIPS_SIZE=(--config "$PWD/openwrt/awl/cargo-mips.toml")
if [ -n "$KEEP" ]; then
    p=${KEEP%%:*}
    if [ "$KEEP" = "$p" ]; then
        o=$(sed -n "/^\[profile\.release\.package\.$p\]\$/{n;s/^opt-level = //p}" Cargo.toml)
    else
        o=${KEEP#*:}; case $o in s | z) o="\"$o\"" ;; esac  # cargo takes 0-3 as numbers
    fi
    [ -n "$o" ] || { echo "AWL_MIPS_KEEP: $p is not in Cargo.toml's [profile.release.package.*]" >&2; exit 2; }
    MIPS_SIZE+=(--config "profile.release.package.$p.opt-level=$o")  # the later --config wins
fi

for t in "${TARGETS[@]}"; do
    t0=$SECONDS
    feats=("${CARGO_FEATURES[@]}")
    if [ ${#feats[@]} -eq 0 ] && [[ $t == mips* ]]; then feats=("${OPENWRT_ONLY_FEATURES[@]}"); fi
    args=(zigbuild --release --locked --target "$t" "${feats[@]}")
    if [[ $t == mips* ]]; then args+=("${MIPS_SIZE[@]}"); fi
    tc=""
    if [[ " $AWL_PREBUILT_STD " != *" $t "* ]] || [ "$SIZE_FLAGS" = 1 ]; then
        tc=$AWL_BUILD_STD_TOOLCHAIN
        # shellcheck disable=SC2054 # the comma belongs to the flag
        args+=(-Zbuild-std=std,panic_abort)
    fi
    extra=()
    if [ "$SIZE_FLAGS" = 1 ]; then
        args+=(-Zbuild-std-features=optimize_for_size)
        extra=(env "$(bash cross/size-flags.sh "$t")")
    fi
    if [ -n "$tc" ]; then
        env RUSTC_BOOTSTRAP=1 RUSTUP_TOOLCHAIN="$tc" "${extra[@]}" cargo "${args[@]}" >&2
    else
        "${extra[@]}" cargo "${args[@]}" >&2
    fi
    mkdir -p "dist/$t"
    # .pdr (MIPS procedure descriptors, ~9% of the file) and .comment are never loaded.
    objcopy --remove-section=.pdr --remove-section=.comment "$CARGO_TARGET_DIR/$t/release/awl" "dist/$t/awl"
    f=$(file -b "dist/$t/awl")
    case $f in
        *"statically linked"*|*"static-pie linked"*) ;;
        *) echo "dist/$t/awl is not static: $f" >&2; exit 1 ;;
    esac
    size=$(stat -c %s "dist/$t/awl")
    gz=$(gzip -9c "dist/$t/awl" | wc -c)
    printf '%-34s %12s %12s %8s\n' "$t" "$size" "$gz" "$((SECONDS - t0))" | tee -a dist/sizes.txt
done

#!/usr/bin/env bash
# Instructions to seal one 1,100 B packet with ChaCha20-Poly1305 on MIPS (no AES instructions:
# what a router's fast path pays per packet), counted under qemu-user with bench/qemu-insn.c:
# ring (as awl links it) at opt-level "z" and "s", RustCrypto's chacha20poly1305, awl's own
# ChaCha20-Poly1305 for MIPS (src/p2p/fastpath/chacha.rs, compiled in as it is), and ChaCha20
# alone written word by word (bench/aead/src/main.rs). Each count is (N = 2,000) − (N = 0),
# so start-up is not in it. Usage: bash bench/aead.sh [TARGET] (default
# mipsel-unknown-linux-musl). BENCH_AEAD_LEVELS (default "z s") lists the opt-levels to build
# the crypto crates at. Needs cross/toolchain.sh's tools and qemu-user (the dynamic
# build: it loads plugins).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=${1:-mipsel-unknown-linux-musl}
case $T in mipsel*) Q=qemu-mipsel ;; armv7*) Q=qemu-arm ;; aarch64*) Q=qemu-aarch64 ;; *) echo "aead: no qemu for $T"; exit 2 ;; esac
command -v "$Q" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user >/dev/null
cd "$ROOT"
eval "$(bash cross/toolchain.sh)"
WORK=$(mktemp -d /tmp/awl-aead.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
gcc -O2 -shared -fPIC -o "$WORK/insn.so" bench/qemu-insn.c -lpthread
sizeflags=$(bash cross/size-flags.sh "$T")  # as the shipped build (cross/build.sh --size-flags)
N=2000
echo "| $T, opt-level of the crypto crates | ring | rustcrypto | own (src/p2p/fastpath/chacha.rs, at \"z\") | keystream (ChaCha20 alone, no MAC) |"
echo "|---|---:|---:|---:|---:|"
for lv in ${BENCH_AEAD_LEVELS:-z s}; do
    o=$lv; case $o in s | z) o="\"$o\"" ;; esac  # cargo takes 0-3 as numbers
    cfg=()
    for p in ring chacha20 poly1305; do cfg+=(--config "profile.release.package.$p.opt-level=$o"); done
    env RUSTC_BOOTSTRAP=1 RUSTUP_TOOLCHAIN="$AWL_BUILD_STD_TOOLCHAIN" "$sizeflags" \
        cargo zigbuild --quiet --release --target "$T" --manifest-path bench/aead/Cargo.toml \
        --target-dir "$ROOT/target/aead-bench" -Zbuild-std=std,panic_abort \
        -Zbuild-std-features=optimize_for_size "${cfg[@]}" >&2
    bin=$ROOT/target/aead-bench/$T/release/aead-bench
    "$Q" "$bin" check >&2 || { echo "aead: the seals disagree"; exit 1; }
    row="| $o"
    for w in ring rustcrypto own keystream; do
        "$Q" -plugin "$WORK/insn.so,out=$WORK/0" "$bin" "$w" 0
        "$Q" -plugin "$WORK/insn.so,out=$WORK/n" "$bin" "$w" "$N"
        a=$(tr -dc 0-9 <"$WORK/0"); b=$(tr -dc 0-9 <"$WORK/n")
        row+=" | $(( (b - a) / N ))"
    done
    echo "$row |"
done

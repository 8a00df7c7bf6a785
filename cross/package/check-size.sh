#!/usr/bin/env bash
# The flash budget: fails when the shipped binary or its package is over budget.
#   bash cross/package/check-size.sh [TARGET...]   (default: mipsel-unknown-linux-musl)
# Reads dist/<target>/awl (as cross/build.sh leaves it: stripped) and the target's .ipk and
# .apk in dist/packages (build-ipk.sh, build-apk.sh); prints every number with its budget.
# Exit 1 when over the ceiling, 2 when something is missing.
#
# Two lines per file: the budget issue 19 sets (1.8 MB / 800 kB), shown with how far we are
# over it, and a ceiling a little above today's size, which fails the build. The ceiling is a
# ratchet: lower it whenever a cut lands, never raise it without saying why in
# docs/BENCHMARKS.md, so the size can only go down until the budget is met.
set -euo pipefail
source "$(dirname "$0")/common.sh"

# The budget, in bytes (issue 19: <= 1.8 MB stripped, <= 800 kB package, no UPX).
BUDGET_BINARY=1800000
BUDGET_PACKAGE=800000
# Enforced: mipsel with TCP, IPv6 and AutoNAT (1,944,972 B / 921,158 B) plus ~0.4 %; raised
# once from 1,962,000 / 925,000 for the redesign (docs/BENCHMARKS.md says what it cost), then
# lowered after MIPS left out the AWL config import and took -Zfmt-debug=shallow; raised
# from 1,952,000 / 925,000 for the fast path between awl nodes (issue 22: 1,954,860 B /
# 927,027 B; docs/BENCHMARKS.md says what it bought); the binary's by 1 kB for the socket's
# own reader (issue 22: 1,957,404 B, a ping round trip -22 % instructions); by 5 kB / 2 kB for
# the fast packets' own socket and thread (issue 22: 1,962,508 B / 930,550 B); by 4 kB / 2 kB
# for bulk on the fast path, sealed into GSO runs (issue 22: 1,966,604 B / 932,324 B), and
# by 2 kB / 1 kB for a super-packet's segments sent by the TUN reader itself (issue 22:
# 1,968,124 B / 933,613 B), and by 5 kB / 2 kB for the TUN reader's thread and its turns
# with the runtime (issue 22: 1,973,392 B / 935,839 B); the package's by 0.5 kB when the TUN's
# reads moved onto the fast packets' thread (issue 22: 1,973,824 B / 936,442 B here, a
# package's gzip moving ~100 B between builds of near-equal binaries); by 8 kB / 4 kB for a
# socket connected to each fast peer (issue 22: 1,981,648 B / 940,421 B; a ping round trip
# under boringtun's CPU in the interleaved runs, docs/BENCHMARKS.md); by 1 kB / 0.5 kB for an
# IPv4 socket to an IPv4 peer, whose sends skip the route lookup a dual-stack one made per
# packet (issue 22: 1,982,848 B / 940,920 B); the binary's by 0.5 kB for a packet sealed from
# the TUN reader's own buffer, without a pooled copy (issue 22: 1,983,296 B / 940,918 B; 250-285
# instructions fewer per TUN packet), lowered to 1,983,300 when the review routed each packet once
# (1,983,088 B); raised by 0.3 kB for a friend's connected socket opened when it is identified,
# not by its first packet (issue 22: 1,983,520 B / 941,291 B; a fresh node's first ping 0.40 ->
# 0.26 ms); raised by 0.7 kB (the package's by 0.9 kB) for two syscalls fewer per ping round
# trip, over both daemons (issue 22: 1,984,256 B / 941,939 B; CI built 942,157 B of it);
# raised by 1.9 kB / 1 kB for checksums the kernel left partial going unsummed between awl
# nodes (issue 22: 1,986,160 B / 943,142 B; the sender of a 1,400 B packet -17.7 %
# instructions on x86_64, -3.9 % on mipsel); lowered to 1,986,100 / 943,100 when the review
# made the coalescer's partial checksum the same code (1,986,064 B / 942,862 B); raised by 0.6 kB /
# 1.3 kB for ring at "s" instead of "z" on MIPS (issue 22: 1,986,608 B / 944,050 B; a router's
# packet -7.6 to -7.9 % instructions, sent or taken, its ping round trip -7.3 %); raised by
# 5.4 kB / 2.8 kB for the fast path's own ChaCha20-Poly1305 on MIPS (issue 22: 1,992,048 B /
# 946,859 B; a router's packet -24 % instructions sent or taken, its ping round trip -20 %:
# what ring at 2 gave for 54 kB).
CEILING_BINARY=1992100
CEILING_PACKAGE=947200

DIST=${AWL_DIST:-$ROOT/dist}   # the tests point it elsewhere
[ $# -gt 0 ] || set -- mipsel-unknown-linux-musl
fail=0
report() { # what size budget [info]: with "info" an excess is shown but does not fail
    local verdict=ok
    if [ "$2" -gt "$3" ]; then
        verdict="OVER by $(($2 - $3))"
        if [ "${4:-}" = info ]; then verdict="$verdict (not enforced)"; else fail=1; fi
    fi
    printf '%-62s %10s B  limit %10s B  %s\n' "$1" "$2" "$3" "$verdict"
}
for t in "$@"; do
    arch=$(openwrt_arch "$t")
    bin=$DIST/$t/awl
    ipk=$DIST/packages/awl_${PKG_VERSION}_${arch}.ipk
    apk=$DIST/packages/apk/$arch/awl-$PKG_VERSION.apk
    [ -f "$bin" ] || { echo "missing $bin (cross/build.sh --size-flags $t)" >&2; exit 2; }
    [ -f "$ipk" ] || { echo "missing $ipk (cross/package/build-ipk.sh $t)" >&2; exit 2; }
    report "$t stripped binary" "$(stat -c %s "$bin")" "$BUDGET_BINARY" info
    report "$(basename "$ipk")" "$(stat -c %s "$ipk")" "$BUDGET_PACKAGE" info
    report "  ceiling: $t stripped binary" "$(stat -c %s "$bin")" "$CEILING_BINARY"
    report "  ceiling: $(basename "$ipk")" "$(stat -c %s "$ipk")" "$CEILING_PACKAGE"
    # The .apk is about the .ipk's size with zopfli (3.5% more without): shown against the
    # same budget, enforced on the .ipk only, as issue 19 sets it.
    if [ -f "$apk" ]; then report "apk/$arch/$(basename "$apk")" "$(stat -c %s "$apk")" "$BUDGET_PACKAGE" info; fi
done
exit $fail

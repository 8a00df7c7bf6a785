#!/usr/bin/env bash
# Prints `KEY=VALUE` for env(1): the target's rustflags of .cargo/config.toml plus the
# nightly-only size options of a release artefact (cross/build.sh --size-flags), in the
# variable cargo appends to the target's config (RUSTFLAGS would replace it):
#   env "$(bash cross/size-flags.sh mipsel-unknown-linux-musl)" cargo ...
# Size options: -Zlocation-detail=none, panic=immediate-abort, and no unwind tables (nothing
# unwinds: .eh_frame is ~8 % on MIPS); on MIPS (the size budget's targets) -Zfmt-debug=shallow
# as well: a derived `{:?}` prints the type or variant name only (e.g. a rustls error's inner
# reason, a relay status), which pays for the TCP transport and the IPv6 underlay there
# (~30 kB; docs/BENCHMARKS.md). Not -Zfmt-debug=none: it empties those names as well.
# Used by cross/build.sh and bench/aead.sh, so a bench builds as the product ships.
set -euo pipefail
t=${1:?usage: size-flags.sh TARGET}
cd "$(dirname "$0")/.."
key="CARGO_TARGET_$(echo "$t" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
base=$(sed -n "/^\[target.$t\]/,/^\[/p" .cargo/config.toml | sed -n 's/^rustflags = \[\(.*\)\]/\1/p' | tr -d '",')
flags="$base -Zlocation-detail=none -Zunstable-options -Cpanic=immediate-abort -Cforce-unwind-tables=no"
if [[ $t == mips* ]]; then flags+=" -Zfmt-debug=shallow"; fi
echo "$key=$flags"

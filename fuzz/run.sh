#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60), starting from the committed
# corpus in fuzz/corpus/<target>; new inputs that find new paths are added there. A crash
# leaves its input in fuzz/artifacts/<target>/ and fails the run.
#   bash fuzz/run.sh          # CI: 1 minute per target
#   bash fuzz/run.sh 3600     # long run
# Needs the nightly toolchain (preinstalled here) and cargo-fuzz (installed if missing).
set -uo pipefail
secs=${1:-60}
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked >/dev/null || { echo "cannot install cargo-fuzz"; exit 1; }
fi
cargo +nightly fuzz build -O >/dev/null || { echo "fuzz build failed"; exit 1; }
passed=0; failed=0
for t in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$t"
    start=$SECONDS
    if cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=4096 \
        -rss_limit_mb=1024 -print_final_stats=1 >"/tmp/fuzz-$t.log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "/tmp/fuzz-$t.log" | grep -o '[0-9]*$')
        echo "PASS: $t: ${runs:-?} inputs in $((SECONDS - start)) s, no crash ($(ls "corpus/$t" | wc -l) in corpus)"
        passed=$((passed + 1))
    else
        echo "FAIL: $t crashed or failed; see /tmp/fuzz-$t.log and fuzz/artifacts/$t/"
        tail -30 "/tmp/fuzz-$t.log"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]

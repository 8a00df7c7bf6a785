#!/usr/bin/env bash
# Instructions the daemons execute per packet, counted by valgrind (callgrind): a figure that
# does not depend on the machine's load, for awl and for userspace WireGuard (boringtun) on the
# same topology and the same traffic.
#
#   bash bench/instructions.sh     # as root, x86_64; builds awl --release with line tables
#   BENCH_PINGS=200 BENCH_PACKETS=2000 BENCH_IDLE=30 BENCH_WARM=45 bash bench/instructions.sh
#
# Two namespaces joined by a veth pair, as in bench/run.sh; both daemons of a VPN run under
# `valgrind --tool=callgrind --instr-atstart=no`, so nothing is counted until the connection is
# up; then each window is counted alone (`callgrind_control -z` and `-i on` before it, `-i off`
# and `--dump` after it):
#   idle   BENCH_IDLE seconds with no traffic (timers, keep-alives): instructions per second;
#   ping   BENCH_PINGS pings (64 B ICMP, 84 B IP packets) 20 ms apart from A to B;
#   bulk   BENCH_PACKETS UDP datagrams of 1372 B (1400 B IP packets; BENCH_BULK_BYTES sets
#          another IP size) from A to B at
#          BENCH_PPS per second, counted by a receiver in B.
# Each traffic window's count minus the idle rate times the window's length, divided by the
# round trips (ping, both daemons) or the packets received (bulk, per daemon: A = the sending
# side, TUN to wire; B = the receiving side, wire to TUN). valgrind counts user-space
# instructions only: the kernel's work inside syscalls (TUN, UDP, copies) is not in these numbers.
# For the ping window it also counts the UDP packets on the veth each way (QUIC ACK-only
# packets included), so a figure per round trip can be checked against the packets it paid for.
# For the bulk window of awl the script also prints where the instructions went
# (callgrind_annotate, self cost per function classified by name, and the inclusive cost of the
# main entry points). Prints a Markdown report (also written to bench/last-instructions.md); the
# callgrind files stay in BENCH_KEEP if that is set.
#
# The build is the release profile (opt-level z, the packet path's crates at 3, fat LTO) with
# line tables and symbols kept (CARGO_PROFILE_RELEASE_DEBUG=line-tables-only,
# CARGO_PROFILE_RELEASE_STRIP=false) on glibc: the same code generation as the shipped x86_64
# build, not the static musl binary itself.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PINGS=${BENCH_PINGS:-200}
PACKETS=${BENCH_PACKETS:-2000}
PPS=${BENCH_PPS:-100}
# IP packet size of the bulk windows. Under qemu-user a smaller one is what the fast path
# takes: qemu refuses IPV6_DONTFRAG, so quinn keeps path-MTU discovery off and its datagrams
# (and the fast path's) at ~1,150 B; 1400 B packets then take the tunnel stream.
BULK=${BENCH_BULK_BYTES:-1400}
IDLE=${BENCH_IDLE:-30}
# awl's first AutoNAT round (each friend dials the other back once, 20-30 s after start: a
# full QUIC + TLS handshake) is a start-up cost, not idle: awl's windows start after it.
WARM=${BENCH_WARM:-45}
[ "$(id -u)" = 0 ] || { echo "instructions: needs root (namespaces, TUN)"; exit 1; }
[ "$(uname -m)" = x86_64 ] || echo "instructions: valgrind figures are for x86_64; this is $(uname -m)" >&2
command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null 2>&1
command -v wg >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wireguard-tools >/dev/null 2>&1
for t in valgrind callgrind_control callgrind_annotate taskset ping ip wg python3; do
    command -v $t >/dev/null || { echo "instructions: $t missing"; exit 1; }
done
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v boringtun-cli >/dev/null; then
    echo "instructions: installing boringtun-cli (cargo install, a few minutes)" >&2
    cargo install boringtun-cli --locked >/dev/null 2>&1 || { echo "instructions: cannot install boringtun-cli"; exit 1; }
fi
# BENCH_OPT_LEVEL=3 (say) builds with that opt-level instead of the profile's "z": what the size
# optimisation costs in instructions.
OPT=${BENCH_OPT_LEVEL:-}
env CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_PROFILE_RELEASE_STRIP=false ${OPT:+CARGO_PROFILE_RELEASE_OPT_LEVEL=$OPT} \
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --target-dir "$ROOT/target/symbols$OPT" --bin awl || exit 1
AWL=$ROOT/target/symbols$OPT/release/awl
WORK=$(mktemp -d /tmp/awl-instr.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 1
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    ip netns del bi-a 2>/dev/null; ip netns del bi-b 2>/dev/null
    if [ -n "${BENCH_KEEP:-}" ]; then mkdir -p "$BENCH_KEEP" && cp "$WORK"/*.out* "$WORK"/*.syms "$BENCH_KEEP"/ 2>/dev/null; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
veth_pair bi-a bi-b

# Instruction addresses are dumped (--dump-instr=yes) for the code footprint below;
# BENCH_CG_ARGS: more callgrind options (e.g. "--cache-sim=yes").
read -r -a CG_ARGS <<<"${BENCH_CG_ARGS:-}"
# cg NS NAME CMD...: start CMD under callgrind in namespace NS, pinned to CPU 0 (one core, like
# a router); its pid in CG_PID.
cg() {
    local ns=$1 name=$2; shift 2
    ip netns exec "$ns" taskset -c 0 valgrind --tool=callgrind --instr-atstart=no --dump-instr=yes "${CG_ARGS[@]}" \
        --callgrind-out-file="$WORK/$name.out" "$@" >"$WORK/$name.log" 2>&1 &
    CG_PID=$!; PIDS+=("$CG_PID")
}
# Instrumentation on or off, counters zeroed, dumps: for both daemons of a VPN.
ctl() { # "OPTION..." PID...
    local p o
    read -r -a o <<<"$1"; shift
    for p in "$@"; do callgrind_control "${o[@]}" "$p" >/dev/null 2>&1 || echo "instructions: callgrind_control ${o[*]} $p failed" >&2; done
}
# dumped NAME LABEL: instructions of the last dump of daemon NAME (its dump files are NAME.out.N).
dumped() {
    local f
    f=$(find "$WORK" -maxdepth 1 -name "$1.out.*" -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)
    [ -n "$f" ] || { echo 0; return; }
    mv "$f" "$WORK/$1-$2.out"
    awk '/^totals:/ {print $2; exit}' "$WORK/$1-$2.out"
}
now() { date +%s.%N; }
# qsnap NAME LABEL: the plugin's counts per symbol (syms=1) into NAME-LABEL.syms.
qsnap() {
    touch "$WORK/$1.cnt.snap"
    for _ in $(seq 100); do [ -e "$WORK/$1.cnt.snap" ] || break; sleep 0.05; done
    mv "$WORK/$1.cnt.syms" "$WORK/$1-$2.syms" 2>/dev/null
}
# window VPN LABEL PID_A PID_B CMD...: count both daemons while CMD runs; prints
# "seconds instructions_A instructions_B".
window() {
    local vpn=$1 label=$2 pa=$3 pb=$4 t0 t1 a0 b0; shift 4
    if [ -n "${QEMU:-}" ]; then # the plugin's counters (bench/qemu-insn.c), read before and after
        [ -z "${QSYMS:-}" ] || { qsnap "$vpn-a" "$label-0"; qsnap "$vpn-b" "$label-0"; }
        a0=$(cat "$WORK/$vpn-a.cnt"); b0=$(cat "$WORK/$vpn-b.cnt")
        t0=$(now); "$@"; t1=$(now)
        sleep 0.2
        [ -z "${QSYMS:-}" ] || { qsnap "$vpn-a" "$label-1"; qsnap "$vpn-b" "$label-1"; }
        echo "$(python3 -c "print($t1 - $t0)") $(( $(cat "$WORK/$vpn-a.cnt") - a0 )) $(( $(cat "$WORK/$vpn-b.cnt") - b0 ))"
        return
    fi
    ctl -z "$pa" "$pb"; ctl "-i on" "$pa" "$pb"
    t0=$(now)
    "$@"
    t1=$(now)
    ctl "-i off" "$pa" "$pb"; ctl --dump="$label" "$pa" "$pb"
    sleep 1
    echo "$(python3 -c "print($t1 - $t0)") $(dumped "$vpn-a" "$label") $(dumped "$vpn-b" "$label")"
}
# wire NAME: UDP packets A sent and received on the veth so far, into R[NAME.tx] / R[NAME.rx]:
# how many packets a window really put on the wire (QUIC ACK-only packets included).
wire() {
    read -r R["$1.tx"] R["$1.rx"] < <(ip -n bi-a -s -j link show eth0 | python3 -c "import json,sys; s=json.load(sys.stdin)[0]['stats64']; print(s['tx']['packets'], s['rx']['packets'])")
}
pings() { ip netns exec bi-a ping -c "$PINGS" -i 0.02 -W 5 "$1" >"$WORK/ping.txt" 2>&1; }
# bulk DST: PACKETS datagrams of BULK - 28 B at PPS to DST:5001; the receiver in B writes how many came.
bulk() {
    ip netns exec bi-b python3 -c "
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 5001)); s.settimeout(5)
n = 0
open(sys.argv[1] + '.ready', 'w').close()
try:
    while True:
        s.recv(2048); n += 1
        if n == int(sys.argv[2]): break
except socket.timeout:
    pass
open(sys.argv[1], 'w').write(str(n))" "$WORK/rx" "$PACKETS" &
    local rx=$!
    for _ in $(seq 50); do [ -e "$WORK/rx.ready" ] && break; sleep 0.1; done
    ip netns exec bi-a python3 -c "
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
p = bytes(int(sys.argv[4]) - 28); n = int(sys.argv[2]); gap = 1 / float(sys.argv[3]); t = time.monotonic()
for i in range(n):
    s.sendto(p, (sys.argv[1], 5001)); t += gap
    d = t - time.monotonic()
    if d > 0: time.sleep(d)" "$1" "$PACKETS" "$PPS" "$BULK"
    wait "$rx"
    rm -f "$WORK/rx.ready"
}
idle() { sleep "$IDLE"; }

# measure VPN DST PID_A PID_B: warm-up, then the idle, ping and bulk windows.
declare -A R
measure() {
    local vpn=$1 dst=$2 pa=$3 pb=$4 s ia ib
    ip netns exec bi-a ping -c 10 -i 0.1 -W 5 "$dst" >/dev/null 2>&1
    [ "$vpn" = bt ] || sleep "$WARM"
    read -r s ia ib < <(window "$vpn" idle "$pa" "$pb" idle)
    R[$vpn.idle_s]=$s; R[$vpn.idle_a]=$ia; R[$vpn.idle_b]=$ib
    wire "$vpn.ping0"
    read -r s ia ib < <(window "$vpn" ping "$pa" "$pb" pings "$dst")
    wire "$vpn.ping1"
    R[$vpn.ping_s]=$s; R[$vpn.ping_a]=$ia; R[$vpn.ping_b]=$ib
    R[$vpn.ping_rx]=$(grep -o '[0-9]* received' "$WORK/ping.txt" | cut -d' ' -f1)
    R[$vpn.ping_rtt]=$(grep -o 'rtt.*' "$WORK/ping.txt" | cut -d/ -f5)
    read -r s ia ib < <(window "$vpn" bulk "$pa" "$pb" bulk "$dst")
    R[$vpn.bulk_s]=$s; R[$vpn.bulk_a]=$ia; R[$vpn.bulk_b]=$ib
    R[$vpn.bulk_rx]=$(cat "$WORK/rx" 2>/dev/null || echo 0)
}

# --- awl (mtu 1420, QUIC datagrams: like for like with WireGuard) ---
mkdir -p "$WORK/a" "$WORK/b"
write_awl a; write_awl b
A=$("$AWL" -c "$WORK/a.uci" id); B=$("$AWL" -c "$WORK/b.uci" id)
write_awl a "$B" /ip4/192.0.2.2/udp/4363/quic-v1
write_awl b "$A" /ip4/192.0.2.1/udp/4363/quic-v1
cg bi-a awl-a "$AWL" -c "$WORK/a.uci" run; PA=$CG_PID
cg bi-b awl-b "$AWL" -c "$WORK/b.uci" run; PB=$CG_PID
for _ in $(seq 300); do
    "$AWL" -c "$WORK/a.uci" peers --json 2>/dev/null | python3 -c "import json,sys; sys.exit(not any(p['peer_id'] == sys.argv[1] and p['confirmed'] and p['connected'] for p in json.load(sys.stdin)))" "$B" 2>/dev/null && break
    sleep 0.2
done
AWL_DST=$("$AWL" -c "$WORK/a.uci" peers --json | python3 -c "import json,sys; print([p['ip'] for p in json.load(sys.stdin) if p['peer_id'] == sys.argv[1]][0])" "$B")
[ -n "$AWL_DST" ] || { echo "instructions: awl did not connect" >&2; tail -5 "$WORK/awl-a.log" >&2; exit 1; }
measure awl "$AWL_DST" "$PA" "$PB"
R[awl.dgram]=$("$AWL" -c "$WORK/a.uci" metrics 2>/dev/null | awk '/^awl_peer_tx_datagrams_total/ {s += $2} END {print s + 0}')
R[awl.pkts]=$("$AWL" -c "$WORK/a.uci" metrics 2>/dev/null | awk '/^awl_peer_tx_packets_total/ {s += $2} END {print s + 0}')

# Where awl's bulk instructions went: the self cost of every (source file, function) pair that
# callgrind_annotate lists. With fat LTO most functions are inlined into a few big ones, but the
# line tables still name the source file each instruction came from, so the file decides the
# area; lines of Rust's own library (std/core/alloc) go to the area of the function they were
# inlined into, and to "std generics" when the function itself is a library one.
split() { # FILE
    callgrind_annotate --auto=no --inclusive=no --threshold=100 "$1" 2>/dev/null | python3 -c "
import re, sys
AREAS = ['crypto', 'quic', 'kernel', 'awl', 'tokio', 'mem', 'std', 'other']
def by_file(f):
    if '/ring-' in f or '/crypto/ring/' in f: return 'crypto'
    if '/quinn-udp-' in f: return 'kernel'
    if '/quinn-proto-' in f or '/quinn-0.' in f or '/boringtun-' in f: return 'quic'
    if '/tun-' in f: return 'kernel'
    if '/tokio-' in f or '/mio-' in f: return 'tokio'
    if f.startswith('src/') or '/src/' in f and '.cargo/registry' not in f and '/rustc/' not in f and not f.startswith('./'): return 'awl'
    if re.search(r'memmove|memcpy|memset|memcmp|malloc', f): return 'mem'
    if re.search(r'sysv/linux/(recvmsg|sendmsg|recvmmsg|sendmmsg|read|write|readv|writev|epoll_wait|ioctl|syscall|clock_gettime|eventfd)', f): return 'kernel'
    return None
def by_fn(fn):
    if re.search(r'ring_core|_aesni|aes_hw|gcm_|ghash|^ring::|ring::aead', fn): return 'crypto'
    if re.match(r'<?quinn_udp', fn): return 'kernel'
    if re.match(r'<?(quinn|quinn_proto|boringtun)::', fn): return 'quic'
    if re.match(r'<?(tokio|mio)::', fn): return 'tokio'
    if re.match(r'<?(awl)::', fn) or 'awl::' in fn: return 'awl'
    if re.match(r'<?tun::', fn): return 'kernel'
    if re.search(r'^(__)?(mem(cpy|move|set|cmp)|malloc|free|_int_\\w+|realloc|calloc)', fn): return 'mem'
    if re.search(r'^(__libc_)?(sendmsg|recvmsg|sendmmsg|recvmmsg|read|write|readv|writev|epoll_wait|ioctl|syscall|clock_gettime)', fn): return 'kernel'
    if re.match(r'<?(core|alloc|std|hashbrown)::', fn): return 'std'
    return 'other'
tot = dict.fromkeys(AREAS, 0); total = 0
for line in sys.stdin:
    m = re.match(r'\s*([0-9,]+)\s+\([^)]*\)\s+(.*?):(\S.*?)(?: \[.*\])?\s*$', line)
    if not m: continue
    n = int(m.group(1).replace(',', '')); f, fn = m.group(2), m.group(3)
    if 'PROGRAM TOTALS' in line: continue
    total += n
    tot[by_file(f) or by_fn(fn)] += n
for a in AREAS: print(f'{a}\t{tot[a]}')
print(f'total\t{total}')"
}
for side in a b; do
    for w in bulk ping; do split "$WORK/awl-$side-$w.out" >"$WORK/split-awl-$side-$w.tsv"; done
    callgrind_annotate --auto=no --inclusive=yes --threshold=99.9 "$WORK/awl-$side-bulk.out" >"$WORK/incl-$side.txt" 2>/dev/null
done
kill "$PA" "$PB"; wait "$PA" "$PB" 2>/dev/null

# --- boringtun (userspace WireGuard, mtu 1420) ---
BT=$(command -v boringtun-cli)
for n in a b; do
    ip netns exec "bi-$n" env WG_SUDO=1 taskset -c 0 valgrind --tool=callgrind --instr-atstart=no --dump-instr=yes "${CG_ARGS[@]}" \
        --callgrind-out-file="$WORK/bt-$n.out" "$BT" --foreground --disable-drop-privileges "wg$n" \
        >"$WORK/bt-$n.log" 2>&1 &
    PIDS+=($!); eval "BT_$n=$!"
done
for _ in $(seq 100); do [ -S /var/run/wireguard/wga.sock ] && [ -S /var/run/wireguard/wgb.sock ] && break; sleep 0.2; done
wg_link bi-a bi-b wga wgb
ip netns exec bi-a ping -c 3 -W 5 10.99.0.2 >/dev/null 2>&1
# shellcheck disable=SC2154
measure bt 10.99.0.2 "$BT_a" "$BT_b"
for side in a b; do for w in bulk ping; do split "$WORK/bt-$side-$w.out" >"$WORK/split-bt-$side-$w.tsv"; done; done

# --- awl under qemu-user with an instruction-counting plugin (armv7, mipsel) ---
# Only for targets whose binary `bash cross/build.sh TARGET` left in dist/ (static musl, stripped:
# totals only, no split; with --size-flags or without, whichever was built last). boringtun is
# not cross-built, so there is no baseline for these.
QEMU_TARGETS=()
if command -v gcc >/dev/null && gcc -O2 -shared -fPIC -o "$WORK/libqemu-insn.so" "$ROOT/bench/qemu-insn.c" -lpthread 2>/dev/null; then
    for t in ${BENCH_QEMU_TARGETS:-armv7-unknown-linux-musleabihf mipsel-unknown-linux-musl}; do
        case $t in armv7*) q=qemu-arm ;; mipsel*) q=qemu-mipsel ;; aarch64*) q=qemu-aarch64 ;; *) continue ;; esac
        bin=$ROOT/dist/$t/awl
        if [ ! -x "$bin" ] || ! command -v "$q" >/dev/null; then
            echo "instructions: no $bin or no $q (apt-get install qemu-user): $t skipped" >&2; continue
        fi
        v=${t%%-*}
        # A binary with its symbol table (CARGO_PROFILE_RELEASE_STRIP=false bash cross/build.sh
        # TARGET) gets a split by function name of the bulk window.
        QSYMS=; file -b "$bin" | grep -q 'not stripped' && QSYMS=1
        for n in a b; do
            rm -f "$WORK/$v-$n.cnt"
            ip netns exec "bi-$n" taskset -c 0 "$q" -plugin "$WORK/libqemu-insn.so,out=$WORK/$v-$n.cnt${QSYMS:+,syms=1}" "$bin" -c "$WORK/$n.uci" run \
                >"$WORK/$v-$n.log" 2>&1 &
            PIDS+=($!); eval "Q_$n=$!"
        done
        for _ in $(seq 300); do
            "$AWL" -c "$WORK/a.uci" peers --json 2>/dev/null | python3 -c "import json,sys; sys.exit(not any(p['peer_id'] == sys.argv[1] and p['confirmed'] and p['connected'] for p in json.load(sys.stdin)))" "$B" 2>/dev/null && break
            sleep 0.2
        done
        QEMU=1
        # shellcheck disable=SC2154
        measure "$v" "$AWL_DST" "$Q_a" "$Q_b"
        QEMU=
        if [ -n "$QSYMS" ]; then
            for n in a b; do
                python3 - "$WORK/$v-$n-bulk-0.syms" "$WORK/$v-$n-bulk-1.syms" >"$WORK/split-$v-$n-bulk.tsv" <<'EOF'
import collections, re, subprocess, sys
def load(f):
    c = collections.Counter()
    for l in open(f):
        n, _, sym = l.rstrip('\n').partition(' ')
        c[sym] += int(n)
    return c
d = load(sys.argv[2]); d.subtract(load(sys.argv[1]))
names = list(d)
dem = subprocess.run(['c++filt'], input='\n'.join(names), capture_output=True, text=True).stdout.split('\n')
AREAS = ['crypto', 'quic', 'kernel', 'awl', 'tokio', 'mem', 'std', 'other']
def area(fn):
    if re.search(r'ring_core|^<?ring::|ring::aead|aes_nohw|gcm_|chacha|poly1305|HeaderProtectionKey|PacketKey', fn): return 'crypto'
    if re.match(r'<?(quinn_udp|tun)::', fn): return 'kernel'
    if re.match(r'<?(quinn|quinn_proto)::', fn): return 'quic'
    if re.match(r'<?(tokio|mio)::', fn): return 'tokio'
    if 'awl::' in fn: return 'awl'
    if re.search(r'mem(cpy|move|set|cmp)|\bbcmp|^(malloc|free|realloc|calloc|alloc_slot|enframe|get_meta|__libc_(malloc|free|calloc)\w*|__malloc\w*)$', fn): return 'mem'
    if re.match(r'(__)?(sendmsg|recvmsg|sendmmsg|recvmmsg|read|write|readv|writev|epoll_p?wait|ioctl|__syscall\w*|syscall|clock_gettime|__clock_gettime)\w*$', fn): return 'kernel'
    if re.match(r'<?(core|alloc|std|hashbrown)::', fn): return 'std'
    return 'other'
tot = dict.fromkeys(AREAS, 0)
for sym, fn in zip(names, dem):
    tot[area(re.sub(r'\[[0-9a-f]+\]', '', fn))] += d[sym]  # v0 names carry crate hashes
for a in AREAS: print(f'{a}\t{tot[a]}')
print(f'total\t{sum(tot.values())}')
EOF
            done
        fi
        # shellcheck disable=SC2154
        kill "$Q_a" "$Q_b"; wait "$Q_a" "$Q_b" 2>/dev/null
        QEMU_TARGETS+=("$v")
    done
fi

# --- report ---
export PINGS PACKETS BULK
QEMU_DONE="${QEMU_TARGETS[*]}"
export QEMU_DONE
R_DUMP=$(for k in "${!R[@]}"; do printf '%s=%s\n' "$k" "${R[$k]}"; done)
export R_DUMP
{
echo "## Instructions per packet, run $(date -u +%Y-%m-%dT%H:%MZ) (commit $(git -C "$ROOT" rev-parse --short HEAD), $(valgrind --version))"
echo
echo "Command: \`bash bench/instructions.sh\` (${OPT:+BENCH_OPT_LEVEL=$OPT, }BENCH_PINGS=$PINGS, BENCH_PACKETS=$PACKETS at BENCH_PPS=$PPS, BENCH_IDLE=$IDLE, BENCH_WARM=$WARM, BENCH_BULK_BYTES=$BULK)"
echo
python3 - "$WORK" <<'EOF'
import os, sys
R = dict(l.split('=', 1) for l in os.environ['R_DUMP'].splitlines() if '=' in l)
g = lambda k: float(R.get(k) or 0)
P = int(os.environ['PINGS']); N = int(os.environ['PACKETS'])
rows = []
for v, name in [('awl', 'awl (mtu 1420, datagrams)'), ('bt', 'boringtun (mtu 1420)')] + [(q, f'awl {q} (static musl build of cross/build.sh, qemu-user + plugin)') for q in os.environ['QEMU_DONE'].split()]:
    ra, rb = g(v + '.idle_a') / g(v + '.idle_s'), g(v + '.idle_b') / g(v + '.idle_s')
    pr = g(v + '.ping_rx') or 1
    ping = (g(v + '.ping_a') - ra * g(v + '.ping_s') + g(v + '.ping_b') - rb * g(v + '.ping_s')) / pr
    br = g(v + '.bulk_rx') or 1
    tx = (g(v + '.bulk_a') - ra * g(v + '.bulk_s')) / br
    rx = (g(v + '.bulk_b') - rb * g(v + '.bulk_s')) / br
    rows.append((name, ra, rb, ping, tx, rx))
    print(f"raw {v}: idle {R.get(v+'.idle_s')} s A {R.get(v+'.idle_a')} B {R.get(v+'.idle_b')}; "
          f"ping {R.get(v+'.ping_s')} s A {R.get(v+'.ping_a')} B {R.get(v+'.ping_b')}, {R.get(v+'.ping_rx')}/{P} replies, "
          f"avg rtt {R.get(v+'.ping_rtt')} ms while counted; bulk {R.get(v+'.bulk_s')} s A {R.get(v+'.bulk_a')} "
          f"B {R.get(v+'.bulk_b')}, {R.get(v+'.bulk_rx')}/{N} received; packets on the wire in the ping window "
          f"A→B {g(v+'.ping1.tx') - g(v+'.ping0.tx'):.0f}, B→A {g(v+'.ping1.rx') - g(v+'.ping0.rx'):.0f}\n")
B = int(os.environ['BULK'])
print(f'| | idle, instructions/s (A, B) | 64 B ping round trip, both daemons | {B} B packet, sender (TUN → wire) | {B} B packet, receiver (wire → TUN) | {B} B one way, both daemons | per GB one way (both daemons) |')
print('|---|---:|---:|---:|---:|---:|---:|')
for name, ra, rb, ping, tx, rx in rows:
    print(f'| {name} | {ra:,.0f}, {rb:,.0f} | {ping:,.0f} | {tx:,.0f} | {rx:,.0f} | {tx + rx:,.0f} | {(tx + rx) / B * 1e9:.3g} |')
a, b = rows[0], rows[1]
print(f'| awl / boringtun | | {a[3] / b[3]:.2f} | {a[4] / b[4]:.2f} | {a[5] / b[5]:.2f} | {(a[4] + a[5]) / (b[4] + b[5]):.2f} | |')
print()
w = sys.argv[1]
# Code footprint of a round trip: at a ping's pace each packet finds the caches and TLBs cold,
# so what a wake-up costs follows the code lines and pages it touches more than its
# instruction count. Per daemon, the 64 B lines and 4 KiB pages of code (each object: the
# daemon, libc) holding an instruction that ran at least PINGS/2 times in the ping window:
# the round trip's own path, not the idle timers' (which run a few dozen times in it).
def footprint(f):
    import collections, re
    cnt = collections.Counter(); obs = {}; ob = None; addr = 0; after = False
    for l in open(f):
        if l.startswith(('ob=', 'cob=')):
            m = re.match(r'c?ob=\((\d+)\)(?: (.*))?', l.strip())
            if m.group(2): obs[m.group(1)] = m.group(2)
            if l.startswith('ob='): ob = obs[m.group(1)]
            continue
        if l.startswith('calls='):
            after = True  # the next line is the call's inclusive cost, not this address's
            continue
        t = l.split()
        if not t: continue
        x = t[0]
        if x.startswith('0x'): addr = int(x, 16)
        elif x[0] in '+-' and x[1:].isdigit(): addr += int(x)
        elif x != '*': continue
        if after: after = False; continue
        if len(t) >= 3: cnt[(ob, addr)] += int(t[2])
    hot = [k for k, v in cnt.items() if v >= P / 2]
    lines = {(o, x >> 6) for o, x in hot}; pages = {(o, x >> 12) for o, x in hot}
    own = lambda s: sum(1 for o, _ in s if o and not re.search(r'/lib[^/]*\.so', o))
    return len(lines), own(lines), len(pages), own(pages)
print(f'Code footprint of a ping round trip, per daemon: 64 B lines and 4 KiB pages of code with an instruction that ran at least {P // 2} times in the ping window ({P} round trips), all objects (in brackets: the daemon\'s own binary, the rest is libc)\n')
print('| | lines, A | lines, B | pages, A | pages, B |')
print('|---|---:|---:|---:|---:|')
for v, name in (('awl', 'awl (mtu 1420, datagrams)'), ('bt', 'boringtun (mtu 1420)')):
    fa, fb = (footprint(f'{w}/{v}-{s}-ping.out') for s in 'ab')
    print(f'| {name} | {fa[0]} ({fa[1]}) | {fb[0]} ({fb[1]}) | {fa[2]} ({fa[3]}) | {fb[2]} ({fb[3]}) |')
print()
LABELS = {
    'crypto': 'crypto: ring AEAD seal/open (awl: AES-128-GCM on the fast path where both ends have AES instructions, else ChaCha20-Poly1305; AES-128-GCM and header protection in QUIC; boringtun: ChaCha20-Poly1305)',
    'quic': 'protocol: QUIC framing, quinn + quinn_proto (boringtun: its WireGuard code)',
    'kernel': 'kernel boundary: quinn_udp, tun crate, libc syscall wrappers (user side only)',
    'awl': 'awl data plane and node (awl::, our src/)',
    'tokio': 'tokio runtime (scheduler, wakers, timers, I/O readiness)',
    'mem': 'libc memcpy/memset, malloc/free',
    'std': 'std generics called as functions (SipHash, slice indexing, BTreeMap, u64::pow, ...)',
    'other': 'other (bytes, tracing, hashbrown, rustls glue, ...)',
}
def load(name):
    d = dict(l.rstrip('\n').split('\t') for l in open(f'{w}/split-{name}.tsv'))
    return {k: float(v) for k, v in d.items()}
for win, per, div in (('bulk', f'{B} B packet', lambda v: g(v + '.bulk_rx') or 1), ('ping', 'ping round trip', lambda v: g(v + '.ping_rx') or 1)):
    cols = [('awl', 'a'), ('awl', 'b'), ('bt', 'a'), ('bt', 'b')]
    data = [load(f'{v}-{s}-{win}') for v, s in cols]
    print(f'Split of the {win} window, instructions per {per} (self cost of each source line\'s area, whole window: idle is included, see its rate above)\n')
    print('| area | awl A (sender) | awl B (receiver) | boringtun A | boringtun B |' if win == 'bulk' else '| area | awl A | awl B | boringtun A | boringtun B |')
    print('|---|---:|---:|---:|---:|')
    for k, label in LABELS.items():
        print(f'| {label} | ' + ' | '.join(f'{d.get(k, 0) / div(v):,.0f}' for d, (v, s) in zip(data, cols)) + ' |')
    print('| total | ' + ' | '.join(f'{d.get("total", 0) / div(v):,.0f}' for d, (v, s) in zip(data, cols)) + ' |')
    print()
for q in os.environ['QEMU_DONE'].split():
    if not os.path.exists(f'{w}/split-{q}-a-bulk.tsv'): continue
    data = [load(f'{q}-{s}-bulk') for s in 'ab']
    n = g(q + '.bulk_rx') or 1
    print(f'awl {q}: split of the bulk window by the symbol of each executed block (function names only: what LTO inlined counts for the function it went into), instructions per {B} B packet\n')
    print('| area | sender A | receiver B |')
    print('|---|---:|---:|')
    for k, label in LABELS.items():
        print(f'| {label} | ' + ' | '.join(f'{d.get(k, 0) / n:,.0f}' for d in data) + ' |')
    print('| total | ' + ' | '.join(f'{d.get("total", 0) / n:,.0f}' for d in data) + ' |')
    print()
EOF
echo "awl packets A sent in QUIC datagrams / in all: ${R[awl.dgram]:-} / ${R[awl.pkts]:-}."
for side in a b; do
    echo
    echo "awl bulk window, daemon $side: inclusive cost (callgrind_annotate --inclusive=yes), selected entries"
    echo
    echo '```'
    grep -E '\[' "$WORK/incl-$side.txt" | grep -E 'PROGRAM TOTALS|LessSafeKey::(open_in_place|seal_in_place_separate_tag)|HeaderProtectionKey::xor_in_place|PacketKey.*(en|de)crypt_in_place|quinn_proto::connection::Connection::(poll_transmit|handle_event|process_payload)|quinn::endpoint::RecvState::poll_socket|quinn_udp::imp::UdpSocketState::(send|recv)|awl::dataplane::(Dataplane::(route_outbound|resolve|inbound|deliver_one)|tun::(reader|writer))|awl::dataplane::packet::(Ipv4::fill_l4_checksum|sum16|rewrite_with)|awl::mesh::peers::PeerTable::by_ip|sip::Hasher|(__libc_)?(sendmsg|recvmsg|sendmmsg|recvmmsg|write|read|writev|readv|epoll_wait)(@@GLIBC\S*)? \[|tokio::runtime::scheduler::current_thread::Context::(run_task|park) ' | sed -E "s#[^ ]*/registry/src/[^/]+/##; s#/rustc/[0-9a-f]+/##; s#$ROOT/##; s# \\[[^]]*\\]\$##" | head -40
    echo '```'
done
} | tee "$ROOT/bench/last-instructions.md"

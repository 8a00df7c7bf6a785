#!/usr/bin/env bash
# Where a ping round trip's CPU goes at a ping's pace: awl against boringtun, side by side.
#
#   bash bench/pace.sh               # as root; needs perf; builds awl --release
#   BENCH_PINGS=100 BENCH_SPACING=0.002 bash bench/pace.sh
#
# Two pairs of namespaces (one for awl, one for boringtun), every daemon pinned to CPU 0. For
# each VPN, BENCH_PINGS pings BENCH_SPACING s apart (default 60, 20 ms: each packet finds the
# daemons' caches cold, unlike the 2 ms of bench/run.sh's CPU figure) are recorded with the
# kernel's tracepoints (perf: sched_switch and raw syscall entry/exit, all CPUs). From them, the
# daemons' time on the CPU per round trip, split into user space and each system call, and
# their wake-ups (switches in) per round trip. The tracepoints slow every syscall a little, the
# same for both VPNs. Prints a Markdown table.
#
#   BENCH_PROFILE=1 BENCH_PINGS=3000 BENCH_SPACING=0.002 bash bench/pace.sh
#   BENCH_TCP=3 bash bench/pace.sh   # one TCP flow through each VPN in turn, 3 rounds, and
#                                    # each thread's context switches per second of flow;
#                                    # per awl round, its retransmissions and the counters
#                                    # that moved (awl's packets and drops, the kernel's)
#
# samples CPU 0 instead (perf cpu-clock at 20 kHz, call graphs, one VPN after the other) and
# splits the daemons' time into user space and kernel, with the kernel's route lookups
# (fib_table_lookup: for a UDP send, or for a packet arriving) and clock reads apart.
#
#   BENCH_TCP=1 BENCH_PROFILE=1 bash bench/pace.sh   # one flow each, CPU by family per GB
#   BENCH_FLOWS=4 BENCH_TCP=3 ...      # parallel flows per round (iperf3 -P; default 1)
#   BENCH_UDP=500M bash bench/pace.sh  # one UDP flow through awl; the counters that moved
#   BENCH_IDLE=10 bash bench/pace.sh   # both VPNs idle: each thread's wake-ups and CPU per s
#   BENCH_SINGLES=20 bash bench/pace.sh  # single pings after 3 s idle, in turns: each VPN's
#                                      # mean, median, max and how many over 1 ms
#   BENCH_EXTRA_PEERS=9 ...             # each awl node also has 9 configured peers that never
#                                      # answer (as bench/run.sh's nodes)
#   DGRAM=0 ...                        # awl on the stream tunnel (what AWL peers get)
#   BENCH_AWL=<binary> ...             # another awl build (for A/B); BENCH_KEEP=1 keeps $WORK
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PINGS=${BENCH_PINGS:-60}
SPACING=${BENCH_SPACING:-0.02}
[ "$(id -u)" = 0 ] || { echo "pace: needs root (namespaces, TUN, perf)"; exit 1; }
command -v wg >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wireguard-tools >/dev/null 2>&1
for t in perf taskset ping ip wg python3; do command -v $t >/dev/null || { echo "pace: $t missing"; exit 1; }; done
export PATH="$HOME/.cargo/bin:$PATH"
command -v boringtun-cli >/dev/null || cargo install boringtun-cli --locked >/dev/null 2>&1 ||
    { echo "pace: cannot install boringtun-cli"; exit 1; }
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin awl || exit 1
AWL=${BENCH_AWL:-$ROOT/target/release/awl}
WORK=$(mktemp -d /tmp/awl-pace.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for n in pa pb pc pd; do ip netns del "$n" 2>/dev/null; done
    if [ -n "${BENCH_KEEP:-}" ]; then echo "pace: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
# awl on pa-pb, boringtun on pc-pd; 192.0.2.1-2 on each wire.
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
veth_pair pa pb
veth_pair pc pd
mkdir -p "$WORK/a" "$WORK/b"; write_awl a; write_awl b
A=$("$AWL" -c "$WORK/a.uci" id 2>/dev/null); B=$("$AWL" -c "$WORK/b.uci" id 2>/dev/null)
write_awl a "$B" /ip4/192.0.2.2/udp/4363/quic-v1
write_awl b "$A" /ip4/192.0.2.1/udp/4363/quic-v1
# BENCH_EXTRA_PEERS=N: N more configured peers on each node that never answer, as bench/run.sh's
# nodes have (9): their redials run beside the pings.
for i in $(seq "${BENCH_EXTRA_PEERS:-0}"); do
    f=$("$AWL" -d "$WORK/fake$i" id 2>/dev/null)
    for n in a b; do
        printf "config peer\n\toption peer_id '%s'\n\tlist address '/ip4/192.0.2.99/udp/4363/quic-v1'\n" "$f" >>"$WORK/$n.uci"
    done
done
ip netns exec pa taskset -c 0 "$AWL" -c "$WORK/a.uci" run >"$WORK/a.log" 2>&1 & PIDS+=($!)
ip netns exec pb taskset -c 0 "$AWL" -c "$WORK/b.uci" run >"$WORK/b.log" 2>&1 & PIDS+=($!)
ip netns exec pc env WG_SUDO=1 taskset -c 0 boringtun-cli --foreground --disable-drop-privileges wga >"$WORK/bt-a.log" 2>&1 & PIDS+=($!)
ip netns exec pd env WG_SUDO=1 taskset -c 0 boringtun-cli --foreground --disable-drop-privileges wgb >"$WORK/bt-b.log" 2>&1 & PIDS+=($!)
sleep 1
wg_link pc pd wga wgb
ip netns exec pc ping -c 3 -i 0.2 10.99.0.2 >/dev/null 2>&1
for _ in $(seq 150); do
    "$AWL" -c "$WORK/a.uci" peers --json 2>/dev/null | python3 -c "import json,sys; sys.exit(not any(p['peer_id'] == sys.argv[1] and p['confirmed'] and p['connected'] for p in json.load(sys.stdin)))" "$B" 2>/dev/null && break
    sleep 0.2
done
DST=$("$AWL" -c "$WORK/a.uci" peers --json | python3 -c "import json,sys; print([p['ip'] for p in json.load(sys.stdin) if p['peer_id'] == sys.argv[1]][0])" "$B") ||
    { echo "pace: awl did not connect"; exit 1; }
# Past awl's start-up work (AutoNAT dials back 20-30 s after start) and the twin connection's close.
sleep "${BENCH_WARM:-35}"

if [ -n "${BENCH_IDLE:-}" ]; then
    # Both pairs idle (connected, no traffic) for BENCH_IDLE s: each daemon thread's wake-ups
    # (context switches) and CPU, per second. What a router pays for being in a mesh at all,
    # and what lies under the CPU per round trip of pings 20 ms apart.
    per_thread() { # NAME PID: "name/thread switches cpu_ns" per thread
        local t
        for t in /proc/"$2"/task/*; do
            echo "$1/$(cat "$t/comm")@${t##*/} $(awk '/ctxt_switches/ {s += $2} END {print s}' "$t/status") $(cut -d' ' -f1 "$t/schedstat")"
        done
    }
    snap() { per_thread awl-a "${PIDS[0]}"; per_thread awl-b "${PIDS[1]}"; per_thread bt-a "${PIDS[2]}"; per_thread bt-b "${PIDS[3]}"; }
    s0=$(snap | sort); sleep "$BENCH_IDLE"; s1=$(snap | sort)
    echo "Idle ${BENCH_IDLE} s, per second: wake-ups and CPU µs of each daemon thread that woke"
    join <(echo "$s0") <(echo "$s1") | awk -v t="$BENCH_IDLE" '$4 != $2 {printf "  %s: %.1f wake-ups, %.0f µs\n", $1, ($4 - $2) / t, ($5 - $3) / t / 1000}'
    exit 0
fi

if [ -n "${BENCH_SINGLES:-}" ]; then
    # BENCH_SINGLES rounds, each a single `ping -c 1` through awl and one through boringtun,
    # each after 3 s of quiet: the figure of run.sh's "single ping after 3 s idle", with
    # enough samples to count the ones over 1 ms.
    one() { ip netns exec "$1" ping -c 1 -W 1 "$2" 2>/dev/null | sed -n 's/.*time=\([0-9.]*\).*/\1/p'; }
    aw=(); bt=(); at=(); t00=$(date +%s%N)
    for _ in $(seq "$BENCH_SINGLES"); do
        sleep 3; at+=("$(( ($(date +%s%N) - t00) / 1000000 ))"); aw+=("$(one pa "$DST")")
        sleep 3; bt+=("$(one pc 10.99.0.2)")
    done
    for v in aw bt; do
        declare -n xs=$v
        printf '%s\n' "${xs[@]}" | sort -n | awk -v n="$v" '{a[NR] = $1; s += $1; if ($1 > 1) o++}
            END {printf "%s: %d single pings after 3 s idle, mean %.3f ms, median %.3f, max %.3f, over 1 ms: %d\n", n, NR, s / NR, a[int((NR + 1) / 2)], a[NR], o}'
    done
    echo "awl, in order: ${aw[*]}"
    echo "awl, each ping's ms since the loop began (for one over 1 ms, what else ran then): ${at[*]}"
    exit 0
fi

# awl's packet counters on both nodes and each namespace's kernel counters (a full socket
# buffer, a full TUN queue), one per line; and those that moved between two such snapshots.
metrics() { "$AWL" -c "$WORK/$1.uci" metrics 2>/dev/null | grep -E '^awl_(fast_packets_total|peer_(tx|rx)_(dropped|delay_dropped|packets)_total)' | sed -E 's/peer="[^"]*",alias=//' | sed "s/^/$1 /"; }
kernel() { ip netns exec "$1" cat /proc/net/snmp /proc/net/snmp6 2>/dev/null | awk -v ns="$1" '/^Udp: [0-9]/ {print ns, "Udp4InErrors", $4; print ns, "Udp4RcvbufErrors", $6; print ns, "Udp4SndbufErrors", $7} /^Udp6(InErrors|RcvbufErrors|SndbufErrors)/ {print ns, $1, $2}'
    ip -n "$1" -s link show awl0 2>/dev/null | awk -v ns="$1" '/RX:/ {getline; print ns, "awl0_rx_dropped", $4} /TX:/ {getline; print ns, "awl0_tx_dropped", $4}'; }
moved() { # BEFORE AFTER
    echo "Counters that moved (node or namespace, counter, before -> after):"
    join <(echo "$1" | awk '{k=$1; for (i=2;i<NF;i++) k=k"|"$i; print k, $NF}' | sort) \
         <(echo "$2" | awk '{k=$1; for (i=2;i<NF;i++) k=k"|"$i; print k, $NF}' | sort) |
        awk '$2 != $3 {gsub(/\|/, " ", $1); print "  " $1 ": " $2 " -> " $3}'
}

if [ -n "${BENCH_UDP:-}" ]; then
    # One UDP flow through awl at BENCH_UDP (e.g. 500M; 1200 B datagrams, as bench/run.sh),
    # and where the lost ones went: awl's drop counters on both nodes and each namespace's
    # kernel counters (a full socket buffer, a full TUN queue).
    command -v iperf3 >/dev/null || { echo "pace: iperf3 missing"; exit 1; }
    before=$( { metrics a; metrics b; kernel pa; kernel pb; } )
    ip netns exec pb iperf3 -s -D -1 >/dev/null 2>&1; sleep 0.3
    ip netns exec pa taskset -c 1 iperf3 -c "$DST" -u -b "$BENCH_UDP" -l 1200 -t 5 -J >"$WORK/u.json" 2>/dev/null
    python3 -c "import json,sys; e=json.load(open(sys.argv[1]))['end']['sum']; print(f\"UDP at {sys.argv[2]}: {e['lost_packets']} of {e['packets']} lost ({e['lost_percent']:.3f} %)\")" "$WORK/u.json" "$BENCH_UDP"
    after=$( { metrics a; metrics b; kernel pa; kernel pb; } )
    moved "$before" "$after"
    exit 0
fi

if [ -n "${BENCH_TCP:-}" ]; then
    # One TCP flow through each VPN in turn, BENCH_TCP rounds of 5 s (iperf3 on CPU 1, the
    # daemons on CPU 0, as in bench/run.sh): Mbit/s and both daemons' CPU seconds per GB.
    command -v iperf3 >/dev/null || { echo "pace: iperf3 missing"; exit 1; }
    ip netns exec pb iperf3 -s -D -1 >/dev/null 2>&1 || true
    cpu_ns() { local s=0 p t; for p in "$@"; do for t in /proc/"$p"/task/*/schedstat; do s=$((s + $(cut -d' ' -f1 "$t"))); done; done; echo "$s"; }
    # Context switches (voluntary and not) of each daemon's threads, as "node/thread count".
    switches() { # NAME PIDS...
        local name=$1 p t; shift
        for p in "$@"; do
            for t in /proc/"$p"/task/*; do
                echo "$name$p/$(cat "$t/comm")@${t##*/} $(awk '/ctxt_switches/ {s += $2} END {print s}' "$t/status")"
            done
        done | sort
    }
    flow() { # NETNS DST PIDS...
        local ns=$1 dst=$2; shift 2
        local c0; c0=$(cpu_ns "$@")
        local s0; s0=$(switches "$ns" "$@")
        ip netns exec "$ns" taskset -c 1 iperf3 -c "$dst" -t 5 -P "${BENCH_FLOWS:-1}" -J >"$WORK/i.json" 2>/dev/null || { echo "0 0"; return; }
        local c1; c1=$(cpu_ns "$@")
        join <(echo "$s0") <(switches "$ns" "$@") | awk '{print $1, $3 - $2}' >>"$WORK/switches.txt"
        python3 -c "import json,sys; e=json.load(open(sys.argv[1]))['end']['sum_received']; print(round(e['bits_per_second']/1e6), round((int(sys.argv[2])/1e9)/(e['bytes']/1e9), 2))" "$WORK/i.json" "$((c1 - c0))"
    }
    echo "| round | awl Mbit/s | awl CPU s/GB | boringtun Mbit/s | boringtun CPU s/GB |"
    echo "|---|---:|---:|---:|---:|"
    if [ -n "${BENCH_PROFILE:-}" ]; then
        # Where one flow's CPU goes: CPU 0 (both daemons) sampled during one round per VPN,
        # each sample's leaf put in a family (crypto, QUIC, runtime, ours, kernel by syscall).
        tcp_prof() { # NAME NETNS DST
            perf record -q -C 0 -g -e cpu-clock -F 10000 -o "$WORK/$1.prof" -- \
                ip netns exec "$2" taskset -c 1 iperf3 -c "$3" -t 5 -P "${BENCH_FLOWS:-1}" -J >"$WORK/$1.json" 2>/dev/null
            perf script -i "$WORK/$1.prof" 2>/dev/null >"$WORK/$1.stacks"
        }
        ip netns exec pb iperf3 -s -D -1 >/dev/null 2>&1; sleep 0.3
        tcp_prof awl pa "$DST"
        ip netns exec pd iperf3 -s -D -1 >/dev/null 2>&1; sleep 0.3
        tcp_prof boringtun pc 10.99.0.2
        python3 - "$WORK" "$ROOT" <<'EOF2'
import collections, json, sys
work = sys.argv[1]
sys.path.insert(0, sys.argv[2] + "/bench")
from perf_stacks import stacks
FAMILIES = (("crypto", ("chacha", "poly1305", "aes", "gcm", "ring::", "gfmul", "ghash")),
            ("QUIC (quinn)", ("quinn",)), ("runtime (tokio)", ("tokio",)),
            ("boringtun", ("boringtun",)), ("awl", ("awl::",)))
SYSCALL = ("__x64_sys_", "__do_sys_", "ksys_", "__sys_", "do_sys_", "do_epoll_", "do_writev")
def family(leaf, dso, stack):
    if dso == "kernel.kallsyms":
        # The outermost frame that names the system call (the kernel inlines some entries).
        sc = next((f for f, _ in reversed(stack) if f.startswith(SYSCALL)), None)
        if sc is None:
            return "kernel: outside syscalls"
        return "kernel: " + (next(sc[len(p):] for p in SYSCALL if sc.startswith(p)) or sc)
    low = leaf.lower()
    for name, keys in FAMILIES:
        if any(k in low for k in keys):
            return name
    return "libc, std, other" if dso.endswith(("libc.so.6", "ld-linux-x86-64.so.2")) or "core::" in leaf or "alloc::" in leaf or "std::" in leaf else "other user"
rows = {}
for name, comm in (("awl", "awl"), ("boringtun", "boringtun")):
    c = collections.Counter(family(s[0][0], s[0][1], s) for s in stacks(f"{work}/{name}.stacks", comm))
    gb = json.load(open(f"{work}/{name}.json"))["end"]["sum_received"]["bytes"] / 1e9
    rows[name] = (c, gb)
print("One TCP flow, 5 s, CPU 0 sampled at 10 kHz (both daemons), CPU seconds per GB moved:")
print()
print("Mbit/s: " + ", ".join(f"{n} {rows[n][1] * 8e3 / 5:.0f}" for n in rows))
print()
print("| | awl | boringtun |")
print("|---|---:|---:|")
keys = collections.Counter()
for c, _ in rows.values():
    keys.update(c)
def per_gb(n, k):
    c, gb = rows[n]
    return f"{c[k] / 10000 / gb:.2f}" if gb else "-"
print("| all | " + " | ".join(f"{sum(rows[n][0].values()) / 10000 / rows[n][1]:.2f}" for n in rows) + " |")
for k, _ in keys.most_common(int(__import__("os").environ.get("BENCH_TOP", "14"))):
    print(f"| {k} | " + " | ".join(per_gb(n, k) for n in rows) + " |")
EOF2
        exit 0
    fi
    for r in $(seq "$BENCH_TCP"); do
        ip netns exec pb iperf3 -s -D -1 >/dev/null 2>&1; sleep 0.3
        c0=$( { metrics a; metrics b; kernel pa; kernel pb; } )
        a=$(flow pa "$DST" "${PIDS[0]}" "${PIDS[1]}")
        c1=$( { metrics a; metrics b; kernel pa; kernel pb; } )
        retx=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['end']['sum_sent'].get('retransmits', '-'))" "$WORK/i.json")
        counters+=$'\n'"awl round $r: TCP retransmits $retx; $(moved "$c0" "$c1" | tail -n +2 | sed 's/^  //' | paste -sd ';' | sed 's/;/; /g')"
        ip netns exec pd iperf3 -s -D -1 >/dev/null 2>&1; sleep 0.3
        b=$(flow pc 10.99.0.2 "${PIDS[2]}" "${PIDS[3]}")
        echo "| $r | ${a% *} | ${a#* } | ${b% *} | ${b#* } |"
    done
    echo "${counters:-}" | sed '/^$/d'
    # Per thread and second of flow: a thread that wakes per packet or per ACK shows here.
    echo
    echo "Context switches per second of flow, by daemon and thread (pa: awl's flows, pc: boringtun's; pid, then thread):"
    awk -v s=$((5 * BENCH_TCP)) '{split($1, k, "@"); n[k[1]] += $2} END {for (t in n) printf "  %s %d\n", t, n[t] / s}' \
        "$WORK/switches.txt" | sort
    exit 0
fi

if [ -n "${BENCH_PROFILE:-}" ]; then
    prof() { # NAME NETNS DST
        perf record -q -a -C 0 -g -e cpu-clock -F 20000 -o "$WORK/$1.prof" -- \
            ip netns exec "$2" ping -q -c "$PINGS" -i "$SPACING" "$3" >/dev/null 2>&1
        perf script -i "$WORK/$1.prof" 2>/dev/null >"$WORK/$1.stacks"
    }
    prof awl pa "$DST"
    prof boringtun pc 10.99.0.2
    python3 - "$WORK" "$PINGS" "$SPACING" "$ROOT" <<'EOF'
import collections, sys
work, pings, spacing = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sys.path.insert(0, sys.argv[4] + "/bench")
from perf_stacks import stacks
PERIOD_US = 50  # 20 kHz

def profile(path, comm):
    c = collections.Counter()
    def flush(stack):
        if not stack:
            return
        leaf, dso = stack[0]
        c["all"] += 1
        c["kernel" if dso == "kernel.kallsyms" else "user"] += 1
        if leaf == "fib_table_lookup":
            out = any(f.startswith("ip_route_output") for f, _ in stack)
            c["fib out" if out else "fib in"] += 1
        if "clock_gettime" in leaf or leaf == "read_tsc":
            c["clock"] += 1
        sys_call = next((f for f, _ in reversed(stack) if f.startswith("__x64_sys_")), None)
        if sys_call:
            c["syscall " + sys_call[len("__x64_sys_"):]] += 1
        elif dso == "kernel.kallsyms":
            c["kernel outside syscalls"] += 1
        c["leaf " + leaf] += 1
    for stack in stacks(path, comm):
        flush(stack)
    return c

rows = {"awl": profile(f"{work}/awl.stacks", "awl"),
        "boringtun": profile(f"{work}/boringtun.stacks", "boringtun-cli")}
print(f"{pings} pings {spacing * 1000:g} ms apart, CPU 0 sampled at 20 kHz, both daemons, µs per round trip:")
print()
print("| | awl | boringtun |")
print("|---|---:|---:|")
for key, label in (("all", "on the CPU, all"), ("user", "user space (with libc and vDSO)"),
                   ("kernel", "kernel"), ("fib out", "of which route lookups for a send"),
                   ("fib in", "of which route lookups for a packet arriving"),
                   ("clock", "clock reads (clock_gettime, read_tsc)")):
    print(f"| {label} | " + " | ".join(f"{rows[n][key] * PERIOD_US / pings:.1f}" for n in rows) + " |")
# Where the time is: each system call (the samples under it, kernel and user), then the
# functions most samples land in, for whoever aims next.
top = int(__import__("os").environ.get("BENCH_TOP", "12"))
for prefix, title in (("syscall ", "system call"), ("leaf ", "function (leaf)")):
    keys = collections.Counter()
    for c in rows.values():
        for k, v in c.items():
            if k.startswith(prefix) or (prefix == "syscall " and k == "kernel outside syscalls"):
                keys[k] += v
    print()
    print(f"| {title} | awl | boringtun |")
    print("|---|---:|---:|")
    for k, _ in keys.most_common(top):
        print(f"| {k.removeprefix(prefix)} | " + " | ".join(f"{rows[n][k] * PERIOD_US / pings:.1f}" for n in rows) + " |")
EOF
    exit 0
fi

trace() { # NAME NETNS DST
    perf record -q -a -e sched:sched_switch,raw_syscalls:sys_enter,raw_syscalls:sys_exit \
        -o "$WORK/$1.perf" -- ip netns exec "$2" ping -q -c "$PINGS" -i "$SPACING" "$3" >"$WORK/$1.ping" 2>/dev/null
    perf script -i "$WORK/$1.perf" -F comm,tid,time,event,trace 2>/dev/null >"$WORK/$1.txt"
}
trace awl pa "$DST"
trace boringtun pc 10.99.0.2

python3 - "$WORK" "$PINGS" "$SPACING" "${PIDS[0]}" "${PIDS[1]}" "${PIDS[2]}" "${PIDS[3]}" <<'EOF'
import collections, re, sys
work, pings, spacing = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
# Syscall numbers (x86_64) the two daemons use on the packet path.
NAMES = {0: "read", 1: "write", 3: "close", 7: "poll", 16: "ioctl", 20: "writev", 24: "sched_yield",
         41: "socket", 44: "sendto", 45: "recvfrom", 46: "sendmsg", 202: "futex",
         232: "epoll_wait", 233: "epoll_ctl", 299: "recvmmsg", 332: "statx"}
line_re = re.compile(r"^\s*(.+?)\s+(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)$")

def tids_of(pid):
    import os
    try:
        return {int(t) for t in os.listdir(f"/proc/{pid}/task")}
    except OSError:
        return set()

def account(path, tids):
    """Seconds on the CPU of the given threads, by user space and by syscall; switches in;
    calls of each syscall."""
    where = {}  # tid -> [kind, since or None]; kind: "user" or a syscall number
    acc = collections.Counter()
    calls = collections.Counter()
    wakeups = 0
    by_thread = collections.Counter()
    def charge(tid, t):
        w = where.get(tid)
        if w and w[1] is not None:
            acc[w[0]] += t - w[1]
    for line in open(path):
        m = line_re.match(line)
        if not m:
            continue
        _, tid, t, event, rest = m.groups()
        tid, t = int(tid), float(t)
        if event == "sched:sched_switch":
            prev = int(re.search(r"prev_pid=(\d+)", rest).group(1))
            nxt = int(re.search(r"next_pid=(\d+)", rest).group(1))
            if prev in tids:
                charge(prev, t)
                if prev in where:
                    where[prev][1] = None
            if nxt in tids:
                wakeups += 1
                by_thread[re.search(r"next_comm=(\S+)", rest).group(1)] += 1
                where.setdefault(nxt, ["user", None])[1] = t
            continue
        if tid not in tids:
            continue
        charge(tid, t)
        nr = int(rest.split()[1])
        calls[nr] += event.endswith("sys_enter")
        where[tid] = [nr if event.endswith("sys_enter") else "user", t]
    return acc, wakeups, by_thread, calls

rows = {}
for name, pids in (("awl", sys.argv[4:6]), ("boringtun", sys.argv[6:8])):
    tids = set().union(*(tids_of(p) for p in pids))
    rows[name] = account(f"{work}/{name}.txt", tids)
    ping = open(f"{work}/{name}.ping").read()
    m = re.search(r"= [\d.]+/([\d.]+)/", ping)
    rows[name] += (m.group(1) if m else "-",)

kinds = sorted({k for acc, *_ in rows.values() for k in acc},
               key=lambda k: -sum(rows[n][0][k] for n in rows))
print(f"{pings} pings {spacing * 1000:g} ms apart, both daemons, µs per round trip (and calls per round trip):")
print()
print("| | awl | boringtun |")
print("|---|---:|---:|")
us = lambda s: f"{s / pings * 1e6:.0f}"
print("| on the CPU, all | " + " | ".join(us(sum(rows[n][0].values())) for n in rows) + " |")
for k in kinds:
    if all(rows[n][0][k] / pings < 0.5e-6 for n in rows):
        continue
    label = "user space" if k == "user" else NAMES.get(k, f"syscall {k}")
    print(f"| {label} | " + " | ".join(us(rows[n][0][k]) + ("" if k == "user" else f" ({rows[n][3][k] / pings:.2f})") for n in rows) + " |")
print("| wake-ups (switches in) per round trip | " + " | ".join(f"{rows[n][1] / pings:.1f}" for n in rows) + " |")
print("| wake-ups by thread | " + " | ".join(", ".join(f"{t} {c / pings:.1f}" for t, c in rows[n][2].most_common()) for n in rows) + " |")
print("| ping RTT mean, ms (traced) | " + " | ".join(rows[n][4] for n in rows) + " |")
EOF

"""Single pings of bench/first.sh: each ping's median and count over 1 ms and, where the run
was traced, where each ping's time in the tunnel went on CPU 0 (both daemons' CPU).

Time in the tunnel: from the ping's write to the TUN waking a daemon thread to a daemon thread
waking the ping with the reply (sched_waking, monotonic clock). Split into the daemons' own time
on CPU 0, CPU 0 idle (the time a wake-up takes to land) and other tasks holding CPU 0; a ping
over 1 ms is named by the largest part.

    python3 bench/first_trace.py DIR NAME
"""
import bisect
import collections
import os
import re
import statistics
import sys

D, NAME = sys.argv[1], sys.argv[2]
DAEMON = re.compile(r'^(awl|boringtun)')
LIMIT = 1.0  # ms

pings = []  # (ping number, rtt ms, wall-clock time printed)
for line in open(f'{D}/pings.txt'):
    m = re.search(r'^\d+ (\d) \[([\d.]+)\].*time=([0-9.]+)', line)
    if m:
        pings.append((int(m.group(1)), float(m.group(3)), float(m.group(2)), line.split()[0]))
print(f'**{NAME}** (ping: median ms, over {LIMIT:g} ms, of n)', end=': ')
print('; '.join(
    f'{k}: {statistics.median(r) :.3f}, {sum(x > LIMIT for x in r)} of {len(r)}'
    for k in range(1, 6) if (r := [p[1] for p in pings if p[0] == k])))
if not os.path.exists(f'{D}/sched.txt'):
    sys.exit(0)

off = float(open(f'{D}/offset').read())
rx = re.compile(r'^\s*(.+?)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)$')
sw = re.compile(r'prev_comm=(.*?) prev_pid=\d+.*==> next_comm=')
wk = re.compile(r'comm=(.*?) pid=\d+')
segs, last, wakes = [], None, []  # CPU 0's (start, end, task); every waking (t, waker, woken)
for line in open(f'{D}/sched.txt'):
    m = rx.match(line)
    if not m:
        continue
    t, cpu, ev = float(m.group(5)), int(m.group(4)), m.group(6)
    if ev == 'sched:sched_switch' and cpu == 0:
        s = sw.search(m.group(7))
        if s and last is not None:
            segs.append((last, t, s.group(1)))
        last = t
    elif ev == 'sched:sched_waking':
        s = wk.search(m.group(7))
        if s:
            wakes.append((t, m.group(1), s.group(1)))
wt, st = [w[0] for w in wakes], [s[0] for s in segs]


def cpu0(a, b):
    """Who had CPU 0 between a and b, in s."""
    out = collections.Counter()
    i = max(0, bisect.bisect_left(st, a) - 1)
    while i < len(segs) and segs[i][0] < b:
        s, e, who = segs[i]
        if (ov := min(e, b) - max(s, a)) > 0:
            key = 'daemon' if DAEMON.match(who) else 'idle' if who.startswith('swapper') else re.sub(r'[/:].*', '', who)
            out[key] += ov
        i += 1
    return out


rows, causes, slow = [], collections.Counter(), []
for k, rtt, printed, start in pings:
    at = printed - off
    j = bisect.bisect_right(wt, at)
    # The ping's packet: its last waking of a daemon thread before the reply was printed,
    # no earlier than the round trip (and 10 ms of slack) before it.
    send = None
    for w in reversed(wakes[bisect.bisect_left(wt, at - rtt / 1e3 - 0.01):j]):
        if w[1] == 'ping' and DAEMON.match(w[2]):
            send = w
            break
    if not send:
        continue
    done = next((w for w in wakes[bisect.bisect_left(wt, send[0]):j]
                 if w[2] == 'ping' and DAEMON.match(w[1])), None)
    if not done:
        continue
    ms = (done[0] - send[0]) * 1e3
    parts = cpu0(send[0], done[0])
    rows.append((k, ms, parts['daemon'] * 1e3))
    if ms > LIMIT:
        top = max(parts, key=parts.get)
        causes[{'daemon': 'the daemons on CPU 0', 'idle': 'CPU 0 idle (a wake-up landing late)'}.get(top, f'{top} holding CPU 0')] += 1
        slow.append(f'start {start} ping {k}: {ms:.2f} ms (' + ', '.join(f'{w} {x * 1e3:.2f}' for w, x in parts.most_common(3)) + ')')
print(f'- traced, {len(rows)} pings matched; time in the tunnel, median ms (daemons on CPU 0): ' + '; '.join(
    f'{k}: {statistics.median(r[1] for r in sel):.3f} ({statistics.median(r[2] for r in sel):.3f})'
    for k in range(1, 6) if (sel := [r for r in rows if r[0] == k])))
print(f'- over {LIMIT:g} ms: {len(slow)}, by the largest part: ' + (', '.join(f'{c} {n}' for c, n in causes.most_common()) or 'none'))
for s in slow:
    print(f'  - {s}')

"""Reads `perf script` output recorded with call graphs (bench/pace.sh's profiles)."""
import re

FRAME = re.compile(r"\s*[0-9a-f]+\s+(\S+?)(?:\+0x[0-9a-f]+)?\s+\((.*)\)\s*$")


def stacks(path, comm):
    """Each sample of the threads whose name starts with `comm`: its stack, leaf first, as
    (function, object) pairs."""
    stack, mine = [], False
    for line in open(path):
        if not line.strip():
            if mine and stack:
                yield stack
            stack, mine = [], False
        elif not line[0].isspace():
            mine = line.split()[0].startswith(comm)
        elif mine:
            m = FRAME.match(line)
            if m:
                stack.append((m.group(1), m.group(2).strip("[]")))
    if mine and stack:
        yield stack

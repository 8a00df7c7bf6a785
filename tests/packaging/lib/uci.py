#!/usr/bin/env python3
"""A stand-in for OpenWrt's uci CLI, for the commands the package's scripts use: get, show,
set, add_list, delete, commit, batch, with -q, -c CONFDIR and -t SAVEDIR. Changes are staged
(SAVEDIR, like /tmp/.uci) until commit writes the file in uci's own layout. Its behaviour is
checked against a transcript recorded from the real uci (vectors/uci-transcript.txt)."""
import json, os, re, sys

args = sys.argv[1:]
quiet = False
confdir = os.environ.get("UCI_CONFDIR", "/etc/config")
savedir = os.environ.get("UCI_SAVEDIR", "/tmp/.uci")
while args and args[0].startswith("-"):
    o = args.pop(0)
    if o == "-q":
        quiet = True
    elif o == "-c":
        confdir = args.pop(0)
    elif o == "-t":
        savedir = args.pop(0)
    else:
        sys.exit(f"uci stand-in: unsupported option {o}")


def err(msg):
    if not quiet:
        print(f"uci: {msg}", file=sys.stderr)
    return 1


def unquote(v):
    v = v.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        return v[1:-1]
    return v


def load(pkg):
    """[{'type','name','anon','opts':{k: str|list}}] from CONFDIR/pkg, then the staged changes."""
    secs = []
    path = os.path.join(confdir, pkg)
    if os.path.exists(path):
        cur = None
        for line in open(path):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = re.match(r"^(config|option|list)\s+(\S+)(?:\s+(.*))?$", line)
            if not m:
                continue
            kw, a, b = m.groups()
            if kw == "config":
                cur = {"type": unquote(a), "name": unquote(b) if b else None, "opts": {}}
                secs.append(cur)
            elif kw == "option":
                cur["opts"][a] = unquote(b or "")
            else:
                cur["opts"].setdefault(a, [])
                if isinstance(cur["opts"][a], list):
                    cur["opts"][a].append(unquote(b or ""))
    for i, s in enumerate(secs):
        if s["name"] is None:
            s["name"] = "cfg%02x%04x" % (i + 1, 0)
            s["anon"] = True
    return secs


staged = {}


def pkg_state(pkg):
    if pkg not in staged:
        sp = os.path.join(savedir, pkg + ".json")
        staged[pkg] = json.load(open(sp)) if os.path.exists(sp) else load(pkg)
    return staged[pkg]


def resolve(pkg, sec):
    secs = pkg_state(pkg)
    m = re.match(r"^@([^\[]+)\[(-?\d+)\]$", sec)
    if m:
        typed = [s for s in secs if s["type"] == m.group(1)]
        try:
            return typed[int(m.group(2))]
        except IndexError:
            return None
    return next((s for s in secs if s["name"] == sec), None)


def split(path):
    parts = path.split(".", 2)
    return parts + [None] * (3 - len(parts))


def fmt(v):
    return " ".join("'%s'" % x for x in v) if isinstance(v, list) else "'%s'" % v


def cmd(c, rest, out):
    if c in ("get", "show", "delete", "commit"):
        path = rest
        val = None
    else:
        path, eq, val = rest.partition("=")
        if not eq:
            return err("Invalid argument")
        val = unquote(val)
    pkg, sec, opt = split(path)
    if c == "commit":
        for p in ([pkg] if pkg else list(staged)):
            secs = pkg_state(p)
            with open(os.path.join(confdir, p), "w") as f:
                for s in secs:
                    f.write("\nconfig %s%s\n" % (s["type"], "" if s.get("anon") else " '%s'" % s["name"]))
                    for k, v in s["opts"].items():
                        for x in (v if isinstance(v, list) else [v]):
                            f.write("\t%s %s '%s'\n" % ("list" if isinstance(v, list) else "option", k, x))
                f.write("\n")
            sp = os.path.join(savedir, p + ".json")
            if os.path.exists(sp):
                os.remove(sp)
            staged.pop(p, None)
        return 0
    secs = pkg_state(pkg)
    s = resolve(pkg, sec) if sec else None
    if c == "get":
        if s is None or (opt and opt not in s["opts"]):
            return err("Entry not found")
        v = s["opts"][opt] if opt else s["type"]
        out.append(" ".join(v) if isinstance(v, list) else v)
        return 0
    if c == "show":
        if sec and s is None:
            return err("Entry not found")
        for x in ([s] if sec else secs):
            if opt:
                if opt not in x["opts"]:
                    return err("Entry not found")
                out.append("%s.%s.%s=%s" % (pkg, x["name"], opt, fmt(x["opts"][opt])))
                continue
            out.append("%s.%s=%s" % (pkg, x["name"], x["type"]))
            for k, v in x["opts"].items():
                out.append("%s.%s.%s=%s" % (pkg, x["name"], k, fmt(v)))
        return 0
    if c == "set":
        if not sec:
            return err("Invalid argument")
        if opt is None:
            if s is None:
                secs.append({"type": val, "name": sec, "opts": {}})
            else:
                s["type"] = val
            return 0
        if s is None:
            return err("Invalid argument")
        s["opts"][opt] = val
        return 0
    if c == "add_list":
        if s is None or not opt:
            return err("Invalid argument")
        cur = s["opts"].get(opt)
        s["opts"][opt] = (cur if isinstance(cur, list) else ([cur] if cur is not None else [])) + [val]
        return 0
    if c == "delete":
        if s is None or (opt and opt not in s["opts"]):
            return err("Entry not found")
        if opt:
            del s["opts"][opt]
        else:
            secs.remove(s)
        return 0
    return err("unsupported command " + c)


def save():
    os.makedirs(savedir, exist_ok=True)
    for p, secs in staged.items():
        json.dump(secs, open(os.path.join(savedir, p + ".json"), "w"))


out = []
if not args:
    sys.exit(err("no command"))
if args[0] == "batch":
    rc = 0
    for line in sys.stdin:
        parts = line.strip().split(None, 1)
        if parts:
            rc = cmd(parts[0], parts[1] if len(parts) > 1 else "", out) or rc
else:
    rc = cmd(args[0], " ".join(args[1:]), out)
save()
if out:
    print("\n".join(out))
sys.exit(rc)

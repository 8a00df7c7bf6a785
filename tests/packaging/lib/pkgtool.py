#!/usr/bin/env python3
"""What the real package managers refuse and do, for the tests (no opkg or apk in CI).
Every rule here was observed with opkg-lede and apk-tools 3.0.6 built from their sources;
the observations are in tests/packaging/vectors/package-managers.md.

  pkgtool.py check-ipk FILE              refuse what opkg/ipkg-build refuse, print the control
  pkgtool.py version V                   exit 1 unless V is a valid apk version with -rN
  pkgtool.py opkg-cmp A B                print <, = or > as opkg orders A and B
  pkgtool.py opkg ROOT install|remove [FILE|NAME]   opkg's file and conffile handling
  pkgtool.py apk ROOT add|del FILE|NAME              apk v3's file handling (.apk-new)
"""
import gzip, hashlib, io, json, os, re, sys, tarfile

# apk-tools' version grammar: digits(.digits)* letter? (_suffix digits?)* (~hex)? (-r digits)?
APK_VERSION = re.compile(
    r"^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(~[0-9a-f]+)?(-r[0-9]+)?$")


def version_ok(v):
    return bool(APK_VERSION.match(v)) and re.search(r"-r[0-9]+$", v) is not None


def _order(c):
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if not c:
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _verrevcmp(a, b):
    # dpkg's verrevcmp, as opkg uses it for the upstream part and the revision.
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def opkg_cmp(a, b):
    def split(v):
        epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
        up, _, rev = rest.rpartition("-") if "-" in rest else (rest, "", "")
        return int(epoch or 0), up, rev
    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return ea - eb
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


def read_ipk(path):
    outer = tarfile.open(path, "r:gz")
    names = outer.getnames()
    if names != ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]:
        raise SystemExit(f"{path}: outer members {names}")
    ctl = tarfile.open(fileobj=io.BytesIO(outer.extractfile("./control.tar.gz").read()), mode="r:gz")
    control = {m.name.lstrip("./"): ctl.extractfile(m).read() for m in ctl.getmembers() if m.isfile()}
    raw = outer.extractfile("./data.tar.gz").read()
    data = tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz")
    return control, data, len(gzip.decompress(raw))


def fields(text):
    f = {}
    for line in text.splitlines():
        if line and not line.startswith(" ") and ": " in line:
            k, v = line.split(": ", 1)
            f[k] = v
    return f


def check_ipk(path):
    control, data, tar_size = read_ipk(path)
    f = fields(control["control"].decode())
    errors = []
    for k in ("Package", "Version", "Architecture", "Installed-Size", "Description"):
        if k not in f:
            errors.append(f"no {k} field")
    if not version_ok(f.get("Version", "")):
        errors.append(f"version {f.get('Version')!r}: apk refuses it, and opkg ranks X.Y.Z-N below X.Y.Z-rN")
    if f.get("Installed-Size") != str(tar_size):
        errors.append(f"Installed-Size {f.get('Installed-Size')} is not the data tar's size {tar_size} (ipkg-build)")
    members = {m.name.lstrip(".") : m for m in data.getmembers()}
    for c in control.get("conffiles", b"").decode().split():
        m = members.get(c)
        if m is None or not m.isfile():
            errors.append(f"conffile {c} is not a regular file in the package (opkg: 'omitting directory', upgrade fails)")
    for s in ("postinst", "prerm"):
        if s in control and not control[s].startswith(b"#!/bin/sh\n"):
            errors.append(f"{s} is not a /bin/sh script")
    if errors:
        print("\n".join(f"{path}: {e}" for e in errors), file=sys.stderr)
        return 1
    sys.stdout.write(control["control"].decode())
    return 0


def sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def opkg(root, op, arg):
    """install (fresh, upgrade or reinstall) and remove, with opkg-lede's conffile rules:
    an existing conffile the user changed is kept and the package's goes to <file>-opkg; on
    remove a changed conffile stays ('Not deleting modified conffile'); files not in the
    package (the identity in /etc/awl/) are never touched."""
    db_path = os.path.join(root, "usr/lib/opkg/sim.json")
    db = json.load(open(db_path)) if os.path.exists(db_path) else {}
    if op == "remove":
        pkg = db.pop(arg)
        for f in pkg["files"]:
            p = root + f
            if f in pkg["conffiles"] and os.path.exists(p) and sha(p) != pkg["conffiles"][f]:
                print(f"Not deleting modified conffile {f}.")
                continue
            if os.path.lexists(p) and not os.path.isdir(p):
                os.remove(p)
        json.dump(db, open(db_path, "w"))
        return 0
    control, data, _ = read_ipk(arg)
    f = fields(control["control"].decode())
    name, version = f["Package"], f["Version"]
    conffiles = control.get("conffiles", b"").decode().split()
    members = {m.name.lstrip("."): m for m in data.getmembers()}
    for c in conffiles:
        if c not in members or not members[c].isfile():
            print(f"copy_file: {root}{c}: omitting directory\nCannot install package {name}.")
            return 255
    old = db.get(name)
    if old and opkg_cmp(version, old["version"]) < 0:
        print(f"Not downgrading package {name} on root from {old['version']} to {version}.")
        return 0
    new_conf = {}
    files = []
    for path, m in sorted(members.items()):
        if not path or path == "/":
            continue
        p = root + path
        if m.isdir():
            os.makedirs(p, exist_ok=True)
            continue
        content = data.extractfile(m).read()
        files.append(path)
        if path in conffiles:
            new_sum = hashlib.sha256(content).hexdigest()
            new_conf[path] = new_sum
            if os.path.exists(p):
                recorded = (old or {}).get("conffiles", {}).get(path)
                cur = sha(p)
                if cur != new_sum and (recorded is None or cur != recorded):
                    open(p + "-opkg", "wb").write(content)
                    print(f"Existing conffile {path} is different from the conffile in the new package. The new conffile will be placed at {path}-opkg.")
                    new_conf[path] = cur if recorded is None else recorded
                    continue
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if os.path.lexists(p):
            os.remove(p)
        open(p, "wb").write(content)
        os.chmod(p, m.mode)
    if old:
        for gone in set(old["files"]) - set(files):
            if os.path.lexists(root + gone):
                os.remove(root + gone)
    db[name] = {"version": version, "files": files, "conffiles": new_conf}
    os.makedirs(os.path.dirname(db_path), exist_ok=True)
    json.dump(db, open(db_path, "w"))
    print(f"{'Upgrading' if old else 'Installing'} {name} ({version})")
    return 0


def apk(root, op, arg):
    """apk-tools 3.0.6 with its default protected paths: a file under /etc that differs from
    what the installed package put there is kept, and the new one goes to <file>.apk-new (on
    upgrade and reinstall); on del such a file stays; everything else is replaced/removed."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../../cross/package"))
    import adb
    db_path = os.path.join(root, "lib/apk/db/sim.json")
    db = json.load(open(db_path)) if os.path.exists(db_path) else {}

    def modified(f, old):
        p = root + f
        return f.startswith("/etc/") and os.path.isfile(p) and f in old and sha(p) != old[f]
    if op == "del":
        old = db.pop(arg)
        for f, h in old["files"].items():
            p = root + f
            if os.path.exists(p + ".apk-new"):
                os.remove(p + ".apk-new")
            if modified(f, old["files"]):
                continue
            if os.path.lexists(p):
                os.remove(p)
        json.dump(db, open(db_path, "w"))
        print(f"Purging {arg}")
        return 0
    info, entries = adb.extract(arg)
    name, version = info["name"], info["version"]
    if not version_ok(version):
        print(f"ERROR: {arg}: invalid version {version}")
        return 99
    old = db.get(name, {}).get("files", {})
    files = {}
    for path, mode, data, target in entries:
        p = root + path
        if data is None:
            os.makedirs(p, exist_ok=True)
            os.chmod(p, mode)
            continue
        if target is not None:
            if os.path.lexists(p):
                os.remove(p)
            os.symlink(target, p)
            files[path] = ""
            continue
        files[path] = hashlib.sha256(data).hexdigest()
        if os.path.isfile(p) and path.startswith("/etc/") and sha(p) != files[path] and (path not in old or sha(p) != old[path]):
            open(p + ".apk-new", "wb").write(data)
            print(f"  Installing file to {path[1:]}.apk-new")
            continue
        if os.path.lexists(p):
            os.remove(p)
        open(p, "wb").write(data)
        os.chmod(p, mode)
    for gone in set(old) - set(files):
        if os.path.lexists(root + gone):
            os.remove(root + gone)
    db[name] = {"version": version, "files": files}
    os.makedirs(os.path.dirname(db_path), exist_ok=True)
    json.dump(db, open(db_path, "w"))
    print(f"{'Upgrading' if old else 'Installing'} {name} ({version})")
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "check-ipk":
        sys.exit(check_ipk(a[1]))
    if a[0] == "version":
        sys.exit(0 if version_ok(a[1]) else 1)
    if a[0] == "opkg-cmp":
        c = opkg_cmp(a[1], a[2])
        print("<" if c < 0 else ">" if c > 0 else "=")
        sys.exit(0)
    if a[0] == "apk":
        sys.exit(apk(a[1], a[2], a[3]))
    if a[0] == "opkg":
        sys.exit(opkg(a[1], a[2], a[3]))
    sys.exit(__doc__)

#!/usr/bin/env python3
"""apk-tools v3 packages (.apk, ADB format) without apk-tools, which no registry this project
builds from offers. Written from the format's description (ADB container: "ADBd" + raw
deflate of the header, an ADB block holding the package object, then one data block per file)
and checked against `apk mkpkg` of apk-tools 3.0.6: tests/packaging/vectors/apk-mkpkg.md.

  adb.py mkpkg --info name:awl --info version:0.1.0-r1 ... [--script post-install:FILE ...]
               --files DIR --output OUT.apk
      the same options as `apk mkpkg`; files are packed as root:root.  SOURCE_DATE_EPOCH sets
      every file's mtime, as with apk. --zopfli: compress with zopfli (about 3.5% smaller;
      then the bytes differ from apk's, the content does not).
  adb.py mkndx [--sign-key KEY.pem] [--description TEXT] --output packages.adb FILE.apk...
      the repository index `apk mkndx` writes: each package's info plus its file size and the
      sha256 of its ADB block; signed (SHA-512, ECDSA or RSA via the openssl command) like
      `apk mkndx --sign-key`. Routers check it with the public key in /etc/apk/keys/.
  adb.py dump FILE.apk      the package's fields, paths and file data, as JSON (tests)
  adb.py dump-index packages.adb   the index's packages and signatures, as JSON (tests)
"""
import hashlib, json, os, re, stat, struct, sys, zlib

T_INT, T_INT32, T_INT64 = 0x10000000, 0x20000000, 0x30000000
T_BLOB8, T_BLOB16, T_BLOB32 = 0x80000000, 0x90000000, 0xA0000000
T_ARRAY, T_OBJECT = 0xD0000000, 0xE0000000
NULL = 0
SCHEMA_PACKAGE = 0x676B6370  # "pckg"
SCHEMA_INDEX = 0x78646E69    # "indx"

PKGINFO = ["name", "version", "hashes", "description", "arch", "license", "origin",
           "maintainer", "url", "repo-commit", "build-time", "installed-size", "file-size",
           "provider-priority", "depends", "provides", "replaces", "install-if",
           "recommends", "layer", "tags"]
SCRIPTS = ["trigger", "pre-install", "post-install", "pre-deinstall", "post-deinstall",
           "pre-upgrade", "post-upgrade"]
# apk's version grammar (apk_version_validate).
VERSION = re.compile(
    r"^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(~[0-9a-f]+)?(-r[0-9]+)?$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+_.:/-]*$")


class Adb:
    """The ADB buffer: values are written once, identical data (same bytes, suitably aligned)
    is shared, as apk's writer does."""

    def __init__(self):
        self.buf = bytearray(8)  # adb_hdr: compat 0, version 0, reserved, root
        self.seen = {}

    def raw(self, data, align):
        pad = -len(self.buf) % align
        self.buf += b"\0" * pad
        off = len(self.buf)
        self.buf += data
        return off

    def data(self, data, align, cache=True):
        if not cache:
            return self.raw(data, align)
        off = self.seen.get(data)
        if off is not None and off % align == 0:
            return off
        off = self.raw(data, align)
        self.seen[data] = off
        return off

    def blob(self, b, cache=True):
        if not b:
            return NULL
        n = len(b)
        if n > 0xFFFF:
            return T_BLOB32 | self.data(struct.pack("<I", n) + b, 4, cache)
        if n > 0xFF:
            return T_BLOB16 | self.data(struct.pack("<H", n) + b, 2, cache)
        return T_BLOB8 | self.data(bytes([n]) + b, 1, cache)

    def int(self, v):
        if v >= 0x100000000:
            return T_INT64 | self.data(struct.pack("<Q", v), 4)
        if v >= 0x10000000:
            return T_INT32 | self.data(struct.pack("<I", v), 4)
        return T_INT | v

    def obj(self, vals, typ=T_OBJECT):
        """vals: field index -> value (1-based), or a list for an array's items."""
        if isinstance(vals, dict):
            n = max([i for i, v in vals.items() if v != NULL] or [0]) + 1
            items = [vals.get(i, NULL) for i in range(1, n)]
        else:
            items = list(vals)
            n = len(items) + 1
        if n <= 1:
            return NULL
        return typ | self.data(struct.pack("<%dI" % n, n, *items), 4)

    def read_blob(self, v):
        off = v & 0x0FFFFFFF
        t = v & 0xF0000000
        if t == T_BLOB8:
            n = self.buf[off]; return bytes(self.buf[off + 1:off + 1 + n])
        if t == T_BLOB16:
            n, = struct.unpack_from("<H", self.buf, off); return bytes(self.buf[off + 2:off + 2 + n])
        if t == T_BLOB32:
            n, = struct.unpack_from("<I", self.buf, off); return bytes(self.buf[off + 4:off + 4 + n])
        return b""


def block(typ, payload):
    raw = 4 + len(payload)
    return struct.pack("<I", (typ << 30) + raw) + payload + b"\0" * (-raw % 8)


def check_version(v):
    if not VERSION.match(v):
        raise SystemExit(f"info field 'version' has invalid value: {v}")


def depends(db, spec):
    deps = []
    for d in re.split(r"[ \t\n,]+", spec.strip()):
        if not d:
            continue
        m = re.match(r"^(!?)([^<>=~]+)(?:([<>=~]+)(.+))?$", d)
        if not m or m.group(3):
            # Version constraints are not needed by this project's packages.
            raise SystemExit(f"unsupported dependency {d!r}")
        deps.append((m.group(2).encode(), db.obj({1: db.blob(m.group(2).encode())})))
    if not deps:
        return NULL
    uniq = []
    for name, v in sorted(deps, key=lambda x: x[0]):
        if not uniq or uniq[-1] != v:
            uniq.append(v)
    return db.obj(uniq)


def deflate(data, zopfli=False):
    """Raw deflate as apk writes it (zlib level 9), or zopfli's smaller raw deflate (any
    inflater reads it; apk-tools too, recorded in vectors/apk-mkpkg.md)."""
    if zopfli:
        import subprocess, tempfile
        with tempfile.NamedTemporaryFile() as t:
            t.write(data)
            t.flush()
            return subprocess.run(["zopfli", "--deflate", "--i15", "-c", t.name],
                                  check=True, capture_output=True).stdout
    z = zlib.compressobj(9, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    return z.compress(data) + z.flush()


def mkpkg(info, scripts, files_dir, output, zopfli=False):
    db = Adb()
    for k in ("name", "version"):
        if k not in info:
            raise SystemExit(f"required info field '{k}' not provided")
    check_version(info["version"])
    if not NAME.match(info["name"]):
        raise SystemExit("info field 'name' has invalid value")
    pi = {}
    for i, k in enumerate(PKGINFO, 1):
        if k not in info:
            continue
        if k in ("installed-size", "file-size"):
            raise SystemExit(f"invalid info field: {k}")
        if k == "depends":
            pi[i] = depends(db, info[k])
        elif k in ("hashes", "repo-commit", "build-time", "provider-priority", "provides",
                   "replaces", "install-if", "recommends", "layer", "tags"):
            raise SystemExit(f"info field {k} is not supported here")
        else:
            pi[i] = db.blob(info[k].encode())
    mtime = int(os.environ["SOURCE_DATE_EPOCH"]) if os.environ.get("SOURCE_DATE_EPOCH") else None
    root = db.blob(b"root")
    dirs = [""]
    for base, dnames, _ in os.walk(files_dir):
        for d in dnames:
            p = os.path.join(base, d)
            if not os.path.islink(p):
                dirs.append(os.path.relpath(p, files_dir))
    dirs = [""] + sorted(dirs[1:], key=lambda s: s.encode())
    paths = []
    installed = 0
    contents = {}
    for d in dirs:
        full = os.path.join(files_dir, d) if d else files_dir
        files = []
        for e in sorted(os.listdir(full), key=lambda s: s.encode()):
            p = os.path.join(full, e)
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                continue
            target = NULL
            if stat.S_ISREG(st.st_mode):
                data = open(p, "rb").read()
                installed += len(data)
                digest = hashlib.sha256(data).digest()
            elif stat.S_ISLNK(st.st_mode):
                data = b""
                digest = None
            else:
                continue
            name = db.blob(e.encode())
            fv = {1: name}
            if digest is not None:
                fv[5] = db.blob(digest)
            if stat.S_ISLNK(st.st_mode):
                fv[6] = db.blob(struct.pack("<H", stat.S_IFLNK) + os.readlink(p).encode())
            fv[4] = db.int(mtime if mtime is not None else int(st.st_mtime))
            fv[3] = db.int(st.st_size if stat.S_ISREG(st.st_mode) else len(os.readlink(p)))
            acl = db.obj({1: db.int(st.st_mode & 0o7777), 2: root, 3: root})
            fv[2] = acl
            files.append((e.encode(), db.obj(fv), data if digest is not None else None))
        st = os.lstat(full)
        dv = {1: db.blob(d.encode())}
        dv[2] = db.obj({1: db.int(st.st_mode & 0o7777), 2: root, 3: root})
        files.sort(key=lambda f: f[0])
        dv[3] = db.obj([f[1] for f in files])
        paths.append((d.encode(), db.obj(dv)))
        contents[d] = [(f[0], f[2]) for f in files]
    if (not installed) and (files_dir or scripts):
        installed = 1
    pi[12] = db.int(installed)
    # The unique id: 20 bytes written uncached, filled in below.
    pi[3] = db.blob(b"\0" * 20, cache=False)
    hashes_off = (pi[3] & 0x0FFFFFFF) + 1
    pkg = {1: db.obj(pi)}
    paths.sort(key=lambda p: p[0])
    pkg[2] = db.obj([p[1] for p in paths])
    if scripts:
        sv = {}
        for i, k in enumerate(SCRIPTS, 1):
            if k in scripts:
                sv[i] = db.blob(scripts[k])
        pkg[3] = db.obj(sv)
    struct.pack_into("<I", db.buf, 4, db.obj(pkg))
    db.buf[hashes_off:hashes_off + 20] = hashlib.sha256(db.buf).digest()[:20]
    out = struct.pack("<II", 0x2E424441, SCHEMA_PACKAGE) + block(0, bytes(db.buf))
    for i, (d, _) in enumerate(paths, 1):
        for j, (name, data) in enumerate(contents[d.decode()], 1):
            if data:
                out += block(2, struct.pack("<II", i, j) + data)
    with open(output, "wb") as f:
        f.write(b"ADBd" + deflate(out, zopfli))


def copy(db, src, v):
    """A value of another ADB buffer written into db, children first (apk's adb_w_copy)."""
    t = v & 0xF0000000
    off = v & 0x0FFFFFFF
    if t in (0, T_INT):
        return v
    if t == T_INT32:
        return t | db.data(bytes(src[off:off + 4]), 4)
    if t == T_INT64:
        return t | db.data(bytes(src[off:off + 8]), 8)
    if t == T_BLOB8:
        return t | db.data(bytes(src[off:off + 1 + src[off]]), 1)
    if t == T_BLOB16:
        n, = struct.unpack_from("<H", src, off)
        return t | db.data(bytes(src[off:off + 2 + n]), 2)
    if t == T_BLOB32:
        n, = struct.unpack_from("<I", src, off)
        return t | db.data(bytes(src[off:off + 4 + n]), 4)
    if t in (T_OBJECT, T_ARRAY):
        n, = struct.unpack_from("<I", src, off)
        vals = struct.unpack_from("<%dI" % n, src, off)
        items = [copy(db, src, x) for x in vals[1:]]
        return t | db.data(struct.pack("<%dI" % n, n, *items), 4)
    raise SystemExit("unknown ADB value type %x" % t)


def pubkey_id(key):
    """apk's key id: the first 16 bytes of SHA-512 of the public key (EC point, or PKCS#1)."""
    import subprocess
    der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    # SubjectPublicKeyInfo: the BIT STRING at the end holds what i2d_PublicKey writes.
    def tlv(buf, at):
        tag, ln = buf[at], buf[at + 1]
        hdr = 2
        if ln & 0x80:
            k = ln & 0x7F
            ln = int.from_bytes(buf[at + 2:at + 2 + k], "big")
            hdr += k
        return tag, at + hdr, ln
    _, body, _ = tlv(der, 0)          # SEQUENCE
    _, alg, alen = tlv(der, body)     # AlgorithmIdentifier
    tag, bits, blen = tlv(der, alg + alen)
    assert tag == 3, "no BIT STRING in the public key"
    point = der[bits + 1:bits + blen]  # skip the unused-bits byte
    return hashlib.sha512(point).digest()[:16]


def mkndx(files, output, key=None, description=None):
    import subprocess
    db = Adb()
    pkgs = []
    for f in files:
        _, blocks = parse(f)
        src = bytearray(blocks[0][1])
        root, = struct.unpack_from("<I", src, 4)
        pkg_off = root & 0x0FFFFFFF
        pinfo, = struct.unpack_from("<I", src, pkg_off + 4)
        poff = pinfo & 0x0FFFFFFF
        n, = struct.unpack_from("<I", src, poff)
        vals = list(struct.unpack_from("<%dI" % n, src, poff))[1:]
        fields = {i: copy(db, src, v) for i, v in enumerate(vals, 1)}
        fields[13] = db.int(os.path.getsize(f))
        fields[3] = db.blob(hashlib.sha256(bytes(src)).digest())
        nv = vals[0] & 0x0FFFFFFF
        name = bytes(src[nv + 1:nv + 1 + src[nv]])
        pkgs.append((name, db.obj(fields)))
    names = [p[0] for p in pkgs]
    if len(set(names)) != len(names):
        raise SystemExit("one version per package name in an index, please")
    ndx = {}
    if description:
        ndx[1] = db.blob(description.encode())
    ndx[2] = db.obj([v for _, v in sorted(pkgs, key=lambda p: p[0])])
    struct.pack_into("<I", db.buf, 4, db.obj(ndx))
    adb = bytes(db.buf)
    out = struct.pack("<II", 0x2E424441, SCHEMA_INDEX) + block(0, adb)
    if key:
        hdr = bytes([0, 4]) + pubkey_id(key)
        msg = struct.pack("<I", SCHEMA_INDEX) + hdr + hashlib.sha512(adb).digest()
        sig = subprocess.run(["openssl", "dgst", "-sha512", "-sign", key, "-binary"], input=msg,
                             check=True, capture_output=True).stdout
        out += block(1, hdr + sig)
    z = zlib.compressobj(9, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    with open(output, "wb") as fh:
        fh.write(b"ADBd" + z.compress(out) + z.flush())


def dump_index(path):
    schema, blocks = parse(path)
    src = bytearray(blocks[0][1])
    db = Adb(); db.buf = src

    def obj(v):
        if not v:
            return []
        off = v & 0x0FFFFFFF
        n, = struct.unpack_from("<I", src, off)
        return list(struct.unpack_from("<%dI" % n, src, off))[1:]

    def val(v):
        t = v & 0xF0000000
        if t == T_INT:
            return v & 0x0FFFFFFF
        if t == T_INT32:
            return struct.unpack_from("<I", src, v & 0x0FFFFFFF)[0]
        return db.read_blob(v)
    root, = struct.unpack_from("<I", src, 4)
    r = obj(root) + [0, 0, 0]
    pkgs = []
    for pv in obj(r[1]):
        f = obj(pv)
        d = {PKGINFO[i]: val(v) for i, v in enumerate(f) if v and PKGINFO[i] not in ("depends", "provides", "tags")}
        d = {k: (v.hex() if k == "hashes" else v.decode() if isinstance(v, bytes) else v) for k, v in d.items()}
        if len(f) >= 15 and f[14]:
            d["depends"] = [db.read_blob(obj(x)[0]).decode() for x in obj(f[14])]
        pkgs.append(d)
    sigs = [{"sign_ver": b[0], "hash_alg": b[1], "key_id": b[2:18].hex(), "sig_len": len(b) - 18}
            for t, b in blocks if t == 1]
    return {"schema": "%08x" % schema, "description": val(r[0]).decode() if r[0] else None,
            "packages": pkgs, "signatures": sigs, "adb_sha512": hashlib.sha512(bytes(src)).hexdigest()}


def parse(path):
    raw = open(path, "rb").read()
    if raw[:4] == b"ADBd":
        raw = zlib.decompress(raw[4:], -15)
    if raw[:4] != b"ADB.":
        raise SystemExit(f"{path}: not an ADB file")
    schema, = struct.unpack_from("<I", raw, 4)
    pos, blocks = 8, []
    while pos < len(raw):
        ts, = struct.unpack_from("<I", raw, pos)
        typ, size = ts >> 30, ts & 0x3FFFFFFF
        blocks.append((typ, raw[pos + 4:pos + size]))
        pos += size + (-size % 8)
    return schema, blocks


def dump(path):
    schema, blocks = parse(path)
    db = Adb()
    db.buf = bytearray(blocks[0][1])

    def obj(v):
        if v & 0xF0000000 not in (T_OBJECT, T_ARRAY) or not v:
            return []
        off = v & 0x0FFFFFFF
        n, = struct.unpack_from("<I", db.buf, off)
        return list(struct.unpack_from("<%dI" % n, db.buf, off))[1:]

    def val(v, kind="s"):
        t = v & 0xF0000000
        if not v:
            return None
        if t == T_INT:
            return v & 0x0FFFFFFF
        if t == T_INT32:
            return struct.unpack_from("<I", db.buf, v & 0x0FFFFFFF)[0]
        if t == T_INT64:
            return struct.unpack_from("<Q", db.buf, v & 0x0FFFFFFF)[0]
        b = db.read_blob(v)
        return b.hex() if kind == "x" else b.decode(errors="replace")

    root, = struct.unpack_from("<I", db.buf, 4)
    pkg = obj(root) + [0] * 6
    info = {}
    for i, v in enumerate(obj(pkg[0]), 1):
        if not v:
            continue
        k = PKGINFO[i - 1]
        if k in ("depends", "provides", "replaces", "install-if", "recommends"):
            info[k] = [val(obj(d)[0]) for d in obj(v)]
        else:
            info[k] = val(v, "x" if k == "hashes" else "s")
    paths = []
    for dv in obj(pkg[1]):
        d = obj(dv) + [0] * 3
        acl = obj(d[1]) + [0] * 4
        files = []
        for fvv in obj(d[2]):
            f = obj(fvv) + [0] * 6
            facl = obj(f[1]) + [0] * 4
            files.append({"name": val(f[0]), "mode": oct(val(facl[0]) or 0), "user": val(facl[1]),
                          "group": val(facl[2]), "size": val(f[2]), "mtime": val(f[3]),
                          "hash": val(f[4], "x"), "target": val(f[5], "x")})
        paths.append({"name": val(d[0]) or "", "mode": oct(val(acl[0]) or 0), "user": val(acl[1]),
                      "group": val(acl[2]), "files": files})
    scripts = {SCRIPTS[i]: val(v) for i, v in enumerate(obj(pkg[2])) if v}
    data = [{"path": struct.unpack_from("<I", b)[0], "file": struct.unpack_from("<I", b, 4)[0],
             "sha256": hashlib.sha256(b[8:]).hexdigest()} for t, b in blocks if t == 2]
    sigs = [b.hex() for t, b in blocks if t == 1]
    return {"schema": "%08x" % schema, "info": info, "paths": paths, "scripts": scripts,
            "data": data, "signatures": len(sigs)}


def extract(path):
    """[(path, mode, bytes or None for a directory, symlink target or None)] of a package."""
    d = dump(path)
    _, blocks = parse(path)
    data = {(struct.unpack_from("<I", b)[0], struct.unpack_from("<I", b, 4)[0]): b[8:]
            for t, b in blocks if t == 2}
    out = []
    for i, p in enumerate(d["paths"], 1):
        out.append(("/" + p["name"], int(p["mode"], 8), None, None))
        for j, f in enumerate(p["files"], 1):
            fp = "/" + (p["name"] + "/" if p["name"] else "") + f["name"]
            target = bytes.fromhex(f["target"])[2:].decode() if f["target"] else None
            out.append((fp, int(f["mode"], 8), data.get((i, j), b""), target))
    return d["info"], out


if __name__ == "__main__":
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    if a[0] == "dump":
        json.dump(dump(a[1]), sys.stdout, indent=1, sort_keys=True)
        print()
        sys.exit(0)
    if a[0] == "dump-index":
        json.dump(dump_index(a[1]), sys.stdout, indent=1, sort_keys=True)
        print()
        sys.exit(0)
    if a[0] == "mkndx":
        key = desc = out = None
        files = []
        i = 1
        while i < len(a):
            if a[i] == "--sign-key":
                key = a[i + 1]; i += 2
            elif a[i] in ("--output", "-o"):
                out = a[i + 1]; i += 2
            elif a[i] in ("--description", "-d"):
                desc = a[i + 1]; i += 2
            else:
                files.append(a[i]); i += 1
        mkndx(files, out, key, desc)
        sys.exit(0)
    if a[0] != "mkpkg":
        sys.exit(__doc__)
    info, scripts, files, output = {}, {}, None, None
    zopfli = "--zopfli" in a
    a = [x for x in a if x != "--zopfli"]
    i = 1
    while i < len(a):
        o, v = a[i], a[i + 1] if i + 1 < len(a) else None
        if o in ("--info", "-I"):
            k, _, val = v.partition(":")
            info[k] = val
        elif o in ("--script", "-s"):
            k, _, f = v.partition(":")
            if k not in SCRIPTS:
                sys.exit(f"invalid script type: {k}")
            scripts[k] = open(f, "rb").read()
        elif o in ("--files", "-F"):
            files = v
        elif o in ("--output", "-o"):
            output = v
        else:
            sys.exit(f"unknown option {o}")
        i += 2
    mkpkg(info, scripts, files, output, zopfli)

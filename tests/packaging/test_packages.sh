#!/usr/bin/env bash
# Package structure tests: builds the .ipk (every dist/<target>/awl present; x86_64-musl is
# built if none is) and the amd64 .deb, unpacks them and checks file lists, modes, owners,
# control fields, conffiles, scripts (sh -n, shellcheck), that the binary is static and for the
# right architecture, that uci-defaults is idempotent and keeps user edits, and that a
# published feed's signature verifies with an independent verifier (openssl).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PASSED=0; FAILED=0
check() { local what=$1; shift; if "$@"; then PASSED=$((PASSED + 1)); echo "PASS: $what"; else FAILED=$((FAILED + 1)); echo "FAIL: $what"; fi; }
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

targets=()
for d in dist/*-unknown-linux-musl*/awl; do [ -x "$d" ] && targets+=("$(basename "$(dirname "$d")")"); done
if [ ${#targets[@]} = 0 ]; then
    echo "no cross-built binary in dist/: building x86_64-unknown-linux-musl"
    bash cross/build.sh x86_64-unknown-linux-musl >/dev/null || { echo "FAIL: cross build"; echo "0 passed, 1 failed"; exit 1; }
    targets=(x86_64-unknown-linux-musl)
fi

# elf_check FILE RUST_TARGET: static executable for the target's machine, class and byte order.
elf_check() {
    python3 - "$1" "$2" <<'EOF'
import struct, sys
path, target = sys.argv[1], sys.argv[2]
want = {"mipsel": (8, 1, 1), "mips": (8, 1, 2), "armv7": (40, 1, 1), "aarch64": (183, 2, 1), "x86_64": (62, 2, 1)}[target.split("-")[0]]
b = open(path, "rb").read()
assert b[:4] == b"\x7fELF", "not ELF"
cls, data = b[4], b[5]
end = "<" if data == 1 else ">"
machine = struct.unpack(end + "H", b[18:20])[0]
if cls == 2:
    phoff, = struct.unpack(end + "Q", b[32:40]); phentsize, phnum = struct.unpack(end + "HH", b[54:58])
else:
    phoff, = struct.unpack(end + "I", b[28:32]); phentsize, phnum = struct.unpack(end + "HH", b[42:46])
types = [struct.unpack(end + "I", b[phoff + i * phentsize: phoff + i * phentsize + 4])[0] for i in range(phnum)]
assert (machine, cls, data) == want, f"machine/class/endianness {(machine, cls, data)} != {want}"
assert 3 not in types, "has PT_INTERP: dynamically linked"
assert 2 not in types, "has PT_DYNAMIC: dynamically linked"
EOF
}

for t in "${targets[@]}"; do
    arch=$(bash -c "source cross/package/common.sh; openwrt_arch $t")
    ipk=$(bash cross/package/build-ipk.sh "$t" | awk '{print $1}')
    check "$t: ipk built as awl_${VERSION}-1_${arch}.ipk" test -f "dist/packages/awl_${VERSION}-1_${arch}.ipk"
    d=$WORK/$t; mkdir -p "$d/outer" "$d/data" "$d/ctl"
    tar -xzf "$ipk" -C "$d/outer"
    check "$t: outer members" test "$(tar -tzf "$ipk" | tr '\n' ' ')" = "./debian-binary ./data.tar.gz ./control.tar.gz "
    check "$t: debian-binary is 2.0" test "$(cat "$d/outer/debian-binary")" = "2.0"
    tar -xzf "$d/outer/data.tar.gz" -C "$d/data"; tar -xzf "$d/outer/control.tar.gz" -C "$d/ctl"
    listing=$(tar -tvzf "$d/outer/data.tar.gz" | awk '{print $1, $2, $6}' | sort -k3)
    expected="drwx------ 0/0 ./etc/awl/
-rw-r--r-- 0/0 ./etc/config/awl
-rwxr-xr-x 0/0 ./etc/init.d/awl
-rwxr-xr-x 0/0 ./etc/uci-defaults/90-awl
-rw-r--r-- 0/0 ./lib/upgrade/keep.d/awl
-rwxr-xr-x 0/0 ./usr/sbin/awl"
    files_only=$(echo "$listing" | grep -v '^d.* \./\(etc/\|lib/\|usr/\|etc/config/\|etc/init.d/\|etc/uci-defaults/\|lib/upgrade/\|lib/upgrade/keep.d/\|usr/sbin/\)\?$')
    check "$t: data file list, modes and owners" test "$files_only" = "$expected"
    [ "$files_only" = "$expected" ] || diff <(echo "$expected") <(echo "$files_only")
    c=$d/ctl/control
    check "$t: control Package/Version/Architecture" grep -qx "Architecture: $arch" "$c"
    check "$t: control version $VERSION-1" grep -qx "Version: $VERSION-1" "$c"
    check "$t: depends on kmod-tun" grep -q "^Depends:.*kmod-tun" "$c"
    for f in Package Source SourceName License Section Maintainer Installed-Size Description; do
        grep -q "^$f: " "$c" || { echo "missing control field $f"; false; }
    done && check "$t: all control fields present" true
    check "$t: conffiles" test "$(cat "$d/ctl/conffiles")" = "$(printf '/etc/config/awl\n/etc/awl/')"
    for s in "$d/data/etc/init.d/awl" "$d/data/etc/uci-defaults/90-awl" "$d/ctl/postinst" "$d/ctl/prerm"; do
        check "$t: sh -n $(basename "$s")" sh -n "$s"
    done
    if command -v shellcheck >/dev/null; then
        check "$t: shellcheck init script" shellcheck -s sh -e SC2034,SC2154,SC3043 "$d/data/etc/init.d/awl"
        check "$t: shellcheck uci-defaults" shellcheck -s sh "$d/data/etc/uci-defaults/90-awl"
    fi
    check "$t: binary is static, right machine/class/endianness" elf_check "$d/data/usr/sbin/awl" "$t"
    check "$t: shipped config disabled until enabled" grep -q "option enabled '0'" "$d/data/etc/config/awl"
done
check "feed Makefile's config equals configs/awl.default" cmp -s openwrt/awl/files/awl.config configs/awl.default

# uci-defaults idempotency against a small uci stand-in (no real uci off OpenWrt).
mkdir -p "$WORK/bin"
cat >"$WORK/bin/uci" <<'EOF'
#!/usr/bin/env python3
import json, os, sys
db = os.environ["UCI_DB"]
state = json.load(open(db)) if os.path.exists(db) else {}
args = [a for a in sys.argv[1:] if a != "-q"]
def apply(cmd, rest):
    if cmd == "set":
        key, _, val = rest.partition("=")
        state[key] = val.strip("'")
    elif cmd == "add_list":
        key, _, val = rest.partition("=")
        state.setdefault(key, [])
        if isinstance(state[key], list):
            state[key].append(val.strip("'"))
    elif cmd == "commit":
        pass
    else:
        sys.exit(f"unsupported: {cmd}")
if args[0] == "get":
    if args[1] not in state:
        sys.exit(1)
    v = state[args[1]]
    print(" ".join(v) if isinstance(v, list) else v)
    sys.exit(0)
if args[0] == "batch":
    for line in sys.stdin:
        parts = line.strip().split(None, 1)
        if parts:
            apply(parts[0], parts[1] if len(parts) > 1 else "")
else:
    apply(args[0], " ".join(args[1:]))
json.dump(state, open(db, "w"), sort_keys=True, indent=1)
EOF
chmod +x "$WORK/bin/uci"
export UCI_DB=$WORK/uci.json
echo '{"dhcp.@dnsmasq[0]": "dnsmasq"}' >"$UCI_DB"
PATH="$WORK/bin:$PATH" sh openwrt/awl/files/awl.uci-defaults
cp "$UCI_DB" "$WORK/first.json"
check "uci-defaults creates interface, zone, forwardings and the dnsmasq forward for .awl" python3 -c "
import json,sys; s=json.load(open(sys.argv[1]))
assert s['network.awl']=='interface' and s['network.awl.device']=='awl0'
assert s['firewall.awl']=='zone' and s['firewall.awl.masq']=='1' and s['firewall.awl.mtu_fix']=='1'
assert s['firewall.awl_lan_fwd.src']=='lan' and s['firewall.awl_lan_back.dest']=='lan'
assert s['dhcp.@dnsmasq[0].server']==['/awl/10.66.255.254'] and s['dhcp.@dnsmasq[0].rebind_domain']==['awl']" "$UCI_DB"
PATH="$WORK/bin:$PATH" sh openwrt/awl/files/awl.uci-defaults
check "uci-defaults run twice changes nothing" cmp -s "$UCI_DB" "$WORK/first.json"
PATH="$WORK/bin:$PATH" uci set firewall.awl.input='REJECT'
PATH="$WORK/bin:$PATH" sh openwrt/awl/files/awl.uci-defaults
check "uci-defaults keeps a user's edit" python3 -c "import json,sys; assert json.load(open(sys.argv[1]))['firewall.awl.input']=='REJECT'" "$UCI_DB"

# Signed feed, verified by openssl (an independent Ed25519 implementation).
if command -v signify-openbsd >/dev/null; then
    bash cross/package/keygen.sh "$WORK/keys" >/dev/null
    bash cross/package/publish-feed.sh "$WORK/feed" "$WORK/keys/key-build.sec" >/dev/null
    check "feed has Packages, Packages.gz, Packages.sig" test -s "$WORK/feed/Packages" -a -s "$WORK/feed/Packages.gz" -a -s "$WORK/feed/Packages.sig"
    check "Packages lists every ipk with its SHA256" python3 - "$WORK/feed" <<'EOF'
import hashlib, os, sys
feed = sys.argv[1]
stanzas = [s for s in open(os.path.join(feed, "Packages")).read().split("\n\n") if s.strip()]
ipks = sorted(f for f in os.listdir(feed) if f.endswith(".ipk"))
assert len(stanzas) == len(ipks), (len(stanzas), ipks)
for s in stanzas:
    f = dict(l.split(": ", 1) for l in s.splitlines() if ": " in l and not l.startswith(" "))
    data = open(os.path.join(feed, f["Filename"]), "rb").read()
    assert f["SHA256sum"] == hashlib.sha256(data).hexdigest() and int(f["Size"]) == len(data)
EOF
    check "signature verifies with signify (usign format)" signify-openbsd -V -q -p "$WORK/keys/key-build.pub" -m "$WORK/feed/Packages" -x "$WORK/feed/Packages.sig"
    # openssl: rebuild the raw Ed25519 key and signature from the usign blobs.
    sed -n 2p "$WORK/keys/key-build.pub" | base64 -d | tail -c 32 >"$WORK/pub.raw"
    sed -n 2p "$WORK/feed/Packages.sig" | base64 -d | tail -c 64 >"$WORK/sig.raw"
    { printf '\x30\x2a\x30\x05\x06\x03\x2b\x65\x70\x03\x21\x00'; cat "$WORK/pub.raw"; } >"$WORK/pub.der"
    check "signature verifies with openssl" openssl pkeyutl -verify -pubin -keyform DER -inkey "$WORK/pub.der" -rawin -in "$WORK/feed/Packages" -sigfile "$WORK/sig.raw"
    echo "tampered" >>"$WORK/feed/Packages"
    check "a tampered index fails verification" sh -c "! openssl pkeyutl -verify -pubin -keyform DER -inkey '$WORK/pub.der' -rawin -in '$WORK/feed/Packages' -sigfile '$WORK/sig.raw' >/dev/null 2>&1"
    fp=$(bash cross/package/fingerprint.sh "$WORK/keys/key-build.pub")
    check "key fingerprint is 16 hex digits ($fp)" sh -c "echo '$fp' | grep -qx '[0-9a-f]\{16\}'"
fi

# Raspberry Pi / Debian package.
if [ -x dist/x86_64-unknown-linux-musl/awl ]; then
    deb=$(bash cross/package/build-deb.sh x86_64-unknown-linux-musl | awk '{print $1}')
    check "deb built" test -f "$deb"
    check "deb control" sh -c "dpkg-deb -f '$deb' Package Architecture | tr '\n' ' ' | grep -q 'Package: awl Architecture: amd64'"
    dpkg-deb -c "$deb" >"$WORK/deb.list"
    check "deb contents" sh -c "grep -q './usr/sbin/awl' '$WORK/deb.list' && grep -q './lib/systemd/system/awl.service' '$WORK/deb.list' && grep -q './etc/config/awl' '$WORK/deb.list'"
    mkdir -p "$WORK/deb"; dpkg-deb -e "$deb" "$WORK/deb/DEBIAN"; dpkg-deb -x "$deb" "$WORK/deb"
    check "deb conffiles" grep -qx /etc/config/awl "$WORK/deb/DEBIAN/conffiles"
    check "unit restarts on failure with capabilities, not full root" sh -c "grep -qx 'Restart=on-failure' '$WORK/deb/lib/systemd/system/awl.service' && grep -q '^AmbientCapabilities=CAP_NET_ADMIN' '$WORK/deb/lib/systemd/system/awl.service' && grep -q '^CapabilityBoundingSet=' '$WORK/deb/lib/systemd/system/awl.service'"
    check "deb maintainer scripts pass sh -n" sh -c "for s in postinst prerm postrm; do sh -n '$WORK/deb/DEBIAN/'\$s || exit 1; done"
    check "deb config is valid" "$WORK/deb/usr/sbin/awl" config check "$WORK/deb/etc/config/awl"
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]

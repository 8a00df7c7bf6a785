#!/usr/bin/env bash
# Builds signed OpenWrt package feeds from dist/packages (build-ipk.sh, build-apk.sh):
#   bash cross/package/publish-feed.sh OUT_DIR SECRET_KEY.sec   (made by keygen.sh)
# opkg: OUT_DIR gets the .ipk files, Packages, Packages.gz and Packages.sig (usign/signify
# Ed25519 over Packages, as opkg checks it with the key in /etc/opkg/keys/). Routers use:
#   src/gz awl https://your.server/awl-feed      (in /etc/opkg/customfeeds.conf)
# apk: when key-build-apk.pem sits beside SECRET_KEY.sec and dist/packages/apk has packages,
# OUT_DIR/apk/<arch>/ gets that architecture's .apk files, the noarch ones, and packages.adb
# signed with the ECDSA key as `apk mkndx --sign-key` does. Routers use:
#   https://your.server/awl-feed/apk/<arch>/packages.adb   (in /etc/apk/repositories.d/customfeeds.list)
set -euo pipefail
source "$(dirname "$0")/common.sh"
out=${1:?usage: publish-feed.sh OUT_DIR SECRET_KEY}
key=${2:?usage: publish-feed.sh OUT_DIR SECRET_KEY}
mkdir -p "$out"
: >"$out/Packages"
shopt -s nullglob
ipks=("$ROOT"/dist/packages/*.ipk)
[ ${#ipks[@]} -gt 0 ] || { echo "no .ipk in dist/packages (run build-ipk.sh)" >&2; exit 1; }
for ipk in "${ipks[@]}"; do
    name=$(basename "$ipk")
    cp "$ipk" "$out/$name"
    tmp=$(mktemp -d)
    tar -xzf "$ipk" -C "$tmp" ./control.tar.gz
    tar -xzf "$tmp/control.tar.gz" -C "$tmp" ./control
    {
        # The control stanza without its description, then the feed fields, then the description.
        sed '/^Description:/,$d' "$tmp/control"
        echo "Filename: $name"
        echo "Size: $(stat -c %s "$ipk")"
        echo "SHA256sum: $(sha256sum "$ipk" | cut -d' ' -f1)"
        sed -n '/^Description:/,$p' "$tmp/control"
        echo
    } >>"$out/Packages"
    rm -rf "$tmp"
done
gzip -9nc "$out/Packages" >"$out/Packages.gz"
command -v signify-openbsd >/dev/null || { apt-get install -y -qq signify-openbsd >/dev/null; }
signify-openbsd -S -s "$key" -m "$out/Packages" -x "$out/Packages.sig"
apk_key=$(dirname "$key")/key-build-apk.pem
napk=0
if [ -f "$apk_key" ] && [ -d "$ROOT/dist/packages/apk" ]; then
    for d in "$ROOT"/dist/packages/apk/*/; do
        arch=$(basename "$d")
        [ "$arch" = all ] && continue
        mkdir -p "$out/apk/$arch"
        cp "$d"/*-"$PKG_VERSION".apk "$out/apk/$arch/"
        [ -d "$ROOT/dist/packages/apk/all" ] && cp "$ROOT"/dist/packages/apk/all/*-"$PKG_VERSION".apk "$out/apk/$arch/"
        python3 "$(dirname "$0")/adb.py" mkndx --sign-key "$apk_key" --description "awl $PKG_VERSION $arch" \
            --output "$out/apk/$arch/packages.adb" "$out/apk/$arch"/*.apk
        cp "$(dirname "$key")/key-build-apk.pub.pem" "$out/apk/awl-feed.pem" 2>/dev/null || true
        napk=$((napk + 1))
    done
fi
echo "apk feeds: $napk architecture(s) in $out/apk"
echo "feed: $out (${#ipks[@]} package(s)), signed with key $(bash "$(dirname "$0")/fingerprint.sh" "${key%.sec}.pub" 2>/dev/null || echo '?')"

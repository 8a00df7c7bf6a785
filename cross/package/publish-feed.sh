#!/usr/bin/env bash
# Builds a signed OpenWrt package feed from the .ipk files in dist/packages:
#   bash cross/package/publish-feed.sh OUT_DIR SECRET_KEY.sec   (made by keygen.sh)
# OUT_DIR gets the .ipk files, Packages, Packages.gz and Packages.sig (usign/signify Ed25519
# over Packages, as opkg checks it with the key in /etc/opkg/keys/). Routers then use:
#   src/gz awl https://your.server/awl-feed      (in /etc/opkg/customfeeds.conf)
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
echo "feed: $out (${#ipks[@]} package(s)), signed with key $(bash "$(dirname "$0")/fingerprint.sh" "${key%.sec}.pub" 2>/dev/null || echo '?')"

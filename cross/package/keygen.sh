#!/usr/bin/env bash
# Creates a feed signing key pair in OpenWrt's usign format (signify-compatible):
#   bash cross/package/keygen.sh DIR
# Writes DIR/key-build.sec (secret: never commit it) and DIR/key-build.pub, and prints the key's
# fingerprint: on routers the public key goes to /etc/opkg/keys/<fingerprint>.
set -euo pipefail
dir=${1:?usage: keygen.sh DIR}
command -v signify-openbsd >/dev/null || { apt-get install -y -qq signify-openbsd >/dev/null; }
mkdir -p "$dir"
signify-openbsd -G -n -c "awl feed key" -p "$dir/key-build.pub" -s "$dir/key-build.sec"
chmod 600 "$dir/key-build.sec"
bash "$(dirname "$0")/fingerprint.sh" "$dir/key-build.pub"

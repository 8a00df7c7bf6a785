#!/usr/bin/env bash
# Creates the feed signing keys:
#   bash cross/package/keygen.sh DIR
# - opkg (OpenWrt 23.05/24.10): usign/signify Ed25519, DIR/key-build.sec (secret) and
#   DIR/key-build.pub; on routers the public key goes to /etc/opkg/keys/<fingerprint>.
# - apk (OpenWrt 25.12+): ECDSA P-256, DIR/key-build-apk.pem (secret) and
#   DIR/key-build-apk.pub.pem; on routers the public key goes to /etc/apk/keys/.
# Never commit the secret keys. Prints the usign fingerprint.
set -euo pipefail
dir=${1:?usage: keygen.sh DIR}
command -v signify-openbsd >/dev/null || { apt-get install -y -qq signify-openbsd >/dev/null; }
mkdir -p "$dir"
signify-openbsd -G -n -c "awl feed key" -p "$dir/key-build.pub" -s "$dir/key-build.sec"
chmod 600 "$dir/key-build.sec"
(umask 077; openssl ecparam -name prime256v1 -genkey -noout -out "$dir/key-build-apk.pem")
openssl pkey -in "$dir/key-build-apk.pem" -pubout -out "$dir/key-build-apk.pub.pem"
bash "$(dirname "$0")/fingerprint.sh" "$dir/key-build.pub"

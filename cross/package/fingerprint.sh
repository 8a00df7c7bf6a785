#!/usr/bin/env bash
# Prints the usign fingerprint (key number, 16 hex digits) of a public key file.
set -euo pipefail
sed -n 2p "${1:?usage: fingerprint.sh KEY.pub}" | base64 -d | head -c 10 | tail -c 8 | od -An -tx1 | tr -d ' \n'
echo

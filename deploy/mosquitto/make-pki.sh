#!/usr/bin/env bash
# make-pki.sh [--dir DIR] [--server-name NAME]... [--device ID]... [--no-coordinator]
# Creates (or completes: existing keys and certificates are kept) the edgekt broker PKI in DIR
# (default /etc/mosquitto/edgekt):
#   ca.key ca.crt                  the edgekt CA (keep ca.key offline in production)
#   server.key server.crt          the broker: SAN localhost, 127.0.0.1, and every --server-name
#   clients/coordinator.{key,crt}  CN=coordinator (the ACL's coordinator user)
#   clients/ID.{key,crt}           CN=ID, one per --device (add more later with add-device.sh)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/mosquitto/pki-lib.sh
. "$HERE/pki-lib.sh"

dir=/etc/mosquitto/edgekt
coordinator=1
names=()
devices=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --server-name) names+=("$2"); shift 2 ;;
    --device) pki_check_id "$2"; devices+=("$2"); shift 2 ;;
    --no-coordinator) coordinator=0; shift ;;
    -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
    *) pki_die "unknown option $1 (see --help)" ;;
  esac
done
command -v openssl >/dev/null || pki_die "openssl not found"

mkdir -p "$dir"
pki_ca "$dir"
san="DNS:localhost,IP:127.0.0.1,IP:::1"
for n in "${names[@]+"${names[@]}"}"; do
  if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then san+=",IP:$n"; else san+=",DNS:$n"; fi
done
pki_issue "$dir" "$dir/server" "${names[0]:-localhost}" serverAuth "$san"
[ "$coordinator" = 1 ] && pki_client "$dir" coordinator
for d in "${devices[@]+"${devices[@]}"}"; do pki_client "$dir" "$d"; done
# Mosquitto drops root privileges to its own user before it reads keys on reload.
if id mosquitto >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then chgrp mosquitto "$dir/server.key" && chmod 0640 "$dir/server.key"; fi
pki_log "PKI ready in $dir"

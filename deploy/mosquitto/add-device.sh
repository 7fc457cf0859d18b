#!/usr/bin/env bash
# add-device.sh ID [--dir DIR] [--cert] [--password [--password-file FILE]]
# Per-device broker credentials (at least one of --cert, --password; default --cert):
#   --cert       DIR/clients/ID.{key,crt}, CN=ID, signed by DIR's CA (make-pki.sh first). Copy the pair
#                and DIR/ca.crt to the device (/etc/edgekt/tls/) for the mutual-TLS listener.
#   --password   adds ID to the Mosquitto password file (default DIR/passwd) with mosquitto_passwd; the
#                password is $EDGEKT_DEVICE_PASSWORD or a new random one, printed once on stdout.
# DIR defaults to /etc/mosquitto/edgekt. Then: systemctl reload mosquitto (re-reads passwd and acl).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/mosquitto/pki-lib.sh
. "$HERE/pki-lib.sh"

if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then sed -n '2,9p' "$0" >&2; exit 2; fi
id="$1"; shift
pki_check_id "$id"
dir=/etc/mosquitto/edgekt
want_cert=0
want_pw=0
pwfile=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --cert) want_cert=1; shift ;;
    --password) want_pw=1; shift ;;
    --password-file) pwfile="$2"; shift 2 ;;
    *) pki_die "unknown option $1" ;;
  esac
done
[ "$want_cert$want_pw" = 00 ] && want_cert=1
pwfile="${pwfile:-$dir/passwd}"

if [ "$want_cert" = 1 ]; then
  [ -s "$dir/ca.key" ] || pki_die "no CA in $dir (run make-pki.sh --dir $dir)"
  pki_client "$dir" "$id"
fi

if [ "$want_pw" = 1 ]; then
  command -v mosquitto_passwd >/dev/null || pki_die "mosquitto_passwd not found (apt-get install mosquitto)"
  pw="${EDGEKT_DEVICE_PASSWORD:-$(openssl rand -base64 24)}"
  mkdir -p "$(dirname "$pwfile")"
  if [ -s "$pwfile" ]; then mosquitto_passwd -b "$pwfile" "$id" "$pw"
  else (umask 077 && mosquitto_passwd -c -b "$pwfile" "$id" "$pw"); fi
  if id mosquitto >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then chgrp mosquitto "$pwfile" && chmod 0640 "$pwfile"; fi
  pki_log "password for $id set in $pwfile"
  [ -n "${EDGEKT_DEVICE_PASSWORD:-}" ] || printf '%s\n' "$pw"
fi

#!/usr/bin/env bash
# Shared by make-pki.sh and add-device.sh (sourced, not run). EC P-256 keys, SHA-256 signatures.
# shellcheck shell=bash

PKI_DAYS="${PKI_DAYS:-825}"

pki_log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
pki_die() { pki_log "error: $*"; exit 1; }

# A device id becomes an MQTT username and a topic level: keep it to one safe level.
pki_check_id() {
  # The agent's config schema takes the same ids (src/config/agent-config.ts).
  [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$ ]] || pki_die "bad id '$1': letters, digits, _ and -, at most 64"
  [[ "$1" != "coordinator" || "${2:-}" == "allow-coordinator" ]] || pki_die "'coordinator' is reserved"
}

pki_key() { # FILE: a private key, 0600, kept if present
  [ -s "$1" ] && return 0
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null)
}

pki_ca() { # DIR: DIR/ca.key, DIR/ca.crt (kept if present)
  local dir="$1"
  pki_key "$dir/ca.key"
  [ -s "$dir/ca.crt" ] && return 0
  openssl req -x509 -new -key "$dir/ca.key" -sha256 -days "$((PKI_DAYS * 2))" -subj "/O=edgekt/CN=edgekt CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.crt" 2>/dev/null
  pki_log "CA: $dir/ca.crt"
}

# pki_issue DIR NAME CN EXT_USAGE [SAN]: DIR/NAME.key + DIR/NAME.crt signed by CA_DIR's CA (kept if
# present and signed by that CA).
pki_issue() {
  local ca_dir="$1" out="$2" cn="$3" usage="$4" san="${5:-}" ext
  pki_key "$out.key"
  if [ -s "$out.crt" ] && openssl verify -CAfile "$ca_dir/ca.crt" "$out.crt" >/dev/null 2>&1; then return 0; fi
  ext="$(mktemp)"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$ext"
  openssl req -new -key "$out.key" -subj "/O=edgekt/CN=$cn" 2>/dev/null |
    openssl x509 -req -CA "$ca_dir/ca.crt" -CAkey "$ca_dir/ca.key" -CAcreateserial -sha256 \
      -days "$PKI_DAYS" -extfile "$ext" -out "$out.crt" 2>/dev/null
  rm -f "$ext"
  pki_log "issued $out.crt (CN=$cn)"
}

pki_client() { # CA_DIR ID: CA_DIR/clients/ID.{key,crt}
  mkdir -p "$1/clients"
  pki_issue "$1" "$1/clients/$2" "$2" clientAuth
}

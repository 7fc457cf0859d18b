#!/usr/bin/env bash
# install-agent.sh: install the edgekt agent as a systemd service on a device (Raspberry Pi OS 64-bit,
# Jetson/JetPack, any Debian-like arm64 or x86-64 with Node 20). Idempotent: re-running upgrades the code,
# keeps /etc/edgekt/agent.yaml and /var/lib/edgekt.
#
#   sudo scripts/install-agent.sh [--tarball FILE | --from DIR] [--device-id ID] [--broker URL]
#   scripts/install-agent.sh --pack FILE          write a release tarball from this checkout, then exit
#
# Options:
#   --from DIR       install from a checkout (default: the one holding this script); needs dist/
#   --tarball FILE   install a release tarball (--pack's output, or any npm-pack-style package/ with dist/)
#   --device-id ID   device.id for a new agent.yaml (default: the short hostname)
#   --broker URL     broker.url for a new agent.yaml (default: mqtts://edgekt-broker:8883)
#   --node PATH      node for ExecStart (default /usr/bin/node, else the node on PATH); Node >= 20
#   --no-deps        skip `npm ci` in /opt/edgekt (dependencies already there, or a staging root)
#   --no-tfjs-node   omit optional deps: no @tensorflow/tfjs-node (its install downloads libtensorflow)
#   --no-start       enable the service but do not (re)start it
#   --prefix DIR     install into DIR as a staging root: no user creation, no systemctl, chown only
#                    where the edgekt user exists
#   --dry-run        print every action, change nothing
set -euo pipefail

SELF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
USER_NAME=edgekt
src="" tarball="" pack="" prefix="" dry=0 deps=1 optional=1 start=1
device_id="" broker="mqtts://edgekt-broker:8883" node_bin=""

log() { printf 'install-agent: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --from) src="$2"; shift 2 ;;
    --tarball) tarball="$2"; shift 2 ;;
    --pack) pack="$2"; shift 2 ;;
    --device-id) device_id="$2"; shift 2 ;;
    --broker) broker="$2"; shift 2 ;;
    --node) node_bin="$2"; shift 2 ;;
    --prefix) prefix="${2%/}"; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --no-deps) deps=0; shift ;;
    --no-tfjs-node) optional=0; shift ;;
    --no-start) start=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) log "unknown option $1"; usage >&2; exit 2 ;;
  esac
done

# What a release holds: enough to run the agent and to re-run this script from it.
PAYLOAD=(package.json package-lock.json bin dist device-profiles README.md deploy/systemd deploy/agent.yaml.template scripts/install-agent.sh)

if [ -n "$pack" ]; then
  [ -f "$SELF_ROOT/dist/cli/main.js" ] || die "no dist/ in $SELF_ROOT: run npm run build first"
  stage="$(mktemp -d)"
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage/package"
  (cd "$SELF_ROOT" && tar -cf - "${PAYLOAD[@]}") | tar -xf - -C "$stage/package"
  tar -czf "$pack" -C "$stage" package
  log "wrote $pack"
  exit 0
fi

# ---- actions: printed under --dry-run, done otherwise ------------------------------------------------
run() {
  if [ "$dry" = 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi
}
# ensure_dir PATH MODE OWNER:GROUP
ensure_dir() {
  run install -d -m "$2" "$1"
  own "$3" "$1"
}
own() { # OWNER:GROUP PATH: chown when both exist (always on a real install: the user was created)
  if [ -z "$prefix" ] || { id -u "${1%%:*}" && getent group "${1#*:}"; } >/dev/null 2>&1; then run chown "$1" "$2"
  else log "staging root: skip chown $1 $2 (no $USER_NAME user here)"; fi
}

D() { printf '%s%s' "$prefix" "$1"; } # a system path, under the staging root if any
ETC="$(D /etc/edgekt)" STATE="$(D /var/lib/edgekt)" OPT="$(D /opt/edgekt)" UNIT_DIR="$(D /etc/systemd/system)"

# ---- checks ----------------------------------------------------------------------------------------
[ -n "$prefix" ] || [ "$dry" = 1 ] || [ "$(id -u)" = 0 ] || die "run as root (or use --prefix DIR / --dry-run)"
if [ -z "$node_bin" ]; then
  if [ -x /usr/bin/node ]; then node_bin=/usr/bin/node; else node_bin="$(command -v node || true)"; fi
fi
if [ -z "$node_bin" ] || [ ! -x "$node_bin" ]; then die "node not found: install Node 20 (see README) or pass --node PATH"; fi
node_major="$("$node_bin" -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "$node_bin is Node $node_major; edgekt needs Node >= 20"
[ -n "$device_id" ] || device_id="$(hostname -s)"
[[ "$device_id" =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$ ]] || die "bad device id '$device_id' (letters, digits, _ and -, at most 64)"

# ---- the package source ----------------------------------------------------------------------------
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ -n "$tarball" ]; then
  [ -f "$tarball" ] || die "no tarball $tarball"
  tar -xzf "$tarball" -C "$tmp"
  src="$tmp/package"
fi
src="${src:-$SELF_ROOT}"
for f in package.json bin/edgekt.js dist/cli/main.js deploy/systemd/edgekt-agent.service deploy/agent.yaml.template; do
  [ -e "$src/$f" ] || die "$src has no $f${tarball:+ (an npm pack tarball lacks dist/: use --pack)}${tarball:- (npm run build first)}"
done
log "installing edgekt $("$node_bin" -p "require('$src/package.json').version") from $src${prefix:+ into $prefix}"

# ---- user and directories --------------------------------------------------------------------------
if [ -z "$prefix" ]; then
  if ! getent passwd "$USER_NAME" >/dev/null; then
    run useradd --system --user-group --home-dir /var/lib/edgekt --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
  fi
  # vcgencmd (throttling on a Pi) talks to /dev/vchiq, which belongs to the video group.
  if getent group video >/dev/null; then run usermod -a -G video "$USER_NAME"; fi
fi
[ -z "$prefix" ] || run install -d "$prefix"
ensure_dir "$ETC" 0750 "root:$USER_NAME"
ensure_dir "$ETC/tls" 0750 "root:$USER_NAME"
ensure_dir "$ETC/trust" 0755 root:root
ensure_dir "$STATE" 0750 "$USER_NAME:$USER_NAME"
ensure_dir "$STATE/cache" 0750 "$USER_NAME:$USER_NAME"

# ---- configuration: written once, never overwritten ------------------------------------------------
if [ -e "$ETC/agent.yaml" ]; then
  log "kept $ETC/agent.yaml"
  fresh_config=0
else
  fresh_config=1
  if [ "$dry" = 1 ]; then
    printf '+ write %s (device.id %s, broker.url %s) from deploy/agent.yaml.template\n' "$ETC/agent.yaml" "$device_id" "$broker"
  else
    sed -e "s|@DEVICE_ID@|$device_id|g" -e "s|@BROKER_URL@|$broker|g" "$src/deploy/agent.yaml.template" >"$tmp/agent.yaml"
    install -m 0640 "$tmp/agent.yaml" "$ETC/agent.yaml"
  fi
  own "root:$USER_NAME" "$ETC/agent.yaml"
fi

# ---- code: staged beside /opt/edgekt, swapped in whole ---------------------------------------------
NEW="$OPT.new"
run rm -rf "$NEW"
run install -d -m 0755 "$NEW"
if [ "$dry" = 1 ]; then printf '+ copy %s from %s to %s\n' "${PAYLOAD[*]}" "$src" "$NEW"
else (cd "$src" && tar -cf - --ignore-failed-read "${PAYLOAD[@]}" 2>/dev/null) | tar -xf - -C "$NEW"; fi
if [ "$deps" = 1 ]; then
  if [ -d "$OPT/node_modules" ] && cmp -s "$OPT/package-lock.json" "$src/package-lock.json"; then
    log "lockfile unchanged: reusing $OPT/node_modules"
    run mv "$OPT/node_modules" "$NEW/node_modules"
  else
    omit=(--omit=dev)
    [ "$optional" = 1 ] || omit+=(--omit=optional)
    # better-sqlite3 builds from source when no prebuilt matches: needs python3, make, g++.
    run env -C "$NEW" PATH="$(dirname "$node_bin"):$PATH" npm ci "${omit[@]}" --ignore-scripts=false --no-audit --no-fund
  fi
fi
run rm -rf "$OPT.old"
if [ -e "$OPT" ]; then run mv "$OPT" "$OPT.old"; fi
run mv "$NEW" "$OPT"
run rm -rf "$OPT.old"
[ -n "$prefix" ] || run chown -R root:root "$OPT"

# ---- systemd unit ----------------------------------------------------------------------------------
ensure_dir "$UNIT_DIR" 0755 root:root
UNIT="$UNIT_DIR/edgekt-agent.service"
if [ "$dry" = 1 ]; then printf '+ write %s (ExecStart node: %s)\n' "$UNIT" "$node_bin"
else
  sed -e "s|^ExecStart=/usr/bin/node |ExecStart=$node_bin |" "$src/deploy/systemd/edgekt-agent.service" >"$tmp/unit"
  install -m 0644 "$tmp/unit" "$UNIT"
fi
# Raspberry Pi: vcgencmd needs /dev/vchiq, which PrivateDevices=yes hides.
if [ -e /dev/vchiq ]; then
  run install -d -m 0755 "$UNIT.d"
  if [ "$dry" = 1 ]; then printf '+ write %s\n' "$UNIT.d/10-vchiq.conf"
  else printf '[Service]\nPrivateDevices=no\nDevicePolicy=closed\nDeviceAllow=/dev/vchiq rw\nSupplementaryGroups=video\n' >"$UNIT.d/10-vchiq.conf"; fi
fi

if [ -n "$prefix" ]; then log "staged into $prefix (no systemctl)"; exit 0; fi
if [ ! -d /run/systemd/system ]; then log "systemd is not running here: unit installed, not enabled"; exit 0; fi
run systemctl daemon-reload
run systemctl enable edgekt-agent.service
if [ "$fresh_config" = 1 ]; then
  log "new $ETC/agent.yaml: put the TLS files in $ETC/tls and the coordinator key in $ETC/trust, then: systemctl start edgekt-agent"
elif [ "$start" = 1 ]; then
  run systemctl restart edgekt-agent.service
fi
log "done"

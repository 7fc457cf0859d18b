#!/usr/bin/env bash
# arm64 smoke under qemu user emulation (issue 10 part 9): `npm run test:arm64`.
# Runs scripts/arm64/setup.sh first (idempotent; a no-op when the cache is ready), copies the current
# dist/, bin/ and device-profiles/ beside the arm64 node_modules in .cache/arm64/app, then checks with the
# arm64 node: process.arch, `edgekt runtime --json` (backend wasm or cpu, arch arm64), better-sqlite3
# (WAL, insert, integrity_check). Prints per-step timings; exits non-zero on the first failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${EDGEKT_ARM64_CACHE:-$ROOT/.cache/arm64}"
APP="$CACHE/app"
ARM64_NODE="$CACHE/node/bin/node"

log() { printf 'arm64-smoke: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
t_all=$SECONDS
step() { # NAME: prints the time since the previous step
  local now=$SECONDS
  log "$1 ($((now - ${t_step:-$now})) s)"
  t_step=$now
}
t_step=$SECONDS

bash "$ROOT/scripts/arm64/setup.sh"
step "setup checked"

# The arm64 node runs through binfmt_misc when it is registered (a device-like host, or a container with
# the host's binfmt), else through qemu-aarch64-static explicitly (no binfmt in unprivileged containers).
if [ -r /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64; then
  RUN=("$ARM64_NODE"); how=binfmt
else
  command -v qemu-aarch64-static >/dev/null || die "qemu-aarch64-static not found (run scripts/arm64/setup.sh as root)"
  RUN=(qemu-aarch64-static "$ARM64_NODE"); how=qemu-aarch64-static
fi
export EDGEKT_ARM64_RUN="${RUN[*]}"

if [ ! -f "$ROOT/dist/cli/main.js" ]; then
  log "dist/ missing: building with the host tsc"
  (cd "$ROOT" && npx tsc -p tsconfig.build.json)
fi
rm -rf "${APP:?}/dist" "${APP:?}/bin" "${APP:?}/device-profiles" "${APP:?}/test"
cp -a "$ROOT/dist" "$ROOT/bin" "$ROOT/device-profiles" "$APP/"
step "app synced"

arch="$(cd "$APP" && "${RUN[@]}" -p 'process.arch + " " + process.version')"
[ "${arch%% *}" = arm64 ] || die "process.arch is '$arch', expected arm64"
step "node $arch via $how"

json="$(cd "$APP" && "${RUN[@]}" bin/edgekt.js runtime --json)" || die "edgekt runtime --json failed"
# shellcheck disable=SC2016 # JavaScript, not shell
printf '%s\n' "$json" | node -e '
  let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => {
    const r = JSON.parse(s);
    const ok = ["wasm", "cpu"].includes(r.backend) && r.machine && r.machine.arch === "arm64";
    console.error(`arm64-smoke: runtime backend=${r.backend} arch=${r.machine?.arch} simd=${r.simd} tfjs=${r.tfjsVersion}`);
    process.exit(ok ? 0 : 1);
  });' || die "runtime --json must report backend wasm|cpu and arch arm64: $json"
step "edgekt runtime --json"

db_dir="$(mktemp -d)"
trap 'rm -rf "$db_dir"' EXIT
# shellcheck disable=SC2016 # JavaScript, not shell
(cd "$APP" && "${RUN[@]}" --input-type=module -e '
  import Database from "better-sqlite3";
  const db = new Database(process.argv[1] + "/smoke.db");
  const mode = db.pragma("journal_mode = WAL", { simple: true });
  if (mode !== "wal") throw new Error(`journal_mode ${mode}`);
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
  const ins = db.prepare("INSERT INTO t (v) VALUES (?)");
  db.transaction((n) => { for (let i = 0; i < n; i++) ins.run(`row ${i}`); })(1000);
  const count = db.prepare("SELECT count(*) AS c FROM t").get().c;
  const check = db.pragma("integrity_check", { simple: true });
  db.close();
  if (count !== 1000 || check !== "ok") throw new Error(`count ${count}, integrity_check ${check}`);
  console.error(`arm64-smoke: better-sqlite3 ${process.arch}: wal, 1000 rows, integrity_check ok`);
' "$db_dir") || die "better-sqlite3 check failed"
step "better-sqlite3"

# ---- HOOK: the agent's end-to-end smoke under arm64 ------------------------------------------------
# When test/arm64/agent-smoke.mjs exists, test/arm64/ is copied into the app dir and the script runs with
# the arm64 node, cwd = .cache/arm64/app (dist/, bin/, arm64 node_modules), EDGEKT_ARM64_RUN = the command
# prefix that runs the arm64 node (for child processes). Its exit code is the smoke's.
if [ -f "$ROOT/test/arm64/agent-smoke.mjs" ]; then
  mkdir -p "$APP/test" && cp -a "$ROOT/test/arm64" "$APP/test/"
  (cd "$APP" && "${RUN[@]}" test/arm64/agent-smoke.mjs) || die "test/arm64/agent-smoke.mjs failed"
  step "agent smoke"
else
  log "agent smoke: skipped (test/arm64/agent-smoke.mjs not present yet)"
fi
# ---- end HOOK ---------------------------------------------------------------------------------------

log "passed in $((SECONDS - t_all)) s"

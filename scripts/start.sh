#!/usr/bin/env bash
# `npm start`: the one-command demo. Installs what is missing (scripts/setup.sh, which also
# installs code-server and builds the bundles), prepares a demo workspace in
# .cache/demo/workspace (the shipped recipes, a sample prompt set, a `local` launch target),
# loads this repository as an unpacked extension into a fresh extensions dir, and serves
# VS Code (code-server) on 127.0.0.1. Ctrl-C stops it.
#
#   npm start                 # http://127.0.0.1:8420/ (or the next free port)
#   npm start -- --port 9000  # another port (PORT=9000 npm start works too)
#   npm start -- --fresh      # reset the demo workspace (runs, edits) to the shipped content
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PORT=${PORT:-8420}
FRESH=0
while (($#)); do
  case "$1" in
    --port) PORT=${2:?--port needs a number}; shift 2 ;;
    --port=*) PORT=${1#--port=}; shift ;;
    --fresh) FRESH=1; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "npm start: unknown option '$1' (see: npm start -- --help)" >&2; exit 2 ;;
  esac
done
# checked before setup (minutes on a fresh machine): 0 would print :0 and serve elsewhere, 70000 crashed the port search
[[ "$PORT" =~ ^[0-9]{1,5}$ ]] && ((10#$PORT >= 1 && 10#$PORT <= 65535)) || { echo "npm start: --port must be a number from 1 to 65535 (got '$PORT')" >&2; exit 2; }
PORT=$((10#$PORT))
say() { printf '\033[1m[start]\033[0m %s\n' "$*" >&2; }

bash scripts/setup.sh
ENTRY=$ROOT/.cache/code-server/node_modules/code-server/out/node/entry.js
[[ -f "$ENTRY" ]] || { say "code-server is not installed (scripts/setup.d/code-server.sh failed?)"; exit 1; }

DEMO=$ROOT/.cache/demo
WS=$DEMO/workspace
if ((FRESH)); then say "resetting the demo workspace"; rm -rf "$WS" "$DEMO/user-data"; fi
mkdir -p "$WS"
# Shipped content is copied without overwriting, so edits and runs survive a restart.
cp -rn demo/. "$WS"/
mkdir -p "$WS/recipes"
cp -rn recipes/. "$WS/recipes"/
# Launch syncs the runtime and the allocator model the extension ships (this repository).
# The `local` target uses this repository's Python environment as is (no venv is built).
if [[ ! -f "$WS/.vscode/settings.json" ]] || grep -q '__CONSCIENCE_ROOT__' "$WS/.vscode/settings.json"; then
  # the path written as JSON string content, by node: no sed (a #, &, \ or " in the path broke the rewrite or the JSON)
  ROOT="$ROOT" node -e 'const fs = require("fs"); const [inp, out] = process.argv.slice(1);
    fs.writeFileSync(out, fs.readFileSync(inp, "utf8").split("__CONSCIENCE_ROOT__").join(JSON.stringify(process.env.ROOT).slice(1, -1)));' \
    demo/.vscode/settings.json "$WS/.vscode/settings.json"
fi

# A fresh extensions dir each start: an unpacked extension there is picked up as installed.
EXT=$DEMO/extensions
rm -rf "$EXT"
mkdir -p "$EXT"
ID=$(node -p 'const p=require("./package.json"); `${p.publisher}.${p.name}-${p.version}`')
ln -s "$ROOT" "$EXT/$ID"

USERDATA=$DEMO/user-data
mkdir -p "$USERDATA/User"
if [[ ! -f "$USERDATA/User/settings.json" ]]; then
  cat > "$USERDATA/User/settings.json" <<'JSON'
{
  "workbench.startupEditor": "readme",
  "security.workspace.trust.enabled": false,
  "telemetry.telemetryLevel": "off",
  "extensions.autoUpdate": false,
  "extensions.autoCheckUpdates": false,
  "update.mode": "none",
  "git.enabled": false
}
JSON
fi

# The first free port from $PORT on (up to 65535).
PORT=$(node -e '
const net = require("net");
const from = Number(process.argv[1]);
const tryPort = (p) => {
  if (p > 65535) { console.error(`npm start: no free port from ${from} to 65535 on 127.0.0.1; pick another with --port`); process.exit(1); }
  const s = net.createServer(); s.once("error", () => tryPort(p + 1));
  s.listen(p, "127.0.0.1", () => s.close(() => console.log(p))); };
tryPort(from);' "$PORT")

printf 'auth: none\ncert: false\n' > "$DEMO/config.yaml"
say "code-server $(node -p 'require("./.cache/code-server/node_modules/code-server/package.json").version') with Chain of Conscience $(node -p 'require("./package.json").version')"
say "workspace: $WS"
printf '\n  \033[1mOpen http://127.0.0.1:%s/\033[0m   (Ctrl-C stops it)\n\n' "$PORT"
export VSCODE_IPC_HOOK_CLI=
exec node "$ENTRY" \
  --auth none \
  --bind-addr "127.0.0.1:$PORT" \
  --config "$DEMO/config.yaml" \
  --user-data-dir "$USERDATA" \
  --extensions-dir "$EXT" \
  --disable-telemetry \
  --disable-update-check \
  --disable-getting-started-override \
  "$WS"

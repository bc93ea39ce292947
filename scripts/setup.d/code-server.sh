#!/usr/bin/env bash
# Installs code-server (a real VS Code that runs in the browser and offline) into
# .cache/code-server, outside package.json: `npm start` serves the demo with it and the
# end-to-end tests (tests/e2e) drive it with Chromium. code-server 4.99.x is the line whose
# Node requirement (20) matches this machine; see docs/development.md.
#
# Idempotent: when the pinned version is installed and its VS Code build is complete, it
# returns at once.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=${CODE_SERVER_VERSION:-4.99.4}
DEST=$PWD/.cache/code-server
ENTRY=$DEST/node_modules/code-server/out/node/entry.js
STAMP=$DEST/.installed-$VERSION
say() { printf '\033[1m[code-server]\033[0m %s\n' "$*" >&2; }

if [[ -f "$STAMP" && -f "$ENTRY" && -d "$DEST/node_modules/code-server/lib/vscode/node_modules" ]]; then
  exit 0
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [[ "$node_major" != 20 ]]; then
  say "code-server $VERSION needs Node 20, this machine has $(node --version); set CODE_SERVER_VERSION to a matching release"
  exit 1
fi
for tool in rg g++ make python3 pkg-config; do
  command -v "$tool" >/dev/null || { say "missing '$tool' (scripts/setup.sh installs it as root)"; exit 1; }
done

# code-server's postinstall runs `npm install` inside lib/vscode, where @vscode/ripgrep
# downloads rg from GitHub unless a tarball is already in its cache under os.tmpdir().
# Seed that cache with Debian's rg so the install works offline.
TMP=$DEST/tmp
RG_PKG=1.15.11 RG_TAG=v13.0.0-10
mkdir -p "$TMP/vscode-ripgrep-cache-$RG_PKG" "$TMP/rg"
cp "$(command -v rg)" "$TMP/rg/rg"
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-gnu aarch64-unknown-linux-musl; do
  tar -czf "$TMP/vscode-ripgrep-cache-$RG_PKG/ripgrep-$RG_TAG-$target.tar.gz" -C "$TMP/rg" rg
done

say "installing code-server $VERSION into .cache/code-server (a few minutes, once)"
mkdir -p "$DEST"
[[ -f "$DEST/package.json" ]] || echo '{ "name": "code-server-host", "private": true }' > "$DEST/package.json"
rm -f "$DEST"/.installed-*
(
  cd "$DEST"
  export TMPDIR=$TMP npm_config_yes=true
  # --unsafe-perm: as root, npm would otherwise drop privileges for the postinstall.
  npm install --no-audit --no-fund --no-save --loglevel=error \
    --unsafe-perm --foreground-scripts "code-server@$VERSION" > "$DEST/install.log" 2>&1 || {
    tail -40 "$DEST/install.log" >&2
    say "install failed; full log in .cache/code-server/install.log"
    exit 1
  }
)
[[ -f "$ENTRY" ]] || { say "install finished but $ENTRY is missing"; exit 1; }
touch "$STAMP"
say "installed code-server $(node -p 'require(process.argv[1]).version' "$DEST/node_modules/code-server/package.json")"

#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine, idempotently:
# system packages (apt-get, as root), npm packages, the Python runtime in .venv,
# and the bundles. Each step is skipped when its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STAMPS=.cache/stamps
mkdir -p "$STAMPS"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# --- system packages ------------------------------------------------------------------
# sshd, SLURM and munge for the launch tests; chromium for webview and end-to-end tests;
# the rest are what code-server's native modules build against (see docs/development.md).
APT_PACKAGES=(
  openssh-server openssh-client rsync procps psmisc
  slurm-wlm munge
  chromium fonts-dejavu-core
  ripgrep libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev pkg-config build-essential python3
)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]]; then
    say "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "missing system packages (run as root to install): ${missing[*]}"
  fi
fi

# --- npm --------------------------------------------------------------------------------
# onnxruntime-node's install script downloads CUDA files; its CPU binaries ship in the tarball.
export ONNXRUNTIME_NODE_INSTALL=skip
npm_hash=$(hash_of package.json package-lock.json)
if [[ ! -d node_modules || "$(cat $STAMPS/npm 2>/dev/null)" != "$npm_hash" ]]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$npm_hash" > $STAMPS/npm
fi

# --- Python runtime -----------------------------------------------------------------------
PY=${PYTHON:-python3}
py_hash=$(hash_of runtime/pyproject.toml runtime/requirements/*.txt)
if [[ ! -x .venv/bin/python || "$(cat $STAMPS/venv 2>/dev/null)" != "$py_hash" ]]; then
  say "python venv (.venv)"
  [[ -x .venv/bin/python ]] || "$PY" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
  # The CPU build of torch (a CUDA build would be several GB).
  .venv/bin/pip install -q --disable-pip-version-check -r runtime/requirements/cpu.txt
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e runtime
  echo "$py_hash" > $STAMPS/venv
fi

# --- extra setup steps owned by features (code-server for the e2e suite, ...) ---------------
for step in scripts/setup.d/*.sh; do
  [[ -e "$step" ]] || continue
  say "$(basename "$step")"
  bash "$step"
done

# --- bundles ----------------------------------------------------------------------------
say "build"
node esbuild.mjs >/dev/null 2>&1 || node esbuild.mjs

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

# --- the Python runtime and the features' setup steps, side by side ------------------------
# .venv (the runtime), then scripts/setup.d/*.sh (code-server for the e2e suite, the other
# Python stacks, ...). Each is mostly downloads, unpacking and native builds, and none needs
# another, so they run in parallel: setup takes about as long as the longest, not the sum.
# Each writes to .cache/setup-logs/NAME.log, shown when it ends; a failure fails setup after
# the others have finished, with the failed step's log tail.
venv_step() {
  local PY=${PYTHON:-python3}
  local py_hash
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
}
LOGS=.cache/setup-logs
mkdir -p "$LOGS"
names=() pids=()
start_step() { # NAME COMMAND...
  local name=$1; shift
  ( set -e; "$@" ) > "$LOGS/$name.log" 2>&1 &
  names+=("$name"); pids+=($!)
}
# on Ctrl-C each step's whole tree is stopped
source scripts/kill-tree.sh
trap 'for p in "${pids[@]}"; do kill_tree "$p"; done; exit 130' INT TERM
start_step venv venv_step
for step in scripts/setup.d/*.sh; do
  [[ -e "$step" ]] && start_step "$(basename "$step" .sh)" bash "$step"
done
failed=()
for i in "${!pids[@]}"; do
  if wait "${pids[$i]}"; then
    cat "$LOGS/${names[$i]}.log" >&2
  else
    tail -40 "$LOGS/${names[$i]}.log" >&2
    failed+=("${names[$i]}")
  fi
done
trap - INT TERM
if ((${#failed[@]})); then
  say "failed: ${failed[*]} (full logs in $LOGS/)"
  exit 1
fi

# --- bundles ----------------------------------------------------------------------------
say "build"
node esbuild.mjs >/dev/null 2>&1 || node esbuild.mjs

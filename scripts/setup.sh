#!/usr/bin/env bash
# What both commands need besides the Rust toolchain: Debian's bubblewrap (every harness runs in
# it), the pinned pi and the web UI's packages, installed project-locally with `npm ci` (never
# globally). Sourced by scripts/run.sh and scripts/test.sh.
set -euo pipefail

step() { printf '\n== %s\n' "$*"; }

step "system packages"
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
bwrap --version

step "harnesses (project-local, pinned)"
node --version
if [ ! -x harnesses/pi/node_modules/.bin/pi ] || [ harnesses/pi/package-lock.json -nt harnesses/pi/node_modules/.package-lock.json ]; then
  npm ci --prefix harnesses/pi --no-audit --no-fund --loglevel=error
fi
harnesses/pi/node_modules/.bin/pi --version

step "web UI packages (project-local, pinned)"
if [ ! -d frontend/node_modules/.bin ] || [ frontend/package-lock.json -nt frontend/node_modules/.package-lock.json ]; then
  npm ci --prefix frontend --no-audit --no-fund --loglevel=error
fi

#!/usr/bin/env bash
# Sets up and runs every test of Octo: formatting, lints, the whole test suite (debug builds),
# and a few-second smoke run of each benchmark. `.ci/run` calls exactly this.
#
# Needs: the Rust toolchain with cargo-nextest, Node 20 with npm, and apt (as root or
# with sudo) for the system packages the tests run for real. Installs what else it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
cargo --version
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest is missing; installing it"
  cargo install --locked cargo-nextest
fi
cargo nextest --version | head -n 1

step "system packages"
# Real parts: the sandbox tests run Debian's bubblewrap.
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
# The real pi, from the npm registry at the version the lock file pins; never installed globally.
node --version
if [ ! -x harnesses/pi/node_modules/.bin/pi ] || [ harnesses/pi/package-lock.json -nt harnesses/pi/node_modules/.package-lock.json ]; then
  npm ci --prefix harnesses/pi --no-audit --no-fund --loglevel=error
fi
harnesses/pi/node_modules/.bin/pi --version

step "format"
cargo fmt --all -- --check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo nextest run --workspace --locked --profile ci
cargo test --workspace --locked --doc

step "benchmark smoke runs (figures are not meaningful here; see README for real runs)"
cargo run --locked --quiet -p octo-tools --bin octo-bench -- log --seconds 0.3 --dir target/bench-smoke >/dev/null
echo "octo-bench log: ok"
cargo run --locked --quiet -p octo-tools --bin octo-bench -- codec --seconds 0.05 >/dev/null
echo "octo-bench codec: ok"

step "all tests passed"

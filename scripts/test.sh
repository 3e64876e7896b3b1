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

source scripts/setup.sh

step "test-only system packages"
if ! command -v chromium >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: chromium (opens octoctl's exported HTML; the UI's end-to-end tests)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
chromium --version

step "test clients (project-local, pinned)"
if [ ! -d gateway/tests/graphql/node_modules/graphql-ws ] || [ gateway/tests/graphql/package-lock.json -nt gateway/tests/graphql/node_modules/.package-lock.json ]; then
  npm ci --prefix gateway/tests/graphql --no-audit --no-fund --loglevel=error
fi

step "format"
cargo fmt --all -- --check

step "web UI: lint, type check, unit tests, build"
npm run --prefix frontend --silent lint
npm run --prefix frontend --silent typecheck
npm run --prefix frontend --silent test
npm run --prefix frontend --silent build

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo nextest run --workspace --locked --profile ci
cargo test --workspace --locked --doc

# The test build above made every binary these need (a package's binaries are built for its
# integration tests); running them directly avoids a second build with other feature flags.
bin=target/debug
for b in octo octo-model octo-proxy octo-bench octo-hstry; do
  [ -x "$bin/$b" ] || { echo "missing $bin/$b: the test build should have made it" >&2; exit 1; }
done

step "web UI end to end (Playwright in Debian's Chromium, real octo, pi and scripted model)"
OCTO_BIN_DIR="$PWD/$bin" CHROMIUM="$(command -v chromium)" npm run --prefix frontend --silent e2e
echo "screenshots: frontend/e2e/artifacts/"

step "benchmark smoke runs (figures are not meaningful here; see README for real runs)"
"$bin/octo-bench" log --seconds 0.3 --dir target/bench-smoke >/dev/null
echo "octo-bench log: ok"
"$bin/octo-bench" codec --seconds 0.05 >/dev/null
echo "octo-bench codec: ok"
"$bin/octo-bench" rebuild --sessions 2 --messages 50 --dir target/bench-smoke >/dev/null
echo "octo-bench rebuild: ok"
"$bin/octo-bench" hstry --messages 200 --seconds 0.2 --dir target/bench-smoke >/dev/null
echo "octo-bench hstry: ok"
"$bin/octo-bench" graphql --messages 200 --sessions 5 --seconds 0.2 --dir target/bench-smoke >/dev/null 2>target/bench-smoke/graphql.err \
  || { cat target/bench-smoke/graphql.err; exit 1; }
echo "octo-bench graphql: ok"
"$bin/octo-bench" fanout --subscribers 1,20 --rates 200,0 --seconds 0.3 --warmup 0.2 --dir target/bench-smoke >/dev/null
"$bin/octo-bench" fanout --bare raw --subscribers 20 --rates 200 --seconds 0.3 --warmup 0.2 --dir target/bench-smoke >/dev/null
echo "octo-bench fanout: ok"

step "all tests passed"

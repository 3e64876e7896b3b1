#!/usr/bin/env bash
# Sets up and starts Octo on the embedded default: the fjall log and projections in
# $XDG_DATA_HOME/octo, one user, the local runner, and, unless an LLM provider is configured for pi
# (an *_API_KEY variable or ~/.pi/agent/models.json), the demo mode on Octo's scripted model.
# Prints the URL and the first user's token. Extra arguments go to `octo serve`
# (e.g. --listen 0.0.0.0:8477, --workspaces ~/code, --model anthropic/claude-sonnet-4-5).
#
# Needs: the Rust toolchain, Node 20 with npm, and apt (as root or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

step "building the web UI"
npm run --prefix frontend --silent build

step "building Octo (release)"
cargo build --release --locked -p octo-gateway -p octo-tools -p octo-hstry --bin octo --bin octoctl --bin octo-hstry

step "starting Octo (Ctrl-C stops it)"
exec ./target/release/octo serve --pi "$PWD/harnesses/pi/node_modules/.bin/pi" "$@"

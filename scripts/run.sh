#!/usr/bin/env bash
# Sets up and starts Octo on the embedded default. Today that is the event log and its tools; the
# server (`octo serve`) arrives with the end-to-end session issue, and this script will start it.
#
# Needs: the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building Octo (release)"
cargo build --release --locked --workspace

data_dir="${XDG_DATA_HOME:-$HOME/.local/share}/octo"
mkdir -p "$data_dir"
echo
echo "== what runs today: the event log, measured on this machine's disk"
./target/release/octo-bench log --seconds 2 --dir "$data_dir"

#!/usr/bin/env bash
# The demo on a fresh machine: builds the Rust math worker and the demo parent, sets up the
# Python environment for the Python worker, then runs the parent, which calls both.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="$(bash scripts/python-env.sh)"
cargo build --release -p math-worker -p demo
exec target/release/demo --python "$python" --python-worker tests/python/comlink_peer.py

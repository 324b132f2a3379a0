#!/usr/bin/env bash
# Runs every check and test of the workspace on a fresh machine: sets up the Python virtualenv
# used by the interop tests (target/pyenv), then formatting, lints and the whole test suite.
# CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "==> Python environment (pyzmq, msgpack, our ./python package)" >&2
bash scripts/python-env.sh >/dev/null

echo "==> cargo fmt --check" >&2
cargo fmt --all --check

echo "==> cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo test" >&2
cargo test --workspace --locked

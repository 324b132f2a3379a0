#!/usr/bin/env bash
# Runs every check and test of the workspace on a fresh machine: sets up the Python virtualenv
# (target/pyenv) and the Node packages (tests/node/node_modules) used by the interop tests, then
# formatting, lints, the whole test suite, a smoke run of the benchmark and `cargo package` of
# the published crates.
# CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "==> Python environment (pyzmq, msgpack, our ./python package)" >&2
bash scripts/python-env.sh >/dev/null

echo "==> Node peer environment (zeromq, msgpackr)" >&2
bash scripts/node-env.sh >/dev/null

echo "==> cargo fmt --check" >&2
cargo fmt --all --check

echo "==> cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo test" >&2
cargo test --workspace --locked --no-fail-fast

echo "==> benchmark smoke run (debug build: the figures mean nothing, the run must work)" >&2
cargo run --locked -p multifrost-bench -- --quick --out target/bench/smoke.json >/dev/null

echo "==> cargo package (the three published crates, offline, built from their packages)" >&2
cargo package --locked --offline --allow-dirty -p multifrost-macros -p multifrost -p multifrost-cli

#!/usr/bin/env bash
# The long versions of the hostile-input and load tests, in a release build:
#   - 1,000,000 random and mutated messages from a raw DEALER at a Rust child
#     (tests/tests/hostile_raw_dealer.rs),
#   - 2,000,000 mutated inputs through the fuzz targets' code on stable
#     (tests/tests/hostile_fuzz_replay.rs),
#   - 100,000 mixed calls from 8 tasks, and the SIGSTOP-stalled child (tests/tests/soak.rs).
# The suite runs the short versions (20,000 messages, 200,000 inputs, 10,000 calls).
#
#   scripts/soak.sh            everything above
#   scripts/soak.sh hostile    only the hostile-input tests, tests/tests/hostile_*.rs (or: soak,
#                              or one test's name, e.g. hostile_raw_dealer)
# Figures (messages/s, calls/s, RSS before/peak/after) are printed on stderr.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export MULTIFROST_LONG=1
suites=("$@")
if [[ ${#suites[@]} -eq 0 ]]; then
    suites=(hostile soak)
fi
for suite in "${suites[@]}"; do
    echo "==> $suite (long, release)" >&2
    # "hostile" names the group of files: cargo's --test takes a glob.
    if [[ "$suite" == hostile ]]; then
        suite='hostile_*'
    fi
    cargo test --release -p multifrost-integration --test "$suite" -- --nocapture --test-threads=1
done

#!/usr/bin/env bash
# Install (once) the npm packages of the Node test peer (tests/node: zeromq, msgpackr) and
# print the path of the peer script on stdout. Everything else goes to stderr.
#
#   scripts/node-env.sh              -> prints e.g. /repo/tests/node/comlink_peer.mjs
#
# The packages go to tests/node/node_modules (git-ignored): Node resolves an ES module's
# imports from the folders above the script, so they must sit beside it.
# Idempotent and safe to run concurrently: the work happens under an flock on
# target/nodeenv.lock, and a stamp file holding the sha256 of tests/node/package-lock.json
# makes a re-run with an unchanged lock file a no-op (no npm, no lock). Works
# non-interactively (CI=true, no stdin). Needs node and npm on PATH (or NODE / NPM).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEER_DIR="$REPO/tests/node"
LOCKFILE="$PEER_DIR/package-lock.json"
PEER="$PEER_DIR/comlink_peer.mjs"
MODULES="$PEER_DIR/node_modules"
STAMP="$MODULES/.package-lock.sha256"
TARGET="$REPO/target"
LOCK="$TARGET/nodeenv.lock"
NODE="${NODE:-node}"
NPM="${NPM:-npm}"

want="$(sha256sum "$LOCKFILE" | cut -d' ' -f1)"

up_to_date() {
    [[ -f "$STAMP" && "$(cat "$STAMP" 2>/dev/null)" == "$want" ]]
}

# Fast path: no lock needed, the stamp is only written once the install is complete.
if up_to_date; then
    echo "$PEER"
    exit 0
fi

mkdir -p "$TARGET"
exec 9>"$LOCK"
if ! flock -w 900 9; then
    echo "node-env.sh: timed out waiting for $LOCK" >&2
    exit 1
fi

# Another process may have finished the job while we waited.
if up_to_date; then
    echo "$PEER"
    exit 0
fi

if ! command -v "$NODE" >/dev/null || ! command -v "$NPM" >/dev/null; then
    echo "node-env.sh: node and npm are needed (set NODE / NPM to use others)" >&2
    exit 1
fi

export CI=true npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

# npm ci removes any previous node_modules and installs exactly what the lock file says.
# zeromq ships its native addon inside the npm package (build/<platform>/...), and
# msgpackr's optional native part comes as an npm package too: nothing is downloaded from
# anywhere but the npm registry.
echo "node-env.sh: npm ci in $PEER_DIR ($("$NODE" --version))" >&2
(cd "$PEER_DIR" && "$NPM" ci --no-audit --no-fund </dev/null >&2)

# Fail here, with npm's output above, rather than in a test: the addon must load.
if ! (cd "$PEER_DIR" && "$NODE" --input-type=module \
    -e 'await import("zeromq"); await import("msgpackr");' </dev/null >&2); then
    echo "node-env.sh: zeromq or msgpackr does not load after npm ci" >&2
    exit 1
fi

printf '%s\n' "$want" >"$STAMP.tmp"
mv -f "$STAMP.tmp" "$STAMP"
echo "$PEER"

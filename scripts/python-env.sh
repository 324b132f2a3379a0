#!/usr/bin/env bash
# Create (once) the Python virtualenv used by the cross-language tests and print
# the path of its python on stdout. Everything else goes to stderr. The venv holds
# tests/python/requirements.txt and our own worker package, python/ (multifrost).
#
#   scripts/python-env.sh            -> prints e.g. /repo/target/pyenv/bin/python
#
# Idempotent and safe to run concurrently: the work happens under an flock on
# target/pyenv.lock, and a stamp file holding a sha256 over
# tests/python/requirements.txt and the files of the python/ package makes a
# re-run with nothing changed a no-op (no pip, no lock); a changed package is
# re-installed. Works non-interactively (CI=true, no stdin).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQ="$REPO/tests/python/requirements.txt"
PKG="$REPO/python"
TARGET="$REPO/target"
VENV="$TARGET/pyenv"
PY="$VENV/bin/python"
STAMP="$VENV/.requirements.sha256"
LOCK="$TARGET/pyenv.lock"
PYTHON3="${PYTHON3:-python3}"

# The package's files as pip builds them (no caches, no build leftovers).
package_files() {
    (cd "$PKG" && find pyproject.toml README.md multifrost -type f \
        ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort)
}
want="$({
    sha256sum "$REQ" | cut -d' ' -f1
    package_files | while read -r f; do
        printf '%s %s\n' "$f" "$(sha256sum "$PKG/$f" | cut -d' ' -f1)"
    done
} | sha256sum | cut -d' ' -f1)"

up_to_date() {
    [[ -x "$PY" && -f "$STAMP" && "$(cat "$STAMP" 2>/dev/null)" == "$want" ]]
}

# Fast path: no lock needed, the stamp is only written once the env is complete.
if up_to_date; then
    echo "$PY"
    exit 0
fi

mkdir -p "$TARGET"
exec 9>"$LOCK"
if ! flock -w 900 9; then
    echo "python-env.sh: timed out waiting for $LOCK" >&2
    exit 1
fi

# Another process may have finished the job while we waited.
if up_to_date; then
    echo "$PY"
    exit 0
fi

export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# A venv whose python is missing or broken (half-created, or the base python
# went away) is rebuilt from scratch.
if [[ -d "$VENV" ]] && ! "$PY" -c 'import sys' </dev/null >/dev/null 2>&1; then
    echo "python-env.sh: removing broken virtualenv $VENV" >&2
    rm -rf "$VENV"
fi
if [[ ! -d "$VENV" ]]; then
    echo "python-env.sh: creating virtualenv $VENV" >&2
    "$PYTHON3" -m venv "$VENV" </dev/null >&2
fi

rm -f "$STAMP"
echo "python-env.sh: installing $(tr '\n' ' ' <"$REQ")" >&2
"$PY" -m pip install --disable-pip-version-check -q -r "$REQ" </dev/null >&2

# Our package, built from a copy so that the build leaves nothing in python/. Its
# dependencies are the pinned ones above; the build itself needs setuptools (PyPI).
echo "python-env.sh: installing ./python (multifrost)" >&2
build="$(mktemp -d "$TARGET/pyenv-build.XXXXXX")"
trap 'rm -rf "$build"' EXIT
package_files | while read -r f; do
    mkdir -p "$build/$(dirname "$f")"
    cp "$PKG/$f" "$build/$f"
done
"$PY" -m pip install --disable-pip-version-check -q --no-deps --force-reinstall "$build" \
    </dev/null >&2

printf '%s\n' "$want" >"$STAMP.tmp"
mv -f "$STAMP.tmp" "$STAMP"
echo "$PY"

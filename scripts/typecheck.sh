#!/usr/bin/env bash
# Type-check the one import package, edgepolicy, as it is installed: webhook/ and bundles/ are its
# subpackages edgepolicy.webhook and edgepolicy.bundles (setuptools' package-dir mapping in
# pyproject.toml), which mypy cannot see in the source tree. A tree of symbolic links under
# .typecheck/ (rebuilt on each run, ignored by Git) lays the package out as installed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TREE="$ROOT/.typecheck"
rm -rf "$TREE/edgepolicy" && mkdir -p "$TREE/edgepolicy"
for entry in "$ROOT"/edgepolicy/*; do ln -s "$entry" "$TREE/edgepolicy/"; done
ln -s "$ROOT/webhook" "$TREE/edgepolicy/webhook"
ln -s "$ROOT/bundles" "$TREE/edgepolicy/bundles"
cd "$TREE" && exec "$ROOT/.venv/bin/mypy" --config-file "$ROOT/pyproject.toml" --cache-dir "$ROOT/.mypy_cache" "$@" -p edgepolicy

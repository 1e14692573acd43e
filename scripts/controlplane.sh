#!/usr/bin/env bash
# Start, stop and inspect the local test control plane (etcd + kube-apiserver on 127.0.0.1).
# Usage: scripts/controlplane.sh [--dir DIR] start|stop|status|env   (details: scripts/controlplane.py)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || { echo "controlplane: run 'make setup' first (no $PY)" >&2; exit 1; }
exec "$PY" "$ROOT/scripts/controlplane.py" "$@"

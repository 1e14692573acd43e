#!/usr/bin/env bash
# `make run`: show edgepolicy working on this machine.
#   1. start a real OPA on 127.0.0.1 serving the shipped Rego library and the example policies
#      (examples/policies, as data.edgepolicy.policies), and ask it about one example workload;
#   2. run `edgepolicy check examples/`: one workload allowed, the others denied with messages;
#   3. stop everything (also on Ctrl-C or error).
# Files of the run (OPA's log, the generated data) are kept in .run/ for a look afterwards.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
EDGEPOLICY="$ROOT/.venv/bin/edgepolicy"
OPA="$ROOT/.tools/bin/opa"
RUN_DIR="$ROOT/.run"

section() { printf '\n==> %s\n' "$*"; }
fail() { echo "run: $*" >&2; exit 1; }

[[ -x "$PY" && -x "$EDGEPOLICY" ]] || fail "no .venv: run 'make setup' first"
[[ -x "$OPA" ]] || fail "no OPA at $OPA: run 'make setup' first"
mkdir -p "$RUN_DIR"

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
section "Starting a local OPA with the shipped library and the example policies"
"$PY" - "$RUN_DIR/policies.json" examples/policies <<'PYTHON'
"""Write data.edgepolicy.policies for the example policies, as bundles and `serve` lay it out."""
import json
import sys

from edgepolicy.manifests import load_paths
from edgepolicy.policy_data import policies_to_data

out, *paths = sys.argv[1:]
objects = [manifest.obj for manifest in load_paths(paths)]
with open(out, "w", encoding="utf-8") as file:
    json.dump({"edgepolicy": {"policies": policies_to_data(objects)}}, file, indent=2)
PYTHON
OPA_PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
OPA_URL="http://127.0.0.1:$OPA_PORT"
"$OPA" run --server --addr "127.0.0.1:$OPA_PORT" --log-level error --skip-version-check \
  "$("$PY" -c 'from edgepolicy.library import library_path; print(library_path())')" \
  "$RUN_DIR/policies.json" >"$RUN_DIR/opa.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do
  curl -fsS "$OPA_URL/health" >/dev/null 2>&1 && break
  kill -0 "${PIDS[-1]}" 2>/dev/null || fail "OPA exited while starting; see $RUN_DIR/opa.log"
  sleep 0.1
done
curl -fsS "$OPA_URL/health" >/dev/null || fail "OPA did not answer at $OPA_URL; see $RUN_DIR/opa.log"
echo "OPA is serving at $OPA_URL (log: $RUN_DIR/opa.log)"
echo "policies loaded: $(curl -fsS "$OPA_URL/v1/data/edgepolicy/policies/finops" \
  | "$PY" -c 'import json, sys; r = json.load(sys.stdin)["result"]; print(", ".join(f"{ns}/{n}" for ns in r for n in r[ns]))')"

section "Asking that OPA about examples/workloads/denied-cpu.yaml (as the webhook will)"
"$PY" - "$OPA_URL" examples/workloads/denied-cpu.yaml <<'PYTHON'
"""POST one AdmissionReview to the decision endpoint and print the verdict."""
import sys

from edgepolicy.manifests import load_paths
from edgepolicy.opa_client import OpaClient
from edgepolicy.review import admission_review, decision_input

url, path = sys.argv[1:]
client = OpaClient(url)
for manifest in load_paths([path]):
    decision = client.decide(decision_input(admission_review(manifest.obj)))
    verdict = "allowed" if decision.allowed else "denied"
    print(f"{manifest.obj['kind']} {manifest.obj['metadata']['name']}: {verdict}")
    for finding in decision.violations:
        print(f"  {finding.message}")
PYTHON

# ---------------------------------------------------------------------------------------------
section "edgepolicy check examples/   (one real OPA for the whole run)"
set +e
"$EDGEPOLICY" check examples/
code=$?
set -e
case "$code" in
  1) echo "exit code 1: some workloads are denied, as intended for these examples" ;;
  0) fail "exit code 0: expected the denied examples to be denied" ;;
  *) fail "edgepolicy check failed with exit code $code" ;;
esac

section "Done; stopping OPA"

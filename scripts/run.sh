#!/usr/bin/env bash
# `make run`: show edgepolicy working on this machine.
#   1. start a real OPA on 127.0.0.1 serving the shipped Rego library and the example policies
#      (examples/policies, as data.edgepolicy.policies), and ask it about one example workload;
#   2. run `edgepolicy check examples/`: one workload allowed, the others denied with messages;
#   3. start a local Kubernetes control plane and the admission webhook, `kubectl apply` the
#      examples: one workload admitted (and mutated), one denied by the webhook;
#   4. stop everything (also on Ctrl-C or error).
# Files of the run (the logs of OPA and the webhook, the control plane's state) are kept in .run/
# for a look afterwards.
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
section "Asking a local OPA (shipped library, example policies) about denied-cpu.yaml, as serve will"
"$PY" - "$OPA" "$RUN_DIR/opa.log" examples/policies examples/workloads/denied-cpu.yaml <<'PYTHON'
"""Start OPA as `serve` does (same data layout), POST one AdmissionReview, print the verdict."""
import sys
from pathlib import Path

from edgepolicy.library import library_path
from edgepolicy.manifests import load_paths
from edgepolicy.opa_client import OpaClient
from edgepolicy.opa_process import OpaProcess
from edgepolicy.input_builder import admission_review, decision_input
from edgepolicy.webhook.opa_supervisor import local_data

opa_binary, log, policies, workload = sys.argv[1:]
data = local_data([Path(policies)], [])
with OpaProcess(Path(opa_binary), paths=[library_path()], data=data, log_path=Path(log)) as opa:
    print(f"OPA is serving at {opa.url} (log: {log})")
    client = OpaClient(opa.url)
    finops = client.query("edgepolicy/policies/finops")
    print("policies loaded: " + ", ".join(f"{ns}/{name}" for ns in finops for name in finops[ns]))
    for manifest in load_paths([workload]):
        decision = client.decide(decision_input(admission_review(manifest.obj)))
        verdict = "allowed" if decision.allowed else "denied"
        print(f"{manifest.obj['kind']} {manifest.obj['metadata']['name']}: {verdict}")
        for finding in decision.violations:
            print(f"  {finding.message}")
    client.close()
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

# ---------------------------------------------------------------------------------------------
# Kubernetes (the cluster engineer's section): a local control plane (real etcd + kube-apiserver
# on 127.0.0.1, no nodes, state and logs in .run/controlplane), the admission webhook
# (`edgepolicy serve` over TLS with its own local OPA) registered with the webhook
# configurations of deploy/base, and real `kubectl apply` of the examples.
KUBECTL="$ROOT/.tools/bin/kubectl"
CONTROLPLANE=("$ROOT/scripts/controlplane.sh" --dir "$RUN_DIR")
WEBHOOK_TLS="$RUN_DIR/webhook-tls"
[[ -x "$KUBECTL" ]] || fail "no kubectl at $KUBECTL: run 'make tools-e2e' first"
export KUBECONFIG="$RUN_DIR/kubeconfig"
trap 'cleanup; "${CONTROLPLANE[@]}" stop >/dev/null 2>&1 || true' EXIT

section "Starting a local Kubernetes control plane (etcd + kube-apiserver on 127.0.0.1)"
"${CONTROLPLANE[@]}" start
"$KUBECTL" apply -f deploy/base/crds
"$KUBECTL" wait --for=condition=established --timeout=60s \
  crd/finopspolicies.policy.apexlogic.com crd/modelpolicies.policy.apexlogic.com >/dev/null
echo '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ai-workloads"}}' \
  | "$KUBECTL" apply -f -

section "Starting the admission webhook (edgepolicy serve over TLS) and registering it"
"${CONTROLPLANE[@]}" webhook-certs --out "$WEBHOOK_TLS"
WEBHOOK_PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
WEBHOOK_URL="https://127.0.0.1:$WEBHOOK_PORT"
"$EDGEPOLICY" serve --host 127.0.0.1 --port "$WEBHOOK_PORT" --workers 1 \
  --tls-cert "$WEBHOOK_TLS/tls.crt" --tls-key "$WEBHOOK_TLS/tls.key" \
  --policies examples/policies --kubeconfig "$KUBECONFIG" >"$RUN_DIR/webhook.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 150); do
  curl -fsS --cacert "$WEBHOOK_TLS/ca.crt" "$WEBHOOK_URL/readyz" >/dev/null 2>&1 && break
  kill -0 "${PIDS[-1]}" 2>/dev/null || fail "the webhook exited while starting; see $RUN_DIR/webhook.log"
  sleep 0.2
done
curl -fsS --cacert "$WEBHOOK_TLS/ca.crt" "$WEBHOOK_URL/readyz" >/dev/null \
  || fail "the webhook is not ready at $WEBHOOK_URL; see $RUN_DIR/webhook.log"
echo "webhook ready at $WEBHOOK_URL (log with one JSON line per decision: $RUN_DIR/webhook.log)"
"${CONTROLPLANE[@]}" webhook-config --url "$WEBHOOK_URL" --ca-file "$WEBHOOK_TLS/ca.crt" \
  | "$KUBECTL" apply -f -
sleep 1  # the API server picks up webhook configurations asynchronously

section "kubectl apply -f examples/policies/   (FinOpsPolicies are validated by the webhook too)"
"$KUBECTL" apply -f examples/policies/

section "kubectl apply -f examples/workloads/allowed-training-job.yaml   (admitted)"
"$KUBECTL" apply -f examples/workloads/allowed-training-job.yaml
echo "stored with the webhook's mutation:"
"$KUBECTL" get job nightly-fine-tune -n ai-workloads -o go-template='{{"  label      finops.apexlogic.com/policy="}}{{index .metadata.labels "finops.apexlogic.com/policy"}}{{"\n  annotation finops.apexlogic.com/idle-shutdown-after="}}{{index .spec.template.metadata.annotations "finops.apexlogic.com/idle-shutdown-after"}}{{"\n"}}'

section "kubectl apply -f examples/workloads/denied-cpu.yaml   (denied by the webhook)"
if "$KUBECTL" apply -f examples/workloads/denied-cpu.yaml; then
  fail "expected the webhook to deny examples/workloads/denied-cpu.yaml"
fi
echo "denied, as intended: nothing was stored"

section "Done; stopping the webhook, the control plane and OPA"

# METADATA
# title: Tests of finops.hpa
package edgepolicy.rules.finops.hpa_test

import data.edgepolicy.rules.finops
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _cpu
# description: 'Metrics with a CPU Utilization target of `utilization`.'
_cpu(utilization) := [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": utilization}}}]

# METADATA
# title: _hpa
# description: 'An autoscaling/v2 HPA scaling Deployment `inference`, with `spec` merged in.'
_hpa(spec) := {
	"apiVersion": "autoscaling/v2",
	"kind": "HorizontalPodAutoscaler",
	"metadata": {"name": "scaler", "namespace": fx.namespace},
	"spec": object.union({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "inference"}}, spec),
}

# METADATA
# title: _found
# description: 'The finops.hpa findings for `hpa` with the seed policy and its target in the context.'
_found(hpa) := {f |
	some f in finops.findings with input as fx.review_with(hpa, {"policies": [fx.seed_policy], "workloads": [fx.compliant]})
	f.rule == "finops.hpa"
}

# METADATA
# title: an HPA exactly at the policy's bounds is allowed
test_at_bounds_allowed if {
	count(_found(_hpa({"minReplicas": 1, "maxReplicas": 3, "metrics": _cpu(70)}))) == 0
	count(_found(_hpa({"maxReplicas": 3, "metrics": _cpu(90)}))) == 0
}

# METADATA
# title: maxReplicas one above is denied, naming the HPA, its target and the fix
test_max_above_denied if {
	[f] := [f | some f in _found(_hpa({"minReplicas": 1, "maxReplicas": 4, "metrics": _cpu(70)}))]
	f.message == "finops.hpa: HorizontalPodAutoscaler ai-workloads/scaler (scaling Deployment inference): maxReplicas 4 exceeds autoScale.maxReplicas 3 of FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy; set maxReplicas to at most 3"
}

# METADATA
# title: minReplicas one below is denied (the default of 1 counts)
test_min_below_denied if {
	policy := fx.policy("p", fx.selector_spec({"autoScale": {"minReplicas": 2}}))
	hpa := _hpa({"maxReplicas": 3})
	[f] := [f | some f in finops.findings with input as fx.review_with(hpa, {"policies": [policy], "workloads": [fx.compliant]})]
	contains(f.message, "): minReplicas 1 by default is below autoScale.minReplicas 2 of FinOpsPolicy ai-workloads/p; set minReplicas to at least 2")
	[g] := [g | some g in finops.findings with input as fx.review_with(_hpa({"minReplicas": 1, "maxReplicas": 3}), {"policies": [policy], "workloads": [fx.compliant]})]
	contains(g.message, "): minReplicas 1 is below autoScale.minReplicas 2 of")
}

# METADATA
# title: a CPU target missing or below cpuUtilizationPercentage is denied
test_cpu_target if {
	[missing] := [f | some f in _found(_hpa({"maxReplicas": 3}))]
	contains(missing.message, "CPU averageUtilization target is missing")
	[low] := [f | some f in _found(_hpa({"maxReplicas": 3, "metrics": _cpu(69)}))]
	contains(low.message, "CPU averageUtilization target 69 is below autoScale.cpuUtilizationPercentage 70")
}

# METADATA
# title: a missing maxReplicas is reported when the policy bounds it
test_missing_max if {
	[f] := [f | some f in _found(_hpa({"metrics": _cpu(70)}))]
	contains(f.message, "): maxReplicas is missing, required to be at most autoScale.maxReplicas 3 of FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy; set maxReplicas to at most 3")
	[g] := [g | some g in _found(_hpa({"maxReplicas": "3", "metrics": _cpu(70)}))]
	contains(g.message, "): maxReplicas \"3\" is not a number, required to be at most autoScale.maxReplicas 3 of")
	[h] := [h | some h in _found(_hpa({"maxReplicas": 3, "metrics": _cpu("70")}))]
	contains(h.message, "): CPU averageUtilization target \"70\" is not a number, required to be at least autoScale.cpuUtilizationPercentage 70 of")
}

# METADATA
# title: an HPA whose target is unknown or unmatched is not judged
test_unknown_target if {
	hpa := _hpa({"maxReplicas": 10})
	count(finops.findings) == 0 with input as fx.review_with(hpa, {"policies": [fx.seed_policy]})
	other := json.patch(fx.compliant, [{"op": "replace", "path": "/spec/template/metadata/labels", "value": {"app": "x"}}])
	count(finops.findings) == 0 with input as fx.review_with(hpa, {"policies": [fx.seed_policy], "workloads": [other]})
}

# METADATA
# title: a workload admitted with an out-of-bounds HPA in the context is denied too
test_workload_with_hpa_in_context if {
	ctx := {"policies": [fx.seed_policy], "workloads": [_hpa({"maxReplicas": 5, "metrics": _cpu(70)})]}
	[f] := [f | some f in finops.findings with input as fx.review_with(fx.compliant, ctx); f.rule == "finops.hpa"]
	f.message == "finops.hpa: Deployment ai-workloads/inference is scaled by HorizontalPodAutoscaler ai-workloads/scaler whose maxReplicas 5 exceeds autoScale.maxReplicas 3 of FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy; set maxReplicas to at most 3 on the HPA"
}

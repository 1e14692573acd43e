# METADATA
# title: Tests of finops.gpu-hours
package edgepolicy.rules.finops.gpu_hours_test

import data.edgepolicy.rules.finops
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _found
# description: 'The finops.gpu-hours findings for `obj` under the seed policy.'
_found(obj) := {f | some f in finops.findings with input as fx.seeded(obj); f.rule == "finops.gpu-hours"}

# METADATA
# title: _gpu_pod
# description: 'A Pod with `gpus` NVIDIA GPUs and `annotations`.'
_gpu_pod(gpus, annotations) := object.union(
	fx.workload("Pod", fx.pod_spec([{"name": "server", "resources": {"limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": gpus}}}])),
	{"metadata": {"annotations": annotations}},
)

# METADATA
# title: 1 GPU x 18 hours equals dailyGPUHours 18 and is allowed
test_equal_allowed if count(_found(_gpu_pod("1", {"finops.apexlogic.com/daily-active-hours": "18"}))) == 0

# METADATA
# title: 1 GPU x 18.5 hours is denied with the numbers compared
test_above_denied if {
	[f] := [f | some f in _found(_gpu_pod("1", {"finops.apexlogic.com/daily-active-hours": "18.5"}))]
	f.message == "finops.gpu-hours: Pod ai-workloads/inference: 1 pod x 1 GPU per pod x 18.5 active hours a day (annotation finops.apexlogic.com/daily-active-hours) = 18.5 GPU-hours a day exceeds dailyGPUHours 18 of FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy; lower the GPU limits, the number of pods or the daily active hours"
}

# METADATA
# title: daily active hours default to 24
test_default_hours if {
	[f] := [f | some f in _found(_gpu_pod("1", {}))]
	contains(f.message, "x 24 active hours a day (annotation finops.apexlogic.com/daily-active-hours unset, default 24) = 24 GPU-hours a day")
}

# METADATA
# title: no GPUs, no GPU-hours
test_no_gpus if count(_found(fx.compliant)) == 0

# METADATA
# title: pods multiply; the pod template annotation of a Deployment counts
test_deployment_pods if {
	spec := fx.pod_spec([{"name": "server", "resources": {"limits": {"cpu": "1", "memory": "1Gi", "amd.com/gpu": 1}}}])
	obj := object.union(fx.workload("Deployment", spec), {"spec": {"template": {"metadata": {"annotations": {"finops.apexlogic.com/daily-active-hours": "6"}}}}})
	count(_found(obj)) == 0
	busier := object.union(obj, {"spec": {"template": {"metadata": {"annotations": {"finops.apexlogic.com/daily-active-hours": "6.5"}}}}})
	[f] := [f | some f in _found(busier)]
	contains(f.message, "3 pods (the larger of spec.replicas 1 by default and autoScale.maxReplicas 3) x 1 GPU per pod x 6.5 active hours a day")
}

# METADATA
# title: GPU resource names come from data
test_gpu_names_from_data if {
	pod := fx.workload("Pod", fx.pod_spec([{"name": "s", "resources": {"limits": {"cpu": "1", "memory": "1Gi", "example.com/npu": "1"}}}]))
	count(_found(pod)) == 0
	count(finops.findings) == 1 with input as fx.seeded(pod) with data.edgepolicy.settings.gpuResourceNames as ["example.com/npu"]
}

# METADATA
# title: a malformed hours annotation is a violation naming the annotation
test_malformed_annotation if {
	every value in ["0", "25", "all day", "-3", "24.0000001"] {
		[f] := [f | some f in _found(_gpu_pod("1", {"finops.apexlogic.com/daily-active-hours": value}))]
		contains(f.message, "annotation finops.apexlogic.com/daily-active-hours on metadata.annotations is")
		contains(f.message, "not a number of hours in (0, 24]")
	}
	count(_found(_gpu_pod("0", {"finops.apexlogic.com/daily-active-hours": "24"}))) == 0
	[f] := [f | some f in _found(_gpu_pod("1", {"finops.apexlogic.com/daily-active-hours": 12}))]
	contains(f.message, "is 12, not a number of hours in (0, 24] (annotation values are strings: quote it)")
}

# METADATA
# title: a malformed GPU quantity is a violation naming the container
test_malformed_gpu_quantity if {
	[f] := [f | some f in _found(_gpu_pod("one", {}))]
	f.container == "server"
	contains(f.message, "spec.containers[0].resources.limits.nvidia.com/gpu is \"one\"")
}

# METADATA
# title: hours in any plain decimal notation (exponents, a leading + or .) are numbers
test_number_notations if {
	every value in ["1e1", "1E1", "+10", ".5", "5.", "18", "1.8e1", "180e-1", "08"] {
		count(_found(_gpu_pod("1", {"finops.apexlogic.com/daily-active-hours": value}))) == 0
	}
	[f] := [f | some f in _found(_gpu_pod("1", {"finops.apexlogic.com/daily-active-hours": "1.85e1"}))]
	contains(f.message, "x 18.5 active hours a day")
	every value in ["1e", "e1", "1e1.5", "10h", "1k", "0x10", "1e99", "NaN", " 8"] {
		[g] := [g | some g in _found(_gpu_pod("1", {"finops.apexlogic.com/daily-active-hours": value}))]
		contains(g.message, "not a number of hours in (0, 24]")
	}
}

# METADATA
# title: one GPU for one hour is counted in the singular, and an overshoot hidden by rounding is shown
test_singular_and_precision if {
	half := fx.policy("p", fx.selector_spec({"costLimits": {"dailyGPUHours": 0.5}}))
	pod := _gpu_pod("1", {"finops.apexlogic.com/daily-active-hours": "1"})
	[f] := [f | some f in finops.findings with input as fx.review_with(pod, {"policies": [half]}); f.rule == "finops.gpu-hours"]
	contains(f.message, ": 1 pod x 1 GPU per pod x 1 active hour a day (annotation finops.apexlogic.com/daily-active-hours) = 1 GPU-hour a day exceeds dailyGPUHours 0.5 of")
	[g] := [g | some g in _found(_gpu_pod("1", {"finops.apexlogic.com/daily-active-hours": "18.0001"}))]
	contains(g.message, "x 18.0001 active hours a day (annotation finops.apexlogic.com/daily-active-hours) = 18.0001 GPU-hours a day exceeds dailyGPUHours 18 of")
}

# METADATA
# title: _budget_found
# description: |
#   The finops.gpu-hours findings for `obj` under an applying policy with dailyGPUHours `budget`
#   and autoScale `scale`, given to the rule as already validated (which values policy validation
#   accepts is tested there; budgets above 24 are valid).
_budget_found(obj, budget, scale) := {f |
	record := {"id": "ai-workloads/p", "settings": object.union({"dailyGPUHours": budget}, scale)}
	some f in finops.findings with input as fx.review_with(obj, {}) with data.edgepolicy.lib.policy.applying as {record.id: record}
	f.rule == "finops.gpu-hours"
}

# METADATA
# title: _gpu_deployment
# description: 'A Deployment of `replicas` pods with `gpus` NVIDIA GPUs each and pod annotations `annotations`.'
_gpu_deployment(replicas, gpus, annotations) := object.union(
	fx.deployment(replicas, [{"name": "server", "resources": {"limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": gpus}}}]),
	{"spec": {"template": {"metadata": {"annotations": annotations}}}},
)

# METADATA
# title: 'issue 8: dailyGPUHours budgets all pods of the workload per day: 3 pods x 1 GPU x 24 h = 72'
test_issue_budget_is_per_workload if {
	scale := {"minReplicas": 1, "maxReplicas": 3}
	count(_budget_found(_gpu_deployment(3, "1", {}), 72, scale)) == 0
	[f] := [f | some f in _budget_found(_gpu_deployment(3, "1", {}), 71.999999999, scale)]
	contains(f.message, ": 3 pods (the larger of spec.replicas 3 and autoScale.maxReplicas 3) x 1 GPU per pod x 24 active hours a day (annotation finops.apexlogic.com/daily-active-hours unset, default 24) = 72 GPU-hours a day exceeds dailyGPUHours 71.999999999 of")
	count(_budget_found(_gpu_deployment(3, "2", {"finops.apexlogic.com/daily-active-hours": "12"}), 72, scale)) == 0
	count(_budget_found(_gpu_deployment(3, "2", {"finops.apexlogic.com/daily-active-hours": "12.000000001"}), 72, scale)) == 1
}

# METADATA
# title: GPU-hours are exact with hours that are not binary fractions
test_exact_hours if {
	scale := {"minReplicas": 1, "maxReplicas": 3}
	count(_budget_found(_gpu_deployment(3, "1", {"finops.apexlogic.com/daily-active-hours": "0.3"}), 0.9, scale)) == 0
	count(_budget_found(_gpu_deployment(3, "1", {"finops.apexlogic.com/daily-active-hours": "0.1"}), 0.3, scale)) == 0
	count(_budget_found(_gpu_deployment(3, "1", {"finops.apexlogic.com/daily-active-hours": "0.1"}), 0.29999999, scale)) == 1
	count(_budget_found(_gpu_deployment(3, "1", {"finops.apexlogic.com/daily-active-hours": "1e-24"}), 3e-24, scale)) == 0
	count(_budget_found(_gpu_deployment(3, "1", {"finops.apexlogic.com/daily-active-hours": "1e-024"}), 2e-24, scale)) == 1
}

# METADATA
# title: 'issue 8: a fraction of a GPU is not a valid pod and is reported'
test_issue_fractional_gpu if {
	[f] := [f | some f in _found(_gpu_pod("0.5", {}))]
	f.container == "server"
	f.message == "finops.gpu-hours: Pod ai-workloads/inference: container \"server\": spec.containers[0].resources.limits.nvidia.com/gpu is \"0.5\", not a whole number, which Kubernetes requires for extended resources such as GPUs, so FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy cannot be checked; set a whole number of devices"
	count(_found(_gpu_pod("1500m", {}))) == 1
	count(_found(_gpu_pod(0.5, {}))) == 1
	count(_found(_gpu_pod("1000m", {"finops.apexlogic.com/daily-active-hours": "18"}))) == 0
}

# METADATA
# title: the pod overhead of a GPU resource is added like Kubernetes adds it
test_gpu_overhead if {
	pod := object.union(_gpu_pod("1", {"finops.apexlogic.com/daily-active-hours": "9.5"}), {"spec": {"overhead": {"nvidia.com/gpu": "1"}}})
	[f] := [f | some f in _found(pod)]
	contains(f.message, "x 2 GPUs per pod x 9.5 active hours a day (annotation finops.apexlogic.com/daily-active-hours) = 19 GPU-hours a day")
}

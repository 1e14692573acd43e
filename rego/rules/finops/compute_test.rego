# METADATA
# title: Tests of finops.cpu and finops.memory
package edgepolicy.rules.finops.compute_test

import data.edgepolicy.rules.finops
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _found
# description: 'The findings of `rule` for `obj` under the seed policy.'
_found(obj, rule) := {f | some f in finops.findings with input as fx.seeded(obj); f.rule == rule}

# With the seed (maxReplicas 3), a Deployment of 1 replica counts as 3 pods.

# METADATA
# title: cpu equal to the limit is allowed
test_cpu_equal_allowed if {
	count(_found(fx.deployment(4, [fx.container("a", "1500m", "1Gi"), fx.container("b", "500m", "1Gi")]), "finops.cpu")) == 0
	count(_found(fx.workload("Pod", fx.pod_spec([fx.container("a", "8", "1Gi")])), "finops.cpu")) == 0
	count(_found(fx.deployment(4, [fx.container("a", "1501m", "1Gi"), fx.container("b", "500m", "1Gi")]), "finops.cpu")) == 1
}

# METADATA
# title: one millicore above the limit is denied, with the numbers compared
test_cpu_above_denied if {
	[f] := [f | some f in _found(fx.workload("Pod", fx.pod_spec([fx.container("a", "8001m", "1Gi")])), "finops.cpu")]
	f.message == "finops.cpu: Pod ai-workloads/inference: 1 pod x 8.001 CPU cores per pod = 8.001 cores exceeds maxCPUCores 8 of FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy; lower resources.limits.cpu or the number of pods so the total is at most 8 cores"
	f.policy == fx.policy_id
}

# METADATA
# title: the pod count uses the larger of replicas and maxReplicas
test_cpu_counts_max_replicas if {
	[f] := [f | some f in _found(fx.deployment(1, [fx.container("a", "3", "1Gi")]), "finops.cpu")]
	contains(f.message, "3 pods (the larger of spec.replicas 1 and autoScale.maxReplicas 3) x 3 CPU cores per pod = 9 cores")
}

# METADATA
# title: _pod
# description: 'A Pod with one container limited to 1 core and `memory`.'
_pod(memory) := fx.workload("Pod", fx.pod_spec([fx.container("a", "1", memory)]))

# METADATA
# title: memory equal to maxMemoryGB x 2^30 is allowed, one byte more is denied
test_memory_boundary if {
	count(_found(_pod("32Gi"), "finops.memory")) == 0
	count(_found(_pod("34359738368"), "finops.memory")) == 0
	[f] := [f | some f in _found(_pod("34359738369"), "finops.memory")]
	contains(f.message, "exceeds maxMemoryGB 32 (34359738368 bytes)")
	contains(f.message, "(34359738369 bytes)")
}

# METADATA
# title: decimal gigabytes are not gibibytes
test_memory_decimal_units if {
	count(_found(fx.workload("Pod", fx.pod_spec([fx.container("a", "1", "34G")])), "finops.memory")) == 0
	count(_found(fx.workload("Pod", fx.pod_spec([fx.container("a", "1", "35G")])), "finops.memory")) == 1
}

# METADATA
# title: a malformed quantity is a violation naming the container and field
test_malformed_quantity if {
	[f] := [f | some f in _found(fx.deployment(1, [fx.container("server", "2", "eight gigs")]), "finops.memory")]
	f.container == "server"
	contains(f.message, "spec.template.spec.containers[0].resources.limits.memory is \"eight gigs\", not a Kubernetes quantity")
	[g] := [g | some g in _found(fx.deployment(1, [fx.container("server", "two", "1Gi")]), "finops.cpu")]
	g.container == "server"
}

# METADATA
# title: a policy without the limit does not enforce it
test_absent_limit_not_enforced if {
	lenient := fx.policy("lenient", fx.selector_spec({}))
	big := fx.deployment(9, [fx.container("a", "64", "x")])
	count([f | some f in finops.findings; f.rule in {"finops.cpu", "finops.memory"}]) == 0 with input as fx.review_with(big, {"policies": [lenient]})
}

# METADATA
# title: every workload kind is judged, with its own pod count
test_kinds if {
	spec := fx.pod_spec([fx.container("a", "3", "1Gi")])
	every kind in {"Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"} {
		count(_found(fx.workload(kind, spec), "finops.cpu")) == 1
	}
	every kind in {"Pod", "Job", "CronJob"} {
		count(_found(fx.workload(kind, spec), "finops.cpu")) == 0
	}
	[f] := [f | some f in _found(object.union(fx.workload("Job", spec), {"spec": {"parallelism": 3}}), "finops.cpu")]
	contains(f.message, "3 pods (spec.parallelism 3) x 3 CPU cores")
	[g] := [g | some g in _found(fx.workload("DaemonSet", spec), "finops.cpu")]
	contains(g.message, "3 pods (autoScale.maxReplicas 3 of the policy, for a DaemonSet)")
}

# METADATA
# title: _policy_found
# description: 'The findings of `rule` for `obj` under a policy `p` with `spec` extra fields.'
_policy_found(obj, extra, rule) := {f |
	some f in finops.findings with input as fx.review_with(obj, {"policies": [fx.policy("p", fx.selector_spec(extra))]})
	f.rule == rule
}

# METADATA
# title: messages count pods, cores and their source precisely, in the singular for one
test_cpu_messages if {
	tight := {"costLimits": {"maxCPUCores": 0.5}}
	[f] := [f | some f in _policy_found(fx.deployment(1, [fx.container("a", "1", "1Gi")]), tight, "finops.cpu")]
	f.message == "finops.cpu: Deployment ai-workloads/inference: 1 pod (spec.replicas 1) x 1 CPU core per pod = 1 core exceeds maxCPUCores 0.5 of FinOpsPolicy ai-workloads/p; lower resources.limits.cpu or the number of pods so the total is at most 0.5 cores"
	one := {"costLimits": {"maxCPUCores": 1}}
	[g] := [g | some g in _policy_found(fx.workload("Pod", fx.pod_spec([fx.container("a", "1.0001", "1Gi")])), one, "finops.cpu")]
	contains(g.message, "1 pod x 1.0001 CPU cores per pod = 1.0001 cores exceeds maxCPUCores 1 of FinOpsPolicy ai-workloads/p; lower resources.limits.cpu or the number of pods so the total is at most 1 core")
	spec := fx.pod_spec([fx.container("a", "1", "1Gi")])
	texts := {
		"1 pod (spec.replicas 1 by default)": fx.workload("Deployment", spec),
		"2 pods (spec.replicas 2)": fx.deployment(2, [fx.container("a", "1", "1Gi")]),
		"1 pod (a DaemonSet counts as 1 when the policy sets no autoScale.maxReplicas)": fx.workload("DaemonSet", spec),
		"2 pods (spec.parallelism 2)": object.union(fx.workload("Job", spec), {"spec": {"parallelism": 2}}),
		"1 pod (spec.parallelism 1 by default)": fx.workload("Job", spec),
		"1 pod (spec.jobTemplate.spec.parallelism 1 by default)": fx.workload("CronJob", spec),
	}
	every text, obj in texts {
		[h] := [h | some h in _policy_found(obj, tight, "finops.cpu")]
		contains(h.message, sprintf(": %s x 1 CPU core per pod", [text]))
	}
	scaled := {"costLimits": {"maxCPUCores": 0.5}, "autoScale": {"maxReplicas": 3}}
	[d] := [d | some d in _policy_found(fx.workload("DaemonSet", spec), scaled, "finops.cpu")]
	contains(d.message, ": 3 pods (autoScale.maxReplicas 3 of the policy, for a DaemonSet) x 1 CPU core per pod = 3 cores")
	[r] := [r | some r in _policy_found(fx.workload("StatefulSet", spec), scaled, "finops.cpu")]
	contains(r.message, ": 3 pods (the larger of spec.replicas 1 by default and autoScale.maxReplicas 3) x 1 CPU core per pod")
}

# METADATA
# title: '_limits_found'
# description: 'The findings of `rule` for `obj` under a policy with `limits` (costLimits) and maxReplicas 1.'
_limits_found(obj, limits, rule) := _policy_found(obj, {"costLimits": limits, "autoScale": {"minReplicas": 1, "maxReplicas": 1}}, rule)

# METADATA
# title: 'issue 8: 3 replicas x cpu 300m under maxCPUCores 0.9 is allowed (totals equal to a limit were denied)'
test_issue_three_times_300m_at_0_9 if {
	at := fx.deployment(3, [fx.container("a", "300m", "1Gi")])
	count(_limits_found(at, {"maxCPUCores": 0.9}, "finops.cpu")) == 0
	above := fx.deployment(3, [fx.container("a", "300000001n", "1Gi")])
	[f] := [f | some f in _limits_found(above, {"maxCPUCores": 0.9}, "finops.cpu")]
	contains(f.message, "3 pods (the larger of spec.replicas 3 and autoScale.maxReplicas 1) x 0.300000001 CPU cores per pod = 0.900000003 cores exceeds maxCPUCores 0.9")
}

# METADATA
# title: 'issue 8: 0.3 + 0.6 cores in one pod under maxCPUCores 0.9 is allowed'
test_issue_point_three_plus_point_six if {
	pod := fx.workload("Pod", fx.pod_spec([fx.container("a", "0.3", "1Gi"), fx.container("b", "0.6", "1Gi")]))
	count(_limits_found(pod, {"maxCPUCores": 0.9}, "finops.cpu")) == 0
	count(_limits_found(pod, {"maxCPUCores": 0.899999999}, "finops.cpu")) == 1
}

# METADATA
# title: 'issue 8: 3 x 1.1Gi under maxMemoryGB 3.3 is allowed; fractional bytes are not rounded away'
test_issue_three_times_1_1_gi_at_3_3 if {
	at := fx.deployment(3, [fx.container("a", "1", "1.1Gi")])
	count(_limits_found(at, {"maxMemoryGB": 3.3}, "finops.memory")) == 0

	# 1.1Gi is 1181116006.4 bytes: three of them are 3543348019.2 bytes, one nano-byte above is denied
	[f] := [f | some f in _limits_found(at, {"maxMemoryGB": 3.2999999999}, "finops.memory")]
	contains(f.message, "x 1.1Gi per pod = 3.3Gi (3543348019.2 bytes) exceeds maxMemoryGB 3.2999999999 (3543348019.0926258176 bytes)")
}

# METADATA
# title: limits written in exponent notation are read exactly
test_limits_in_exponent_notation if {
	pod := fx.workload("Pod", fx.pod_spec([fx.container("a", "1m", "1Mi")]))
	count(_limits_found(pod, {"maxCPUCores": 1e-3}, "finops.cpu")) == 0
	count(_limits_found(pod, {"maxCPUCores": 9.99e-4}, "finops.cpu")) == 1
	count(_limits_found(pod, {"maxMemoryGB": 9.765625e-4}, "finops.memory")) == 0
}

# METADATA
# title: pod-level limits are the pod's limits; with both, the pod level wins over the container sum
test_pod_level_limits_count if {
	pod_level := {"containers": [{"name": "a"}, {"name": "b"}], "resources": {"limits": {"cpu": "2", "memory": "2Gi"}}}
	count(_limits_found(fx.workload("Pod", pod_level), {"maxCPUCores": 2, "maxMemoryGB": 2}, "finops.cpu")) == 0
	[f] := [f | some f in _limits_found(fx.workload("Pod", pod_level), {"maxCPUCores": 1.5}, "finops.cpu")]
	contains(f.message, "1 pod x 2 CPU cores per pod = 2 cores exceeds maxCPUCores 1.5")
	both := {"containers": [fx.container("a", "4", "4Gi")], "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
	count(_limits_found(fx.workload("Pod", both), {"maxCPUCores": 1, "maxMemoryGB": 1}, "finops.cpu")) == 0
	count(_limits_found(fx.workload("Pod", both), {"maxCPUCores": 1, "maxMemoryGB": 1}, "finops.memory")) == 0
}

# METADATA
# title: the pod overhead is part of the pod's cost
test_overhead_counts if {
	spec := {"containers": [fx.container("a", "1", "1Gi")], "overhead": {"cpu": "250m", "memory": "128Mi"}}
	[f] := [f | some f in _limits_found(fx.workload("Pod", spec), {"maxCPUCores": 1}, "finops.cpu")]
	contains(f.message, "1 pod x 1.25 CPU cores per pod = 1.25 cores exceeds maxCPUCores 1")
	count(_limits_found(fx.workload("Pod", spec), {"maxCPUCores": 1.25, "maxMemoryGB": 1.125}, "finops.cpu")) == 0
	count(_limits_found(fx.workload("Pod", spec), {"maxCPUCores": 1.25, "maxMemoryGB": 1.125}, "finops.memory")) == 0
	count(_limits_found(fx.workload("Pod", spec), {"maxMemoryGB": 1.1249}, "finops.memory")) == 1
}

# METADATA
# title: a malformed pod-level limit or overhead is reported with its field and no container
test_malformed_pod_level if {
	spec := {"containers": [fx.container("a", "1", "1Gi")], "resources": {"limits": {"cpu": "lots"}}, "overhead": {"memory": "1 Gi"}}
	[f] := [f | some f in _limits_found(fx.workload("Pod", spec), {"maxCPUCores": 1}, "finops.cpu")]
	f.message == "finops.cpu: Pod ai-workloads/inference: spec.resources.limits.cpu is \"lots\", not a Kubernetes quantity (for example 500m, 2, 512Mi, 1.5Gi, 1e9), so FinOpsPolicy ai-workloads/p cannot be checked; fix the quantity"
	not f.container
	[g] := [g | some g in _limits_found(fx.workload("Pod", spec), {"maxMemoryGB": 1}, "finops.memory")]
	contains(g.message, "spec.overhead.memory is \"1 Gi\", not a Kubernetes quantity")
}

# METADATA
# title: quantities with spaces around them and three-digit exponents are read as the API server reads them
test_api_server_spellings if {
	pod := fx.workload("Pod", fx.pod_spec([fx.container("a", " 1", "1e009 ")]))
	count(_limits_found(pod, {"maxCPUCores": 1, "maxMemoryGB": 1}, "finops.cpu")) == 0
	count(_limits_found(pod, {"maxCPUCores": 1, "maxMemoryGB": 1}, "finops.memory")) == 0
	big := fx.workload("Pod", fx.pod_spec([fx.container("a", "1e024", "1Gi")]))
	[f] := [f | some f in _limits_found(big, {"maxCPUCores": 1}, "finops.cpu")]
	contains(f.message, "= 1000000000000000000000000 cores exceeds maxCPUCores 1")
}

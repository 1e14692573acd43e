# METADATA
# title: Tests of finops.limits-missing
package edgepolicy.rules.finops.limits_missing_test

import data.edgepolicy.rules.finops
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _found
# description: 'The finops.limits-missing findings for `obj` under the seed policy.'
_found(obj) := {f | some f in finops.findings with input as fx.seeded(obj); f.rule == "finops.limits-missing"}

# METADATA
# title: containers with both limits pass
test_complete_limits_pass if count(_found(fx.compliant)) == 0

# METADATA
# title: a container without a memory limit is named, with the field to set
test_missing_memory if {
	obj := fx.deployment(1, [fx.container("server", "2", "8Gi"), {"name": "logger", "resources": {"limits": {"cpu": "100m"}}}])
	_found(obj) == {{
		"rule": "finops.limits-missing",
		"policy": fx.policy_id,
		"container": "logger",
		"message": "finops.limits-missing: Deployment ai-workloads/inference: container \"logger\" (spec.template.spec.containers[1]) has no memory limit, required by FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy; set resources.limits.memory",
	}}
}

# METADATA
# title: init containers need limits too; both missing are reported together
test_init_container_without_limits if {
	obj := fx.workload("Job", {"containers": [fx.container("train", "1", "1Gi")], "initContainers": [{"name": "fetch"}]})
	[f] := [f | some f in _found(obj)]
	f.container == "fetch"
	contains(f.message, "has no cpu and no memory limit")
	contains(f.message, "set resources.limits.cpu and resources.limits.memory")
}

# METADATA
# title: null limits count as missing; unmatched workloads are not judged
test_null_and_unmatched if {
	count(_found(fx.deployment(1, [fx.container("server", null, "1Gi")]))) == 1
	unmatched := json.patch(fx.deployment(1, [{"name": "bare"}]), [{"op": "replace", "path": "/spec/template/metadata/labels", "value": {"app": "x"}}])
	count(_found(unmatched)) == 0
}

# METADATA
# title: 'issue 8: pod-level limits stand in for the containers'' limits of the resources they set'
test_pod_level_limits if {
	both := fx.workload("Pod", {"containers": [{"name": "a"}, {"name": "b"}], "resources": {"limits": {"cpu": "2", "memory": "2Gi"}}})
	count(_found(both)) == 0
	cpu_only := fx.workload("Deployment", {"containers": [{"name": "a"}], "resources": {"limits": {"cpu": "2"}}})
	[f] := [f | some f in _found(cpu_only)]
	contains(f.message, "container \"a\" (spec.template.spec.containers[0]) has no memory limit")
	unsupported := fx.workload("Pod", {"containers": [{"name": "a"}], "resources": {"limits": {"ephemeral-storage": "1Gi"}}})
	[g] := [g | some g in _found(unsupported)]
	contains(g.message, "has no cpu and no memory limit")
}

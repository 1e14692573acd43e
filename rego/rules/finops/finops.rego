# METADATA
# title: FinOps rules
# description: |
#   The `finops.*` rules. Each contributes to `findings`, a set of
#   `{"rule", "policy", "message"}` objects (plus `container` where a container is at fault) for
#   the admitted object, one per FinOpsPolicy that applies and per problem. A rule only runs when
#   its policy sets (validly) the field it enforces; equal to a limit is allowed.
package edgepolicy.rules.finops

import data.edgepolicy.lib.format
import data.edgepolicy.lib.policy
import data.edgepolicy.lib.request
import data.edgepolicy.lib.resources
import data.edgepolicy.lib.workload

# METADATA
# title: _workload_policies
# description: 'The policies that apply to the admitted object when it is a workload.'
_workload_policies contains record if {
	workload.is_workload(request.object)
	some id in policy.matching
	record := policy.candidates[id]
}

# METADATA
# title: _pods
# description: 'How many pods the admitted workload runs at most, per applying policy id.'
_pods[record.id] := scale if {
	some record in _workload_policies
	scale := workload.max_scale(request.object, policy.max_replicas(record.object))
}

# METADATA
# title: _per_pod
# description: 'The effective per-pod cpu and memory limits of the admitted object.'
_per_pod[resource] := resources.pod_limit(request.containers, resource) if some resource in {"cpu", "memory"}

# METADATA
# title: _pods_text
# description: 'How many pods the admitted workload counts as under `record`, and why, for messages.'
_pods_text(record) := sprintf("%s pods (the larger of spec.replicas %s and autoScale.maxReplicas %s)", [
	format.number(_pods[record.id]),
	format.number(workload.replicas(request.object)),
	format.number(policy.max_replicas(record.object)),
]) if {
	request.kind in {"Deployment", "StatefulSet", "ReplicaSet"}
} else := sprintf("%s pods (autoScale.maxReplicas of the policy, else 1)", [format.number(_pods[record.id])]) if {
	request.kind == "DaemonSet"
} else := sprintf("%s pods (parallelism)", [format.number(_pods[record.id])]) if {
	request.kind in {"Job", "CronJob"}
} else := "1 pod"

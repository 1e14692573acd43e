# METADATA
# title: FinOps rules
# description: |
#   The `finops.*` rules. Each contributes to `findings`, a set of
#   `{"rule", "policy", "message"}` objects (plus `container` where a container is at fault) for
#   the admitted object, one per FinOpsPolicy that applies and per problem. A rule only runs when
#   its policy sets (validly) the field it enforces; equal to a limit is allowed. Totals and
#   limits are compared as exact decimals (`edgepolicy.lib.decimal`), never as floats.
package edgepolicy.rules.finops

import data.edgepolicy.lib.decimal
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
	some record in policy.applying
}

# METADATA
# title: _pods
# description: 'How many pods the admitted workload runs at most, per applying policy id.'
_pods[record.id] := scale if {
	some record in _workload_policies
	scale := workload.max_scale(request.object, object.get(record.settings, "maxReplicas", 0))
}

# METADATA
# title: _pod_count
# description: 'The pod count of the admitted workload, as an exact decimal, per applying policy id.'
_pod_count[id] := decimal.from_number(pods) if some id, pods in _pods

# METADATA
# title: _pod_level
# description: 'The pod-level resources (limits, overhead) of the admitted object.'
_pod_level := workload.pod_resources(request.object)

# METADATA
# title: _per_pod
# description: 'The effective per-pod cpu and memory limits of the admitted object, as exact decimals.'
_per_pod[resource] := decimal.of_nanos(resources.pod_limit(request.containers, _pod_level, resource)) if {
	some resource in {"cpu", "memory"}
}

# METADATA
# title: _pods_text
# description: |
#   How many pods the admitted workload counts as under `record`, and why, for messages:
#   `3 pods (the larger of spec.replicas 2 and autoScale.maxReplicas 3)`, `1 pod`.
_pods_text(record) := "1 pod" if {
	request.kind == "Pod"
} else := sprintf("%s (%s)", [format.counted(_pods[record.id], "pod", "pods"), _pods_reason(record)])

# METADATA
# title: _pods_reason
# description: 'Where the pod count of the admitted workload (not a Pod) under `record` comes from, for messages.'
_pods_reason(record) := sprintf("the larger of %s and autoScale.maxReplicas %s", [
	_replicas_text,
	format.number(record.settings.maxReplicas),
]) if {
	request.kind in {"Deployment", "StatefulSet", "ReplicaSet"}
	record.settings.maxReplicas
} else := _replicas_text if {
	request.kind in {"Deployment", "StatefulSet", "ReplicaSet"}
} else := sprintf("autoScale.maxReplicas %s of the policy, for a DaemonSet", [
	format.number(record.settings.maxReplicas),
]) if {
	request.kind == "DaemonSet"
	record.settings.maxReplicas
} else := "a DaemonSet counts as 1 when the policy sets no autoScale.maxReplicas" if {
	request.kind == "DaemonSet"
} else := format.defaulted(workload.field(_parallelism_path), object.get(request.object, _parallelism_path, null), 1)

# METADATA
# title: _replicas_text
# description: '`spec.replicas` of the admitted object, for messages.'
_replicas_text := format.defaulted("spec.replicas", object.get(request.object, ["spec", "replicas"], null), 1)

# METADATA
# title: _parallelism_path
# description: 'Where the admitted Job or CronJob sets its parallelism.'
_parallelism_path := ["spec", "jobTemplate", "spec", "parallelism"] if {
	request.kind == "CronJob"
} else := ["spec", "parallelism"]

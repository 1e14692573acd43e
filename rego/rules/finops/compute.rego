# finops.cpu and finops.memory: pods x effective per-pod limit within the policy's maxCPUCores and
# maxMemoryGB (GiB, 2^30 bytes) (part of package edgepolicy.rules.finops, annotated in finops.rego).
package edgepolicy.rules.finops

import data.edgepolicy.lib.format
import data.edgepolicy.lib.request
import data.edgepolicy.lib.resources

# METADATA
# title: _gibibyte
# description: 'Bytes in a GiB; maxMemoryGB counts in these.'
_gibibyte := 1073741824

# METADATA
# title: finops.cpu
# description: Pods x per-pod cpu limit exceeds `costLimits.maxCPUCores`.
# related_resources:
#   - ref: https://github.com/apexlogic/edgepolicy/blob/main/docs/policies.md#finops.cpu
#     description: finops.cpu in docs/policies.md
# custom:
#   rule: finops.cpu
#   summary: "Workload CPU limits above the FinOpsPolicy's maxCPUCores"
#   fix: "Lower `resources.limits.cpu` or the number of pods (`spec.replicas`, `spec.parallelism`, the policy's `autoScale.maxReplicas`) so that pods x per-pod CPU limit is at most `costLimits.maxCPUCores`."
findings contains finding if {
	some record in _workload_policies
	limit := record.settings.maxCPUCores
	pods := _pods[record.id]
	per_pod := _per_pod.cpu
	total := pods * per_pod
	total > limit
	finding := {
		"rule": "finops.cpu",
		"policy": record.id,
		"message": sprintf(
			"finops.cpu: %s: %s x %s per pod = %s exceeds maxCPUCores %s of FinOpsPolicy %s; lower resources.limits.cpu or the number of pods so the total is at most %s",
			[
				request.description, _pods_text(record), format.counted_exact(per_pod, "CPU core", "CPU cores"),
				format.counted_above(total, limit, "core", "cores"), format.exact(limit), record.id,
				format.counted_exact(limit, "core", "cores"),
			],
		),
	}
}

# METADATA
# title: finops.memory
# description: Pods x per-pod memory limit exceeds `costLimits.maxMemoryGB` x 2^30 bytes.
# related_resources:
#   - ref: https://github.com/apexlogic/edgepolicy/blob/main/docs/policies.md#finops.memory
#     description: finops.memory in docs/policies.md
# custom:
#   rule: finops.memory
#   summary: "Workload memory limits above the FinOpsPolicy's maxMemoryGB"
#   fix: "Lower `resources.limits.memory` or the number of pods so that pods x per-pod memory limit is at most `costLimits.maxMemoryGB` GiB; write memory as a Kubernetes quantity (`512Mi`, `1.5Gi`)."
findings contains finding if {
	some record in _workload_policies
	limit_gb := record.settings.maxMemoryGB
	pods := _pods[record.id]
	per_pod := _per_pod.memory
	total := pods * per_pod
	total > limit_gb * _gibibyte
	finding := {
		"rule": "finops.memory",
		"policy": record.id,
		"message": sprintf(
			"finops.memory: %s: %s x %s per pod = %s (%s bytes) exceeds maxMemoryGB %s (%s bytes) of FinOpsPolicy %s; lower resources.limits.memory or the number of pods so the total is at most %sGi",
			[
				request.description, _pods_text(record), format.gibibytes(per_pod), format.gibibytes(total),
				format.number(total), format.exact(limit_gb), format.number(limit_gb * _gibibyte),
				record.id, format.exact(limit_gb),
			],
		),
	}
}

# METADATA
# title: malformed cpu or memory quantities
# description: |
#   A cpu or memory limit that is not a Kubernetes quantity is a violation of finops.cpu or
#   finops.memory (when the policy sets that limit) naming the container and the field.
findings contains finding if {
	some record in _workload_policies
	some rule, field in {"finops.cpu": "maxCPUCores", "finops.memory": "maxMemoryGB"}
	record.settings[field]
	resource := trim_prefix(rule, "finops.")
	some problem in resources.malformed_limits(request.containers, {resource})
	finding := _malformed_quantity_finding(rule, record, problem)
}

# METADATA
# title: _malformed_quantity_finding
# description: 'The finding of `rule` for a malformed quantity `problem` under policy `record`.'
_malformed_quantity_finding(rule, record, problem) := {
	"rule": rule,
	"policy": record.id,
	"container": problem.container,
	"message": sprintf(
		"%s: %s: container %q: %s is %s, not a Kubernetes quantity (for example 500m, 2, 512Mi, 1.5Gi, 1e9), so FinOpsPolicy %s cannot be checked; fix the quantity",
		[rule, request.description, problem.container, problem.field, json.marshal(problem.value), record.id],
	),
}

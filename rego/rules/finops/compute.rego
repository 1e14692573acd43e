# finops.cpu and finops.memory: pods x effective per-pod limit within the policy's maxCPUCores and
# maxMemoryGB (GiB, 2^30 bytes) (part of package edgepolicy.rules.finops, annotated in finops.rego).
package edgepolicy.rules.finops

import data.edgepolicy.lib.decimal
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
	limit := decimal.from_number(record.settings.maxCPUCores)
	per_pod := _per_pod.cpu
	total := decimal.times(_pod_count[record.id], per_pod)
	decimal.greater(total, limit)
	finding := {
		"rule": "finops.cpu",
		"policy": record.id,
		"message": sprintf(
			"finops.cpu: %s: %s x %s per pod = %s exceeds maxCPUCores %s of FinOpsPolicy %s; lower resources.limits.cpu or the number of pods so the total is at most %s",
			[
				request.description, _pods_text(record), format.decimal_counted(per_pod, "CPU core", "CPU cores"),
				format.decimal_counted_above(total, limit, "core", "cores"), decimal.text(limit), record.id,
				format.decimal_counted(limit, "core", "cores"),
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
	limit_gb := decimal.from_number(record.settings.maxMemoryGB)
	limit := decimal.scale(limit_gb, _gibibyte)
	per_pod := _per_pod.memory
	total := decimal.times(_pod_count[record.id], per_pod)
	decimal.greater(total, limit)
	finding := {
		"rule": "finops.memory",
		"policy": record.id,
		"message": sprintf(
			"finops.memory: %s: %s x %s per pod = %s (%s bytes) exceeds maxMemoryGB %s (%s bytes) of FinOpsPolicy %s; lower resources.limits.memory or the number of pods so the total is at most %sGi",
			[
				request.description, _pods_text(record), format.decimal_gibibytes(per_pod), format.decimal_gibibytes(total),
				decimal.text(total), decimal.text(limit_gb), decimal.text(limit),
				record.id, decimal.text(limit_gb),
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
	some problem in resources.malformed_limits(request.containers, _pod_level, {resource})
	finding := _malformed_quantity_finding(rule, record, problem)
}

# METADATA
# title: _malformed_quantity_finding
# description: |
#   The finding of `rule` for an invalid limit `problem` under policy `record`: not a quantity, or
#   a fraction of an extended resource (GPUs), which Kubernetes refuses.
_malformed_quantity_finding(rule, record, problem) := object.union(
	{
		"rule": rule,
		"policy": record.id,
		"message": sprintf("%s: %s: %s%s is %s, %s, so FinOpsPolicy %s cannot be checked; %s", [
			rule, request.description, _container_prefix(problem), problem.field, json.marshal(problem.value),
			_problem_text[problem.whole], record.id, _problem_fix[problem.whole],
		]),
	},
	{"container": problem.container | problem.container},
)

# METADATA
# title: _container_prefix
# description: '`container "<name>": ` for a container''s limit, empty for the pod''s own.'
_container_prefix(problem) := sprintf("container %q: ", [problem.container]) if problem.container

else := ""

# METADATA
# title: _problem_text
# description: 'What is wrong with an invalid limit, by whether it is a fraction of a whole-number resource.'
_problem_text := {
	false: "not a Kubernetes quantity (for example 500m, 2, 512Mi, 1.5Gi, 1e9)",
	true: "not a whole number, which Kubernetes requires for extended resources such as GPUs",
}

# METADATA
# title: _problem_fix
# description: 'How to fix an invalid limit, by whether it is a fraction of a whole-number resource.'
_problem_fix := {false: "fix the quantity", true: "set a whole number of devices"}

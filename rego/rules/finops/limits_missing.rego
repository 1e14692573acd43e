# finops.limits-missing: every container and init container of a matched workload sets both a cpu
# and a memory limit, unless the pod sets that limit itself (pod-level resources,
# spec.resources.limits) (part of package edgepolicy.rules.finops, annotated in finops.rego).
package edgepolicy.rules.finops

import data.edgepolicy.lib.request
import data.edgepolicy.lib.resources

# METADATA
# title: finops.limits-missing
# description: A container of a matched workload has no cpu or no memory limit, and the pod sets none for it.
# related_resources:
#   - ref: https://github.com/apexlogic/edgepolicy/blob/main/docs/policies.md#finops.limits-missing
#     description: finops.limits-missing in docs/policies.md
# custom:
#   rule: finops.limits-missing
#   summary: "Container without cpu or memory limits in a budgeted workload"
#   fix: "Set `resources.limits.cpu` and `resources.limits.memory` on every container and init container of the workload, or set them for the whole pod in its `spec.resources.limits` (pod-level resources)."
findings contains finding if {
	some record in _workload_policies
	some container in request.containers
	missing := [resource |
		some resource in ["cpu", "memory"]
		not _has_limit(container, resource)
		not resources.has_pod_level_limit(_pod_level, resource)
	]
	count(missing) > 0
	finding := {
		"rule": "finops.limits-missing",
		"policy": record.id,
		"container": container.name,
		"message": sprintf(
			"finops.limits-missing: %s: container %q (%s) has no %s limit, required by FinOpsPolicy %s; set %s",
			[
				request.description, container.name, container.field,
				concat(" and no ", missing), record.id,
				concat(" and ", [sprintf("resources.limits.%s", [resource]) | some resource in missing]),
			],
		),
	}
}

# METADATA
# title: _has_limit
# description: 'True when `container` sets a (non-null) limit of `resource`.'
_has_limit(container, resource) if container.limits[resource] != null

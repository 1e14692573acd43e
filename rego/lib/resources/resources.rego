# METADATA
# title: Effective pod resources
# description: |
#   Per-pod limits as Kubernetes computes effective pod resources: the larger of (the sum over
#   containers and restartable init containers) and (the peak of each ordinary init container,
#   plus the restartable init containers declared before it, which are already running). Only
#   `resources.limits` count. A missing or malformed quantity counts as 0 here; malformed ones
#   are reported by `malformed_limits`. The functions take the container records of
#   `workload.containers` (with their parsed `quantities`), so a caller computes those once per
#   object.
package edgepolicy.lib.resources

# METADATA
# title: pod_limit
# description: The effective per-pod limit of `resource` (e.g. `cpu`, in base units) of `containers`.
pod_limit(containers, resource) := max([long_running, init_peak]) if {
	values := [object.get(container.quantities, resource, 0) | some container in containers]
	long_running := sum([values[i] | some i, container in containers; _is_long_running(container)])
	init_peak := max(array.concat([0], [peak |
		some i, container in containers
		container.is_init
		not container.is_sidecar
		peak := values[i] + _sidecars_before(containers, values, container.index)
	]))
}

# METADATA
# title: pod_gpus
# description: |
#   The effective per-pod GPU count of `containers`, summed over the GPU resource `names` (only
#   those some container sets, so pods without GPUs cost one pass).
pod_gpus(containers, names) := sum([pod_limit(containers, name) |
	some name in {name | some container in containers; some name in names; container.limits[name] != null}
])

# METADATA
# title: malformed_limits
# description: |
#   The limits of `containers` for any of `resources` that are not valid non-negative
#   quantities, each `{"container", "field", "resource", "value"}`.
malformed_limits(containers, resources) := {problem |
	some container in containers
	some resource in resources
	value := container.limits[resource]
	value != null
	not resource in object.keys(container.quantities)
	problem := {
		"container": container.name,
		"field": sprintf("%s.resources.limits.%s", [container.field, resource]),
		"resource": resource,
		"value": value,
	}
}

# METADATA
# title: _is_long_running
# description: 'True for containers and restartable init containers.'
_is_long_running(container) if not container.is_init

_is_long_running(container) if container.is_sidecar

# METADATA
# title: _sidecars_before
# description: 'The sum of `values` over the sidecars declared before init container number `index`.'
_sidecars_before(containers, values, index) := sum([values[i] |
	some i, sidecar in containers
	sidecar.is_sidecar
	sidecar.index < index
])

# METADATA
# title: Effective pod resources
# description: |
#   Per-pod limits as Kubernetes computes effective pod resources: the larger of (the sum over
#   containers and restartable init containers) and (the peak of each ordinary init container,
#   plus the restartable init containers declared before it, which are already running). Only
#   `resources.limits` count. A missing or malformed quantity counts as 0 here; malformed ones
#   are reported by `malformed_limits`.
package edgepolicy.lib.resources

import data.edgepolicy.lib.quantity
import data.edgepolicy.lib.workload

# METADATA
# title: pod_limit
# description: The effective per-pod limit of `resource` (e.g. `cpu`, in base units) of `obj`.
pod_limit(obj, resource) := max([_long_running(containers, resource), _init_peak(containers, resource)]) if {
	containers := workload.containers(obj)
}

# METADATA
# title: pod_gpus
# description: The effective per-pod GPU count of `obj`, summed over the GPU resource `names`.
pod_gpus(obj, names) := sum([pod_limit(obj, name) | some name in names])

# METADATA
# title: malformed_limits
# description: |
#   The limits of `obj`'s containers for any of `resources` that are not valid non-negative
#   quantities, each `{"container", "field", "resource", "value"}`.
malformed_limits(obj, resources) := {problem |
	some container in workload.containers(obj)
	some resource in resources
	value := container.limits[resource]
	value != null
	not quantity.is_valid(value)
	problem := {
		"container": container.name,
		"field": sprintf("%s.resources.limits.%s", [container.field, resource]),
		"resource": resource,
		"value": value,
	}
}

# METADATA
# title: _value
# description: 'The limit of `resource` of `container` in base units, 0 when missing or malformed.'
_value(container, resource) := value if {
	value := quantity.parse(container.limits[resource])
} else := 0

# METADATA
# title: _long_running
# description: 'The sum of `resource` over containers and sidecars.'
_long_running(containers, resource) := sum([_value(container, resource) |
	some container in containers
	_is_long_running(container)
])

# METADATA
# title: _is_long_running
# description: 'True for containers and restartable init containers.'
_is_long_running(container) if not container.is_init

_is_long_running(container) if container.is_sidecar

# METADATA
# title: _init_peak
# description: 'The largest `resource` need of an ordinary init container plus the sidecars already running.'
_init_peak(containers, resource) := max(array.concat([0], [peak |
	some container in containers
	container.is_init
	not container.is_sidecar
	peak := _value(container, resource) + _sidecars_before(containers, container.index, resource)
]))

# METADATA
# title: _sidecars_before
# description: 'The sum of `resource` over the sidecars declared before init container `index`.'
_sidecars_before(containers, index, resource) := sum([_value(sidecar, resource) |
	some sidecar in containers
	sidecar.is_sidecar
	sidecar.index < index
])

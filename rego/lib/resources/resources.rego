# METADATA
# title: Effective pod resources
# description: |
#   Per-pod limits as Kubernetes computes them (k8s.io/component-helpers/resource PodLimits), in
#   exact nano-units: the larger of (the sum over containers and restartable init containers) and
#   (the peak of each ordinary init container, plus the restartable init containers declared
#   before it, which are already running); a pod-level limit (`spec.resources.limits`, for cpu,
#   memory and hugepages-*) replaces that for its resource; the pod overhead (`spec.overhead`) is
#   added to every non-zero limit. Only limits count. A missing or malformed quantity counts as 0
#   here; malformed ones are reported by `malformed_limits`. The functions take the container
#   records of `workload.containers` and the pod record of `workload.pod_resources` (with their
#   parsed quantities), so a caller computes those once per object.
package edgepolicy.lib.resources

import data.edgepolicy.lib.quantity

# METADATA
# title: pod_limit
# description: The effective per-pod limit of `resource` (e.g. `cpu`), in nano-units, of `containers` in `pod`.
pod_limit(containers, pod, resource) := _with_overhead(_before_overhead(containers, pod, resource), pod, resource)

# METADATA
# title: has_pod_level_limit
# description: True when `pod` sets a pod-level limit of `resource` that Kubernetes applies (cpu, memory, hugepages-*).
has_pod_level_limit(pod, resource) if {
	pod.limits[resource] != null
	_is_pod_level_resource(resource)
}

# METADATA
# title: _before_overhead
# description: 'The pod-level limit of `resource` when set, else the containers'' aggregate.'
_before_overhead(containers, pod, resource) := object.get(pod.limit_quantities, resource, 0) if {
	has_pod_level_limit(pod, resource)
} else := containers_limit(containers, resource)

# METADATA
# title: _with_overhead
# description: 'Kubernetes adds the pod overhead to non-zero limits only.'
_with_overhead(value, pod, resource) := value + object.get(pod.overhead_quantities, resource, 0) if {
	value > 0
} else := value

# METADATA
# title: _is_pod_level_resource
# description: 'The resources Kubernetes reads from pod-level resources.'
_is_pod_level_resource(resource) if resource in {"cpu", "memory"}

_is_pod_level_resource(resource) if startswith(resource, "hugepages-")

# METADATA
# title: containers_limit
# description: The containers' aggregate limit of `resource` in nano-units (sidecars and init containers as Kubernetes counts them).
containers_limit(containers, resource) := max([long_running, init_peak]) if {
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
#   The effective per-pod GPU count of `containers` in `pod`, in nano-units (a whole number of
#   GPUs), summed over the GPU resource `names` (only those some container sets, so pods without
#   GPUs cost one pass).
pod_gpus(containers, pod, names) := sum([pod_limit(containers, pod, name) |
	some name in {name | some container in containers; some name in names; container.limits[name] != null}
])

# METADATA
# title: malformed_limits
# description: |
#   The limits of `containers` and `pod` (pod-level limits and overhead) for any of `resources`
#   that are not valid for their resource, each `{"field", "resource", "value", "whole"}` (plus
#   `container` for a container's); `whole` is true when the value is a quantity but the resource
#   takes whole numbers only.
malformed_limits(containers, pod, resources) := _malformed_container_limits(containers, resources) | _malformed_pod_limits(pod, resources)

# METADATA
# title: _malformed_container_limits
# description: 'The invalid limits of `containers` for `resources`.'
_malformed_container_limits(containers, resources) := {problem |
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
		"whole": _is_fractional(value),
	}
}

# METADATA
# title: _malformed_pod_limits
# description: 'The invalid pod-level limits and overhead of `pod` for `resources`.'
_malformed_pod_limits(pod, resources) := set() if {
	count(pod.limits) == 0
	count(pod.overhead) == 0
} else := {problem |
	some list, names in {
		"limits": ["limit_quantities", "resources.limits"],
		"overhead": ["overhead_quantities", "overhead"],
	}
	[quantities, path] := names
	some resource in resources
	value := pod[list][resource]
	value != null
	not resource in object.keys(pod[quantities])
	problem := {
		"field": sprintf("%s.%s.%s", [pod.field, path, resource]),
		"resource": resource,
		"value": value,
		"whole": _is_fractional(value),
	}
}

# METADATA
# title: _is_fractional
# description: 'True when `value` is a valid quantity (so it was refused for not being whole).'
_is_fractional(value) if quantity.is_valid(value)

else := false

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

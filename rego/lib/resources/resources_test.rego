# METADATA
# title: Tests of effective pod resources
package edgepolicy.lib.resources_test

import data.edgepolicy.lib.resources
import data.edgepolicy.lib.workload
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _pod
# description: 'The container records of a Pod with `containers` and `init_containers`.'
_pod(containers, init_containers) := workload.containers(fx.workload("Pod", {"containers": containers, "initContainers": init_containers}))

# METADATA
# title: _init
# description: 'An ordinary init container with a cpu limit.'
_init(name, cpu) := {"name": name, "resources": {"limits": {"cpu": cpu}}}

# METADATA
# title: _sidecar
# description: 'A restartable init container (sidecar) with a cpu limit.'
_sidecar(name, cpu) := object.union(_init(name, cpu), {"restartPolicy": "Always"})

# METADATA
# title: containers add up
test_sum_of_containers if {
	resources.pod_limit(_pod([fx.container("a", "500m", "1Gi"), fx.container("b", "1500m", "512Mi")], []), "cpu") == 2
	resources.pod_limit(_pod([fx.container("a", "500m", "1Gi"), fx.container("b", "1500m", "512Mi")], []), "memory") == 1610612736
}

# METADATA
# title: a larger ordinary init container sets the pod limit
test_init_container_peak if {
	resources.pod_limit(_pod([fx.container("a", "1", "1Gi")], [_init("big", "3")]), "cpu") == 3
	resources.pod_limit(_pod([fx.container("a", "4", "1Gi")], [_init("small", "3")]), "cpu") == 4
}

# METADATA
# title: restartable init containers (sidecars) add to the containers
test_sidecars_add_up if {
	resources.pod_limit(_pod([fx.container("a", "1", "1Gi")], [_sidecar("proxy", "500m")]), "cpu") == 1.5
}

# METADATA
# title: sidecars started before an init container run alongside it
test_sidecar_before_init if {
	resources.pod_limit(_pod([fx.container("a", "1", "1Gi")], [_sidecar("proxy", "1"), _init("load", "3")]), "cpu") == 4
	resources.pod_limit(_pod([fx.container("a", "1", "1Gi")], [_init("load", "3"), _sidecar("proxy", "1")]), "cpu") == 3
}

# METADATA
# title: missing and malformed limits count as zero
test_missing_counts_zero if {
	resources.pod_limit(_pod([{"name": "a"}, fx.container("b", "abc", "1Gi")], []), "cpu") == 0
	resources.pod_limit(_pod([], []), "memory") == 0
}

# METADATA
# title: GPUs add up over the GPU resource names
test_gpus if {
	pod := _pod([{"name": "a", "resources": {"limits": {"nvidia.com/gpu": "2", "amd.com/gpu": 1}}}], [])
	resources.pod_gpus(pod, {"nvidia.com/gpu", "amd.com/gpu"}) == 3
	resources.pod_gpus(pod, {"gpu.intel.com/i915"}) == 0
}

# METADATA
# title: malformed limits are named with container and field
test_malformed_limits if {
	pod := _pod([fx.container("a", "two", "1Gi"), fx.container("b", null, "lots")], [])
	resources.malformed_limits(pod, {"cpu", "memory"}) == {
		{"container": "a", "field": "spec.containers[0].resources.limits.cpu", "resource": "cpu", "value": "two"},
		{"container": "b", "field": "spec.containers[1].resources.limits.memory", "resource": "memory", "value": "lots"},
	}
}

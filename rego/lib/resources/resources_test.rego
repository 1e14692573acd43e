# METADATA
# title: Tests of effective pod resources
# description: |
#   Most cases are those of Kubernetes' own PodLimits tests (k8s.io/component-helpers/resource
#   helpers_test.go: TestPodRequestsAndLimits, TestPodResourceLimits, TestIsPodLevelResourcesSet,
#   TestPodLevelResourceRequests for the pod-level override), with values in nano-units.
package edgepolicy.lib.resources_test

import data.edgepolicy.lib.resources
import data.edgepolicy.lib.workload
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _spec
# description: 'A pod spec with `containers` and `init_containers`, merged with `extra` (resources, overhead).'
_spec(containers, init_containers, extra) := object.union({"containers": containers, "initContainers": init_containers}, extra)

# METADATA
# title: _limit
# description: 'The effective pod limit of `resource`, in nano-units, of a Pod with `spec`.'
_limit(spec, resource) := resources.pod_limit(workload.containers(pod), workload.pod_resources(pod), resource) if {
	pod := fx.workload("Pod", spec)
}

# METADATA
# title: _pod
# description: 'The effective pod limit of `resource` of a Pod with `containers` and `init_containers`.'
_pod(containers, init_containers, resource) := _limit(_spec(containers, init_containers, {}), resource)

# METADATA
# title: _c
# description: 'A container named `name` with `limits`.'
_c(name, limits) := {"name": name, "resources": {"limits": limits}}

# METADATA
# title: _sidecar
# description: 'A restartable init container (sidecar) with `limits`.'
_sidecar(name, limits) := object.union(_c(name, limits), {"restartPolicy": "Always"})

# METADATA
# title: _cores
# description: 'Whole cores in nano-units.'
_cores(n) := n * 1000000000

# METADATA
# title: _gibibytes
# description: 'Whole GiB in nano-units.'
_gibibytes(n) := (n * 1073741824) * 1000000000

# METADATA
# title: containers add up, exactly
test_sum_of_containers if {
	_pod([fx.container("a", "500m", "1Gi"), fx.container("b", "1500m", "512Mi")], [], "cpu") == _cores(2)
	_pod([fx.container("a", "500m", "1Gi"), fx.container("b", "1500m", "512Mi")], [], "memory") == 1610612736000000000
	_pod([fx.container("a", "0.3", "1Gi"), fx.container("b", "0.6", "1Gi")], [], "cpu") == 900000000
	_pod([fx.container("a", "1", "1.1Gi"), fx.container("b", "1", "1.1Gi")], [], "memory") == 2362232012800000000
}

# METADATA
# title: 'Kubernetes: a larger init container sets the pod limit, larger containers win over it'
test_init_container_peak if {
	_pod([_c("a", {"cpu": "1"})], [_c("init", {"cpu": "4"})], "cpu") == _cores(4)
	_pod([_c("a", {"cpu": "2"}), _c("b", {"cpu": "3"})], [_c("init", {"cpu": "2"})], "cpu") == _cores(5)
}

# METADATA
# title: 'Kubernetes: restartable init containers add to the containers'
test_sidecars_add_up if {
	_pod([_c("container-1", {"cpu": "1"})], [_sidecar("restartable-init-1", {"cpu": "1"})], "cpu") == _cores(2)
	_pod([fx.container("a", "1", "1Gi")], [_sidecar("proxy", {"cpu": "500m"})], "cpu") == 1500000000
}

# METADATA
# title: 'Kubernetes: multiple restartable init containers, max(5, 3+2+1 + 1) = 7'
test_multiple_sidecars if {
	_pod(
		[_c("container-1", {"cpu": "1"})],
		[
			_c("init-1", {"cpu": "5"}), _sidecar("restartable-init-1", {"cpu": "1"}),
			_sidecar("restartable-init-2", {"cpu": "2"}), _sidecar("restartable-init-3", {"cpu": "3"}),
		],
		"cpu",
	) == _cores(7)
}

# METADATA
# title: sidecars started before an init container run alongside it
test_sidecar_before_init if {
	_pod([fx.container("a", "1", "1Gi")], [_sidecar("proxy", {"cpu": "1"}), _c("load", {"cpu": "3"})], "cpu") == _cores(4)
	_pod([fx.container("a", "1", "1Gi")], [_c("load", {"cpu": "3"}), _sidecar("proxy", {"cpu": "1"})], "cpu") == _cores(3)
}

# METADATA
# title: 'Kubernetes: unlimited containers add nothing; missing and malformed limits count as zero'
test_missing_counts_zero if {
	_pod([{"name": "unlimited"}], [], "cpu") == 0
	_pod([_c("a", {"cpu": "2", "memory": "2Gi"}), {"name": "unlimited"}], [], "memory") == _gibibytes(2)
	_pod([_c("a", {"cpu": "1", "memory": "1Gi"})], [_c("i", {"cpu": "2", "memory": "2Gi"}), {"name": "u"}], "cpu") == _cores(2)
	_pod([{"name": "a"}, fx.container("b", "abc", "1Gi")], [], "cpu") == 0
	_pod([], [], "memory") == 0
}

# METADATA
# title: 'Kubernetes: the pod overhead is added to non-zero limits only'
test_overhead if {
	overhead := {"overhead": {"cpu": "1", "memory": "1Gi"}}
	spec := _spec([_c("a", {"cpu": "2"}), _c("b", {"cpu": "3"})], [_c("init", {"cpu": "2"})], overhead)
	_limit(spec, "cpu") == _cores(6)
	_limit(spec, "memory") == 0

	# all-req-lim-and-overhead: limits 2 cores and 12 bytes plus overhead 5 and 5
	both := _spec([_c("a", {"cpu": "2", "memory": "12"})], [], {"overhead": {"cpu": "5", "memory": "5"}})
	_limit(both, "cpu") == _cores(7)
	_limit(both, "memory") == 17000000000

	# just-overhead: no limits, so no pod limit
	_limit(_spec([{"name": "a"}], [], {"overhead": {"cpu": "5", "memory": "5"}}), "cpu") == 0
}

# METADATA
# title: 'Kubernetes: pod-level limits replace the containers'' aggregate for the resources they set'
test_pod_level_limits if {
	pod_level := {"resources": {"limits": {"cpu": "8m", "memory": "6Mi"}}}
	spec := _spec([_c("a", {"cpu": "2m", "memory": "3Mi"})], [], pod_level)
	_limit(spec, "cpu") == 8000000
	_limit(spec, "memory") == 6291456000000000

	# only memory at pod level: cpu still comes from the containers
	memory_only := _spec([_c("a", {"cpu": "2m"})], [], {"resources": {"limits": {"memory": "2Mi"}}})
	_limit(memory_only, "cpu") == 2000000
	_limit(memory_only, "memory") == 2097152000000000

	# with init and sidecar containers the pod level still wins
	mixed := _spec(
		[_c("a", {"cpu": "2m", "memory": "3Mi"})],
		[_sidecar("s", {"cpu": "4m", "memory": "5Mi"}), _c("i", {"cpu": "8m", "memory": "6Mi"})],
		{"resources": {"limits": {"cpu": "18m", "memory": "15Mi"}}},
	)
	_limit(mixed, "cpu") == 18000000
	_limit(mixed, "memory") == 15728640000000000
}

# METADATA
# title: 'Kubernetes: unsupported pod-level resources are ignored, and overhead adds on top of pod-level limits'
test_pod_level_unsupported_and_overhead if {
	storage := _spec([_c("a", {"ephemeral-storage": "3Mi"})], [], {"resources": {"limits": {"ephemeral-storage": "2Mi"}}})
	_limit(storage, "ephemeral-storage") == 3145728000000000
	gpus := _spec([_c("a", {"nvidia.com/gpu": "1"})], [], {"resources": {"limits": {"nvidia.com/gpu": "4"}}})
	_limit(gpus, "nvidia.com/gpu") == _cores(1)
	hugepages := _spec([_c("a", {"hugepages-2Mi": "6Mi"})], [], {"resources": {"limits": {"hugepages-2Mi": "10Mi"}}})
	_limit(hugepages, "hugepages-2Mi") == 10485760000000000
	with_overhead := _spec([], [], {"resources": {"limits": {"cpu": "1"}}, "overhead": {"cpu": "250m"}})
	_limit(with_overhead, "cpu") == 1250000000
}

# METADATA
# title: has_pod_level_limit holds for the resources Kubernetes applies at pod level only
test_has_pod_level_limit if {
	pod := workload.pod_resources(fx.workload("Pod", _spec([], [], {"resources": {"limits": {"cpu": "1", "ephemeral-storage": "1Mi", "memory": null}}})))
	resources.has_pod_level_limit(pod, "cpu")
	not resources.has_pod_level_limit(pod, "memory")
	not resources.has_pod_level_limit(pod, "ephemeral-storage")
}

# METADATA
# title: GPUs add up over the GPU resource names, as whole devices
test_gpus if {
	pod := fx.workload("Pod", _spec([_c("a", {"nvidia.com/gpu": "2", "amd.com/gpu": 1})], [], {}))
	resources.pod_gpus(workload.containers(pod), workload.pod_resources(pod), {"nvidia.com/gpu", "amd.com/gpu"}) == _cores(3)
	resources.pod_gpus(workload.containers(pod), workload.pod_resources(pod), {"gpu.intel.com/i915"}) == 0
}

# METADATA
# title: malformed limits are named with container and field, also at pod level and in the overhead
test_malformed_limits if {
	pod := fx.workload("Pod", _spec(
		[fx.container("a", "two", "1Gi"), fx.container("b", null, "lots"), _c("g", {"nvidia.com/gpu": "0.5"})],
		[],
		{"resources": {"limits": {"cpu": "x"}}, "overhead": {"memory": "1 Gi"}},
	))
	resources.malformed_limits(workload.containers(pod), workload.pod_resources(pod), {"cpu", "memory", "nvidia.com/gpu"}) == {
		{"container": "a", "field": "spec.containers[0].resources.limits.cpu", "resource": "cpu", "value": "two", "whole": false},
		{"container": "b", "field": "spec.containers[1].resources.limits.memory", "resource": "memory", "value": "lots", "whole": false},
		{"container": "g", "field": "spec.containers[2].resources.limits.nvidia.com/gpu", "resource": "nvidia.com/gpu", "value": "0.5", "whole": true},
		{"field": "spec.resources.limits.cpu", "resource": "cpu", "value": "x", "whole": false},
		{"field": "spec.overhead.memory", "resource": "memory", "value": "1 Gi", "whole": false},
	}
}

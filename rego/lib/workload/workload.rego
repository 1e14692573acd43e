# METADATA
# title: Workload shapes
# description: |
#   Where each workload kind keeps its pod template, and what it means for cost: pod labels,
#   pod annotations, the containers with their limits, and the maximum number of pods at once.
#   Pod labels are `spec.template.metadata.labels` for Deployment, StatefulSet, ReplicaSet,
#   DaemonSet and Job, `spec.jobTemplate.spec.template.metadata.labels` for CronJob and
#   `metadata.labels` for Pod.
package edgepolicy.lib.workload

import data.edgepolicy.lib.quantity

# METADATA
# title: kinds
# description: The workload kinds FinOpsPolicies apply to.
kinds := {"Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "Job", "CronJob", "Pod"}

# METADATA
# title: _scalable_kinds
# description: 'The kinds with spec.replicas.'
_scalable_kinds := {"Deployment", "StatefulSet", "ReplicaSet"}

# METADATA
# title: is_workload
# description: True when `obj` is of a workload kind.
is_workload(obj) if obj.kind in kinds

# METADATA
# title: template_path
# description: The path (list of keys) from `obj` to its pod template; `[]` for a Pod.
template_path(obj) := object.get(_template_paths, object.get(obj, "kind", ""), ["spec", "template"])

# METADATA
# title: _template_paths
# description: 'The kinds whose pod template is not at `spec.template`, and where it is.'
_template_paths := {"Pod": [], "CronJob": ["spec", "jobTemplate", "spec", "template"]}

# METADATA
# title: pod_metadata_path
# description: The path from `obj` to the pod metadata.
pod_metadata_path(obj) := array.concat(template_path(obj), ["metadata"])

# METADATA
# title: field
# description: 'A path as the dotted field name messages use, e.g. `spec.template.metadata`.'
field(path) := concat(".", path)

# METADATA
# title: pod_labels
# description: The labels of the pods `obj` creates, `{}` when there are none.
pod_labels(obj) := _map_at(obj, array.concat(pod_metadata_path(obj), ["labels"]))

# METADATA
# title: pod_annotations
# description: The annotations of the pods `obj` creates, `{}` when there are none.
pod_annotations(obj) := _map_at(obj, array.concat(pod_metadata_path(obj), ["annotations"]))

# METADATA
# title: _map_at
# description: 'The object at `path` in `obj`, `{}` when absent or not an object.'
_map_at(obj, path) := value if {
	value := object.get(obj, path, {})
	is_object(value)
} else := {}

# METADATA
# title: containers
# description: |
#   The containers and init containers of `obj`'s pod spec, each as
#   `{"name", "field", "limits", "is_init", "is_sidecar", "index"}`: `field` is the container's
#   path (e.g. `spec.template.spec.containers[0]`), `limits` its `resources.limits` (`{}` when
#   absent), `quantities` the limits that are valid for their resource, in exact nano-units
#   (`quantity.resource_nanos`, once per decision), `is_sidecar` marks restartable init containers
#   (`restartPolicy: Always`) and `index` is the position in its list.
containers(obj) := [record |
	spec_path := array.concat(template_path(obj), ["spec"])
	prefix := field(spec_path)
	some list in ["containers", "initContainers"]
	some i, container in _list_at(obj, array.concat(spec_path, [list]))
	limits := _map_at(container, ["resources", "limits"])
	record := {
		"name": _container_name(container, i),
		"field": sprintf("%s.%s[%d]", [prefix, list, i]),
		"limits": limits,
		"quantities": _quantities(limits),
		"is_init": list == "initContainers",
		"is_sidecar": _is_restartable(container, list),
		"index": i,
	}
]

# METADATA
# title: pod_resources
# description: |
#   The pod-level resources of `obj`'s pod spec: `limits` (`spec.resources.limits`, Kubernetes'
#   pod-level resources) and `overhead` (`spec.overhead`), each `{}` when absent, with
#   `limit_quantities` and `overhead_quantities` their valid values in nano-units, and `field` the
#   pod spec's path (e.g. `spec.template.spec`).
pod_resources(obj) := _pod_resources(field(spec_path), limits, overhead) if {
	spec_path := array.concat(template_path(obj), ["spec"])
	limits := _map_at(obj, array.concat(spec_path, ["resources", "limits"]))
	overhead := _map_at(obj, array.concat(spec_path, ["overhead"]))
}

# METADATA
# title: _pod_resources
# description: 'The pod-level resources record of the pod spec at `path` with `limits` and `overhead`.'
_pod_resources(path, limits, overhead) := {
	"field": path,
	"limits": {},
	"limit_quantities": {},
	"overhead": {},
	"overhead_quantities": {},
} if {
	count(limits) == 0
	count(overhead) == 0
} else := {
	"field": path,
	"limits": limits,
	"limit_quantities": _quantities(limits),
	"overhead": overhead,
	"overhead_quantities": _quantities(overhead),
}

# METADATA
# title: _quantities
# description: 'The values of resource list `list` that are valid for their resource, in nano-units.'
_quantities(list) := {resource: value |
	some resource, limit in list
	value := quantity.resource_nanos(resource, limit)
}

# METADATA
# title: _list_at
# description: 'The array at `path` in `obj`, `[]` when absent or not an array.'
_list_at(obj, path) := value if {
	value := object.get(obj, path, [])
	is_array(value)
} else := []

# METADATA
# title: _container_name
# description: 'The name of `container`, or `#<index>` when it has none.'
_container_name(container, index) := container.name if {
	is_string(container.name)
} else := sprintf("#%d", [index])

# METADATA
# title: _is_restartable
# description: 'True for an init container with `restartPolicy: Always`.'
_is_restartable(container, list) if {
	list == "initContainers"
	container.restartPolicy == "Always"
} else := false

# METADATA
# title: max_scale
# description: |
#   The most pods `obj` runs at once under a policy whose `autoScale.maxReplicas` is
#   `policy_max_replicas` (0 when the policy sets none): Pod 1; Job `parallelism` (default 1);
#   CronJob its job template's `parallelism` (default 1); Deployment, StatefulSet and ReplicaSet the
#   larger of `spec.replicas` (default 1) and the policy's maxReplicas; DaemonSet the policy's
#   maxReplicas, else 1.
max_scale(obj, _) := 1 if obj.kind == "Pod"

max_scale(obj, _) := _number_or_one(object.get(obj, ["spec", "parallelism"], 1)) if obj.kind == "Job"

max_scale(obj, _) := _number_or_one(object.get(obj, ["spec", "jobTemplate", "spec", "parallelism"], 1)) if {
	obj.kind == "CronJob"
}

max_scale(obj, policy_max_replicas) := max([replicas(obj), policy_max_replicas]) if obj.kind in _scalable_kinds

max_scale(obj, policy_max_replicas) := max([1, policy_max_replicas]) if obj.kind == "DaemonSet"

# METADATA
# title: replicas
# description: '`spec.replicas` of `obj`, 1 when absent or not a number.'
replicas(obj) := _number_or_one(object.get(obj, ["spec", "replicas"], 1))

# METADATA
# title: _number_or_one
# description: '`value` when it is a number, else 1.'
_number_or_one(value) := value if is_number(value)

else := 1

# METADATA
# title: HorizontalPodAutoscalers
# description: |
#   Reads `autoscaling/v2` HorizontalPodAutoscalers (and the `autoscaling/v1` shape, for manifests
#   still written that way) and resolves `scaleTargetRef` against `input.context.workloads`, the
#   workloads the caller knows. Objects in the context without a namespace are taken to be in the
#   namespace of the request.
package edgepolicy.lib.autoscaling

import data.edgepolicy.lib.workload

# METADATA
# title: is_hpa
# description: True when `obj` is a HorizontalPodAutoscaler.
is_hpa(obj) if {
	obj.kind == "HorizontalPodAutoscaler"
	startswith(obj.apiVersion, "autoscaling/")
}

# METADATA
# title: targets
# description: The workloads in the context, in `namespace`, that the scaleTargetRef of `hpa` names.
targets(hpa, namespace) := [candidate |
	some candidate in _context_workloads
	workload.is_workload(candidate)
	candidate.kind == hpa.spec.scaleTargetRef.kind
	candidate.metadata.name == hpa.spec.scaleTargetRef.name
	_namespace(candidate, namespace) == namespace
]

# METADATA
# title: targeting
# description: The HPAs in the context, in `namespace`, whose scaleTargetRef names the `kind` `name`.
targeting(kind, name, namespace) := [hpa |
	some hpa in _context_workloads
	is_hpa(hpa)
	hpa.spec.scaleTargetRef.kind == kind
	hpa.spec.scaleTargetRef.name == name
	_namespace(hpa, namespace) == namespace
]

# METADATA
# title: min_replicas
# description: '`spec.minReplicas` of `hpa`; 1 when absent, as in Kubernetes.'
min_replicas(hpa) := hpa.spec.minReplicas if is_number(hpa.spec.minReplicas)

else := 1

# METADATA
# title: max_replicas
# description: '`spec.maxReplicas` of `hpa`; undefined when absent or not a number.'
max_replicas(hpa) := hpa.spec.maxReplicas if is_number(hpa.spec.maxReplicas)

# METADATA
# title: cpu_utilization_targets
# description: |
#   The CPU averageUtilization targets of `hpa`: `Resource` and `ContainerResource` metrics on
#   `cpu` with a `Utilization` target (v2), or `targetCPUUtilizationPercentage` (v1).
cpu_utilization_targets(hpa) := array.concat(
	[target |
		some metric in object.get(hpa, ["spec", "metrics"], [])
		some source in ["resource", "containerResource"]
		metric[source].name == "cpu"
		metric[source].target.type == "Utilization"
		target := metric[source].target.averageUtilization
	],
	[target |
		target := hpa.spec.targetCPUUtilizationPercentage
	],
)

# METADATA
# title: _context_workloads
# description: 'The objects of `input.context.workloads`.'
_context_workloads := [candidate |
	some candidate in input.context.workloads
	is_object(candidate)
]

# METADATA
# title: _namespace
# description: 'The namespace of `obj`, or `fallback` when it names none.'
_namespace(obj, fallback) := obj.metadata.namespace if {
	is_string(obj.metadata.namespace)
	obj.metadata.namespace != ""
} else := fallback

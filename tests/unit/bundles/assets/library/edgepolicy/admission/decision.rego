# METADATA
# description: |
#   A tiny stand-in for the shipped library, used only by the bundle builder's unit tests: it
#   flags a FinOpsPolicy whose maxCPUCores is not a positive number as policy.invalid and
#   denies Deployments with more replicas than a matching policy's autoScale.maxReplicas.
package edgepolicy.admission

_object := input.request.object

_invalid contains finding if {
	input.request.kind.kind == "FinOpsPolicy"
	cores := _object.spec.costLimits.maxCPUCores
	not _positive(cores)
	finding := {
		"rule": "policy.invalid",
		"policy": sprintf("%s/%s", [_object.metadata.namespace, _object.metadata.name]),
		"message": sprintf("spec.costLimits.maxCPUCores must be a positive number, got %v", [cores]),
		"action": "deny",
	}
}

_positive(x) if {
	is_number(x)
	x > 0
}

_replicas contains finding if {
	input.request.kind.kind == "Deployment"
	some name, policy in data.edgepolicy.policies.finops[input.request.namespace]
	_object.spec.replicas > policy.spec.autoScale.maxReplicas
	finding := {
		"rule": "finops.replicas",
		"policy": sprintf("%s/%s", [input.request.namespace, name]),
		"message": sprintf("replicas %v > %v", [_object.spec.replicas, policy.spec.autoScale.maxReplicas]),
		"action": "deny",
	}
}

_violations := [f | some f in (_invalid | _replicas)]

decision := {
	"allowed": count(_violations) == 0,
	"violations": _violations,
	"warnings": [],
	"dryrun": [],
	"patches": [],
	"policies": [],
}

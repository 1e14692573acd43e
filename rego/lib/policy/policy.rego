# METADATA
# title: FinOpsPolicies and what they apply to
# description: |
#   Merges the FinOpsPolicy objects of `data.edgepolicy.policies.finops[namespace][name]` with those
#   of `input.context.policies` (the context copy wins for the same `namespace/name`; among
#   duplicates in the context the last wins), and finds the policies that apply to the admitted
#   object: policies in its namespace whose `targetWorkloadSelector` matches its pod labels (for a
#   HorizontalPodAutoscaler, the pod labels of the workload it scales).
package edgepolicy.lib.policy

import data.edgepolicy.lib.autoscaling
import data.edgepolicy.lib.request
import data.edgepolicy.lib.selector
import data.edgepolicy.lib.workload

# METADATA
# title: candidates
# description: |
#   Every known FinOpsPolicy in the admitted object's namespace (the only ones that can apply to
#   it) by id `namespace/name`, as `{"id", "namespace", "name", "object"}`. Policies of other
#   namespaces are never looked at, so a decision costs the same however many namespaces a
#   bundle holds.
candidates[id] := record if {
	some name, policy in data.edgepolicy.policies.finops[request.namespace]
	id := concat("/", [request.namespace, name])
	not id in _context_ids
	record := {"id": id, "namespace": request.namespace, "name": name, "object": policy}
}

candidates[id] := record if {
	some id in _context_ids
	same := [policy | some policy in _context_policies; _context_id(policy) == id]
	policy := same[count(same) - 1]
	_context_namespace(policy) == request.namespace
	record := {
		"id": id,
		"namespace": request.namespace,
		"name": _context_name(policy),
		"object": policy,
	}
}

# METADATA
# title: _context_policies
# description: 'The FinOpsPolicy objects of `input.context.policies`.'
_context_policies := [policy |
	some policy in input.context.policies
	policy.kind == "FinOpsPolicy"
]

# METADATA
# title: _context_ids
# description: 'The ids (`namespace/name`) of the context policies.'
_context_ids := {_context_id(policy) | some policy in _context_policies}

# METADATA
# title: _context_id
# description: 'The id `namespace/name` of context policy `policy`.'
_context_id(policy) := concat("/", [_context_namespace(policy), _context_name(policy)])

# METADATA
# title: _context_namespace
# description: 'The namespace of context policy `policy` (`default` when it names none).'
_context_namespace(policy) := policy.metadata.namespace if {
	is_string(policy.metadata.namespace)
	policy.metadata.namespace != ""
} else := "default"

# METADATA
# title: _context_name
# description: 'The name of context policy `policy` (`""` when it has none).'
_context_name(policy) := policy.metadata.name if is_string(policy.metadata.name)

else := ""

# METADATA
# title: subjects
# description: |
#   The workloads whose pod labels policies are matched against: the admitted object when it is a
#   workload, the workloads an admitted HPA scales.
subjects contains request.object if workload.is_workload(request.object)

subjects contains target if {
	autoscaling.is_hpa(request.object)
	some target in autoscaling.targets(request.object, request.namespace)
}

# METADATA
# title: matching
# description: The ids of the usable policies that apply to the admitted object.
matching contains id if {
	some subject in subjects
	labels := workload.pod_labels(subject)
	some id in _usable
	selector.matches_valid(candidates[id].object.spec.targetWorkloadSelector, labels)
}

# METADATA
# title: applying
# description: |
#   The policies that apply to the admitted object, by id, as their `candidates` record plus
#   `settings`: the enforceable (set and valid) fields of the policy's costLimits,
#   optimizationRules and autoScale by field name (`{"maxCPUCores": 8, ...}`), computed once per
#   decision so that rules read a limit with one lookup.
applying[id] := object.union(candidates[id], {"settings": _settings(candidates[id].object)}) if some id in matching

# METADATA
# title: _settings
# description: |
#   The enforceable fields of `policy` by name. A clean policy (the common case) enforces every
#   field it sets; otherwise each field is checked by `setting`.
_settings(policy) := {field: value |
	some section in ["costLimits", "optimizationRules", "autoScale"]
	some field, value in policy.spec[section]
	value != null
} if {
	_is_clean(policy)
} else := {field: value |
	some section in ["costLimits", "optimizationRules", "autoScale"]
	some field, _ in _sections[section]
	value := setting(policy, section, field)
}

# METADATA
# title: unusable
# description: |
#   The ids of the policies in the admitted object's namespace whose selector is missing or
#   malformed: nobody can tell what they target, so they are reported on every workload of their
#   namespace (fail closed) and enforce nothing else.
unusable contains id if {
	count(subjects) > 0
	some id, _ in candidates
	not id in _usable
}

# METADATA
# title: _usable
# description: 'The ids of the policies with a well-formed targetWorkloadSelector, computed once per decision.'
_usable contains id if {
	some id, record in candidates
	selector.is_clean(record.object.spec.targetWorkloadSelector)
}

# METADATA
# title: setting
# description: |
#   The value of `spec.<section>.<field>` of FinOpsPolicy `policy` when it is set and valid;
#   undefined otherwise (an invalid value is reported by `policy.invalid` instead). Inverted
#   replica bounds (minReplicas above maxReplicas) are both invalid: neither is enforced.
setting(policy, section, field) := value if {
	value := policy.spec[section][field]
	is_valid_value(_sections[section][field], value)
	not _is_inverted_bound(policy.spec, section, field)
}

# METADATA
# title: _is_inverted_bound
# description: 'True when `field` of `section` is a replica bound and `spec` has minReplicas above maxReplicas.'
_is_inverted_bound(spec, "autoScale", field) if {
	field in {"minReplicas", "maxReplicas"}
	count(_replica_order_errors(spec)) > 0
}

# METADATA
# title: max_replicas
# description: The policy's valid `autoScale.maxReplicas`, or 0 when it sets none.
max_replicas(policy) := value if {
	value := setting(policy, "autoScale", "maxReplicas")
} else := 0

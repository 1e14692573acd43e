# METADATA
# title: Policies and what they apply to
# description: |
#   Merges the policy objects (FinOpsPolicy, ModelPolicy) of
#   `data.edgepolicy.policies.<finops|model>[namespace][name]` with those of
#   `input.context.policies` (the context copy wins for the same kind and `namespace/name`; among
#   duplicates in the context the last wins), and finds the policies that apply to the admitted
#   object: policies in its namespace whose `targetWorkloadSelector` matches its pod labels (for a
#   HorizontalPodAutoscaler, the pod labels of the workload it scales). One matcher for every kind.
package edgepolicy.lib.policy

import data.edgepolicy.lib.autoscaling
import data.edgepolicy.lib.request
import data.edgepolicy.lib.selector
import data.edgepolicy.lib.workload

# METADATA
# title: _kind_sections
# description: 'The policy kinds and the section of `data.edgepolicy.policies` that holds each.'
_kind_sections := {"FinOpsPolicy": "finops", "ModelPolicy": "model"}

# METADATA
# title: known
# description: |
#   Every known policy in the admitted object's namespace (the only ones that can apply to it) by
#   kind and id `namespace/name`, as `{"id", "namespace", "name", "object"}`: those of
#   `data.edgepolicy.policies.<section>` merged with the context's, the context copy winning.
#   Policies of other namespaces are never looked at, so a decision costs the same however many
#   namespaces a bundle holds.
known[kind][id] := record if {
	some kind, section in _kind_sections
	some name, policy in data.edgepolicy.policies[section][request.namespace]
	id := concat("/", [request.namespace, name])
	not id in _context_ids[kind]
	record := {"id": id, "namespace": request.namespace, "name": name, "object": policy}
}

known[kind][id] := record if {
	some kind, ids in _context_ids
	some id in ids
	same := [policy | some policy in _context_policies[kind]; _context_id(policy) == id]
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
# title: candidates
# description: The known FinOpsPolicies (see `known`) by id.
candidates := object.get(known, "FinOpsPolicy", {})

# METADATA
# title: model_candidates
# description: The known ModelPolicies (see `known`) by id.
model_candidates := object.get(known, "ModelPolicy", {})

# METADATA
# title: _context_policies
# description: 'The policy objects of `input.context.policies` by kind.'
_context_policies[kind] := [policy |
	some policy in input.context.policies
	policy.kind == kind
] if {
	some kind, _ in _kind_sections
}

# METADATA
# title: _context_ids
# description: 'The ids (`namespace/name`) of the context policies by kind.'
_context_ids[kind] := {_context_id(policy) | some policy in policies} if some kind, policies in _context_policies

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
# title: selected
# description: The ids of the usable policies that apply to the admitted object, by kind.
selected[kind] contains id if {
	some subject in subjects
	labels := workload.pod_labels(subject)
	some kind, ids in _usable
	some id in ids
	selector.matches_valid(known[kind][id].object.spec.targetWorkloadSelector, labels)
}

# METADATA
# title: matching
# description: The ids of the usable FinOpsPolicies that apply to the admitted object.
matching := object.get(selected, "FinOpsPolicy", set())

# METADATA
# title: model_matching
# description: The ids of the usable ModelPolicies that apply to the admitted object.
model_matching := object.get(selected, "ModelPolicy", set())

# METADATA
# title: model_applying
# description: The ModelPolicies that apply to the admitted object, by id, as their `known` records.
model_applying[id] := model_candidates[id] if some id in model_matching

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
#   The ids of the FinOpsPolicies in the admitted object's namespace whose selector is missing or
#   malformed: nobody can tell what they target, so they are reported on every workload of their
#   namespace (fail closed) and enforce nothing else.
unusable := object.get(unusable_by_kind, "FinOpsPolicy", set())

# METADATA
# title: unusable_by_kind
# description: The ids of the policies of the namespace without a usable selector (see `unusable`), by kind.
unusable_by_kind[kind] contains id if {
	count(subjects) > 0
	some kind, records in known
	some id, _ in records
	not id in object.get(_usable, kind, set())
}

# METADATA
# title: _usable
# description: 'The ids of the policies with a well-formed targetWorkloadSelector by kind, computed once per decision.'
_usable[kind] contains id if {
	some kind, records in known
	some id, record in records
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

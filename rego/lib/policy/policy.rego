# METADATA
# title: Policies and what they apply to
# description: |
#   Reads the validator's output (docs/decision-contract.md, "Policies"): edgepolicy validates
#   every policy once, against its CRD, when it enters (bundle build, `serve --policies`, cluster
#   lookup, `check`), and hands the decision the valid policies (`data.edgepolicy.policies.finops`,
#   `input.context.policies`) and the invalid ones with their errors and their enforceable part
#   (`data.edgepolicy.policies.invalid`, `input.context.invalidPolicies`). Nothing is validated
#   here. Policies from a source without the validator's mark (`validated` in data,
#   `policiesValidated` in the context) are not trusted: each is a candidate that enforces
#   nothing and is reported as not validated (fail closed).
#
#   The policies of each kind (FinOpsPolicy, ModelPolicy) of data and context merge by
#   `namespace/name` (the context copy wins), and those that apply to the admitted object are
#   found, by one matcher for every kind: policies in its namespace whose `targetWorkloadSelector`
#   matches its pod labels (for a HorizontalPodAutoscaler, the pod labels of the workload it
#   scales).
package edgepolicy.lib.policy

import data.edgepolicy.lib.autoscaling
import data.edgepolicy.lib.request
import data.edgepolicy.lib.selector
import data.edgepolicy.lib.workload

# METADATA
# title: not_validated
# description: The error of a policy that reached the decision without passing the validator.
not_validated := {
	"field": "",
	"message": "was not validated when it was loaded (edgepolicy validates every policy against its CRD when it builds a bundle, loads --policies, reads the cluster or checks files), so it is not trusted",
}

# METADATA
# title: data_validated
# description: |
#   True when `data.edgepolicy.policies` is the validator's output: the rules of every policy
#   kind read valid objects from data only then.
data_validated if data.edgepolicy.policies.validated == true

# METADATA
# title: context_validated
# description: |
#   True when the context's policies are the validator's output: the rules of every policy kind
#   read `input.context.policies` only then.
context_validated if input.context.policiesValidated == true

# METADATA
# title: _kind_sections
# description: 'The policy kinds and the section of `data.edgepolicy.policies` that holds each.'
_kind_sections := {"FinOpsPolicy": "finops", "ModelPolicy": "model"}

# METADATA
# title: _data_records
# description: |
#   The records of data in the request namespace, by kind and name, as `{"object", "errors"}`;
#   empty, without building anything, when data holds none there.
_data_records := {} if {
	not data.edgepolicy.policies.finops[request.namespace]
	not data.edgepolicy.policies.model[request.namespace]
	not data.edgepolicy.policies.invalid[request.namespace]
} else := {kind: records |
	some kind, section in _kind_sections
	records := object.union(
		{name: _data_record(policy) | some name, policy in data.edgepolicy.policies[section][request.namespace]},
		{record.name: {"object": record.object, "errors": record.errors} |
			data_validated
			some record in data.edgepolicy.policies.invalid[request.namespace]
			record.kind == kind
		},
	)
}

# METADATA
# title: _data_record
# description: 'The record of valid `policy` in data: enforced when data is the validator''s output, else untrusted.'
_data_record(policy) := {"object": policy, "errors": []} if data_validated

else := {"object": {}, "errors": [not_validated]}

# METADATA
# title: known
# description: |
#   Every known policy in the admitted object's namespace (the only ones that can apply to it) by
#   kind and id `namespace/name`, as `{"id", "namespace", "name", "object", "errors"}`: `object`
#   is what is enforced (the whole policy when valid, its valid fields when not, nothing when it
#   was not validated) and `errors` the validator's errors (empty when valid). Policies of other
#   namespaces are never looked at, so a decision costs the same however many namespaces a
#   bundle holds.
known[kind][id] := object.union(record, {"id": id, "namespace": request.namespace, "name": name}) if {
	some kind, records in _data_records
	some name, record in records
	id := concat("/", [request.namespace, name])
	not id in object.get(_context_ids, kind, set())
}

known[kind][id] := object.union(object.remove(entry, ["kind"]), {"id": id}) if {
	some kind, ids in _context_ids
	some id in ids
	same := [entry | some entry in _context_entries; entry.kind == kind; entry.id == id]
	entry := same[count(same) - 1]
	entry.namespace == request.namespace
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
# title: _context_entries
# description: |
#   The policy records of the context, in order (valid, then invalid, then untrusted), as
#   `{"kind", "id", "namespace", "name", "object", "errors"}`; empty, without building anything,
#   when the context holds no policy (most webhook requests in namespaces without policies).
_context_entries := [] if {
	not input.context.policies[0]
	not input.context.invalidPolicies[0]
} else := array.concat(
	array.concat(
		[_entry(p.kind, object.get(p, "metadata", {}), p, []) | context_validated; some p in input.context.policies; _kind_sections[p.kind]],
		[_entry(r.kind, r, r.object, r.errors) | context_validated; some r in input.context.invalidPolicies; _kind_sections[r.kind]],
	),
	[_entry(p.kind, object.get(p, "metadata", {}), {}, [not_validated]) | not context_validated; some p in input.context.policies; _kind_sections[p.kind]],
)

# METADATA
# title: _entry
# description: 'A context record of `kind` from `where` (metadata or an invalid record: namespace and name), `obj` and `errors`.'
_entry(kind, where, obj, errors) := {
	"kind": kind,
	"id": concat("/", [namespace, name]),
	"namespace": namespace,
	"name": name,
	"object": obj,
	"errors": errors,
} if {
	namespace := _namespace(where)
	name := object.get(where, "name", "")
}

# METADATA
# title: _context_ids
# description: 'The ids (`namespace/name`) of the context policies, by kind.'
_context_ids[kind] contains entry.id if {
	some entry in _context_entries
	kind := entry.kind
}

# METADATA
# title: _namespace
# description: 'The namespace named by `where` (`default` when it names none).'
_namespace(where) := where.namespace if {
	is_string(where.namespace)
	where.namespace != ""
} else := "default"

# METADATA
# title: admitted_errors
# description: |
#   The validator's errors of the admitted object when it is a policy (of any kind): those of its
#   record in the context, none when the context holds it as valid, `not_validated` when the
#   context does not hold it at all.
admitted_errors := record.errors if {
	context_validated
	some record in input.context.invalidPolicies
	_is_admitted(record.kind, record)
} else := [] if {
	context_validated
	some valid in input.context.policies
	_is_admitted(valid.kind, valid.metadata)
} else := [not_validated]

# METADATA
# title: _is_admitted
# description: 'True when `kind` and `where` (namespace, name) name the admitted object.'
_is_admitted(kind, where) if {
	kind == request.kind
	_namespace(where) == request.namespace
	object.get(where, "name", "") == request.name
}

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
	selector.matches(known[kind][id].object.spec.targetWorkloadSelector, labels)
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
#   `settings`: the enforced fields of the policy's costLimits, optimizationRules and autoScale
#   by field name (`{"maxCPUCores": 8, ...}`), computed once per decision so that rules read a
#   limit with one lookup.
applying[id] := object.union(candidates[id], {"settings": _settings(candidates[id].object)}) if some id in matching

# METADATA
# title: _settings
# description: 'The enforced fields of (validated) policy `policy` by name.'
_settings(policy) := {field: value |
	some section in ["costLimits", "optimizationRules", "autoScale"]
	some field, value in policy.spec[section]
	value != null
}

# METADATA
# title: unusable
# description: |
#   The ids of the FinOpsPolicies in the admitted object's namespace without a usable selector
#   (it was missing or invalid, or the policy was not validated): nobody can tell what they
#   target, so they are reported on every workload of their namespace (fail closed) and enforce
#   nothing else.
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
# description: 'The ids of the policies whose (validated) targetWorkloadSelector is enforced, by kind.'
_usable[kind] contains id if {
	some kind, records in known
	some id, record in records
	record.object.spec.targetWorkloadSelector
}

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
#   The FinOpsPolicies of data and context merge by `namespace/name` (the context copy wins), and
#   those that apply to the admitted object are found: policies in its namespace whose
#   `targetWorkloadSelector` matches its pod labels (for a HorizontalPodAutoscaler, the pod
#   labels of the workload it scales).
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
# title: _data_records
# description: |
#   The FinOpsPolicy records of data in the request namespace, by name, as
#   `{"object", "errors"}`; empty, without building anything, when data holds none there.
_data_records := {} if {
	not data.edgepolicy.policies.finops[request.namespace]
	not data.edgepolicy.policies.invalid[request.namespace]
} else := object.union(
	{name: _data_record(policy) | some name, policy in data.edgepolicy.policies.finops[request.namespace]},
	{record.name: {"object": record.object, "errors": record.errors} |
		data_validated
		some record in data.edgepolicy.policies.invalid[request.namespace]
		record.kind == "FinOpsPolicy"
	},
)

# METADATA
# title: _data_record
# description: 'The record of valid `policy` in data: enforced when data is the validator''s output, else untrusted.'
_data_record(policy) := {"object": policy, "errors": []} if data_validated

else := {"object": {}, "errors": [not_validated]}

# METADATA
# title: candidates
# description: |
#   Every known FinOpsPolicy in the admitted object's namespace (the only ones that can apply to
#   it) by id `namespace/name`, as `{"id", "namespace", "name", "object", "errors"}`: `object` is
#   what is enforced (the whole policy when valid, its valid fields when not, nothing when it was
#   not validated) and `errors` the validator's errors (empty when valid). Policies of other
#   namespaces are never looked at, so a decision costs the same however many namespaces a
#   bundle holds.
candidates[id] := object.union(record, {"id": id, "namespace": request.namespace, "name": name}) if {
	some name, record in _data_records
	id := concat("/", [request.namespace, name])
	not id in _context_ids
}

candidates[id] := object.union(entry, {"id": id}) if {
	some id in _context_ids
	same := [entry | some entry in _context_entries; entry.id == id]
	entry := same[count(same) - 1]
	entry.namespace == request.namespace
}

# METADATA
# title: _context_entries
# description: |
#   The FinOpsPolicy records of the context, in order (valid, then invalid, then untrusted), as
#   `{"id", "namespace", "name", "object", "errors"}`; empty, without building anything, when the
#   context holds no policy (most webhook requests in namespaces without policies).
_context_entries := [] if {
	not input.context.policies[0]
	not input.context.invalidPolicies[0]
} else := array.concat(
	array.concat(
		[_entry(object.get(p, "metadata", {}), p, []) | context_validated; some p in input.context.policies; p.kind == "FinOpsPolicy"],
		[_entry(r, r.object, r.errors) | context_validated; some r in input.context.invalidPolicies; r.kind == "FinOpsPolicy"],
	),
	[_entry(object.get(p, "metadata", {}), {}, [not_validated]) | not context_validated; some p in input.context.policies; p.kind == "FinOpsPolicy"],
)

# METADATA
# title: _entry
# description: 'A context record from `where` (metadata or an invalid record: namespace and name), `obj` and `errors`.'
_entry(where, obj, errors) := {
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
# description: 'The ids (`namespace/name`) of the context policies.'
_context_ids := {entry.id | some entry in _context_entries}

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
# title: matching
# description: The ids of the usable policies that apply to the admitted object.
matching contains id if {
	some subject in subjects
	labels := workload.pod_labels(subject)
	some id in _usable
	selector.matches(candidates[id].object.spec.targetWorkloadSelector, labels)
}

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
#   The ids of the policies in the admitted object's namespace without a usable selector (it was
#   missing or invalid, or the policy was not validated): nobody can tell what they target, so
#   they are reported on every workload of their namespace (fail closed) and enforce nothing
#   else.
unusable contains id if {
	count(subjects) > 0
	some id, _ in candidates
	not id in _usable
}

# METADATA
# title: _usable
# description: 'The ids of the policies whose (validated) targetWorkloadSelector is enforced.'
_usable contains id if {
	some id, record in candidates
	record.object.spec.targetWorkloadSelector
}

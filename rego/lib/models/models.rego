# METADATA
# title: The admitted workload's models and their verification outcomes
# description: |
#   The models a pod names with `models.apexlogic.com/` annotations on its pod template (a Pod's
#   own metadata) and, per ModelPolicy that applies, what the caller's verifier concluded about
#   each (`input.context.models`, docs/decision-contract.md). Facts count only from an outcome
#   with `verified: true`; they are the verified facts file's text, decoded here with
#   `json.unmarshal`, so their numbers stay the exact decimals that were signed.
package edgepolicy.lib.models

import data.edgepolicy.lib.policy
import data.edgepolicy.lib.request
import data.edgepolicy.lib.workload

# METADATA
# title: default_name
# description: The name of the model named by the single-model annotations (no `.<name>` suffix).
default_name := "default"

# METADATA
# title: _prefix
# description: 'The annotation prefix.'
_prefix := "models.apexlogic.com/"

# METADATA
# title: _forms
# description: 'The annotation names (after the prefix) that name a model.'
_forms := {"signature", "facts", "signature-configmap"}

# METADATA
# title: annotations_field
# description: Where the model annotations are read, for messages (`spec.template.metadata.annotations`).
annotations_field := workload.field(array.concat(workload.pod_metadata_path(request.object), ["annotations"]))

# METADATA
# title: declared
# description: |
#   The names of the models the admitted workload names: `default` for
#   `models.apexlogic.com/{signature,facts,signature-configmap}`, `<name>` for the same with a
#   `.<name>` suffix, plus any model an outcome of an applying ModelPolicy names.
declared contains name if {
	some key, _ in workload.pod_annotations(request.object)
	startswith(key, _prefix)
	name := _model_name(substring(key, count(_prefix), -1))
}

declared contains name if {
	some id in policy.model_matching
	some name, _ in input.context.models[id]
}

# METADATA
# title: _model_name
# description: 'The model named by annotation `suffix` (the part after the prefix); undefined for other annotations.'
_model_name(suffix) := default_name if suffix in _forms

_model_name(suffix) := name if {
	some form in _forms
	startswith(suffix, concat("", [form, "."]))
	name := substring(suffix, count(form) + 1, -1)
	name != ""
}

# METADATA
# title: annotation
# description: The signature annotation of model `name`, for messages.
annotation(name) := concat("", [_prefix, "signature"]) if name == default_name

else := concat("", [_prefix, "signature.", name])

# METADATA
# title: facts
# description: |
#   The verified facts (an object) of model `name` under ModelPolicy `id`, by id and name; only
#   for outcomes with `verified: true` whose `facts` is a JSON object's text.
facts[id][name] := value if {
	some id in policy.model_matching
	some name, outcome in input.context.models[id]
	outcome.verified == true
	is_string(outcome.facts)
	value := json.unmarshal(outcome.facts)
	is_object(value)
}

# METADATA
# title: unverified_reason
# description: |
#   Why model `name` has no verified facts under ModelPolicy `id` (the verifier's reason); undefined
#   when it has them. A missing outcome means the caller verified nothing for that policy.
unverified_reason(id, name) := reason if {
	not facts[id][name]
	reason := _reason(object.get(input.context.models, [id, name], null))
}

# METADATA
# title: _reason
# description: 'The reason of an unverified `outcome` (null when there is none).'
_reason(outcome) := outcome.reason if {
	is_string(outcome.reason)
	outcome.reason != ""
} else := "the verified facts are not a JSON object" if {
	outcome.verified == true
} else := "no verification outcome for this policy: the caller verified nothing, so nothing counts"

# METADATA
# title: is_quantized
# description: |
#   True when verified facts of model `name` under any applying ModelPolicy say it is quantized:
#   `model.quantization` is `int8` or `int4` (fp16 is reduced precision, not quantization).
is_quantized(name) if {
	some id in policy.model_matching
	facts[id][name].model.quantization in {"int8", "int4"}
}

# METADATA
# title: volume_names
# description: The names of the admitted workload's pod volumes.
volume_names := {volume.name |
	some volume in object.get(request.object, array.concat(workload.template_path(request.object), ["spec", "volumes"]), [])
}

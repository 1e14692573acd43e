# FinOpsPolicy validation (part of package edgepolicy.lib.policy, annotated in policy.rego).
# The schema of a FinOpsPolicy, checked field by field. Every field is optional except
# `spec.targetWorkloadSelector`; `null` counts as absent. Unknown fields are errors so that a
# typo (`costLimit`) never silently disables a limit.
package edgepolicy.lib.policy

import data.edgepolicy.lib.selector

# METADATA
# title: _sections
# description: 'The spec sections and, per field, the kind of value it takes.'
_sections := {
	"costLimits": {"dailyGPUHours": "hours", "maxCPUCores": "positive", "maxMemoryGB": "positive"},
	"optimizationRules": {"idleShutdownThresholdMinutes": "positive", "modelQuantizationRequired": "boolean"},
	"autoScale": {"minReplicas": "count", "maxReplicas": "count", "cpuUtilizationPercentage": "count"},
	"alerting": {"thresholdExceeded": "alert", "idleShutdown": "alert"},
}

# METADATA
# title: _alert_fields
# description: 'The fields of an alerting entry.'
_alert_fields := {"severity", "recipientGroup"}

# METADATA
# title: _spec_fields
# description: 'The fields `spec` may have.'
_spec_fields := {"targetWorkloadSelector"} | {section | some section, _ in _sections}

# METADATA
# title: _top_fields
# description: 'The top-level fields a FinOpsPolicy object may have.'
_top_fields := {"apiVersion", "kind", "metadata", "spec", "status"}

# METADATA
# title: _expectations
# description: 'What each kind of value must be, for messages.'
_expectations := {
	"hours": "a number of hours in (0, 24]",
	"positive": "a number greater than 0",
	"boolean": "true or false",
	"count": "a whole number of at least 1",
	"alert": "an object with severity and recipientGroup strings",
}

# METADATA
# title: errors
# description: |
#   The problems of FinOpsPolicy object `policy`, each `{"field": ..., "message": ...}` naming the
#   field (e.g. `spec.costLimits.maxCPUCores`) and what is expected instead.
errors(policy) := set() if {
	_is_clean(policy)
} else := {error | some error in _errors(policy)}

# METADATA
# title: _clean_spec_pattern
# description: |
#   The JSON of a clean spec (as `json.marshal` writes it: compact, keys sorted) without nulls
#   or exponents: known sections with known fields, positive numbers, hours in (0, 24], whole
#   counts of at least 1, booleans, alert strings, and last the targetWorkloadSelector (checked
#   by `selector.is_clean`). Generated from the schema in `_sections`; any other spec is checked
#   field by field.
_clean_spec_pattern := `^\{(?:(?:"alerting":\{(?:"idleShutdown":\{(?:"recipientGroup":"(?:[^"\\]|\\.)*"(?:,"severity":"(?:[^"\\]|\\.)*")?|"severity":"(?:[^"\\]|\\.)*")?\}(?:,"thresholdExceeded":\{(?:"recipientGroup":"(?:[^"\\]|\\.)*"(?:,"severity":"(?:[^"\\]|\\.)*")?|"severity":"(?:[^"\\]|\\.)*")?\})?|"thresholdExceeded":\{(?:"recipientGroup":"(?:[^"\\]|\\.)*"(?:,"severity":"(?:[^"\\]|\\.)*")?|"severity":"(?:[^"\\]|\\.)*")?\})?\}(?:,"autoScale":\{(?:"cpuUtilizationPercentage":[1-9][0-9]*(?:,"maxReplicas":[1-9][0-9]*)?(?:,"minReplicas":[1-9][0-9]*)?|"maxReplicas":[1-9][0-9]*(?:,"minReplicas":[1-9][0-9]*)?|"minReplicas":[1-9][0-9]*)?\})?(?:,"costLimits":\{(?:"dailyGPUHours":(?:(?:[1-9]|1[0-9]|2[0-3])(?:\.[0-9]+)?|24(?:\.0+)?|0\.[0-9]*[1-9][0-9]*)(?:,"maxCPUCores":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*))?(?:,"maxMemoryGB":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*))?|"maxCPUCores":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*)(?:,"maxMemoryGB":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*))?|"maxMemoryGB":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*))?\})?(?:,"optimizationRules":\{(?:"idleShutdownThresholdMinutes":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*)(?:,"modelQuantizationRequired":(?:true|false))?|"modelQuantizationRequired":(?:true|false))?\})?|"autoScale":\{(?:"cpuUtilizationPercentage":[1-9][0-9]*(?:,"maxReplicas":[1-9][0-9]*)?(?:,"minReplicas":[1-9][0-9]*)?|"maxReplicas":[1-9][0-9]*(?:,"minReplicas":[1-9][0-9]*)?|"minReplicas":[1-9][0-9]*)?\}(?:,"costLimits":\{(?:"dailyGPUHours":(?:(?:[1-9]|1[0-9]|2[0-3])(?:\.[0-9]+)?|24(?:\.0+)?|0\.[0-9]*[1-9][0-9]*)(?:,"maxCPUCores":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*))?(?:,"maxMemoryGB":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*))?|"maxCPUCores":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*)(?:,"maxMemoryGB":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*))?|"maxMemoryGB":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*))?\})?(?:,"optimizationRules":\{(?:"idleShutdownThresholdMinutes":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*)(?:,"modelQuantizationRequired":(?:true|false))?|"modelQuantizationRequired":(?:true|false))?\})?|"costLimits":\{(?:"dailyGPUHours":(?:(?:[1-9]|1[0-9]|2[0-3])(?:\.[0-9]+)?|24(?:\.0+)?|0\.[0-9]*[1-9][0-9]*)(?:,"maxCPUCores":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*))?(?:,"maxMemoryGB":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*))?|"maxCPUCores":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*)(?:,"maxMemoryGB":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*))?|"maxMemoryGB":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*))?\}(?:,"optimizationRules":\{(?:"idleShutdownThresholdMinutes":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*)(?:,"modelQuantizationRequired":(?:true|false))?|"modelQuantizationRequired":(?:true|false))?\})?|"optimizationRules":\{(?:"idleShutdownThresholdMinutes":(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*)(?:,"modelQuantizationRequired":(?:true|false))?|"modelQuantizationRequired":(?:true|false))?\}),)?"targetWorkloadSelector":\{.*\}\}$`

# METADATA
# title: _is_clean
# description: |
#   True when `policy` has no problem at all: the cheap common case, checked before the
#   detailed (and costlier) error reporting runs. First one match of the spec's JSON against
#   `_clean_spec_pattern`, else field by field. A number is checked with comparisons only: it
#   is above 0 (excluding null and booleans) and below any string (`x < ""` excludes strings,
#   arrays and objects). It may only err towards "not clean" (a null field, say, is left to the
#   detailed check, which finds no error then).
_is_clean(policy) if {
	is_string(policy.metadata.name)
	policy.metadata.name != ""
	count(object.keys(policy) - _top_fields) == 0
	count(object.keys(policy.spec) - _spec_fields) == 0
	regex.match(_clean_spec_pattern, json.marshal(policy.spec))
	lowest := object.get(policy.spec, ["autoScale", "minReplicas"], 1)
	lowest <= object.get(policy.spec, ["autoScale", "maxReplicas"], lowest)
	selector.is_clean(policy.spec.targetWorkloadSelector)
} else if {
	is_string(policy.metadata.name)
	policy.metadata.name != ""
	count(object.keys(policy) - _top_fields) == 0
	spec := policy.spec
	count(object.keys(spec) - _spec_fields) == 0
	selector.is_clean(spec.targetWorkloadSelector)
	costs := object.get(spec, "costLimits", {})
	count(object.keys(costs) - {"dailyGPUHours", "maxCPUCores", "maxMemoryGB"}) == 0
	every limit in costs {
		0 < limit
		limit < ""
	}
	object.get(costs, "dailyGPUHours", 24) <= 24
	rules := object.get(spec, "optimizationRules", {})
	count(object.keys(rules) - {"idleShutdownThresholdMinutes", "modelQuantizationRequired"}) == 0
	minutes := object.get(rules, "idleShutdownThresholdMinutes", 1)
	0 < minutes
	minutes < ""
	is_boolean(object.get(rules, "modelQuantizationRequired", false))
	scale := object.get(spec, "autoScale", {})
	count(object.keys(scale) - {"minReplicas", "maxReplicas", "cpuUtilizationPercentage"}) == 0
	every replicas in scale {
		1 <= replicas
		replicas < ""
		replicas == round(replicas)
	}
	lowest := object.get(scale, "minReplicas", 1)
	lowest <= object.get(scale, "maxReplicas", lowest)
	alerting := object.get(spec, "alerting", {})
	count(object.keys(alerting) - {"thresholdExceeded", "idleShutdown"}) == 0
	every alert in alerting {
		count(object.keys(alert) - _alert_fields) == 0
		every text in alert {
			is_string(text)
		}
	}
}

# METADATA
# title: _errors
# description: 'The problems of `policy` as a list.'
_errors(policy) := [{"field": "", "message": sprintf("must be an object, got %s", [json.marshal(policy)])}] if {
	not is_object(policy)
} else := array.concat(array.concat(_name_errors(policy), _top_errors(policy)), _spec_errors(policy))

# METADATA
# title: _top_errors
# description: |
#   A problem per unknown top-level field of `policy`; a spec field found there (mis-indented)
#   is told to belong under spec.
_top_errors(policy) := [error |
	some unknown in _unknown_errors(policy, _top_fields, "")
	error := object.union(unknown, {"message": concat("", [unknown.message, _misplaced_hint(unknown.field)])})
]

# METADATA
# title: _misplaced_hint
# description: 'A hint when top-level field `field` is a spec field.'
_misplaced_hint(field) := "; it belongs under spec" if field in _spec_fields

else := ""

# METADATA
# title: _name_errors
# description: 'A problem when `metadata.name` is missing.'
_name_errors(policy) := [] if {
	is_string(policy.metadata.name)
	policy.metadata.name != ""
} else := [{"field": "metadata.name", "message": "is required"}]

# METADATA
# title: _spec_errors
# description: 'The problems of `spec`: missing, no selector, or its selector and sections.'
_spec_errors(policy) := [{"field": "spec", "message": "is required: an object with targetWorkloadSelector and the limits to enforce"}] if {
	not "spec" in object.keys(policy)
} else := [{"field": "spec", "message": sprintf("must be an object, got %s", [json.marshal(policy.spec)])}] if {
	not is_object(policy.spec)
} else := [{"field": "spec.targetWorkloadSelector", "message": "is required: a label selector with matchLabels and/or matchExpressions"}] if {
	object.get(policy.spec, "targetWorkloadSelector", null) == null
} else := [error |
	some error in array.concat(
		[e | some e in selector.errors(policy.spec.targetWorkloadSelector, "spec.targetWorkloadSelector")],
		_section_errors(policy.spec),
	)
]

# METADATA
# title: _section_errors
# description: 'The problems of the sections of `spec`.'
_section_errors(spec) := [error |
	some errors in [
		_unknown_errors(spec, _spec_fields, "spec"),
		_value_errors(spec),
		_replica_order_errors(spec),
	]
	some error in errors
]

# METADATA
# title: _unknown_errors
# description: 'A problem per field of `obj` not in `known`, under `prefix`.'
_unknown_errors(obj, known, prefix) := [error |
	some field, _ in obj
	not field in known
	error := {
		"field": _path(prefix, field),
		"message": sprintf("unknown field (known: %s)", [concat(", ", sort(known))]),
	}
]

# METADATA
# title: _path
# description: '`field` under `prefix` as a dotted path (`prefix` may be empty, for top-level fields).'
_path("", field) := field

_path(prefix, field) := sprintf("%s.%s", [prefix, field]) if prefix != ""

# METADATA
# title: _value_errors
# description: 'The problems of the values in every section of `spec`.'
_value_errors(spec) := [error |
	some section, fields in _sections
	value := object.get(spec, section, null)
	value != null
	some error in _section_value_errors(value, fields, sprintf("spec.%s", [section]))
]

# METADATA
# title: _section_value_errors
# description: 'The problems of one section `value` with its `fields`, under `prefix`.'
_section_value_errors(value, fields, prefix) := [{"field": prefix, "message": sprintf("must be an object, got %s", [json.marshal(value)])}] if {
	not is_object(value)
} else := array.concat(_unknown_errors(value, {name | some name, _ in fields}, prefix), [error |
	some name, kind in fields
	field_value := object.get(value, name, null)
	field_value != null
	some error in _field_errors(kind, field_value, sprintf("%s.%s", [prefix, name]))
])

# METADATA
# title: _field_errors
# description: 'The problems of one field `value` of `kind`, named `field`.'
_field_errors("alert", value, field) := [{"field": field, "message": sprintf("must be %s, got %s", [_expectations.alert, json.marshal(value)])}] if {
	not is_object(value)
} else := array.concat(_unknown_errors(value, _alert_fields, field), [error |
	some name in _alert_fields
	entry := object.get(value, name, null)
	entry != null
	not is_string(entry)
	error := {"field": sprintf("%s.%s", [field, name]), "message": sprintf("must be a string, got %s", [json.marshal(entry)])}
])

_field_errors(kind, value, field) := [] if {
	kind != "alert"
	is_valid_value(kind, value)
} else := [{"field": field, "message": sprintf("must be %s, got %s", [_expectations[kind], json.marshal(value)])}] if {
	kind != "alert"
}

# METADATA
# title: _replica_order_errors
# description: 'A problem when autoScale.minReplicas exceeds autoScale.maxReplicas.'
_replica_order_errors(spec) := [{
	"field": "spec.autoScale.minReplicas",
	"message": sprintf("must not exceed spec.autoScale.maxReplicas (%v > %v), so neither bound is enforced", [spec.autoScale.minReplicas, spec.autoScale.maxReplicas]),
}] if {
	is_valid_value("count", spec.autoScale.minReplicas)
	is_valid_value("count", spec.autoScale.maxReplicas)
	spec.autoScale.minReplicas > spec.autoScale.maxReplicas
} else := []

# METADATA
# title: is_valid_value
# description: True when `value` is valid for a field of `kind` (hours, positive, boolean, count).
is_valid_value("hours", value) if {
	is_number(value)
	value > 0
	value <= 24
}

is_valid_value("positive", value) if {
	is_number(value)
	value > 0
}

is_valid_value("boolean", value) if is_boolean(value)

is_valid_value("count", value) if {
	is_number(value)
	value >= 1
	value == round(value)
}

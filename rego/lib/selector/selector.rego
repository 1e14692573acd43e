# METADATA
# title: Label selectors
# description: |
#   Standard Kubernetes LabelSelector matching: every `matchLabels` entry and every
#   `matchExpressions` requirement (In, NotIn, Exists, DoesNotExist) must hold. An empty selector
#   matches everything, as in Kubernetes. Structural problems are reported by `errors`; a selector
#   with errors matches nothing.
package edgepolicy.lib.selector

# METADATA
# title: _operators
# description: 'The matchExpressions operators.'
_operators := {"In", "NotIn", "Exists", "DoesNotExist"}

# METADATA
# title: _known_fields
# description: 'The fields of a LabelSelector.'
_known_fields := {"matchLabels", "matchExpressions"}

# METADATA
# title: matches
# description: True when `selector` is well-formed and selects an object carrying `labels`.
matches(selector, labels) if {
	count(errors(selector, "")) == 0
	matches_valid(selector, labels)
}

# METADATA
# title: matches_valid
# description: |
#   True when `selector`, already known to have no `errors`, selects an object carrying `labels`.
#   Callers that validate each selector once use it to avoid validating it again per object.
matches_valid(selector, labels) if {
	every key, value in object.get(selector, "matchLabels", {}) {
		labels[key] == value
	}
	every requirement in object.get(selector, "matchExpressions", []) {
		_satisfied(requirement, labels)
	}
}

# METADATA
# title: _satisfied
# description: 'True when `requirement` holds for `labels`.'
_satisfied(requirement, labels) if {
	requirement.operator == "In"
	labels[requirement.key] in requirement.values
}

_satisfied(requirement, labels) if {
	requirement.operator == "NotIn"
	not _has_label(labels, requirement.key)
}

_satisfied(requirement, labels) if {
	requirement.operator == "NotIn"
	value := labels[requirement.key]
	not value in requirement.values
}

_satisfied(requirement, labels) if {
	requirement.operator == "Exists"
	_has_label(labels, requirement.key)
}

_satisfied(requirement, labels) if {
	requirement.operator == "DoesNotExist"
	not _has_label(labels, requirement.key)
}

# METADATA
# title: _has_label
# description: 'True when `labels` has `key`, whatever its value.'
_has_label(labels, key) if key in object.keys(labels)

# METADATA
# title: errors
# description: |
#   The problems of `selector`, each `{"field": ..., "message": ...}` with the field path prefixed
#   by `prefix` (e.g. `spec.targetWorkloadSelector`).
errors(selector, prefix) := set() if {
	is_clean(selector)
} else := {e | some e in _errors(selector, prefix)}

# METADATA
# title: is_clean
# description: True when `selector` is a well-formed LabelSelector (the cheap check behind `errors`).
is_clean(selector) if {
	is_object(selector)
	every field, value in selector {
		_is_clean_field(field, value)
	}
}

# METADATA
# title: _is_clean_field
# description: 'True when selector field `field` is known and its `value` well-formed.'
_is_clean_field("matchLabels", labels) if {
	is_object(labels)
	every _, value in labels {
		is_string(value)
	}
}

_is_clean_field("matchExpressions", requirements) if {
	is_array(requirements)
	every requirement in requirements {
		is_object(requirement)
		count(_requirement_errors(requirement, "")) == 0
	}
}

# METADATA
# title: _errors
# description: 'The problems of `selector` as a list.'
_errors(selector, prefix) := [{"field": prefix, "message": sprintf("must be an object, got %s", [json.marshal(selector)])}] if {
	not is_object(selector)
} else := _object_errors(selector, prefix)

# METADATA
# title: _object_errors
# description: 'The problems of a selector that is an object.'
_object_errors(selector, prefix) := array.concat(
	array.concat(_unknown_field_errors(selector, prefix), _match_labels_errors(selector, prefix)),
	_match_expressions_errors(selector, prefix),
)

# METADATA
# title: _unknown_field_errors
# description: 'A problem per unknown selector field.'
_unknown_field_errors(selector, prefix) := [error |
	some field, _ in selector
	not field in _known_fields
	error := {
		"field": _join(prefix, field),
		"message": sprintf("unknown field (known: %s)", [concat(", ", sort(_known_fields))]),
	}
]

# METADATA
# title: _match_labels_errors
# description: 'The problems of matchLabels.'
_match_labels_errors(selector, prefix) := [] if {
	not "matchLabels" in object.keys(selector)
} else := [{"field": _join(prefix, "matchLabels"), "message": sprintf("must be a map of label names to strings, got %s", [json.marshal(selector.matchLabels)])}] if {
	not is_object(selector.matchLabels)
} else := [error |
	some key, value in selector.matchLabels
	not is_string(value)
	error := {
		"field": sprintf("%s.matchLabels.%s", [prefix, key]),
		"message": sprintf("label values must be strings, got %s", [json.marshal(value)]),
	}
]

# METADATA
# title: _match_expressions_errors
# description: 'The problems of matchExpressions.'
_match_expressions_errors(selector, prefix) := [] if {
	not "matchExpressions" in object.keys(selector)
} else := [{"field": _join(prefix, "matchExpressions"), "message": sprintf("must be a list of requirements, got %s", [json.marshal(selector.matchExpressions)])}] if {
	not is_array(selector.matchExpressions)
} else := [error |
	some i, requirement in selector.matchExpressions
	some error in _requirement_errors(requirement, sprintf("%s.matchExpressions[%d]", [prefix, i]))
]

# METADATA
# title: _requirement_errors
# description: 'The problems of one requirement, named `field`.'
_requirement_errors(requirement, field) := [{"field": field, "message": sprintf("must be an object with key, operator and values, got %s", [json.marshal(requirement)])}] if {
	not is_object(requirement)
} else := [error |
	some error in array.concat(_key_errors(requirement, field), _operator_errors(requirement, field))
]

# METADATA
# title: _key_errors
# description: 'A problem when a requirement''s key is not a non-empty string.'
_key_errors(requirement, field) := [] if {
	is_string(requirement.key)
	requirement.key != ""
} else := [{"field": sprintf("%s.key", [field]), "message": sprintf("must be a non-empty string, got %s", [json.marshal(object.get(requirement, "key", null))])}]

# METADATA
# title: _operator_errors
# description: 'A problem when the operator is unknown, else the problems of the values.'
_operator_errors(requirement, field) := [{"field": sprintf("%s.operator", [field]), "message": sprintf("must be one of %s, got %s", [concat(", ", sort(_operators)), json.marshal(object.get(requirement, "operator", null))])}] if {
	not object.get(requirement, "operator", null) in _operators
} else := _values_errors(requirement, field)

# METADATA
# title: _values_errors
# description: 'The problems of the values of a requirement for its operator.'
_values_errors(requirement, field) := [] if {
	requirement.operator in {"In", "NotIn"}
	is_array(requirement.values)
	count(requirement.values) > 0
	every value in requirement.values {
		is_string(value)
	}
} else := [{"field": sprintf("%s.values", [field]), "message": sprintf("operator %s needs a non-empty list of strings, got %s", [requirement.operator, json.marshal(object.get(requirement, "values", null))])}] if {
	requirement.operator in {"In", "NotIn"}
} else := [] if {
	count(object.get(requirement, "values", [])) == 0
} else := [{"field": sprintf("%s.values", [field]), "message": sprintf("operator %s takes no values, got %s", [requirement.operator, json.marshal(requirement.values)])}]

# METADATA
# title: _join
# description: '`field` under `prefix` as a dotted path.'
_join("", field) := field

_join(prefix, field) := sprintf("%s.%s", [prefix, field]) if prefix != ""

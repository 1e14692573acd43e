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
# title: _requirement_fields
# description: 'The fields of a matchExpressions requirement.'
_requirement_fields := {"key", "operator", "values"}

# METADATA
# title: _name_pattern
# description: 'A label name (and the name part of a label key), as Kubernetes validates it.'
_name_pattern := `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`

# METADATA
# title: _value_pattern
# description: 'A label value: a label name or empty.'
_value_pattern := `^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`

# METADATA
# title: _clean_selector_pattern
# description: |
#   The JSON (as `json.marshal` writes it: compact, keys sorted) of a well-formed selector in its
#   common shapes: matchLabels and matchExpressions (In/NotIn with values, Exists/DoesNotExist
#   without) whose keys have no prefix. One match validates the whole selector; other shapes are
#   checked field by field. Label names and values hold no character JSON escapes.
_clean_selector_pattern := `^\{(?:"matchExpressions":\[(?:(?:\{"key":"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?","operator":"(?:In|NotIn)","values":\["(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?"(?:,"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")*\]\}|\{"key":"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?","operator":"(?:Exists|DoesNotExist)"\})(?:,(?:\{"key":"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?","operator":"(?:In|NotIn)","values":\["(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?"(?:,"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")*\]\}|\{"key":"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?","operator":"(?:Exists|DoesNotExist)"\}))*)?\]|"matchLabels":\{(?:"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?":"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?"(?:,"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?":"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")*)?\}|"matchExpressions":\[(?:(?:\{"key":"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?","operator":"(?:In|NotIn)","values":\["(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?"(?:,"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")*\]\}|\{"key":"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?","operator":"(?:Exists|DoesNotExist)"\})(?:,(?:\{"key":"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?","operator":"(?:In|NotIn)","values":\["(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?"(?:,"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")*\]\}|\{"key":"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?","operator":"(?:Exists|DoesNotExist)"\}))*)?\],"matchLabels":\{(?:"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?":"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?"(?:,"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?":"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")*)?\})?\}$`

# METADATA
# title: _plain_keys_pattern
# description: |
#   Label keys without a prefix (label names of 1 to 63 characters), one per line: the common
#   case of matchLabels, checked with one match (after making sure no key or value holds a line
#   break of its own); other keys are checked one by one.
_plain_keys_pattern := `^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?(?:\n[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)*$`

# METADATA
# title: _plain_key_pattern
# description: 'A label key without a prefix: a label name of 1 to 63 characters.'
_plain_key_pattern := `^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`

# METADATA
# title: _values_pattern
# description: 'Label values (empty, or label names of at most 63 characters), one per line.'
_values_pattern := `^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?(?:\n(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?)*$`

# METADATA
# title: _subdomain_pattern
# description: 'A DNS subdomain (RFC 1123), the optional prefix of a label key.'
_subdomain_pattern := `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`

# METADATA
# title: _key_expectation
# description: 'What a label key must be, for messages.'
_key_expectation := "a name of 1 to 63 letters, digits, '-', '_' or '.' that begins and ends with a letter or digit, optionally after a DNS subdomain prefix and '/' (e.g. app.kubernetes.io/name)"

# METADATA
# title: _value_expectation
# description: 'What a label value must be, for messages.'
_value_expectation := "at most 63 letters, digits, '-', '_' or '.' that begins and ends with a letter or digit, or empty"

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
	object.subset(labels, object.get(selector, "matchLabels", {}))
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
	regex.match(_clean_selector_pattern, json.marshal(selector))
} else if {
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
	keys := concat("\n", object.keys(labels))
	values := concat("\n", [value | some value in labels])
	strings.count(concat("\n", [keys, values]), "\n") == (2 * count(labels)) - 1
	regex.match(_plain_keys_pattern, keys)
	regex.match(_values_pattern, values)
} else if {
	is_object(labels)
	every key, value in labels {
		_is_label_key(key)
		_is_label_value(value)
	}
}

_is_clean_field("matchExpressions", requirements) if {
	is_array(requirements)
	every requirement in requirements {
		is_object(requirement)
		_is_clean_requirement(requirement)
	}
}

# METADATA
# title: _is_clean_requirement
# description: |
#   True when matchExpressions `requirement` (an object) is well-formed. The common shapes (a
#   key without prefix; In/NotIn with label values, one match for all of them; Exists or
#   DoesNotExist without values) are checked directly, anything else by `_requirement_errors`.
_is_clean_requirement(requirement) if {
	count(object.keys(requirement) - _requirement_fields) == 0
	regex.match(_plain_key_pattern, requirement.key)
	requirement.operator in {"In", "NotIn"}
	count(requirement.values) > 0
	values := concat("\n", requirement.values)
	strings.count(values, "\n") == count(requirement.values) - 1
	regex.match(_values_pattern, values)
} else if {
	count(object.keys(requirement) - _requirement_fields) == 0
	regex.match(_plain_key_pattern, requirement.key)
	requirement.operator in {"Exists", "DoesNotExist"}
	not "values" in object.keys(requirement)
} else if {
	count(_requirement_errors(requirement, "")) == 0
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
	some error in array.concat(
		_label_key_errors(_join(prefix, "matchLabels"), key),
		_label_value_errors(_join(_join(prefix, "matchLabels"), key), value),
	)
]

# METADATA
# title: _label_key_errors
# description: 'A problem, named `field` (the matchLabels map), when map key `key` is not a label key.'
_label_key_errors(field, key) := [] if {
	_is_label_key(key)
} else := [{"field": field, "message": sprintf("has the key %s, which must be a valid label key: %s", [json.marshal(key), _key_expectation])}]

# METADATA
# title: _label_value_errors
# description: 'A problem, named `field`, when `value` is not a label value.'
_label_value_errors(field, value) := [{"field": field, "message": sprintf("label values must be strings, got %s", [json.marshal(value)])}] if {
	not is_string(value)
} else := [] if {
	_is_label_value(value)
} else := [{"field": field, "message": sprintf("must be a valid label value: %s; got %s%s", [_value_expectation, json.marshal(value), _length_note(value)])}]

# METADATA
# title: _length_note
# description: 'The length of string `value` when it is over 63 characters, for messages.'
_length_note(value) := sprintf(" (%d characters)", [count(value)]) if count(value) > 63

else := ""

# METADATA
# title: _is_label_key
# description: 'True when `key` is a label key: a label name, optionally after a DNS subdomain prefix and `/`.'
_is_label_key(key) if _is_qualified(split(key, "/"))

# METADATA
# title: _is_qualified
# description: 'True when the `/`-separated `parts` of a key are a name, or a DNS subdomain prefix and a name.'
_is_qualified([name]) if _is_label_name(name)

_is_qualified([prefix, name]) if {
	count(prefix) <= 253
	regex.match(_subdomain_pattern, prefix)
	_is_label_name(name)
}

# METADATA
# title: _is_label_name
# description: 'True when `name` is a label name of at most 63 characters.'
_is_label_name(name) if {
	count(name) <= 63
	regex.match(_name_pattern, name)
}

# METADATA
# title: _is_label_value
# description: 'True when `value` is a label value: a string of at most 63 characters, a label name or empty.'
_is_label_value(value) if {
	is_string(value)
	count(value) <= 63
	regex.match(_value_pattern, value)
}

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
	some errors in [
		[e |
			some name, _ in requirement
			not name in _requirement_fields
			e := {"field": sprintf("%s.%s", [field, name]), "message": sprintf("unknown field (known: %s)", [concat(", ", sort(_requirement_fields))])}
		],
		_key_errors(requirement, field),
		_operator_errors(requirement, field),
	]
	some error in errors
]

# METADATA
# title: _key_errors
# description: 'A problem when a requirement''s key is not a non-empty string.'
_key_errors(requirement, field) := [] if {
	is_string(requirement.key)
	_is_label_key(requirement.key)
} else := [{"field": sprintf("%s.key", [field]), "message": sprintf("must be a valid label key: %s; got %s", [_key_expectation, json.marshal(requirement.key)])}] if {
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
_values_errors(requirement, field) := [error |
	some i, value in requirement.values
	some error in _label_value_errors(sprintf("%s.values[%d]", [field, i]), value)
] if {
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

# METADATA
# title: Label selectors
# description: |
#   Kubernetes LabelSelector matching (metav1.LabelSelectorAsSelector): every `matchLabels` entry
#   and every `matchExpressions` requirement (In, NotIn, Exists, DoesNotExist) must hold. An empty
#   selector matches everything, a null one nothing; `matchLabels: null`, `matchExpressions: null`
#   and `values: null` are absent, as Kubernetes reads them. Selectors are validated once, against
#   the CRD schema, before they reach a decision (edgepolicy.validated_policies); a requirement
#   with an unknown operator matches nothing.
package edgepolicy.lib.selector

# METADATA
# title: matches
# description: True when `selector` (validated) selects an object carrying `labels`.
matches(selector, labels) if {
	is_object(selector)
	object.subset(labels, _present(selector, "matchLabels", {}))
	every requirement in _present(selector, "matchExpressions", []) {
		_satisfied(requirement, labels)
	}
}

# METADATA
# title: _present
# description: '`obj[field]`, or `fallback` when it is absent or null.'
_present(obj, field, fallback) := value if {
	value := obj[field]
	value != null
} else := fallback

# METADATA
# title: _satisfied
# description: 'True when `requirement` holds for `labels`.'
_satisfied(requirement, labels) if {
	requirement.operator == "In"
	labels[requirement.key] in _present(requirement, "values", [])
}

_satisfied(requirement, labels) if {
	requirement.operator == "NotIn"
	not _has_label(labels, requirement.key)
}

_satisfied(requirement, labels) if {
	requirement.operator == "NotIn"
	value := labels[requirement.key]
	not value in _present(requirement, "values", [])
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

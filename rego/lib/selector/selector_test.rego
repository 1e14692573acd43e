# METADATA
# title: Tests of label selectors
# description: |
#   Cases taken from Kubernetes' own tests (apimachinery meta/v1 helpers_test.go
#   TestLabelSelectorAsSelector, labels/selector_test.go TestRequirementSelectorMatching), plus
#   null fields read as absent.
package edgepolicy.lib.selector_test

import data.edgepolicy.lib.selector

# METADATA
# title: _labels
# description: 'Labels the selector tests match against.'
_labels := {"app": "model", "env": "edge", "tier": ""}

# METADATA
# title: matchLabels must all match
test_match_labels if {
	selector.matches({"matchLabels": {"app": "model", "env": "edge"}}, _labels)
	not selector.matches({"matchLabels": {"app": "model", "env": "prod"}}, _labels)
	not selector.matches({"matchLabels": {"missing": "x"}}, _labels)
}

# METADATA
# title: an empty selector matches everything, a null one nothing (LabelSelectorAsSelector nil and {})
test_empty_and_null_selector if {
	selector.matches({}, _labels)
	selector.matches({}, {})
	not selector.matches(null, _labels)
}

# METADATA
# title: LabelSelectorAsSelector cases - foo=bar, baz in (norf,qux), and both
test_label_selector_as_selector if {
	labels := {"matchLabels": {"foo": "bar"}}
	expressions := {"matchExpressions": [{"key": "baz", "operator": "In", "values": ["qux", "norf"]}]}
	both := object.union(labels, expressions)
	selector.matches(labels, {"foo": "bar"})
	not selector.matches(labels, {"foo": "baz"})
	selector.matches(expressions, {"baz": "norf"})
	selector.matches(expressions, {"baz": "qux", "foo": "x"})
	not selector.matches(expressions, {"baz": "bar"})
	not selector.matches(expressions, {})
	selector.matches(both, {"foo": "bar", "baz": "qux"})
	not selector.matches(both, {"foo": "bar"})
	not selector.matches(both, {"baz": "qux"})
}

# METADATA
# title: TestRequirementSelectorMatching cases
test_requirement_selector_matching if {
	cases := [
		[{"x": "foo", "y": "baz"}, [_req("x", "In", ["foo"]), _req("y", "NotIn", ["alpha"])], true],
		[{"x": "foo", "y": "baz"}, [_req("x", "In", ["foo"]), _req("y", "In", ["alpha"])], false],
		[{"y": ""}, [_req("x", "NotIn", [""]), {"key": "y", "operator": "Exists"}], true],
		[{"y": ""}, [{"key": "x", "operator": "DoesNotExist"}, {"key": "y", "operator": "Exists"}], true],
		[{"y": ""}, [_req("x", "NotIn", [""]), {"key": "y", "operator": "DoesNotExist"}], false],
		[{"y": "baz"}, [_req("x", "In", [""])], false],
	]
	every case in cases {
		[labels, requirements, expected] := case
		_matches_as({"matchExpressions": requirements}, labels, expected)
	}
}

# METADATA
# title: _req
# description: 'A requirement on `key` with `operator` and `values`.'
_req(key, operator, values) := {"key": key, "operator": operator, "values": values}

# METADATA
# title: _matches_as
# description: 'True when `sel` matches `labels` exactly when `expected` says so.'
_matches_as(sel, labels, true) if selector.matches(sel, labels)

_matches_as(sel, labels, false) if not selector.matches(sel, labels)

# METADATA
# title: NotIn holds when the label is absent or has another value
test_not_in if {
	selector.matches({"matchExpressions": [_req("env", "NotIn", ["lab"])]}, _labels)
	selector.matches({"matchExpressions": [_req("zone", "NotIn", ["a"])]}, _labels)
	not selector.matches({"matchExpressions": [_req("env", "NotIn", ["edge"])]}, _labels)
}

# METADATA
# title: Exists and DoesNotExist look at the key only (an empty value exists)
test_exists if {
	selector.matches({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, _labels)
	not selector.matches({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, _labels)
	selector.matches({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist", "values": []}]}, _labels)
	not selector.matches({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, _labels)
}

# METADATA
# title: matchLabels null, matchExpressions null and values null are absent, as Kubernetes reads them
test_null_fields_are_absent if {
	selector.matches({"matchLabels": null}, _labels)
	selector.matches({"matchExpressions": null}, _labels)
	selector.matches({"matchLabels": null, "matchExpressions": null}, {})
	selector.matches({"matchLabels": null, "matchExpressions": [{"key": "tier", "operator": "Exists", "values": null}]}, _labels)
	not selector.matches({"matchLabels": null, "matchExpressions": [{"key": "zone", "operator": "Exists", "values": null}]}, _labels)
	selector.matches({"matchLabels": {"app": "model"}, "matchExpressions": [{"key": "zone", "operator": "DoesNotExist", "values": null}]}, _labels)
	not selector.matches({"matchLabels": {"app": "other"}, "matchExpressions": null}, _labels)
}

# METADATA
# title: labels and expressions combine with AND; an unknown operator matches nothing
test_combined if {
	selector.matches({"matchLabels": {"app": "model"}, "matchExpressions": [{"key": "env", "operator": "Exists"}]}, _labels)
	not selector.matches({"matchLabels": {"app": "model"}, "matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, _labels)
	not selector.matches({"matchExpressions": [_req("env", "Equals", ["edge"])]}, _labels)
}

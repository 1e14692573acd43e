# METADATA
# title: Tests of label selectors
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
# title: an empty selector matches everything
test_empty_selector if selector.matches({}, _labels)

# METADATA
# title: In needs the label with one of the values
test_in if {
	selector.matches({"matchExpressions": [{"key": "env", "operator": "In", "values": ["edge", "lab"]}]}, _labels)
	not selector.matches({"matchExpressions": [{"key": "env", "operator": "In", "values": ["lab"]}]}, _labels)
	not selector.matches({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}, _labels)
}

# METADATA
# title: NotIn holds when the label is absent or has another value
test_not_in if {
	selector.matches({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["lab"]}]}, _labels)
	selector.matches({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, _labels)
	not selector.matches({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["edge"]}]}, _labels)
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
# title: labels and expressions combine with AND
test_combined if {
	selector.matches({"matchLabels": {"app": "model"}, "matchExpressions": [{"key": "env", "operator": "Exists"}]}, _labels)
	not selector.matches({"matchLabels": {"app": "model"}, "matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, _labels)
}

# METADATA
# title: a malformed selector matches nothing
test_malformed_matches_nothing if {
	not selector.matches({"matchLabel": {"app": "model"}}, _labels)
	not selector.matches("app=model", _labels)
}

# METADATA
# title: a valid selector has no errors
test_valid_selector_has_no_errors if {
	count(selector.errors({"matchLabels": {"a": "b"}, "matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}, {"key": "c", "operator": "Exists"}]}, "s")) == 0
}

# METADATA
# title: every structural problem is named with its field
test_errors if {
	cases := [
		["not an object", "s", "s"],
		[{"matchLabel": {}}, "s", "s.matchLabel"],
		[{"matchLabels": ["a"]}, "s", "s.matchLabels"],
		[{"matchLabels": {"a": 1}}, "s", "s.matchLabels.a"],
		[{"matchExpressions": {"key": "a"}}, "s", "s.matchExpressions"],
		[{"matchExpressions": ["a"]}, "s", "s.matchExpressions[0]"],
		[{"matchExpressions": [{"operator": "Exists"}]}, "s", "s.matchExpressions[0].key"],
		[{"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}, "s", "s.matchExpressions[0].operator"],
		[{"matchExpressions": [{"key": "a", "operator": "In"}]}, "s", "s.matchExpressions[0].values"],
		[{"matchExpressions": [{"key": "a", "operator": "NotIn", "values": [1]}]}, "s", "s.matchExpressions[0].values"],
		[{"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]}, "s", "s.matchExpressions[0].values"],
		[{"matchLabel": {}}, "", "matchLabel"],
	]
	every case in cases {
		[sel, prefix, field] := case
		some error in selector.errors(sel, prefix)
		error.field == field
	}
}

# METADATA
# title: matches_valid skips validation, so callers must validate first
test_matches_valid if {
	selector.matches_valid({"matchLabels": {"app": "model"}}, _labels)
	not selector.matches_valid({"matchLabels": {"app": "other"}}, _labels)
}

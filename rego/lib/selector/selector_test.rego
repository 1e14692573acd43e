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

# METADATA
# title: _long
# description: 'A label name or value of 64 characters, one too many.'
_long := concat("", ["a" | some _ in numbers.range(1, 64)])

# METADATA
# title: unknown requirement fields and invalid label keys and values are errors, each named with its field
test_label_syntax_errors if {
	cases := {
		"s.matchExpressions[0].foo: unknown field (known: key, operator, values)": {"matchExpressions": [{"key": "a", "operator": "Exists", "foo": 1}]},
		"s.matchLabels: has the key \"app x\", which must be a valid label key: a name of 1 to 63 letters, digits, '-', '_' or '.' that begins and ends with a letter or digit, optionally after a DNS subdomain prefix and '/' (e.g. app.kubernetes.io/name)": {"matchLabels": {"app x": "a"}},
		"s.matchLabels.app: must be a valid label value: at most 63 letters, digits, '-', '_' or '.' that begins and ends with a letter or digit, or empty; got \"-model\"": {"matchLabels": {"app": "-model"}},
		sprintf("s.matchLabels.app: must be a valid label value: at most 63 letters, digits, '-', '_' or '.' that begins and ends with a letter or digit, or empty; got %q (64 characters)", [_long]): {"matchLabels": {"app": _long}},
		"s.matchExpressions[0].key: must be a valid label key: a name of 1 to 63 letters, digits, '-', '_' or '.' that begins and ends with a letter or digit, optionally after a DNS subdomain prefix and '/' (e.g. app.kubernetes.io/name); got \"Example.com/app\"": {"matchExpressions": [{"key": "Example.com/app", "operator": "Exists"}]},
		"s.matchExpressions[0].values[1]: must be a valid label value: at most 63 letters, digits, '-', '_' or '.' that begins and ends with a letter or digit, or empty; got \"b c\"": {"matchExpressions": [{"key": "a", "operator": "In", "values": ["b", "b c"]}]},
	}
	every text, sel in cases {
		{sprintf("%s: %s", [e.field, e.message]) | some e in selector.errors(sel, "s")} == {text}
		not selector.matches(sel, {"app": "-model", "a": "b"})
	}
	valid := {
		"matchLabels": {"app.kubernetes.io/name": "", "a": "A.b-c_9", sprintf("%s/%s", [concat(".", ["a", "b-c"]), substring(_long, 0, 63)]): substring(_long, 0, 63)},
		"matchExpressions": [{"key": "example.com/tier", "operator": "NotIn", "values": ["x", ""]}],
	}
	count(selector.errors(valid, "s")) == 0
	count(selector.errors({"matchLabels": {sprintf("a/%s", [_long]): "x"}}, "s")) == 1
	count(selector.errors({"matchLabels": {"a/b/c": "x"}}, "s")) == 1
	count(selector.errors({"matchLabels": {"/b": "x"}}, "s")) == 1
}

# METADATA
# title: the one-match check of plain matchLabels still rejects keys and values with line breaks
test_line_breaks_rejected if {
	count(selector.errors({"matchLabels": {"app\nenv": "x"}}, "")) == 1
	count(selector.errors({"matchLabels": {"app": "x\ny"}}, "")) == 1
	count(selector.errors({"matchLabels": {"app": "x\n", "env": ""}}, "")) == 1
	count(selector.errors({"matchLabels": {"app": "", "env": ""}}, "")) == 0
	count(selector.errors({"matchLabels": {"example.com/app": "x", "env": "y"}}, "")) == 0
	count(selector.errors({"matchLabels": {"example.com/app": "x", "env": "-y"}}, "")) == 1
}

# METADATA
# title: the direct check of common requirements agrees with the detailed one
test_requirement_shapes if {
	every requirement in [
		{"key": "env", "operator": "In", "values": ["a", "b"]},
		{"key": "env", "operator": "NotIn", "values": [""]},
		{"key": "env", "operator": "Exists"},
		{"key": "env", "operator": "DoesNotExist", "values": []},
		{"key": "example.com/env", "operator": "In", "values": ["a"]},
	] {
		count(selector.errors({"matchExpressions": [requirement]}, "")) == 0
	}
	every requirement in [
		{"key": "env\nx", "operator": "In", "values": ["a"]},
		{"key": "env", "operator": "In", "values": ["a\nb"]},
		{"key": "env", "operator": "In", "values": ["a\n", ""]},
		{"key": "env", "operator": "In", "values": []},
		{"key": "env", "operator": "In", "values": "a"},
		{"key": "env", "operator": "In", "values": [1]},
		{"key": "env", "operator": "Exists", "values": ["a"]},
		{"key": "env", "operator": "exists"},
		{"key": "env", "operator": "In", "values": ["a"], "extra": true},
		{"key": "-env", "operator": "Exists"},
	] {
		count(selector.errors({"matchExpressions": [requirement]}, "")) > 0
	}
}

# METADATA
# title: the one-match check of a whole selector accepts only well-formed selectors
test_whole_selector_check if {
	long := concat("", ["a" | some _ in numbers.range(1, 64)])
	every sel in [
		{"matchLabels": {long: "x"}},
		{"matchLabels": {"app": long}},
		{"matchLabels": {"app": "a\"b"}},
		{"matchLabels": {"app": "a\\b"}},
		{"matchLabels": {"app": "a"}, "extra": {}},
		{"matchLabels": {"app": "a"}, "matchExpressions": [{"key": "env", "operator": "In", "values": []}]},
		{"matchExpressions": [{"key": "env", "operator": "In"}]},
		{"matchExpressions": [{"key": long, "operator": "Exists"}]},
		{"matchExpressions": {"key": "env", "operator": "Exists"}},
	] {
		count(selector.errors(sel, "")) > 0
	}
	every sel in [
		{},
		{"matchLabels": {}},
		{"matchExpressions": []},
		{"matchLabels": {"app": ""}, "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["a", ""]}]},
	] {
		selector.is_clean(sel)
	}
}

# METADATA
# title: Tests of FinOpsPolicy validation
package edgepolicy.lib.validation_test

import data.edgepolicy.lib.policy
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _fields
# description: 'The fields named by the errors of a policy with `spec`.'
_fields(spec) := {error.field | some error in policy.errors(fx.policy("p", spec))}

# METADATA
# title: the seed policy of the issue is valid
test_seed_is_valid if count(policy.errors(fx.seed_policy)) == 0

# METADATA
# title: a selector alone is a valid policy; null fields are absent
test_minimal_is_valid if {
	count(policy.errors(fx.policy("p", {
		"targetWorkloadSelector": {},
		"costLimits": null,
		"autoScale": {"minReplicas": null},
		"alerting": {"idleShutdown": {"severity": null, "recipientGroup": "ops"}},
	}))) == 0
}

# METADATA
# title: the object, its name and its spec must be there
test_structure if {
	{error.field | some error in policy.errors("policy")} == {""}
	{error.field | some error in policy.errors({"kind": "FinOpsPolicy", "spec": {"targetWorkloadSelector": {}}})} == {"metadata.name"}
	_fields(null) == {"spec"}
	_fields({}) == {"spec.targetWorkloadSelector"}
	_fields({"targetWorkloadSelector": null}) == {"spec.targetWorkloadSelector"}
}

# METADATA
# title: a policy without spec (its fields mis-indented at the top) is malformed, naming each stray field
test_missing_spec if {
	mis_indented := {
		"apiVersion": "policy.apexlogic.com/v1alpha1",
		"kind": "FinOpsPolicy",
		"metadata": {"name": "p", "namespace": fx.namespace},
		"targetWorkloadSelector": {"matchLabels": fx.labels},
		"costLimits": {"maxCPUCores": 1},
	}
	policy.errors(mis_indented) == {
		{"field": "spec", "message": "is required: an object with targetWorkloadSelector and the limits to enforce"},
		{"field": "targetWorkloadSelector", "message": "unknown field (known: apiVersion, kind, metadata, spec, status); it belongs under spec"},
		{"field": "costLimits", "message": "unknown field (known: apiVersion, kind, metadata, spec, status); it belongs under spec"},
	}
	policy.errors(object.union(fx.seed_policy, {"specs": {}})) == {{"field": "specs", "message": "unknown field (known: apiVersion, kind, metadata, spec, status)"}}
	count(policy.errors(object.union(fx.seed_policy, {"status": {"observed": 1}}))) == 0
}

# METADATA
# title: selector problems are named under spec.targetWorkloadSelector
test_selector_errors if {
	_fields({"targetWorkloadSelector": {"matchExpressions": [{"key": "a", "operator": "Has"}]}}) == {"spec.targetWorkloadSelector.matchExpressions[0].operator"}
}

# METADATA
# title: wrong types, zero and negative limits, hours outside (0, 24]
test_value_errors if {
	cases := {
		"spec.costLimits.maxCPUCores": {"costLimits": {"maxCPUCores": "8"}},
		"spec.costLimits.maxMemoryGB": {"costLimits": {"maxMemoryGB": 0}},
		"spec.costLimits.dailyGPUHours": {"costLimits": {"dailyGPUHours": 25}},
		"spec.optimizationRules.idleShutdownThresholdMinutes": {"optimizationRules": {"idleShutdownThresholdMinutes": -5}},
		"spec.optimizationRules.modelQuantizationRequired": {"optimizationRules": {"modelQuantizationRequired": "yes"}},
		"spec.autoScale.minReplicas": {"autoScale": {"minReplicas": 1.5}},
		"spec.autoScale.maxReplicas": {"autoScale": {"maxReplicas": 0}},
		"spec.autoScale.cpuUtilizationPercentage": {"autoScale": {"cpuUtilizationPercentage": "70%"}},
		"spec.costLimits": {"costLimits": [8]},
		"spec.costLimit": {"costLimit": {"maxCPUCores": 8}},
		"spec.costLimits.maxCPU": {"costLimits": {"maxCPU": 8}},
		"spec.alerting.idleShutdown": {"alerting": {"idleShutdown": "mlops"}},
		"spec.alerting.thresholdExceeded.severity": {"alerting": {"thresholdExceeded": {"severity": 1}}},
		"spec.alerting.thresholdExceeded.team": {"alerting": {"thresholdExceeded": {"team": "x"}}},
	}
	every field, extra in cases {
		_fields(fx.selector_spec(extra)) == {field}
	}
}

# METADATA
# title: boundaries of hours and counts
test_boundaries if {
	count(_fields(fx.selector_spec({"costLimits": {"dailyGPUHours": 24}}))) == 0
	count(_fields(fx.selector_spec({"costLimits": {"dailyGPUHours": 0.5}}))) == 0
	_fields(fx.selector_spec({"costLimits": {"dailyGPUHours": 0}})) == {"spec.costLimits.dailyGPUHours"}
	count(_fields(fx.selector_spec({"autoScale": {"minReplicas": 2, "maxReplicas": 2}}))) == 0
}

# METADATA
# title: minReplicas above maxReplicas is an error naming minReplicas
test_min_above_max if {
	errors := policy.errors(fx.policy("p", fx.selector_spec({"autoScale": {"minReplicas": 4, "maxReplicas": 3}})))
	errors == {{"field": "spec.autoScale.minReplicas", "message": "must not exceed spec.autoScale.maxReplicas (4 > 3), so neither bound is enforced"}}
}

# METADATA
# title: messages say what was expected and what was given
test_messages if {
	policy.errors(fx.policy("p", fx.selector_spec({"costLimits": {"maxCPUCores": "eight"}}))) == {{
		"field": "spec.costLimits.maxCPUCores",
		"message": "must be a number greater than 0, got \"eight\"",
	}}
}

# METADATA
# title: the cheap clean check agrees with the detailed errors on wrongly typed values
test_clean_check_agrees_on_types if {
	every spec in [
		{"alerting": {"idleShutdown": "page me"}},
		{"alerting": {"idleShutdown": {"severity": 1}}},
		{"alerting": {"idleShutdown": {"severity": "INFO", "team": "x"}}},
		{"alerting": []},
		{"costLimits": "8"},
		{"costLimits": {"maxCPUCores": [8]}},
		{"costLimits": {"maxCPUCores": true}},
		{"costLimits": {"dailyGPUHours": 25}},
		{"optimizationRules": {"modelQuantizationRequired": "yes"}},
		{"optimizationRules": {"idleShutdownThresholdMinutes": {}}},
		{"autoScale": {"maxReplicas": 1.5}},
		{"autoScale": {"minReplicas": 0}},
		{"autoScale": {"minReplicas": 3, "maxReplicas": 2}},
	] {
		count(policy.errors(fx.policy("p", fx.selector_spec(spec)))) > 0
	}
	every spec in [
		{"alerting": {"idleShutdown": null, "thresholdExceeded": {"severity": null}}},
		{"costLimits": null, "autoScale": {"minReplicas": 2, "maxReplicas": null}},
		{"costLimits": {"dailyGPUHours": 24, "maxCPUCores": 0.5}},
	] {
		count(policy.errors(fx.policy("p", fx.selector_spec(spec)))) == 0
	}
}

# METADATA
# title: well-formed policies take the cheap path (no detailed error reporting per decision)
test_clean_policies_take_the_cheap_path if {
	policy._is_clean(fx.seed_policy)
	policy._is_clean(fx.policy("p", {"targetWorkloadSelector": {"matchExpressions": [{"key": "env", "operator": "Exists"}]}}))
	not policy._is_clean(fx.policy("p", fx.selector_spec({"costLimits": {"maxCPUCores": 0}})))
}

# METADATA
# title: the one-match check of a spec's JSON accepts only clean specs
test_spec_pattern if {
	every spec in [
		{"costLimits": {"dailyGPUHours": 24.5}},
		{"costLimits": {"dailyGPUHours": 0}},
		{"costLimits": {"maxCPUCores": 0.0}},
		{"costLimits": {"maxCPUCores": -1}},
		{"costLimits": {"maxCPUCores": "8"}},
		{"costLimits": {"maxCPU": 8}},
		{"autoScale": {"minReplicas": 2.5}},
		{"autoScale": {"cpuUtilizationPercentage": 0}},
		{"autoScale": {"minReplicas": 4, "maxReplicas": 3}},
		{"optimizationRules": {"modelQuantizationRequired": "true"}},
		{"alerting": {"idleShutdown": {"severity": 1}}},
		{"alerting": {"idleShutdown": {"severity": "x", "channel": "y"}}},
		{"extra": {}},
	] {
		count(policy.errors(fx.policy("p", fx.selector_spec(spec)))) > 0
	}
	every spec in [
		{"costLimits": {"dailyGPUHours": 24, "maxCPUCores": 0.25, "maxMemoryGB": 10}},
		{"costLimits": {"dailyGPUHours": 23.99}},
		{"costLimits": {"dailyGPUHours": 0.5}},
		{"autoScale": {"minReplicas": 3, "maxReplicas": 3}},
		{"autoScale": {"minReplicas": 3}},
		{"alerting": {"idleShutdown": {"severity": "say \"hi\""}}},
	] {
		policy._is_clean(fx.policy("p", fx.selector_spec(spec)))
	}
}

# METADATA
# title: Tests of finops.idle-shutdown
package edgepolicy.rules.finops.idle_shutdown_test

import data.edgepolicy.rules.finops
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _found
# description: 'The finops.idle-shutdown findings for `obj` under the seed policy.'
_found(obj) := {f | some f in finops.findings with input as fx.seeded(obj); f.rule == "finops.idle-shutdown"}

# METADATA
# title: _on_template
# description: 'The compliant Deployment with the annotation `value` on its pod template.'
_on_template(value) := object.union(fx.compliant, {"spec": {"template": {"metadata": {"annotations": {"finops.apexlogic.com/idle-shutdown-after": value}}}}})

# METADATA
# title: _on_workload
# description: 'The compliant Deployment with the annotation `value` on its own metadata.'
_on_workload(value) := object.union(fx.compliant, {"metadata": {"annotations": {"finops.apexlogic.com/idle-shutdown-after": value}}})

# METADATA
# title: durations at or below the threshold are allowed, in any Go notation
test_allowed if {
	every value in ["30m", "1800s", "0.5h", "15m30s", "29m59.9s", "1m"] {
		count(_found(_on_template(value))) == 0
		count(_found(_on_workload(value))) == 0
	}
	count(_found(fx.compliant)) == 0
}

# METADATA
# title: above the threshold is denied, on the pod template or the workload
test_above_denied if {
	[f] := [f | some f in _found(_on_template("31m"))]
	f.message == "finops.idle-shutdown: Deployment ai-workloads/inference: annotation finops.apexlogic.com/idle-shutdown-after on spec.template.metadata.annotations is 31m (31 minutes), above idleShutdownThresholdMinutes 30 of FinOpsPolicy ai-workloads/edge-ai-inference-cost-policy; set it to 30m or less"
	[g] := [g | some g in _found(_on_workload("1h30m"))]
	contains(g.message, "on metadata.annotations is 1h30m (90 minutes)")
	count(_found(_on_template("30m1s"))) == 1
}

# METADATA
# title: a Pod carries it in its own metadata, reported once
test_pod if {
	pod := object.union(fx.workload("Pod", fx.pod_spec([fx.container("a", "1", "1Gi")])), {"metadata": {"annotations": {"finops.apexlogic.com/idle-shutdown-after": "45m"}}})
	count(_found(pod)) == 1
}

# METADATA
# title: a malformed duration is a violation naming the annotation
test_malformed if {
	every value in ["soon", "30", "-5m", "0s", "1d", ""] {
		[f] := [f | some f in _found(_on_template(value))]
		contains(f.message, "annotation finops.apexlogic.com/idle-shutdown-after on spec.template.metadata.annotations is")
		contains(f.message, "not a positive Go duration such as 45m or 1h30m")
	}
}

# METADATA
# title: a leading + is a Go duration too (time.ParseDuration accepts it)
test_plus_sign if {
	count(_found(_on_template("+5m"))) == 0
	count(_found(_on_template("+.5h"))) == 0
	[f] := [f | some f in _found(_on_template("+45m"))]
	contains(f.message, "is +45m (45 minutes), above idleShutdownThresholdMinutes 30")
	[g] := [g | some g in _found(_on_template("+-5m"))]
	contains(g.message, "not a positive Go duration")
}

# METADATA
# title: minutes keep the precision that shows the overshoot, and one minute is singular
test_minutes_text if {
	[f] := [f | some f in _found(_on_template("1800000001us"))]
	contains(f.message, "is 1800000001us (30.000000016666668 minutes), above idleShutdownThresholdMinutes 30 of")
	half := fx.policy("p", fx.selector_spec({"optimizationRules": {"idleShutdownThresholdMinutes": 0.5}}))
	[g] := [g | some g in finops.findings with input as fx.review_with(_on_template("1m"), {"policies": [half]})]
	contains(g.message, "is 1m (1 minute), above idleShutdownThresholdMinutes 0.5 of FinOpsPolicy ai-workloads/p; set it to 0.5m or less")
}

# METADATA
# title: the duration is compared with the threshold exactly, in nanoseconds
test_exact_threshold if {
	every threshold, at in {0.7: "42s", 0.1: "6s", 1e-9: "60ns", 12.345: "12m20.7s"} {
		record := {"id": "ai-workloads/p", "settings": {"idleShutdownThresholdMinutes": threshold}}
		count([f | some f in finops.findings; f.rule == "finops.idle-shutdown"]) == 0 with input as fx.review_with(_on_template(at), {})
			with data.edgepolicy.lib.policy.applying as {record.id: record}
		above := sprintf("%s1ns", [at])
		count([f | some f in finops.findings; f.rule == "finops.idle-shutdown"]) == 1 with input as fx.review_with(_on_template(above), {})
			with data.edgepolicy.lib.policy.applying as {record.id: record}
	}
}

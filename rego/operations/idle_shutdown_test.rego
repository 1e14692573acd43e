# METADATA
# title: Tests of the idle-shutdown decision
package edgepolicy.operations.idle_shutdown_test

import data.edgepolicy.operations.idle_shutdown
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: the stored workload, idle for `minutes`, with the seed policy (threshold 30)
_idle(obj, minutes) := object.union(fx.seeded(obj), {"idle": {"minutes": minutes}})

# METADATA
# title: idle longer than the threshold shuts down, with the policy's idleShutdown route
test_idle_past_the_threshold if {
	idle_shutdown.decision == {
		"policy": fx.policy_id,
		"thresholdMinutes": 30,
		"idleMinutes": 31,
		"shutdown": true,
		"action": "deny",
		"severity": "INFO",
		"recipientGroup": "mlops-team",
	} with input as _idle(fx.compliant, 31)
}

# METADATA
# title: idle for exactly the threshold, or not measured, is no shutdown
test_not_past_the_threshold if {
	not idle_shutdown.decision.shutdown with input as _idle(fx.compliant, 30)
	idle_shutdown.decision.idleMinutes == -1 with input as fx.seeded(fx.compliant)
	not idle_shutdown.decision.shutdown with input as fx.seeded(fx.compliant)
}

# METADATA
# title: the rule's enforcement action is the decision's
test_enforcement_action if {
	idle_shutdown.decision.action == "dryrun" with input as _idle(fx.compliant, 90)
		with data.edgepolicy.settings.enforcementActions as {"finops.idle-shutdown": "dryrun"}
}

# METADATA
# title: the smallest threshold governs; no threshold, another kind or a controlled object has no decision
test_governing_policy if {
	quick := fx.policy("quick", fx.selector_spec({"optimizationRules": {"idleShutdownThresholdMinutes": 10}}))
	decision := idle_shutdown.decision with input as object.union(
		fx.review_with(fx.compliant, {"policies": [fx.seed_policy, quick]}),
		{"idle": {"minutes": 11}},
	)
	decision.policy == "ai-workloads/quick"
	decision.shutdown
	decision.severity == ""

	none := fx.policy("none", fx.selector_spec({"costLimits": {"maxCPUCores": 8}}))
	not idle_shutdown.decision with input as fx.review_with(fx.compliant, {"policies": [none]})

	pod := fx.workload("Pod", fx.pod_spec([fx.container("server", "2", "8Gi")]))
	not idle_shutdown.decision with input as _idle(pod, 90)

	owned := object.union(fx.compliant, {"metadata": {"ownerReferences": [{"kind": "X", "name": "x", "controller": true}]}})
	not idle_shutdown.decision with input as _idle(owned, 90)
}

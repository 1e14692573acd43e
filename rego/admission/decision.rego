# METADATA
# title: The admission decision
# description: |
#   The one document every consumer queries (`edgepolicy check`, the webhook, audits), as
#   docs/decision-contract.md describes: the findings of every rule package under
#   `data.edgepolicy.rules` (each defines `findings`), split by their enforcement action, plus
#   the mutation patches and the policies (FinOpsPolicy and ModelPolicy) that matched. DELETE and CONNECT are allowed untouched.
package edgepolicy.admission

import data.edgepolicy.lib.policy
import data.edgepolicy.lib.request
import data.edgepolicy.lib.settings
import data.edgepolicy.mutation

# METADATA
# title: decision
# description: |
#   `{"allowed", "violations", "warnings", "dryrun", "patches", "policies"}`: `allowed` is true
#   exactly when no finding has the action `deny`; findings are sorted by rule, policy, container
#   and message. Without findings (most requests) nothing is split or sorted.
decision := {
	"allowed": true,
	"violations": [],
	"warnings": [],
	"dryrun": [],
	"patches": mutation.patches,
	"policies": sort(policy.matching | policy.model_matching),
} if {
	request.is_evaluated
	count(_findings) == 0
} else := {
	"allowed": count(_by_action.deny) == 0,
	"violations": _by_action.deny,
	"warnings": _by_action.warn,
	"dryrun": _by_action.dryrun,
	"patches": mutation.patches,
	"policies": sort(policy.matching | policy.model_matching),
} if {
	request.is_evaluated
} else := {
	"allowed": true,
	"violations": [],
	"warnings": [],
	"dryrun": [],
	"patches": [],
	"policies": [],
}

# METADATA
# title: _findings
# description: 'Every finding of every rule package, with its enforcement action added.'
_findings contains object.union(finding, {"action": settings.action(finding.rule)}) if {
	some finding in data.edgepolicy.rules[_].findings
}

# METADATA
# title: _by_action
# description: 'The findings per action (`deny`, `warn`, `dryrun`), sorted by rule, policy, container and message.'
_by_action[action] := [finding |
	some key in sort([[f.rule, f.policy, object.get(f, "container", ""), f.message, f] |
		some f in _findings
		f.action == action
	])
	finding := key[4]
] if {
	some action in {"deny", "warn", "dryrun"}
}

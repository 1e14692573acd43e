# METADATA
# title: Tests of the models library
package edgepolicy.lib.models_test

import data.edgepolicy.lib.models
import data.edgepolicy.test.fixtures_test as fx

# METADATA
# title: _annotated
# description: 'The compliant Deployment with pod-template `annotations`.'
_annotated(annotations) := object.union(fx.compliant, {"spec": {"template": {"metadata": {"annotations": annotations}}}})

# METADATA
# title: every annotation form names its model; other annotations name none
test_declared if {
	obj := _annotated({
		"models.apexlogic.com/signature": "s",
		"models.apexlogic.com/facts.embedder": "f",
		"models.apexlogic.com/signature-configmap.ranker": "cm",
		"models.apexlogic.com/signature.": "empty name",
		"models.apexlogic.com/verify-key.abc": "not a model",
		"example.com/signature": "other prefix",
	})
	models.declared == {"default", "embedder", "ranker"} with input as fx.review_with(obj, {"policies": [fx.model_policy({})]})
}

# METADATA
# title: outcomes of an applying policy name models too; those of others do not
test_declared_from_outcomes if {
	ctx := {"policies": [fx.model_policy({})], "models": {fx.model_policy_id: {"x": {}}, "ai-workloads/other": {"y": {}}}}
	models.declared == {"x"} with input as fx.review_with(fx.compliant, ctx)
}

# METADATA
# title: the signature annotation of each model, for messages
test_annotation if {
	models.annotation("default") == "models.apexlogic.com/signature"
	models.annotation("embedder") == "models.apexlogic.com/signature.embedder"
}

# METADATA
# title: only verified outcomes with object facts give facts
test_facts if {
	ctx := {"policies": [fx.model_policy({})], "models": {fx.model_policy_id: {
		"good": fx.verified({"model": {}}),
		"claimed": {"verified": "yes", "facts": "{}"},
		"array": {"verified": true, "facts": "[]"},
		"raw": {"verified": true, "facts": {"model": {}}},
	}}}
	object.keys(models.facts[fx.model_policy_id]) == {"good"} with input as fx.review_with(fx.compliant, ctx)
}

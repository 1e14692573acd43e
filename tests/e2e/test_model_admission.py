"""End to end: signed models at admission, with the real API server, the real `edgepolicy serve`
and fixtures made by the real CLI (an ONNX model and its `quantize_dynamic` int8 twin,
`edgepolicy model attest`, `edgepolicy model sign`).

The ModelPolicy and the FinOpsPolicy are stored in the cluster (the CRDs of deploy/base) and read
by the webhook as the ServiceAccount of deploy/base/rbac.yaml, with exactly its permissions.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from e2e_support import (
    EDGEPOLICY,
    Kubectl,
    Webhook,
    WebhookTls,
    assert_denied,
    eventually,
    start_webhook,
    unregister,
    webhook_configurations,
    webhook_kubeconfig,
)

pytestmark = pytest.mark.e2e

NAMESPACE = "model-trust"
LABELS = {"app": "model-inference"}
SIGNATURE = "models.apexlogic.com/signature"
FACTS = "models.apexlogic.com/facts"
MODEL_POLICY = f"{NAMESPACE}/trusted-models"
FINOPS_POLICY = f"{NAMESPACE}/quantized-only"


@dataclass(frozen=True)
class SignedDirectory:
    """A model directory attested and signed by the CLI: the two annotations' contents."""

    signature: str
    facts: str
    directory: Path


@dataclass(frozen=True)
class Models:
    """The int8 model and its fp32 twin, signed with one key, and that key's public half."""

    int8: SignedDirectory
    fp32: SignedDirectory
    public_key: str


def _edgepolicy(*args: str) -> None:
    result = subprocess.run(
        [str(EDGEPOLICY), *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"edgepolicy {' '.join(args)}:\n{result.stderr}"


def _write_fp32_model(path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    weights = numpy_helper.from_array(rng.normal(size=(4, 32)).astype(np.float32), "W1")
    head = numpy_helper.from_array(rng.normal(size=(32, 2)).astype(np.float32), "W2")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W1"], ["hidden"]),
            helper.make_node("Relu", ["hidden"], ["active"]),
            helper.make_node("MatMul", ["active", "W2"], ["scores"]),
            helper.make_node("Softmax", ["scores"], ["probabilities"], axis=-1),
        ],
        "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])],
        [weights, head],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))


def _attest_and_sign(directory: Path, work: Path, key: Path) -> SignedDirectory:
    card = directory / "README.md"
    card.write_text("---\nlicense: apache-2.0\nintended_use: edge inference\n---\n# Model\n")
    report = directory / "shap.json"
    report.write_text('{"feature_importance": [0.4, 0.3, 0.2, 0.1]}')
    _edgepolicy(
        "model", "attest", str(directory), "--model", str(directory / "model.onnx"),
        "--data", str(work / "eval.csv"), "--label", "y", "--sensitive", "group",
        "--explainability-report", str(report), "--model-card", str(card),
    )  # fmt: skip
    signature = work / f"{directory.name}.sig"
    _edgepolicy("model", "sign", str(directory), "--key", str(key), "--signature", str(signature))
    return SignedDirectory(
        signature=signature.read_text(),
        facts=(directory / "edgepolicy-facts.json").read_text(),
        directory=directory,
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """An fp32 ONNX model and its int8 twin, attested with an evaluation and signed."""
    from onnxruntime.quantization import quantize_dynamic

    work = tmp_path_factory.mktemp("models")
    rows = ["f0,f1,f2,f3,group,y"] + [
        f"{i % 7 - 3},{i % 5 - 2},{i % 3},{i % 2},{i % 2},{int(i % 7 > 3)}" for i in range(200)
    ]
    (work / "eval.csv").write_text("\n".join(rows) + "\n")
    (work / "fp32").mkdir()
    (work / "int8").mkdir()
    _write_fp32_model(work / "fp32" / "model.onnx")
    quantize_dynamic(str(work / "fp32" / "model.onnx"), str(work / "int8" / "model.onnx"))
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = work / "signing.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public_key = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Models(
        int8=_attest_and_sign(work / "int8", work, key_file),
        fp32=_attest_and_sign(work / "fp32", work, key_file),
        public_key=public_key.decode(),
    )


def _policies(public_key: str) -> list[dict[str, Any]]:
    selector = {"matchLabels": dict(LABELS)}
    return [
        {
            "apiVersion": "policy.apexlogic.com/v1alpha1",
            "kind": "ModelPolicy",
            "metadata": {"name": "trusted-models", "namespace": NAMESPACE},
            "spec": {
                "targetWorkloadSelector": selector,
                "signature": {
                    "required": True,
                    "publicKeys": [public_key],
                    "verifyAtStart": True,
                    "modelVolume": "models",
                },
                "biasThresholds": {"demographicParityDifference": 1},
                "explainability": {"reportRequired": True},
                "requiredMetadata": ["license", "intended_use"],
            },
        },
        {
            "apiVersion": "policy.apexlogic.com/v1alpha1",
            "kind": "FinOpsPolicy",
            "metadata": {"name": "quantized-only", "namespace": NAMESPACE},
            "spec": {
                "targetWorkloadSelector": selector,
                "costLimits": {"maxCPUCores": 8, "maxMemoryGB": 32},
                "optimizationRules": {"modelQuantizationRequired": True},
            },
        },
    ]


def _pod(name: str, annotations: Mapping[str, str]) -> dict[str, Any]:
    limits = {"cpu": "1", "memory": "1Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": dict(LABELS),
            "annotations": dict(annotations),
        },
        "spec": {
            "containers": [
                {
                    "name": "server",
                    "image": "registry.example/ai/inference:1.0",
                    "resources": {"limits": limits, "requests": limits},
                    "volumeMounts": [{"name": "models", "mountPath": "/models"}],
                }
            ],
            "volumes": [{"name": "models", "emptyDir": {}}],
        },
    }


def _deployment(name: str, annotations: Mapping[str, str]) -> dict[str, Any]:
    pod = _pod(name, annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(LABELS)},
            "template": {"metadata": copy.deepcopy(pod["metadata"]), "spec": pod["spec"]},
        },
    }


def _annotations(model: SignedDirectory) -> dict[str, str]:
    return {SIGNATURE: model.signature, FACTS: model.facts}


@pytest.fixture(scope="module")
def webhook(
    kubectl: Kubectl,
    webhook_tls: WebhookTls,
    models: Models,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Webhook]:
    """`edgepolicy serve` (no --policies: the policies are the cluster's) registered as the
    validating and mutating webhook, once the policies are stored."""
    kubectl.create_namespace(NAMESPACE)
    kubectl.apply(*_policies(models.public_key), check=True)
    directory = tmp_path_factory.mktemp("model-webhook")
    kubeconfig = webhook_kubeconfig(kubectl, directory)
    server = start_webhook(
        webhook_tls, directory / "webhook.log", args=["--kubeconfig", str(kubeconfig)]
    )
    configurations = webhook_configurations(server.url, webhook_tls.ca_pem)
    try:
        kubectl.apply(*configurations, check=True)
        eventually(
            lambda: assert_denied(
                kubectl.apply(_pod("probe", {}), extra=["--dry-run=server"]), "model.signature"
            )
        )
        yield server
    finally:
        unregister(kubectl, configurations)
        server.stop()


def test_a_signed_int8_model_is_admitted_with_the_verify_init_container(
    kubectl: Kubectl, webhook: Webhook, models: Models
) -> None:
    result = kubectl.apply(_pod("int8", _annotations(models.int8)))

    assert result.returncode == 0, result.stderr
    stored = kubectl.get("pod", "int8", NAMESPACE)
    assert stored is not None
    (init,) = stored["spec"]["initContainers"]
    assert init["name"].startswith("edgepolicy-verify-")
    assert init["command"] == ["edgepolicy"]
    assert init["args"][:3] == ["model", "verify", "/edgepolicy/model"]
    assert "--signature" in init["args"]
    assert "--public-key" in init["args"]
    mounts = {mount["name"]: mount for mount in init["volumeMounts"]}
    assert mounts["models"]["readOnly"] is True
    volumes = {volume["name"]: volume for volume in stored["spec"]["volumes"]}
    items = volumes["edgepolicy-model-verify"]["projected"]["sources"][0]["downwardAPI"]["items"]
    key_annotations = [
        key
        for key in stored["metadata"]["annotations"]
        if key.startswith("models.apexlogic.com/verify-key.")
    ]
    assert len(key_annotations) == 1
    assert stored["metadata"]["annotations"][key_annotations[0]] == models.public_key
    paths = {item["fieldRef"]["fieldPath"] for item in items}
    assert paths == {
        f"metadata.annotations['{SIGNATURE}']",
        f"metadata.annotations['{key_annotations[0]}']",
    }


def test_the_fp32_twin_is_denied_by_model_quantization(
    kubectl: Kubectl, webhook: Webhook, models: Models
) -> None:
    result = kubectl.apply(_pod("fp32", _annotations(models.fp32)))

    assert_denied(result, "model.quantization", FINOPS_POLICY, 'quantization "none"')
    assert "model.signature" not in result.stderr  # signed by the trusted key: only not quantized
    assert kubectl.get("pod", "fp32", NAMESPACE) is None


def test_a_tampered_facts_annotation_is_denied_by_model_signature(
    kubectl: Kubectl, webhook: Webhook, models: Models
) -> None:
    fp32_facts = json.loads(models.fp32.facts)
    forged = json.dumps({**fp32_facts, "model": {**fp32_facts["model"], "quantization": "int8"}})
    result = kubectl.apply(_pod("forged", {SIGNATURE: models.fp32.signature, FACTS: forged}))

    assert_denied(
        result, "model.signature", MODEL_POLICY, "facts digest is not among the signed files"
    )
    assert "model.quantization" in result.stderr  # forged facts count for nothing
    assert kubectl.get("pod", "forged", NAMESPACE) is None


def test_a_signature_in_a_configmap_is_admitted(
    kubectl: Kubectl, webhook: Webhook, models: Models
) -> None:
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "int8-signature", "namespace": NAMESPACE},
        "data": {"signature": models.int8.signature},
    }
    kubectl.apply(configmap, check=True)
    annotations = {
        "models.apexlogic.com/signature-configmap": "int8-signature",
        FACTS: models.int8.facts,
    }
    result = kubectl.apply(_pod("from-configmap", annotations))

    assert result.returncode == 0, result.stderr
    stored = kubectl.get("pod", "from-configmap", NAMESPACE)
    assert stored is not None
    volumes = {volume["name"]: volume for volume in stored["spec"]["volumes"]}
    sources = volumes["edgepolicy-model-verify"]["projected"]["sources"]
    assert sources[1]["configMap"]["name"] == "int8-signature"


def test_a_deployment_template_gets_the_init_container_once(
    kubectl: Kubectl, webhook: Webhook, models: Models
) -> None:
    kubectl.apply(_deployment("inference", _annotations(models.int8)), check=True)
    first = kubectl.get("deployment", "inference", NAMESPACE)
    assert first is not None
    (init,) = first["spec"]["template"]["spec"]["initContainers"]
    assert init["name"].startswith("edgepolicy-verify-")

    kubectl.apply(_deployment("inference", _annotations(models.int8)), check=True)
    second = kubectl.get("deployment", "inference", NAMESPACE)
    assert second is not None
    assert second["spec"]["template"] == first["spec"]["template"]
    assert second["metadata"]["generation"] == first["metadata"]["generation"]
    mutations = [
        entry
        for entry in webhook.decisions()
        if entry["endpoint"] == "mutate" and entry["name"] == "inference"
    ]
    # The stored object, API-server defaults included, needs no patch the second time.
    assert [entry.get("patched", False) for entry in mutations] == [True, False]


def _run_init_container(pod: Mapping[str, Any], model_directory: Path, root: Path) -> int:
    """Do what the kubelet does for the stored pod's verify init container: mount the model
    volume (here: ``model_directory``) and the projected volume (its downward-API files from the
    pod's annotations), then run the container's command; return its exit code."""
    (init,) = pod["spec"]["initContainers"]
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in init["volumeMounts"]}
    places: dict[str, Path] = {}
    for mount_path, name in mounts.items():
        place = root / name
        if "projected" in volumes[name]:
            for source in volumes[name]["projected"]["sources"]:
                for item in source.get("downwardAPI", {}).get("items", []):
                    (key,) = re.findall(
                        r"metadata\.annotations\['(.+)'\]", item["fieldRef"]["fieldPath"]
                    )
                    target = place / item["path"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(pod["metadata"]["annotations"][key])
        else:
            shutil.copytree(model_directory, place)
        places[mount_path] = place

    def local(arg: str) -> str:
        for mount_path, place in places.items():
            if arg == mount_path or arg.startswith(mount_path + "/"):
                return str(place) + arg[len(mount_path) :]
        return arg

    assert init["command"] == ["edgepolicy"]
    command = [str(EDGEPOLICY), *(local(arg) for arg in init["args"])]
    return subprocess.run(command, capture_output=True, timeout=120, check=False).returncode


def test_the_stored_init_container_verifies_the_model_and_stops_a_swapped_one(
    kubectl: Kubectl, webhook: Webhook, models: Models, tmp_path: Path
) -> None:
    kubectl.apply(_pod("started", _annotations(models.int8)), check=True)
    stored = kubectl.get("pod", "started", NAMESPACE)
    assert stored is not None

    assert _run_init_container(stored, models.int8.directory, tmp_path / "intact") == 0
    swapped = tmp_path / "swapped-model"
    shutil.copytree(models.int8.directory, swapped)
    shutil.copy(models.fp32.directory / "model.onnx", swapped / "model.onnx")
    assert _run_init_container(stored, swapped, tmp_path / "swapped") == 1


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        ({"required": True}, "needs at least one of publicKeys"),
        (
            {"publicKeys": ["-----BEGIN PUBLIC KEY-----\nx"], "verifyAtStart": True},
            "needs modelVolume",
        ),
        (
            {"publicKeys": ["-----BEGIN PUBLIC KEY-----\nx"], "modelPath": "../elsewhere"},
            "must be a relative path without '..'",
        ),
        ({"publicKeys": ["not a PEM key"]}, "spec.signature.publicKeys[0]"),
    ],
)
def test_the_crd_refuses_what_its_rules_refuse(
    kubectl: Kubectl, signature: dict[str, Any], message: str
) -> None:
    kubectl.create_namespace(NAMESPACE)
    policy = {
        "apiVersion": "policy.apexlogic.com/v1alpha1",
        "kind": "ModelPolicy",
        "metadata": {"name": "refused", "namespace": NAMESPACE},
        "spec": {"targetWorkloadSelector": {}, "signature": signature},
    }
    result = kubectl.apply(policy, extra=["--dry-run=server", "--validate=false"])
    assert result.returncode != 0, result.stdout
    assert message in result.stderr, result.stderr

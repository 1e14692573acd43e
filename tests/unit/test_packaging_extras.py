"""The extras: `signing` (what the webhook image installs) is enough for model signatures, and
`models` (what `make setup` installs) holds it with the same pins."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
# The evaluation side of the `models` extra: not installed by the `signing` extra.
EVALUATION_MODULES = ("onnx", "onnxruntime", "fairlearn", "sklearn", "scipy", "pandas", "numpy")

# Runs with the evaluation modules made unimportable, as in an image with only `signing`.
# (None in sys.modules: `import` fails and importlib.util.find_spec says "not installed".)
_WITHOUT_EVALUATION = """
import sys
sys.modules.update(dict.fromkeys(sys.argv[1].split(",")))
from edgepolicy.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


def _extras() -> dict[str, list[str]]:
    with (ROOT / "pyproject.toml").open("rb") as stream:
        extras: dict[str, list[str]] = tomllib.load(stream)["project"]["optional-dependencies"]
    return extras


def test_models_holds_every_signing_pin() -> None:
    extras = _extras()
    assert extras["signing"], "the signing extra lists model-signing, sigstore, pyOpenSSL"
    assert set(extras["signing"]) <= set(extras["models"])


def test_the_image_installs_the_signing_extra() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install '.[signing]'" in dockerfile
    assert "[models]" not in dockerfile.replace("`models`", "")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_EVALUATION, ",".join(EVALUATION_MODULES), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_verify_and_sign_need_only_the_signing_extra(signed_model: Any, tmp_path: Path) -> None:
    public_key = tmp_path / "public.pem"
    public_key.write_text(signed_model.public_key, encoding="utf-8")
    signature = signed_model.directory.parent / f"{signed_model.directory.name}.sig"
    verified = _cli(
        "model", "verify", str(signed_model.directory),
        "--signature", str(signature), "--public-key", str(public_key),
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("verified: ")
    key = signed_model.directory.parent / f"{signed_model.directory.name}.key.pem"
    resigned = _cli(
        "model", "sign", str(signed_model.directory),
        "--key", str(key), "--signature", str(tmp_path / "again.sig"),
    )  # fmt: skip
    assert resigned.returncode == 0, resigned.stderr


def test_admission_checks_need_only_the_signing_extra(
    signed_model: Any, other_signed_model: Any, tmp_path: Path
) -> None:
    policy = {
        "apiVersion": "policy.apexlogic.com/v1alpha1",
        "kind": "ModelPolicy",
        "metadata": {"name": "trusted", "namespace": "ai"},
        "spec": {
            "targetWorkloadSelector": {"matchLabels": {"app": "llm"}},
            "signature": {"required": True, "publicKeys": [signed_model.public_key]},
        },
    }

    def pod(name: str, model: Any) -> dict[str, Any]:
        annotations = {
            "models.apexlogic.com/signature": model.signature,
            "models.apexlogic.com/facts": model.facts,
        }
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name, "namespace": "ai", "labels": {"app": "llm"},
                "annotations": annotations,
            },
            "spec": {"containers": [{"name": "server", "image": "registry.example.com/llm:1"}]},
        }  # fmt: skip

    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(
        yaml.safe_dump_all([policy, pod("trusted", signed_model), pod("other", other_signed_model)])
    )
    checked = _cli("check", "-o", "json", str(manifests))
    assert checked.returncode == 1, checked.stderr
    report = json.loads(checked.stdout)
    denied = {
        result["name"]: sorted(v["rule"] for v in result["violations"])
        for result in report["results"]
        if result["violations"]
    }
    assert denied == {"other": ["model.signature"]}


def test_evaluation_says_which_extra_is_missing(tmp_path: Path) -> None:
    inspected = _cli("model", "inspect", str(tmp_path / "model.onnx"))
    assert inspected.returncode == 2
    assert "pip install 'edgepolicy[models]'" in inspected.stderr

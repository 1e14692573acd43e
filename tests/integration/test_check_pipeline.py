"""`edgepolicy check` as a CI gate in any pipeline: manifests piped in on standard input,
repositories that mix Kubernetes with other YAML, and reports that stay valid when documents
are skipped. The real CLI in a child process, the shipped Rego library, a real OPA."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import jsonschema
import pytest
import xmlschema

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DENIED_CPU = EXAMPLES / "workloads" / "denied-cpu.yaml"
POLICY = EXAMPLES / "policies" / "edge-ai-inference-cost-policy.yaml"
EDGEPOLICY = [sys.executable, "-m", "edgepolicy"]
SCHEMAS = ROOT / "tests" / "assets" / "schemas"

CHART_VALUES = "replicaCount: 3\nresources:\n  limits:\n    cpu: 500m\n"
CHART_YAML = "apiVersion: v2\nname: inference\nversion: 0.1.0\n"
TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "inference.fullname" . }}
spec:
  replicas: {{ .Values.replicaCount }}
"""


def check(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `edgepolicy check ARGS` with ``stdin`` piped in, as a pipeline would."""
    return subprocess.run(
        [*EDGEPOLICY, "check", *map(str, args)],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def shell(command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a real bash (pipes, /dev/stdin, process substitution)."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def edgepolicy() -> str:
    return " ".join(shlex.quote(part) for part in EDGEPOLICY)


def test_manifests_piped_to_dash_are_checked_with_stdin_lines() -> None:
    completed = check("-", POLICY, stdin=DENIED_CPU.read_text())
    assert completed.returncode == 1, completed.stderr
    assert "DENY <stdin>:2 Deployment ai-workloads/inference-cpu-heavy" in completed.stdout
    assert "finops.cpu" in completed.stdout  # the policy file given beside stdin applies


def test_json_report_names_stdin_as_the_file() -> None:
    completed = check("-o", "json", "-", stdin=DENIED_CPU.read_text())
    assert completed.returncode == 0, completed.stderr  # no policy selects it
    (result,) = json.loads(completed.stdout)["results"]
    assert (result["file"], result["name"]) == ("<stdin>", "inference-cpu-heavy")


@pytest.mark.parametrize(
    "form",
    [
        "cat {workload} | {cli} check /dev/stdin {policy}",
        "{cli} check <(cat {workload}) {policy}",
        "cat {workload} | {cli} check - {policy}",
    ],
)
def test_shell_pipes_are_read(form: str) -> None:
    command = form.format(
        workload=shlex.quote(str(DENIED_CPU)), policy=shlex.quote(str(POLICY)), cli=edgepolicy()
    )
    completed = shell(command)
    assert completed.returncode == 1, completed.stderr
    assert "broken symbolic link" not in completed.stderr
    assert "DENY " in completed.stdout
    assert "Deployment ai-workloads/inference-cpu-heavy" in completed.stdout


def test_standard_input_named_twice_is_read_once() -> None:
    cli, workload = edgepolicy(), shlex.quote(str(DENIED_CPU))
    completed = shell(f"cat {workload} | {cli} check -o json - /dev/stdin -")
    assert completed.returncode == 0, completed.stderr
    (result,) = json.loads(completed.stdout)["results"]
    assert result["file"] == "<stdin>"


def test_empty_standard_input_is_bad_usage() -> None:
    completed = check("-", stdin="")
    assert completed.returncode == 2
    assert completed.stderr.startswith(
        "edgepolicy: error: no Kubernetes objects found in standard input: nothing to check"
    )


def _chart(tmp_path: Path) -> Path:
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(CHART_YAML)
    (chart / "values.yaml").write_text(CHART_VALUES)
    (chart / "templates" / "deployment.yaml").write_text(TEMPLATE)
    (chart / "rendered.yaml").write_text(DENIED_CPU.read_text())
    return chart


def test_a_repository_mixing_yaml_is_checked_with_notices(tmp_path: Path) -> None:
    chart = _chart(tmp_path)
    completed = check(chart, POLICY)
    assert completed.returncode == 1, completed.stderr
    assert "DENY " in completed.stdout
    notices = completed.stderr.splitlines()
    assert notices == [
        f"edgepolicy: skipped {chart}/Chart.yaml:1 (document 1): not a Kubernetes object: "
        "object has no kind",
        f"edgepolicy: skipped {chart}/templates/deployment.yaml:1 (document 1): unrendered "
        "template ({{ }}): invalid YAML: found unhashable key (while constructing a mapping at "
        "line 4)",
        f"edgepolicy: skipped {chart}/values.yaml:1 (document 1): not a Kubernetes object: "
        "object has no apiVersion and no kind",
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("values.yaml", "values.yaml:1: object has no apiVersion"),
        ("Chart.yaml", "Chart.yaml:1: object has no kind"),
        ("templates/deployment.yaml", "templates/deployment.yaml:4: invalid YAML"),
    ],
)
def test_strict_makes_skipped_documents_errors(name: str, expected: str, tmp_path: Path) -> None:
    chart = _chart(tmp_path)
    completed = check("--strict", chart / name, chart / "rendered.yaml")
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.startswith(f"edgepolicy: error: {chart}/{expected}")


@pytest.mark.parametrize("output", ["text", "json", "junit", "sarif"])
def test_everything_skipped_passes_with_a_notice_and_a_valid_report(
    output: str, tmp_path: Path
) -> None:
    chart = _chart(tmp_path)
    (chart / "rendered.yaml").unlink()
    completed = check("--output", output, chart)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr.splitlines()[-1] == (
        "edgepolicy: nothing to check: all 3 documents were skipped (--strict makes them errors)"
    )
    if output == "json":
        assert json.loads(completed.stdout)["results"] == []
    elif output == "sarif":
        assert_valid_sarif(completed.stdout)
        (run,) = json.loads(completed.stdout)["runs"]
        assert run["results"] == []
    elif output == "junit":
        assert_valid_junit(completed.stdout)
        assert list(ElementTree.fromstring(completed.stdout).iter("testcase")) == []
    else:
        assert "0 object(s) checked" in completed.stdout


def assert_valid_sarif(text: str) -> None:
    schema = json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(schema).validate(json.loads(text))


def assert_valid_junit(text: str) -> None:
    """Valid for Jenkins' xUnit schema, and for Ant's below the root (whose testsuites
    declares no attributes), as tests/unit/test_output.py validates the reports."""
    xmlschema.XMLSchema(SCHEMAS / "junit-jenkins-xunit-10.xsd").validate(text)
    root = ElementTree.fromstring(text)
    root.attrib.clear()
    xmlschema.XMLSchema(SCHEMAS / "junit-ant-windyroad.xsd").validate(
        ElementTree.tostring(root, encoding="unicode")
    )


def test_reports_of_standard_input_are_valid_and_point_at_its_lines() -> None:
    sarif = check("-o", "sarif", "-", POLICY, stdin=DENIED_CPU.read_text())
    assert sarif.returncode == 1, sarif.stderr
    assert_valid_sarif(sarif.stdout)
    locations = [
        result["locations"][0]["physicalLocation"]
        for result in json.loads(sarif.stdout)["runs"][0]["results"]
    ]
    assert {(loc["artifactLocation"]["uri"], loc["region"]["startLine"]) for loc in locations} == {
        ("%3Cstdin%3E", 2)
    }
    junit = check("-o", "junit", "-", POLICY, stdin=DENIED_CPU.read_text())
    assert junit.returncode == 1, junit.stderr
    assert_valid_junit(junit.stdout)
    assert "&lt;stdin&gt;" in junit.stdout


def test_one_skipped_document_is_named_in_the_singular(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(CHART_VALUES)
    completed = check(values)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr.splitlines() == [
        f"edgepolicy: skipped {values}:1 (document 1): not a Kubernetes object: object has no "
        "apiVersion and no kind",
        "edgepolicy: nothing to check: the one document was skipped (--strict makes them errors)",
    ]


def test_skipped_documents_do_not_change_json_results(tmp_path: Path) -> None:
    chart = _chart(tmp_path)
    completed = check("-o", "json", chart, POLICY)
    assert completed.returncode == 1
    document = json.loads(completed.stdout)
    assert [r["file"] for r in document["results"]] == [str(chart / "rendered.yaml"), str(POLICY)]

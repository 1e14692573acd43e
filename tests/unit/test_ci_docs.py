"""The CI recipes in README.md and the case format in docs/verify.md are real: the pipeline YAML
parses and uses the reports the way the CI systems read them, and the documented case file is
one `edgepolicy verify` accepts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from edgepolicy.suites import CASE_FILE, load_case

ROOT = Path(__file__).resolve().parent.parent.parent


def _section(path: Path, heading: str) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def test_readme_ci_section_shows_every_pipeline_form() -> None:
    section = _section(ROOT / "README.md", "CI pipelines")
    shell = "\n".join(_blocks(section, "sh"))
    assert re.search(r"^helm template .* \| edgepolicy check -$", shell, re.MULTILINE)
    assert re.search(r"^kustomize build \S+ \| edgepolicy check .*-( |$)", shell, re.MULTILINE)
    github, gitlab = (yaml.safe_load(block) for block in _blocks(section, "yaml"))

    steps: list[dict[str, Any]] = github["jobs"]["edgepolicy"]["steps"]
    runs = [step["run"] for step in steps if "run" in step]
    (sarif_run,) = [run for run in runs if "--output sarif" in run]
    sarif_file = sarif_run.split("> ")[1]
    (upload,) = [
        s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif@")
    ]
    assert upload["with"]["sarif_file"] == sarif_file
    assert upload["if"] == "always()"  # check exits 1 on a denial: upload anyway
    assert github["jobs"]["edgepolicy"]["permissions"]["security-events"] == "write"
    assert any(run.startswith("edgepolicy verify ") for run in runs)

    job = gitlab["edgepolicy"]
    written = {line.split("> ")[1] for line in job["script"] if "--output junit" in line}
    assert set(job["artifacts"]["reports"]["junit"]) == written
    assert len(written) == 2 and job["artifacts"]["when"] == "always"
    assert any(line.startswith("edgepolicy verify ") for line in job["script"])


def test_the_documented_case_file_is_accepted(tmp_path: Path) -> None:
    (example,) = _blocks((ROOT / "docs" / "verify.md").read_text(encoding="utf-8"), "yaml")
    (tmp_path / "input").mkdir()
    (tmp_path / "data.yaml").write_text("{}\n", encoding="utf-8")
    (tmp_path / CASE_FILE).write_text(example, encoding="utf-8")
    case = load_case(tmp_path / CASE_FILE)
    assert len(case.expected) == 4

"""The suite's own markers: `make setup` then ``pytest -m "not e2e"`` needs no e2e tools.

`make setup` installs OPA, helm and the OCI registry only; kube-apiserver, etcd, kubectl,
Prometheus and promtool come with `make tools-e2e`. A test that needs one of those must
therefore be marked ``e2e`` wherever it lives (the integration conftest marks those using its
``kubeconfig``, ``prometheus_factory`` or ``promtool`` fixture), or the ``not e2e`` run errors
on a fresh machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Fixtures that need the tools of `make tools-e2e` (tests/integration/conftest.py).
E2E_TOOL_FIXTURES = {"kubeconfig", "prometheus_factory", "promtool"}

_PLUGIN = """
import json, os

def pytest_collection_finish(session):
    found = {item.nodeid: sorted(item.fixturenames) for item in session.items}
    with open(os.environ["EDGEPOLICY_COLLECTED"], "w") as handle:
        json.dump(found, handle)
"""


def _collected(tmp_path: Path, marker: str) -> dict[str, list[str]]:
    """The integration tests ``pytest -m MARKER`` collects, with each one's fixtures."""
    (tmp_path / "collected_plugin.py").write_text(_PLUGIN, encoding="utf-8")
    out = tmp_path / f"{marker.replace(' ', '-')}.json"
    subprocess.run(
        [
            sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "collected_plugin",
            "-p", "no:cacheprovider", "-m", marker, "tests/integration",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(tmp_path), "EDGEPOLICY_COLLECTED": str(out)},
        capture_output=True,
        check=True,
        timeout=300,
    )  # fmt: skip
    found: dict[str, list[str]] = json.loads(out.read_text(encoding="utf-8"))
    return found


def test_no_test_outside_e2e_needs_an_e2e_tool(tmp_path: Path) -> None:
    not_e2e = _collected(tmp_path, "not e2e")
    needing = [node for node, names in not_e2e.items() if E2E_TOOL_FIXTURES & set(names)]
    assert needing == []
    e2e = _collected(tmp_path, "e2e")
    # The integration tests that do need each are there, under e2e (else this proves nothing).
    for fixture in E2E_TOOL_FIXTURES:
        assert [node for node, names in e2e.items() if fixture in names], fixture

"""`edgepolicy finops suggest` with real git and a stand-in Prometheus API answering by query
shape (the real Prometheus run is in tests/integration/test_finops_prometheus.py)."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from edgepolicy.cli import main
from edgepolicy.policy_git import GitError, PolicyRepository
from edgepolicy.policy_suggestions import suggested_value
from edgepolicy.policy_yaml_edits import finops_policies, replace_numbers

POLICIES = """\
# Team budgets: reviewed every quarter.
apiVersion: policy.apexlogic.com/v1alpha1
kind: FinOpsPolicy
metadata:
  name: inference   # the serving fleet
  namespace: ai
spec:
  targetWorkloadSelector:
    matchLabels: {app: inference}
  costLimits:
    maxCPUCores: 8        # cores over all replicas
    maxMemoryGB:   32
    dailyGPUHours: 48.0
  alerting:
    thresholdExceeded: {severity: critical, recipientGroup: finops-team-edge}
---
apiVersion: policy.apexlogic.com/v1alpha1
kind: FinOpsPolicy
metadata:
  name: batch
  namespace: ai
spec:
  targetWorkloadSelector:
    matchExpressions:
      - {key: tier, operator: In, values: [batch]}
  costLimits:
    maxCPUCores: 2   # already tight
"""

# (substring of the query, label selector part) -> answer
ANSWERS = {
    ("quantile_over_time", "label_app"): "3.9",
    ("container_memory_working_set_bytes", "label_app"): str(10 * 2**30),
    ("nvidia_com_gpu", "label_app"): "1200",  # GPU-minutes: 20 GPU-hours
    ("quantile_over_time", "label_tier"): "1.9",
}


class _Prometheus(BaseHTTPRequestHandler):
    queries: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        form = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        query = parse_qs(form)["query"][0]
        self.queries.append(query)
        result = [
            {"metric": {}, "value": [0, value]}
            for (shape, selector), value in ANSWERS.items()
            if shape in query and selector in query
        ]
        body = json.dumps(
            {"status": "success", "data": {"resultType": "vector", "result": result[:1]}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Prometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for variable, value in {
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
    }.items():
        monkeypatch.setenv(variable, value)
    path = tmp_path / "policies"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    (path / "finops").mkdir()
    (path / "finops" / "policies.yaml").write_text(POLICIES)
    (path / "README.md").write_text("policies\n")
    _git(path, "add", ".")
    _git(path, "commit", "-q", "-m", "policies")
    return path


def test_suggest_commits_one_policy_with_its_evidence_and_only_the_numbers(
    repo: Path, prometheus: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The user's state: uncommitted edits and a staged file, which must survive untouched.
    (repo / "README.md").write_text("work in progress\n")
    (repo / "new.yaml").write_text("a: 1\n")
    _git(repo, "add", "new.yaml")
    status_before = _git(repo, "status", "--porcelain")
    head_before = _git(repo, "rev-parse", "HEAD")

    code = main(
        [
            "finops",
            "suggest",
            "--prometheus",
            prometheus,
            "--repo",
            str(repo),
            "--branch",
            "rightsize",
            "--window",
            "14d",
            "--headroom",
            "25%",
        ]
    )

    assert code == 0
    assert _git(repo, "status", "--porcelain") == status_before
    assert _git(repo, "rev-parse", "HEAD") == head_before
    assert _git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert (repo / "finops" / "policies.yaml").read_text() == POLICIES

    log = _git(repo, "log", "--format=%B%x00", "main..rightsize").split("\0")
    messages = [message.strip() for message in log if message.strip()]
    # Only `inference` changes (batch: 1.9 x 1.25 = 2.375 -> 2.4 is no decrease of 2).
    assert len(messages) == 1
    assert messages[0].splitlines()[0] == (
        "FinOpsPolicy ai/inference: right-size from observed use"
    )
    assert "maxCPUCores 8 -> 4.9: p99 use 3.9 cores over 14 days, plus 25% headroom" in messages[0]
    assert "maxMemoryGB 32 -> 12.5: peak use 10 GiB over 14 days, plus 25% headroom" in messages[0]
    assert (
        "dailyGPUHours 48 -> 25: peak daily use 20 GPU-hours over 14 days, plus 25% headroom"
        in messages[0]
    )
    diff = _git(repo, "diff", "-U0", "main", "rightsize")
    changed = [
        line
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed == [
        "-    maxCPUCores: 8        # cores over all replicas",
        "-    maxMemoryGB:   32",
        "-    dailyGPUHours: 48.0",
        "+    maxCPUCores: 4.9        # cores over all replicas",
        "+    maxMemoryGB:   12.5",
        "+    dailyGPUHours: 25",
    ]
    assert "branch rightsize: 1 commit(s)" in capsys.readouterr().out


def test_suggest_refuses_an_existing_branch(
    repo: Path, prometheus: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _git(repo, "branch", "taken")

    code = main(
        ["finops", "suggest", "--prometheus", prometheus, "--repo", str(repo), "--branch", "taken"]
    )

    assert code == 2
    assert "branch 'taken' exists already; choose another --branch" in capsys.readouterr().err
    with pytest.raises(GitError) as refused:  # the library names no flag: the command adds it
        PolicyRepository(repo, "HEAD").check_branch_name("taken")
    assert str(refused.value) == f"{repo}: branch 'taken' exists already"


def test_suggest_refuses_a_bad_headroom(
    repo: Path, prometheus: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["finops", "suggest", "--prometheus", prometheus, "--repo", str(repo), "--headroom", "lots"]
    )

    assert code == 2
    assert "--headroom must be a percentage" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("observed", "headroom", "step", "expected"),
    [
        ("3.9", "0.25", "0.1", "4.9"),
        ("4", "0.25", "0.1", "5.0"),
        ("0", "0.25", "0.25", "0.25"),
        ("10.01", "0", "0.5", "10.5"),
    ],
)
def test_suggested_value_rounds_up_to_the_step(
    observed: str, headroom: str, step: str, expected: str
) -> None:
    assert suggested_value(Decimal(observed), Decimal(headroom), Decimal(step)) == Decimal(expected)


def test_replace_numbers_keeps_everything_but_the_number() -> None:
    policy = finops_policies(POLICIES, "p.yaml")[0]
    field = policy.numbers[("costLimits", "maxCPUCores")]

    edited = replace_numbers(POLICIES, [(field, Decimal("5.0"))])

    assert edited == POLICIES.replace("maxCPUCores: 8 ", "maxCPUCores: 5 ")
    assert policy.selector == {"matchLabels": {"app": "inference"}}


def test_two_policies_of_one_file_make_two_commits(
    repo: Path, prometheus: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ANSWERS, ("quantile_over_time", "label_tier"), "1.0")

    code = main(
        ["finops", "suggest", "--prometheus", prometheus, "--repo", str(repo), "--branch", "b"]
    )

    assert code == 0
    subjects = _git(repo, "log", "--format=%s", "main..b").splitlines()
    assert subjects == [
        "FinOpsPolicy ai/batch: right-size from observed use",
        "FinOpsPolicy ai/inference: right-size from observed use",
    ]
    # The second edit lands on the text the first one changed (offsets read again).
    final = _git(repo, "show", "b:finops/policies.yaml")
    assert "maxCPUCores: 1.3   # already tight" in final
    assert "maxCPUCores: 4.9        # cores over all replicas" in final
    first = _git(repo, "show", "b~1:finops/policies.yaml")
    assert "maxCPUCores: 2   # already tight" in first

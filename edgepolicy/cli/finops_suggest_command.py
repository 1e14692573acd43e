"""`edgepolicy finops suggest`: right-sized FinOpsPolicy limits committed to a new branch of the
policy repository, one commit per policy with its evidence, for review as a pull request."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from edgepolicy.errors import InputError, UsageError
from edgepolicy.policy_git import GitError, PolicyRepository
from edgepolicy.policy_suggestions import commit_message, policy_changes
from edgepolicy.policy_yaml_edits import finops_policies, replace_numbers
from edgepolicy.prometheus_api import PrometheusClient

DESCRIPTION = """\
Read what the pods each FinOpsPolicy of a policy repository selects really used over --window
(Prometheus: kube-state-metrics and cAdvisor series, aggregated in PromQL), and commit lowered
limits to a new branch: one commit per policy, its message giving the evidence of each number
(maxCPUCores from the p99 CPU use, maxMemoryGB from the peak memory, dailyGPUHours from the
largest daily GPU-hours), plus --headroom, rounded up (CPU 0.1 core, memory 0.25 GiB,
GPU-hours 0.5 h). Only the numbers change in the files: comments and formatting stay. The
files are read from --base and written with git plumbing: the checked-out branch, index and
working tree are never touched. Push the branch and open a pull request; once merged, `bundle
watch` publishes it like any other commit. See docs/finops.md."""
EXAMPLES = """\
Examples:
  edgepolicy finops suggest --prometheus http://prometheus:9090 --repo ~/policies
  edgepolicy finops suggest --prometheus http://thanos:9090 --repo . --window 30d --headroom 40%
  git -C ~/policies log -p main..finops-suggestions-20261206   # review, then push for a PR
"""
_WINDOW = re.compile(r"^([1-9][0-9]*)([mhdw])$")
_WINDOW_WORDS = {"m": "minute", "h": "hour", "d": "day", "w": "week"}


def add_parser(subparsers: Any) -> None:
    """Register `finops suggest`."""
    parser = subparsers.add_parser(
        "suggest",
        help="commit right-sized FinOpsPolicy limits from observed use to a new Git branch",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus API URL")
    parser.add_argument("--repo", required=True, metavar="PATH", help="the policy Git repository")
    parser.add_argument(
        "--branch",
        metavar="NAME",
        help="the new branch (default: finops-suggestions-YYYYMMDD); refused if it exists",
    )
    parser.add_argument(
        "--base", default="HEAD", metavar="REV", help="the commit to start from (default: HEAD)"
    )
    parser.add_argument(
        "--window", default="14d", metavar="DURATION", help="observed period (default: 14d)"
    )
    parser.add_argument(
        "--headroom", default="25%", metavar="PERCENT", help="added to the use (default: 25%%)"
    )
    parser.add_argument("--at", metavar="RFC3339", help="end of the window (default: now)")
    parser.set_defaults(func=run)


def parse_window(text: str) -> tuple[str, str]:
    """The PromQL duration of ``--window`` and its words ("14 days").

    Raises:
        UsageError: not a positive whole number of m, h, d or w.
    """
    match = _WINDOW.match(text)
    if match is None:
        raise UsageError(f"--window must be a duration such as 14d, 24h or 2w, got {text!r}")
    count, unit = int(match.group(1)), match.group(2)
    return text, f"{count} {_WINDOW_WORDS[unit]}{'s' if count != 1 else ''}"


def parse_headroom(text: str) -> Decimal:
    """``--headroom`` as a fraction (``25%`` is 0.25).

    Raises:
        UsageError: not a percentage from 0 to 1000.
    """
    try:
        percent = Decimal(text.strip().removesuffix("%"))
    except InvalidOperation:
        percent = Decimal(-1)
    if not percent.is_finite() or not Decimal(0) <= percent <= Decimal(1000):
        raise UsageError(f"--headroom must be a percentage from 0% to 1000%, got {text!r}")
    return percent / 100


def parse_time(text: str | None) -> datetime | None:
    """``--at`` as a time (RFC 3339), or None.

    Raises:
        UsageError: not an RFC 3339 time with a zone.
    """
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise UsageError(
            f"--at must be an RFC 3339 time such as 2026-12-06T12:00:00Z, got {text!r}"
        )
    return moment


def run(args: argparse.Namespace) -> int:
    """Write the suggestions; exit 0 (also when nothing is to change).

    Raises:
        UsageError, GitError, PrometheusError, InputError: bad options, a git or Prometheus
            failure, a policy that cannot be read.
    """
    window, window_text = parse_window(args.window)
    headroom = parse_headroom(args.headroom)
    at = parse_time(args.at) or datetime.now(UTC)
    branch = args.branch or f"finops-suggestions-{at:%Y%m%d}"
    repository = PolicyRepository(Path(args.repo), args.base)
    try:
        repository.check_branch_name(branch)
    except GitError as error:
        raise GitError(f"{error}; choose another --branch") from error
    prometheus = PrometheusClient(args.prometheus)
    texts: dict[str, str] = {}
    tip, commits = repository.base, 0
    try:
        for path in repository.yaml_files():
            text = repository.read(path)
            try:
                policies = finops_policies(text, path)
            except InputError as error:
                if "FinOpsPolicy" in text:
                    _say(f"skipped {error}")
                continue
            for position in range(len(policies)):
                # Offsets move after an edit: read the file's current text again each time.
                policy = finops_policies(texts.get(path, text), path)[position]
                where = f"{path}: FinOpsPolicy {policy.namespace}/{policy.name}"
                changes = policy_changes(
                    policy,
                    prometheus,
                    window=window,
                    window_text=window_text,
                    headroom=headroom,
                    at=at,
                    where=where,
                )
                if not changes:
                    _say(f"{where}: no change")
                    continue
                edited = replace_numbers(
                    texts.get(path, text), [(c.field, c.suggested) for c in changes]
                )
                texts[path] = edited
                tip = repository.commit(tip, {path: edited}, commit_message(policy, path, changes))
                commits += 1
                for change in changes:
                    _say(f"{where}: {change.evidence}")
    finally:
        prometheus.close()
    if not commits:
        _say("nothing to suggest: no branch created")
        return 0
    repository.create_branch(branch, tip)
    print(f"branch {branch}: {commits} commit(s) on {repository.base[:12]} ({tip[:12]})")
    return 0


def _say(message: str) -> None:
    print(f"edgepolicy finops suggest: {message}", file=sys.stderr, flush=True)

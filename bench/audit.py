"""Benchmark: `edgepolicy audit` over N workloads stored in a real kube-apiserver.

Starts a private control plane (etcd + kube-apiserver, scripts/controlplane.py), stores one
FinOpsPolicy (the seed example) and N Deployments in one namespace, a third of them over budget,
then measures, in this process:

- listing every workload and HPA in pages of ``--page-size`` (the audit's listing);
- deciding them with a real OPA through the audit's inputs (no-op UPDATE reviews);
- the baseline: the same objects decided as ``edgepolicy check`` decides manifests (CREATE
  reviews through :class:`CheckSession`), so the audit's cost per object is a ratio to it;
- recording one run (each policy's status, one Event per finding), then a second run (every
  Event counted again), unless ``--no-record``.

Prints time, objects per second and peak memory (Python allocations traced by tracemalloc, and
the process's peak resident size); asserts nothing.

    .venv/bin/python bench/audit.py [--workloads 2000] [--page-size 500]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "tests" / "e2e")]

import controlplane  # noqa: E402
from e2e_support import compliant, over_budget, seed_policy  # noqa: E402

from edgepolicy import audit_records, kube  # noqa: E402
from edgepolicy.audit_recorder import AuditRecorder  # noqa: E402
from edgepolicy.auditing import audit_objects  # noqa: E402
from edgepolicy.checking import CheckSession, PolicySource  # noqa: E402
from edgepolicy.cluster_inventory import (  # noqa: E402
    FINOPS_POLICIES,
    list_collection,
    list_workloads,
)
from edgepolicy.data_files import load_data_files  # noqa: E402
from edgepolicy.library import library_path  # noqa: E402
from edgepolicy.manifests import Manifest  # noqa: E402
from edgepolicy.opa_binary import find_opa  # noqa: E402

NAMESPACE = "bench-audit"
# The e2e suite's settings: model.quantization in warn mode (no model facts are verified here).
SETTINGS = ROOT / "tests" / "e2e" / "assets" / "settings.yaml"
T = TypeVar("T")


def _measure(label: str, work: Callable[[], T], count: int) -> tuple[T, float]:
    tracemalloc.start()
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"{label:<40} {seconds:8.2f} s  {count / seconds:9.0f} objects/s  "
        f"peak Python memory {peak / 2**20:7.1f} MiB"
    )
    return result, seconds


def _install_crd(kubeconfig: Path) -> None:
    kubectl = [str(ROOT / ".tools" / "bin" / "kubectl"), "--kubeconfig", str(kubeconfig)]
    crd = ROOT / "deploy" / "base" / "crds" / "finopspolicies.yaml"
    subprocess.run([*kubectl, "apply", "-f", str(crd)], check=True, capture_output=True)
    subprocess.run(
        [*kubectl, "wait", "--for=condition=established", "--timeout=60s",
         "crd/finopspolicies.policy.apexlogic.com"],
        check=True,
        capture_output=True,
    )  # fmt: skip


def _store(api: kube.KubeApi, count: int) -> None:
    path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    api.create_object("/api/v1/namespaces", namespace, timeout=30)
    policy = seed_policy(NAMESPACE)
    api.create_object(FINOPS_POLICIES.path(NAMESPACE), policy, timeout=30)

    def create(index: int) -> None:
        make = over_budget if index % 3 == 0 else compliant
        api.create_object(path, make(f"inference-{index:05d}", NAMESPACE), timeout=60)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, range(count)))
    print(f"stored {count} Deployments in {time.perf_counter() - started:.1f} s")


def main() -> None:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=2000)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgepolicy-bench-audit-") as tmp:
        cluster = controlplane.ControlPlane(Path(tmp))
        cluster.start()
        api = kube.from_kubeconfig(cluster.kubeconfig)
        try:
            _install_crd(cluster.kubeconfig)
            _store(api, args.workloads)
            _bench(api, args)
        finally:
            api.close()
            cluster.stop()


def _bench(api: kube.KubeApi, args: argparse.Namespace) -> None:
    count = args.workloads
    print(f"python {sys.version.split()[0]}, page size {args.page_size}")
    objects, listed = _measure(
        f"list {count} workloads (pages of {args.page_size})",
        lambda: list_workloads(api, page_size=args.page_size),
        count,
    )
    policies = list_collection(api, FINOPS_POLICIES)
    session = CheckSession(
        opa_binary=find_opa(),
        policy=PolicySource.from_path(library_path()),
        data=load_data_files([SETTINGS]),
    )
    with session:
        manifests = [Manifest(f"deployment-{i}.yaml", 0, 1, obj) for i, obj in enumerate(objects)]
        with_policies = [*manifests, Manifest("policy.yaml", 0, 1, policies[0])]
        _, baseline = _measure(
            "baseline: decide as `check` (CREATE)", lambda: session.check(with_policies), count
        )
        report, decided = _measure(
            "audit: decide (no-op UPDATE)",
            lambda: audit_objects(objects, policies=policies, decide=session.client.decide),
            count,
        )
    found = audit_records.violations(report)
    print(
        f"{len(report.results)} objects decided, {report.denied} denied, {len(found)} findings; "
        f"audit decide / check decide = {decided / baseline:.2f}"
    )
    if not args.no_record:
        recorder = AuditRecorder(api, instance="bench")
        for run in ("first", "second", "third"):
            summary: Any
            summary, _ = _measure(
                f"record {run} run ({len(found)} findings)",
                lambda: recorder.record(found, policies, at=datetime.now(UTC)),
                len(found),
            )
            print(
                f"  {summary.statuses} status, {summary.events_created} Events created, "
                f"{summary.events_counted} counts written, {summary.events_deferred} counted "
                f"until their refresh, {len(summary.errors)} errors"
            )
    resident = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"list + decide: {listed + decided:.2f} s for {count} workloads; "
        f"peak resident size of the process {resident:.0f} MiB"
    )


if __name__ == "__main__":
    main()

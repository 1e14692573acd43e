"""Benchmark: time from publishing a bundle to its activation on the last of N OPA sidecars.

Starts ``edgepolicy bundle serve`` and N real ``opa run --server`` sidecars (signed ES256
bundles, persistence on), once with OPA's long polling and once with plain polling, then
publishes R new commits and measures, per publish, how long until every sidecar activated the
new revision (from each OPA's status API ``last_successful_activation``). With long polling,
``--clients`` simulated clients (:mod:`bench.bundles_pollers`, raw HTTP on one event loop) long
poll beside the sidecars: the time from each publish until the last of them has the new bundle
is measured, and the service's resident memory (gunicorn's arbiter and worker) before and while
they wait. Prints numbers; asserts nothing.

    .venv/bin/python bench/bundles_fleet.py [--sidecars 20] [--clients 1000] [--rounds 5]
                                            [--long-polling-only] [--sidecar-nice 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "unit" / "bundles")]

import urllib3  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from edgepolicy.bundles.atomic_write import write_atomically  # noqa: E402
from edgepolicy.bundles.builder import build_bundle  # noqa: E402
from edgepolicy.bundles.signing import SigningKey  # noqa: E402
from policyrepo import PolicyRepo, finops_policy  # noqa: E402

from bench.bundles_pollers import PollerProcess  # noqa: E402
from bench.bundles_sidecars import KEY_ID, RESOURCE, BundleService, Sidecar  # noqa: E402
from edgepolicy.opa_binary import find_opa  # noqa: E402

POLLING = {"min_delay": 2, "max_delay": 5}
LONG_POLLING_TIMEOUT = 30
MB = 1024 * 1024


@dataclass
class Results:
    """Per publish: delays to the first and last sidecar, and to the last simulated client."""

    first_active: list[float] = field(default_factory=list)
    last_active: list[float] = field(default_factory=list)
    first_client: list[float] = field(default_factory=list)
    median_client: list[float] = field(default_factory=list)
    last_client: list[float] = field(default_factory=list)
    clients_reached: list[int] = field(default_factory=list)
    service_cpu: list[float] = field(default_factory=list)
    rss: dict[str, int] = field(default_factory=dict)
    client_errors: list[str] = field(default_factory=list)


def _run_mode(
    tmp: Path,
    long_polling: bool,
    sidecars: int,
    clients: int,
    rounds: int,
    key: SigningKey,
    sidecar_nice: int = 0,
) -> Results:
    """Publish ``rounds`` times; return the delays to the sidecars and simulated clients."""
    opa = find_opa()
    repo = PolicyRepo(tmp / "repo")
    repo.write("cost.yaml", finops_policy(max_replicas=1))
    repo.commit("start")
    service = BundleService(tmp / "served", tmp / "serve.log").start()
    fleet: list[Sidecar] = []
    results = Results()
    pollers: PollerProcess | None = None
    try:
        first = build_bundle(repo.path, opa=opa, signing_key=key)
        write_atomically(service.directory / RESOURCE, first.archive)
        results.rss["idle"] = service.rss_bytes()
        for index in range(sidecars):
            sidecar = Sidecar(
                opa, tmp / f"opa-{index}", service.url, key.public_pem(),
                long_polling=long_polling, long_polling_timeout=LONG_POLLING_TIMEOUT, **POLLING,
                nice=sidecar_nice,
            )  # fmt: skip
            fleet.append(sidecar.start())
            time.sleep(0.05)
        for sidecar in fleet:
            sidecar.wait_for_revision(first.revision, timeout=60)
        time.sleep(1 if fleet else 0)  # let every sidecar settle into its polling rhythm
        results.rss["with the sidecars"] = service.rss_bytes()
        if long_polling and clients:
            etag = urllib3.request("GET", f"{service.url}/{RESOURCE}").headers["ETag"]
            pollers = PollerProcess(
                "127.0.0.1", service.port, f"/{RESOURCE}", clients, LONG_POLLING_TIMEOUT
            )
            pollers.start(etag)
            pollers.wait_until_all_waiting(60)
            time.sleep(1)
            results.rss[f"with {clients} clients waiting too"] = service.rss_bytes()
        for round_ in range(rounds):
            repo.write("cost.yaml", finops_policy(max_replicas=round_ + 2))
            repo.commit(f"round {round_}")
            bundle = build_bundle(repo.path, opa=opa, signing_key=key)
            cpu_before = service.cpu_seconds()
            published = time.time()
            write_atomically(service.directory / RESOURCE, bundle.archive)
            for sidecar in fleet:
                sidecar.wait_for_revision(bundle.revision, timeout=60)
            if fleet:
                activations = [sidecar.activated_at() or time.time() for sidecar in fleet]
                results.first_active.append(min(activations) - published)
                results.last_active.append(max(activations) - published)
            if pollers is not None:
                new_etag = urllib3.request("GET", f"{service.url}/{RESOURCE}").headers["ETag"]
                assert new_etag != etag, "the service still serves the old bundle"
                etag = new_etag
                deadline = time.monotonic() + 10
                while len(pollers.received(new_etag)) < clients and time.monotonic() < deadline:
                    time.sleep(0.05)
                arrivals = sorted(pollers.received(new_etag)) or [time.time()]
                results.clients_reached.append(len(arrivals))
                results.first_client.append(arrivals[0] - published)
                results.median_client.append(arrivals[len(arrivals) // 2] - published)
                results.last_client.append(arrivals[-1] - published)
                results.service_cpu.append(service.cpu_seconds() - cpu_before)
                pollers.wait_until_all_waiting(30)
                results.rss[f"after publish {round_ + 1}"] = service.rss_bytes()
            time.sleep(0.5)
    finally:
        if pollers is not None:
            results.client_errors = pollers.errors
            pollers.stop()
        for sidecar in fleet:
            sidecar.stop()
        service.stop()
    return results


def _summary(label: str, values: list[float]) -> str:
    return (
        f"{label:<36} p50 {statistics.median(values) * 1000:8.0f} ms   "
        f"max {max(values) * 1000:8.0f} ms   min {min(values) * 1000:8.0f} ms   "
        f"(n={len(values)}: {', '.join(f'{value * 1000:.0f}' for value in values)})"
    )


def main() -> int:
    """Run both modes and print the publish-to-last-activation times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sidecars", type=int, default=20)
    parser.add_argument("--clients", type=int, default=1000, help="simulated long pollers")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--long-polling-only", action="store_true", help="skip the plain polling run"
    )
    parser.add_argument(
        "--sidecar-nice",
        type=int,
        default=0,
        help="run the sidecars at this niceness (10: as if on other machines, their compiling "
        "does not take the service's and the simulated clients' CPU)",
    )
    args = parser.parse_args()
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()), KEY_ID)
    print(
        f"bundle delivery to {args.sidecars} OPA sidecars (niceness +{args.sidecar_nice}), "
        f"{args.rounds} publishes per mode"
    )
    print(
        f"polling: min_delay_seconds={POLLING['min_delay']} "
        f"max_delay_seconds={POLLING['max_delay']}; "
        f"long polling: long_polling_timeout_seconds={LONG_POLLING_TIMEOUT}"
    )
    for long_polling in (True,) if args.long_polling_only else (True, False):
        with tempfile.TemporaryDirectory(prefix="edgepolicy-bench-") as tmp:
            results = _run_mode(
                Path(tmp), long_polling, args.sidecars, args.clients, args.rounds, key,
                args.sidecar_nice,
            )  # fmt: skip
        label = "long polling" if long_polling else "polling"
        if results.first_active:
            print(_summary(f"publish -> first activation, {label}", results.first_active))
            print(_summary(f"publish -> last activation, {label}", results.last_active))
        if results.last_client:
            print(_summary(f"publish -> first of {args.clients} clients", results.first_client))
            print(_summary(f"publish -> half of {args.clients} clients", results.median_client))
            print(_summary(f"publish -> last of {args.clients} clients", results.last_client))
            print(_summary("service CPU time per publish", results.service_cpu))
            print(f"clients reached per publish: {results.clients_reached}")
            print(f"client errors: {len(results.client_errors)} {results.client_errors[:3]}")
        baseline = results.rss["idle"]
        for moment, rss in results.rss.items():
            print(f"service RSS {moment:<36} {rss / MB:7.1f} MB  ({rss / baseline:.2f}x idle)")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

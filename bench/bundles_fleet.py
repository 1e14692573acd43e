"""Benchmark: time from publishing a bundle to its activation on the last of N OPA sidecars.

Starts ``edgepolicy bundle serve`` and N real ``opa run --server`` sidecars (signed ES256
bundles, persistence on), once with OPA's long polling and once with plain polling, then
publishes R new commits and measures, per publish, how long until every sidecar activated the
new revision (from each OPA's status API ``last_successful_activation``). Prints numbers; asserts
nothing.

    .venv/bin/python bench/bundles_fleet.py [--sidecars 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "unit" / "bundles")]

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from policyrepo import PolicyRepo, finops_policy  # noqa: E402

from bench.bundles_sidecars import KEY_ID, RESOURCE, BundleService, Sidecar  # noqa: E402
from bundles.archive import write_atomically  # noqa: E402
from bundles.builder import build_bundle  # noqa: E402
from bundles.signing import SigningKey  # noqa: E402
from edgepolicy.opa_binary import find_opa  # noqa: E402

POLLING = {"min_delay": 2, "max_delay": 5}
LONG_POLLING_TIMEOUT = 30


def _run_mode(
    tmp: Path, long_polling: bool, sidecars: int, rounds: int, key: SigningKey
) -> tuple[list[float], list[float]]:
    """Return, per publish, the delay to the first and to the last sidecar's activation."""
    opa = find_opa()
    repo = PolicyRepo(tmp / "repo")
    repo.write("cost.yaml", finops_policy(max_replicas=1))
    repo.commit("start")
    service = BundleService(tmp / "served", tmp / "serve.log").start()
    fleet: list[Sidecar] = []
    first_active: list[float] = []
    last_active: list[float] = []
    try:
        first = build_bundle(repo.path, opa=opa, signing_key=key)
        write_atomically(service.directory / RESOURCE, first.archive)
        for index in range(sidecars):
            sidecar = Sidecar(
                opa, tmp / f"opa-{index}", service.url, key.public_pem(),
                long_polling=long_polling, long_polling_timeout=LONG_POLLING_TIMEOUT, **POLLING,
            )  # fmt: skip
            fleet.append(sidecar.start())
            time.sleep(0.05)
        for sidecar in fleet:
            sidecar.wait_for_revision(first.revision, timeout=60)
        time.sleep(1)  # let every sidecar settle into its polling rhythm
        for round_ in range(rounds):
            repo.write("cost.yaml", finops_policy(max_replicas=round_ + 2))
            repo.commit(f"round {round_}")
            bundle = build_bundle(repo.path, opa=opa, signing_key=key)
            published = time.time()
            write_atomically(service.directory / RESOURCE, bundle.archive)
            for sidecar in fleet:
                sidecar.wait_for_revision(bundle.revision, timeout=60)
            activations = [sidecar.activated_at() or time.time() for sidecar in fleet]
            first_active.append(min(activations) - published)
            last_active.append(max(activations) - published)
            time.sleep(0.5)
    finally:
        for sidecar in fleet:
            sidecar.stop()
        service.stop()
    return first_active, last_active


def _summary(label: str, values: list[float]) -> str:
    return (
        f"{label:<36} p50 {statistics.median(values) * 1000:8.0f} ms   "
        f"max {max(values) * 1000:8.0f} ms   min {min(values) * 1000:8.0f} ms   "
        f"(n={len(values)})"
    )


def main() -> int:
    """Run both modes and print the publish-to-last-activation times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sidecars", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()), KEY_ID)
    print(f"bundle delivery to {args.sidecars} OPA sidecars, {args.rounds} publishes per mode")
    print(
        f"polling: min_delay_seconds={POLLING['min_delay']} "
        f"max_delay_seconds={POLLING['max_delay']}; "
        f"long polling: long_polling_timeout_seconds={LONG_POLLING_TIMEOUT}"
    )
    for long_polling in (True, False):
        with tempfile.TemporaryDirectory(prefix="edgepolicy-bench-") as tmp:
            first, last = _run_mode(Path(tmp), long_polling, args.sidecars, args.rounds, key)
        label = "long polling" if long_polling else "polling"
        print(_summary(f"publish -> first activation, {label}", first))
        print(_summary(f"publish -> last activation, {label}", last), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Measure the webhook workers' memory: resident (RSS), proportional (PSS) and unique (USS).

Starts `edgepolicy serve` (gunicorn, TLS) against a local OPA with the examples' policies, waits
until every worker has started (and 3 s more: older versions imported the model-signature
libraries in each worker, after it answered), sends each example workload to /validate and
/mutate a few times, then reads each process's ``/proc/PID/smaps_rollup``:

- RSS counts every page a worker maps, shared with the master or not;
- PSS splits each shared page between the processes sharing it (the sum over processes is what
  the machine spends);
- USS is what a worker holds alone (``Private_Clean + Private_Dirty``): what one more worker costs.

Prints numbers; asserts nothing:

    .venv/bin/python bench/webhook_memory.py [--workers 2] [--requests 50]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
_FIELDS = ("Rss", "Pss", "Private_Clean", "Private_Dirty")


def memory(pid: int) -> dict[str, int]:
    """RSS, PSS and USS of ``pid`` in bytes (from ``/proc/PID/smaps_rollup``)."""
    found = dict.fromkeys(_FIELDS, 0)
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in found:
            found[name] = int(rest.split()[0]) * 1024
    return {
        "rss": found["Rss"],
        "pss": found["Pss"],
        "uss": found["Private_Clean"] + found["Private_Dirty"],
    }


def _line(name: str, sizes: dict[str, int]) -> str:
    return (
        f"{name:<16} RSS {sizes['rss'] / MB:6.1f} MB   PSS {sizes['pss'] / MB:6.1f} MB   "
        f"USS {sizes['uss'] / MB:6.1f} MB"
    )


def main() -> int:
    """Serve, load the workers, print each process's memory."""
    import urllib3

    from bench.admission import _children, webhook_server
    from bench.admission_fuzz import policy_data, seed_reviews
    from edgepolicy.library import library_path
    from edgepolicy.opa_binary import find_opa
    from edgepolicy.opa_process import OpaProcess

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=50, help="per example and endpoint")
    args = parser.parse_args()
    reviews = [json.dumps(review).encode() for _, review in seed_reviews()]
    with (
        tempfile.TemporaryDirectory(prefix="edgepolicy-memory-") as temporary,
        OpaProcess(find_opa(), paths=[library_path()], data=policy_data()) as opa,
        webhook_server(Path(temporary), opa.url, workers=args.workers, threads=4) as served,
    ):
        url, ca, process = served
        started = time.monotonic()
        workers = _children(process.pid)
        while len(workers) < args.workers and time.monotonic() < started + 30:
            time.sleep(0.1)  # /readyz answered from the first worker: wait for the others
            workers = _children(process.pid)
        time.sleep(3)  # a worker's own import of the signature libraries (older versions)
        idle = {pid: memory(pid) for pid in workers}
        pool = urllib3.PoolManager(ca_certs=str(ca), retries=False)
        for _ in range(args.requests):
            for body in reviews:
                for endpoint in ("validate", "mutate"):
                    pool.request("POST", f"{url}/{endpoint}", body=body)
        loaded = {pid: memory(pid) for pid in workers}
        master = memory(process.pid)
        print(f"edgepolicy serve, {args.workers} workers, {time.monotonic() - started:.0f} s")
        print(_line("master", master))
        for pid in workers:
            print(_line(f"worker {pid} idle", idle[pid]))
            print(_line(f"worker {pid} used", loaded[pid]))
        total = master["pss"] + sum(sizes["pss"] for sizes in loaded.values())
        print(f"all processes together (sum of PSS): {total / MB:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())

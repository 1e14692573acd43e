"""Compare Kubernetes client libraries for what edgepolicy needs from them: the import time of
their kubeconfig loading, and the disk their installation takes (with dependencies).

Not a test: it prints numbers (docs/deploy.md, "The Kubernetes client", has the comparison).
Each library is measured in a virtual environment of its own holding only it and its
dependencies; edgepolicy's own client (``edgepolicy.kube``) in this project's environment is the
baseline, measured in the same run.

    python3 -m venv /tmp/k8s-official && /tmp/k8s-official/bin/pip install kubernetes
    .venv/bin/python bench/kube_clients.py \\
        --candidate "kubernetes=/tmp/k8s-official/bin/python:kubernetes.config" \\
        --candidate "kr8s=/tmp/k8s-kr8s/bin/python:kr8s" \\
        --candidate "lightkube=/tmp/k8s-lightkube/bin/python:lightkube.config.kubeconfig" \\
        [--runs 7] [--empty-venv /tmp/empty]

Import time: the median wall time of ``python -c "import MODULE"`` less the median of
``python -c "pass"`` with the same interpreter (so interpreter start-up cancels out). Size: the
environment's site-packages less that of an empty virtual environment (``--empty-venv``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _seconds(python: str, code: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([python, "-c", code], check=True, env={**os.environ, "PYTHONPATH": ""})
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def import_seconds(python: str, module: str, runs: int) -> float:
    """Median seconds ``import module`` adds to an interpreter start."""
    return _seconds(python, f"import {module}", runs) - _seconds(python, "pass", runs)


def site_packages_kib(python: str) -> int:
    """KiB under the interpreter's site-packages."""
    where = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return sum(p.stat().st_size for p in Path(where).rglob("*") if p.is_file()) // 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--candidate",
        action="append",
        default=[],
        metavar="NAME=PYTHON:MODULE",
        help="a library: its name, its environment's python and the module to import",
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--empty-venv", type=Path, help="an empty venv: its size is subtracted")
    args = parser.parse_args()
    empty = site_packages_kib(str(args.empty_venv / "bin" / "python")) if args.empty_venv else 0
    baseline = import_seconds(sys.executable, "edgepolicy.kube", args.runs)
    print(f"{'library':<12} {'import ms':>10} {'x edgepolicy.kube':>18} {'install MiB':>12}")
    print(f"{'edgepolicy':<12} {baseline * 1000:>10.1f} {1.0:>18.1f} {'(none new)':>12}")
    for candidate in args.candidate:
        name, _, rest = candidate.partition("=")
        python, _, module = rest.rpartition(":")
        seconds = import_seconds(python, module, args.runs)
        size = (site_packages_kib(python) - empty) / 1024
        print(f"{name:<12} {seconds * 1000:>10.1f} {seconds / baseline:>18.1f} {size:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

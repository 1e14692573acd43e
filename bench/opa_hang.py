"""How fast `edgepolicy serve` replaces a hung local OPA, and when decisions are correct again.

A real `edgepolicy serve` (gunicorn, TLS) supervises its local OPA (the shipped library and the
examples' policies). Each round stops that OPA with SIGSTOP (it keeps its port but can never
answer) while clients keep asking /validate about a workload the policies deny; a second set of
rounds kills it with SIGKILL instead (the baseline: a dead OPA). It prints, per round:

- replaced: from the signal until a new OPA process answers its /health;
- correct again: from the signal until the first answer to a request sent after it that is the
  policy's denial (finops.cpu, not the failure mode's 503) arrives.

    .venv/bin/python bench/opa_hang.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import urllib3
import yaml

ROOT = Path(__file__).resolve().parent.parent
EDGEPOLICY = Path(sys.executable).parent / "edgepolicy"
CLIENTS = 6  # concurrent askers: a new request starts while others wait on the hung OPA


@contextmanager
def serve(work: Path) -> Iterator[tuple[str, Path, int]]:
    """`edgepolicy serve` with a local OPA; yields (base URL, CA file, master pid)."""
    from bench.admission import _free_port, _write_tls

    ca, cert, key = _write_tls(work)
    port = _free_port()
    with open(work / "serve.log", "wb") as log:
        process = subprocess.Popen(
            [
                str(EDGEPOLICY), "serve", "--tls-cert", str(cert), "--tls-key", str(key),
                "--host", "127.0.0.1", "--port", str(port),
                "--policies", str(ROOT / "examples" / "policies"), "--workers", "2",
            ],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    try:
        client = urllib3.PoolManager(ca_certs=str(ca), retries=False)
        deadline = time.monotonic() + 60
        while not _ready(client, url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"edgepolicy serve did not start: see {work}/serve.log")
            time.sleep(0.2)
        yield url, ca, process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def _ready(client: urllib3.PoolManager, url: str) -> bool:
    try:
        return client.request("GET", url + "/readyz", timeout=1.0).status == 200
    except urllib3.exceptions.HTTPError:
        return False


def opa_pids(master: int) -> list[int]:
    """The OPA processes the serve master started."""
    found = []
    for task in Path(f"/proc/{master}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if argv[0].endswith(b"opa") and b"run" in argv:
                found.append(int(child))
    return found


def _opa_url(master: int, pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return "http://" + argv[argv.index(b"--addr") + 1].decode()


def denied_review() -> bytes:
    from edgepolicy.input_builder import admission_review

    with open(ROOT / "examples" / "workloads" / "denied-cpu.yaml", encoding="utf-8") as handle:
        obj = next(doc for doc in yaml.safe_load_all(handle) if doc)
    return json.dumps(admission_review(obj)).encode()


def is_correct(data: bytes) -> bool:
    """Whether an answer is the policy's denial (not the failure mode's)."""
    response = json.loads(data)["response"]
    message = response.get("status", {}).get("message", "")
    return response["allowed"] is False and "finops.cpu" in message


def one_round(url: str, ca: Path, master: int, how: signal.Signals) -> tuple[float, float]:
    """Signal the OPA; return (seconds until replaced, seconds until a correct decision)."""
    (old,) = opa_pids(master)
    health = urllib3.PoolManager(retries=False)
    opa_url = _opa_url(master, old)
    body = denied_review()
    correct_at: list[float] = []
    done = threading.Event()

    def ask() -> None:
        pool = urllib3.PoolManager(ca_certs=str(ca), retries=False)
        while not done.is_set():
            sent = time.monotonic()
            try:
                answer = pool.request("POST", url + "/validate", body=body, timeout=10.0)
            except urllib3.exceptions.HTTPError:
                continue
            # Only a request sent after the signal shows that decisions are correct again.
            if sent > signalled and answer.status == 200 and is_correct(answer.data):
                correct_at.append(time.monotonic())
                done.set()

    signalled = time.monotonic() + 3600  # set below, just before the signal
    askers = [threading.Thread(target=ask) for _ in range(CLIENTS)]
    for asker in askers:
        asker.start()
    time.sleep(0.5)
    signalled = time.monotonic()
    os.kill(old, how)
    replaced_at = None
    while replaced_at is None:
        new = [pid for pid in opa_pids(master) if pid != old]
        if new:
            try:
                if health.request("GET", opa_url + "/health", timeout=0.2).status == 200:
                    replaced_at = time.monotonic()
            except urllib3.exceptions.HTTPError:
                pass
        if time.monotonic() - signalled > 30:
            raise SystemExit("OPA was not replaced within 30 s")
        time.sleep(0.005)
    done.wait(30)
    for asker in askers:
        asker.join()
    first_correct = min(correct_at)
    return replaced_at - signalled, first_correct - signalled


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    results: dict[str, list[tuple[float, float]]] = {"SIGSTOP": [], "SIGKILL": []}
    with (
        tempfile.TemporaryDirectory(prefix="edgepolicy-opa-hang-") as work,
        serve(Path(work)) as (url, ca, master),
    ):
        for _ in range(args.rounds):
            for name, how in (("SIGSTOP", signal.SIGSTOP), ("SIGKILL", signal.SIGKILL)):
                replaced, correct = one_round(url, ca, master, how)
                results[name].append((replaced, correct))
                print(f"{name}: replaced after {replaced:.2f} s, correct decisions again after "
                      f"{correct:.2f} s", flush=True)  # fmt: skip
    for name, rounds in results.items():
        replaced = [r for r, _ in rounds]
        correct = [c for _, c in rounds]
        print(
            f"{name} over {len(rounds)} rounds: replaced median {statistics.median(replaced):.2f} s"
            f" (max {max(replaced):.2f}), correct again median {statistics.median(correct):.2f} s"
            f" (max {max(correct):.2f})"
        )
    stop = statistics.median(c for _, c in results["SIGSTOP"])
    kill = statistics.median(c for _, c in results["SIGKILL"])
    print(f"hung vs dead OPA, time to correct decisions: {stop / kill:.2f}x")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())

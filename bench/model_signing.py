"""Benchmark model signing and admission-time verification.

Not a test: it prints numbers (see docs/models.md for what was measured).

1. Hashing throughput of `edgepolicy model sign` against `sha256sum` on the same file (500 MB by
   default, generated in a temporary directory, page cache warmed by a first read). Both the
   CLI (a fresh process: start-up and imports included) and the library call are timed.
2. `ModelVerifier.verify` per admission, uncached (a fresh verifier, so a cache miss; the trust
   is parsed once per policy as in the webhook) against cached (the same verifier), for a key,
   a private-PKI certificate and an offline keyless (Sigstore) signature.

    .venv/bin/python bench/model_signing.py [--size-mb 500] [--rounds 3]
                                            [--uncached 200] [--cached 20000]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This file is named like the `model_signing` package: run as a script, its own folder comes
# first on sys.path and would shadow the package. Put the checkout there instead.
sys.path[:] = [str(ROOT)] + [
    entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent
]

from edgepolicy.models.signatures import (  # noqa: E402
    FACTS_FILE_NAME,
    CertificateSigning,
    KeySigning,
    sign_directory,
)
from edgepolicy.models.trust import Identity, ModelTrust  # noqa: E402
from edgepolicy.models.verifier import ModelVerifier  # noqa: E402
from tests.unit.models.model_fixtures import make_key_pair, make_pki, write_model  # noqa: E402
from tests.unit.models.offline_sigstore import OfflineSigstore  # noqa: E402

CHUNK = 1 << 20


def _best(rounds: int, run: Callable[[], None]) -> tuple[float, float]:
    """Best wall time and best CPU time (this process and its children) over `rounds` runs.

    CPU time is the steadier measure on a shared machine: waiting for a core does not count.
    """
    walls, cpus = [], []
    for _ in range(rounds):
        before = _cpu()
        start = time.perf_counter()
        run()
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu() - before)
    return min(walls), min(cpus)


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench_hashing(work: Path, size_mb: int, rounds: int) -> None:
    model = work / "big-model"
    model.mkdir()
    weights = model / "model.onnx"
    block = os.urandom(CHUNK)
    with weights.open("wb") as out:
        for _ in range(size_mb):
            out.write(block)
    (model / FACTS_FILE_NAME).write_text('{"model": {"quantization": "int8"}}\n')
    pair = make_key_pair(work, "bench")
    signature = work / "big.sig"
    subprocess.run(["sha256sum", str(weights)], check=True, capture_output=True)  # warm cache

    sha256sum = _best(
        rounds,
        lambda: subprocess.run(["sha256sum", str(weights)], check=True, capture_output=True),
    )
    openssl = _best(
        rounds,
        lambda: subprocess.run(
            ["openssl", "dgst", "-sha256", str(weights)], check=True, capture_output=True
        ),
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "edgepolicy", "model", "sign", str(model)]
    cli += ["--key", str(pair.private_path), "--signature", str(signature)]
    sign_cli = _best(rounds, lambda: subprocess.run(cli, check=True, capture_output=True, env=env))
    sign_library = _best(
        rounds, lambda: sign_directory(model, signature, KeySigning(pair.private_path))
    )
    print(f"hashing {size_mb} MB (best of {rounds}; x = time / sha256sum's):")
    for label, (wall, cpu) in (
        ("sha256sum", sha256sum),
        ("openssl dgst -sha256 (reference)", openssl),
        ("edgepolicy model sign (CLI process)", sign_cli),
        ("sign_directory (library)", sign_library),
    ):
        print(
            f"  {label:36s} wall {wall:6.3f} s {size_mb / wall:7.1f} MB/s "
            f"{wall / sha256sum[0]:5.2f}x"
            f"   cpu {cpu:6.3f} s {size_mb / cpu:7.1f} MB/s {cpu / sha256sum[1]:5.2f}x"
        )
    shutil.rmtree(model)


def _per_call(count: int, run: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(count):
        run()
    return (time.perf_counter() - start) / count


_FIRST_CALL = """
import json, sys, time
from pathlib import Path
work = Path(sys.argv[1])
from edgepolicy.models.trust import Identity, ModelTrust
from edgepolicy.models.verifier import ModelVerifier
trust = json.loads((work / "trust.json").read_text())
trust = ModelTrust(
    public_keys=tuple(trust["public_keys"]),
    certificate_chains=tuple(trust["certificate_chains"]),
    identities=tuple(Identity(*pair) for pair in trust["identities"]),
    trusted_root=trust["trusted_root"],
)
signature, facts = (work / "first.sig").read_text(), (work / "first.json").read_text()
start = time.perf_counter()
result = ModelVerifier().verify(signature, facts, trust)
assert result.verified, result.reason
print(time.perf_counter() - start)
"""


def _first_call_in_fresh_process(
    work: Path, signature: str, facts: str, trust: ModelTrust
) -> float:
    """The first verification of a fresh process: the lazy model_signing/sigstore imports."""
    import json

    (work / "first.sig").write_text(signature)
    (work / "first.json").write_text(facts)
    (work / "trust.json").write_text(
        json.dumps(
            {
                "public_keys": trust.public_keys,
                "certificate_chains": trust.certificate_chains,
                "identities": [[i.issuer, i.subject_regexp] for i in trust.identities],
                "trusted_root": trust.trusted_root,
            }
        )
    )
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL, str(work)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=work,
    ).stdout
    return float(out)


def bench_verification(work: Path, uncached: int, cached: int) -> None:
    model = write_model(work / "small-model")
    facts = (model / FACTS_FILE_NAME).read_text()
    pair = make_key_pair(work, "admission")
    key_sig = work / "key.sig"
    sign_directory(model, key_sig, KeySigning(pair.private_path))
    pki = make_pki(work / "pki", "Bench")
    leaf_key, leaf_cert, chain = pki.leaf_files("bench-signer")
    cert_sig = work / "cert.sig"
    sign_directory(model, cert_sig, CertificateSigning(leaf_key, leaf_cert, (chain,)))
    sigstore = OfflineSigstore("bench")
    keyless_sig = work / "keyless.sig"
    sigstore.sign(model, keyless_sig, identity="ci@bench.test", issuer="https://issuer.bench")
    cases = [
        ("key", key_sig, ModelTrust(public_keys=(pair.public_pem,))),
        ("certificate", cert_sig, ModelTrust(certificate_chains=(pki.root.pem,))),
        (
            "keyless (offline root)",
            keyless_sig,
            ModelTrust(
                identities=(Identity("https://issuer.bench", r".*@bench\.test"),),
                trusted_root=sigstore.trusted_root_json(),
            ),
        ),
    ]
    print(f"ModelVerifier.verify per admission (uncached: {uncached} calls, cached: {cached}):")
    for label, path, trust in cases:
        signature = path.read_text()
        first_call = _first_call_in_fresh_process(work, signature, facts, trust)
        miss = _per_call(uncached, lambda s=signature, t=trust: ModelVerifier().verify(s, facts, t))
        verifier = ModelVerifier()
        verifier.verify(signature, facts, trust)
        hit = _per_call(cached, lambda v=verifier, s=signature, t=trust: v.verify(s, facts, t))
        print(
            f"  {label:24s} first call {first_call * 1e3:7.1f} ms   uncached "
            f"{miss * 1e3:7.3f} ms   cached {hit * 1e6:7.2f} us   ratio {miss / hit:7.0f}x"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--uncached", type=int, default=200)
    parser.add_argument("--cached", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgepolicy-bench-") as temporary:
        work = Path(temporary)
        bench_verification(work, args.uncached, args.cached)
        bench_hashing(work, args.size_mb, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared fixtures for integration tests: a test CA and server certificates (see
webhook_support.py for the helpers behind them) and the real OPA binary.

A test here that needs a tool only `make tools-e2e` installs (the ``kubeconfig`` fixture: a real
control plane, kube-apiserver and etcd; ``prometheus_factory`` and ``promtool``: Prometheus and
promtool) is also marked ``e2e``, as the marker defines, so ``pytest -m "not e2e"`` after
`make setup` leaves it out instead of erroring."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from prometheus_support import (
    MISSING_HINT,
    PROMETHEUS,
    PROMTOOL,
    OpenMetricsWriter,
    PrometheusServer,
    backfill,
)
from webhook_support import ServerCert, TestCA

from edgepolicy.opa_binary import find_opa

# Fixtures that need the tools of `make tools-e2e` (not installed by `make setup`).
E2E_TOOL_FIXTURES = frozenset({"kubeconfig", "prometheus_factory", "promtool"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``e2e`` every integration test that needs a tool of `make tools-e2e`."""
    for item in items:
        in_here = item.path.parent == Path(__file__).parent
        if in_here and E2E_TOOL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    """A test CA for the session."""
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def server_cert(test_ca: TestCA, tmp_path: Path) -> ServerCert:
    """A fresh server certificate for 127.0.0.1 and localhost."""
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert = test_ca.issue(cert_file, key_file)
    return ServerCert(cert_file, key_file, cert)


@pytest.fixture(scope="session")
def opa_binary() -> Path:
    """The real OPA binary (built by `make setup`)."""
    return find_opa()


# Writes the series a test wants into the (backfilled) TSDB.
SeriesWriter = Callable[[OpenMetricsWriter], None]


@pytest.fixture(scope="session")
def promtool() -> Path:
    """The real promtool (built by `make tools-e2e`)."""
    if not PROMTOOL.exists():
        pytest.fail(f"promtool missing from {PROMTOOL.parent}: {MISSING_HINT}")
    return PROMTOOL


@pytest.fixture(scope="session")
def prometheus_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[SeriesWriter], PrometheusServer]]:
    """Start a real Prometheus on series of known shape: ``prometheus_factory(write)`` has
    ``write`` generate OpenMetrics text, backfills it with ``promtool tsdb create-blocks-from
    openmetrics``, starts Prometheus on that TSDB (loopback, free port, the rules of
    deploy/monitoring loaded) and returns it ready; every server stops at the end of the session.
    The samples must be in the past: query them with explicit evaluation times."""
    missing = [path.name for path in (PROMETHEUS, PROMTOOL) if not path.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing from {PROMETHEUS.parent}: {MISSING_HINT}")
    with ExitStack() as servers:

        def start(write: SeriesWriter) -> PrometheusServer:
            workdir = tmp_path_factory.mktemp("prometheus")
            text = workdir / "series.om.txt"
            with text.open("w") as out:
                writer = OpenMetricsWriter(out)
                write(writer)
                writer.close()
            tsdb = workdir / "tsdb"
            backfill(text, tsdb)
            text.unlink()
            return servers.enter_context(PrometheusServer(tsdb, workdir))

        yield start

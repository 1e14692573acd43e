"""The Prometheus fixture itself: backfilled series are queryable at their (past) times, and the
shipped rule files are loaded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import urllib3
from prometheus_support import OpenMetricsWriter, PrometheusServer, steps

from edgepolicy.prometheus_api import PrometheusClient

DAY = 86400
END = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def _write(writer: OpenMetricsWriter) -> None:
    start = END.timestamp() - 2 * DAY
    writer.family("edgepolicy_fixture_gauge")
    samples = ((t, 1 if t - start < DAY else 3) for t in steps(start, END.timestamp(), 30))
    writer.series({"pod": "a"}, samples)


def test_backfilled_series_are_queryable_and_rules_loaded(prometheus_factory) -> None:  # type: ignore[no-untyped-def]
    server: PrometheusServer = prometheus_factory(_write)
    client = PrometheusClient(server.url)
    try:
        first_day = client.query(
            "sum_over_time(edgepolicy_fixture_gauge[1d])", END - timedelta(days=1)
        )
        second_day = client.query("sum_over_time(edgepolicy_fixture_gauge[1d])", END)
    finally:
        client.close()
    # Ranges are left-open, (at-1d, at]: day one holds 2,879 samples of 1 and the first 3 (at
    # START+1d); day two the other 2,879 samples of 3 (the series stops before END).
    assert [s["value"][1] for s in first_day] == [str(2879 + 3)]
    assert [s["value"][1] for s in second_day] == [str(2879 * 3)]
    rules = urllib3.request("GET", f"{server.url}/api/v1/rules").json()
    groups = {group["name"] for group in rules["data"]["groups"]}
    assert "edgepolicy-audit" in groups

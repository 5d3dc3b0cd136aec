"""Repository-wide pytest configuration.

With ``MESHFILTER_REQUIRE_ALL=1`` (set by .ci/run), a skipped test is a failure: CI must prove every
component, so a missing component cannot hide behind a skip.
"""

from __future__ import annotations

import os
import signal

import pytest
from hypothesis import HealthCheck, settings

# Shared 2-core machines: wall-clock deadlines measure the neighbours, not the code.
settings.register_profile("meshfilter", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "meshfilter"))


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config: pytest.Config) -> None:
    # A run ended by SIGTERM (e.g. `timeout`) unwinds like Ctrl-C: fixture teardown and atexit hooks
    # run, so every Envoy, registry and container a test started is ended by PID.
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("MESHFILTER_REQUIRE_ALL") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under MESHFILTER_REQUIRE_ALL=1 (CI): {reason}"

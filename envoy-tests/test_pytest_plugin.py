"""The pytest plugin, as a filter author uses it: the README's example test file runs and passes."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "test_my_filter.py"


def test_readme_example_passes_with_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_example=EXAMPLE.read_text())
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_plugin_fixture_fails_the_test_and_still_stops_envoy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fail="""
import os
from pathlib import Path

def test_fails(envoy_with_filters):
    envoy = envoy_with_filters([])
    Path("pid").write_text(str(envoy.pid))
    assert False, "deliberate"
""")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    pid = int((pytester.path / "pid").read_text())
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()

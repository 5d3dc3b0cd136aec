"""`meshfilter demo` usage errors: one line, exit 2, nothing started."""

from __future__ import annotations

import pytest

from meshfilter.cli import main


@pytest.mark.parametrize(("argv", "needle"), [
    (["demo", "ab", "--port", "70000"], "--port: port 70000 is out of range"),
    (["demo", "canary", "--port", "-1"], "--port: port -1 is out of range"),
])
def test_bad_port_is_a_usage_error(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


@pytest.mark.parametrize("argv", [["demo", "ab", "--only", "hello3"], ["demo", "ab", "--backend", "vm"], ["demo"]])
def test_bad_flags_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1

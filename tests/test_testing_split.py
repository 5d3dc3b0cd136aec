"""Test support stays out of the runtime package (issue 14 item 3): no runtime dependency only tests need, and
every product module imports without them."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import meshfilter

ROOT = Path(__file__).resolve().parent.parent
TEST_ONLY = ("cryptography", "oras", "pytest", "hypothesis")


def test_runtime_dependencies_hold_no_test_only_package() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    runtime = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M)
    testing = re.search(r"^testing = \[(.*?)\]", text, re.S | re.M)
    assert runtime and testing
    names = {re.split(r"[<>=\[ ]", d)[0].lower() for d in re.findall(r'"([^"]+)"', runtime.group(1))}
    assert "requests" in names and not names & set(TEST_ONLY)
    assert any(d.startswith("cryptography") for d in re.findall(r'"([^"]+)"', testing.group(1)))


def test_product_modules_import_without_test_only_packages() -> None:
    modules = [m.name for m in pkgutil.walk_packages(meshfilter.__path__, "meshfilter.")
               if not m.name.startswith("meshfilter.testing") and "pytest" not in m.name  # the plugin and its parts
               and ".examples." not in m.name and not m.name.endswith("__main__")]
    assert "meshfilter.oras.server" in modules and "meshfilter.cli.registry" in modules
    code = ("import sys\n"
            f"for name in {TEST_ONLY!r}: sys.modules[name] = None  # importing one now fails\n"
            f"import importlib\nfor m in {modules!r}: importlib.import_module(m)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]

"""Test support stays out of the runtime package (issue 14 item 3): no runtime dependency only tests need, and
every product module imports without them."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import meshfilter

ROOT = Path(__file__).resolve().parent.parent
TEST_ONLY = ("cryptography", "oras", "pytest", "hypothesis")


def test_runtime_dependencies_hold_no_test_only_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("[")[0].strip().lower() for d in project["dependencies"]}
    assert not names & set(TEST_ONLY)
    assert any(d.startswith("cryptography") for d in project["optional-dependencies"]["testing"])


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

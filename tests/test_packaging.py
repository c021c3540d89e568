"""Packaging: both packages ship a py.typed marker (PEP 561), so type checkers use physopt's annotations; the lazily
imported public names."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package", ["physopt", "problems"])
def test_each_package_has_a_py_typed_marker_that_the_wheel_includes(package):
    tomllib = pytest.importorskip("tomllib")
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in data[package] and (ROOT / package / "py.typed").is_file()


def test_every_public_name_is_itself_whichever_is_used_first():
    """physopt imports its names on first use; a submodule named like its function (physopt.phiml_physics) must not
    shadow the function when another name of that module is used first."""
    script = """
import sys
import physopt
for first in physopt._EXPORTS:
    for loaded in [m for m in sys.modules if m == "physopt" or m.startswith("physopt.")]:
        del sys.modules[loaded]
    import physopt
    getattr(physopt, first)
    modules = [n for n in physopt._EXPORTS if type(getattr(physopt, n)).__name__ == "module"]
    assert not modules, f"after physopt.{first}: {modules} are modules"
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

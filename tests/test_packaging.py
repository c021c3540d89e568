"""Packaging: both packages ship a py.typed marker (PEP 561), so type checkers use physopt's annotations."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package", ["physopt", "problems"])
def test_each_package_has_a_py_typed_marker_that_the_wheel_includes(package):
    tomllib = pytest.importorskip("tomllib")
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in data[package] and (ROOT / package / "py.typed").is_file()

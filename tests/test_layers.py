"""The layers point one way: core <- problems <- bench <- timing <- cli (DESIGN.md).

Read from the source with ``ast`` (nothing is imported), so an arrow that runs the wrong way fails here even where it
sits inside a function that no test calls.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: what problems may use of physopt: its public API
PUBLIC_CORE = {"physopt", "physopt.derivatives"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> list[Path]:
    return sorted(p for top in ("physopt", "problems") for p in (ROOT / top).rglob("*.py"))


def imports(path: Path) -> set[tuple[str, str]]:
    """What ``path`` imports, at any depth of the file, with relative imports resolved: ("module", name) for each
    module named in an import statement, ("name", module.name) for each name taken from a module (which may itself be
    a submodule, as in ``from physopt import bench``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {("module", a.name) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(("module", target))
            found |= {("name", f"{target}.{a.name}") for a in node.names}
    return found


def layer(module: str) -> str | None:
    for prefix, name in (("physopt.cli", "cli"), ("physopt.__main__", "cli"), ("physopt.timing", "timing"),
                         ("physopt.bench", "bench"), ("problems.solvers", "solvers"), ("problems", "problems"),
                         ("physopt", "core")):
        if module == prefix or module.startswith(prefix + "."):
            return name
    return None


#: which layers each layer may import
ALLOWED = {"core": {"core"}, "solvers": {"core", "solvers"}, "problems": {"core", "solvers", "problems"},
           "bench": {"core", "solvers", "problems", "bench"},
           "timing": {"core", "solvers", "problems", "bench", "timing"},
           "cli": {"core", "solvers", "problems", "bench", "timing", "cli"}}


def arrows() -> list[tuple[str, str, str]]:
    """(importing module, imported module or name, "module" | "name") for every import of our own code."""
    out = []
    for path in modules():
        src = module_name(path)
        out += [(src, dst, kind) for kind, dst in imports(path) if layer(dst) is not None]
    return out


def test_the_module_reader_sees_the_imports_it_must_judge():
    edges = {(src, dst) for src, dst, _ in arrows()}
    assert ("physopt.bench.compare", "physopt.bench.train") in edges          # relative import resolved
    assert ("physopt.cli", "physopt.bench.suite") in edges                    # import inside a function
    assert any(src.startswith("problems.") and dst == "physopt" for src, dst in edges)


def violations(edges) -> list[str]:
    """The arrows that run the wrong way, and problems' imports of anything but the public core API. ``edges``:
    (src, dst) or (src, dst, kind) with kind "module" (the default) or "name"."""
    out = []
    for src, dst, *kind in sorted(set(edges)):
        if layer(dst) not in ALLOWED[layer(src)]:
            out.append(f"{src} ({layer(src)}) imports {dst} ({layer(dst)})")
        elif layer(src) in ("problems", "solvers") and layer(dst) == "core":
            private = any(part.startswith("_") for part in dst.split("."))
            if private or (kind in ([], ["module"]) and dst not in PUBLIC_CORE):
                out.append(f"{src} imports {dst}, not physopt's public API {sorted(PUBLIC_CORE)}")
    return out


def test_a_wrong_arrow_would_be_caught():
    assert violations([("physopt.sip", "problems.base"), ("problems.toys", "physopt.updates"),
                       ("problems.toys", "physopt.names"), ("physopt.bench.train", "physopt.timing.kernel"),
                       ("problems.solvers.grids", "problems.base")]) == [
        "physopt.bench.train (bench) imports physopt.timing.kernel (timing)",
        "physopt.sip (core) imports problems.base (problems)",
        "problems.solvers.grids (solvers) imports problems.base (problems)",
        "problems.toys imports physopt.names, not physopt's public API ['physopt', 'physopt.derivatives']",
        "problems.toys imports physopt.updates, not physopt's public API ['physopt', 'physopt.derivatives']"]
    assert violations([("problems.toys", "physopt._names", "name"), ("problems.toys", "physopt.SIP", "name")]) == [
        "problems.toys imports physopt._names, not physopt's public API ['physopt', 'physopt.derivatives']"]


def test_every_arrow_points_down_and_problems_use_only_the_public_core_api():
    assert violations(arrows()) == []

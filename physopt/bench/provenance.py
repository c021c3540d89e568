"""What made a result: the physopt version and, when physopt runs from a git checkout, its commit and whether its
source differed from that commit; the numpy, torch, CUDA and driver versions.

Every run file and summary.json records :func:`provenance`; a resumed comparison reuses a finished run only when
:func:`same_version` says it was made by this physopt version (see ``compare(..., keep_stale=...)``).
"""
from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import numpy
import torch

#: the source paths (relative to the checkout) whose changes make a run "dirty": the code, not the results
SOURCE_PATHS = ("physopt", "problems", "pyproject.toml")


def physopt_version() -> str:
    import physopt
    return physopt.__version__


def provenance() -> dict[str, Any]:
    """``{"physopt", "git_commit", "git_dirty", "numpy", "torch", "cuda", "cuda_driver"}`` for this process.

    ``git_commit`` / ``git_dirty`` are None unless physopt is imported from a git checkout whose top level holds the
    ``physopt`` package (an editable install of the repository); ``git_dirty`` is True when the source paths
    (:data:`SOURCE_PATHS`, untracked files included) differ from that commit. ``cuda`` is torch's CUDA version (None
    for a CPU build), ``cuda_driver`` the NVIDIA driver's (None without a visible GPU or ``nvidia-smi``).
    """
    commit, dirty = _git_state()
    return {"physopt": physopt_version(), "git_commit": commit, "git_dirty": dirty, "numpy": numpy.__version__,
            "torch": torch.__version__, "cuda": torch.version.cuda, "cuda_driver": _cuda_driver()}


def same_version(stored: dict[str, Any] | None) -> bool:
    """Whether a stored provenance record was made by this physopt version (a record without one, from before
    versions were recorded, was not)."""
    return same_release(stored, {"physopt": physopt_version()})


def same_release(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two provenance records name the same physopt version (records without one never match)."""
    version = a.get("physopt") if isinstance(a, dict) else None
    return version is not None and isinstance(b, dict) and b.get("physopt") == version


def version_of(stored: dict[str, Any] | None) -> str:
    """The physopt version a stored record names, for messages: e.g. ``physopt 0.2.0`` or ``an unrecorded physopt
    version``."""
    version = stored.get("physopt") if isinstance(stored, dict) else None
    return f"physopt {version}" if version else "an unrecorded physopt version"


def provenance_label(stored: dict[str, Any] | None) -> str:
    """A short line for a provenance record, e.g. ``physopt 0.2.0 (commit 53555a2c1e, with uncommitted changes)``."""
    if not isinstance(stored, dict):
        return "physopt version not recorded"
    commit = stored.get("git_commit")
    where = "" if not commit else f" (commit {commit[:10]}" + (", with uncommitted changes)" if stored.get("git_dirty")
                                                            else ")")
    return f"{version_of(stored)}{where}"


def _run(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(root: Path) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout whose top level is ``root``; ``(None, None)`` when ``root`` is not the
    top level of a checkout (or git is missing). ``dirty``: the :data:`SOURCE_PATHS` under ``root`` differ from the
    commit (modified, staged or untracked, ignored files aside); results written into the checkout do not count."""
    root = Path(root).resolve()
    top = _run(["git", "rev-parse", "--show-toplevel"], root)
    if top is None or Path(top.strip()).resolve() != root:  # e.g. installed into site-packages inside another
        return None, None                                   # repository: that repository's commit is not physopt's
    commit = _run(["git", "rev-parse", "--verify", "HEAD"], root)
    if commit is None:                                      # a repository without commits
        return None, None
    status = _run(["git", "status", "--porcelain", "--", *SOURCE_PATHS], root)
    return commit.strip(), None if status is None else bool(status.strip())


@functools.lru_cache(maxsize=1)
def _git_state() -> tuple[str | None, bool | None]:
    return git_state(Path(__file__).resolve().parents[2])  # physopt/bench/provenance.py -> the checkout's top


@functools.lru_cache(maxsize=1)
def _cuda_driver() -> str | None:
    if not torch.cuda.is_available():
        return None
    out = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], Path.cwd())
    return out.splitlines()[0].strip() if out and out.strip() else None

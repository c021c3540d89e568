"""provenance: what made a result (physopt version, git commit and dirty state, numpy/torch/CUDA versions)."""
import subprocess
from pathlib import Path

import numpy
import pytest
import torch

import physopt
from physopt.bench.provenance import (git_state, provenance, provenance_label, same_release, same_version,
                                      version_of)

ROOT = Path(physopt.__file__).resolve().parents[1]


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def test_the_record_names_the_installed_versions():
    record = provenance()
    assert record["physopt"] == physopt.__version__
    assert record["numpy"] == numpy.__version__ and record["torch"] == torch.__version__
    assert record["cuda"] == torch.version.cuda
    if not torch.cuda.is_available():
        assert record["cuda_driver"] is None


def test_from_a_checkout_the_commit_is_the_checkouts_head():
    if not (ROOT / ".git").exists():
        pytest.skip("physopt is not imported from a git checkout here")
    assert provenance()["git_commit"] == git(ROOT, "rev-parse", "HEAD")
    assert isinstance(provenance()["git_dirty"], bool)


@pytest.fixture
def checkout(tmp_path):
    root = tmp_path / "repo"
    (root / "physopt").mkdir(parents=True)
    (root / "results").mkdir()
    (root / "physopt" / "core.py").write_text("x = 1\n")
    (root / "results" / "run.json").write_text("{}\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    return root


def test_dirty_means_the_source_differs_from_the_commit_not_the_results(checkout):
    head = git(checkout, "rev-parse", "HEAD")
    assert git_state(checkout) == (head, False)
    (checkout / "results" / "run.json").write_text('{"new": 1}\n')           # a benchmark wrote its results
    (checkout / "results" / "more.json").write_text("{}\n")
    assert git_state(checkout) == (head, False)
    (checkout / "physopt" / "new_module.py").write_text("y = 2\n")          # untracked source counts
    assert git_state(checkout) == (head, True)
    (checkout / "physopt" / "new_module.py").unlink()
    (checkout / "physopt" / "core.py").write_text("x = 2\n")
    assert git_state(checkout) == (head, True)


def test_no_commit_outside_a_checkout_or_below_its_top_level(checkout, tmp_path):
    assert git_state(checkout / "physopt") == (None, None)     # e.g. site-packages inside a user's repository
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_state(plain) == (None, None)


def test_versions_match_only_when_recorded_and_equal():
    here = {"physopt": physopt.__version__}
    assert same_version(here) and not same_version({"physopt": "0.0.1"})
    assert not same_version(None) and not same_version({}) and not same_version("0.2.0")
    assert same_release({"physopt": "1.0"}, {"physopt": "1.0"}) and not same_release({}, {})
    assert version_of({"physopt": "0.1.0"}) == "physopt 0.1.0"
    assert version_of(None) == "an unrecorded physopt version"


def test_the_label_names_version_commit_and_uncommitted_changes():
    record = {"physopt": "0.2.0", "git_commit": "0123456789abcdef", "git_dirty": True}
    assert provenance_label(record) == "physopt 0.2.0 (commit 0123456789, with uncommitted changes)"
    assert provenance_label({**record, "git_dirty": False}) == "physopt 0.2.0 (commit 0123456789)"
    assert provenance_label({"physopt": "0.2.0", "git_commit": None}) == "physopt 0.2.0"
    assert provenance_label(None) == "physopt version not recorded"

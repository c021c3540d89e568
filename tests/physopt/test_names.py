"""names: registry lookup by name, forgiving case and spaces; an unknown name raises UnknownNameError, which lists
the choices and suggests the closest one."""
import pytest

from physopt.names import UnknownNameError, lookup

TABLE = {"adam": 1, "sgd": 2, "sip": 3, "rmsprop": 4}


def test_a_known_name_gives_its_entry_whatever_its_case_and_surrounding_spaces():
    assert lookup("optimizer", "sip", TABLE) == 3
    assert lookup("optimizer", "  RMSProp ", TABLE) == 4


def test_an_unknown_name_suggests_the_closest_and_lists_the_choices_sorted():
    with pytest.raises(UnknownNameError) as err:
        lookup("optimizer", "Adamw", TABLE)
    assert str(err.value) == "unknown optimizer 'Adamw'. Did you mean 'adam'? Available: adam, rmsprop, sgd, sip"


def test_without_a_close_name_there_is_no_suggestion():
    with pytest.raises(UnknownNameError) as err:
        lookup("problem", "navier", {"poisson": 0, "heat": 1})
    assert str(err.value) == "unknown problem 'navier'. Available: heat, poisson"


def test_the_error_is_caught_as_key_error_or_value_error_and_its_message_is_not_quoted():
    for caught in (KeyError, ValueError):
        with pytest.raises(caught):
            lookup("route", "gramm", {"gram": 0})
    try:
        lookup("route", "gramm", {"gram": 0})
    except KeyError as err:     # KeyError's own str() would wrap the message in quotes
        assert str(err).startswith("unknown route 'gramm'.")


def test_a_name_that_is_not_a_string_is_an_unknown_name_not_a_crash():
    for name in (None, 3):
        with pytest.raises(UnknownNameError, match=f"unknown optimizer '{name}'. Available: adam, rmsprop, sgd, sip"):
            lookup("optimizer", name, TABLE)


# ---- import paths and entry points -----------------------------------------------------------------------------

from physopt.names import import_object, is_import_path  # noqa: E402


def test_an_import_path_names_a_module_attribute_with_a_colon_or_a_last_dot():
    import torch
    assert import_object("torch.optim:AdamW", "optimizer") is torch.optim.AdamW
    assert import_object("torch.optim.AdamW", "optimizer") is torch.optim.AdamW
    assert is_import_path("mypkg.mod:MyProblem") and is_import_path("torch.optim.AdamW")
    assert not is_import_path("navier-stokes") and not is_import_path("adam")


@pytest.mark.parametrize("path, words", [
    ("nosuchpkg_xyz.mod:Thing", "optimizer 'nosuchpkg_xyz.mod:Thing': no module named 'nosuchpkg_xyz'"),
    ("torch.optim:AdamWW", "module 'torch.optim' has no attribute 'AdamWW'. Did you mean 'AdamW'?"),
    (":Thing", "is not an import path"),
])
def test_a_bad_import_path_says_which_part_failed(path, words):
    with pytest.raises(UnknownNameError, match=words.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        import_object(path, "optimizer")


def test_a_module_that_raises_while_importing_is_named_with_its_error(tmp_path, monkeypatch):
    (tmp_path / "broken_mod_xyz.py").write_text("raise RuntimeError('no licence server')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UnknownNameError, match="importing module 'broken_mod_xyz' failed: RuntimeError: no licence"):
        import_object("broken_mod_xyz:Thing", "problem")


# ---- adversarial names (probe) -----------------------------------------------------------------------------------

@pytest.mark.parametrize("path, words", [
    ("torch.optim.adamw", "Did you mean 'AdamW'?"),                 # the case differs: not 'Adam'
    ("torch.optim:sparseadam", "Did you mean 'SparseAdam'?"),       # beyond the first 12 names of the module
    ("my_physics.py:problem", "an import path names a module, not a file: write my_physics:problem"),
    ("./pkg/mod:P", "an import path names a module, not a file: write pkg.mod:P"),
])
def test_a_misspelt_import_path_gets_the_right_hint(path, words):
    with pytest.raises(UnknownNameError) as err:
        import_object(path, "optimizer")
    assert words in str(err.value)


class _Entry:
    def __init__(self, name, value, dist):
        self.name, self.value = name, value
        self.dist = type("Dist", (), {"name": dist})()

    def load(self):
        return self.value


def test_a_name_two_packages_declare_is_refused_naming_both(monkeypatch):
    import importlib.metadata

    from physopt.names import installed_entry_points, load_entry_point
    entries = [_Entry("fancy", "pkga:Opt", "pkga"), _Entry("fancy", "pkgb:Opt", "pkgb"),
               _Entry("plain", "pkga:Plain", "pkga"), _Entry("plain", "pkga:Plain", "pkga")]   # the same one twice
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: entries)
    found = installed_entry_points("physopt.optimizers")
    assert load_entry_point(found["plain"], "optimizer") == "pkga:Plain"
    with pytest.raises(UnknownNameError, match=r"optimizer 'fancy' is declared by several installed packages: "
                                               r"pkga:Opt \(pkga\) and pkgb:Opt \(pkgb\)"):
        load_entry_point(found["fancy"], "optimizer")

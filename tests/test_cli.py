"""The `physopt` command: its parser, exit codes and clear errors for bad input."""
import pytest


def test_list_names_problems_and_optimizers(cli):
    code, out, _ = cli("list")
    assert code == 0
    for name in ("poisson", "heat", "exp", "rotated-sine", "adam", "sgd", "sip"):
        assert name in out


@pytest.mark.parametrize("argv, message", [
    (["compare", "poison", "--iterations", "1"], "unknown problem 'poison'. Did you mean 'poisson'?"),
    (["compare", "exp", "--optimizers", "adamw", "--iterations", "1"], "unknown optimizer 'adamw'"),
    (["compare", "exp", "--optimizers", "adam", "--iterations", "1", "--hparam", "adam.lr=-1"],
     "learning rate must be a finite number > 0"),
    (["compare", "exp", "--optimizers", "sip", "--iterations", "1", "--hparam", "sip.lr=0"],
     "learning rate must be a finite number > 0"),
    (["compare", "exp", "--optimizers", "adam"], "--iterations"),
    (["compare", "exp", "--iterations", "0"], "--iterations must be >= 1"),
    (["compare", "exp", "--iterations", "1", "--param", "nope=1"], "unknown config field"),
    (["compare", "exp", "--iterations", "1", "--seeds", "a"], "--seeds"),
])
def test_bad_input_gets_a_clear_error(cli, argv, message):
    code, _, err = cli(*argv, "--device", "cpu", "--quiet")
    assert code == 2
    assert message in err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error(cli):
    code, _, err = cli("compare", "exp", "--iterations", "1", "--device", "cuda", "--quiet")
    assert code == 2 and "no CUDA device" in err and "--device cpu" in err


def test_python_dash_m_physopt_runs_the_command():
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "physopt", "list"], capture_output=True, text=True)
    assert proc.returncode == 0 and "navier-stokes" in proc.stdout and "hig" in proc.stdout


def test_version(cli):
    from importlib.metadata import version
    with pytest.raises(SystemExit) as exit_:
        cli("--version")
    assert exit_.value.code == 0


def subcommands():
    from physopt.cli import build_parser
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return parser, action.choices


def test_every_command_help_shows_an_example_and_the_defaults():
    _, commands = subcommands()
    assert {"list", "compare", "bench", "tune", "speed", "report", "hig-timing", "zcs-bench", "tangentprop-bench",
            "ns-step-bench", "ns-inference"} <= set(commands)
    for name, sub in commands.items():
        text = sub.format_help()
        assert f"example:\n  physopt {name}" in text, name
        for action in sub._actions:
            if "--device" in action.option_strings:
                assert action.default == "auto", name          # --device auto everywhere
                assert "(default: auto)" in text
            if action.option_strings and action.default not in (None, False) and action.help \
                    and not isinstance(action.default, list) and action.dest != "help":
                assert "default" in " ".join(text.split()).split(action.option_strings[-1], 1)[1], (name, action.dest)


def test_building_the_parser_imports_no_torch():
    import subprocess
    import sys
    code = "import sys; from physopt.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr


def test_a_user_error_is_one_line_with_exit_code_2_and_no_traceback():
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "physopt", "compare", "poison", "--iterations", "1"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["physopt: error: unknown problem 'poison'. Did you mean 'poisson'? "
                                                "Available: " + proc.stderr.split("Available: ")[1].strip()]

"""The `physopt` command: its parser, exit codes and clear errors for bad input."""
import pytest


def test_list_names_problems_and_optimizers(cli):
    code, out, _ = cli("list")
    assert code == 0
    for name in ("poisson", "heat", "exp", "rotated-sine", "adam", "sgd", "sip"):
        assert name in out


@pytest.mark.parametrize("argv, message", [
    (["compare", "poison", "--iterations", "1"], "unknown problem 'poison'. Did you mean 'poisson'?"),
    (["compare", "poison"], "unknown problem 'poison'. Did you mean 'poisson'?"),      # before asking for a length
    (["compare", "exp", "--optimizers", "adamw", "--iterations", "1"], "unknown optimizer 'adamw'"),
    (["compare", "exp", "--optimizers", "adam", "--iterations", "1", "--hparam", "adam.lr=-1"],
     "Invalid lr: "),
    (["compare", "exp", "--optimizers", "sip", "--iterations", "1", "--hparam", "sip.lr=0"],
     "Invalid lr: "),
    (["compare", "exp", "--optimizers", "adam"], "--iterations"),
    (["compare", "exp", "--iterations", "1", "--param", "nope=1"], "unknown config field"),
    (["compare", "exp", "--iterations", "1", "--seeds", "a"], "--seeds"),
])
def test_bad_input_gets_a_clear_error(cli, argv, message):
    code, _, err = cli(*argv, "--device", "cpu", "--quiet")
    assert code == 2
    assert message in err


@pytest.mark.parametrize("argv, message", [
    (["pde-control", "--cuda-graphs", "--timing-device", "cpu"], "CUDA graphs need a CUDA timing device, got 'cpu'"),
    (["pde-control", "--cuda-graphs", "--no-timing"], "leave out --no-timing"),
])
def test_pde_control_refuses_cuda_graphs_it_cannot_time_before_training(cli, tmp_path, argv, message):
    code, _, err = cli(*argv, "--plan", "quick", "--out", str(tmp_path), "--quiet")
    assert code == 2 and message in err
    assert not list(tmp_path.iterdir())          # nothing trained


def test_pde_control_counts_each_inference_calls_operations_unless_told_not_to(cli, tmp_path):
    import json
    code, out, _ = cli("pde-control", "--plan", "quick", "--no-timing", "--no-op-count", "--out", str(tmp_path),
                       "--quiet")
    assert code == 0 and "| ops |" not in out
    assert json.loads((tmp_path / "table1.json").read_text())["inference_ops"] == {}
    code, out, _ = cli("pde-control", "--plan", "quick", "--no-timing", "--out", str(tmp_path), "--quiet")
    counts = json.loads((tmp_path / "table1.json").read_text())["inference_ops"]
    assert code == 0 and "| ops |" in out
    assert set(counts) == {"cfe-chain/supervised", "cfe-chain/diff-physics", "staggered/supervised",
                           "staggered/diff-physics", "refined/diff-physics", "shooting/2", "shooting/4"}
    assert all(isinstance(n, int) and n > 0 for n in counts.values())


def test_compare_announces_its_runs_only_once_every_check_has_passed(cli):
    code, out, err = cli("compare", "exp", "--optimizers", "adam,adam", "--iterations", "1", "--device", "cpu")
    assert code == 2 and "optimizers must be distinct" in err and "physopt compare exp on" not in out + err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error(cli):
    for device in ("cuda", "cuda:1"):
        code, _, err = cli("compare", "exp", "--iterations", "1", "--device", device, "--quiet")
        assert code == 2 and f"device '{device}' was requested" in err and "no CUDA device" in err
        assert "--device cpu" in err


def test_python_dash_m_physopt_runs_the_command():
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "physopt", "list"], capture_output=True, text=True)
    assert proc.returncode == 0 and "navier-stokes" in proc.stdout and "hig" in proc.stdout


def test_version(cli):
    from importlib.metadata import version
    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"physopt {version('physopt')}"


def test_orders_and_number_lists_parse_ranges_and_name_the_flag():
    from physopt.cli import number_list, orders
    assert orders("1-3,6") == [1, 2, 3, 6] and orders("2") == [2]
    assert number_list("1e-3, 3e-3", "--lrs") == [1e-3, 3e-3]
    with pytest.raises(ValueError, match="--orders"):
        orders("1..9")
    with pytest.raises(ValueError, match="--ms needs integers >= 1"):
        number_list("0,2", "--ms", int, 1)


@pytest.mark.parametrize("argv, message", [
    (["tangentprop-bench", "--width", "0"], "argument --width: must be >= 1, got 0"),
    (["compare", "exp", "--iterations", "0"], "argument --iterations: must be >= 1, got 0"),
    (["compare", "exp", "--time-budget", "-1"], "argument --time-budget: must be a finite number > 0, got -1"),
    (["speed", "--repeats", "x"], "argument --repeats: expected an integer, got 'x'"),
    (["solver-in-the-loop", "--checkpoint-every", "nan"], "argument --checkpoint-every: must be a finite number > 0"),
    (["tune", "exp", "--timeout", "-5"], "argument --timeout: must be a finite number > 0, got -5"),
])
def test_flag_values_are_checked_by_the_parser_in_one_line(capsys, argv, message):
    from physopt.cli import main
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and message in err and "--help" in err


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

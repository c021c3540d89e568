"""storage: results on disk, every file written atomically: one JSON per finished run (found again only for the
same settings), summary.json and curves.csv, benchmark outputs, and the machine they were measured on."""
import json
import os

import pytest
import torch

from physopt.bench.provenance import provenance, provenance_label
from physopt.bench.storage import (atomic_write, load_run, machine_info, machine_label, read_curves, run_path,
                                   save_run, write_benchmark, write_summary)
from physopt.bench.train import CurvePoint, RunResult


def result(optimizer="adam", seed=0, loss=0.5):
    return RunResult(optimizer, seed, 4, 0.25, {"loss": loss, "x_error": 1.5, "le": 0.1}, {"lr": 1e-3}, "ok",
                     "00ff00ff00ff00ff", [CurvePoint(0, 0.0, 1.0, 2.0, None, {"le": 0.2}),
                                          CurvePoint(4, 0.25, loss, None, 0.75, {"le": 0.1})],
                     machine="CPU, 1 torch threads")


SPEC = {"problem": "exp", "config": {"x_low": -12.0}, "optimizer": "adam", "seed": 0, "batch_size": 8,
        "hyperparameters": {"lr": 1e-3, "batch_size": 8}, "held_out_size": 64, "seeds": (0, 1)}


def test_atomic_write_creates_folders_replaces_the_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "a" / "b" / "out.json"
    atomic_write(path, "first")
    atomic_write(path, "second ünïcode")
    assert path.read_text() == "second ünïcode"
    assert os.listdir(path.parent) == ["out.json"]


def test_an_interrupted_write_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write(path, '{"complete": true}')
    with pytest.raises(UnicodeEncodeError):
        atomic_write(path, "x" * 100_000 + "\ud800")          # fails part-way through writing
    assert path.read_text() == '{"complete": true}'


def test_machine_info_records_where_it_ran_and_the_label_tells_machines_apart():
    info = machine_info(torch.device("cpu"))
    assert info["device"] == "cpu" and info["cpu_count"] == os.cpu_count() and "gpu" not in info
    assert info["torch_threads"] == torch.get_num_threads() and info["torch"] == torch.__version__
    assert machine_label({"cpu": "AMD EPYC", "torch_threads": 2}) == "AMD EPYC, 2 torch threads"
    assert machine_label({"cpu": "AMD EPYC", "gpu": "H100", "torch_threads": 8}) == "H100, 8 torch threads"
    assert machine_label({}) == "?, ? torch threads"


def test_a_benchmark_writes_json_and_text_with_its_command_and_machine(tmp_path):
    path = write_benchmark(tmp_path / "t", "timing", "physopt x --quick", torch.device("cpu"), "a table",
                           {"rows": [{"s": 1.5}]})
    assert path == tmp_path / "t" / "timing.json"
    data = json.loads(path.read_text())
    assert data["command"] == "physopt x --quick" and data["rows"] == [{"s": 1.5}]
    assert data["machine"]["device"] == "cpu" and data["provenance"] == provenance()
    text = (tmp_path / "t" / "timing.txt").read_text()
    assert text.startswith("command: physopt x --quick\nmachine: {") and text.endswith("\n\na table\n")
    assert f"\n{provenance_label(provenance())}\n" in text


def test_a_saved_run_is_found_again_only_with_the_same_settings(tmp_path):
    save_run(tmp_path, SPEC, result())
    assert run_path(tmp_path, "adam", 0) == tmp_path / "runs" / "adam_seed0.json"
    assert run_path(tmp_path, "adam", 0).exists()
    assert load_run(tmp_path, "adam", 0, SPEC) == result()
    assert load_run(tmp_path, "adam", 0, {**SPEC, "batch_size": 16}) is None
    assert load_run(tmp_path, "adam", 1, SPEC) is None                       # never run
    run_path(tmp_path, "adam", 0).write_text('{"spec": ')                    # unreadable
    assert load_run(tmp_path, "adam", 0, SPEC) is None


def test_runs_saved_in_the_earlier_layouts_are_still_recognised(tmp_path):
    old = {**SPEC, "hyperparameters": {"lr": 1e-3}, "config": {"x_low": -12.0, "test_size": 64}}
    del old["held_out_size"]
    save_run(tmp_path, old, result())
    assert load_run(tmp_path, "adam", 0, SPEC) == result()
    assert load_run(tmp_path, "adam", 0, {**SPEC, "held_out_size": 32}) is None


def test_a_config_field_added_later_matches_runs_without_it_only_at_the_value_they_implied(tmp_path):
    """FieldConfig.unet_batch_norm came after runs were written with batch norm: True is those runs, False is not."""
    save_run(tmp_path, SPEC, result())
    assert load_run(tmp_path, "adam", 0, {**SPEC, "config": {**SPEC["config"], "unet_batch_norm": True}}) == result()
    assert load_run(tmp_path, "adam", 0, {**SPEC, "config": {**SPEC["config"], "unet_batch_norm": False}}) is None


def test_the_summary_and_the_curves_round_trip(tmp_path):
    runs = [result("adam", 0, 0.5), result("sip", 0, 0.25)]
    summary = write_summary(tmp_path, {"problem": "exp"}, runs)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == summary and on_disk["problem"] == "exp"
    assert [r["optimizer"] for r in on_disk["runs"]] == ["adam", "sip"] and "curve" not in on_disk["runs"][0]
    assert on_disk["runs"][1]["final"] == {"loss": 0.25, "x_error": 1.5, "le": 0.1}
    rows = read_curves(tmp_path / "curves.csv")
    assert rows == [
        {"optimizer": opt, "seed": 0, "iteration": c.iteration, "time_s": c.time_s, "loss": c.loss,
         "x_error": c.x_error, "train_loss": c.train_loss, "le": c.extra["le"]}
        for opt, r in (("adam", runs[0]), ("sip", runs[1])) for c in r.curve]


def test_markdown_header_names_the_command_machine_and_physopt_that_made_a_table():
    from physopt.bench.storage import markdown_header
    data = {"command": "physopt pde-control --seeds 0", "machine": {"cpu": "AMD EPYC", "torch_threads": 1,
                                                                    "torch": "2.13.0"},
            "provenance": {"physopt": "0.2.0", "git_commit": "0123456789abcdef", "git_dirty": False}}
    lines = markdown_header("A table", data)
    assert lines[0] == "# A table" and lines[2] == "Command: `physopt pde-control --seeds 0`"
    assert lines[4].startswith("Machine: AMD EPYC, 1 torch threads, torch 2.13.0; ")
    assert "0123456789" in lines[4]

"""summary: per optimizer the final held-out metrics over seeds (mean +- std), the ratios to Adam, the seeds below
Adam, and the plain-text table `physopt compare` prints."""
import math

from physopt.bench.summary import (component_names, default_metric, final_values, format_batch, format_summary,
                                   mean_std, optimizer_rows, ratio_sentence, ratios_to_adam, seeds_below_adam)


def test_mean_std_is_the_mean_and_sample_standard_deviation_of_the_finite_values():
    assert mean_std([1.0, 2.0, 3.0]) == "2 +- 1"                 # sample std: sqrt(((1-2)^2 + (3-2)^2) / 2) = 1
    assert mean_std([2.0, 4.0, None, math.nan, math.inf], sep=" ± ") == "3 ± 1.4"
    assert mean_std([0.123456]) == "0.1235" and mean_std([None, math.nan]) == "-" and mean_std([]) == "-"


def run_entry(opt, seed, x_error, status="ok", loss=1.0, **components):
    """One run of a summary.json."""
    return {"optimizer": opt, "seed": seed, "iterations": 10, "wall_time_s": 1.0, "status": status,
            "hyperparameters": {"lr": 1e-3}, "final": {"loss": loss, "x_error": x_error, **components}}


def summary_of():
    return {"problem": "toy", "device": "cpu", "torch": "2.x", "batch_size": {"adam": 4, "sip": 4, "sgd": 8},
            "seeds": [0, 1], "x_error_name": "x_l1",
            "runs": [run_entry("adam", 0, 4.0, le=0.5), run_entry("adam", 1, 2.0, le=0.7),
                     run_entry("sip", 0, 1.0, le=0.1), run_entry("sip", 1, 3.0, le=0.3),
                     run_entry("sgd", 0, 8.0, le=0.9), run_entry("sgd", 1, math.nan, "diverged: step 7: NaN")]}


def test_final_values_and_ratios_to_adam_use_the_finite_values_per_seed():
    s = summary_of()
    assert default_metric(s) == "x_error"
    assert final_values(s, "x_error") == {"adam": {0: 4.0, 1: 2.0}, "sip": {0: 1.0, 1: 3.0}, "sgd": {0: 8.0}}
    assert ratios_to_adam(s) == ("x_error", {"sip": 1.5, "sgd": 0.375})          # adam's mean 3 / theirs
    assert ratios_to_adam(s, "loss") == ("loss", {"sip": 1.0, "sgd": 1.0})
    assert seeds_below_adam(s) == {"sip": (1, 2), "sgd": (0, 1)}
    assert component_names(s) == ["le"]


def test_without_ground_truth_the_loss_is_compared_and_without_adam_nothing():
    s = {"runs": [run_entry("adam", 0, None, loss=2.0), run_entry("hig", 0, None, loss=0.5)]}
    assert default_metric(s) == "loss" and ratios_to_adam(s) == ("loss", {"hig": 4.0})
    assert ratio_sentence(s) == ("held-out loss", {"hig": 4.0})
    without_adam = {"runs": [run_entry("hig", 0, 1.0)]}
    assert ratios_to_adam(without_adam) == ("x_error", {}) and ratio_sentence(without_adam) is None
    assert seeds_below_adam(without_adam) == {}


def test_optimizer_rows_give_means_over_seeds_and_count_the_failed_runs():
    rows = {r["optimizer"]: r for r in optimizer_rows(summary_of())}
    assert rows["sip"]["x_error"] == "2 +- 1.4" and rows["sip"]["le"] == "0.2 +- 0.14"
    assert rows["sgd"]["x_error"] == "8" and rows["sgd"]["status"] == "diverged, ok"
    assert rows["sgd"]["failed"] == " (1 of 2 diverged)" and rows["adam"]["failed"] == ""
    assert rows["adam"]["runs"] == 2 and rows["adam"]["hyperparameters"] == "lr=0.001"


def test_format_batch_names_the_sizes_only_where_they_differ():
    assert format_batch(16) == "16" and format_batch({"adam": 4, "sip": 4}) == "4"
    assert format_batch({"adam": 512, "hig": 128}) == "adam 512, hig 128"


def test_the_printed_table_has_a_header_a_row_per_optimizer_components_and_ratios():
    lines = format_summary(summary_of()).splitlines()
    assert lines[0] == "problem toy  device cpu  batch adam 4, sip 4, sgd 8  seeds [0, 1]  torch 2.x"
    assert lines[1].split() == ["optimizer", "iterations", "time", "[s]", "held-out", "loss", "x_l1", "status"]
    assert [line.split()[0] for line in lines[3:6]] == ["adam", "sip", "sgd"]
    assert lines[6] == "  le: adam 0.6 +- 0.14, sip 0.2 +- 0.14, sgd 0.9"
    assert lines[7] == "x_l1 of adam / x_l1 of optimizer (> 1: better than adam): sip: 1.5x, sgd: 0.375x"

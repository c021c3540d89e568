"""hig-spread-timing: one row for one process with the whole batch and one for N processes with a share each, the
same global number of Jacobian rows, times and memory filled in."""
from physopt.timing.hig_spread import format_rows, run


def test_one_process_and_two_processes_time_the_same_global_batch():
    rows = run(["oscillators"], ["gram"], batch=4, processes=2, repeats=1, device="cpu", threads=1,
               log=lambda m: None)
    single, spread = rows
    assert (single["processes"], single["batch"], spread["processes"], spread["batch"]) == (1, 8, 2, 4)
    assert single["rows"] == spread["rows"] == 8 * 4                       # 8 examples x |y| = 4
    assert spread["route"] == "gram (distributed)" and spread["update_s"] > 0 and spread["speedup"] > 0
    assert "vs 1 process" in format_rows(rows)

"""The timing kernel: torch.utils.benchmark readings with median and IQR, peak memory, fresh-process protocol, and
counts of the operations a call dispatches."""
import time

import pytest
import torch

from physopt.timing.kernel import Timing, count_ops, measure_peak, run_isolated, sync, time_call


def test_a_sleep_is_timed_at_its_length_with_at_least_min_runs_readings():
    t = time_call(lambda: time.sleep(0.01), "cpu", min_runs=4, min_time_s=0.02)
    assert isinstance(t, Timing) and len(t.times_s) >= 4
    assert 0.01 <= t.median_s < 0.05 and 0 <= t.iqr_s < t.median_s
    assert t.warmup_s >= 0.01


def test_a_slow_call_is_called_once_for_warm_up_and_min_runs_times_more():
    calls = []
    t = time_call(lambda: (calls.append(1), time.sleep(0.03))[0], "cpu", min_runs=3, min_time_s=0.02)
    assert len(calls) == 4 and len(t.times_s) == 3 and t.median_s >= 0.03


def test_the_warm_up_result_is_returned():
    t = time_call(lambda: 42, "cpu", min_runs=1, min_time_s=0.001)
    assert t.first == 42


def test_min_runs_below_one_is_refused():
    with pytest.raises(ValueError, match="min_runs"):
        time_call(lambda: None, "cpu", min_runs=0)


def test_peak_memory_sees_a_large_allocation_on_the_cpu():
    out, peak = measure_peak(lambda: torch.ones(64, 2 ** 20).sum().item(), torch.device("cpu"))  # 256 MiB
    assert out == 64 * 2 ** 20
    if peak is not None:                                  # Linux: VmHWM growth
        assert peak >= 200 * 2 ** 20


def test_a_function_runs_in_a_fresh_process_and_its_failure_is_reported():
    value, why = run_isolated("physopt.bench.table:dash_or", {"value": 0.5, "scale": 1e3})
    assert value == "500" and why is None
    value, why = run_isolated("physopt.bench.table:dash_or", {"value": "x", "scale": 2.0})   # raises in the child
    assert value is None and "failed in its process" in why and "TypeError" in why


def test_sync_accepts_names_and_devices():
    sync("cpu")
    sync(torch.device("cpu"))


def test_count_ops_counts_computing_operations_and_leaves_out_views():
    a, b, c = torch.randn(4, 5), torch.randn(5, 3), torch.randn(3)
    out, ops = count_ops(lambda: a @ b + c)
    torch.testing.assert_close(out, a @ b + c)
    assert ops == 2                                                    # mm, add
    assert count_ops(lambda: a.view(-1).reshape(5, 4).t()[1:, ::2])[1] == 0
    assert count_ops(lambda: a[:, torch.tensor([0, 2])])[1] == 1       # a gather computes
    assert count_ops(lambda: a.t().reshape(-1))[1] == 1                # the copy counts, relabelling it does not


def test_count_ops_counts_the_backward_pass_and_an_optimizer_step():
    x = torch.zeros(3, requires_grad=True)
    forward = count_ops(lambda: (x * 2).sum())[1]
    opt = torch.optim.SGD([x], lr=0.1)

    def step():
        opt.zero_grad()
        (x * 2).sum().backward()
        opt.step()
    assert count_ops(step)[1] > forward + 1
    assert count_ops(lambda: [step() for _ in range(3)])[1] == 3 * count_ops(step)[1]

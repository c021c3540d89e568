"""SIP against Adam on every bundled problem, from the same weights and data (issue acceptance, scaled down).

The default suite runs small versions (seconds each); `-m slow` runs the full acceptance settings.
"""
import pytest

from physopt.bench import compare
from problems import get_problem


def x_errors(name, config, iterations, batch_size=None, seed=0, device="cpu"):
    problem = get_problem(name, device=device, **config)
    summary = compare(problem, ["adam", "sip"], seeds=[seed], iterations=iterations, batch_size=batch_size,
                      evaluations=2)
    runs = {r["optimizer"]: r for r in summary["runs"]}
    assert runs["adam"]["init_checksum"] == runs["sip"]["init_checksum"]
    assert all(r["status"] == "ok" and r["iterations"] == iterations for r in runs.values())
    return runs["adam"]["final"]["x_error"], runs["sip"]["final"]["x_error"]


@pytest.mark.parametrize("name, config, iterations, batch_size, min_ratio", [
    ("poisson", {"resolution": 32}, 80, 16, 1.5),
    ("heat", {"resolution": 32, "max_half_size": 5.0}, 80, 16, 1.1),
    ("rotated-sine", {"xi": 32.0, "phi": 45.0}, 600, None, 5.0),
    ("exp", {}, 1500, None, 1.5),
])
def test_sip_beats_adam_small(name, config, iterations, batch_size, min_ratio, device):
    adam, sip = x_errors(name, config, iterations, batch_size, device=device)
    assert adam / sip >= min_ratio, f"{name}: adam {adam:.4g} vs sip {sip:.4g}"


@pytest.mark.slow
def test_poisson_acceptance_sip_3x_below_adam():
    adam, sip = x_errors("poisson", {}, 300, 32)
    assert adam / sip >= 3.0, f"adam {adam:.4g} vs sip {sip:.4g}"


@pytest.mark.slow
def test_heat_acceptance_sip_below_adam():
    adam, sip = x_errors("heat", {}, 300, 32)
    assert sip < adam


@pytest.mark.slow
def test_rotated_sine_acceptance_at_xi_32_phi_45():
    adam, sip = x_errors("rotated-sine", {"xi": 32.0, "phi": 45.0}, 3000)
    assert sip < adam

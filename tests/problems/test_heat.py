"""The heat problem (SIP paper Sec. 3.5): its damped inverse diffusion against exact spectral diffusion, and its
data."""
import math

import torch

from problems.heat import damped_inverse_diffusion, soft_rectangles
from problems.solvers.grids import spectral_diffusion


def test_heat_damped_inverse_recovers_low_frequencies_and_is_bounded():
    n, amount = 32, 2.0
    y, x = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")
    low = torch.cos(2 * math.pi * 2 * x / n)[None]
    torch.testing.assert_close(damped_inverse_diffusion(spectral_diffusion(low, amount), amount), low, atol=1e-9,
                               rtol=0)
    # white noise: the exact inverse would amplify the highest mode by exp((2 pi)^2 * 0.5 * amount) ~ 1e17; the damped
    # one treats modes as noise once they need more gain than about 1 / noise_level
    noise = torch.randn(1, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for level in (1e-2, 1e-6):
        out = damped_inverse_diffusion(noise, amount, noise_level=level)
        assert torch.isfinite(out).all() and out.norm() < 10 / level * noise.norm()


def test_heat_rectangles_are_within_bounds_and_counted():
    x = soft_rectangles(64, 64, torch.Generator().manual_seed(0))
    assert x.min() >= 0 and x.shape == (64, 64, 64)
    assert (x.reshape(64, -1).max(-1).values > 0).all()

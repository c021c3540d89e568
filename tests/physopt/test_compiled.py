"""physopt.compiled_physics: a physics under torch.compile is the same function (values and gradients, float64), and
where compiling fails it falls back to the eager function once, loudly; the input's own errors stay its own."""
import shutil
import warnings

import pytest
import torch

import physopt


def solver(x, scale):
    """A few explicit steps of a nonlinear decay: many small ops, what compiling fuses."""
    for _ in range(8):
        x = x - 0.1 * scale * torch.tanh(x) * x
    return x


@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++", "cl")),
                    reason="torch.compile's CPU backend (inductor) needs a C++ compiler")
def test_the_compiled_physics_has_the_values_and_gradients_of_the_eager_one():
    compiled = physopt.compiled_physics(solver)
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    scale = torch.linspace(0.5, 2.0, 5, dtype=torch.float64)
    y, y_ref = compiled(x, scale), solver(x, scale)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=0)
    g, = torch.autograd.grad(y.square().sum(), x)
    g_ref, = torch.autograd.grad(y_ref.square().sum(), x)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=0)
    assert compiled.fallback is None and "compiled" in repr(compiled)


def failing_backend(graph, example_inputs):
    raise RuntimeError("this backend cannot compile anything")


def test_a_compiler_failure_falls_back_to_the_eager_function_with_one_warning():
    compiled = physopt.compiled_physics(solver, backend=failing_backend)
    x, scale = torch.randn(3, 4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="torch.compile could not run the physics.*runs eagerly from now on"):
        y = compiled(x, scale)
    torch.testing.assert_close(y, solver(x, scale), rtol=0, atol=0)
    assert compiled.fallback is not None and "eager fallback" in repr(compiled)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # no second warning
        compiled(x, scale)


def test_an_error_of_the_input_is_raised_as_the_eager_function_raises_it():
    compiled = physopt.compiled_physics(solver, backend="eager")
    with pytest.raises(RuntimeError, match="size of tensor"):
        compiled(torch.randn(3, 4), torch.ones(5))
    assert compiled.fallback is None
    with pytest.raises(TypeError, match="needs a callable physics"):
        physopt.compiled_physics("solver")

"""curves.png: held-out loss and x-space error against iterations and against training seconds."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .storage import read_curves


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend (figures are only written to files; no display)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (its folder created) and free it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def plot_curves(curves_csv: Path, out_png: Path, title: str = "", x_error_name: str = "x_error",
                switches: dict[tuple[str, int], list[dict]] | None = None) -> Path:
    """Draw a 2x2 grid (loss / x_error over iterations / seconds), one colour per optimizer, a line per seed; a
    dotted vertical line in the run's colour where a schedule run switched optimizer (``switches[(optimizer,
    seed)]``: the run's ``RunResult.switches``)."""
    plt = pyplot()
    rows = read_curves(curves_csv)
    metrics = [("loss", "held-out loss")]
    if any(r["x_error"] is not None for r in rows):
        metrics.append(("x_error", f"held-out {x_error_name}"))
    fig, axes = plt.subplots(len(metrics), 2, figsize=(11, 3.6 * len(metrics)), squeeze=False)
    optimizers = list(dict.fromkeys(r["optimizer"] for r in rows))
    colours = {o: f"C{i}" for i, o in enumerate(optimizers)}
    for (key, label), ax_row in zip(metrics, axes):
        for ax, xkey, xlabel in zip(ax_row, ("iteration", "time_s"), ("iteration", "training time [s]")):
            for opt in optimizers:
                for seed in sorted({r["seed"] for r in rows if r["optimizer"] == opt}):
                    pts = [r for r in rows if r["optimizer"] == opt and r["seed"] == seed and r[key] is not None]
                    if not pts:
                        continue
                    ax.plot([p[xkey] for p in pts], [p[key] for p in pts], color=colours[opt], alpha=0.85,
                            label=opt if seed == min(r["seed"] for r in rows if r["optimizer"] == opt) else None)
                    for switch in (switches or {}).get((opt, seed)) or ():
                        ax.axvline(switch[xkey], color=colours[opt], linestyle=":", alpha=0.6)
            ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(label)
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out_png)

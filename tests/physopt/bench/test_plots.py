"""plots: curves.png, the held-out loss (and x-space error where there is one) over iterations and over training
seconds, a colour per optimizer and a line per seed."""
import struct

from physopt.bench.plots import plot_curves

HEADER = "optimizer,seed,iteration,time_s,loss,x_error,train_loss\n"


def png_size(path):
    """(width, height) from the PNG signature and IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_curves_with_an_x_space_error_give_a_two_by_two_grid(tmp_path):
    csv = tmp_path / "curves.csv"
    csv.write_text(HEADER + "".join(f"{opt},{seed},{it},{0.1 * it},{1.0 / (it + 1)},{2.0 / (it + 1)},\n"
                                    for opt in ("adam", "sip") for seed in (0, 1) for it in (0, 5, 10)))
    out = plot_curves(csv, tmp_path / "plots" / "curves.png", title="exp (cpu)")
    assert out == tmp_path / "plots" / "curves.png"
    assert png_size(out) == (1210, 792)                   # 11 x 7.2 inches at 110 dpi: two rows


def test_curves_without_ground_truth_plot_the_loss_only(tmp_path):
    csv = tmp_path / "curves.csv"
    csv.write_text(HEADER + "".join(f"hig,0,{it},{0.1 * it},{1.0 / (it + 1)},,\n" for it in (0, 5, 10)))
    assert png_size(plot_curves(csv, tmp_path / "curves.png")) == (1210, 396)   # 11 x 3.6 inches: one row
